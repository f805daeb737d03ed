package c2s

// GoroutinesIn is goroutinesIn for the package's external tests.
var GoroutinesIn = goroutinesIn

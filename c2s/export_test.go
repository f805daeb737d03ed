package c2s

// GoroutinesIn is goroutinesIn for the package's external tests.
var GoroutinesIn = goroutinesIn

// SetSMInitialH starts both stream management counts of sessions enabled
// from now on at h, for tests of their wrapping; it returns the undo.
func SetSMInitialH(h uint32) (undo func()) {
	old := smInitialH
	smInitialH = h
	return func() { smInitialH = old }
}

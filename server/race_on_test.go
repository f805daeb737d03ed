//go:build race

package server_test

// raceEnabled is whether the race detector is on: tests that measure
// memory or move hundreds of megabytes skip under it.
const raceEnabled = true

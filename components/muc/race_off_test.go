//go:build !race

package muc_test

// raceEnabled is whether the race detector is on.
const raceEnabled = false

//go:build race

package muc_test

// raceEnabled is whether the race detector is on: the 1,000-occupant
// room takes minutes under it, and `make test` runs it again without.
const raceEnabled = true

package mam

import "time"

// SetExpireEvery shortens the period of the retention loop for a test and
// returns the function that restores it.
func SetExpireEvery(d time.Duration) func() {
	old := expireEvery
	expireEvery = d
	return func() { expireEvery = old }
}

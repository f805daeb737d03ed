package push

import "time"

// SetNow sets the module's clock for a test; it returns the undo.
func SetNow(f func() time.Time) (undo func()) {
	old := now
	now = f
	return func() { now = old }
}

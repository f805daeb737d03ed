package upload

import "time"

// SetClock makes the service read the time from now: tests move it past
// a slot's lifetime or a file's expiry.
func (s *Service) SetClock(now func() time.Time) { s.now = now }

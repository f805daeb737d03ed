package ratelog

import (
	"testing"
	"time"
)

// TestLimiter: one line a cause an interval, the rest counted.
func TestLimiter(t *testing.T) {
	var l Limiter
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for i, st := range []struct {
		cause   string
		at      time.Duration
		ok      bool
		skipped int
	}{
		{"a", 0, true, 0},
		{"a", time.Second, false, 0},
		{"b", time.Second, true, 0},
		{"a", 30 * time.Second, false, 0},
		{"a", time.Minute, true, 2},
		{"a", time.Minute + time.Second, false, 0},
		{"b", 3 * time.Minute, true, 0},
	} {
		ok, skipped := l.Allow(st.cause, t0.Add(st.at))
		if ok != st.ok || skipped != st.skipped {
			t.Errorf("step %d (%s at %v): %v, %d; want %v, %d", i, st.cause, st.at, ok, skipped, st.ok, st.skipped)
		}
	}
}

package c2s

import (
	"log/slog"
	"maps"
	"sync"
	"time"
)

// logInterval is how often one cause of refusal is logged at its level;
// the others in between are counted and logged at debug, so that an
// attack of a million bad streams writes a line a minute, not a million.
const logInterval = time.Minute

// rateLog decides which refusals are logged at their level: the first of
// each cause in an interval, with how many were passed over since.
type rateLog struct {
	mu     sync.Mutex
	causes map[string]*causeLog
}

type causeLog struct {
	last    time.Time
	skipped int
}

// allow reports whether a refusal of cause is to be logged at its level now,
// and how many of that cause were logged at debug since the last one.
func (r *rateLog) allow(cause string, now time.Time) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.causes == nil {
		r.causes = make(map[string]*causeLog)
	}
	c := r.causes[cause]
	if c == nil {
		// Causes are a fixed set of conditions: the map stays small.
		c = &causeLog{}
		r.causes[cause] = c
	}
	if !c.last.IsZero() && now.Sub(c.last) < logInterval {
		c.skipped++
		return false, 0
	}
	n := c.skipped
	c.last, c.skipped = now, 0
	return true, n
}

// logRefusal counts a refusal of a session (a stream error, a failed
// authentication) and logs it at level for the first of its cause in an
// interval, else at debug.
func (s *Session) logRefusal(level slog.Level, cause, msg string, args ...any) {
	s.srv.refusalCounts.add(cause)
	ok, skipped := s.srv.refusals.allow(cause, time.Now())
	if !ok {
		level = slog.LevelDebug
	} else if skipped > 0 {
		args = append(args, "like_it_since_last_logged", skipped)
	}
	s.log(level, msg, args...)
}

// counts counts refusals by cause, for /metrics. Causes are a fixed set
// (stream error conditions, SASL failure conditions), so the map stays
// small.
type counts struct {
	mu sync.Mutex
	m  map[string]int64
}

func (c *counts) add(cause string) {
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string]int64)
	}
	c.m[cause]++
	c.mu.Unlock()
}

func (c *counts) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.m)
}

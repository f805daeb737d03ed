package c2s

import (
	"log/slog"
	"maps"
	"sync"
	"time"
)

// logRefusal counts a refusal of a session (a stream error, a failed
// authentication) and logs it at level for the first of its cause in a
// minute (Server.refusals, a ratelog.Limiter), else at debug.
func (s *Session) logRefusal(level slog.Level, cause, msg string, args ...any) {
	s.srv.refusalCounts.add(cause)
	ok, skipped := s.srv.refusals.Allow(cause, time.Now())
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

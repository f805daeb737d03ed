// Package ratelog decides which refusals get a log line: the first of
// each cause in an interval, with how many of that cause were passed over
// since, so that a flood writes a line a minute, not a line a packet. The
// counting for metrics stays with whoever refuses.
package ratelog

import (
	"sync"
	"time"
)

// Every is the interval of a Limiter whose Interval is zero.
const Every = time.Minute

// Limiter rations log lines by cause. Its zero value logs each cause at
// most once a minute. It is safe for concurrent use. Causes should be a
// small fixed set (conditions, limit names): each is remembered.
type Limiter struct {
	// Interval is the least time between two lines of one cause; zero
	// means Every.
	Interval time.Duration

	mu     sync.Mutex
	causes map[string]*state
}

type state struct {
	last    time.Time
	skipped int
}

// Allow reports whether an event of cause happening at now is to be
// logged, and how many events of that cause were not logged since the
// last one that was.
func (l *Limiter) Allow(cause string, now time.Time) (ok bool, skipped int) {
	every := l.Interval
	if every <= 0 {
		every = Every
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.causes == nil {
		l.causes = make(map[string]*state)
	}
	c := l.causes[cause]
	if c == nil {
		c = &state{}
		l.causes[cause] = c
	}
	if !c.last.IsZero() && now.Sub(c.last) < every {
		c.skipped++
		return false, 0
	}
	n := c.skipped
	c.last, c.skipped = now, 0
	return true, n
}

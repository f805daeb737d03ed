package clientaddr

import (
	"net/netip"
	"sync"
	"time"
)

// MaxAddrs bounds the addresses a Limiter remembers. Past
// it (after forgetting the expired ones) new addresses are not counted: a
// guesser with more addresses than that gains a few guesses each, and the
// server's memory stays bounded.
const MaxAddrs = 1 << 16

// Limiter counts events (failed authentications, registrations) by
// client address (Key) in fixed windows, and blocks an address that
// reached limit until its window ends.
// It is safe for concurrent use.
type Limiter struct {
	limit  int
	window time.Duration
	now    func() time.Time

	mu     sync.Mutex
	byAddr map[netip.Prefix]*addrWindow
}

// addrWindow is one address's count since start.
type addrWindow struct {
	start time.Time
	n     int
}

// NewLimiter returns a limiter of limit events per window; now is the
// clock (time.Now, or a test's).
func NewLimiter(limit int, window time.Duration, now func() time.Time) *Limiter {
	return &Limiter{limit: limit, window: window, now: now, byAddr: make(map[netip.Prefix]*addrWindow)}
}

// Blocked reports whether remote has reached the limit, and for how much
// longer it is blocked.
func (l *Limiter) Blocked(remote string) (time.Duration, bool) {
	k, ok := Key(remote)
	if !ok {
		return 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.byAddr[k]
	if f == nil {
		return 0, false
	}
	left := f.start.Add(l.window).Sub(l.now())
	if left <= 0 {
		delete(l.byAddr, k)
		return 0, false
	}
	return left, f.n >= l.limit
}

// Fail counts an event of remote.
func (l *Limiter) Fail(remote string) {
	k, ok := Key(remote)
	if !ok {
		return
	}
	t := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.byAddr[k]
	if f != nil && t.Sub(f.start) >= l.window {
		f = nil
	}
	if f == nil {
		if len(l.byAddr) >= MaxAddrs {
			l.forgetExpired(t)
			if len(l.byAddr) >= MaxAddrs {
				return
			}
		}
		f = &addrWindow{start: t}
		l.byAddr[k] = f
	}
	f.n++
}

// forgetExpired drops the windows that ended before t; l.mu is held.
func (l *Limiter) forgetExpired(t time.Time) {
	for k, f := range l.byAddr {
		if t.Sub(f.start) >= l.window {
			delete(l.byAddr, k)
		}
	}
}

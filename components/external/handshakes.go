package external

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/internal/clientaddr"
)

// handshakeLimits slow the guessing of a component's secret down, and
// never lock the component out. They are c2s's login limits (the same
// [limits] keys) with a component's domain for the account:
//
//   - one address: after After wrong handshakes for the domain from one
//     address (an IPv4 address, an IPv6 /64) within Window, every later
//     handshake for it from there waits 1s, 2s, 4s... up to Max before
//     it is answered, right or wrong. Right ones wait too: were only
//     wrong ones held, a guesser would take "no answer yet" for "wrong"
//     and move on at full speed. A right handshake clears the address's
//     count, so the component's next connection is answered at once.
//   - many addresses: after Failures wrong handshakes for the domain
//     from anywhere within Window, handshakes wait from the addresses the
//     component never authenticated from in the last 30 days; the
//     component's own addresses are not slowed by guessers elsewhere.
//
// Nothing is ever refused: a right secret always gets in, at most Max
// later (Max stays under half the handshake timeout; 0 never waits). Components usually
// connect over loopback, where a guesser on the same machine shares the
// component's address: then the component's reconnections wait as the
// guesser's do, by Max at most, while the guessing goes on, and not
// after: the price of not letting the guesser go fast.
type handshakeLimits struct {
	After, Failures int
	Max, Window     time.Duration
}

// handshakeLimitsOf are the limits of cfg's [limits] login keys.
func handshakeLimitsOf(cfg *conf.Config) handshakeLimits {
	l := handshakeLimits{
		After:    cfg.Limits.LoginBackoffAfter,
		Failures: cfg.Limits.LoginAccountFailures,
		Max:      cfg.Limits.LoginBackoffMax.Duration,
		Window:   cfg.Limits.LoginWindow.Duration,
	}
	if l.After <= 0 {
		l.After = 3
	}
	if l.Failures <= 0 {
		l.Failures = 30
	}
	// login_backoff_max = "0s" is no waiting (as for c2s), and the
	// answer must come before the handshake timeout ends the stream.
	l.Max = max(0, min(l.Max, handshakeTimeout/2))
	if l.Window <= 0 {
		l.Window = 15 * time.Minute
	}
	return l
}

// knownFor is how long an authenticated address stays one the component
// is known at.
const knownFor = 30 * 24 * time.Hour

// maxAddrs bounds the addresses one guard remembers; past it, the stale
// ones are dropped, then any: forgetting costs a guesser's count or a
// known address, never a refusal.
const maxAddrs = 10000

// handshakeGuard keeps one component host's counts, in memory.
type handshakeGuard struct {
	lim handshakeLimits

	// mu guards the maps and all; it is a leaf: nothing else is locked
	// while it is held.
	mu    sync.Mutex
	addrs map[netip.Prefix]*failures // wrong handshakes by address
	all   failures                   // wrong handshakes from anywhere
	known map[netip.Prefix]time.Time // addresses the component authenticated from

	ok, wrong, delayed atomic.Int64
	delayNanos         atomic.Int64
}

// failures counts wrong handshakes in a window that starts at the first.
type failures struct {
	start time.Time
	n     int
}

func (f *failures) add(now time.Time, window time.Duration) {
	if now.Sub(f.start) >= window {
		f.start, f.n = now, 0
	}
	f.n++
}

func (f *failures) over(now time.Time, window time.Duration, allowed int) int {
	if f == nil || now.Sub(f.start) >= window {
		return -1
	}
	return f.n - allowed
}

func newHandshakeGuard(lim handshakeLimits) *handshakeGuard {
	return &handshakeGuard{lim: lim, addrs: map[netip.Prefix]*failures{}, known: map[netip.Prefix]time.Time{}}
}

// backoff is 1s for the first handshake past the allowance, doubling
// with each one past it, up to Max.
func (g *handshakeGuard) backoff(over int) time.Duration {
	if over < 0 {
		return 0
	}
	return min(time.Second<<min(over, 20), g.lim.Max)
}

// delay is how long the answer to a handshake from remote waits.
func (g *handshakeGuard) delay(remote string, now time.Time) time.Duration {
	k, ok := clientaddr.Key(remote)
	g.mu.Lock()
	defer g.mu.Unlock()
	var d time.Duration
	if ok {
		d = g.backoff(g.addrs[k].over(now, g.lim.Window, g.lim.After))
		if t, seen := g.known[k]; seen && now.Sub(t) < knownFor {
			return d
		}
	}
	return max(d, g.backoff(g.all.over(now, g.lim.Window, g.lim.Failures)))
}

// waited counts a held answer.
func (g *handshakeGuard) waited(d time.Duration) {
	if d > 0 {
		g.delayed.Add(1)
		g.delayNanos.Add(int64(d))
	}
}

// fail counts a wrong handshake from remote.
func (g *handshakeGuard) fail(remote string, now time.Time) {
	g.wrong.Add(1)
	k, ok := clientaddr.Key(remote)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.all.add(now, g.lim.Window)
	if !ok {
		return
	}
	f := g.addrs[k]
	if f == nil {
		if len(g.addrs) >= maxAddrs {
			forget(g.addrs, func(f *failures) bool { return now.Sub(f.start) >= g.lim.Window })
		}
		f = &failures{}
		g.addrs[k] = f
	}
	f.add(now, g.lim.Window)
}

// succeed counts a right handshake from remote: the address's count is
// cleared and the address is known.
func (g *handshakeGuard) succeed(remote string, now time.Time) {
	g.ok.Add(1)
	k, ok := clientaddr.Key(remote)
	if !ok {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.addrs, k)
	if _, seen := g.known[k]; !seen && len(g.known) >= maxAddrs {
		forget(g.known, func(t time.Time) bool { return now.Sub(t) >= knownFor })
	}
	g.known[k] = now
}

// forget drops m's stale entries, and if that leaves it full, half of
// the rest.
func forget[V any](m map[netip.Prefix]V, stale func(V) bool) {
	for k, v := range m {
		if stale(v) {
			delete(m, k)
		}
	}
	if len(m) < maxAddrs {
		return
	}
	n := len(m) / 2
	for k := range m {
		if n <= 0 {
			break
		}
		delete(m, k)
		n--
	}
}

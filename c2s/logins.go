package c2s

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// LoginLimits slow password guessing down without locking anyone out.
// Only attempts whose credentials were checked count (a wrong password or
// an unknown user); protocol mistakes do not. Slowing means the answer to an
// attempt waits, whatever the attempt's outcome, so that a guesser cannot
// tell a success by how soon it comes; nothing is ever refused.
//
// Three counts, each over Window:
//   - one account from one address: after BackoffAfter failures, that
//     account's attempts from that address wait 1s, 2s, 4s... up to
//     BackoffMax. A client that keeps failing slows itself alone: the other
//     users behind the same address (an office's NAT) are not touched.
//   - one address, many accounts (spraying): once SprayAccounts accounts
//     have failed from an address, attempts from it wait, except for
//     accounts that have logged in from that address before.
//   - one account, many addresses: once it has failed AccountFailures times
//     from anywhere, attempts at it wait, except from addresses it has
//     logged in from before.
//
// So the owner of an account, logging in from where they logged in before,
// is never slowed by anybody else's failures.
type LoginLimits struct {
	// BackoffAfter is how many failed logins of one account from one
	// address are answered at once. Default DefaultBackoffAfter.
	BackoffAfter int
	// SprayAccounts is how many accounts may fail from one address before
	// its attempts at other accounts wait. Default DefaultSprayAccounts.
	SprayAccounts int
	// AccountFailures is how many times one account may fail from all
	// addresses before attempts at it from new addresses wait. Default
	// DefaultAccountFailures.
	AccountFailures int
	// BackoffMax is the longest wait; default DefaultBackoffMax, and it is
	// kept under the handshake timeout. Negative means no waiting at all.
	BackoffMax time.Duration
	// Window is how long a failure counts; default DefaultLoginWindow.
	Window time.Duration
}

// Defaults of LoginLimits, which NewServer gives the fields left zero.
// Package conf takes from here the defaults of the [limits] keys that set
// them (login_backoff_after, login_spray_accounts, login_account_failures,
// login_backoff_max, login_window); they are written nowhere else.
const (
	// DefaultBackoffAfter is the default of LoginLimits.BackoffAfter.
	DefaultBackoffAfter = 3
	// DefaultSprayAccounts is the default of LoginLimits.SprayAccounts.
	DefaultSprayAccounts = 10
	// DefaultAccountFailures is the default of
	// LoginLimits.AccountFailures.
	DefaultAccountFailures = 30
	// DefaultBackoffMax is the default of LoginLimits.BackoffMax. Any
	// BackoffMax is cut to half the handshake timeout, so that a held
	// answer comes before the stream times out.
	DefaultBackoffMax = 10 * time.Second
	// DefaultLoginWindow is the default of LoginLimits.Window.
	DefaultLoginWindow = 15 * time.Minute
)

func (l *LoginLimits) setDefaults(handshake time.Duration) {
	if l.BackoffAfter <= 0 {
		l.BackoffAfter = DefaultBackoffAfter
	}
	if l.SprayAccounts <= 0 {
		l.SprayAccounts = DefaultSprayAccounts
	}
	if l.AccountFailures <= 0 {
		l.AccountFailures = DefaultAccountFailures
	}
	if l.BackoffMax == 0 {
		l.BackoffMax = DefaultBackoffMax
	}
	// A wait as long as the handshake timeout would end the stream
	// instead of answering it.
	if l.BackoffMax > handshake/2 {
		l.BackoffMax = handshake / 2
	}
	if l.Window <= 0 {
		l.Window = DefaultLoginWindow
	}
}

// Reasons for a wait, as LoginStats counts them.
const (
	reasonAccountFromAddress = iota // one account from one address
	reasonAddress                   // many accounts from one address
	reasonAccount                   // one account from many addresses
	nReasons
)

// LoginStats are the login limits' counters since the server started, for
// /metrics.
type LoginStats struct {
	Succeeded, Failed int64
	// Delayed counts attempts that waited, by the count that made them
	// wait (the longest one when several did).
	DelayedAccountFromAddress, DelayedAddress, DelayedAccount int64
	// DelaySeconds is the time all those waits added up to.
	DelaySeconds float64
}

// goodFor is how long a successful login keeps its address known to its
// account.
const goodFor = 30 * 24 * time.Hour

// maxTracked bounds each map of the guard; past it, entries that no longer
// count are dropped, and if that is not enough, arbitrary ones: forgetting
// costs an attacker's count or a known address, never a refusal.
const maxTracked = 100000

// loginGuard keeps the counts of LoginLimits, in memory.
type loginGuard struct {
	lim LoginLimits

	mu       sync.Mutex
	pairs    map[pairKey]*window // failures of an account from an address
	accounts map[string]*window  // failures of an account from anywhere
	sprays   map[string]*spray   // accounts that failed from an address
	good     map[uint64]int64    // goodKey of an account and address -> when it logged in (Unix ns)
	seed     maphash.Seed

	succeeded, failed atomic.Int64
	delayed           [nReasons]atomic.Int64
	delayNanos        atomic.Int64
}

// pairKey is an account (user@host) and an address.
type pairKey struct{ account, ip string }

type window struct {
	start time.Time
	n     int
}

type spray struct {
	start    time.Time
	accounts map[string]struct{}
}

func newLoginGuard(lim LoginLimits) *loginGuard {
	return &loginGuard{
		lim:      lim,
		pairs:    make(map[pairKey]*window),
		accounts: make(map[string]*window),
		sprays:   make(map[string]*spray),
		good:     make(map[uint64]int64),
		seed:     maphash.MakeSeed(),
	}
}

// backoff is 1s for the first slowed attempt, doubling with each one past
// it, up to BackoffMax.
func (g *loginGuard) backoff(over int) time.Duration {
	if over < 0 {
		return 0
	}
	d := time.Second << min(over, 20)
	return min(d, g.lim.BackoffMax)
}

// delay is how long the answer to an attempt at account from ip waits,
// from the failures counted before it, and why.
func (g *loginGuard) delay(account, ip string, now time.Time) (time.Duration, int) {
	if g.lim.BackoffMax < 0 {
		return 0, -1
	}
	k := pairKey{account, ip}
	g.mu.Lock()
	defer g.mu.Unlock()
	var d time.Duration
	reason := -1
	if w := g.pairs[k]; w != nil && now.Sub(w.start) < g.lim.Window {
		if b := g.backoff(w.n - g.lim.BackoffAfter); b > d {
			d, reason = b, reasonAccountFromAddress
		}
	}
	if t, ok := g.good[g.goodKey(k)]; ok && now.Sub(time.Unix(0, t)) < goodFor {
		// Where the account logged in before, others' failures do
		// not slow it.
		return d, reason
	}
	if sp := g.sprays[ip]; sp != nil && now.Sub(sp.start) < g.lim.Window {
		if b := g.backoff(len(sp.accounts) - g.lim.SprayAccounts); b > d {
			d, reason = b, reasonAddress
		}
	}
	if w := g.accounts[account]; w != nil && now.Sub(w.start) < g.lim.Window {
		if b := g.backoff(w.n - g.lim.AccountFailures); b > d {
			d, reason = b, reasonAccount
		}
	}
	return d, reason
}

// waited counts a wait.
func (g *loginGuard) waited(d time.Duration, reason int) {
	if d <= 0 || reason < 0 {
		return
	}
	g.delayed[reason].Add(1)
	g.delayNanos.Add(int64(d))
}

// fail counts a failed attempt at account from ip.
func (g *loginGuard) fail(account, ip string, now time.Time) {
	g.failed.Add(1)
	g.mu.Lock()
	defer g.mu.Unlock()
	count(g.pairs, pairKey{account, ip}, now, g.lim.Window)
	count(g.accounts, account, now, g.lim.Window)
	sp := g.sprays[ip]
	if sp == nil || now.Sub(sp.start) >= g.lim.Window {
		if sp == nil && len(g.sprays) >= maxTracked {
			prune(g.sprays, func(s *spray) bool { return now.Sub(s.start) >= g.lim.Window })
		}
		sp = &spray{start: now, accounts: make(map[string]struct{})}
		g.sprays[ip] = sp
	}
	// One address cannot grow this without bound: past what slows it
	// most, more accounts change nothing.
	if len(sp.accounts) < g.lim.SprayAccounts+32 {
		sp.accounts[account] = struct{}{}
	}
}

// succeed counts a successful login: the account's failures from that
// address are forgotten, and the address becomes one it is known at.
func (g *loginGuard) succeed(account, ip string, now time.Time) {
	g.succeeded.Add(1)
	k := pairKey{account, ip}
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.pairs, k)
	gk := g.goodKey(k)
	if _, ok := g.good[gk]; !ok && len(g.good) >= maxTracked {
		prune(g.good, func(t int64) bool { return now.Sub(time.Unix(0, t)) >= goodFor })
	}
	g.good[gk] = now.UnixNano()
}

// goodKey is the key of an account and address in good: a hash, so that
// the entry every successful login leaves is 16 bytes and holds no
// strings (as a pairKey with its two strings it was some 0.1 KiB a
// session). Two pairs that collide share their exemption; with 64 bits
// that takes billions of them.
func (g *loginGuard) goodKey(k pairKey) uint64 {
	var h maphash.Hash
	h.SetSeed(g.seed)
	h.WriteString(k.account)
	h.WriteByte(0)
	h.WriteString(k.ip)
	return h.Sum64()
}

// count adds a failure to m[k], in a window that starts anew once it is
// older than span.
func count[K comparable](m map[K]*window, k K, now time.Time, span time.Duration) {
	w := m[k]
	if w == nil || now.Sub(w.start) >= span {
		if w == nil && len(m) >= maxTracked {
			prune(m, func(w *window) bool { return now.Sub(w.start) >= span })
		}
		w = &window{start: now}
		m[k] = w
	}
	w.n++
}

// prune drops the entries that are stale, and if that leaves the map full,
// half of the rest.
func prune[K comparable, V any](m map[K]V, stale func(V) bool) {
	for k, v := range m {
		if stale(v) {
			delete(m, k)
		}
	}
	if len(m) < maxTracked {
		return
	}
	n := len(m) / 2
	for k := range m {
		if n == 0 {
			break
		}
		delete(m, k)
		n--
	}
}

// stats reads the counters.
func (g *loginGuard) stats() LoginStats {
	return LoginStats{
		Succeeded:                 g.succeeded.Load(),
		Failed:                    g.failed.Load(),
		DelayedAccountFromAddress: g.delayed[reasonAccountFromAddress].Load(),
		DelayedAddress:            g.delayed[reasonAddress].Load(),
		DelayedAccount:            g.delayed[reasonAccount].Load(),
		DelaySeconds:              time.Duration(g.delayNanos.Load()).Seconds(),
	}
}

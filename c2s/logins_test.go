package c2s

import (
	"fmt"
	"testing"
	"time"
)

// TestLoginGuard plays failed and successful logins against the guard
// with a clock of its own and checks the wait of the next attempt.
func TestLoginGuard(t *testing.T) {
	lim := LoginLimits{BackoffAfter: 3, SprayAccounts: 4, AccountFailures: 6, BackoffMax: 8 * time.Second, Window: 10 * time.Minute}
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	fails := func(account, ip string, n int) []event {
		var evs []event
		for range n {
			evs = append(evs, event{account: account, ip: ip})
		}
		return evs
	}
	for _, tc := range []struct {
		name        string
		lim         *LoginLimits // lim when nil
		events      []event
		account, ip string
		at          time.Duration
		want        time.Duration
		reason      int
	}{
		{name: "a first attempt waits for nothing", account: "alice@h", ip: "10.0.0.1", reason: -1},
		{
			name:   "three failures of one account from one address are answered at once",
			events: fails("alice@h", "10.0.0.1", 2), account: "alice@h", ip: "10.0.0.1", reason: -1,
		},
		{
			name:   "the attempt after three failures waits 1s",
			events: fails("alice@h", "10.0.0.1", 3), account: "alice@h", ip: "10.0.0.1",
			want: time.Second, reason: reasonAccountFromAddress,
		},
		{
			name:   "each failure past it doubles the wait",
			events: fails("alice@h", "10.0.0.1", 5), account: "alice@h", ip: "10.0.0.1",
			want: 4 * time.Second, reason: reasonAccountFromAddress,
		},
		{
			name:   "the wait stops at BackoffMax",
			events: fails("alice@h", "10.0.0.1", 30), account: "alice@h", ip: "10.0.0.1",
			want: 8 * time.Second, reason: reasonAccountFromAddress,
		},
		{
			name:   "one account failing does not slow another account from the same address",
			events: fails("bot@h", "10.0.0.1", 5), account: "alice@h", ip: "10.0.0.1", reason: -1,
		},
		{
			name:   "one account failing from one address does not slow it from another",
			events: fails("alice@h", "10.0.0.1", 5), account: "alice@h", ip: "10.0.0.2", reason: -1,
		},
		{
			name:    "a success forgets the failures of that account from that address",
			events:  append(fails("alice@h", "10.0.0.1", 5), event{account: "alice@h", ip: "10.0.0.1", ok: true}),
			account: "alice@h", ip: "10.0.0.1", reason: -1,
		},
		{
			name:   "failures older than the window do not count",
			events: fails("alice@h", "10.0.0.1", 5), account: "alice@h", ip: "10.0.0.1", at: 11 * time.Minute, reason: -1,
		},
		{
			name: "four accounts failing from one address slow its attempts at a fifth",
			events: append(append(append(fails("a@h", "10.0.0.9", 1), fails("b@h", "10.0.0.9", 1)...),
				fails("c@h", "10.0.0.9", 1)...), fails("d@h", "10.0.0.9", 1)...),
			account: "e@h", ip: "10.0.0.9", want: time.Second, reason: reasonAddress,
		},
		{
			name: "spraying does not slow an account that logged in from that address before",
			events: append([]event{{account: "e@h", ip: "10.0.0.9", ok: true}}, append(append(append(fails("a@h", "10.0.0.9", 1),
				fails("b@h", "10.0.0.9", 1)...), fails("c@h", "10.0.0.9", 1)...), fails("d@h", "10.0.0.9", 5)...)...),
			account: "e@h", ip: "10.0.0.9", reason: -1,
		},
		{
			name:    "six failures of one account from six addresses slow it from a seventh",
			events:  sprayFrom("alice@h", 6),
			account: "alice@h", ip: "10.1.0.99", want: time.Second, reason: reasonAccount,
		},
		{
			name:    "an account attacked from many addresses logs in at once from where it did before",
			events:  append([]event{{account: "alice@h", ip: "192.0.2.7", ok: true}}, sprayFrom("alice@h", 20)...),
			account: "alice@h", ip: "192.0.2.7", reason: -1,
		},
		{
			name:    "a negative BackoffMax never waits",
			lim:     &LoginLimits{BackoffAfter: 1, SprayAccounts: 1, AccountFailures: 1, BackoffMax: -1, Window: time.Minute},
			events:  fails("alice@h", "10.0.0.1", 10),
			account: "alice@h", ip: "10.0.0.1", reason: -1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := lim
			if tc.lim != nil {
				l = *tc.lim
			}
			g := newLoginGuard(l)
			for _, e := range tc.events {
				if e.ok {
					g.succeed(e.account, e.ip, t0.Add(e.at))
				} else {
					g.fail(e.account, e.ip, t0.Add(e.at))
				}
			}
			d, reason := g.delay(tc.account, tc.ip, t0.Add(tc.at))
			if d != tc.want || reason != tc.reason {
				t.Errorf("delay = %v (reason %d), want %v (reason %d)", d, reason, tc.want, tc.reason)
			}
		})
	}
}

// event is a login the guard is told of, at some time after the test's t0.
type event struct {
	account, ip string
	ok          bool
	at          time.Duration
}

// sprayFrom is one failure of account from each of n addresses.
func sprayFrom(account string, n int) []event {
	evs := make([]event, n)
	for i := range evs {
		evs[i].account, evs[i].ip = account, fmt.Sprintf("10.1.0.%d", i)
	}
	return evs
}

// TestLoginGuardBounded: an attacker with endless addresses and account
// names cannot grow the guard's maps past maxTracked.
func TestLoginGuardBounded(t *testing.T) {
	g := newLoginGuard(LoginLimits{BackoffAfter: 3, SprayAccounts: 4, AccountFailures: 6, BackoffMax: time.Second, Window: time.Minute})
	now := time.Now()
	for i := range maxTracked + 10 {
		g.fail(fmt.Sprintf("u%d@h", i), fmt.Sprintf("ip%d", i), now)
		g.succeed(fmt.Sprintf("v%d@h", i), fmt.Sprintf("ip%d", i), now)
	}
	if len(g.pairs) > maxTracked || len(g.accounts) > maxTracked || len(g.sprays) > maxTracked || len(g.good) > maxTracked {
		t.Errorf("sizes: pairs %d, accounts %d, sprays %d, good %d; want at most %d",
			len(g.pairs), len(g.accounts), len(g.sprays), len(g.good), maxTracked)
	}
	// One address spraying endless accounts keeps a bounded set.
	for i := range 1000 {
		g.fail(fmt.Sprintf("w%d@h", i), "spray", now)
	}
	if n := len(g.sprays["spray"].accounts); n > g.lim.SprayAccounts+32 {
		t.Errorf("one address holds %d accounts", n)
	}
}

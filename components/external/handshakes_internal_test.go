package external

import (
	"testing"
	"time"
)

// The handshake guard's waits, step by step on a fake clock: what one
// address's wrong handshakes cost it and others, what a right one
// clears, and what the component's known address keeps.
func TestHandshakeGuard(t *testing.T) {
	const (
		guesser   = "192.0.2.7:4000"
		neighbour = "192.0.2.7:4001" // the same address, another port
		other     = "198.51.100.9:4000"
		v6        = "[2001:db8::1]:4000"
		v6same64  = "[2001:db8::2]:4000"
	)
	lim := handshakeLimits{After: 2, Failures: 5, Max: 4 * time.Second, Window: time.Minute}
	type step struct {
		do     string // "fail", "ok", "wait" (advance the clock by d), or "" (just check)
		remote string
		d      time.Duration
		want   map[string]time.Duration // delay by remote after the step
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"wrong handshakes past the allowance wait 1s, 2s, 4s, then Max", []step{
			{do: "fail", remote: guesser, want: map[string]time.Duration{guesser: 0}},
			{do: "fail", remote: guesser, want: map[string]time.Duration{guesser: time.Second}},
			{do: "fail", remote: guesser, want: map[string]time.Duration{guesser: 2 * time.Second, neighbour: 2 * time.Second, other: 0}},
			{do: "fail", remote: guesser, want: map[string]time.Duration{guesser: 4 * time.Second}},
			{do: "fail", remote: guesser, want: map[string]time.Duration{guesser: 4 * time.Second}},
		}},
		{"a right handshake clears its address's count", []step{
			{do: "fail", remote: guesser},
			{do: "fail", remote: guesser},
			{do: "fail", remote: guesser, want: map[string]time.Duration{guesser: 2 * time.Second}},
			{do: "ok", remote: guesser, want: map[string]time.Duration{guesser: 0}},
		}},
		{"the window ends the count", []step{
			{do: "fail", remote: guesser},
			{do: "fail", remote: guesser, want: map[string]time.Duration{guesser: time.Second}},
			{do: "wait", d: time.Minute, want: map[string]time.Duration{guesser: 0}},
		}},
		{"an IPv6 /64 counts as one address", []step{
			{do: "fail", remote: v6},
			{do: "fail", remote: v6, want: map[string]time.Duration{v6same64: time.Second}},
		}},
		{"many addresses slow the unknown ones, not where the component authenticated", []step{
			{do: "ok", remote: other},
			{do: "fail", remote: "203.0.113.1:1"},
			{do: "fail", remote: "203.0.113.2:1"},
			{do: "fail", remote: "203.0.113.3:1"},
			{do: "fail", remote: "203.0.113.4:1", want: map[string]time.Duration{guesser: 0, other: 0}},
			{do: "fail", remote: "203.0.113.5:1", want: map[string]time.Duration{guesser: time.Second, other: 0}},
			{do: "fail", remote: "203.0.113.6:1", want: map[string]time.Duration{guesser: 2 * time.Second, other: 0, "203.0.113.6:2": 2 * time.Second}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newHandshakeGuard(lim)
			now := time.Unix(1e9, 0)
			for i, st := range tt.steps {
				switch st.do {
				case "fail":
					g.fail(st.remote, now)
				case "ok":
					g.succeed(st.remote, now)
				case "wait":
					now = now.Add(st.d)
				}
				for remote, want := range st.want {
					if got := g.delay(remote, now); got != want {
						t.Errorf("after step %d (%s %s): delay for %s = %v; want %v", i, st.do, st.remote, remote, got, want)
					}
				}
			}
		})
	}
}

// The guard remembers a bounded number of addresses.
func TestHandshakeGuardIsBounded(t *testing.T) {
	g := newHandshakeGuard(handshakeLimits{After: 1, Failures: 1 << 30, Max: time.Second, Window: time.Hour})
	now := time.Unix(1e9, 0)
	for i := range 3 * maxAddrs {
		remote := "10." + itoa(i>>16&255) + "." + itoa(i>>8&255) + "." + itoa(i&255) + ":1"
		g.fail(remote, now)
		g.succeed("11."+itoa(i>>16&255)+"."+itoa(i>>8&255)+"."+itoa(i&255)+":1", now)
	}
	if len(g.addrs) > maxAddrs || len(g.known) > maxAddrs {
		t.Errorf("%d addresses counted, %d known; want at most %d each", len(g.addrs), len(g.known), maxAddrs)
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

package clientaddr

import (
	"fmt"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestLimiter(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	l := NewLimiter(2, time.Minute, clock.now)
	type step struct {
		advance time.Duration
		fail    string // an address that fails, or ""
		check   string // an address whose block is checked
		blocked bool
		left    time.Duration // when blocked
	}
	steps := []struct {
		name string
		step
	}{
		{"an address without failures is free", step{check: "192.0.2.1:1000"}},
		{"one failure is under the limit", step{fail: "192.0.2.1:1000", check: "192.0.2.1:1001"}},
		{"the limit blocks it, whatever its port", step{advance: 10 * time.Second, fail: "192.0.2.1:1002", check: "192.0.2.1:9", blocked: true, left: 50 * time.Second}},
		{"another IPv4 address is free", step{check: "192.0.2.2:1000"}},
		{"an IPv4-mapped IPv6 address is the IPv4 one", step{check: "[::ffff:192.0.2.1]:1000", blocked: true, left: 50 * time.Second}},
		{"the block ends with the window", step{advance: 50 * time.Second, check: "192.0.2.1:1000"}},
		{"IPv6 failures count by /64", step{fail: "[2001:db8::1]:1000"}},
		{"a second address of the /64 reaches the limit", step{fail: "[2001:db8::2]:1000", check: "[2001:db8::ffff:1]:5", blocked: true, left: time.Minute}},
		{"another /64 is free", step{check: "[2001:db8:0:1::1]:5"}},
		{"an address that is not ip:port is never blocked", step{fail: "@unix", check: "@unix"}},
	}
	for _, st := range steps {
		clock.t = clock.t.Add(st.advance)
		if st.fail != "" {
			l.Fail(st.fail)
		}
		if st.check == "" {
			continue
		}
		left, blocked := l.Blocked(st.check)
		if blocked != st.blocked || (blocked && left != st.left) {
			t.Fatalf("%s: blocked(%s) = %v, %v; want %v, %v", st.name, st.check, left, blocked, st.left, st.blocked)
		}
	}

	t.Run("its memory is bounded, and expired windows are forgotten to make room", func(t *testing.T) {
		clock := &fakeClock{t: time.Unix(1_000_000, 0)}
		l := NewLimiter(1, time.Minute, clock.now)
		addr := func(i int) string { return fmt.Sprintf("10.%d.%d.%d:1", i>>16&255, i>>8&255, i&255) }
		for i := range MaxAddrs + 10 {
			l.Fail(addr(i))
		}
		if n := len(l.byAddr); n != MaxAddrs {
			t.Errorf("%d addresses remembered, want the bound %d", n, MaxAddrs)
		}
		if _, blocked := l.Blocked(addr(MaxAddrs + 5)); blocked {
			t.Error("an address past the bound was remembered")
		}
		clock.t = clock.t.Add(time.Minute)
		l.Fail("192.0.2.9:1")
		if _, blocked := l.Blocked("192.0.2.9:1"); !blocked || len(l.byAddr) != 1 {
			t.Errorf("after the window: blocked %v with %d addresses remembered; want the new one alone", blocked, len(l.byAddr))
		}
	})
}

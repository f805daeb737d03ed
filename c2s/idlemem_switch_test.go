package c2s_test

import (
	"fmt"
	"github.com/parley-im/parley/c2s"
	"runtime"
	"testing"
	"time"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// The goroutines that show which parts of the idle-memory machinery run.
const (
	sessionGoroutine = "c2s.(*Server).serveSession("
	pooledWriter     = "c2s.(*writers).run("
	epollPoller      = "c2s.(*epollPoller).run("
	sweeper          = "c2s.(*parker).sweep("
)

// machinery describes what of the idle-memory machinery runs now, for
// failure messages.
func machinery() string {
	return fmt.Sprintf("%d session goroutines, %d pooled writers, %d epoll pollers, %d sweepers",
		c2s.GoroutinesIn(sessionGoroutine), c2s.GoroutinesIn(pooledWriter), c2s.GoroutinesIn(epollPoller), c2s.GoroutinesIn(sweeper))
}

// TestParkAfterSwitchesTheIdleMemoryMachinery: with park_after = "0s" no
// part of the idle-memory machinery runs (no parking, no epoll set, no
// writer pool) at any moment of two sessions' lives, and everything a
// session does still works: login, messages both ways, whitespace
// keepalives holding a stream open past its idle timeout, and the idle
// timeout closing it. With park_after on, the same script runs with idle
// sessions parked.
func TestParkAfterSwitchesTheIdleMemoryMachinery(t *testing.T) {
	// Long enough that a keepalive every idle/8 keeps a stream open on
	// a machine whose scheduler stalls for a second (2 cores shared by
	// parallel test runs: 800 ms failed there).
	const idle = 2 * time.Second
	tests := []struct {
		name      string
		parkAfter time.Duration
		// check judges the machinery at a moment when both sessions are
		// idle, bound and open.
		check func() bool
	}{
		{"park_after 0s: off", 0, func() bool {
			return c2s.GoroutinesIn(sessionGoroutine) == 2 && c2s.GoroutinesIn(pooledWriter) == 0 &&
				c2s.GoroutinesIn(epollPoller) == 0 && c2s.GoroutinesIn(sweeper) == 0
		}},
		{"park_after 1ms: on", time.Millisecond, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.parkAfter > 0 && runtime.GOOS != "linux" {
				t.Skip("sessions park only on Linux")
			}
			s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) {
				c.C2S.ParkAfter.Duration = tt.parkAfter
				c.C2S.IdleTimeout.Duration = idle
			}))
			s.AddUser("alice@localhost", "pw")
			s.AddUser("bob@localhost", "pw")
			a := s.Login("alice@localhost", "pw", "a")
			b := s.Login("bob@localhost", "pw", "b")
			// exchange sends a message each way and waits for both.
			exchange := func(id string) {
				t.Helper()
				a.Send("<message to='%s' type='chat' id='%s-ab'><body>hi</body></message>", b.JID, id)
				b.Send("<message to='%s' type='chat' id='%s-ba'><body>hi</body></message>", a.JID, id)
				for _, c := range []struct {
					conn *parleytest.Conn
					want string
				}{{b, id + "-ab"}, {a, id + "-ba"}} {
					for {
						el := c.conn.Next()
						if el.Tag == "message" && el.SelectAttrValue("id", "") == c.want {
							break
						}
					}
				}
			}
			exchange("first")
			if tt.parkAfter > 0 {
				// Shown parked, so that the test is known to see parking
				// when there is some.
				deadline := time.Now().Add(10 * time.Second)
				for c2s.GoroutinesIn(sessionGoroutine) != 0 || c2s.GoroutinesIn(epollPoller) != 1 {
					if time.Now().After(deadline) {
						t.Fatalf("the idle sessions never parked: %s", machinery())
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			// Keepalives for three idle timeouts, the machinery looked at
			// between them; then messages: the streams stayed open.
			for range 24 {
				a.Send(" ")
				b.Send("\n")
				time.Sleep(idle / 8)
				if tt.check != nil && !tt.check() {
					t.Fatalf("with park_after %v: %s", tt.parkAfter, machinery())
				}
			}
			exchange("after-keepalives")
			if tt.check != nil && !tt.check() {
				t.Fatalf("with park_after %v, after messages: %s", tt.parkAfter, machinery())
			}
			// Silence: the idle timeout closes both streams.
			a.ExpectStreamError(xmpp.ConnectionTimeout)
			b.ExpectStreamError(xmpp.ConnectionTimeout)
		})
	}
}

package server_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
)

// goroutineStacks returns the stacks of all goroutines.
func goroutineStacks() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
}

// goroutineSummary counts the goroutines by the function each was
// started with, for a failure's message.
func goroutineSummary() string {
	counts := map[string]int{}
	for _, g := range strings.Split(goroutineStacks(), "\n\n") {
		if i := strings.LastIndex(g, "created by "); i >= 0 {
			line, _, _ := strings.Cut(g[i+len("created by "):], "\n")
			counts[line]++
		}
	}
	var b strings.Builder
	for f, c := range counts {
		fmt.Fprintf(&b, "%4d %s\n", c, f)
	}
	return b.String()
}

// sessionGoroutines counts the goroutines that serve a c2s session.
func sessionGoroutines() int { return strings.Count(goroutineStacks(), "c2s.(*Session).serve(") }

// sessionWriters counts the goroutines inside a session's writer loop.
func sessionWriters() int { return strings.Count(goroutineStacks(), "c2s.(*Session).writeLoop(") }

// TestIdleSessionsHoldFewGoroutines: a bound session that has nothing to
// write keeps only its reader goroutine, and none once it has parked; its
// writer loop runs while stanzas wait and returns when the queue is empty
// (issue #6: memory per idle connection). Parked sessions still get and
// send stanzas. The test clients run no goroutines of their own.
func TestIdleSessionsHoldFewGoroutines(t *testing.T) {
	const n = 10
	tests := []struct {
		name      string
		parkAfter time.Duration
		readers   int // reader goroutines once the sessions are idle
	}{
		{"sessions that do not park keep one reader each", 0, n},
		{"parked sessions keep none", time.Millisecond, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) { c.C2S.ParkAfter.Duration = tt.parkAfter }))
			for i := range n {
				s.AddUser(fmt.Sprintf("idle%d@localhost", i), "pw")
			}
			before := runtime.NumGoroutine()
			conns := make([]*parleytest.Conn, n)
			for i := range conns {
				c := s.Login(fmt.Sprintf("idle%d@localhost", i), "pw", "r")
				c.Send("<presence/>")
				c.Sync()
				conns[i] = c
			}
			// A message each, so that every session has written since bind.
			for i, c := range conns {
				c.Send("<message to='%s' type='chat'><body>hi</body></message>", conns[(i+1)%n].JID)
			}
			for _, c := range conns {
				c.Sync()
			}
			// Goroutines that finish the work above (a writer loop
			// returning, an archive write, a timer's callback) may still be
			// on their way out on a loaded machine: wait for them.
			settled := func() bool {
				return sessionGoroutines() == tt.readers && sessionWriters() == 0 &&
					runtime.NumGoroutine()-before < tt.readers+n
			}
			deadline := time.Now().Add(5 * time.Second)
			for !settled() && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if got := sessionGoroutines(); got != tt.readers {
				t.Fatalf("%d idle sessions are served by %d reader goroutines, want %d", n, got, tt.readers)
			}
			if w := sessionWriters(); w > 0 {
				t.Fatalf("%d idle sessions keep %d writer loops running", n, w)
			}
			// The server's waiting writer goroutines are shared, not one
			// per session: fewer than the sessions here.
			if extra := runtime.NumGoroutine() - before; extra >= tt.readers+n {
				t.Fatalf("%d idle sessions run %d goroutines:\n%s", n, extra, goroutineSummary())
			}
			// Idle sessions, parked or not, still carry messages both ways.
			for i, c := range conns {
				c.Send("<message to='%s' type='chat' id='again%d'><body>again</body></message>", conns[(i+1)%n].JID, i)
			}
			for i, c := range conns {
				want := fmt.Sprintf("again%d", (i+n-1)%n)
				for {
					el := c.Next()
					if el.Tag == "message" && el.SelectAttrValue("id", "") == want {
						break
					}
				}
			}
		})
	}
}

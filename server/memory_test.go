package server_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

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

// sessionGoroutines counts the goroutines that serve a c2s session.
func sessionGoroutines() int { return strings.Count(goroutineStacks(), "c2s.(*Session).serve(") }

// sessionWriters counts the goroutines inside a session's writer loop.
func sessionWriters() int { return strings.Count(goroutineStacks(), "c2s.(*Session).writeLoop(") }

// TestIdleSessionsHaveOneGoroutineEach: a bound session that has nothing
// to write keeps only its reader goroutine; its writer loop runs while
// stanzas wait and returns when the queue is empty (issue #6: memory per
// idle connection). The test clients run no goroutines of their own.
func TestIdleSessionsHaveOneGoroutineEach(t *testing.T) {
	const n = 10
	s := parleytest.Start(t)
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
	if got := sessionGoroutines(); got != n {
		t.Fatalf("%d sessions are served by %d reader goroutines", n, got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for sessionWriters() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if w := sessionWriters(); w > 0 {
		t.Fatalf("%d idle sessions keep %d writer loops running", n, w)
	}
	// The server's waiting writer goroutines are shared, not one per
	// session: fewer than the sessions here.
	if extra := runtime.NumGoroutine() - before; extra >= 2*n {
		t.Fatalf("%d idle sessions run %d goroutines", n, extra)
	}
}

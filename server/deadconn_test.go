package server_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// blockedWriters counts the session writers blocked in a write: their
// client does not read, and the socket buffers between are full.
func blockedWriters() int {
	n := 0
	for _, g := range strings.Split(goroutineStacks(), "\n\n") {
		if strings.Contains(g, "c2s.(*Session).writeLoop(") && strings.Contains(g, "waitWrite") {
			n++
		}
	}
	return n
}

// waitUntil polls cond; the guard only turns a hang into a failure.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	guard := time.Now().Add(parleytest.Timeout)
	for !cond() {
		if time.Now().After(guard) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// reset ends c's TCP connection with a reset, as a client that crashed
// with unread data does: the server's next write fails at once.
func reset(t *testing.T, c *parleytest.Conn) {
	t.Helper()
	tc, ok := c.Conn.(*tls.Conn)
	if !ok {
		t.Fatalf("%s: not a TLS connection", c.JID)
	}
	raw := tc.NetConn().(*net.TCPConn)
	if err := raw.SetLinger(0); err != nil {
		t.Fatal(err)
	}
	raw.Close()
}

// stuck makes alice's messages to to pile up in the queue of a session
// whose client (the one to belongs to) never reads: she sends large
// messages until that session's writer is blocked on full socket buffers,
// then a megabyte more, so that the writer stays blocked on a full
// window: what is sent after this returns waits in the queue. (Should the
// socket ever take it after all, the tests fail; they cannot pass wrongly.)
func stuck(t *testing.T, alice *parleytest.Conn, to string) {
	t.Helper()
	body := strings.Repeat("x", 32<<10)
	fill := func(round, n int) {
		for i := range n {
			alice.Send("<message to='%s' type='chat' id='fill-%d-%d'><body>%s</body></message>", to, round, i, body)
		}
		if errs := imErrors(alice.UntilSync()); len(errs) > 0 {
			t.Fatalf("while filling:%s", alice.Dump(errs))
		}
	}
	for round := 0; blockedWriters() == 0; round++ {
		if round == 1000 {
			t.Fatal("the writer never blocks")
		}
		fill(round, 16)
	}
	fill(-1, 32)
	waitUntil(t, "the writer is blocked", func() bool { return blockedWriters() == 1 })
}

// TestStanzasQueuedForADeadConnectionAreNotLost: when a client's TCP
// connection dies with stanzas waiting in its session's queue, the
// messages go where they would go had the session already gone (the
// user's other resource, a new login with the same resource, or offline
// storage for the next login) and an iq request gets an error answer
// (RFC 6121 §8.5.3.2) — instead of vanishing with the connection.
func TestStanzasQueuedForADeadConnectionAreNotLost(t *testing.T) {
	tests := []struct {
		name string
		to   string // where alice writes: bob/phone or bob's bare JID
		desk bool   // bob also has an available resource of lower priority
		// conflict: bob logs in again as phone while the old phone is
		// stuck, before its connection dies.
		conflict bool
	}{
		{name: "to the full JID, delivered at the next login", to: "bob@localhost/phone"},
		{name: "to the full JID, to the other resource", to: "bob@localhost/phone", desk: true},
		{name: "to the bare JID, to the other resource", to: "bob@localhost", desk: true},
		{name: "to the full JID, to the new login with the same resource", to: "bob@localhost/phone", conflict: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) {
				c.Limits.Rate = 0 // alice fills socket buffers quickly
			}))
			imUsers(t, s, "alice", "bob")
			alice := imOnline(t, s, "alice", "a", "")
			phone := imOnline(t, s, "bob", "phone", "<priority>5</priority>")
			var other *parleytest.Conn
			if tt.desk {
				other = imOnline(t, s, "bob", "desk", "<priority>1</priority>")
			}

			stuck(t, alice, tt.to)
			// These wait in the stuck session's queue: its writer is
			// blocked, and never takes them into the socket.
			tail := []string{"tail-1", "tail-2", "tail-3"}
			for _, id := range tail {
				alice.Send("<message to='%s' type='chat' id='%s'><body>%s</body></message>", tt.to, id, id)
			}
			alice.Send("<iq to='bob@localhost/phone' type='get' id='ask'><query xmlns='jabber:iq:version'/></iq>")
			if errs := imErrors(alice.UntilSync()); len(errs) > 0 {
				t.Fatalf("refused while queued:%s", alice.Dump(errs))
			}
			if tt.conflict {
				other = imLogin(t, s, "bob", "phone")
			}

			reset(t, phone)

			offline := other == nil
			if offline {
				// Bob has no session left: the messages wait in offline
				// storage for his next login. The dead session is gone
				// once it handed them back.
				waitUntil(t, "the dead session ends", func() bool { return s.Sessions() == 1 })
				other = imLogin(t, s, "bob", "phone")
				other.Send("<presence/>")
			}
			want := map[string]bool{"tail-1": true, "tail-2": true, "tail-3": true}
			if tt.conflict {
				// The iq was for bob/phone, which is bound again.
				want["ask"] = true
			}
			var order []string
			for len(want) > 0 {
				st := other.NextStanzaFor(fmt.Sprintf("the undelivered stanzas %v", want))
				if !want[st.ID] {
					continue // presence, fill messages (some were in the socket when it died)
				}
				delete(want, st.ID)
				if st.Kind != xmpp.KindMessage {
					continue
				}
				order = append(order, st.ID)
				if d := xmpp.Child(st.El, xmpp.NSDelay, "delay"); (d != nil) != offline {
					t.Errorf("%s: want a delay stamp only from offline storage", other.String(st.El))
				}
			}
			if got := strings.Join(order, " "); got != strings.Join(tail, " ") {
				t.Errorf("the messages came in the order %s, want %s", got, strings.Join(tail, " "))
			}
			if !tt.conflict {
				// No session had bob/phone when the iq came back.
				ans, _ := alice.WaitFor("the answer to the iq", func(st *xmpp.Stanza) bool { return st.ID == "ask" })
				alice.ExpectError(ans, xmpp.ServiceUnavailable, "the iq to the dead session")
			}
		})
	}
}

// TestQueuedStanzasSurviveAShutdown: the server shuts down while a
// client's queue is stuck, and the client's connection dies before its last
// write, or stays but never reads: the queued messages are in offline
// storage when the server comes back (shared/DESIGN.md: shutdown flushes
// queues to offline storage), because the store closes only once every
// session has handed back what it could not write, and a client that does
// not read holds its writer for only half the time Shutdown has, not for
// the write timeout (30 s).
func TestQueuedStanzasSurviveAShutdown(t *testing.T) {
	tests := []struct {
		name string
		// client acts on the stuck client once the sessions are closing.
		client func(t *testing.T, c *parleytest.Conn)
	}{
		{"the connection dies", func(t *testing.T, c *parleytest.Conn) { reset(t, c) }},
		{"the client stays and never reads", func(t *testing.T, c *parleytest.Conn) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			onDisk := parleytest.WithConfig(func(c *conf.Config) {
				c.Database = filepath.Join(dir, "parley.db")
				c.DataDir = dir
				c.Limits.Rate = 0
			})
			s1 := parleytest.Start(t, onDisk)
			imUsers(t, s1, "alice", "bob")
			alice := imOnline(t, s1, "alice", "a", "")
			phone := imOnline(t, s1, "bob", "phone", "")
			stuck(t, alice, "bob@localhost/phone")
			alice.Send("<message to='bob@localhost/phone' type='chat' id='tail'><body>tail</body></message>")
			if errs := imErrors(alice.UntilSync()); len(errs) > 0 {
				t.Fatalf("refused while queued:%s", alice.Dump(errs))
			}

			done := make(chan error, 1)
			go func() {
				// Well under the 30 s write timeout.
				ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
				defer cancel()
				done <- s1.Shutdown(ctx)
			}()
			alice.ExpectStreamError(xmpp.SystemShutdown) // the sessions are closing
			tt.client(t, phone)
			if err := <-done; err != nil {
				t.Fatal(err)
			}

			s2 := parleytest.Start(t, onDisk)
			bob := imLogin(t, s2, "bob", "phone")
			bob.Send("<presence/>")
			for _, st := range imMessages(bob.UntilSync()) {
				if st.ID == "tail" {
					imOfflineDelay(t, bob, st)
					return
				}
			}
			t.Fatal("the message queued for the stuck client is not in offline storage after the restart")
		})
	}
}

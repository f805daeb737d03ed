package muc_test

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// TestRoomFanOut: in a room of n occupants, every occupant gets every
// message of the room, in order; then one occupant stops reading. Its
// queue is filled first (private messages, cheaper than filling it with
// the room's traffic, which would cost every occupant as much); then the
// room's messages go on reaching the n-1 others, each of them, while the
// stuck one's copies are refused by its own queue (the router's
// slow-consumer count), and it stays in the room: a full queue is not a
// reason to remove it. Every occupant but the sender reads on a goroutine
// of its own from its join on, as a client would, so that the joins'
// presences (n²/2 of them) do not wait for the test.
func TestRoomFanOut(t *testing.T) {
	for _, c := range []struct {
		name      string
		occupants int
	}{
		{"100 occupants", 100},
		{"1000 occupants", 1000},
	} {
		t.Run(c.name, func(t *testing.T) {
			if testing.Short() {
				t.Skip(c.occupants, "logins")
			}
			if raceEnabled && c.occupants > 100 {
				// Minutes under the race detector (400 s of a CI run);
				// `make test` runs it without (the 100-occupant case
				// runs under it).
				t.Skip("1,000 occupants without the race detector only")
			}
			roomFanOut(t, c.occupants)
		})
	}
}

// roomReader reads an occupant's stream on a goroutine and passes on the
// bodies of the room's groupchat messages, in order, until the stream
// fails, or, with stop > 0, until it has passed on stop of them: then it
// stops reading.
type roomReader struct {
	c      *parleytest.Conn
	stop   int
	bodies chan string
	err    chan error
}

func newRoomReader(c *parleytest.Conn, stop int) *roomReader {
	r := &roomReader{c: c, stop: stop, bodies: make(chan string, 100), err: make(chan error, 1)}
	go r.run()
	return r
}

func (r *roomReader) run() {
	for n := 0; r.stop == 0 || n < r.stop; {
		el, err := r.c.NextErr()
		if err != nil {
			r.err <- err
			return
		}
		if st, err := xmpp.NewStanza(el); err == nil && st.Type == "groupchat" && parleytest.Body(st) != "" {
			r.bodies <- parleytest.Body(st)
			n++
		}
	}
}

// expect fails t unless r passes on the bodies "message from" to
// "message to-1", in order, within parleytest.Timeout.
func (r *roomReader) expect(t *testing.T, who string, from, to int) {
	t.Helper()
	deadline := time.After(parleytest.Timeout)
	for i := from; i < to; i++ {
		select {
		case b := <-r.bodies:
			if b != fmt.Sprintf("message %d", i) {
				t.Fatalf("%s got %q; want message %d", who, b, i)
			}
		case err := <-r.err:
			t.Fatalf("%s: %v, waiting for message %d", who, err, i)
		case <-deadline:
			t.Fatalf("%s has no message %d after %v", who, i, parleytest.Timeout)
		}
	}
}

func roomFanOut(t *testing.T, n int) {
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("u%03d", i)
	}
	s := startMUC(t, users, parleytest.WithConfig(func(c *conf.Config) {
		c.Limits.QueueBytes = conf.MiB
	}))
	conns := make([]*parleytest.Conn, n)
	for i, u := range users {
		conns[i] = login(t, s, u, "r")
	}
	const msgs = 20 // a phase's messages
	sender := conns[0]
	create(t, sender, "big", users[0])
	readers := make([]*roomReader, n)
	for i := 1; i < n; i++ {
		join(t, conns[i], "big", users[i], "<history maxstanzas='0'/>")
		// The last to join gets the fewest presences: it is the one
		// that stops reading, after the first phase.
		stop := 0
		if i == n-1 {
			stop = msgs
		}
		readers[i] = newRoomReader(conns[i], stop)
	}
	sender.UntilSync() // the joins' presences

	// Everyone reads: every occupant gets every message, in order.
	for i := range msgs {
		say(sender, "big", fmt.Sprintf("a%d", i), fmt.Sprintf("message %d", i))
	}
	for i := range msgs {
		if b := parleytest.Body(nextGroupchat(t, sender)); b != fmt.Sprintf("message %d", i) {
			t.Fatalf("the sender got %q back; want message %d", b, i)
		}
	}
	for i, r := range readers[1:] {
		r.expect(t, users[i+1], 0, msgs)
	}
	slow := conns[n-1]
	var nc net.Conn = slow.Conn
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096) // little waits in the kernel
	}

	// Big private messages until its queue refuses one, then smaller ones
	// until it refuses one of those too: the queue is then full to within
	// a room message's size.
	pms := 0
	for _, size := range []int{32000, 100} {
		body, before := strings.Repeat("x", size), s.Router().SlowConsumers()
		for deadline := time.Now().Add(parleytest.Timeout); s.Router().SlowConsumers() == before; pms++ {
			if time.Now().After(deadline) {
				t.Fatalf("after %d private messages the stuck occupant's queue never filled", pms)
			}
			sender.Send("<message to='%s' type='chat'><body>%s</body></message>", roomJID("big", users[n-1]), body)
			if pms%10 == 9 {
				sender.UntilSync()
			}
		}
	}
	refused := s.Router().SlowConsumers()

	// One stuck: the others get every message still.
	for i := msgs; i < 2*msgs; i++ {
		say(sender, "big", fmt.Sprintf("a%d", i), fmt.Sprintf("message %d", i))
	}
	for i := range msgs {
		if b := parleytest.Body(nextGroupchat(t, sender)); b != fmt.Sprintf("message %d", msgs+i) {
			t.Fatalf("the sender got %q back; want message %d", b, msgs+i)
		}
	}
	for i, r := range readers[1 : n-1] {
		r.expect(t, users[i+1], msgs, 2*msgs)
	}
	if got := s.Router().SlowConsumers() - refused; got < msgs/2 {
		t.Errorf("the stuck occupant's queue refused %d of the room's %d messages; want most", got, msgs)
	}
	for _, st := range sender.UntilSync() {
		if st.Kind == xmpp.KindPresence && st.Type == "unavailable" {
			t.Errorf("an occupant left: %s", sender.String(st.El))
		}
	}
	t.Logf("%d private messages filled the stuck queue; %d of %d room messages refused by it",
		pms, s.Router().SlowConsumers()-refused, msgs)
}

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

// TestSlowOccupant: in a room of 100 occupants, one stops reading. Its
// queue is filled first (private messages, cheaper than filling it with
// the room's traffic, which would cost every occupant as much); then the
// room's messages go on reaching the 99 others, each of them, while the
// stuck one's copies are refused by its own queue (the router's
// slow-consumer count), and it stays in the room: a full queue is not a
// reason to remove it.
func TestSlowOccupant(t *testing.T) {
	if testing.Short() {
		t.Skip("100 logins")
	}
	const n = 100
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("u%02d", i)
	}
	s := startMUC(t, users, parleytest.WithConfig(func(c *conf.Config) {
		c.Limits.Queue = 150 // above the joins' presences, one per occupant
		c.Limits.QueueBytes = conf.MiB
	}))
	conns := make([]*parleytest.Conn, n)
	for i, u := range users {
		conns[i] = login(t, s, u, "r")
	}
	create(t, conns[0], "big", users[0])
	for i := 1; i < n; i++ {
		join(t, conns[i], "big", users[i], "<history maxstanzas='0'/>")
	}
	slow, sender := conns[n-1], conns[0]
	var nc net.Conn = slow.Conn
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096) // little waits in the kernel
	}
	for _, c := range conns[:n-1] {
		c.UntilSync() // the joins' presences
	}

	big := strings.Repeat("x", 32000)
	pms := 0
	for deadline := time.Now().Add(parleytest.Timeout); s.Router().SlowConsumers() == 0; pms++ {
		if time.Now().After(deadline) {
			t.Fatalf("after %d private messages the stuck occupant's queue never filled", pms)
		}
		sender.Send("<message to='%s' type='chat'><body>%s</body></message>", roomJID("big", users[n-1]), big)
		if pms%10 == 9 {
			sender.UntilSync()
		}
	}
	refused := s.Router().SlowConsumers()

	const msgs = 50
	for i := range msgs {
		say(sender, "big", fmt.Sprintf("g%d", i), fmt.Sprintf("message %d", i))
	}
	for i, c := range conns[:n-1] {
		for j := range msgs {
			st, _ := c.WaitFor(fmt.Sprintf("message %d", j), func(st *xmpp.Stanza) bool {
				return st.Type == "groupchat" && parleytest.Body(st) != ""
			})
			if b := parleytest.Body(st); b != fmt.Sprintf("message %d", j) {
				t.Fatalf("%s got %q; want message %d", users[i], b, j)
			}
		}
	}
	if got := s.Router().SlowConsumers() - refused; got < msgs/2 {
		t.Errorf("the stuck occupant's queue refused %d of the room's %d messages; want most", got, msgs)
	}
	for _, st := range conns[1].UntilSync() {
		if st.Kind == xmpp.KindPresence && st.Type == "unavailable" {
			t.Errorf("an occupant left: %s", conns[1].String(st.El))
		}
	}
	t.Logf("%d private messages of %d bytes filled the stuck queue; %d of %d room messages refused by it",
		pms, len(big), s.Router().SlowConsumers()-refused, msgs)
}

package carbons_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/server/mod/carbons"
	"github.com/parley-im/parley/xmpp"
)

// what tells what one session got of a message: "" (nothing), "original",
// "sent" or "received" (a carbon, checked to be well formed and to carry
// the message whose body is body).
func what(t *testing.T, c *parleytest.Conn, got []*xmpp.Stanza, body string) string {
	t.Helper()
	var kinds []string
	for _, st := range got {
		if st.Kind != xmpp.KindMessage {
			continue
		}
		if parleytest.Body(st) == body {
			kinds = append(kinds, "original")
			if xmpp.Child(st.El, carbons.NS, "private") != nil {
				t.Errorf("%s got <private/> with the message: %s", c.JID, c.String(st.El))
			}
			continue
		}
		for _, dir := range []string{"sent", "received"} {
			d := xmpp.Child(st.El, carbons.NS, dir)
			if d == nil {
				continue
			}
			fwd := xmpp.Child(d, carbons.NSForward, "forwarded")
			var inner *xmpp.Stanza
			if fwd != nil && len(fwd.ChildElements()) == 1 {
				inner, _ = xmpp.NewStanza(fwd.ChildElements()[0])
			}
			switch {
			case inner == nil || inner.El.SelectElement("body") == nil || inner.El.SelectElement("body").Text() != body:
				t.Errorf("%s: a carbon without the message %q: %s", c.JID, body, c.String(st.El))
			case st.From != c.JID.Bare() || st.To != c.JID:
				t.Errorf("%s: a carbon from %s to %s, want from the bare JID to the session", c.JID, st.From, st.To)
			case xmpp.NS(fwd.ChildElements()[0]) != "jabber:client":
				t.Errorf("%s: the forwarded message is not in jabber:client: %s", c.JID, c.String(st.El))
			}
			kinds = append(kinds, dir)
		}
	}
	return strings.Join(kinds, "+")
}

// TestCarbons: XEP-0280 §6–8 on alice's three resources: phone and desk
// enabled carbons, tab did not; bob writes to alice and she to him.
func TestCarbons(t *testing.T) {
	s := parleytest.Start(t)
	s.AddUser("alice@localhost", "a")
	s.AddUser("bob@localhost", "b")
	bob := s.Login("bob@localhost", "b", "x")
	alice := map[string]*parleytest.Conn{}
	prio := map[string]int{"phone": 0, "desk": -1, "tab": 0}
	for _, r := range []string{"phone", "desk", "tab"} {
		c := s.Login("alice@localhost", "a", r)
		if r != "tab" {
			c.ExpectResult(c.IQ("set", "", "<enable xmlns='"+carbons.NS+"'/>"), r+" enabling carbons")
			// Twice is no mistake (§10.1).
			c.ExpectResult(c.IQ("set", "", "<enable xmlns='"+carbons.NS+"'/>"), r+" enabling carbons again")
		}
		c.Send("<presence><priority>%d</priority></presence>", prio[r])
		alice[r] = c
	}
	bob.Send("<presence/>")

	tests := []struct {
		name string
		// from sends msg (a format with %s for the body) to to.
		from, to, msg string
		want          map[string]string // per alice resource
	}{
		{"sent", "phone", "bob@localhost", "<message type='chat'><body>%s</body></message>",
			map[string]string{"phone": "", "desk": "sent", "tab": ""}},
		{"sent from a resource without carbons", "tab", "bob@localhost", "<message type='chat'><body>%s</body></message>",
			map[string]string{"phone": "sent", "desk": "sent", "tab": ""}},
		{"sent normal with a body", "phone", "bob@localhost", "<message><body>%s</body></message>",
			map[string]string{"phone": "", "desk": "sent", "tab": ""}},
		{"sent headline", "phone", "bob@localhost", "<message type='headline'><body>%s</body></message>",
			map[string]string{"phone": "", "desk": "", "tab": ""}},
		{"sent private", "phone", "bob@localhost", "<message type='chat'><body>%s</body><private xmlns='urn:xmpp:carbons:2'/></message>",
			map[string]string{"phone": "", "desk": "", "tab": ""}},
		{"sent no-copy", "phone", "bob@localhost", "<message type='chat'><body>%s</body><no-copy xmlns='urn:xmpp:hints'/></message>",
			map[string]string{"phone": "", "desk": "", "tab": ""}},
		{"received to a full JID", "bob", "alice@localhost/phone", "<message type='chat'><body>%s</body></message>",
			map[string]string{"phone": "original", "desk": "received", "tab": ""}},
		{"received to the bare JID", "bob", "alice@localhost", "<message type='chat'><body>%s</body></message>",
			// phone and tab have the highest priority and get it;
			// desk (-1) gets a carbon.
			map[string]string{"phone": "original", "desk": "received", "tab": "original"}},
		{"received to a resource that is gone", "bob", "alice@localhost/gone", "<message type='chat'><body>%s</body></message>",
			map[string]string{"phone": "original", "desk": "received", "tab": "original"}},
		{"received private", "bob", "alice@localhost/phone", "<message type='chat'><body>%s</body><private xmlns='urn:xmpp:carbons:2'/></message>",
			map[string]string{"phone": "original", "desk": "", "tab": ""}},
		{"received normal without a body", "bob", "alice@localhost/phone", "<message><thread>%s</thread></message>",
			map[string]string{"phone": "", "desk": "", "tab": ""}},
		{"received through a room", "bob", "alice@localhost/phone", "<message type='chat'><body>%s</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>",
			map[string]string{"phone": "original", "desk": "", "tab": ""}},
		{"to herself", "phone", "alice@localhost/tab", "<message type='chat'><body>%s</body></message>",
			// desk gets both sides; tab the message.
			map[string]string{"phone": "", "desk": "sent+received", "tab": "original"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := fmt.Sprintf("message %d", i)
			from := bob
			if tt.from != "bob" {
				from = alice[tt.from]
			}
			from.Send(strings.Replace(tt.msg, "<message", "<message to='%s'", 1), tt.to, body)
			from.Sync()
			for r, c := range alice {
				if got := what(t, c, c.UntilSync(), body); got != tt.want[r] {
					t.Errorf("%s got %q, want %q", r, got, tt.want[r])
				}
			}
			bob.UntilSync()
		})
	}

	t.Run("disabled", func(t *testing.T) {
		desk := alice["desk"]
		desk.ExpectResult(desk.IQ("set", "", "<disable xmlns='"+carbons.NS+"'/>"), "disabling carbons")
		alice["phone"].Send("<message to='bob@localhost' type='chat'><body>after</body></message>")
		alice["phone"].Sync()
		if got := what(t, desk, desk.UntilSync(), "after"); got != "" {
			t.Errorf("desk got %q after disabling carbons", got)
		}
	})
	t.Run("for another account", func(t *testing.T) {
		bob.ExpectError(bob.IQ("set", "alice@localhost", "<enable xmlns='"+carbons.NS+"'/>"), xmpp.NotAllowed, "bob enabling alice's carbons")
	})
}

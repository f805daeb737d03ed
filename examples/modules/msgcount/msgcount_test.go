package msgcount_test

import (
	"slices"
	"testing"

	"github.com/parley-im/parley/examples/modules/msgcount"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// TestToyModuleEndToEnd: a module registered from outside server/, with
// a message handler and an iq handler, works in a real server through
// real client streams, and the messages it watches still arrive.
func TestToyModuleEndToEnd(t *testing.T) {
	_, alice, bob := twoAvailable(t)

	// bob sends three messages: to the bare JID, to the full JID, and to
	// a resource that is not there (which falls back to the bare JID,
	// RFC 6121 §8.5.3.2.1, and must be counted once).
	for i, to := range []string{"alice@localhost", "alice@localhost/desk", "alice@localhost/gone"} {
		bob.Send("<message to='%s' type='chat' id='m%d'><body>hi</body></message>", to, i)
		if st := nextMessage(alice); st.ID != "m"+string(rune('0'+i)) {
			t.Fatalf("alice got %s, want message m%d", alice.String(st.El), i)
		}
	}
	alice.Send("<message to='bob@localhost' type='chat' id='r1'><body>hello</body></message>")
	if st := nextMessage(bob); st.ID != "r1" {
		t.Fatalf("bob got %s, want r1", bob.String(st.El))
	}

	tests := []struct {
		name, who, iq string
		want          map[string]string // attributes of <count/>; nil for an error
		condition     string
	}{
		{"alice asks without to", "alice", "<iq type='get' id='c1'><count xmlns='urn:example:msgcount'/></iq>",
			map[string]string{"sent": "1", "received": "3"}, ""},
		{"bob asks his bare JID", "bob", "<iq type='get' id='c2' to='bob@localhost'><count xmlns='urn:example:msgcount'/></iq>",
			map[string]string{"sent": "3", "received": "1"}, ""},
		{"bob asks alice's", "bob", "<iq type='get' id='c3' to='alice@localhost'><count xmlns='urn:example:msgcount'/></iq>",
			nil, "forbidden"},
		{"a set is not handled", "alice", "<iq type='set' id='c4'><count xmlns='urn:example:msgcount'/></iq>",
			nil, "service-unavailable"},
	}
	conns := map[string]*parleytest.Conn{"alice": alice, "bob": bob}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := conns[tt.who]
			c.Send("%s", tt.iq)
			st := c.NextStanza()
			for st.Kind != xmpp.KindIQ {
				st = c.NextStanza()
			}
			if tt.want == nil {
				if st.Type != "error" || st.El.FindElement("error/"+tt.condition) == nil {
					t.Fatalf("got %s, want a %s error", c.String(st.El), tt.condition)
				}
				return
			}
			q := st.El.FindElement("count")
			if st.Type != "result" || q == nil || xmpp.NS(q) != msgcount.NS {
				t.Fatalf("got %s, want a count result", c.String(st.El))
			}
			for k, v := range tt.want {
				if got := q.SelectAttrValue(k, ""); got != v {
					t.Errorf("%s = %q, want %q (%s)", k, got, v, c.String(st.El))
				}
			}
		})
	}

	t.Run("the server's disco#info lists the feature", func(t *testing.T) {
		alice.Send("<iq to='localhost' type='get' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
		st := alice.NextStanza()
		var got []string
		for _, f := range st.El.FindElements("query/feature") {
			got = append(got, f.SelectAttrValue("var", ""))
		}
		if !slices.Contains(got, msgcount.NS) {
			t.Fatalf("features %q lack %s", got, msgcount.NS)
		}
	})
}

// twoAvailable starts a server with alice and bob logged in (resources
// desk and phone) and available.
func twoAvailable(t *testing.T) (s *parleytest.Server, alice, bob *parleytest.Conn) {
	t.Helper()
	s = parleytest.Start(t)
	s.AddUser("alice@localhost", "a")
	s.AddUser("bob@localhost", "b")
	alice = s.Login("alice@localhost", "a", "desk")
	bob = s.Login("bob@localhost", "b", "phone")
	for _, c := range []*parleytest.Conn{alice, bob} {
		c.Send("<presence/>")
		c.Sync()
	}
	return s, alice, bob
}

// nextMessage returns the next message c gets, past presence and iqs.
func nextMessage(c *parleytest.Conn) *xmpp.Stanza {
	st, _ := c.WaitFor("a message", func(st *xmpp.Stanza) bool { return st.Kind == xmpp.KindMessage })
	return st
}

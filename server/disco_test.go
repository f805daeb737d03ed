package server_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/server/local"
)

func TestServerDiscoShowsContactsAndComponents(t *testing.T) {
	s := parleytest.Start(t,
		parleytest.WithHost("localhost", ""),
		parleytest.WithBot("bots.localhost", "http://127.0.0.1:1/", nil),
		parleytest.WithConfig(func(c *conf.Config) {
			local.LocalOptionsOf(&c.Hosts[0]).Contact = local.Contact{Admin: []string{"xmpp:admin@localhost", "mailto:admin@example.com"}, Abuse: []string{"mailto:abuse@example.com"}}
		}))
	s.AddUser("alice@localhost", "a")
	alice := s.Login("alice@localhost", "a", "x")

	t.Run("disco#items lists the component hosts", func(t *testing.T) {
		alice.Send("<iq to='localhost' type='get' id='items'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
		st := alice.NextStanza()
		items := st.El.FindElements("query/item")
		if len(items) != 1 || items[0].SelectAttrValue("jid", "") != "bots.localhost" {
			t.Fatalf("got %s, want one item bots.localhost", alice.String(st.El))
		}
	})

	t.Run("disco#info carries the XEP-0157 contact addresses", func(t *testing.T) {
		alice.Send("<iq to='localhost' type='get' id='info'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
		st := alice.NextStanza()
		got := map[string]string{}
		for _, f := range st.El.FindElements("query/x/field") {
			var vals []string
			for _, v := range f.SelectElements("value") {
				vals = append(vals, v.Text())
			}
			got[f.SelectAttrValue("var", "")] = strings.Join(vals, " ")
		}
		want := map[string]string{
			"FORM_TYPE":       "http://jabber.org/network/serverinfo",
			"admin-addresses": "xmpp:admin@localhost mailto:admin@example.com",
			"abuse-addresses": "mailto:abuse@example.com",
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %q, want %q (form %v)", k, got[k], v, got)
			}
		}
		if len(got) != len(want) {
			t.Errorf("fields %v, want exactly %v", got, want)
		}
	})

}

// TestReconnectWhileTheOldSessionDrops logs a user in again while the
// previous connection drops, many times: the new session must always be
// reachable. (The race this was written for, a bind joining an account
// that the old session's unbind is removing, has a window far shorter
// than a login and is not reliably hit here; Bind's locking rules it out.)
func TestReconnectWhileTheOldSessionDrops(t *testing.T) {
	s := parleytest.Start(t)
	s.AddUser("alice@localhost", "a")
	s.AddUser("bob@localhost", "b")
	bob := s.Login("bob@localhost", "b", "desk")
	old := s.Login("alice@localhost", "a", "phone-0")
	for i := 1; i <= 30; i++ {
		done := make(chan struct{})
		go func() { old.Conn.Close(); close(done) }()
		res := "phone-" + strings.Repeat("x", i%3) + string(rune('a'+i%26))
		next := s.Login("alice@localhost", "a", res)
		<-done
		bob.Send("<message to='%s' type='chat' id='r%d'><body>still you?</body></message>", next.JID, i)
		st := next.NextStanza()
		if st.ID != "r"+strconv.Itoa(i) {
			t.Fatalf("round %d: got %s", i, next.String(st.El))
		}
		old = next
	}
}

func TestLastActivityAfterTheLastSessionEnds(t *testing.T) {
	s := parleytest.Start(t)
	s.AddUser("alice@localhost", "a")
	s.AddUser("bob@localhost", "b")
	alice := s.Login("alice@localhost", "a", "x")
	bob := s.Login("bob@localhost", "b", "y")
	// bob subscribes to alice and she approves: he may ask her last activity.
	bob.Send("<presence to='alice@localhost' type='subscribe'/>")
	bob.Sync()
	alice.Send("<presence to='bob@localhost' type='subscribed'/>")
	alice.Sync()
	alice.CloseStream()
	// Wait (a ping round trip at a time, bounded) until her session is
	// gone, then ask: the answer comes from the batch not yet written.
	for i := 0; s.Sessions() != 1; i++ {
		if i > 1000 {
			t.Fatal("alice's session never ended")
		}
		bob.Sync()
	}
	st := bob.IQ("get", "alice@localhost", "<query xmlns='jabber:iq:last'/>")
	if st.Type != "result" || st.El.FindElement("query").SelectAttr("seconds") == nil {
		t.Fatalf("got %s, want a result with seconds", bob.String(st.El))
	}
}

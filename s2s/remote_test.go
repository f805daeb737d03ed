package s2s_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/server/mod/carbons"
	"github.com/parley-im/parley/server/mod/mam"
	"github.com/parley-im/parley/xmpp"
)

// Features of the local host with a remote contact, across two Parleys:
// the rules are those for local contacts (RFC 6121, XEP-0191, XEP-0280,
// XEP-0313), only the contact is on b.example.

// Directed presence to a remote JID (RFC 6121 §4.6) reaches it, and the
// server sends it unavailable when the sender goes offline (§4.6.3),
// whether the sender says so or its stream just ends.
func TestDirectedPresenceToRemoteJID(t *testing.T) {
	tests := []struct {
		name    string
		offline func(c *parleytest.Conn)
	}{
		{"unavailable broadcast", func(c *parleytest.Conn) { c.Send("<presence type='unavailable'/>") }},
		{"stream closed", func(c *parleytest.Conn) { c.CloseStream() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, alice, bob := twoServers(t)
			alice.Send("<presence to='bob@b.example/laptop'><status>directed</status></presence>")
			st, _ := bob.WaitFor("alice's directed presence", func(st *xmpp.Stanza) bool {
				return st.Kind == xmpp.KindPresence && st.From.String() == "alice@a.example/phone"
			})
			if status := st.El.SelectElement("status"); st.Type != "" || status == nil || status.Text() != "directed" {
				t.Fatalf("bob got %s; want alice's available presence", bob.String(st.El))
			}
			tt.offline(alice)
			st, _ = bob.WaitFor("alice's unavailable", func(st *xmpp.Stanza) bool {
				return st.Kind == xmpp.KindPresence && st.From.String() == "alice@a.example/phone"
			})
			if st.Type != "unavailable" {
				t.Fatalf("bob got %s; want unavailable from alice's resource", bob.String(st.El))
			}
		})
	}
}

// XEP-0191 with a remote JID: once alice blocks bob@b.example (or all of
// b.example), his messages and iqs bounce with service-unavailable back
// across the federation and never reach her, his presence is dropped,
// her messages to him get not-acceptable with <blocked/>; unblocking
// lets both through again.
func TestBlockingARemoteJID(t *testing.T) {
	for _, item := range []string{"bob@b.example", "b.example"} {
		t.Run("blocking "+item, func(t *testing.T) {
			_, _, alice, bob := twoServers(t)
			alice.ExpectResult(alice.IQ("set", "", "<block xmlns='urn:xmpp:blocking'><item jid='"+item+"'/></block>"), "block")

			bob.Send("<presence to='alice@a.example/phone'><status>let me in</status></presence>")
			bob.Send("<message to='alice@a.example' type='chat' id='b1'><body>to the bare JID</body></message>")
			bob.Send("<message to='alice@a.example/phone' type='chat' id='b2'><body>to the full JID</body></message>")
			bob.Send("<iq to='alice@a.example/phone' type='get' id='b3'><ping xmlns='urn:xmpp:ping'/></iq>")
			for _, id := range []string{"b1", "b2", "b3"} {
				st, _ := bob.WaitFor("the bounce of "+id, func(st *xmpp.Stanza) bool { return st.ID == id })
				if st.Type != "error" || parleytest.Condition(st) != xmpp.ServiceUnavailable {
					t.Errorf("bob's %s: got %s; want service-unavailable", id, bob.String(st.El))
				}
			}
			// The bounces came back through a.example after it handled
			// everything bob sent before them: what alice has now is all
			// she will get.
			for _, st := range alice.UntilSync() {
				if st.From.Bare().String() == "bob@b.example" {
					t.Errorf("alice got from bob: %s", alice.String(st.El))
				}
			}

			alice.Send("<message to='bob@b.example' type='chat' id='a1'><body>psst</body></message>")
			st, _ := alice.WaitFor("the error for a1", func(st *xmpp.Stanza) bool { return st.ID == "a1" })
			if st.Type != "error" || parleytest.Condition(st) != xmpp.NotAcceptable ||
				st.El.FindElement("error/blocked") == nil {
				t.Errorf("alice's message to a blocked contact: got %s; want not-acceptable with <blocked/>", alice.String(st.El))
			}

			alice.ExpectResult(alice.IQ("set", "", "<unblock xmlns='urn:xmpp:blocking'><item jid='"+item+"'/></unblock>"), "unblock")
			bob.Send("<message to='alice@a.example/phone' type='chat' id='b4'><body>back?</body></message>")
			alice.WaitFor("bob's message after the unblock", func(st *xmpp.Stanza) bool { return st.ID == "b4" && st.Type == "chat" })
			alice.Send("<message to='bob@b.example/laptop' type='chat' id='a2'><body>yes</body></message>")
			bob.WaitFor("alice's message after the unblock", func(st *xmpp.Stanza) bool { return st.ID == "a2" && st.Type == "chat" })
		})
	}
}

// Carbons (XEP-0280) of a conversation with a remote user: alice's other
// resource with carbons on gets a sent carbon of what she writes to bob
// and a received carbon of what bob writes to her phone; and the archives
// (XEP-0313) of both servers hold the conversation, each for its own
// user, with the other side's JID.
func TestCarbonsAndArchiveWithARemoteUser(t *testing.T) {
	a, _, alice, bob := twoServers(t)
	tablet := a.Login("alice@a.example", "pw", "tablet")
	tablet.Send("<presence/>")
	tablet.Sync()
	for _, c := range []*parleytest.Conn{alice, tablet} {
		c.ExpectResult(c.IQ("set", "", "<enable xmlns='"+carbons.NS+"'/>"), "enabling carbons")
	}

	alice.Send("<message to='bob@b.example/laptop' type='chat' id='out1'><body>to bob</body></message>")
	bob.WaitFor("alice's message", func(st *xmpp.Stanza) bool { return st.ID == "out1" })
	carbon(t, tablet, "sent", "alice@a.example/phone", "bob@b.example/laptop", "to bob")

	// A stanza-id in a.example's name that b.example sends is not a.example's
	// (XEP-0359 §3.3): it must not reach alice as if it were.
	bob.Send("<message to='alice@a.example/phone' type='chat' id='in1'><body>to alice</body>" +
		"<stanza-id xmlns='urn:xmpp:sid:0' by='alice@a.example' id='forged'/></message>")
	st, _ := alice.WaitFor("bob's message", func(st *xmpp.Stanza) bool { return st.ID == "in1" })
	var ids []string
	for _, sid := range st.El.FindElements("stanza-id") {
		if sid.SelectAttrValue("by", "") == "alice@a.example" {
			ids = append(ids, sid.SelectAttrValue("id", ""))
		}
	}
	if len(ids) != 1 || ids[0] == "forged" {
		t.Errorf("alice's stanza-ids %v in %s; want one, her archive's, not the one b.example made up", ids, alice.String(st.El))
	}
	carbon(t, tablet, "received", "bob@b.example/laptop", "alice@a.example/phone", "to alice")

	tests := []struct {
		name string
		c    *parleytest.Conn
		want []string // from>to:body, in order
	}{
		{"alice's archive on a.example", alice, []string{
			"alice@a.example/phone>bob@b.example/laptop:to bob", "bob@b.example/laptop>alice@a.example/phone:to alice"}},
		{"bob's archive on b.example", bob, []string{
			"alice@a.example/phone>bob@b.example/laptop:to bob", "bob@b.example/laptop>alice@a.example/phone:to alice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			eventually(t, tt.name+" holds the conversation", func() bool {
				got = archive(t, tt.c)
				return len(got) >= len(tt.want)
			})
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("archive:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// carbon waits for c's carbon of direction dir and checks the message it
// forwards.
func carbon(t *testing.T, c *parleytest.Conn, dir, from, to, body string) {
	t.Helper()
	st, _ := c.WaitFor("a "+dir+" carbon", func(st *xmpp.Stanza) bool {
		return st.Kind == xmpp.KindMessage && xmpp.Child(st.El, carbons.NS, dir) != nil
	})
	m := st.El.FindElement(dir + "/forwarded/message")
	if m == nil || m.SelectAttrValue("from", "") != from || m.SelectAttrValue("to", "") != to ||
		m.FindElement("body") == nil || m.FindElement("body").Text() != body {
		t.Errorf("%s carbon %s; want the message %q from %s to %s", dir, c.String(st.El), body, from, to)
	}
	if st.From != c.JID.Bare() {
		t.Errorf("%s carbon from %s; want from %s", dir, st.From, c.JID.Bare())
	}
}

// archive queries c's archive and returns each message as from>to:body.
func archive(t *testing.T, c *parleytest.Conn) []string {
	t.Helper()
	qid := parleytest.NewID("q")
	answer, before := c.IQAll("set", "", fmt.Sprintf("<query xmlns='%s' queryid='%s'/>", mam.NS, qid))
	c.ExpectResult(answer, "the archive query")
	var out []string
	for _, st := range before {
		res := xmpp.Child(st.El, mam.NS, "result")
		if st.Kind != xmpp.KindMessage || res == nil || res.SelectAttrValue("queryid", "") != qid {
			continue
		}
		m := res.FindElement("forwarded/message")
		if m == nil || m.FindElement("body") == nil {
			t.Fatalf("a result without a message: %s", c.String(st.El))
		}
		out = append(out, m.SelectAttrValue("from", "")+">"+m.SelectAttrValue("to", "")+":"+m.FindElement("body").Text())
	}
	return out
}

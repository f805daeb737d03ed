package muc_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// TestRoomMessageDelivery: a room's messages reach its occupants through
// the local host's fan-out way (server.FanOutHost), and every rule of a
// stanza to a user's full JID holds there: the block list, carbons, the
// user's archive, CSI and stream management's count. Each case has a
// room of its own: alice owns it, bob is the occupant under test.
func TestRoomMessageDelivery(t *testing.T) {
	s := startMUC(t, []string{"alice", "bob"})
	for i, c := range []struct {
		name string
		run  func(t *testing.T, room string, alice, bob *parleytest.Conn)
	}{
		{"a user who blocks the room gets none of its messages", func(t *testing.T, room string, alice, bob *parleytest.Conn) {
			bob.ExpectResult(bob.IQ("set", "", "<block xmlns='urn:xmpp:blocking'><item jid='"+roomJID(room, "")+"'/></block>"), "the block")
			say(alice, room, "m1", "blocked")
			// The room learns of the block by the bounce, and drops bob
			// (XEP-0045 §7.2.8's 333).
			alice.WaitFor("bob dropped", func(st *xmpp.Stanza) bool {
				return st.Kind == xmpp.KindPresence && st.Type == "unavailable" && st.From.Resource() == "bob" &&
					strings.Contains(strings.Join(statusCodes(st), " "), "333")
			})
			for _, st := range bob.UntilSync() {
				if st.Kind == xmpp.KindMessage && st.From.Bare().String() == roomJID(room, "") {
					t.Fatalf("bob got %s from the room he blocks", bob.String(st.El))
				}
			}
		}},
		{"carbons do not copy the room's messages", func(t *testing.T, room string, alice, bob *parleytest.Conn) {
			other := login(t, s, "bob", "other")
			defer other.CloseStream()
			for _, c := range []*parleytest.Conn{bob, other} {
				c.ExpectResult(c.IQ("set", "", "<enable xmlns='urn:xmpp:carbons:2'/>"), "carbons on")
			}
			// A Jingle message proposal is eligible for carbons in a chat
			// (XEP-0353); from a room nothing is (XEP-0280 §6).
			alice.Send("<message to='%s' type='groupchat' id='c1'><body>copied?</body><propose xmlns='urn:xmpp:jingle-message:0' id='p1'/></message>", roomJID(room, ""))
			if b := parleytest.Body(nextGroupchat(t, bob)); b != "copied?" {
				t.Fatalf("bob got %q", b)
			}
			for _, st := range other.UntilSync() {
				if st.Kind == xmpp.KindMessage {
					t.Fatalf("bob's other resource got %s", other.String(st.El))
				}
			}
		}},
		{"the user's archive does not keep the room's messages", func(t *testing.T, room string, alice, bob *parleytest.Conn) {
			say(alice, room, "a1", "archived?")
			st := nextGroupchat(t, bob)
			for _, sid := range st.El.SelectElements("stanza-id") {
				if sid.SelectAttrValue("by", "") == "bob@localhost" {
					t.Fatalf("bob's copy has a stanza-id of his archive: %s", bob.String(st.El))
				}
			}
			res, got := bob.IQAll("set", "", "<query xmlns='urn:xmpp:mam:2' queryid='q1'/>")
			bob.ExpectResult(res, "the archive query")
			for _, st := range got {
				if strings.Contains(bob.String(st.El), "archived?") {
					t.Fatalf("bob's archive holds the room's message: %s", bob.String(st.El))
				}
			}
		}},
		{"CSI holds a message without a body while the client is inactive", func(t *testing.T, room string, alice, bob *parleytest.Conn) {
			bob.Send("<inactive xmlns='urn:xmpp:csi:0'/>")
			bob.UntilSync() // the server has read it
			alice.Send("<message to='%s' type='groupchat' id='s1'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>", roomJID(room, ""))
			alice.UntilSync()
			for _, st := range bob.UntilSync() {
				if st.Kind == xmpp.KindMessage {
					t.Fatalf("inactive bob got %s at once", bob.String(st.El))
				}
			}
			say(alice, room, "s2", "now")
			first := bob.NextStanzaFor("the held chat state")
			if xmpp.Child(first.El, "http://jabber.org/protocol/chatstates", "composing") == nil || xmpp.Child(first.El, "urn:xmpp:delay", "delay") == nil {
				t.Fatalf("bob's first stanza is %s; want the held chat state, delayed", bob.String(first.El))
			}
			if b := parleytest.Body(nextGroupchat(t, bob)); b != "now" {
				t.Fatalf("then bob got %q", b)
			}
			bob.Send("<active xmlns='urn:xmpp:csi:0'/>")
		}},
		{"stream management counts the room's messages", func(t *testing.T, room string, alice, bob *parleytest.Conn) {
			bob.Send("<enable xmlns='urn:xmpp:sm:3'/>")
			for el := bob.Next(); el.Tag != "enabled"; el = bob.Next() {
			}
			for i := range 3 {
				say(alice, room, "sm"+strconv.Itoa(i), "counted "+strconv.Itoa(i))
			}
			stanzas, bodies := 0, 0
			for bodies < 3 {
				el := bob.Next()
				st, err := xmpp.NewStanza(el)
				if err != nil {
					continue
				}
				stanzas++
				if st.Type == "groupchat" && parleytest.Body(st) != "" {
					bodies++
				}
			}
			// The server holds what bob has not acknowledged, the room's
			// messages with the rest: bob's count is accepted, one more
			// than it sent is not (XEP-0198 §4).
			bob.Send("<a xmlns='urn:xmpp:sm:3' h='%d'/><r xmlns='urn:xmpp:sm:3'/>", stanzas)
			for el := bob.Next(); el.Tag != "a"; el = bob.Next() {
			}
			bob.Send("<a xmlns='urn:xmpp:sm:3' h='%d'/>", stanzas+1)
			for {
				_, err := bob.NextErr()
				if err == nil {
					continue
				}
				if !strings.Contains(err.Error(), "never sent") {
					t.Fatalf("bob's stream ended with %v; want the count refused", err)
				}
				break
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			room := "r" + strconv.Itoa(i)
			alice := login(t, s, "alice", "a")
			defer alice.CloseStream()
			bob := login(t, s, "bob", "b")
			defer bob.CloseStream()
			create(t, alice, room, "alice")
			join(t, bob, room, "bob", "<history maxstanzas='0'/>")
			alice.UntilSync()
			c.run(t, room, alice, bob)
		})
	}
}

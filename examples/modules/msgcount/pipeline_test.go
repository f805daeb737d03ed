package msgcount_test

import (
	"github.com/parley-im/parley/parleytest"
	"testing"

	"github.com/parley-im/parley/server"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/xmpp"
)

const nsSeen = "urn:example:seen"

// A second toy module, for this test binary only: it marks what it sees
// at ToClient, answers messages to the domain at ToHost, and takes (before
// msgcount, by priority) messages whose body is "swallow".
func init() {
	local.RegisterModule(local.Module{Name: "toy-pipeline", Start: func(h *local.Host) error {
		h.Hook(local.ToClient, xmpp.KindMessage, 0, func(s server.Session, st *xmpp.Stanza) bool {
			if st.El.FindElement("body") != nil {
				st.El.AddChild(xmpp.NewElementNS(nsSeen, "seen"))
			}
			return false
		})
		h.Hook(local.ToHost, xmpp.KindMessage, 0, func(_ server.Session, st *xmpp.Stanza) bool {
			reply := xmpp.NewElementNS(xmpp.NSClient, "message")
			reply.CreateAttr("type", "headline")
			reply.CreateElement("body").SetText("the host heard you")
			r, _ := xmpp.NewStanza(reply)
			r.SetFrom(st.To)
			r.SetTo(st.From)
			h.Route(r)
			return true
		})
		h.Hook(local.ToBare, xmpp.KindMessage, 100, func(_ server.Session, st *xmpp.Stanza) bool {
			return st.El.FindElement("body") != nil && st.El.FindElement("body").Text() == "swallow"
		})
		return nil
	}})
}

func TestPipelinePoints(t *testing.T) {
	s, alice, bob := twoAvailable(t)

	// ToBare at priority 100 takes "swallow" before msgcount (priority 0)
	// and the core see it: alice gets only the next message, and her
	// received count stays 1.
	bob.Send("<message to='alice@localhost' type='chat' id='s1'><body>swallow</body></message>")
	bob.Send("<message to='alice@localhost' type='chat' id='s2'><body>keep</body></message>")
	st := nextMessage(alice)
	if st.ID != "s2" {
		t.Fatalf("alice got %s, want s2 (s1 swallowed)", alice.String(st.El))
	}
	// ToClient marked what was queued for her.
	if st.El.FindElement("seen") == nil || xmpp.NS(st.El.FindElement("seen")) != nsSeen {
		t.Errorf("no <seen/> from ToClient: %s", alice.String(st.El))
	}
	alice.Send("<iq type='get' id='c1'><count xmlns='urn:example:msgcount'/></iq>")
	if st := alice.NextStanza(); st.El.FindElement("count").SelectAttrValue("received", "") != "1" {
		t.Errorf("got %s, want received='1'", alice.String(st.El))
	}

	// A message to the bare JID goes to both of alice's resources: each
	// gets its own copy through ToClient, marked once (one element shared
	// by both queues was marked twice, while a writer could be writing it).
	laptop := s.Login("alice@localhost", "a", "laptop")
	laptop.Send("<presence/>")
	laptop.Sync()
	bob.Send("<message to='alice@localhost' type='chat' id='both'><body>to both</body></message>")
	for _, c := range []*parleytest.Conn{alice, laptop} {
		st := nextMessage(c)
		if st.ID != "both" || len(st.El.SelectElements("seen")) != 1 {
			t.Errorf("got %s, want message both with one <seen/>", c.String(st.El))
		}
	}

	// ToHost takes a message to the domain, which the core would refuse.
	alice.Send("<message to='localhost' id='h1'><body>hello server</body></message>")
	st = nextMessage(alice)
	if st.Type != "headline" || st.From.String() != "localhost" {
		t.Fatalf("got %s, want the host's headline", alice.String(st.El))
	}
}

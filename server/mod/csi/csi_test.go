package csi_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/server/mod/csi"
	"github.com/parley-im/parley/xmpp"
)

// friends makes a and b (logged in as ca and cb) subscribe to each other.
func friends(t *testing.T, ca, cb *parleytest.Conn, a, b string) {
	t.Helper()
	for _, p := range [][2]*parleytest.Conn{{ca, cb}, {cb, ca}} {
		from, to := p[0], p[1]
		toJID := b
		if from == cb {
			toJID = a
		}
		fromJID := a
		if from == cb {
			fromJID = b
		}
		from.Send("<presence to='%s' type='subscribe'/>", toJID)
		from.Sync()
		to.Send("<presence to='%s' type='subscribed'/>", fromJID)
		to.Sync()
	}
	ca.UntilSync()
	cb.UntilSync()
}

// summary renders what a session got, one word each: "presence:show",
// "state:name", "body:text", "headline", with "+delay" on what waited.
func summary(got []*xmpp.Stanza) string {
	var out []string
	for _, st := range got {
		var w string
		switch {
		case st.Kind == xmpp.KindPresence && st.Type == "subscribe":
			w = "subscribe"
		case st.Kind == xmpp.KindPresence:
			show := "available"
			if s := st.El.SelectElement("show"); s != nil {
				show = s.Text()
			}
			w = "presence:" + show
		case st.Kind == xmpp.KindMessage && st.Type == "headline":
			w = "headline"
		case st.Kind == xmpp.KindMessage && parleytest.Body(st) != "":
			w = "body:" + parleytest.Body(st)
		case st.Kind == xmpp.KindMessage:
			for _, c := range st.El.ChildElements() {
				if xmpp.NS(c) == "http://jabber.org/protocol/chatstates" {
					w = "state:" + c.Tag
				}
			}
		default:
			continue
		}
		if d := xmpp.Child(st.El, "urn:xmpp:delay", "delay"); d != nil && d.SelectAttrValue("from", "") == "localhost" {
			w += "+delay"
		}
		out = append(out, w)
	}
	return strings.Join(out, " ")
}

// TestClientStateIndication: XEP-0352 as the package doc says: presence
// and chat states wait while alice's client is inactive, coalesced per
// contact; a body lets them go first; active lets them go; subscription
// requests never wait; 256 waiting go together.
func TestClientStateIndication(t *testing.T) {
	s := parleytest.Start(t)
	for _, u := range []string{"alice", "bob", "carol"} {
		s.AddUser(u+"@localhost", u)
	}
	alice := s.Login("alice@localhost", "alice", "phone")
	bob := s.Login("bob@localhost", "bob", "desk")
	alice.Send("<presence/>")
	bob.Send("<presence/>")
	friends(t, alice, bob, "alice@localhost", "bob@localhost")

	steps := []struct {
		name string
		do   func()
		want string // what alice gets meanwhile
	}{
		{"inactive", func() { alice.Send("<inactive xmlns='%s'/>", csi.NS); alice.Sync() }, ""},
		{"presence and chat states wait, the latest of each", func() {
			for _, show := range []string{"away", "xa"} {
				bob.Send("<presence><show>%s</show></presence>", show)
			}
			for _, state := range []string{"composing", "paused"} {
				bob.Send("<message to='alice@localhost' type='chat'><%s xmlns='http://jabber.org/protocol/chatstates'/></message>", state)
			}
		}, ""},
		{"a body lets them go first", func() {
			bob.Send("<message to='alice@localhost' type='chat'><body>hi</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>")
		}, "presence:xa+delay state:paused+delay body:hi"},
		{"still inactive", func() { bob.Send("<presence><show>dnd</show></presence>") }, ""},
		{"a subscription request goes at once, and what waited first", func() {
			carol := s.Login("carol@localhost", "carol", "x")
			carol.Send("<presence to='alice@localhost' type='subscribe'/>")
			carol.Sync()
		}, "presence:dnd+delay subscribe"},
		{"held again", func() { bob.Send("<presence><show>chat</show></presence>") }, ""},
		{"active lets what waited go", func() { alice.Send("<active xmlns='%s'/>", csi.NS) }, "presence:chat+delay"},
		{"active: nothing waits", func() { bob.Send("<presence><show>away</show></presence>") }, "presence:away"},
		{"inactive again, 255 headlines wait", func() {
			alice.Send("<inactive xmlns='%s'/>", csi.NS)
			alice.Sync()
			for i := 0; i < csi.MaxHeld-1; i++ {
				bob.Send("<message to='alice@localhost' type='headline'><subject>%d</subject></message>", i)
			}
		}, ""},
		{"the 256th lets all go", func() {
			bob.Send("<message to='alice@localhost' type='headline'><subject>last</subject></message>")
		}, strings.TrimSpace(strings.Repeat("headline+delay ", csi.MaxHeld))},
	}
	for _, step := range steps {
		step.do()
		bob.Sync()
		if got := summary(alice.UntilSync()); got != step.want {
			t.Fatalf("%s: alice got %q, want %q", step.name, got, step.want)
		}
	}
}

// TestCSIFeature: the stream feature is announced after login.
func TestCSIFeature(t *testing.T) {
	s := parleytest.Start(t)
	s.AddUser("alice@localhost", "alice")
	c := s.DialSecure("localhost")
	if got := c.AuthPlain("alice", "alice"); got.Tag != "success" {
		t.Fatalf("login: %s", c.String(got))
	}
	c.Open("localhost")
	features := c.Features
	if features.FindElement(fmt.Sprintf("csi[@xmlns='%s']", csi.NS)) == nil {
		t.Errorf("no <csi/> in the features after login: %s", c.String(features))
	}
}

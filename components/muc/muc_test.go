package muc_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// TestCreateInstantRoom: the first join creates a locked room whose
// creator is its owner (201); others get item-not-found until the owner
// accepts the default configuration (XEP-0045 §10.1.2).
func TestCreateInstantRoom(t *testing.T) {
	s := startMUC(t, []string{"alice", "bob"})
	alice, bob := login(t, s, "alice", "a"), login(t, s, "bob", "b")

	got := join(t, alice, "team", "Alice", "")
	self := got[0]
	if !isSelf(self) || !slices.Contains(statusCodes(self), "201") || item(self).SelectAttrValue("affiliation", "") != "owner" ||
		item(self).SelectAttrValue("role", "") != "moderator" || occupantID(self) == "" {
		t.Fatalf("the creator got %s; want its self-presence with 110 and 201, owner, moderator, an occupant-id", alice.Dump(got))
	}
	if st := join(t, bob, "team", "Bob", ""); len(st) != 1 || parleytest.Condition(st[0]) != xmpp.ItemNotFound {
		t.Fatalf("a join of the locked room got %s; want item-not-found", bob.Dump(st))
	}
	alice.ExpectResult(alice.IQ("set", roomJID("team", ""), instant), "the instant room")
	got = join(t, bob, "team", "Bob", "")
	if self := got[len(got)-2]; !isSelf(self) || slices.Contains(statusCodes(self), "201") {
		t.Fatalf("bob's join after the instant config: %s; want a self-presence without 201", bob.Dump(got))
	}
}

// TestJoinOrder: XEP-0045 §7.1: the others' presence, then the
// self-presence (110, and 100 in a non-anonymous room), then the
// history, then the subject; the others get the newcomer's presence.
func TestJoinOrder(t *testing.T) {
	s := startMUC(t, []string{"alice", "bob", "carol"})
	alice, bob, carol := login(t, s, "alice", "a"), login(t, s, "bob", "b"), login(t, s, "carol", "c")
	create(t, alice, "team", "Alice")
	alice.ExpectResult(configure(alice, "team", map[string]string{"muc#roomconfig_whois": "anyone"}), "whois anyone")
	join(t, bob, "team", "Bob", "")
	// One after the other: two senders' messages race otherwise.
	say(alice, "team", "m1", "one")
	nextGroupchat(t, bob)
	say(bob, "team", "m2", "two")
	nextGroupchat(t, bob)
	alice.Send("<message to='%s' type='groupchat'><subject>plans</subject></message>", roomJID("team", ""))
	bob.WaitFor("the subject", func(st *xmpp.Stanza) bool { return xmpp.Child(st.El, "", "subject") != nil })

	got := join(t, carol, "team", "Carol", "")
	want := []string{"presence:Alice", "presence:Bob", "presence:Carol[110,100]", "message:Alice/groupchat=one",
		"message:Bob/groupchat=two", "message:Alice/groupchat(subject)"}
	var have []string
	for _, st := range got {
		have = append(have, describe([]*xmpp.Stanza{st}))
	}
	// The others come in any order, before the self-presence.
	if len(have) == len(want) && have[0] > have[1] {
		have[0], have[1] = have[1], have[0]
	}
	if strings.Join(have, " ") != strings.Join(want, " ") {
		t.Fatalf("carol's join:\n got %s\nwant %s", strings.Join(have, " "), strings.Join(want, " "))
	}
	for _, st := range got[3:5] {
		if d := xmpp.Child(st.El, xmpp.NSDelay, "delay"); d == nil || d.SelectAttrValue("from", "") != roomJID("team", "") {
			t.Errorf("history %s has no delay from the room", carol.String(st.El))
		}
	}
	if it := item(got[0]); it == nil || it.SelectAttr("jid") == nil {
		t.Errorf("in a non-anonymous room, %s has no real JID", carol.String(got[0].El))
	}
	for _, c := range []*parleytest.Conn{alice, bob} {
		st, _ := c.WaitFor("carol's presence", func(st *xmpp.Stanza) bool {
			return st.Kind == xmpp.KindPresence && st.From.Resource() == "Carol"
		})
		if isSelf(st) || occupantID(st) == "" {
			t.Errorf("%s got %s; want carol's presence with an occupant-id, no 110", c.JID, c.String(st.El))
		}
	}
}

// TestJoinRefused: the errors of XEP-0045 §7.2 for joins the room
// refuses; the room keeps working after each.
func TestJoinRefused(t *testing.T) {
	s := startMUC(t, []string{"alice", "bob"})
	alice, bob := login(t, s, "alice", "a"), login(t, s, "bob", "b")
	create(t, alice, "team", "Alice")
	tests := []struct {
		name, to string
		want     xmpp.StanzaCondition
	}{
		{"a nick another user has", roomJID("team", "Alice"), xmpp.Conflict},
		{"no nick", roomJID("team", ""), xmpp.JIDMalformed},
		{"a blank nick", roomJID("team", " "), xmpp.JIDMalformed},
		{"a nick of a no-break space", roomJID("team", "\u00a0"), xmpp.JIDMalformed},
		{"a nick that fails resourceprep", roomJID("team", "a\u200bb"), xmpp.JIDMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := parleytest.NewID("join")
			bob.Send("<presence id='%s' to='%s'><x xmlns='http://jabber.org/protocol/muc'/></presence>", id, tt.to)
			st, _ := bob.WaitFor("the refusal", func(st *xmpp.Stanza) bool { return st.ID == id })
			if st.Type != "error" || parleytest.Condition(st) != tt.want {
				t.Errorf("got %s; want %s", bob.String(st.El), tt.want)
			}
		})
	}
	say(alice, "team", "after", "still here")
	if st := nextGroupchat(t, alice); parleytest.Body(st) != "still here" {
		t.Errorf("after the refusals the room sent %s", alice.String(st.El))
	}
}

// TestGroupchat: a groupchat message goes to every occupant, the sender
// too, from the sender's occupant JID with its id and occupant-id; a
// non-occupant's is refused with not-acceptable.
func TestGroupchat(t *testing.T) {
	s := startMUC(t, []string{"alice", "bob", "carol"})
	alice, bob, carol := login(t, s, "alice", "a"), login(t, s, "bob", "b"), login(t, s, "carol", "c")
	create(t, alice, "team", "Alice")
	join(t, bob, "team", "Bob", "")
	alice.Send("<message to='%s' type='groupchat' id='g1'><body>hi all</body><occupant-id xmlns='urn:xmpp:occupant-id:0' id='forged'/></message>",
		roomJID("team", ""))
	var ids []string
	for _, c := range []*parleytest.Conn{alice, bob} {
		st := nextGroupchat(t, c)
		if st.From.String() != roomJID("team", "Alice") || st.ID != "g1" || parleytest.Body(st) != "hi all" {
			t.Errorf("%s got %s; want alice's message from team@muc/Alice with id g1", c.JID, c.String(st.El))
		}
		if n := len(st.El.SelectElements("occupant-id")); n != 1 || occupantID(st) == "forged" {
			t.Errorf("%s got %s; want the room's one occupant-id, not the sender's", c.JID, c.String(st.El))
		}
		ids = append(ids, occupantID(st))
	}
	if ids[0] != ids[1] || ids[0] == "" {
		t.Errorf("occupant-ids %q; want one id for alice", ids)
	}
	carol.Send("<message to='%s' type='groupchat' id='g2'><body>let me in</body></message>", roomJID("team", ""))
	st, _ := carol.WaitFor("the refusal", func(st *xmpp.Stanza) bool { return st.ID == "g2" })
	if st.Type != "error" || parleytest.Condition(st) != xmpp.NotAcceptable {
		t.Errorf("a non-occupant's message got %s; want not-acceptable", carol.String(st.El))
	}
	if got := bob.UntilSync(); len(got) != 0 {
		t.Errorf("bob got %s after a non-occupant's message; want nothing", bob.Dump(got))
	}
}

// TestPrivateMessage: room@muc/nick reaches that occupant's real JID
// from the sender's occupant JID, marked with the muc#user <x/>.
func TestPrivateMessage(t *testing.T) {
	s := startMUC(t, []string{"alice", "bob"})
	alice, bob := login(t, s, "alice", "a"), login(t, s, "bob", "b")
	create(t, alice, "team", "Alice")
	join(t, bob, "team", "Bob", "")
	alice.Send("<message to='%s' type='chat' id='p1'><body>psst</body></message>", roomJID("team", "Bob"))
	st, _ := bob.WaitFor("the private message", func(st *xmpp.Stanza) bool { return st.ID == "p1" })
	if st.Type != "chat" || st.From.String() != roomJID("team", "Alice") || parleytest.Body(st) != "psst" ||
		xmpp.Child(st.El, "http://jabber.org/protocol/muc#user", "x") == nil || occupantID(st) == "" {
		t.Errorf("bob got %s; want a chat from team@muc/Alice with the muc#user x and an occupant-id", bob.String(st.El))
	}
	alice.Send("<message to='%s' type='chat' id='p2'><body>?</body></message>", roomJID("team", "Nobody"))
	st, _ = alice.WaitFor("the refusal", func(st *xmpp.Stanza) bool { return st.ID == "p2" })
	if parleytest.Condition(st) != xmpp.ItemNotFound {
		t.Errorf("a private message to no one got %s; want item-not-found", alice.String(st.El))
	}
}

// TestNickChangeAndLeave: a nick change is the old nick's unavailable
// presence with 303 and the new nick, then the new nick's presence; a
// leave is an unavailable presence to all, and the leaver's with 110.
func TestNickChangeAndLeave(t *testing.T) {
	s := startMUC(t, []string{"alice", "bob"})
	alice, bob := login(t, s, "alice", "a"), login(t, s, "bob", "b")
	create(t, alice, "team", "Alice")
	join(t, bob, "team", "Bob", "")
	alice.UntilSync()

	bob.Send("<presence to='%s'/>", roomJID("team", "Robert"))
	for _, c := range []*parleytest.Conn{alice, bob} {
		gone, _ := c.WaitFor("the 303", func(st *xmpp.Stanza) bool { return st.Kind == xmpp.KindPresence && st.From.Resource() == "Bob" })
		if gone.Type != "unavailable" || !slices.Contains(statusCodes(gone), "303") || item(gone).SelectAttrValue("nick", "") != "Robert" {
			t.Errorf("%s got %s; want Bob's unavailable with 303 and nick Robert", c.JID, c.String(gone.El))
		}
		if c == bob && !isSelf(gone) {
			t.Errorf("bob's own 303 has no 110: %s", c.String(gone.El))
		}
		back := c.NextStanzaFor("Robert's presence")
		if back.Type != "" || back.From.Resource() != "Robert" {
			t.Errorf("%s got %s after the 303; want Robert's presence", c.JID, c.String(back.El))
		}
	}
	bob.Send("<presence type='unavailable' to='%s'/>", roomJID("team", "Robert"))
	st, _ := bob.WaitFor("bob's own leave", func(st *xmpp.Stanza) bool { return st.Kind == xmpp.KindPresence })
	if st.Type != "unavailable" || !isSelf(st) || item(st).SelectAttrValue("role", "") != "none" {
		t.Errorf("bob's leave got %s; want an unavailable self-presence with role none", bob.String(st.El))
	}
	st, _ = alice.WaitFor("robert's leave", func(st *xmpp.Stanza) bool { return st.Kind == xmpp.KindPresence })
	if st.Type != "unavailable" || st.From.Resource() != "Robert" {
		t.Errorf("alice got %s; want Robert's unavailable", alice.String(st.El))
	}
	say(alice, "team", "m", "after the leave")
	nextGroupchat(t, alice)
	if got := bob.UntilSync(); len(got) != 0 {
		t.Errorf("bob, gone, got %s", bob.Dump(got))
	}
}

// TestDisconnectLeaves: a client that goes away leaves its rooms: the
// local host sends the unavailable presence to where it sent directed
// presence (RFC 6121 §4.6), the room among them.
func TestDisconnectLeaves(t *testing.T) {
	s := startMUC(t, []string{"alice", "bob"})
	alice, bob := login(t, s, "alice", "a"), login(t, s, "bob", "b")
	create(t, alice, "team", "Alice")
	join(t, bob, "team", "Bob", "")
	alice.UntilSync()
	bob.Close() // no closing tag: the connection just drops
	st, _ := alice.WaitFor("bob's leave", func(st *xmpp.Stanza) bool { return st.Kind == xmpp.KindPresence })
	if st.Type != "unavailable" || st.From.Resource() != "Bob" {
		t.Errorf("alice got %s; want Bob's unavailable", alice.String(st.El))
	}
	bob2 := login(t, s, "bob", "b2")
	if got := join(t, bob2, "team", "Bob", ""); !isSelf(got[len(got)-2]) {
		t.Errorf("bob's nick is still taken: %s", bob2.Dump(got))
	}
}

// TestMultiSessionNick: two resources of one user share a nick (XEP-0045
// §7.2.9): both get the room's messages; the others see one occupant.
func TestMultiSessionNick(t *testing.T) {
	s := startMUC(t, []string{"alice", "bob"})
	alice, bob1, bob2 := login(t, s, "alice", "a"), login(t, s, "bob", "one"), login(t, s, "bob", "two")
	create(t, alice, "team", "Alice")
	join(t, bob1, "team", "Bob", "")
	join(t, bob2, "team", "Bob", "")
	say(alice, "team", "m", "to both")
	for _, c := range []*parleytest.Conn{bob1, bob2} {
		if st := nextGroupchat(t, c); parleytest.Body(st) != "to both" {
			t.Errorf("%s got %s", c.JID, c.String(st.El))
		}
	}
	bob1.Send("<presence type='unavailable' to='%s'/>", roomJID("team", "Bob"))
	bob1.WaitFor("bob1's leave", func(st *xmpp.Stanza) bool { return st.Type == "unavailable" })
	bob1.UntilSync()
	for _, st := range alice.UntilSync() {
		if st.Kind == xmpp.KindPresence && st.Type == "unavailable" {
			t.Errorf("alice saw Bob leave while his other session stays: %s", alice.String(st.El))
		}
	}
}

// TestHistory: the join's <history/> limits (XEP-0045 §7.2.15), each
// alone, on a room with five messages a second apart in stamps.
func TestHistory(t *testing.T) {
	s := startMUC(t, []string{"alice", "bob"})
	alice := login(t, s, "alice", "a")
	create(t, alice, "team", "Alice")
	for i := 1; i <= 5; i++ {
		say(alice, "team", "h", strings.Repeat("x", i))
		nextGroupchat(t, alice)
	}
	mid := time.Now().UTC()
	say(alice, "team", "h", "late")
	nextGroupchat(t, alice)
	tests := []struct {
		name, history string
		want          []string
	}{
		{"the default: all of it", "", []string{"x", "xx", "xxx", "xxxx", "xxxxx", "late"}},
		{"maxstanzas", "<history maxstanzas='2'/>", []string{"xxxxx", "late"}},
		{"maxstanzas 0", "<history maxstanzas='0'/>", nil},
		{"maxchars 0", "<history maxchars='0'/>", nil},
		{"since", "<history since='" + mid.Format(time.RFC3339Nano) + "'/>", []string{"late"}},
		{"seconds", "<history seconds='3600'/>", []string{"x", "xx", "xxx", "xxxx", "xxxxx", "late"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bob := login(t, s, "bob", "r"+string(rune('a'+i)))
			got := join(t, bob, "team", "Bob", tt.history)
			var bodies []string
			for _, st := range got {
				if b := parleytest.Body(st); b != "" {
					bodies = append(bodies, b)
				}
			}
			if !slices.Equal(bodies, tt.want) {
				t.Errorf("history %q, want %q", bodies, tt.want)
			}
			bob.Send("<presence type='unavailable' to='%s'/>", roomJID("team", "Bob"))
			bob.WaitFor("the leave", func(st *xmpp.Stanza) bool { return st.Type == "unavailable" })
		})
	}
}

// TestJoinIDOnSelfPresence: the self-presence that ends a join carries
// the join's id, as Prosody's does (clients such as mellium's match the
// answer to their join by it); the other occupants' presences do not.
func TestJoinIDOnSelfPresence(t *testing.T) {
	s := startMUC(t, []string{"alice", "bob"})
	alice, bob := login(t, s, "alice", "r"), login(t, s, "bob", "r")
	create(t, alice, "ids", "alice")
	bob.Send("<presence id='join-1' to='%s'><x xmlns='http://jabber.org/protocol/muc'/></presence>", roomJID("ids", "bob"))
	self, before := bob.WaitFor("bob's self-presence", isSelf)
	if self.ID != "join-1" {
		t.Errorf("the self-presence is %s; want id='join-1'", bob.String(self.El))
	}
	for _, st := range before {
		if st.ID == "join-1" {
			t.Errorf("another presence carries the join's id: %s", bob.String(st.El))
		}
	}
}

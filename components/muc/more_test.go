package muc_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/parley-im/parley/components/muc"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// TestDomainBan: an outcast affiliation on a domain JID (XEP-0045 §9.1
// leaves domain bans to the service; Prosody has them) removes that
// domain's occupants with 301 and refuses their joins with forbidden,
// except users with an affiliation of their own; users of other domains
// are not touched. Lifting it lets them in again.
func TestDomainBan(t *testing.T) {
	s, alice, bob, carol, dave := team(t, nil, parleytest.WithHost("localhost", "local"), parleytest.WithHost("other.localhost", "local"))
	s.AddUser("erin@other.localhost", "pw")
	erin := s.Login("erin@other.localhost", "pw", "e")
	erin.Send("<presence/>")
	erin.UntilSync()
	join(t, erin, "team", "Erin", "")
	alice.ExpectResult(adminIQ1(alice, "set", "<item affiliation='member' jid='dave@localhost'/>"), "dave member")
	alice.UntilSync()

	alice.ExpectResult(adminIQ1(alice, "set", "<item affiliation='outcast' jid='localhost'><reason>spam</reason></item>"), "the domain ban")
	for _, c := range []*parleytest.Conn{bob, carol} {
		st, _ := c.WaitFor("its removal", func(st *xmpp.Stanza) bool { return isSelf(st) && st.Type == "unavailable" })
		if seen(st) != "unavailable none outcast [110,301]" {
			t.Errorf("%s got %s; want its removal with 301", c.JID, c.String(st.El))
		}
	}
	got := erin.UntilSync()
	for _, nick := range []string{"Bob", "Carol"} {
		if p := presenceFrom(got, "team", nick); seen(p) != "unavailable none outcast [301]" {
			t.Errorf("erin saw %s of %s; want its removal with 301 (%s)", seen(p), nick, erin.Dump(got))
		}
	}
	if p := presenceFrom(got, "team", "Erin"); p != nil {
		t.Errorf("erin of another domain got %s", erin.String(p.El))
	}
	if got := join(t, carol, "team", "Carol", ""); parleytest.Condition(got[len(got)-1]) != xmpp.Forbidden {
		t.Errorf("carol's join from the banned domain got %s; want forbidden", carol.Dump(got))
	}
	if got := join(t, dave, "team", "Dave", ""); seen(got[len(got)-2]) != "available participant member [110]" {
		t.Errorf("dave, a member of the banned domain, joining: %s", dave.Dump(got))
	}
	bans, _ := adminIQ(alice, "get", "team", "<item affiliation='outcast'/>")
	if its := bans.El.FindElements("./query/item"); len(its) != 1 || its[0].SelectAttrValue("jid", "") != "localhost" {
		t.Errorf("the ban list: %s; want the domain", alice.String(bans.El))
	}

	alice.ExpectResult(adminIQ1(alice, "set", "<item affiliation='none' jid='localhost'/>"), "the domain unbanned")
	if got := join(t, carol, "team", "Carol", ""); !isSelf(got[len(got)-2]) {
		t.Errorf("carol's join after the ban was lifted: %s", carol.Dump(got))
	}
}

// TestAllowInvites: muc#roomconfig_allowinvites lets the members of a
// members-only room invite (and so add members); without it they get
// forbidden. The room's disco#info says who may invite, as Prosody does.
func TestAllowInvites(t *testing.T) {
	_, alice, bob, _, dave := team(t, nil)
	allowInvites := func() string {
		info := alice.IQ("get", roomJID("team", ""), "<query xmlns='http://jabber.org/protocol/disco#info'/>")
		v, _ := formValue(info, "muc#roomconfig_allowinvites")
		return v
	}
	if v := allowInvites(); v != "1" {
		t.Errorf("an open room's disco#info says allowinvites %q; want 1", v)
	}
	alice.ExpectResult(configure(alice, "team", map[string]string{"muc#roomconfig_membersonly": "1"}), "members-only")
	alice.ExpectResult(adminIQ1(alice, "set", "<item affiliation='member' jid='bob@localhost'/>"), "bob member")
	join(t, bob, "team", "Bob", "")
	if v := allowInvites(); v != "0" {
		t.Errorf("a members-only room's disco#info says allowinvites %q; want 0", v)
	}
	invite := "<message to='" + roomJID("team", "") + "' id='%s'><x xmlns='" + muc.NSMUCUser + "'><invite to='dave@localhost'/></x></message>"
	bob.Send(invite, "inv1")
	if st, _ := bob.WaitFor("the refusal", func(st *xmpp.Stanza) bool { return st.ID == "inv1" }); parleytest.Condition(st) != xmpp.Forbidden {
		t.Errorf("a member's invitation without allowinvites got %s", bob.String(st.El))
	}

	alice.ExpectResult(configure(alice, "team", map[string]string{"muc#roomconfig_allowinvites": "1"}), "allowinvites")
	form := alice.IQ("get", roomJID("team", ""), "<query xmlns='http://jabber.org/protocol/muc#owner'/>")
	if v, ok := formValue(form, "muc#roomconfig_allowinvites"); !ok || v != "1" {
		t.Errorf("the config form's allowinvites is %q (present %v); want 1", v, ok)
	}
	if v := allowInvites(); v != "1" {
		t.Errorf("with allowinvites the disco#info says %q; want 1", v)
	}
	bob.Send(invite, "inv2")
	if st, _ := dave.WaitFor("the invitation", func(st *xmpp.Stanza) bool { return st.ID == "inv2" }); st.From.String() != roomJID("team", "") {
		t.Errorf("dave got %s; want the invitation from the room", dave.String(st.El))
	}
	if got := join(t, dave, "team", "Dave", ""); seen(got[len(got)-2]) != "available participant member [110]" {
		t.Errorf("the invited dave's join: %s", dave.Dump(got))
	}
}

// TestAbsentAffiliationNotice: an affiliation change of a user who is
// not in the room is told to the room (XEP-0045 §9.3–§10.7, as Prosody):
// a message with the item. It names the real JID, so in a
// semi-anonymous room only moderators get it.
func TestAbsentAffiliationNotice(t *testing.T) {
	tests := []struct {
		whois      string
		bobGetsOne bool
	}{
		{"moderators", false},
		{"anyone", true},
	}
	for _, tt := range tests {
		t.Run("whois "+tt.whois, func(t *testing.T) {
			_, alice, bob, _, _ := team(t, map[string]string{"muc#roomconfig_whois": tt.whois})
			alice.UntilSync()
			bob.UntilSync()
			res, got := adminIQ(alice, "set", "team", "<item affiliation='member' jid='dave@localhost'><reason>welcome</reason></item>")
			alice.ExpectResult(res, "dave member")
			isNotice := func(st *xmpp.Stanza) bool {
				it := item(st)
				return st.Kind == xmpp.KindMessage && st.From.String() == roomJID("team", "") && it != nil &&
					it.SelectAttrValue("jid", "") == "dave@localhost"
			}
			i := slices.IndexFunc(got, isNotice)
			if i < 0 {
				t.Fatalf("the owner got %s; want the notice of dave's membership", alice.Dump(got))
			}
			if it := item(got[i]); it.SelectAttrValue("affiliation", "") != "member" || it.FindElement("reason") == nil ||
				it.FindElement("reason").Text() != "welcome" {
				t.Errorf("the notice: %s", alice.String(got[i].El))
			}
			got = bob.UntilSync()
			if has := slices.ContainsFunc(got, isNotice); has != tt.bobGetsOne {
				t.Errorf("bob, a participant, got %s; want the notice: %v", bob.Dump(got), tt.bobGetsOne)
			}
		})
	}
}

// TestBadRoomJID: a join of a room whose localpart fails nodeprep or is
// over 1023 bytes (RFC 7622 §3.3) gets jid-malformed, and the service
// keeps working.
func TestBadRoomJID(t *testing.T) {
	_, alice, bob, _, _ := team(t, nil)
	tests := []struct{ name, to string }{
		{"a space in the localpart", "a b@" + service + "/Bob"},
		{"a prohibited character", "a'b\"@" + service + "/Bob"},
		{"a localpart of 1024 bytes", strings.Repeat("r", 1024) + "@" + service + "/Bob"},
		{"a nick of 1024 bytes", roomJID("team", strings.Repeat("n", 1024))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := parleytest.NewID("bad")
			bob.Send("<presence id='%s' to='%s'><x xmlns='%s'/></presence>", id, xmlEscape(tt.to), muc.NSMUC)
			st, _ := bob.WaitFor("the answer", func(st *xmpp.Stanza) bool { return st.ID == id })
			if st.Type != "error" || parleytest.Condition(st) != xmpp.JIDMalformed {
				t.Errorf("got %s; want jid-malformed", bob.String(st.El))
			}
		})
	}
	say(alice, "team", "after", "still here")
	if st := nextGroupchat(t, bob); parleytest.Body(st) != "still here" {
		t.Errorf("after the bad joins the room sent %s", bob.String(st.El))
	}
}

// xmlEscape escapes s for an attribute in single quotes.
func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "'", "&apos;", "<", "&lt;", "\"", "&quot;").Replace(s)
}

// TestStatus104And333: a configuration change is told to the occupants
// by a message with 104 (XEP-0045 §10.2.1); an error from an occupant's
// side (its server says it is gone) removes it with 333 (§15.6.2), and
// a full queue's error does not.
func TestStatus104And333(t *testing.T) {
	_, alice, bob, carol, _ := team(t, nil)
	alice.ExpectResult(configure(alice, "team", map[string]string{"muc#roomconfig_roomname": "Renamed"}), "a config change")
	st, _ := bob.WaitFor("the 104", func(st *xmpp.Stanza) bool { return st.Kind == xmpp.KindMessage && len(statusCodes(st)) > 0 })
	if !slices.Equal(statusCodes(st), []string{"104"}) || st.From.String() != roomJID("team", "") || st.Type != "groupchat" {
		t.Errorf("bob got %s; want a groupchat message from the room with 104", bob.String(st.El))
	}
	carol.UntilSync()

	errMsg := "<message type='error' to='" + roomJID("team", "") + "'><error type='%s'><%s xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
	bob.Send(errMsg, "wait", "resource-constraint")
	say(bob, "team", "still", "still in")
	st, before := carol.WaitFor("bob's message", func(st *xmpp.Stanza) bool { return parleytest.Body(st) == "still in" })
	if presenceFrom(before, "team", "Bob") != nil || st.From.Resource() != "Bob" {
		t.Errorf("after a resource-constraint error from bob carol got %s then %s; want bob still in", carol.Dump(before), carol.String(st.El))
	}
	bob.Send(errMsg, "cancel", "service-unavailable")
	st, before = carol.WaitFor("bob's removal", func(st *xmpp.Stanza) bool {
		return st.Kind == xmpp.KindPresence && st.From.Resource() == "Bob"
	})
	if seen(st) != "unavailable none none [333]" {
		t.Errorf("carol saw %s of bob (after %s); want his removal with 333", carol.String(st.El), carol.Dump(before))
	}
}

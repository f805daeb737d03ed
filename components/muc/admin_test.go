package muc_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parley-im/parley/components/muc"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// adminIQ sends a muc#admin iq of type typ with items to room, and
// returns the answer and what came before it.
func adminIQ(c *parleytest.Conn, typ, room, items string) (*xmpp.Stanza, []*xmpp.Stanza) {
	return c.IQAll(typ, roomJID(room, ""), "<query xmlns='"+muc.NSMUCAdmin+"'>"+items+"</query>")
}

// presenceFrom returns the last presence from room/nick among got, or nil.
func presenceFrom(got []*xmpp.Stanza, room, nick string) *xmpp.Stanza {
	var last *xmpp.Stanza
	for _, st := range got {
		if st.Kind == xmpp.KindPresence && st.From.String() == roomJID(room, nick) {
			last = st
		}
	}
	return last
}

// seen says how a presence shows its occupant: type, role, affiliation,
// status codes, like "unavailable none outcast [301,110]".
func seen(st *xmpp.Stanza) string {
	if st == nil {
		return "no presence"
	}
	it := item(st)
	if it == nil {
		return "no item"
	}
	typ := st.Type
	if typ == "" {
		typ = "available"
	}
	codes := statusCodes(st)
	slices.Sort(codes)
	return fmt.Sprintf("%s %s %s [%s]", typ, it.SelectAttrValue("role", ""), it.SelectAttrValue("affiliation", ""),
		strings.Join(codes, ","))
}

// team starts a server with users alice (the owner of room "team"), bob,
// carol and dave, bob and carol in the room; edit configures it first.
func team(t *testing.T, fields map[string]string, opts ...parleytest.Option) (s *parleytest.Server, alice, bob, carol, dave *parleytest.Conn) {
	t.Helper()
	s = startMUC(t, []string{"alice", "bob", "carol", "dave"}, opts...)
	alice, bob, carol, dave = login(t, s, "alice", "a"), login(t, s, "bob", "b"), login(t, s, "carol", "c"), login(t, s, "dave", "d")
	create(t, alice, "team", "Alice")
	if fields != nil {
		alice.ExpectResult(configure(alice, "team", fields), "the room's config")
	}
	join(t, bob, "team", "Bob", "")
	join(t, carol, "team", "Carol", "")
	alice.UntilSync()
	bob.UntilSync()
	return s, alice, bob, carol, dave
}

// TestRoleAndAffiliationChanges: each change by the owner is answered
// with a result and shown to the room (here carol, who is not a
// moderator) and to its target (with 110), with the role, affiliation
// and status code XEP-0045 §8–10 give it.
func TestRoleAndAffiliationChanges(t *testing.T) {
	tests := []struct {
		name, item string
		// target is the nick the change is about; want is how carol sees
		// it, self how the target itself does (bob's nick).
		want, self string
	}{
		{"grant moderator", "<item nick='Bob' role='moderator'/>", "available moderator none []", "available moderator none [110]"},
		{"revoke moderator", "<item nick='Bob' role='participant'/>", "available participant none []", "available participant none [110]"},
		{"revoke voice", "<item nick='Bob' role='visitor'/>", "available visitor none []", "available visitor none [110]"},
		{"grant voice", "<item nick='Bob' role='participant'/>", "available participant none []", "available participant none [110]"},
		{"grant member", "<item affiliation='member' jid='bob@localhost'/>", "available participant member []", "available participant member [110]"},
		{"grant admin", "<item affiliation='admin' jid='bob@localhost'/>", "available moderator admin []", "available moderator admin [110]"},
		{"grant owner", "<item affiliation='owner' jid='bob@localhost'/>", "available moderator owner []", "available moderator owner [110]"},
		{"revoke owner", "<item affiliation='member' jid='bob@localhost'/>", "available participant member []", "available participant member [110]"},
		{"revoke member", "<item affiliation='none' jid='bob@localhost'/>", "available participant none []", "available participant none [110]"},
		{"kick", "<item nick='Bob' role='none'><reason>spam</reason></item>", "unavailable none none [307]", "unavailable none none [110,307]"},
	}
	_, alice, bob, carol, _ := team(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, _ := adminIQ(alice, "set", "team", tt.item)
			alice.ExpectResult(res, tt.name)
			if got := seen(presenceFrom(carol.UntilSync(), "team", "Bob")); got != tt.want {
				t.Errorf("carol sees %s; want %s", got, tt.want)
			}
			bobGot := bob.UntilSync()
			self := presenceFrom(bobGot, "team", "Bob")
			if got := seen(self); got != tt.self {
				t.Errorf("bob sees himself %s; want %s", got, tt.self)
			}
			if tt.name == "grant moderator" {
				// A new moderator of a semi-anonymous room sees real JIDs.
				if c := presenceFrom(bobGot, "team", "Carol"); c == nil || item(c).SelectAttr("jid") == nil {
					t.Errorf("bob, now a moderator, got carol's presence as %s; want it with her JID", bob.Dump(bobGot))
				}
			}
			if tt.name == "kick" {
				it := item(self)
				if r := it.SelectElement("reason"); r == nil || r.Text() != "spam" {
					t.Errorf("the kick's presence has no reason: %s", bob.String(self.El))
				}
				if a := it.SelectElement("actor"); a == nil || a.SelectAttrValue("nick", "") != "Alice" {
					t.Errorf("the kick's presence has no actor: %s", bob.String(self.El))
				}
			}
		})
	}
	// Bob is out: his groupchat is refused, carol's goes on.
	say(bob, "team", "out", "still here?")
	st, _ := bob.WaitFor("the refusal", func(st *xmpp.Stanza) bool { return st.ID == "out" })
	if parleytest.Condition(st) != xmpp.NotAcceptable {
		t.Errorf("a kicked occupant's groupchat got %s", bob.String(st.El))
	}
	// A ban takes the banned user out with 301 and keeps him out.
	join(t, bob, "team", "Bob", "")
	carol.UntilSync()
	res, _ := adminIQ(alice, "set", "team", "<item affiliation='outcast' jid='bob@localhost'><reason>enough</reason></item>")
	alice.ExpectResult(res, "ban")
	if got := seen(presenceFrom(carol.UntilSync(), "team", "Bob")); got != "unavailable none outcast [301]" {
		t.Errorf("carol sees the ban as %s", got)
	}
	if got := seen(presenceFrom(bob.UntilSync(), "team", "Bob")); got != "unavailable none outcast [110,301]" {
		t.Errorf("bob sees his ban as %s", got)
	}
	if got := join(t, bob, "team", "Bob", ""); parleytest.Condition(got[len(got)-1]) != xmpp.Forbidden {
		t.Errorf("the banned user's join got %s", bob.Dump(got))
	}
}

// TestAdminRefusals: the permission rules of XEP-0045 §8–10 and bad
// items, each refused with its condition and changing nothing; the room
// works after them.
func TestAdminRefusals(t *testing.T) {
	_, alice, bob, carol, dave := team(t, nil)
	join(t, dave, "team", "Dave", "")
	// Dave is an admin; bob a moderator by role only (a participant of
	// no affiliation made moderator).
	alice.ExpectResult(adminIQ1(alice, "set", "<item affiliation='admin' jid='dave@localhost'/>"), "dave admin")
	alice.ExpectResult(adminIQ1(alice, "set", "<item nick='Bob' role='moderator'/>"), "bob moderator")
	tests := []struct {
		name string
		by   *parleytest.Conn
		typ  string
		item string
		want xmpp.StanzaCondition
	}{
		{"a participant kicks", carol, "set", "<item nick='Bob' role='none'/>", xmpp.Forbidden},
		{"a participant revokes voice", carol, "set", "<item nick='Dave' role='visitor'/>", xmpp.Forbidden},
		{"a non-admin bans", carol, "set", "<item affiliation='outcast' jid='dave@localhost'/>", xmpp.Forbidden},
		{"a moderator of no affiliation bans", bob, "set", "<item affiliation='outcast' jid='carol@localhost'/>", xmpp.Forbidden},
		{"a moderator of no affiliation grants moderation", bob, "set", "<item nick='Carol' role='moderator'/>", xmpp.Forbidden},
		{"a moderator kicks an admin", bob, "set", "<item nick='Dave' role='none'/>", xmpp.NotAllowed},
		{"an admin kicks the owner", dave, "set", "<item nick='Alice' role='none'/>", xmpp.NotAllowed},
		{"an admin bans the owner", dave, "set", "<item affiliation='outcast' jid='alice@localhost'/>", xmpp.NotAllowed},
		{"an admin grants admin", dave, "set", "<item affiliation='admin' jid='carol@localhost'/>", xmpp.NotAllowed},
		{"the owner revokes an admin's voice", alice, "set", "<item nick='Dave' role='visitor'/>", xmpp.NotAllowed},
		{"the last owner steps down", alice, "set", "<item affiliation='admin' jid='alice@localhost'/>", xmpp.Conflict},
		{"one bad item of two", alice, "set", "<item affiliation='member' jid='carol@localhost'/><item nick='Nobody' role='none'/>", xmpp.ItemNotFound},
		{"a role and an affiliation", alice, "set", "<item nick='Bob' role='none' affiliation='outcast' jid='bob@localhost'/>", xmpp.BadRequest},
		{"a domain made a member", alice, "set", "<item affiliation='member' jid='example.org'/>", xmpp.NotAcceptable},
		{"a participant asks for the members", carol, "get", "<item affiliation='member'/>", xmpp.Forbidden},
		{"an admin asks for the owners", dave, "get", "<item affiliation='owner'/>", xmpp.Forbidden},
		{"a participant asks for the moderators", carol, "get", "<item role='moderator'/>", xmpp.Forbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, _ := adminIQ(tt.by, tt.typ, "team", tt.item)
			tt.by.ExpectError(res, tt.want, tt.name)
		})
	}
	// Nothing changed: carol is no member, bob still in, alice owner.
	res, _ := adminIQ(alice, "get", "team", "<item affiliation='member'/>")
	if its := res.El.FindElements("./query/item"); res.Type != "result" || len(its) != 0 {
		t.Errorf("the member list after the refusals: %s", alice.String(res.El))
	}
	say(bob, "team", "after", "still here")
	if st := nextGroupchat(t, carol); parleytest.Body(st) != "still here" {
		t.Errorf("after the refusals the room sent %s", carol.String(st.El))
	}
	// With a second owner, the first may step down.
	alice.ExpectResult(adminIQ1(alice, "set", "<item affiliation='owner' jid='dave@localhost'/>"), "dave owner")
	alice.ExpectResult(adminIQ1(alice, "set", "<item affiliation='admin' jid='alice@localhost'/>"), "alice steps down")
}

// adminIQ1 is adminIQ on room "team", for the answer alone.
func adminIQ1(c *parleytest.Conn, typ, items string) *xmpp.Stanza {
	st, _ := adminIQ(c, typ, "team", items)
	return st
}

// TestAdminLists: the lists by affiliation and by role.
func TestAdminLists(t *testing.T) {
	_, alice, bob, _, _ := team(t, nil)
	alice.ExpectResult(adminIQ1(alice, "set", "<item affiliation='member' jid='carol@localhost'/>"+
		"<item affiliation='member' jid='erin@localhost'/><item affiliation='outcast' jid='mallory@localhost'/>"), "the changes")
	alice.ExpectResult(adminIQ1(alice, "set", "<item nick='Bob' role='visitor'/>"), "bob visitor")
	tests := []struct{ item, attr, want string }{
		{"<item affiliation='member'/>", "jid", "carol@localhost erin@localhost"},
		{"<item affiliation='outcast'/>", "jid", "mallory@localhost"},
		{"<item affiliation='owner'/>", "jid", "alice@localhost"},
		{"<item affiliation='admin'/>", "jid", ""},
		{"<item role='moderator'/>", "nick", "Alice"},
		{"<item role='participant'/>", "nick", "Carol"},
		{"<item role='visitor'/>", "nick", "Bob"},
	}
	for _, tt := range tests {
		res := adminIQ1(alice, "get", tt.item)
		alice.ExpectResult(res, tt.item)
		var got []string
		for _, it := range res.El.FindElements("./query/item") {
			got = append(got, it.SelectAttrValue(tt.attr, ""))
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("%s lists %q; want %q", tt.item, got, tt.want)
		}
	}
	_ = bob
}

// TestMembersOnly: a room that becomes members-only removes its
// non-members (322); a non-member's join gets registration-required
// until an admin makes it a member; a member removed from the list
// leaves with 321.
func TestMembersOnly(t *testing.T) {
	_, alice, bob, carol, _ := team(t, nil)
	alice.ExpectResult(adminIQ1(alice, "set", "<item affiliation='member' jid='carol@localhost'/>"), "carol member")
	carol.UntilSync()
	alice.ExpectResult(configure(alice, "team", map[string]string{"muc#roomconfig_membersonly": "1"}), "members-only")
	if got := seen(presenceFrom(bob.UntilSync(), "team", "Bob")); got != "unavailable none none [110,322]" {
		t.Errorf("bob, no member, sees himself %s", got)
	}
	if got := seen(presenceFrom(carol.UntilSync(), "team", "Bob")); got != "unavailable none none [322]" {
		t.Errorf("carol sees bob %s", got)
	}
	if got := join(t, bob, "team", "Bob", ""); parleytest.Condition(got[len(got)-1]) != xmpp.RegistrationRequired {
		t.Fatalf("a non-member's join got %s", bob.Dump(got))
	}
	alice.ExpectResult(adminIQ1(alice, "set", "<item affiliation='member' jid='bob@localhost'/>"), "bob member")
	if got := join(t, bob, "team", "Bob", ""); !isSelf(got[len(got)-2]) {
		t.Fatalf("a member's join got %s", bob.Dump(got))
	}
	carol.UntilSync()
	alice.ExpectResult(adminIQ1(alice, "set", "<item affiliation='none' jid='bob@localhost'/>"), "bob no member")
	if got := seen(presenceFrom(carol.UntilSync(), "team", "Bob")); got != "unavailable none none [321]" {
		t.Errorf("carol sees bob's removal as %s", got)
	}
}

// TestModerated: in a moderated room one of no affiliation joins as a
// visitor, whose groupchat is forbidden and whose private messages
// allowpm=participants refuses, until a moderator gives voice.
func TestModerated(t *testing.T) {
	_, alice, bob, carol, _ := team(t, map[string]string{"muc#roomconfig_moderatedroom": "1", "muc#roomconfig_allowpm": "participants"})
	if got := seen(presenceFrom(alice.UntilSync(), "team", "Bob")); got != "no presence" {
		t.Fatalf("stale presence: %s", got)
	}
	// Bob joined after the room was moderated: a visitor.
	list := adminIQ1(alice, "get", "<item role='visitor'/>")
	if its := list.El.FindElements("./query/item"); len(its) != 2 {
		t.Fatalf("the visitors: %s", alice.String(list.El))
	}
	tests := []struct {
		name, send string
		want       xmpp.StanzaCondition
	}{
		{"groupchat", "<message to='%s' type='groupchat' id='v1'><body>hi</body></message>", xmpp.Forbidden},
		{"subject", "<message to='%s' type='groupchat' id='v1'><subject>mine</subject></message>", xmpp.Forbidden},
		{"private message", "<message to='%s/Alice' type='chat' id='v1'><body>psst</body></message>", xmpp.NotAllowed},
	}
	for _, tt := range tests {
		bob.Send(tt.send, roomJID("team", ""))
		st, _ := bob.WaitFor("the answer", func(st *xmpp.Stanza) bool { return st.ID == "v1" })
		if parleytest.Condition(st) != tt.want {
			t.Errorf("a visitor's %s got %s; want %s", tt.name, bob.String(st.El), tt.want)
		}
	}
	alice.ExpectResult(adminIQ1(alice, "set", "<item nick='Bob' role='participant'/>"), "voice")
	say(bob, "team", "v2", "now I may")
	if st := nextGroupchat(t, alice); parleytest.Body(st) != "now I may" {
		t.Errorf("alice got %s", alice.String(st.El))
	}

	// Carol asks for voice (§7.13); the moderator gets the form and
	// approves it (§8.6).
	form := "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>%s</x>"
	carol.Send("<message to='%s'>"+form+"</message>", roomJID("team", ""),
		"<field var='muc#role'><value>participant</value></field>")
	req, _ := alice.WaitFor("the voice request", func(st *xmpp.Stanza) bool {
		return st.Kind == xmpp.KindMessage && xmpp.Child(st.El, "jabber:x:data", "x") != nil
	})
	fields := map[string]string{}
	for _, f := range req.El.FindElements("./x/field") {
		fields[f.SelectAttrValue("var", "")] = f.SelectElement("value").Text()
	}
	if fields["muc#roomnick"] != "Carol" || fields["muc#jid"] != carol.JID.String() || fields["muc#request_allow"] != "false" {
		t.Fatalf("alice got the voice request %s", alice.String(req.El))
	}
	alice.Send("<message to='%s'>"+form+"</message>", roomJID("team", ""),
		"<field var='muc#roomnick'><value>Carol</value></field><field var='muc#jid'><value>"+carol.JID.String()+
			"</value></field><field var='muc#request_allow'><value>true</value></field>")
	// The approval is a message, with no answer to wait for, and a
	// flush under way in another goroutine may send its presence after
	// a sync's ping is answered: wait for the presence itself.
	voiced, _ := alice.WaitFor("carol's presence after the approval", func(st *xmpp.Stanza) bool {
		return st.Kind == xmpp.KindPresence && st.From.String() == roomJID("team", "Carol")
	})
	if got := seen(voiced); got != "available participant none []" {
		t.Errorf("after the approval alice sees carol as %s", got)
	}
	say(carol, "team", "v3", "thanks")
	if st := nextGroupchat(t, alice); parleytest.Body(st) != "thanks" {
		t.Errorf("alice got %s", alice.String(st.El))
	}
}

// TestDestroy: the owner destroys a persistent room with a reason and an
// alternate venue; each occupant gets its unavailable presence with the
// <destroy/>, the room is gone, and stays gone after a restart; a
// non-owner's destroy is forbidden.
func TestDestroy(t *testing.T) {
	dir := t.TempDir()
	onDisk := parleytest.WithConfig(func(c *conf.Config) {
		c.Database = filepath.Join(dir, "parley.db")
		c.DataDir = dir
	})
	s, alice, bob, _, _ := team(t, map[string]string{"muc#roomconfig_persistentroom": "1"}, onDisk)
	destroy := "<query xmlns='" + muc.NSMUCOwner + "'><destroy jid='" + roomJID("new", "") + "'><reason>moved</reason></destroy></query>"
	bob.ExpectError(bob.IQ("set", roomJID("team", ""), destroy), xmpp.Forbidden, "bob's destroy")
	alice.ExpectResult(alice.IQ("set", roomJID("team", ""), destroy), "the destroy")
	self := presenceFrom(bob.UntilSync(), "team", "Bob")
	if got := seen(self); got != "unavailable none none [110]" {
		t.Fatalf("bob sees the destroy as %s", got)
	}
	d := xmpp.Child(self.El, muc.NSMUCUser, "x").SelectElement("destroy")
	if d == nil || d.SelectAttrValue("jid", "") != roomJID("new", "") || d.SelectElement("reason") == nil ||
		d.SelectElement("reason").Text() != "moved" {
		t.Errorf("bob's presence has no destroy with the venue and reason: %s", bob.String(self.El))
	}
	disco := "<query xmlns='http://jabber.org/protocol/disco#info'/>"
	bob.ExpectError(bob.IQ("get", roomJID("team", ""), disco), xmpp.ItemNotFound, "the destroyed room")

	ctx, cancel := context.WithTimeout(context.Background(), parleytest.Timeout)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	s2 := parleytest.Start(t, withMUC(nil), onDisk)
	bob = login(t, s2, "bob", "b2")
	bob.ExpectError(bob.IQ("get", roomJID("team", ""), disco), xmpp.ItemNotFound, "the destroyed room after a restart")
}

// TestInvitations: a mediated invitation reaches the invitee from the
// room with the inviter and the room's password, and a decline reaches
// the inviter; in a members-only room only admins may invite, and the
// invitee becomes a member who may join.
func TestInvitations(t *testing.T) {
	_, alice, bob, _, dave := team(t, nil)
	alice.ExpectResult(configure(alice, "team", map[string]string{"muc#roomconfig_passwordprotectedroom": "1",
		"muc#roomconfig_roomsecret": "s3cret"}), "the password")
	invite := "<message to='%s' id='%s'><x xmlns='" + muc.NSMUCUser + "'><invite to='dave@localhost'><reason>%s</reason></invite></x></message>"
	bob.Send(invite, roomJID("team", ""), "i1", "join us")
	st, _ := dave.WaitFor("the invitation", func(st *xmpp.Stanza) bool { return st.ID == "i1" })
	x := xmpp.Child(st.El, muc.NSMUCUser, "x")
	if st.From.String() != roomJID("team", "") || x == nil || x.SelectElement("invite") == nil ||
		x.SelectElement("invite").SelectAttrValue("from", "") != bob.JID.String() ||
		x.SelectElement("password") == nil || x.SelectElement("password").Text() != "s3cret" ||
		x.FindElement("invite/reason") == nil || x.FindElement("invite/reason").Text() != "join us" {
		t.Fatalf("dave got %s; want the invitation from the room, from bob, with the password and reason", dave.String(st.El))
	}
	dave.Send("<message to='%s'><x xmlns='%s'><decline to='%s'><reason>busy</reason></decline></x></message>",
		roomJID("team", ""), muc.NSMUCUser, bob.JID.String())
	st, _ = bob.WaitFor("the decline", func(st *xmpp.Stanza) bool {
		x := xmpp.Child(st.El, muc.NSMUCUser, "x")
		return x != nil && x.SelectElement("decline") != nil
	})
	if d := xmpp.Child(st.El, muc.NSMUCUser, "x").SelectElement("decline"); st.From.String() != roomJID("team", "") ||
		!strings.HasPrefix(d.SelectAttrValue("from", ""), "dave@localhost") {
		t.Errorf("bob got %s; want dave's decline from the room", bob.String(st.El))
	}

	alice.ExpectResult(configure(alice, "team", map[string]string{"muc#roomconfig_membersonly": "1",
		"muc#roomconfig_passwordprotectedroom": "0"}), "members-only")
	alice.ExpectResult(adminIQ1(alice, "set", "<item affiliation='member' jid='bob@localhost'/>"), "bob member")
	join(t, bob, "team", "Bob", "")
	bob.Send(invite, roomJID("team", ""), "i2", "")
	st, _ = bob.WaitFor("the refusal", func(st *xmpp.Stanza) bool { return st.ID == "i2" })
	if parleytest.Condition(st) != xmpp.Forbidden {
		t.Errorf("a member's invitation to a members-only room got %s", bob.String(st.El))
	}
	if got := join(t, dave, "team", "Dave", ""); parleytest.Condition(got[len(got)-1]) != xmpp.RegistrationRequired {
		t.Fatalf("dave's join before the invitation got %s", dave.Dump(got))
	}
	alice.Send(invite, roomJID("team", ""), "i3", "")
	dave.WaitFor("the invitation", func(st *xmpp.Stanza) bool { return st.ID == "i3" })
	if got := join(t, dave, "team", "Dave", ""); !isSelf(got[len(got)-2]) || item(got[len(got)-2]).SelectAttrValue("affiliation", "") != "member" {
		t.Errorf("the invited dave's join got %s", dave.Dump(got))
	}
}

// TestBanSurvivesRestart: affiliation changes are stored before the
// answer: a ban in a persistent room holds after a restart.
func TestBanSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	onDisk := parleytest.WithConfig(func(c *conf.Config) {
		c.Database = filepath.Join(dir, "parley.db")
		c.DataDir = dir
	})
	s, alice, _, _, _ := team(t, map[string]string{"muc#roomconfig_persistentroom": "1"}, onDisk)
	alice.ExpectResult(adminIQ1(alice, "set", "<item affiliation='outcast' jid='bob@localhost'/>"+
		"<item affiliation='admin' jid='dave@localhost'/>"), "ban and admin")
	ctx, cancel := context.WithTimeout(context.Background(), parleytest.Timeout)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	s2 := parleytest.Start(t, withMUC(nil), onDisk)
	bob, dave := login(t, s2, "bob", "b2"), login(t, s2, "dave", "d2")
	if got := join(t, bob, "team", "Bob", ""); parleytest.Condition(got[len(got)-1]) != xmpp.Forbidden {
		t.Errorf("the banned bob's join after a restart got %s", bob.Dump(got))
	}
	if got := join(t, dave, "team", "Dave", ""); seen(got[len(got)-2]) != "available moderator admin [110]" {
		t.Errorf("dave's join after a restart: %s", dave.Dump(got))
	}
}

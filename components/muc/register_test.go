package muc_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/parley-im/parley/components/muc"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// registerIQ is the jabber:iq:register query with inner.
func registerIQ(inner string) string {
	return "<query xmlns='jabber:iq:register'>" + inner + "</query>"
}

// regForm is a submitted muc#register form with the nick.
func regForm(formType, nick string) string {
	return registerIQ(fmt.Sprintf("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>%s</value></field>"+
		"<field var='muc#register_roomnick'><value>%s</value></field></x>", formType, nick))
}

const formRegister = "http://jabber.org/protocol/muc#register"

// roomUserItem returns the nick the x-roomuser-item node gives c in
// room, "" for an empty answer.
func roomUserItem(t *testing.T, c *parleytest.Conn, room string) string {
	t.Helper()
	res := c.IQ("get", roomJID(room, ""), "<query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/>")
	c.ExpectResult(res, "x-roomuser-item")
	q := res.El.FindElement("./query")
	if q == nil || q.SelectAttrValue("node", "") != "x-roomuser-item" {
		t.Fatalf("x-roomuser-item answered %s; want its query with the node", c.String(res.El))
	}
	if id := q.SelectElement("identity"); id != nil {
		if id.SelectAttrValue("category", "") != "conference" || id.SelectAttrValue("type", "") != "text" {
			t.Errorf("x-roomuser-item's identity %s; want conference/text", c.String(res.El))
		}
		return id.SelectAttrValue("name", "")
	}
	return ""
}

// TestRegisterNick: XEP-0045 §7.10 and §7.12: a member gets the
// registration form, registers a nick, finds it registered (the form's
// get, x-roomuser-item, the member list), and the nick is reserved:
// another user's join or nick change to it gets conflict. The refusals
// change nothing; <remove/> unregisters and ends the membership.
func TestRegisterNick(t *testing.T) {
	_, alice, bob, carol, dave := team(t, nil)
	alice.ExpectResult(adminIQ1(alice, "set", "<item affiliation='member' jid='bob@localhost'/>"+
		"<item affiliation='outcast' jid='dave@localhost'/>"), "bob member, dave banned")

	form := bob.IQ("get", roomJID("team", ""), registerIQ(""))
	bob.ExpectResult(form, "the registration form")
	nickField := form.El.FindElement("./query/x/field[@var='muc#register_roomnick']")
	if ft := form.El.FindElement("./query/x/field[@var='FORM_TYPE']/value"); ft == nil || ft.Text() != formRegister ||
		nickField == nil || nickField.SelectElement("required") == nil {
		t.Fatalf("the form: %s; want the muc#register form with muc#register_roomnick required", bob.String(form.El))
	}
	if n := roomUserItem(t, bob, "team"); n != "" {
		t.Errorf("x-roomuser-item before registering names %q", n)
	}
	bob.ExpectResult(bob.IQ("set", roomJID("team", ""), regForm(formRegister, "Bobby")), "bob registers Bobby")

	refusals := []struct {
		name    string
		by      *parleytest.Conn
		typ, iq string
		want    xmpp.StanzaCondition
	}{
		{"a user of no affiliation asks for the form", carol, "get", registerIQ(""), xmpp.RegistrationRequired},
		{"a user of no affiliation registers", carol, "set", regForm(formRegister, "Caro"), xmpp.RegistrationRequired},
		{"a banned user asks for the form", dave, "get", registerIQ(""), xmpp.Forbidden},
		{"the owner registers bob's nick", alice, "set", regForm(formRegister, "Bobby"), xmpp.Conflict},
		{"the owner registers an occupant's nick", alice, "set", regForm(formRegister, "Carol"), xmpp.Conflict},
		{"a form of another type", alice, "set", regForm("urn:example:other", "Al"), xmpp.BadRequest},
		{"no form", alice, "set", registerIQ(""), xmpp.BadRequest},
		{"an empty nick", alice, "set", regForm(formRegister, ""), xmpp.BadRequest},
		{"a nick that fails resourceprep", alice, "set", regForm(formRegister, "a\u200bb"), xmpp.BadRequest},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			tt.by.ExpectError(tt.by.IQ(tt.typ, roomJID("team", ""), tt.iq), tt.want, tt.name)
		})
	}

	got := bob.IQ("get", roomJID("team", ""), registerIQ(""))
	if u := got.El.FindElement("./query/username"); got.El.FindElement("./query/registered") == nil || u == nil || u.Text() != "Bobby" {
		t.Errorf("bob's registration get: %s; want <registered/> and username Bobby", bob.String(got.El))
	}
	if n := roomUserItem(t, bob, "team"); n != "Bobby" {
		t.Errorf("bob's x-roomuser-item names %q; want Bobby", n)
	}
	if n := roomUserItem(t, carol, "team"); n != "" {
		t.Errorf("carol's x-roomuser-item names %q; want none", n)
	}
	members, _ := adminIQ(alice, "get", "team", "<item affiliation='member'/>")
	if it := members.El.FindElement("./query/item"); it == nil || it.SelectAttrValue("jid", "") != "bob@localhost" ||
		it.SelectAttrValue("nick", "") != "Bobby" {
		t.Errorf("the member list: %s; want bob with nick Bobby", alice.String(members.El))
	}

	// Reserved: carol may neither move to it nor join with it.
	id := parleytest.NewID("nick")
	carol.Send("<presence id='%s' to='%s'/>", id, roomJID("team", "Bobby"))
	if st, _ := carol.WaitFor("the nick change's answer", func(st *xmpp.Stanza) bool { return st.ID == id }); parleytest.Condition(st) != xmpp.Conflict {
		t.Errorf("carol's change to bob's nick got %s; want conflict", carol.String(st.El))
	}
	carol.Send("<presence to='%s' type='unavailable'/>", roomJID("team", "Carol"))
	carol.WaitFor("carol's leave", isSelf)
	if got := join(t, carol, "team", "Bobby", ""); parleytest.Condition(got[len(got)-1]) != xmpp.Conflict {
		t.Errorf("carol's join as Bobby got %s; want conflict", carol.Dump(got))
	}
	// Bob may use it, from his other nick too.
	id = parleytest.NewID("nick")
	bob.Send("<presence id='%s' to='%s'/>", id, roomJID("team", "Bobby"))
	if st, _ := bob.WaitFor("bob's new nick", func(st *xmpp.Stanza) bool { return isSelf(st) && st.Type == "" }); st.From.Resource() != "Bobby" {
		t.Errorf("bob's change to his registered nick: %s", bob.String(st.El))
	}

	// Unregistering frees the nick and ends bob's membership (he keeps
	// his place: the room is open).
	bob.ExpectResult(bob.IQ("set", roomJID("team", ""), registerIQ("<remove/>")), "bob unregisters")
	if n := roomUserItem(t, bob, "team"); n != "" {
		t.Errorf("after <remove/> x-roomuser-item names %q", n)
	}
	bob.ExpectError(bob.IQ("get", roomJID("team", ""), registerIQ("")), xmpp.RegistrationRequired, "the form after <remove/>")
	bob.Send("<presence to='%s' type='unavailable'/>", roomJID("team", "Bobby"))
	bob.WaitFor("bob's leave", isSelf)
	if got := join(t, carol, "team", "Bobby", ""); !isSelf(got[len(got)-2]) {
		t.Errorf("carol's join as the unregistered Bobby: %s", carol.Dump(got))
	}
}

// TestRegisterUnaffiliated: with allow_unaffiliated_register a user of
// no affiliation registers with an open room and becomes a member (the
// room sees the new affiliation); a members-only room still refuses,
// and so does a room on a service without the option (the default).
func TestRegisterUnaffiliated(t *testing.T) {
	tests := []struct {
		name        string
		allow       bool
		membersOnly bool
		want        xmpp.StanzaCondition // "" for success
	}{
		{"allowed in an open room", true, false, ""},
		{"allowed, but a members-only room", true, true, xmpp.RegistrationRequired},
		{"not allowed", false, false, xmpp.RegistrationRequired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := parleytest.Start(t, withMUC(func(o *muc.Options) { o.AllowUnaffiliatedRegister = tt.allow }))
			for _, u := range []string{"alice", "carol"} {
				s.AddUser(u+"@localhost", "pw")
			}
			alice, carol := login(t, s, "alice", "a"), login(t, s, "carol", "c")
			create(t, alice, "team", "Alice")
			if !tt.membersOnly {
				join(t, carol, "team", "Carol", "")
			} else {
				alice.ExpectResult(configure(alice, "team", map[string]string{"muc#roomconfig_membersonly": "1"}), "members-only")
			}
			res := carol.IQ("set", roomJID("team", ""), regForm(formRegister, "Caro"))
			if tt.want != "" {
				carol.ExpectError(res, tt.want, "carol's registration")
				return
			}
			carol.ExpectResult(res, "carol's registration")
			got := alice.UntilSync()
			if p := presenceFrom(got, "team", "Carol"); seen(p) != "available participant member []" {
				t.Errorf("alice saw %s; want carol's presence as a member", alice.Dump(got))
			}
			if n := roomUserItem(t, carol, "team"); n != "Caro" {
				t.Errorf("carol's registered nick %q; want Caro", n)
			}
		})
	}
}

// TestEnforceRegisteredNick: with enforce_registered_nick (Prosody's
// enforce_registered_nickname) a user who registered a nick joins under
// it whatever nick it asks for, and its self-presence says so with 210
// (XEP-0045 §7.2.9); a change to another nick gets not-acceptable of
// type cancel, as in Prosody; registering kicks the user's occupant
// under another nick (307). Another user's registered nick stays a
// conflict, to a join too. Off, the registered nick is only reserved (the old
// behaviour).
func TestEnforceRegisteredNick(t *testing.T) {
	tests := []struct {
		name    string
		enforce bool
		// joinedAs is the nick bob's join as Bob enters under, assigned
		// whether its self-presence has 210.
		joinedAs string
		assigned bool
		// change is the answer to bob's change to Robert: "" for one
		// that succeeds.
		change xmpp.StanzaCondition
		// kicked is whether carol's registration of Caro, while she is
		// in the room as Carol, kicks her.
		kicked bool
	}{
		{"on", true, "Bobby", true, xmpp.NotAcceptable, true},
		{"off", false, "Bob", false, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := parleytest.Start(t, withMUC(func(o *muc.Options) { o.EnforceRegisteredNick = tt.enforce }))
			for _, u := range []string{"alice", "bob", "carol", "dave"} {
				s.AddUser(u+"@localhost", "pw")
			}
			alice, bob, carol, dave := login(t, s, "alice", "a"), login(t, s, "bob", "b"), login(t, s, "carol", "c"), login(t, s, "dave", "d")
			create(t, alice, "team", "Alice")
			alice.ExpectResult(adminIQ1(alice, "set", "<item affiliation='member' jid='bob@localhost'/>"+
				"<item affiliation='member' jid='carol@localhost'/><item affiliation='member' jid='dave@localhost'/>"), "bob, carol and dave members")
			bob.ExpectResult(bob.IQ("set", roomJID("team", ""), regForm(formRegister, "Bobby")), "bob registers Bobby")
			dave.ExpectResult(dave.IQ("set", roomJID("team", ""), regForm(formRegister, "Davy")), "dave registers Davy")
			join(t, carol, "team", "Carol", "")
			join(t, dave, "team", "Davy", "")
			dave.UntilSync()

			// The nick asked for is checked first, as in Prosody: dave's
			// is a conflict even when bob would enter under his own.
			if got := join(t, bob, "team", "Davy", ""); parleytest.Condition(got[len(got)-1]) != xmpp.Conflict {
				t.Errorf("bob's join as dave's Davy: %s; want conflict", bob.Dump(got))
			}
			got := join(t, bob, "team", "Bob", "")
			self := got[len(got)-1]
			for _, st := range got {
				if isSelf(st) {
					self = st
				}
			}
			if !isSelf(self) || self.From.Resource() != tt.joinedAs || slices.Contains(statusCodes(self), "210") != tt.assigned {
				t.Fatalf("bob's join as Bob: %s; want his self-presence as %s, 210 %v", bob.Dump(got), tt.joinedAs, tt.assigned)
			}
			if p := presenceFrom(dave.UntilSync(), "team", tt.joinedAs); p == nil || p.Type != "" || slices.Contains(statusCodes(p), "210") {
				t.Errorf("dave did not see bob join as %s, without 210", tt.joinedAs)
			}

			id := parleytest.NewID("nick")
			bob.Send("<presence id='%s' to='%s'/>", id, roomJID("team", "Robert"))
			st, _ := bob.WaitFor("the nick change's answer", func(st *xmpp.Stanza) bool {
				return (st.ID == id && st.Type == "error") || (isSelf(st) && st.Type == "")
			})
			if tt.change != "" {
				e := xmpp.ParseStanzaError(st.El)
				if e == nil || e.Condition != tt.change || e.Type != xmpp.ErrCancel {
					t.Errorf("bob's change to Robert: %s; want %s of type cancel", bob.String(st.El), tt.change)
				}
				if p := presenceFrom(dave.UntilSync(), "team", "Robert"); p != nil {
					t.Errorf("dave saw bob as Robert after a refused change")
				}
			} else if st.From.Resource() != "Robert" {
				t.Errorf("bob's change to Robert: %s; want his self-presence as Robert", bob.String(st.El))
			}

			id = parleytest.NewID("nick")
			carol.Send("<presence id='%s' to='%s'/>", id, roomJID("team", "Bobby"))
			if st, _ := carol.WaitFor("the nick change's answer", func(st *xmpp.Stanza) bool { return st.ID == id }); parleytest.Condition(st) != xmpp.Conflict {
				t.Errorf("carol's change to bob's nick got %s; want conflict", carol.String(st.El))
			}

			res, before := carol.IQAll("set", roomJID("team", ""), regForm(formRegister, "Caro"))
			carol.ExpectResult(res, "carol registers Caro")
			if p := presenceFrom(before, "team", "Carol"); (p != nil && seen(p) == "unavailable none member [110,307]") != tt.kicked {
				t.Fatalf("carol's registration as Carol brought %s; kicked want %v", carol.Dump(before), tt.kicked)
			}
			if !tt.kicked {
				return
			}
			got = join(t, carol, "team", "Carol", "")
			if self := got[len(got)-2]; !isSelf(self) || self.From.Resource() != "Caro" || !slices.Contains(statusCodes(self), "210") {
				t.Errorf("carol's join as Carol after registering: %s; want her self-presence as Caro with 210", carol.Dump(got))
			}
		})
	}
}

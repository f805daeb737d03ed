package muc_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// formValue returns the value of the field v of the form in an owner
// query result.
func formValue(st *xmpp.Stanza, v string) (string, bool) {
	for _, f := range st.El.FindElements("./query/x/field") {
		if f.SelectAttrValue("var", "") == v {
			if val := f.SelectElement("value"); val != nil {
				return val.Text(), true
			}
			return "", true
		}
	}
	return "", false
}

// TestConfigForm: the owner's form round trip (XEP-0045 §10.2), the
// refusals of a form with unknown fields or wrong types (bad-request),
// and of a non-owner (forbidden); the room keeps its config after each.
func TestConfigForm(t *testing.T) {
	s := startMUC(t, []string{"alice", "bob"})
	alice, bob := login(t, s, "alice", "a"), login(t, s, "bob", "b")
	create(t, alice, "team", "Alice")
	owner := "<query xmlns='http://jabber.org/protocol/muc#owner'/>"

	set := map[string]string{"muc#roomconfig_roomname": "The Team", "muc#roomconfig_roomdesc": "ours",
		"muc#roomconfig_publicroom": "0", "muc#roomconfig_maxusers": "30", "muc#roomconfig_whois": "anyone",
		"muc#roomconfig_changesubject": "1", "muc#roomconfig_allowpm": "moderators", "muc#roomconfig_moderatedroom": "1"}
	alice.ExpectResult(configure(alice, "team", set), "the config")
	got := alice.IQ("get", roomJID("team", ""), owner)
	alice.ExpectResult(got, "the form")
	for k, want := range set {
		if v, ok := formValue(got, k); !ok || v != want {
			t.Errorf("field %s = %q (present %v); want %q", k, v, ok, want)
		}
	}

	tests := []struct {
		name   string
		fields map[string]string
	}{
		{"an unknown field", map[string]string{"muc#roomconfig_nosuchthing": "1"}},
		{"a boolean that is not one", map[string]string{"muc#roomconfig_persistentroom": "yes"}},
		{"a list value not offered", map[string]string{"muc#roomconfig_whois": "everyone"}},
		{"maxusers not a number", map[string]string{"muc#roomconfig_maxusers": "many"}},
		{"a password protection without a password", map[string]string{"muc#roomconfig_passwordprotectedroom": "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fields := maps(tt.fields, map[string]string{"muc#roomconfig_roomname": "changed"})
			alice.ExpectError(configure(alice, "team", fields), xmpp.BadRequest, tt.name)
		})
	}
	t.Run("a non-owner", func(t *testing.T) {
		join(t, bob, "team", "Bob", "")
		bob.ExpectError(bob.IQ("get", roomJID("team", ""), owner), xmpp.Forbidden, "bob's form get")
		bob.ExpectError(configure(bob, "team", map[string]string{"muc#roomconfig_roomname": "bob's"}), xmpp.Forbidden, "bob's submit")
	})
	got = alice.IQ("get", roomJID("team", ""), owner)
	if v, _ := formValue(got, "muc#roomconfig_roomname"); v != "The Team" {
		t.Errorf("after the refusals the room's name is %q; want The Team", v)
	}
}

func maps(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range b {
		out[k] = v
	}
	for k, v := range a {
		out[k] = v
	}
	return out
}

// TestDisco: the service's identity and features, its public rooms, and
// a room's features from its config: what is not enforced (moderation)
// is not claimed.
func TestDisco(t *testing.T) {
	s := startMUC(t, []string{"alice"})
	alice := login(t, s, "alice", "a")
	create(t, alice, "open", "Alice")
	create(t, alice, "hidden", "Alice")
	alice.ExpectResult(configure(alice, "hidden", map[string]string{"muc#roomconfig_publicroom": "0",
		"muc#roomconfig_moderatedroom": "1", "muc#roomconfig_persistentroom": "1"}), "hidden's config")

	info := alice.IQ("get", service, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
	if id := info.El.FindElement("./query/identity"); id == nil || id.SelectAttrValue("category", "") != "conference" ||
		id.SelectAttrValue("type", "") != "text" || !slices.Contains(features(info), "http://jabber.org/protocol/muc") {
		t.Errorf("the service's disco#info: %s", alice.String(info.El))
	}
	items := alice.IQ("get", service, "<query xmlns='http://jabber.org/protocol/disco#items'/>")
	var listed []string
	for _, it := range items.El.FindElements("./query/item") {
		listed = append(listed, it.SelectAttrValue("jid", ""))
	}
	if !slices.Equal(listed, []string{roomJID("open", "")}) {
		t.Errorf("disco#items lists %q; want the public room alone", listed)
	}
	tests := []struct {
		room      string
		want, not []string
	}{
		{"open", []string{"http://jabber.org/protocol/muc", "muc_public", "muc_temporary", "muc_semianonymous", "muc_open",
			"muc_unsecured", "muc_unmoderated", "urn:xmpp:occupant-id:0", "http://jabber.org/protocol/muc#self-ping-optimization"},
			[]string{"muc_moderated"}},
		// Moderation is enforced (visitors need voice), so claimed.
		{"hidden", []string{"muc_hidden", "muc_persistent", "muc_moderated"}, []string{"muc_unmoderated", "muc_public"}},
	}
	for _, tt := range tests {
		info := alice.IQ("get", roomJID(tt.room, ""), "<query xmlns='http://jabber.org/protocol/disco#info'/>")
		f := features(info)
		for _, w := range tt.want {
			if !slices.Contains(f, w) {
				t.Errorf("%s lacks %s: %q", tt.room, w, f)
			}
		}
		for _, n := range tt.not {
			if slices.Contains(f, n) {
				t.Errorf("%s claims %s: %q", tt.room, n, f)
			}
		}
		if x := info.El.FindElement("./query/x"); x == nil {
			t.Errorf("%s has no muc#roominfo form", tt.room)
		}
	}
}

func features(st *xmpp.Stanza) []string {
	var out []string
	for _, f := range st.El.FindElements("./query/feature") {
		out = append(out, f.SelectAttrValue("var", ""))
	}
	return out
}

// TestSelfPing: XEP-0410: a joined client's ping to its own occupant JID
// is answered by the room; a client that is not joined gets
// not-acceptable.
func TestSelfPing(t *testing.T) {
	s := startMUC(t, []string{"alice", "bob"})
	alice, bob := login(t, s, "alice", "a"), login(t, s, "bob", "b")
	create(t, alice, "team", "Alice")
	ping := "<ping xmlns='urn:xmpp:ping'/>"
	alice.ExpectResult(alice.IQ("get", roomJID("team", "Alice"), ping), "the self-ping")
	bob.ExpectError(bob.IQ("get", roomJID("team", "Bob"), ping), xmpp.NotAcceptable, "a ping from outside")
}

// TestSubjectRights: by default only moderators change the subject; the
// changesubject option lets participants.
func TestSubjectRights(t *testing.T) {
	s := startMUC(t, []string{"alice", "bob"})
	alice, bob := login(t, s, "alice", "a"), login(t, s, "bob", "b")
	create(t, alice, "team", "Alice")
	join(t, bob, "team", "Bob", "")
	bob.Send("<message to='%s' type='groupchat' id='s1'><subject>mine</subject></message>", roomJID("team", ""))
	st, _ := bob.WaitFor("the refusal", func(st *xmpp.Stanza) bool { return st.ID == "s1" })
	if parleytest.Condition(st) != xmpp.Forbidden {
		t.Errorf("a participant's subject got %s; want forbidden", bob.String(st.El))
	}
	alice.ExpectResult(configure(alice, "team", map[string]string{"muc#roomconfig_changesubject": "1"}), "changesubject")
	bob.Send("<message to='%s' type='groupchat' id='s2'><subject>mine</subject></message>", roomJID("team", ""))
	st, _ = alice.WaitFor("the subject", func(st *xmpp.Stanza) bool { return st.ID == "s2" })
	if st.Type != "groupchat" || st.From.Resource() != "Bob" {
		t.Errorf("alice got %s; want Bob's subject", alice.String(st.El))
	}
}

// TestPersistence: a persistent room's config, affiliations and subject
// survive a restart with a file database; a temporary room does not
// outlive its last occupant.
func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	onDisk := parleytest.WithConfig(func(c *conf.Config) {
		c.Database = filepath.Join(dir, "parley.db")
		c.DataDir = dir
	})
	s1 := startMUC(t, []string{"alice", "bob"}, onDisk)
	alice := login(t, s1, "alice", "a")
	create(t, alice, "kept", "Alice")
	alice.ExpectResult(configure(alice, "kept", map[string]string{"muc#roomconfig_persistentroom": "1",
		"muc#roomconfig_roomname": "Kept"}), "persistent")
	alice.Send("<message to='%s' type='groupchat'><subject>still here</subject></message>", roomJID("kept", ""))
	alice.WaitFor("the subject", func(st *xmpp.Stanza) bool { return xmpp.Child(st.El, "", "subject") != nil })
	create(t, alice, "temp", "Alice")
	alice.Send("<presence type='unavailable' to='%s'/>", roomJID("temp", "Alice"))
	alice.WaitFor("the leave", func(st *xmpp.Stanza) bool { return st.Type == "unavailable" })
	ctx, cancel := context.WithTimeout(context.Background(), parleytest.Timeout)
	defer cancel()
	if err := s1.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	s2 := parleytest.Start(t, withMUC(nil), onDisk)
	alice, bob := login(t, s2, "alice", "a2"), login(t, s2, "bob", "b")
	got := join(t, bob, "kept", "Bob", "")
	subj := got[len(got)-1]
	if s := xmpp.Child(subj.El, "", "subject"); s == nil || s.Text() != "still here" {
		t.Errorf("the subject after the restart: %s", bob.Dump(got))
	}
	form := alice.IQ("get", roomJID("kept", ""), "<query xmlns='http://jabber.org/protocol/muc#owner'/>")
	if v, _ := formValue(form, "muc#roomconfig_roomname"); form.Type != "result" || v != "Kept" {
		t.Errorf("alice, owner before the restart, got %s", alice.String(form.El))
	}
	bob.ExpectError(bob.IQ("get", roomJID("kept", ""), "<query xmlns='http://jabber.org/protocol/muc#owner'/>"),
		xmpp.Forbidden, "bob's form get")
	info := bob.IQ("get", roomJID("temp", ""), "<query xmlns='http://jabber.org/protocol/disco#info'/>")
	bob.ExpectError(info, xmpp.ItemNotFound, "the temporary room after the restart")
}

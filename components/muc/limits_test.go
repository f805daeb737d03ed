package muc_test

import (
	"testing"

	"github.com/parley-im/parley/components/muc"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// joinResult is the condition of a join's answer: "" for a welcome.
func joinResult(t *testing.T, c *parleytest.Conn, room, nick string) xmpp.StanzaCondition {
	t.Helper()
	sts := join(t, c, room, nick, "")
	return parleytest.Condition(sts[len(sts)-1])
}

// TestMaxUserRooms: a user is in at most max_user_rooms rooms at once,
// whether the next would be an existing room or a new one (which is then
// not created); a room left, or one the user is kicked from, frees a
// place.
func TestMaxUserRooms(t *testing.T) {
	s := parleytest.Start(t, withMUC(func(o *muc.Options) { o.MaxUserRooms = 2 }))
	s.AddUser("alice@localhost", "pw")
	s.AddUser("bob@localhost", "pw")
	alice, bob := login(t, s, "alice", "r"), login(t, s, "bob", "r")
	create(t, bob, "open", "bob")
	create(t, alice, "a1", "alice")
	create(t, alice, "a2", "alice")
	steps := []struct {
		name string
		room string
		want xmpp.StanzaCondition
	}{
		{"a third, existing room", "open", xmpp.ResourceConstraint},
		{"a third, new room", "new", xmpp.ResourceConstraint},
	}
	for _, st := range steps {
		if got := joinResult(t, alice, st.room, "alice"); got != st.want {
			t.Errorf("%s: the join got %q, want %q", st.name, got, st.want)
		}
	}
	// The refused new room was not created: bob creates it (201).
	sts := join(t, bob, "new", "bob", "")
	if !containsCode(sts, "201") {
		t.Errorf("bob's join of the refused room: %s; want it created now (201)", describe(sts))
	}
	bob.ExpectResult(bob.IQ("set", roomJID("new", ""), instant), "the instant room's config")
	// A room left frees a place.
	alice.Send("<presence type='unavailable' to='%s'/>", roomJID("a1", "alice"))
	alice.UntilSync()
	if got := joinResult(t, alice, "open", "alice"); got != "" {
		t.Fatalf("after leaving a room, a join got %q", got)
	}
	// So does a kick (bob owns "open").
	bob.ExpectResult(bob.IQ("set", roomJID("open", ""), "<query xmlns='"+muc.NSMUCAdmin+"'><item nick='alice' role='none'/></query>"), "the kick")
	alice.UntilSync()
	if got := joinResult(t, alice, "new", "alice"); got != "" {
		t.Fatalf("after a kick, a join got %q", got)
	}
}

// containsCode reports whether one of sts carries the status code.
func containsCode(sts []*xmpp.Stanza, code string) bool {
	for _, st := range sts {
		for _, c := range statusCodes(st) {
			if c == code {
				return true
			}
		}
	}
	return false
}

// TestMaxRooms: the service holds at most max_rooms rooms; a temporary
// room that empties makes room for another.
func TestMaxRooms(t *testing.T) {
	s := parleytest.Start(t, withMUC(func(o *muc.Options) { o.MaxRooms = 2 }))
	s.AddUser("alice@localhost", "pw")
	s.AddUser("bob@localhost", "pw")
	alice, bob := login(t, s, "alice", "r"), login(t, s, "bob", "r")
	create(t, alice, "r1", "alice")
	create(t, alice, "r2", "alice")
	if got := joinResult(t, bob, "r3", "bob"); got != xmpp.ResourceConstraint {
		t.Fatalf("a third room: %q, want resource-constraint", got)
	}
	if got := joinResult(t, bob, "r1", "bob"); got != "" {
		t.Fatalf("joining an existing room at the limit: %q", got)
	}
	bob.Send("<presence type='unavailable' to='%s'/>", roomJID("r1", "bob"))
	alice.Send("<presence type='unavailable' to='%s'/>", roomJID("r1", "alice"))
	alice.UntilSync()
	bob.UntilSync()
	sts := join(t, bob, "r3", "bob", "")
	if !containsCode(sts, "201") {
		t.Errorf("once r1 emptied, bob's new room: %s; want it created (201)", describe(sts))
	}
}

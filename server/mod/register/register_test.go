package register_test

import (
	"testing"

	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/server/mod/register"
	"github.com/parley-im/parley/xmpp"
)

// canLogin reports whether user@localhost logs in with password.
func canLogin(t *testing.T, s *parleytest.Server, user, password string) bool {
	t.Helper()
	c := s.DialSecure("localhost")
	defer c.Close()
	return c.AuthPlain(user, password).Tag == "success"
}

// TestAccountRemoval: XEP-0077 §3.3. The user's own removal is answered
// with a result, then every session of the account ends with
// <not-authorized/>, and the account is gone; nobody removes another's.
func TestAccountRemoval(t *testing.T) {
	remove := "<query xmlns='" + register.NS + "'><remove/></query>"
	tests := []struct {
		name, to string
	}{
		{"without to", ""},
		{"to the bare JID", "alice@localhost"},
		{"to the domain", "localhost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := parleytest.Start(t)
			s.AddUser("alice@localhost", "a")
			s.AddUser("bob@localhost", "b")
			phone := s.Login("alice@localhost", "a", "phone")
			desk := s.Login("alice@localhost", "a", "desk")
			bob := s.Login("bob@localhost", "b", "x")

			bob.ExpectError(bob.IQ("set", "alice@localhost", remove), xmpp.Forbidden, "bob removing alice")
			if !canLogin(t, s, "alice", "a") {
				t.Fatal("bob's attempt removed alice")
			}

			phone.ExpectResult(phone.IQNext("set", tt.to, remove), "removal")
			phone.ExpectStreamError(xmpp.StreamNotAuthorized)
			desk.ExpectStreamError(xmpp.StreamNotAuthorized)
			if canLogin(t, s, "alice", "a") {
				t.Error("alice logs in after her removal")
			}
			if !canLogin(t, s, "bob", "b") {
				t.Error("bob's account went too")
			}
		})
	}
}

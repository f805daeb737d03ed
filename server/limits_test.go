package server_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/xmpp"
)

// limitRefusal checks that st is a stanza error with condition want and a
// text that says text.
func limitRefusal(t *testing.T, c *parleytest.Conn, st *xmpp.Stanza, want xmpp.StanzaCondition, text string) {
	t.Helper()
	se := xmpp.ParseStanzaError(st.El)
	if st.Type != "error" || se == nil || se.Condition != want || !strings.Contains(se.Text, text) {
		t.Fatalf("got %s\nwant an error %s with a text that says %q", c.String(st.El), want, text)
	}
}

// TestPerAccountLimits: each per-account limit of issue #17 refuses what
// passes it with a stanza error whose text says why, lets through what
// stays within it, and counts its refusals (Server.LimitStats).
func TestPerAccountLimits(t *testing.T) {
	tests := []struct {
		name  string
		limit func(l *conf.Limits)
		run   func(t *testing.T, s *parleytest.Server)
		want  local.LimitStats
	}{
		{
			name:  "offline_bytes: a message past the bound in bytes bounces with a text",
			limit: func(l *conf.Limits) { l.OfflineBytes = 20000 },
			run: func(t *testing.T, s *parleytest.Server) {
				imUsers(t, s, "alice", "bob")
				alice := imOnline(t, s, "alice", "phone", "")
				body := strings.Repeat("x", 8000)
				for i := range 3 {
					alice.Send("<message to='bob@localhost' type='chat' id='m%d'><body>%s</body></message>", i, body)
				}
				errs := imErrors(alice.UntilSync())
				if len(errs) != 1 || errs[0].ID != "m2" {
					t.Fatalf("alice got errors:%s\nwant one, for m2", alice.Dump(errs))
				}
				limitRefusal(t, alice, errs[0], xmpp.ServiceUnavailable, "offline storage is full")
				bob := imLogin(t, s, "bob", "desk")
				bob.Send("<presence/>")
				if msgs := imMessages(bob.UntilSync()); len(msgs) != 2 {
					t.Errorf("bob got %d messages, want the 2 that fit:%s", len(msgs), bob.Dump(msgs))
				}
			},
			want: local.LimitStats{OfflineFull: 1, OfflineDelivered: 2},
		},
		{
			name:  "sessions_per_account: a bind past the bound fails with resource-constraint",
			limit: func(l *conf.Limits) { l.SessionsPerAccount = 2 },
			run: func(t *testing.T, s *parleytest.Server) {
				imUsers(t, s, "alice")
				imLogin(t, s, "alice", "one")
				imLogin(t, s, "alice", "two")
				c := s.DialSecure("localhost")
				if el := c.AuthPlain("alice", imPassword("alice")); el.Tag != "success" {
					t.Fatalf("auth: %s", c.String(el))
				}
				c.Open("localhost")
				c.Send("<iq type='set' id='b3'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>three</resource></bind></iq>")
				limitRefusal(t, c, c.NextStanza(), xmpp.ResourceConstraint, "the most one account may have at once")
				// A login with the resource of a bound session replaces it.
				imLogin(t, s, "alice", "two")
			},
			want: local.LimitStats{SessionsRefused: 1},
		},
		{
			name:  "private_storage_bytes: a set past the quota fails with not-acceptable; shrinking passes",
			limit: func(l *conf.Limits) { l.PrivateStorageBytes = 20000 },
			run: func(t *testing.T, s *parleytest.Server) {
				imUsers(t, s, "alice")
				alice := imLogin(t, s, "alice", "phone")
				big := strings.Repeat("y", 8000)
				for i := range 2 {
					alice.ExpectResult(alice.IQ("set", "", fmt.Sprintf("<query xmlns='jabber:iq:private'><x xmlns='urn:test:%d'>%s</x></query>", i, big)), "a set within the quota")
				}
				st := alice.IQ("set", "", fmt.Sprintf("<query xmlns='jabber:iq:private'><x xmlns='urn:test:2'>%s</x></query>", big))
				limitRefusal(t, alice, st, xmpp.NotAcceptable, "private storage is full")
				// Nothing of the refused set was kept.
				got := alice.IQ("get", "", "<query xmlns='jabber:iq:private'><x xmlns='urn:test:2'/></query>")
				if x := got.El.FindElement("query/x"); x == nil || x.Text() != "" {
					t.Errorf("after the refused set, the get answers %s", alice.String(got.El))
				}
				alice.ExpectResult(alice.IQ("set", "", "<query xmlns='jabber:iq:private'><x xmlns='urn:test:0'/></query>"), "a set that frees room")
				alice.ExpectResult(alice.IQ("set", "", fmt.Sprintf("<query xmlns='jabber:iq:private'><x xmlns='urn:test:2'>%s</x></query>", big)), "a set that fits again")
			},
			want: local.LimitStats{PrivateStorageRefused: 1},
		},
		{
			name:  "roster_changes_per_minute: a change past the budget fails with resource-constraint",
			limit: func(l *conf.Limits) { l.RosterChangesPerMinute = 5 },
			run: func(t *testing.T, s *parleytest.Server) {
				imUsers(t, s, "alice")
				alice := imLogin(t, s, "alice", "phone")
				for i := range 5 {
					alice.ExpectResult(alice.IQ("set", "", fmt.Sprintf("<query xmlns='jabber:iq:roster'><item jid='c%d@localhost'/></query>", i)), "a change within the budget")
				}
				st := alice.IQ("set", "", "<query xmlns='jabber:iq:roster'><item jid='c0@localhost' subscription='remove'/></query>")
				limitRefusal(t, alice, st, xmpp.ResourceConstraint, "roster changes in a minute")
				if items := imRoster(t, alice); len(items) != 5 {
					t.Errorf("the roster has %d items after the refused removal, want 5", len(items))
				}
			},
			want: local.LimitStats{RosterChangesRefused: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) { tt.limit(&c.Limits) }))
			tt.run(t, s)
			if got := local.LimitStatsOf(s.Server); got != tt.want {
				t.Errorf("LimitStats() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// TestDelayFromTheServerIsTheServers: a client cannot put a XEP-0203
// delay from one of this server's domains on what it sends (it would
// backdate the message with the server's authority, and stream
// management keeps the first such delay it finds); its own delays, from
// its JID or with no from, pass. Offline delivery then stamps the real
// time.
func TestDelayFromTheServerIsTheServers(t *testing.T) {
	s := parleytest.Start(t)
	s.AddUser("alice@localhost", "pw")
	s.AddUser("bob@localhost", "pw")
	const forged = `<delay xmlns='urn:xmpp:delay' from='%s' stamp='2001-01-01T00:00:00Z'/>`
	const own = `<delay xmlns='urn:xmpp:delay' from='alice@localhost/a' stamp='2002-02-02T00:00:00Z'/>`
	tests := []struct {
		name    string
		delays  string   // what alice puts on the message
		offline bool     // bob is offline when it is sent
		want    []string // the delays bob gets, as from@stamp-year
	}{
		{"the server's domain is refused", strings.ReplaceAll(forged, "%s", "localhost"), false, nil},
		{"another user of the server is refused", strings.ReplaceAll(forged, "%s", "bob@localhost"), false, nil},
		{"a from that is no JID is refused", strings.ReplaceAll(forged, "%s", "a@@b"), false, nil},
		{"the sender's own delay passes", own, false, []string{"alice@localhost/a@2002"}},
		{"a delay with no from passes", `<delay xmlns='urn:xmpp:delay' stamp='2003-03-03T00:00:00Z'/>`, false, []string{"@2003"}},
		{"offline: only the server's real stamp", strings.ReplaceAll(forged, "%s", "localhost") + own, true,
			[]string{"alice@localhost/a@2002", "localhost@" + time.Now().UTC().Format("2006")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alice := s.Login("alice@localhost", "pw", "a")
			defer alice.CloseStream()
			var bob *parleytest.Conn
			if !tt.offline {
				bob = s.Login("bob@localhost", "pw", "b")
				bob.Send("<presence/>")
				bob.Sync()
			}
			alice.Send("<message to='bob@localhost' type='chat' id='d1'><body>when?</body>%s</message>", tt.delays)
			alice.Sync()
			if tt.offline {
				bob = s.Login("bob@localhost", "pw", "b")
				bob.Send("<presence/>")
			}
			defer bob.CloseStream()
			st, _ := bob.WaitFor("the message", func(st *xmpp.Stanza) bool { return st.ID == "d1" })
			var got []string
			for _, d := range st.El.SelectElements("delay") {
				if xmpp.NS(d) != xmpp.NSDelay {
					continue
				}
				got = append(got, d.SelectAttrValue("from", "")+"@"+d.SelectAttrValue("stamp", "")[:4])
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("bob's copy has delays %q, want %q: %s", got, tt.want, bob.String(st.El))
			}
		})
	}
}

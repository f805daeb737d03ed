package local_test

import (
	"strings"
	"testing"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// TestLargeStanzasComeBackFromTheStore: what a config lets a client send
// is read back from the store whole, however large stanza_size is. With a
// fixed 1 MiB bound on reading back, a 1.5 MiB offline message was stored,
// then dropped as unreadable at login.
func TestLargeStanzasComeBackFromTheStore(t *testing.T) {
	for _, size := range []int{200 << 10, 1536 << 10} {
		t.Run(strings.TrimSpace(conf.Size(size).String()), func(t *testing.T) {
			s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) {
				c.Limits.StanzaSize = 2 << 20
				c.Limits.Burst = 4 << 20
			}))
			s.AddUser("alice@localhost", "a")
			s.AddUser("bob@localhost", "b")
			bob := s.Login("bob@localhost", "b", "x")
			body := strings.Repeat("z", size)
			bob.Send("<message to='alice@localhost' type='chat' id='big'><body>%s</body></message>", body)
			bob.Sync()
			alice := s.Login("alice@localhost", "a", "phone")
			alice.Send("<presence/>")
			st, _ := alice.WaitFor("the offline message", func(st *xmpp.Stanza) bool { return st.Kind == xmpp.KindMessage })
			if st.ID != "big" || parleytest.Body(st) != body {
				t.Fatalf("got message %q with a body of %d bytes, want big with %d", st.ID, len(parleytest.Body(st)), size)
			}
		})
	}
}

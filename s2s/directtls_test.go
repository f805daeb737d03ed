package s2s_test

import (
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// Two Parleys federating over direct TLS (XEP-0368): each has a direct
// TLS s2s listener and reaches the other by a static route
// "tls://host:port" to it, as an _xmpps-server record would send it.
// Every stream, the dialback verifications' included, goes to the direct
// TLS listeners, so a message crosses only if the route is dialed with TLS
// from the first byte; the routes that mismatch the listener bounce.
func TestDirectTLSBetweenTwoParleys(t *testing.T) {
	tests := []struct {
		name string
		// route is the static route to a peer whose STARTTLS listener is
		// plain and direct TLS listener is direct.
		route func(plain, direct string) string
		// crosses: the message arrives; else it bounces with
		// remote-server-not-found.
		crosses bool
	}{
		{"tls:// to the direct TLS listener", func(_, direct string) string { return "tls://" + direct }, true},
		{"plain route to the direct TLS listener", func(_, direct string) string { return direct }, false},
		{"tls:// to the STARTTLS listener", func(plain, _ string) string { return "tls://" + plain }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			domains := []string{"a.example", "b.example"}
			direct := map[string]string{}
			for _, d := range domains {
				addr, err := parleytest.FreeAddr()
				if err != nil {
					t.Fatal(err)
				}
				direct[d] = addr
			}
			srv := parleytest.StartFederated(t, domains, parleytest.WithConfig(func(c *conf.Config) {
				c.S2S.DirectTLS = []string{direct[c.Hosts[0].Name]}
				c.S2S.ConnectTimeout = conf.Duration{Duration: 5 * time.Second}
				for dom, plain := range c.S2S.StaticRoutes {
					c.S2S.StaticRoutes[dom] = tt.route(plain, direct[dom])
				}
			}))
			a, b := srv[0], srv[1]
			a.AddUser("alice@a.example", "pw")
			b.AddUser("bob@b.example", "pw")
			alice := a.Login("alice@a.example", "pw", "phone")
			bob := b.Login("bob@b.example", "pw", "laptop")
			for _, c := range []*parleytest.Conn{alice, bob} {
				c.Send("<presence/>")
				c.Sync()
			}
			steps := []struct {
				from, to *parleytest.Conn
				toJID    string
				body     string
			}{
				{alice, bob, "bob@b.example", "over direct TLS from a"},
				{bob, alice, "alice@a.example", "over direct TLS from b"},
			}
			for i, st := range steps {
				st.from.Send("<message type='chat' id='d%d' to='%s'><body>%s</body></message>", i, st.toJID, st.body)
				if tt.crosses {
					next(t, st.to, st.body, isMessage(st.body))
					continue
				}
				el := next(t, st.from, "bounce", func(el *etree.Element) bool {
					return el.Tag == "message" && el.SelectAttrValue("type", "") == "error"
				})
				if got := errorCondition(el); got != string(xmpp.RemoteServerNotFound) {
					t.Errorf("bounce %s; want remote-server-not-found", st.from.String(el))
				}
			}
			if !tt.crosses {
				return
			}
			// Each side initiated one stream and accepted the other's, by
			// dialback (the certificates are self-signed).
			for _, s := range srv {
				if st := s.S2S().Stats(); st.OutDialback != 1 || st.InDialback != 1 {
					t.Errorf("%s: %+v; want one outbound and one inbound stream by dialback", s.Addr, st)
				}
			}
		})
	}
}

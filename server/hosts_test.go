package server_test

import (
	"crypto/tls"
	"net"
	"testing"

	"github.com/parley-im/parley/parleytest"
)

func TestTwoHosts(t *testing.T) {
	s := parleytest.Start(t, parleytest.WithHost("a.example", ""), parleytest.WithHost("b.example", ""))
	s.AddUser("alice@a.example", "pw-a")
	s.AddUser("alice@b.example", "pw-b")

	t.Run("the same username on two hosts is two accounts", func(t *testing.T) {
		for _, tt := range []struct{ host, pw, want string }{
			{"a.example", "pw-a", "success"},
			{"a.example", "pw-b", "failure"},
			{"b.example", "pw-b", "success"},
			{"b.example", "pw-a", "failure"},
		} {
			c := s.DialRaw()
			c.Open(tt.host)
			c.StartTLS(s.TLSConfig(tt.host))
			if el := c.AuthPlain("alice", tt.pw); el.Tag != tt.want {
				t.Errorf("alice@%s with %s: got %s, want %s", tt.host, tt.pw, c.String(el), tt.want)
			}
		}
	})

	t.Run("SNI picks each host's certificate", func(t *testing.T) {
		for _, host := range []string{"a.example", "b.example"} {
			cfg := s.TLSConfig(host)
			cfg.NextProtos = []string{"xmpp-client"}
			tc, err := tls.DialWithDialer(&net.Dialer{}, "tcp", s.DirectTLSAddr, cfg)
			if err != nil {
				t.Fatalf("%s: %v", host, err)
			}
			leaf := tc.ConnectionState().PeerCertificates[0]
			if err := leaf.VerifyHostname(host); err != nil {
				t.Errorf("%s: certificate for %v: %v", host, leaf.DNSNames, err)
			}
			if p := tc.ConnectionState().NegotiatedProtocol; p != "xmpp-client" {
				t.Errorf("%s: ALPN %q, want xmpp-client", host, p)
			}
			tc.Close()
		}
	})

	t.Run("users of two hosts chat", func(t *testing.T) {
		a := s.Login("alice@a.example", "pw-a", "x")
		b := s.Login("alice@b.example", "pw-b", "y")
		a.Send("<message to='%s' id='ab'><body>hi other me</body></message>", b.JID)
		if st := b.NextStanza(); st.ID != "ab" || st.From != a.JID {
			t.Fatalf("got %s", b.String(st.El))
		}
	})
}

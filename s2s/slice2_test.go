package s2s_test

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// eventually polls cond until it holds, failing the test after 15 s (a
// bound for a loaded machine, not a figure asserted).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 15*time.Second {
			t.Fatalf("%s: not after 15s", what)
		}
	}
}

// A direct TLS s2s listener (XEP-0368): TLS from the first byte with
// ALPN xmpp-server, then a stream that offers dialback and no STARTTLS.
func TestDirectTLSListener(t *testing.T) {
	s := parleytest.Start(t, parleytest.WithHost("a.example", ""), parleytest.WithConfig(func(c *conf.Config) {
		c.S2S.Listen = []string{"127.0.0.1:0"}
		c.S2S.DirectTLS = []string{"127.0.0.1:0"}
	}))
	addrs := s.S2SDirectTLSAddrs()
	if len(addrs) != 1 {
		t.Fatalf("direct TLS s2s listeners %v; want one", addrs)
	}
	tests := []struct {
		name string
		alpn []string
	}{
		{"with ALPN xmpp-server", []string{"xmpp-server"}},
		{"without ALPN", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &net.Dialer{Timeout: parleytest.Timeout}
			tc, err := tls.DialWithDialer(d, "tcp", addrs[0].String(), &tls.Config{
				InsecureSkipVerify: true, ServerName: "a.example", NextProtos: tt.alpn,
			})
			if err != nil {
				t.Fatalf("TLS: %v", err)
			}
			t.Cleanup(func() { tc.Close() })
			want := ""
			if tt.alpn != nil {
				want = "xmpp-server"
			}
			if got := tc.ConnectionState().NegotiatedProtocol; got != want {
				t.Errorf("ALPN %q; want %q", got, want)
			}
			p := &rawPeer{t: t, conn: tc, r: xmpp.NewReader(tc, xmpp.Limits{}), from: "remote.example", to: "a.example"}
			p.open()
			if p.features.FindElement("starttls") != nil {
				t.Error("STARTTLS offered on a direct TLS stream")
			}
			if p.features.FindElement("dialback") == nil {
				t.Error("no dialback offered")
			}
		})
	}
}

// Idle outbound streams ping their peer (XEP-0199): a live peer answers
// and the stream stays; a peer that authenticates and then never
// answers is taken for dead and its stream closed.
func TestPingsOnIdleStreams(t *testing.T) {
	fast := parleytest.WithConfig(func(c *conf.Config) {
		c.S2S.PingInterval = conf.Duration{Duration: 50 * time.Millisecond}
		c.S2S.ConnectTimeout = conf.Duration{Duration: 2 * time.Second}
	})
	t.Run("a live peer answers", func(t *testing.T) {
		a, _, alice, bob := twoServers(t, fast)
		alice.Send("<message to='bob@b.example'><body>1</body></message>")
		next(t, bob, "a to b", isMessage("1"))
		eventually(t, "three pings answered", func() bool { return a.S2S().Stats().PingsAnswered >= 3 })
		st := a.S2S().Stats()
		if st.DeadPeers != 0 {
			t.Errorf("%+v: a live peer taken for dead", st)
		}
		// The same stream still carries messages: no new authentication.
		alice.Send("<message to='bob@b.example'><body>2</body></message>")
		next(t, bob, "a to b again", isMessage("2"))
		if got := a.S2S().Stats().OutDialback; got != 1 {
			t.Errorf("%d outbound streams authenticated; want the one", got)
		}
	})
	t.Run("a dead peer is detected", func(t *testing.T) {
		ca := newCA(t)
		addr := mutePeer(t, ca, "mute.example")
		a := parleytest.Start(t, parleytest.WithHost("a.example", ""), fast, parleytest.WithConfig(func(c *conf.Config) {
			c.S2S.Listen = []string{"127.0.0.1:0"}
			c.S2S.StaticRoutes = map[string]string{"mute.example": addr}
		}))
		a.AddUser("alice@a.example", "pw")
		alice := a.Login("alice@a.example", "pw", "phone")
		alice.Send("<message to='x@mute.example'><body>1</body></message>")
		eventually(t, "the dead peer found", func() bool { return a.S2S().Stats().DeadPeers >= 1 })
		if st := a.S2S().Stats(); st.PingsAnswered != 0 || st.PingsSent < 1 {
			t.Errorf("%+v; want pings sent, none answered", st)
		}
	})
}

// mutePeer is a remote server that accepts one domain's streams,
// negotiates STARTTLS, says every dialback is valid, and then reads
// without ever answering: a peer gone dead behind a NAT, as a pinging
// server sees it.
func mutePeer(t *testing.T, ca *testCA, domain string) string {
	t.Helper()
	cert, _, _ := ca.issue(domain)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go func() {
				r := xmpp.NewReader(c, xmpp.Limits{})
				h, err := r.ReadHeader()
				if err != nil {
					return
				}
				_, _ = c.Write([]byte("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' id='m1' version='1.0'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>"))
				if _, err := r.ReadElement(); err != nil {
					return
				}
				_, _ = c.Write([]byte("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"))
				tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
				if tc.Handshake() != nil {
					return
				}
				r.Reset(tc)
				if _, err := r.ReadHeader(); err != nil {
					return
				}
				_, _ = tc.Write([]byte("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' id='m2' version='1.0'><stream:features><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>"))
				if _, err := r.ReadElement(); err != nil {
					return
				}
				_, _ = tc.Write([]byte("<db:result from='" + domain + "' to='" + h.From + "' type='valid'/>"))
				for {
					if _, err := r.ReadElement(); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// One remote domain holds at most max_streams_per_domain inbound
// streams; a closed one makes room, and other domains are not counted
// against it.
func TestMaxStreamsPerDomain(t *testing.T) {
	s := parleytest.Start(t, parleytest.WithHost("a.example", ""), parleytest.WithConfig(func(c *conf.Config) {
		c.S2S.Listen = []string{"127.0.0.1:0"}
		c.S2S.MaxStreamsPerDomain = 2
	}))
	addr := s.S2SAddrs()[0].String()
	first := dialRawPeer(t, addr, "many.example", "a.example")
	dialRawPeer(t, addr, "many.example", "a.example")

	tests := []struct {
		name, from string
		refused    bool
	}{
		{"a third stream of the domain", "many.example", true},
		{"another domain", "other.example", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := dialHeader(t, addr, tt.from, "a.example")
			if tt.refused {
				p.expectStreamError(xmpp.StreamPolicyViolation)
				return
			}
			if _, err := p.next(); err != nil {
				t.Fatalf("features: %v", err)
			}
		})
	}
	if got := s.S2S().Stats().StreamsRefused; got != 1 {
		t.Errorf("%d streams refused; want 1", got)
	}
	first.conn.Close()
	eventually(t, "a closed stream makes room", func() bool {
		p := dialHeader(t, addr, "many.example", "a.example")
		el, err := p.next()
		p.conn.Close()
		return err == nil && el.Tag == "features"
	})
}

// dialHeader connects to a server stream listener and exchanges stream
// headers, leaving what follows (features, or a stream error) unread.
func dialHeader(t *testing.T, addr, from, to string) *rawPeer {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, parleytest.Timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p := &rawPeer{t: t, conn: c, r: xmpp.NewReader(c, xmpp.Limits{}), from: from, to: to}
	p.send(serverHeader, from, to)
	_ = c.SetReadDeadline(time.Now().Add(parleytest.Timeout))
	if _, err := p.r.ReadHeader(); err != nil {
		t.Fatalf("header: %v", err)
	}
	return p
}

// GET /metrics counts federation: streams each way, stanzas, how the
// streams authenticated.
func TestS2SMetrics(t *testing.T) {
	a, _, alice, bob := twoServers(t)
	alice.Send("<message to='bob@b.example'><body>1</body></message>")
	next(t, bob, "a to b", isMessage("1"))
	bob.Send("<message to='alice@a.example'><body>2</body></message>")
	next(t, alice, "b to a", isMessage("2"))
	resp, err := http.Get(a.HTTPURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`parley_s2s_streams{direction="out"} 1`,
		`parley_s2s_streams{direction="in"} 1`,
		`parley_s2s_stanzas_total{direction="out"} 1`,
		`parley_s2s_stanzas_total{direction="in"} 1`,
		`parley_s2s_authenticated_total{direction="out",method="dialback"} 1`,
		`parley_s2s_authenticated_total{direction="in",method="dialback"} 1`,
		`parley_s2s_dead_peers_total 0`,
		`parley_s2s_refused_streams_total{limit="max_streams_per_domain"} 0`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics has no %q", want)
		}
	}
}

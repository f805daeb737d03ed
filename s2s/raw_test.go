package s2s_test

import (
	"crypto/tls"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// rawPeer is a scripted remote server: raw XML on a server stream.
type rawPeer struct {
	t        *testing.T
	conn     net.Conn
	r        *xmpp.Reader
	from, to string
	id       string
	features *etree.Element
	cert     *tls.Certificate // presented in TLS when set
}

const serverHeader = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='%s' to='%s' version='1.0'>"

func dialRawPeer(t *testing.T, addr, from, to string) *rawPeer {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, parleytest.Timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p := &rawPeer{t: t, conn: c, r: xmpp.NewReader(c, xmpp.Limits{}), from: from, to: to}
	p.open()
	return p
}

func (p *rawPeer) send(format string, args ...any) {
	p.t.Helper()
	_ = p.conn.SetWriteDeadline(time.Now().Add(parleytest.Timeout))
	if _, err := fmt.Fprintf(p.conn, format, args...); err != nil {
		p.t.Fatalf("send: %v", err)
	}
}

func (p *rawPeer) next() (*etree.Element, error) {
	_ = p.conn.SetReadDeadline(time.Now().Add(parleytest.Timeout))
	el, err := p.r.ReadElement()
	if err != nil {
		return nil, err
	}
	if se := xmpp.ParseStreamError(el); se != nil {
		return el, se
	}
	return el, nil
}

func (p *rawPeer) open() {
	p.t.Helper()
	p.send(serverHeader, p.from, p.to)
	_ = p.conn.SetReadDeadline(time.Now().Add(parleytest.Timeout))
	h, err := p.r.ReadHeader()
	if err != nil {
		p.t.Fatalf("header: %v", err)
	}
	p.id = h.ID
	if p.features, err = p.next(); err != nil {
		p.t.Fatalf("features: %v", err)
	}
}

func (p *rawPeer) startTLS() {
	p.t.Helper()
	p.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	if el, err := p.next(); err != nil || el.Tag != "proceed" {
		p.t.Fatalf("starttls: %v %v", el, err)
	}
	cfg := &tls.Config{InsecureSkipVerify: true, ServerName: p.to}
	if p.cert != nil {
		cfg.Certificates = []tls.Certificate{*p.cert}
	}
	tc := tls.Client(p.conn, cfg)
	if err := tc.Handshake(); err != nil {
		p.t.Fatalf("tls: %v", err)
	}
	p.conn = tc
	p.r.Reset(tc)
	p.open()
}

// dialback asks for the pair (from, to) with key and returns the answer's
// type.
func (p *rawPeer) dialback(key string) string {
	p.t.Helper()
	p.send("<db:result from='%s' to='%s'>%s</db:result>", p.from, p.to, key)
	for {
		el, err := p.next()
		if err != nil {
			p.t.Fatalf("dialback: %v", err)
		}
		if el.Tag == "result" {
			return el.SelectAttrValue("type", "")
		}
	}
}

// expectStreamError reads until a stream error with cond.
func (p *rawPeer) expectStreamError(cond xmpp.StreamCondition) {
	p.t.Helper()
	parleytest.ExpectStreamError(p.t, p.next, cond, false)
}

// fakeAuthority is the authoritative server of a domain the test
// controls: it answers every db:verify with answer, after STARTTLS with
// a certificate of ca.
func fakeAuthority(t *testing.T, ca *testCA, domain, answer string) string {
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
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(parleytest.Timeout))
				var conn = c
				r := xmpp.NewReader(c, xmpp.Limits{})
				open := func(features string) bool {
					h, err := r.ReadHeader()
					if err != nil {
						return false
					}
					fmt.Fprintf(conn, "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='%s' to='%s' id='fake1' version='1.0'><stream:features>%s</stream:features>",
						h.To, h.From, features)
					return true
				}
				if !open("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>") {
					return
				}
				if el, err := r.ReadElement(); err != nil || el.Tag != "starttls" {
					return
				}
				fmt.Fprint(conn, "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
				tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
				if tc.Handshake() != nil {
					return
				}
				conn = tc
				r.Reset(tc)
				if !open("<dialback xmlns='urn:xmpp:features:dialback'/>") {
					return
				}
				for {
					el, err := r.ReadElement()
					if err != nil {
						return
					}
					if el.Tag == "verify" {
						fmt.Fprintf(conn, "<db:verify from='%s' to='%s' id='%s' type='%s'/>",
							el.SelectAttrValue("to", ""), el.SelectAttrValue("from", ""), el.SelectAttrValue("id", ""), answer)
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// Every way a remote server's stream may try to get a stanza in without
// the right to, and the one way that works (the control: an
// authenticated domain's stanza is delivered).
func TestInboundStanzasNeedAnAuthenticatedPair(t *testing.T) {
	ca := newCA(t)
	tests := []struct {
		name      string
		answer    string // the fake authority's db:verify answer
		tls       bool
		dialback  string // the db:result answer expected; "" for no dialback
		stanza    string
		wantError xmpp.StreamCondition // "" when the stanza is delivered
	}{
		{"authenticated by dialback: delivered", "valid", true, "valid",
			"<message from='mallory@evil.example/x' to='alice@a.example/phone'><body>hi</body></message>", ""},
		{"no TLS, no dialback", "valid", false, "",
			"<message from='mallory@evil.example/x' to='alice@a.example/phone'><body>hi</body></message>", xmpp.StreamNotAuthorized},
		{"TLS, no dialback", "valid", true, "",
			"<message from='mallory@evil.example/x' to='alice@a.example/phone'><body>hi</body></message>", xmpp.StreamNotAuthorized},
		{"spoofed from domain", "valid", true, "valid",
			"<message from='bob@b.example/x' to='alice@a.example/phone'><body>hi</body></message>", xmpp.InvalidFrom},
		{"to a domain not served", "valid", true, "valid",
			"<message from='mallory@evil.example/x' to='carol@c.example'><body>hi</body></message>", xmpp.HostUnknown},
		{"no from", "valid", true, "valid",
			"<message to='alice@a.example/phone'><body>hi</body></message>", xmpp.ImproperAddressing},
		{"forged dialback key", "invalid", true, "invalid", "", xmpp.StreamNotAuthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth := fakeAuthority(t, ca, "evil.example", tt.answer)
			s := parleytest.Start(t, parleytest.WithHost("a.example", ""), parleytest.WithConfig(func(c *conf.Config) {
				c.S2S.Listen = []string{"127.0.0.1:0"}
				c.S2S.StaticRoutes = map[string]string{"evil.example": auth}
				c.S2S.CAFile = ca.File
			}))
			s.AddUser("alice@a.example", "pw")
			alice := s.Login("alice@a.example", "pw", "phone")
			p := dialRawPeer(t, s.S2SAddrs()[0].String(), "evil.example", "a.example")
			if tt.tls {
				p.startTLS()
			}
			if tt.dialback != "" {
				if got := p.dialback("not-a-real-key"); got != tt.dialback {
					t.Fatalf("dialback answered %q; want %q", got, tt.dialback)
				}
			}
			if tt.stanza != "" {
				p.send("%s", tt.stanza)
			}
			if tt.wantError != "" {
				p.expectStreamError(tt.wantError)
				noMessage(t, alice)
				return
			}
			next(t, alice, "delivered", isMessage("hi"))
		})
	}
}

// noMessage pings c's server and fails if a message arrives before the
// answer: what was refused before the ping was never delivered.
func noMessage(t *testing.T, c *parleytest.Conn) {
	t.Helper()
	c.Send("<iq type='get' id='nomsg'><ping xmlns='urn:xmpp:ping'/></iq>")
	for {
		el := c.Next()
		if el.Tag == "message" {
			t.Errorf("delivered: %s", c.String(el))
		}
		if el.Tag == "iq" && el.SelectAttrValue("id", "") == "nomsg" {
			return
		}
	}
}

// SASL EXTERNAL authenticates the domain the certificate is valid for,
// named by the stream header sent after TLS: a peer cannot validate as
// one domain before TLS and claim another after.
func TestExternalOnlyForTheCertificatesDomain(t *testing.T) {
	ca := newCA(t)
	cert, _, _ := ca.issue("evil.example")
	s := parleytest.Start(t, parleytest.WithHost("a.example", ""), parleytest.WithConfig(func(c *conf.Config) {
		c.S2S.Listen = []string{"127.0.0.1:0"}
		c.S2S.CAFile = ca.File
	}))
	tests := []struct {
		name, fromAfterTLS string
		want               string // the answer to <auth/>
	}{
		{"the certificate's domain", "evil.example", "success"},
		{"another domain after TLS", "b.example", "failure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := dialRawPeer(t, s.S2SAddrs()[0].String(), "evil.example", "a.example")
			p.cert = &cert
			p.from = tt.fromAfterTLS
			p.startTLS()
			offered := p.features.FindElement("mechanisms/mechanism") != nil
			if offered != (tt.want == "success") {
				t.Errorf("EXTERNAL offered: %v; want %v", offered, !offered)
			}
			p.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
			el, err := p.next()
			if err != nil || el.Tag != tt.want {
				t.Fatalf("answer %v, %v; want <%s/>", el, err, tt.want)
			}
		})
	}
}

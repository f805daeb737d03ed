package parleytest

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// Timeout bounds every read of a Conn, so that a test waiting for
// something that never comes fails instead of hanging.
var Timeout = 10 * time.Second

// Conn is a scripted client connection: the test writes raw XML and reads
// the server's elements one at a time, parsed. Every method fails the test
// on error unless its name ends in Err.
type Conn struct {
	net.Conn
	t testing.TB
	r *xmpp.Reader
	// Header is the server's last stream header; Features its last
	// <stream:features/>.
	Header   xmpp.Header
	Features *etree.Element
	// JID is the bound JID, after Bind.
	JID xmpp.JID

	syncs int
	ws    bool // over WebSocket: Open sends <open/>
}

// DialRaw connects to the STARTTLS port and does nothing else.
func (s *Server) DialRaw() *Conn {
	s.t.Helper()
	nc, err := net.DialTimeout("tcp", s.Addr, Timeout)
	if err != nil {
		s.t.Fatalf("parleytest: dial: %v", err)
	}
	c := &Conn{Conn: nc, t: s.t, r: xmpp.NewReader(nc, clientLimits)}
	s.t.Cleanup(func() { nc.Close() })
	return c
}

// Dial connects to addr, the c2s port of any XMPP server (another
// implementation's, in interop tests), and does nothing else.
func Dial(t testing.TB, addr string) *Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, Timeout)
	if err != nil {
		t.Fatalf("parleytest: dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return &Conn{Conn: nc, t: t, r: xmpp.NewReader(nc, clientLimits)}
}

// DialDirectTLS connects to the direct TLS port (XEP-0368) for host.
func (s *Server) DialDirectTLS(host string) *Conn {
	s.t.Helper()
	cfg := s.TLSConfig(host)
	cfg.NextProtos = []string{"xmpp-client"}
	d := &net.Dialer{Timeout: Timeout}
	tc, err := tls.DialWithDialer(d, "tcp", s.DirectTLSAddr, cfg)
	if err != nil {
		s.t.Fatalf("parleytest: dial direct TLS: %v", err)
	}
	s.t.Cleanup(func() { tc.Close() })
	return &Conn{Conn: tc, t: s.t, r: xmpp.NewReader(tc, clientLimits)}
}

// DialSecure connects to the STARTTLS port, opens a stream to host and
// negotiates TLS: the stream is ready for SASL (or XEP-0077 registration).
func (s *Server) DialSecure(host string) *Conn {
	s.t.Helper()
	c := s.DialRaw()
	c.Open(host)
	c.StartTLS(s.TLSConfig(host))
	return c
}

// Login connects over STARTTLS, authenticates with PLAIN as jid and binds
// resource (the server picks one when empty).
func (s *Server) Login(jid, password, resource string) *Conn {
	s.t.Helper()
	j, err := xmpp.Parse(jid)
	if err != nil {
		s.t.Fatalf("parleytest: Login(%q): %v", jid, err)
	}
	c := s.DialSecure(j.Domain())
	if el := c.AuthPlain(j.Local(), password); el.Tag != "success" {
		s.t.Fatalf("parleytest: Login(%q): authentication failed: %s", jid, c.String(el))
	}
	c.Open(j.Domain())
	c.Bind(resource)
	return c
}

// Send writes raw XML (a format string with args).
func (c *Conn) Send(format string, args ...any) {
	c.t.Helper()
	if err := c.SetWriteDeadline(time.Now().Add(Timeout)); err != nil {
		c.t.Fatalf("parleytest: send: %v", err)
	}
	if _, err := fmt.Fprintf(c.Conn, format, args...); err != nil {
		c.t.Fatalf("parleytest: send: %v", err)
	}
}

// Open sends a stream header to host and reads the server's header and
// features.
func (c *Conn) Open(host string) {
	c.t.Helper()
	if err := c.OpenErr(host); err != nil {
		c.t.Fatalf("parleytest: open stream: %v", err)
	}
}

// OpenErr is Open that returns what went wrong, a *xmpp.StreamError when
// the server refused the stream.
func (c *Conn) OpenErr(host string) error {
	if c.ws {
		c.Send("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='%s' version='1.0'/>", host)
		return c.ReadHeaderErr()
	}
	c.Send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>", host)
	return c.ReadHeaderErr()
}

// ReadHeaderErr reads the server's stream header and the element after it:
// features, or a stream error.
func (c *Conn) ReadHeaderErr() error {
	c.r.Restart()
	_ = c.SetReadDeadline(time.Now().Add(Timeout))
	h, err := c.r.ReadHeader()
	if err != nil {
		return err
	}
	c.Header = h
	el, err := c.NextErr()
	if err != nil {
		return err
	}
	if !IsStream(el, "features") {
		return fmt.Errorf("expected <stream:features/>, got %s", c.String(el))
	}
	c.Features = el
	return nil
}

// NextErr reads the next element. A stream error from the server comes
// back as a *xmpp.StreamError, the server's closing tag as
// xmpp.ErrStreamClosed.
func (c *Conn) NextErr() (*etree.Element, error) {
	_ = c.SetReadDeadline(time.Now().Add(Timeout))
	el, err := c.r.ReadElement()
	if err != nil {
		return nil, err
	}
	if se := xmpp.ParseStreamError(el); se != nil {
		return el, se
	}
	return el, nil
}

// Next reads the next element; a stream error or a closed stream fails
// the test.
func (c *Conn) Next() *etree.Element {
	c.t.Helper()
	el, err := c.NextErr()
	if err != nil {
		c.t.Fatalf("parleytest: read: %v", err)
	}
	return el
}

// NextStanza reads the next element and wraps it as a stanza.
func (c *Conn) NextStanza() *xmpp.Stanza {
	c.t.Helper()
	el := c.Next()
	st, err := xmpp.NewStanza(el)
	if err != nil {
		c.t.Fatalf("parleytest: not a stanza: %s: %v", c.String(el), err)
	}
	return st
}

// ExpectStreamError reads until the server's stream error, checks its
// condition and that the server then closes the stream.
func (c *Conn) ExpectStreamError(want xmpp.StreamCondition) {
	c.t.Helper()
	ExpectStreamError(c.t, c.NextErr, want, true)
}

// ExpectStreamError reads with next, skipping stanzas, until a stream
// error, and checks its condition; with closed, also that the closing
// tag follows. For tests' own readers of other streams (components,
// servers) as well as Conn's.
func ExpectStreamError(t testing.TB, next func() (*etree.Element, error), want xmpp.StreamCondition, closed bool) {
	t.Helper()
	for {
		_, err := next()
		var se *xmpp.StreamError
		if errors.As(err, &se) {
			if se.Condition != want {
				t.Fatalf("parleytest: stream error %q (%s), want %q", se.Condition, se.Text, want)
			}
			break
		}
		if err != nil {
			t.Fatalf("parleytest: want stream error %q, got %v", want, err)
		}
	}
	if !closed {
		return
	}
	if _, err := next(); !errors.Is(err, xmpp.ErrStreamClosed) {
		t.Fatalf("parleytest: after the stream error: %v, want the closing tag", err)
	}
}

// StartTLS negotiates STARTTLS and reopens the stream.
func (c *Conn) StartTLS(cfg *tls.Config) {
	c.t.Helper()
	c.StartTLSWith(cfg, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
}

// StartTLSWith is StartTLS writing command, as it is, in one write to ask
// for TLS: for clients that write more than <starttls/> (go-sendxmpp adds
// a newline).
func (c *Conn) StartTLSWith(cfg *tls.Config, command string) {
	c.t.Helper()
	c.Send("%s", command)
	if el := c.Next(); el.Tag != "proceed" {
		c.t.Fatalf("parleytest: starttls: got %s", c.String(el))
	}
	tc := tls.Client(c.Conn, cfg)
	_ = tc.SetDeadline(time.Now().Add(Timeout))
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("parleytest: tls handshake: %v", err)
	}
	c.Conn = tc
	c.r.Reset(tc)
	c.Open(cfg.ServerName)
}

// AuthPlain sends SASL PLAIN and returns the server's answer (<success/> or
// <failure/>).
func (c *Conn) AuthPlain(user, password string) *etree.Element {
	c.t.Helper()
	msg := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	c.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>", msg)
	return c.Next()
}

// Bind binds resource (empty: the server picks) and records the JID.
func (c *Conn) Bind(resource string) xmpp.JID {
	c.t.Helper()
	res := ""
	if resource != "" {
		res = "<resource>" + resource + "</resource>"
	}
	c.Send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>%s</bind></iq>", res)
	st := c.NextStanza()
	jidEl := st.El.FindElement("bind/jid")
	if st.Type != "result" || jidEl == nil {
		c.t.Fatalf("parleytest: bind: got %s", c.String(st.El))
	}
	j, err := xmpp.Parse(jidEl.Text())
	if err != nil {
		c.t.Fatalf("parleytest: bind: bad jid: %v", err)
	}
	c.JID = j
	return j
}

// Sync pings the server and waits for the answer, skipping anything that
// arrives before it. Since a session handles its stanzas in order,
// everything sent before Sync has been routed when it returns.
func (c *Conn) Sync() {
	c.t.Helper()
	c.syncs++
	id := fmt.Sprintf("parleytest-sync-%d", c.syncs)
	c.Send("<iq type='get' id='%s'><ping xmlns='urn:xmpp:ping'/></iq>", id)
	for {
		el := c.Next()
		if el.Tag == "iq" && el.SelectAttrValue("id", "") == id {
			return
		}
	}
}

// String serializes el for messages.
func (c *Conn) String(el *etree.Element) string {
	if el == nil {
		return "<nil>"
	}
	doc := etree.NewDocument()
	doc.SetRoot(el.Copy())
	s, _ := doc.WriteToString()
	return s
}

// IsStream reports whether el is <stream:local/>.
func IsStream(el *etree.Element, local string) bool {
	return el != nil && el.Tag == local && xmpp.NS(el) == xmpp.NSStream
}

// clientLimits bound what a test client reads: far above any stanza_size
// a test configures, so that what the server sends is the test's to judge.
var clientLimits = xmpp.Limits{MaxStanza: 16 << 20}

package server_test

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/parleytest"
	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/ping"
	"mellium.im/xmpp/stanza"
)

// melliumTimeout bounds each mellium test: nothing in them should take
// more than a fraction of it.
const melliumTimeout = 10 * time.Second

// melliumMechanisms are what a mellium client offers when the test is not
// about authentication.
var melliumMechanisms = []sasl.Mechanism{sasl.ScramSha256Plus, sasl.ScramSha256}

// melliumContext is the context of one mellium test.
func melliumContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), melliumTimeout)
	t.Cleanup(cancel)
	return ctx
}

// melliumDialSTARTTLS connects to s's STARTTLS port and negotiates a
// mellium client session as origin (a bare JID, or a full one to ask for
// that resource) with password and mechanisms.
func melliumDialSTARTTLS(ctx context.Context, t *testing.T, s *parleytest.Server, origin, password string, mechanisms ...sasl.Mechanism) (*xmpp.Session, error) {
	t.Helper()
	j := jid.MustParse(origin)
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return melliumNegotiate(ctx, conn, j,
		xmpp.StartTLS(s.TLSConfig(j.Domain().String())),
		xmpp.SASL("", password, mechanisms...),
		melliumBind(j),
	)
}

// melliumDialDirectTLS is melliumDialSTARTTLS on the XEP-0368 direct TLS
// port: TLS first, with ALPN xmpp-client, and no STARTTLS.
func melliumDialDirectTLS(ctx context.Context, t *testing.T, s *parleytest.Server, origin, password string, mechanisms ...sasl.Mechanism) (*xmpp.Session, error) {
	t.Helper()
	j := jid.MustParse(origin)
	conn := melliumDialTLS(ctx, t, s, j.Domain().String())
	return melliumNegotiate(ctx, conn, j,
		xmpp.SASL("", password, mechanisms...),
		melliumBind(j),
	)
}

// melliumDialTLS opens a TLS connection to s's direct TLS port for host and
// checks that the server chose ALPN xmpp-client.
func melliumDialTLS(ctx context.Context, t *testing.T, s *parleytest.Server, host string) *tls.Conn {
	t.Helper()
	cfg := s.TLSConfig(host)
	cfg.NextProtos = []string{"xmpp-client"}
	d := &tls.Dialer{Config: cfg}
	nc, err := d.DialContext(ctx, "tcp", s.DirectTLSAddr)
	if err != nil {
		t.Fatalf("dial direct TLS %s: %v", s.DirectTLSAddr, err)
	}
	t.Cleanup(func() { nc.Close() })
	conn := nc.(*tls.Conn)
	if got := conn.ConnectionState().NegotiatedProtocol; got != "xmpp-client" {
		t.Errorf("ALPN: negotiated %q, want xmpp-client", got)
	}
	return conn
}

// melliumTLSStateOf is a connection that shows mellium the TLS state of
// another one: mellium's SCRAM-PLUS takes its channel binding from it.
type melliumTLSStateOf struct {
	net.Conn
	state tls.ConnectionState
}

// ConnectionState is what mellium looks for to find the TLS state.
func (c melliumTLSStateOf) ConnectionState() tls.ConnectionState { return c.state }

// melliumNegotiate runs mellium's client negotiation over conn, closing
// conn when it fails.
func melliumNegotiate(ctx context.Context, conn net.Conn, origin jid.JID, features ...xmpp.StreamFeature) (*xmpp.Session, error) {
	sess, err := xmpp.NewClientSession(ctx, origin, conn, features...)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return sess, nil
}

// melliumBind binds origin's resource, or lets the server pick one when
// origin has none.
func melliumBind(origin jid.JID) xmpp.StreamFeature {
	if origin.Resourcepart() == "" {
		return xmpp.BindResource()
	}
	return melliumBindResource(origin.Resourcepart())
}

// melliumBindResource is xmpp.BindResource for a client that asks for a
// resource. mellium v0.22.0 writes the requested resource as
// <resource></resource> (bindPayload.TokenReader puts the empty JID field
// in it instead of the resource), so with xmpp.BindResource the server
// always picks the resource.
func melliumBindResource(resource string) xmpp.StreamFeature {
	const nsBind = "urn:ietf:params:xml:ns:xmpp-bind"
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: nsBind, Local: "bind"},
		Necessary:  xmpp.Authn,
		Prohibited: xmpp.Ready,
		Parse: func(_ context.Context, d *xml.Decoder, start *xml.StartElement) (bool, any, error) {
			return true, nil, d.Skip()
		},
		Negotiate: func(_ context.Context, sess *xmpp.Session, _ any) (xmpp.SessionState, io.ReadWriter, error) {
			w := sess.TokenWriter()
			defer w.Close()
			r := sess.TokenReader()
			defer r.Close()

			iq := stanza.IQ{XMLName: xml.Name{Space: stanza.NSClient, Local: "iq"}, ID: "bind-" + resource, Type: stanza.SetIQ}
			req := iq.Wrap(xmlstream.Wrap(
				xmlstream.Wrap(xmlstream.Token(xml.CharData(resource)), xml.StartElement{Name: xml.Name{Local: "resource"}}),
				xml.StartElement{Name: xml.Name{Space: nsBind, Local: "bind"}},
			))
			if _, err := xmlstream.Copy(w, req); err != nil {
				return 0, nil, err
			}
			if err := w.Flush(); err != nil {
				return 0, nil, err
			}
			var resp struct {
				stanza.IQ
				Bind struct {
					JID string `xml:"jid"`
				} `xml:"urn:ietf:params:xml:ns:xmpp-bind bind"`
				Err *stanza.Error `xml:"error"`
			}
			if err := xml.NewTokenDecoder(r).Decode(&resp); err != nil {
				return 0, nil, fmt.Errorf("bind %q: %w", resource, err)
			}
			switch {
			case resp.ID != iq.ID:
				return 0, nil, fmt.Errorf("bind %q: answer has id %q, want %q", resource, resp.ID, iq.ID)
			case resp.Type == stanza.ErrorIQ && resp.Err != nil:
				return 0, nil, fmt.Errorf("bind %q: %w", resource, *resp.Err)
			case resp.Type != stanza.ResultIQ:
				return 0, nil, fmt.Errorf("bind %q: answer has type %q", resource, resp.Type)
			}
			j, err := jid.Parse(resp.Bind.JID)
			if err != nil {
				return 0, nil, fmt.Errorf("bind %q: bound JID: %w", resource, err)
			}
			sess.UpdateAddr(j)
			return xmpp.Ready, nil, nil
		},
	}
}

// melliumClient is a negotiated mellium session served in the background.
// The messages it receives arrive on msgs; other stanzas are dropped.
type melliumClient struct {
	*xmpp.Session
	msgs chan melliumMessage
	// done is closed when Serve returns, with its result in err.
	done    chan struct{}
	err     error
	closing chan struct{}
	// endExpected is set by waitEnd: the test looks at how the session
	// ended, so the cleanup does not.
	endExpected atomic.Bool
}

// melliumMessage is a message a melliumClient received.
type melliumMessage struct {
	XMLName xml.Name
	ID      string        `xml:"id,attr"`
	From    string        `xml:"from,attr"`
	To      string        `xml:"to,attr"`
	Type    string        `xml:"type,attr"`
	Body    string        `xml:"body"`
	Error   *stanza.Error `xml:"error"`
}

// melliumServe runs sess.Serve until the test ends. t.Cleanup closes the
// stream and expects the server to close its side, and fails the test
// when the server ended the session and the test did not call waitEnd.
func melliumServe(t *testing.T, sess *xmpp.Session) *melliumClient {
	t.Helper()
	c := &melliumClient{
		Session: sess,
		msgs:    make(chan melliumMessage, 32),
		done:    make(chan struct{}),
		closing: make(chan struct{}),
	}
	go func() {
		defer close(c.done)
		c.err = sess.Serve(xmpp.HandlerFunc(c.handle))
	}()
	t.Cleanup(func() {
		close(c.closing)
		select {
		case <-c.done:
			if !c.endExpected.Load() {
				t.Errorf("%s: the server ended the session: %v", sess.LocalAddr(), c.err)
			}
			return
		default:
		}
		if err := sess.Close(); err != nil {
			t.Errorf("%s: close: %v", sess.LocalAddr(), err)
		}
		select {
		case <-c.done:
		case <-time.After(melliumTimeout):
			t.Errorf("%s: the server did not close its stream within %v of ours", sess.LocalAddr(), melliumTimeout)
			sess.Conn().Close()
			<-c.done
		}
	})
	return c
}

// melliumLogin logs origin in over STARTTLS, serves the session and fails
// the test when it cannot.
func melliumLogin(ctx context.Context, t *testing.T, s *parleytest.Server, origin, password string) *melliumClient {
	t.Helper()
	sess, err := melliumDialSTARTTLS(ctx, t, s, origin, password, melliumMechanisms...)
	if err != nil {
		t.Fatalf("log in %s: %v", origin, err)
	}
	return melliumServe(t, sess)
}

// handle is the Serve handler: it hands messages to the test.
func (c *melliumClient) handle(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	if start.Name.Local != "message" {
		return nil
	}
	// The handler's reader starts after start: decoding it with start as
	// the outer element fails on the end element, so put start back.
	var m melliumMessage
	if err := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), r)).Decode(&m); err != nil {
		return err
	}
	select {
	case c.msgs <- m:
	case <-c.closing:
	}
	return nil
}

// waitEnd waits until the server ends the session and returns what Serve
// returned.
func (c *melliumClient) waitEnd(ctx context.Context, t *testing.T) error {
	t.Helper()
	c.endExpected.Store(true)
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		t.Fatalf("%s: session still served: %v", c.JID(), ctx.Err())
	}
	panic("unreachable")
}

// JID is the bound full JID.
func (c *melliumClient) JID() jid.JID { return c.LocalAddr() }

// nextMessage waits for the next message the client receives.
func (c *melliumClient) nextMessage(ctx context.Context, t *testing.T) melliumMessage {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-c.done:
		t.Fatalf("%s: session ended while waiting for a message: %v", c.JID(), c.err)
	case <-ctx.Done():
		t.Fatalf("%s: no message: %v", c.JID(), ctx.Err())
	}
	panic("unreachable")
}

// sendChat sends a chat message with body to to.
func (c *melliumClient) sendChat(ctx context.Context, t *testing.T, to jid.JID, body string) {
	t.Helper()
	msg := stanza.Message{To: to, Type: stanza.ChatMessage}
	if err := c.Send(ctx, msg.Wrap(melliumBody(body))); err != nil {
		t.Fatalf("%s: send message to %s: %v", c.JID(), to, err)
	}
}

// sendPresence sends initial presence, with a <priority/> when priority is
// not empty, and waits until the server has processed it.
func (c *melliumClient) sendPresence(ctx context.Context, t *testing.T, priority string) {
	t.Helper()
	var payload xml.TokenReader
	if priority != "" {
		payload = xmlstream.Wrap(xmlstream.Token(xml.CharData(priority)), xml.StartElement{Name: xml.Name{Local: "priority"}})
	}
	if err := c.Send(ctx, stanza.Presence{}.Wrap(payload)); err != nil {
		t.Fatalf("%s: send presence: %v", c.JID(), err)
	}
	c.sync(ctx, t)
}

// sync pings the server and waits for the answer: the server handles a
// session's stanzas in order, so everything sent before is processed.
func (c *melliumClient) sync(ctx context.Context, t *testing.T) {
	t.Helper()
	if err := melliumPing(ctx, c.Session, c.JID().Domain()); err != nil {
		t.Fatalf("%s: ping %s: %v", c.JID(), c.JID().Domain(), err)
	}
}

// melliumPing sends an XEP-0199 ping to to and wants an iq result. Unlike
// ping.Send it counts a service-unavailable answer as a failure.
func melliumPing(ctx context.Context, sess *xmpp.Session, to jid.JID) error {
	resp, err := sess.SendIQ(ctx, ping.IQ{IQ: stanza.IQ{Type: stanza.GetIQ, To: to}}.TokenReader())
	if err != nil {
		return err
	}
	defer resp.Close()
	tok, err := resp.Token()
	if err != nil {
		return err
	}
	start, ok := tok.(xml.StartElement)
	if !ok {
		return fmt.Errorf("answer starts with %T, not an iq", tok)
	}
	iq, err := stanza.UnmarshalIQError(resp, start)
	if err != nil {
		return err
	}
	if iq.Type != stanza.ResultIQ {
		return fmt.Errorf("answer has type %q, want result", iq.Type)
	}
	return nil
}

// melliumBody is <body>text</body>.
func melliumBody(text string) xml.TokenReader {
	return xmlstream.Wrap(xmlstream.Token(xml.CharData(text)), xml.StartElement{Name: xml.Name{Local: "body"}})
}

// melliumSASLCondition is the SASL failure condition in err
// ("not-authorized"), or "" when err is not a SASL failure. mellium keeps
// its failure type in an internal package, so this finds it by its
// exported Condition field.
func melliumSASLCondition(err error) string {
	for e := err; e != nil; e = errors.Unwrap(e) {
		v := reflect.ValueOf(e)
		if v.Kind() != reflect.Struct || v.Type().PkgPath() != "mellium.im/xmpp/internal/saslerr" {
			continue
		}
		if f := v.FieldByName("Condition"); f.IsValid() && f.CanInterface() {
			if s, ok := f.Interface().(fmt.Stringer); ok {
				return s.String()
			}
		}
	}
	return ""
}

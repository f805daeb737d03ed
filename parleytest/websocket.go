package parleytest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/parley-im/parley/xmpp"
)

// WSOptions is how DialWebSocketWith connects.
type WSOptions struct {
	// Subprotocols to ask for; nil asks for "xmpp".
	Subprotocols []string
	// Origin, when set, is sent as the Origin header.
	Origin string
	// Header holds more headers for the handshake (X-Forwarded-For).
	Header http.Header
	// TLS is the client's TLS config for a wss:// URL.
	TLS *tls.Config
	// URL overrides the server's ws:// URL.
	URL string
}

// DialWebSocket connects to the HTTP listener's /xmpp-websocket with the
// xmpp subprotocol. The Conn is the TCP one's: Send writes one WebSocket
// message per call, and what the server sends reads as a stream (its
// <open/> as a stream header, <close/> as the closing tag), so Open,
// AuthSCRAM, Bind and Next work as they do over TCP; Open sends <open/>.
func (s *Server) DialWebSocket() *Conn {
	s.t.Helper()
	c, resp, err := s.DialWebSocketWith(WSOptions{})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		s.t.Fatalf("parleytest: dial websocket: %v (HTTP %d)", err, status)
	}
	return c
}

// DialWebSocketWith is DialWebSocket with options; it returns the
// handshake's response and error instead of failing the test.
func (s *Server) DialWebSocketWith(o WSOptions) (*Conn, *http.Response, error) {
	u := o.URL
	if u == "" {
		u = "ws" + strings.TrimPrefix(s.HTTPURL, "http") + "/xmpp-websocket"
	}
	protos := o.Subprotocols
	if protos == nil {
		protos = []string{"xmpp"}
	}
	h := o.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if o.Origin != "" {
		h.Set("Origin", o.Origin)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: o.TLS}}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{Subprotocols: protos, HTTPHeader: h, HTTPClient: hc})
	if err != nil {
		return nil, resp, err
	}
	ws.SetReadLimit(clientLimits.MaxStanza)
	wc := &WSConn{WS: ws}
	s.t.Cleanup(func() { _ = ws.CloseNow() })
	return &Conn{Conn: wc, t: s.t, r: xmpp.NewReader(wc, clientLimits), ws: true}, resp, nil
}

// LoginWebSocket connects over WebSocket, authenticates with SCRAM-SHA-256
// as jid and binds resource (the server picks one when empty).
func (s *Server) LoginWebSocket(jid, password, resource string) *Conn {
	s.t.Helper()
	j, err := xmpp.Parse(jid)
	if err != nil {
		s.t.Fatalf("parleytest: LoginWebSocket(%q): %v", jid, err)
	}
	c := s.DialWebSocket()
	c.Open(j.Domain())
	if el := c.AuthSCRAM("SCRAM-SHA-256", j.Local(), password, "n", nil); el.Tag != "success" {
		s.t.Fatalf("parleytest: LoginWebSocket(%q): authentication failed: %s", jid, c.String(el))
	}
	c.Open(j.Domain())
	c.Bind(resource)
	return c
}

// WSConn is the client side of XMPP over WebSocket as a net.Conn for a
// test's Conn: each Write is one text message, and Read gives the
// server's messages as a stream, <open/> as a stream header and <close/>
// as the closing tag. Frames holds every message read, as it came.
type WSConn struct {
	WS *websocket.Conn

	mu       sync.Mutex
	rd, wd   time.Time
	pend     []byte
	frames   []string
	closeErr error
}

// Frames returns the messages the server sent so far.
func (c *WSConn) Frames() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.frames...)
}

// CloseError is the error that ended reading: a websocket.CloseError
// when the server closed the WebSocket.
func (c *WSConn) CloseError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeErr
}

func (c *WSConn) ctx(d time.Time) (context.Context, context.CancelFunc) {
	if d.IsZero() {
		return context.WithCancel(context.Background())
	}
	return context.WithDeadline(context.Background(), d)
}

// Read reads the next message when the last one was read.
func (c *WSConn) Read(p []byte) (int, error) {
	for len(c.pend) == 0 {
		c.mu.Lock()
		ctx, cancel := c.ctx(c.rd)
		c.mu.Unlock()
		typ, data, err := c.WS.Read(ctx)
		cancel()
		if err != nil {
			c.mu.Lock()
			c.closeErr = err
			c.mu.Unlock()
			return 0, err
		}
		c.mu.Lock()
		c.frames = append(c.frames, string(data))
		c.mu.Unlock()
		if typ != websocket.MessageText {
			continue
		}
		c.pend = unframe(data)
	}
	n := copy(p, c.pend)
	c.pend = c.pend[n:]
	return n, nil
}

// unframe turns the server's <open/> and <close/> into stream tags.
func unframe(data []byte) []byte {
	t := bytes.TrimSpace(data)
	switch {
	case bytes.HasPrefix(t, []byte("<open")):
		var b bytes.Buffer
		b.WriteString("<stream:stream xmlns='" + xmpp.NSClient + "' xmlns:stream='" + xmpp.NSStream + "'")
		d := xml.NewDecoder(bytes.NewReader(t))
		if tok, err := d.Token(); err == nil {
			if se, ok := tok.(xml.StartElement); ok {
				for _, a := range se.Attr {
					if a.Name.Local == "xmlns" || a.Name.Space == "xmlns" {
						continue
					}
					name := a.Name.Local
					if a.Name.Space != "" {
						name = "xml:" + name
					}
					b.WriteString(" " + name + "='")
					_ = xml.EscapeText(&b, []byte(a.Value))
					b.WriteString("'")
				}
			}
		}
		b.WriteString(">")
		return b.Bytes()
	case bytes.HasPrefix(t, []byte("<close")):
		return []byte("</stream:stream>")
	}
	return data
}

// Write sends p as one text message.
func (c *WSConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	ctx, cancel := c.ctx(c.wd)
	c.mu.Unlock()
	defer cancel()
	if err := c.WS.Write(ctx, websocket.MessageText, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close closes the WebSocket without a close handshake.
func (c *WSConn) Close() error { return c.WS.CloseNow() }

// LocalAddr is not known.
func (c *WSConn) LocalAddr() net.Addr { return &net.TCPAddr{} }

// RemoteAddr is not known.
func (c *WSConn) RemoteAddr() net.Addr { return &net.TCPAddr{} }

// SetDeadline sets both deadlines.
func (c *WSConn) SetDeadline(t time.Time) error {
	_ = c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline bounds the next reads; past it the library closes the
// WebSocket.
func (c *WSConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rd = t
	c.mu.Unlock()
	return nil
}

// SetWriteDeadline bounds the next writes.
func (c *WSConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wd = t
	c.mu.Unlock()
	return nil
}

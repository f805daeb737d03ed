package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/parley-im/parley/xmpp"
)

// XMPP over WebSocket (RFC 7395), the load tool's second transport
// (-transport ws). The Conn is the same as over TCP: wsConn is its
// net.Conn, on which each Write is one text message and Read gives the
// server's messages as a stream, its <open/> as a stream header and its
// <close/> as the closing stream tag, so the xmpp.Reader and every
// scenario work unchanged. The Conn itself sends <open/> and <close/>
// instead of the stream tags, and negotiates no STARTTLS: a wss:// URL
// is TLS from the start.

// Transports of -transport.
const (
	transportTCP = "tcp"
	transportWS  = "ws"
)

// wsSubprotocol is RFC 7395's subprotocol.
const wsSubprotocol = "xmpp"

// wsFrameClose is the client's <close/> (RFC 7395 §3.6).
const wsFrameClose = "<close xmlns='" + xmpp.NSFraming + "'/>"

// wsFrameOpen is the client's <open/> to domain (RFC 7395 §3.4).
func wsFrameOpen(domain string) string {
	return "<open xmlns='" + xmpp.NSFraming + "' to='" + escape(domain) + "' version='1.0'/>"
}

// dialWebSocket opens a WebSocket to o.WSURL with the xmpp subprotocol.
// It returns the connection and, over wss://, its TLS state (for the
// -PLUS mechanisms' channel binding).
func dialWebSocket(ctx context.Context, o *options) (*wsConn, *tls.ConnectionState, error) {
	dctx, cancel := context.WithTimeout(ctx, o.StepTimeout)
	defer cancel()
	ws, resp, err := websocket.Dial(dctx, o.WSURL, &websocket.DialOptions{
		Subprotocols:    []string{wsSubprotocol},
		HTTPClient:      o.httpClient,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		if resp != nil {
			return nil, nil, fmt.Errorf("websocket %s: HTTP %d: %w", o.WSURL, resp.StatusCode, err)
		}
		return nil, nil, fmt.Errorf("websocket %s: %w", o.WSURL, err)
	}
	if ws.Subprotocol() != wsSubprotocol {
		_ = ws.CloseNow()
		return nil, nil, fmt.Errorf("websocket %s: the server did not accept the %s subprotocol (RFC 7395 §3.1)", o.WSURL, wsSubprotocol)
	}
	ws.SetReadLimit(1 << 20)
	return &wsConn{ws: ws}, resp.TLS, nil
}

// dialWSStream is dialStream over WebSocket: it connects to o.WSURL and
// opens a stream to o.Domain, with no STARTTLS. The connection is closed
// when ctx ends.
func dialWSStream(ctx context.Context, o *options) (*Conn, error) {
	wc, state, err := dialWebSocket(ctx, o)
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, err
	}
	c := &Conn{
		nc:       wc,
		r:        xmpp.NewReader(wc, xmpp.Limits{MaxStanza: 1 << 20}),
		ws:       true,
		tlsState: state,
		step:     o.StepTimeout,
		done:     make(chan struct{}),
	}
	c.stop = context.AfterFunc(ctx, func() {
		c.closing.Store(true)
		_ = wc.ws.CloseNow()
	})
	if err := c.open(o.Domain); err != nil {
		c.stop()
		_ = wc.ws.CloseNow()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, err
	}
	return c, nil
}

// wsClient is the http.Client WebSockets are dialed with: one for the
// run, with the run's TLS config for wss://.
func wsClient(cfg *tls.Config) *http.Client {
	// No Proxy: a load test talks to the server it names.
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
}

// wsConn is a client WebSocket as a net.Conn for a Conn. Deadlines become
// the library's contexts, which close the WebSocket when they pass: a
// negotiation step that times out fails its login anyway. Without a
// deadline (after negotiation) reads and writes carry no context cost.
type wsConn struct {
	ws *websocket.Conn

	mu     sync.Mutex
	rd, wd time.Time

	pend []byte // the rest of the message being read; the reader's alone
}

func (c *wsConn) context(d time.Time) (context.Context, context.CancelFunc) {
	if d.IsZero() {
		return context.Background(), func() {}
	}
	return context.WithDeadline(context.Background(), d)
}

// Read gives the next bytes of the server's messages.
func (c *wsConn) Read(p []byte) (int, error) {
	for len(c.pend) == 0 {
		c.mu.Lock()
		ctx, cancel := c.context(c.rd)
		c.mu.Unlock()
		typ, data, err := c.ws.Read(ctx)
		cancel()
		if err != nil {
			if st := websocket.CloseStatus(err); st == websocket.StatusNormalClosure || st == websocket.StatusGoingAway {
				return 0, net.ErrClosed
			}
			if errors.Is(err, context.DeadlineExceeded) {
				return 0, &timeoutError{err}
			}
			return 0, err
		}
		if typ != websocket.MessageText {
			return 0, errors.New("websocket: a binary message; RFC 7395 §3.2 sends text")
		}
		if c.pend, err = unframe(data); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.pend)
	c.pend = c.pend[n:]
	return n, nil
}

// timeoutError is a deadline that passed, as net.Conn reports one.
type timeoutError struct{ err error }

func (e *timeoutError) Error() string { return e.err.Error() }
func (e *timeoutError) Unwrap() error { return e.err }
func (e *timeoutError) Timeout() bool { return true }

// unframe turns the server's <open/> into a stream header and <close/>
// into the closing stream tag; other messages are stanzas or nonzas as
// they are.
func unframe(data []byte) ([]byte, error) {
	t := bytes.TrimSpace(data)
	isFrame := func(name string) bool {
		return bytes.HasPrefix(t, []byte("<"+name)) && len(t) > len(name)+1 && strings.ContainsRune(" \t\r\n/>", rune(t[len(name)+1]))
	}
	switch {
	case isFrame("open"):
		d := xml.NewDecoder(bytes.NewReader(t))
		tok, err := d.Token()
		se, ok := tok.(xml.StartElement)
		if err != nil || !ok || se.Name.Space != xmpp.NSFraming {
			return nil, fmt.Errorf("websocket: the server's <open/> is not in %s: %q", xmpp.NSFraming, t)
		}
		var b bytes.Buffer
		b.WriteString("<stream:stream xmlns='" + xmpp.NSClient + "' xmlns:stream='" + xmpp.NSStream + "'")
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
		b.WriteString(">")
		return b.Bytes(), nil
	case isFrame("close"):
		return []byte("</stream:stream>"), nil
	}
	return data, nil
}

// Write sends p as one text message: one stanza, or one framing element.
func (c *wsConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	ctx, cancel := c.context(c.wd)
	c.mu.Unlock()
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, p); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return 0, &timeoutError{err}
		}
		return 0, err
	}
	return len(p), nil
}

// Close ends the WebSocket with a normal closure: the Conn has already
// exchanged <close/> with the server, or given up on it.
func (c *wsConn) Close() error {
	return c.ws.Close(websocket.StatusNormalClosure, "")
}

// LocalAddr is not known beneath the library.
func (c *wsConn) LocalAddr() net.Addr { return &net.TCPAddr{} }

// RemoteAddr is not known beneath the library.
func (c *wsConn) RemoteAddr() net.Addr { return &net.TCPAddr{} }

// SetDeadline sets both deadlines.
func (c *wsConn) SetDeadline(t time.Time) error {
	_ = c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline bounds the reads that start after it.
func (c *wsConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rd = t
	c.mu.Unlock()
	return nil
}

// SetWriteDeadline bounds the writes that start after it.
func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wd = t
	c.mu.Unlock()
	return nil
}

package c2s

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/parley-im/parley/xmpp"
)

// XMPP over WebSocket (RFC 7395) is another transport for the same
// Session: the session reads with its xmpp.Reader and writes with its
// xmpp.Writer as on TCP, and only the framing differs. wsConn is the
// seam: to the Reader it is a byte stream in which each <open/> frame
// reads as a stream header and <close/> as the closing stream tag, and to
// the Writer (xmpp.NewFramedWriter) it takes one frame per element. The
// session itself asks about its transport at three points only: STARTTLS
// is not offered over WebSocket, authentication needs the stream to count
// as secure whatever require_tls says, and a stream header is read only
// from an <open/> frame. The idle-memory machinery does not apply: a
// WebSocket session is not on a socket of its own that epoll could
// watch, so it never parks (leanIdle sees no sockConn and lets it block).

// WebSocketSubprotocol is the subprotocol of RFC 7395 §3.1, without which
// a WebSocket is refused.
const WebSocketSubprotocol = "xmpp"

// wsFirstChunk is the most a frame's first chunk holds: a whole <open/>
// or <close/> frame, or the head of any other frame, enough to tell which
// it is.
const wsFirstChunk = 4096

// WebSocketOptions is how ServeWebSocket treats one request.
type WebSocketOptions struct {
	// Secure makes the stream count as encrypted: the HTTP listener
	// serves HTTPS, or the client is on loopback, or the operator said so
	// (websocket_insecure). Authentication is refused on a stream that
	// does not, since STARTTLS cannot follow over WebSocket.
	Secure bool
	// RemoteAddr is the client's address (ip:port), which the
	// per-address limits count it under: the request's, or the one a
	// trusted proxy forwarded.
	RemoteAddr string
	// OriginPatterns are the host patterns (path.Match) a browser's
	// Origin must match; nil allows any origin.
	OriginPatterns []string
	// TLS is the state of the TLS connection the WebSocket came over,
	// when the listener itself served HTTPS to this client (r.TLS, and
	// no proxy in between). The SASL mechanisms then bind to it as they
	// do to a c2s TLS connection: the -PLUS variants with tls-exporter
	// and tls-server-end-point under channel_binding = "strict", and
	// PLAIN. Leave it nil behind a proxy: its TLS is not the one the
	// client has, and a binding offered there could never match.
	TLS *tls.ConnectionState
	// PingInterval is how often the server pings the client; a pong
	// restarts a bound stream's idle timeout as whitespace does on TCP.
	// Zero means half the idle timeout, at most two minutes.
	PingInterval time.Duration
}

// ServeWebSocket upgrades r to a WebSocket with the xmpp subprotocol and
// runs a c2s session on it, which goes on after ServeWebSocket returns.
// It answers the request itself when it refuses it: 400 without the xmpp
// subprotocol, 429 when the client's address has too many
// unauthenticated streams (unauthenticated_per_ip, as on TCP), 503 after
// Shutdown.
func (s *Server) ServeWebSocket(w http.ResponseWriter, r *http.Request, opts WebSocketOptions) error {
	if !wantsXMPP(r.Header) {
		http.Error(w, "this endpoint speaks XMPP over WebSocket (RFC 7395): ask for the xmpp subprotocol (Sec-WebSocket-Protocol: xmpp)",
			http.StatusBadRequest)
		return errors.New("c2s: websocket without the xmpp subprotocol")
	}
	addr := wsAddr(opts.RemoteAddr)
	s.mu.Lock()
	closed := s.closed
	full := s.cfg.UnauthenticatedPerIP >= 0 && s.unauth[remoteIP(addr)] >= s.cfg.UnauthenticatedPerIP
	s.mu.Unlock()
	switch {
	case closed:
		http.Error(w, "the server is shutting down", http.StatusServiceUnavailable)
		return ErrServerClosed
	case full:
		// Refused before the upgrade: a flood costs no hijacked
		// connection and no goroutine.
		s.refused.Add(1)
		w.Header().Set("Retry-After", "5")
		http.Error(w, fmt.Sprintf("more than %d connections from your address are logging in; try again in a few seconds",
			s.cfg.UnauthenticatedPerIP), http.StatusTooManyRequests)
		return errors.New("c2s: websocket refused: too many unauthenticated connections from the address")
	}
	// The HTTP server's read and write deadlines stay on a hijacked
	// connection: the session sets its own.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	cw := &corkResponse{ResponseWriter: w}
	ws, err := websocket.Accept(cw, r, &websocket.AcceptOptions{
		Subprotocols:       []string{WebSocketSubprotocol},
		OriginPatterns:     opts.OriginPatterns,
		InsecureSkipVerify: opts.OriginPatterns == nil,
		// Compression of an encrypted stream that mixes secrets with
		// what an attacker chooses leaks them (CRIME), and costs a
		// compressor's memory per stream.
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		return fmt.Errorf("c2s: websocket upgrade: %w", err)
	}
	// A frame may hold a stanza and the reader's read-ahead; the
	// xmpp.Reader refuses a larger stanza with a stream error first, and
	// this bound is only the library's backstop.
	ws.SetReadLimit(2*s.cfg.Limits.WithDefaults().MaxStanza + 64<<10)
	interval := opts.PingInterval
	if interval <= 0 {
		interval = 2 * time.Minute
		if idle := s.cfg.IdleTimeout; idle > 0 {
			interval = min(interval, idle/2)
		}
	}
	conn := newWSConn(ws, addr)
	conn.tls = opts.TLS
	conn.cork = cw.conn
	// As Serve does before it accepts: the machinery the sessions
	// share (the writer pool) runs from here on.
	s.idle.start()
	if !s.start(conn, opts.Secure) {
		conn.Close()
		return ErrServerClosed
	}
	go conn.readLoop()
	go conn.keepalive(interval)
	return nil
}

// start runs a session on conn, just accepted, counted against its
// address; it reports false after Shutdown.
func (s *Server) start(conn net.Conn, secure bool) bool {
	sess := newSession(s, conn, secure)
	if c, ok := conn.(*wsConn); ok {
		c.sess = sess
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	s.sessions[sess] = struct{}{}
	s.admit(sess)
	s.wg.Add(1)
	s.mu.Unlock()
	go s.serveSession(sess)
	return true
}

// wantsXMPP reports whether the request lists the xmpp subprotocol.
func wantsXMPP(h http.Header) bool {
	for _, v := range h.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			if strings.TrimSpace(p) == WebSocketSubprotocol {
				return true
			}
		}
	}
	return false
}

// wsAddr is the client's address as a net.Addr: ip:port, or an address
// without a port (a forwarded one) with port 0.
func wsAddr(remote string) net.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return net.TCPAddrFromAddrPort(ap)
	}
	if a, err := netip.ParseAddr(remote); err == nil {
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, 0))
	}
	return &net.TCPAddr{}
}

// websocket reports whether the session runs over WebSocket.
func (s *Session) websocket() bool {
	_, ok := s.conn.(*wsConn)
	return ok
}

// mustEncrypt reports whether authentication is refused on this stream
// until it is encrypted: require_tls, or a WebSocket that does not count
// as secure, where STARTTLS cannot follow (ServeWebSocket's Secure). The
// refusal keeps a password or a SCRAM exchange, and the session it opens,
// off a plain ws:// connection that anyone on the path could read or take
// over.
func (s *Session) mustEncrypt() bool {
	return s.state&stateSecure == 0 && (s.srv.cfg.RequireTLS || s.websocket())
}

// encryptFirst is the text of an <encryption-required/> refusal.
func (s *Session) encryptFirst() string {
	if s.websocket() {
		return "connect with wss://: STARTTLS cannot follow over WebSocket"
	}
	return "use STARTTLS first"
}

// tlsState is the state of the TLS connection the stream runs over, the
// one the SASL mechanisms bind to: the c2s connection's after STARTTLS or
// direct TLS, or over wss:// the HTTPS connection's when the listener
// terminated it; nil otherwise.
func (s *Session) tlsState() *tls.ConnectionState {
	switch c := s.conn.(type) {
	case *tls.Conn:
		cs := c.ConnectionState()
		return &cs
	case *wsConn:
		return c.tls
	}
	return nil
}

// expectHeader tells a WebSocket transport that the session reads a
// stream header next: only then is an <open/> frame in order.
func (s *Session) expectHeader() {
	if c, ok := s.conn.(*wsConn); ok {
		c.expectOpen = true
	}
}

// wsChunk is what the reading goroutine hands the session: a piece of a
// message, or the error that ended the reading.
type wsChunk struct {
	data  []byte
	first bool // the start of a message; with its whole when shorter than wsFirstChunk
	last  bool // the message ends with it
}

// wsConn is a WebSocket as the session's net.Conn. One goroutine
// (readLoop) reads messages and hands them over in chunks; the session's
// reads take them with its read deadline, which, unlike the library's
// contexts, may pass without closing the connection (Close wakes the
// reader with it and then writes the rest). Writes collect frames until
// Flush, which sends them within the write deadline.
type wsConn struct {
	ws     *websocket.Conn
	remote net.Addr
	tls    *tls.ConnectionState // the HTTPS connection's, when the listener served TLS itself
	cork   *corkConn            // beneath ws: Flush sends its frames in one write
	ctx    context.Context      // ends at Close
	cancel context.CancelFunc

	chunks chan wsChunk
	rerr   error // why chunks was closed; set before
	pong   chan struct{}

	// The session's goroutine's alone.
	pend       []byte
	expectOpen bool
	inFrame    bool // within a frame passed through: its rest follows
	sess       *Session

	mu        sync.Mutex
	rdeadline time.Time
	wdeadline time.Time
	kick      chan struct{} // the read deadline changed

	// The writer's alone (one writes at a time: Session.writeLoop).
	out  []byte
	ends []int

	closeOnce sync.Once
}

func newWSConn(ws *websocket.Conn, remote net.Addr) *wsConn {
	ctx, cancel := context.WithCancel(context.Background())
	return &wsConn{
		ws:     ws,
		remote: remote,
		ctx:    ctx,
		cancel: cancel,
		chunks: make(chan wsChunk),
		pong:   make(chan struct{}, 1),
		kick:   make(chan struct{}, 1),
	}
}

// readLoop reads messages until the connection ends. A chunk waits for
// the session to take it, so a client that sends faster than its session
// reads is held back by TCP, as on a c2s socket.
func (c *wsConn) readLoop() {
	err := c.readMessages()
	if st := websocket.CloseStatus(err); st == websocket.StatusNormalClosure || st == websocket.StatusGoingAway {
		err = io.EOF
	}
	c.rerr = err
	close(c.chunks)
}

func (c *wsConn) readMessages() error {
	buf := make([]byte, wsFirstChunk)
	for {
		typ, r, err := c.ws.Reader(c.ctx)
		if err != nil {
			return err
		}
		if typ != websocket.MessageText {
			// RFC 7395 §3.2: the XMPP subprotocol's messages are text.
			return xmpp.NewStreamError(xmpp.UnsupportedEncoding, "XMPP over WebSocket is sent in text messages (RFC 7395 §3.2)")
		}
		n, err := io.ReadFull(r, buf)
		first := true
		for {
			last := err == io.EOF || err == io.ErrUnexpectedEOF
			if err != nil && !last {
				return err
			}
			// A copy of what was read, not the buffer: most frames
			// are a few hundred bytes, and the session may still hold
			// this chunk when the next is read.
			select {
			case c.chunks <- wsChunk{data: bytes.Clone(buf[:n]), first: first, last: last}:
			case <-c.ctx.Done():
				return net.ErrClosed
			}
			if last {
				break
			}
			first = false
			n, err = r.Read(buf)
		}
	}
}

// keepalive pings the client every interval; a pong tells the session's
// reader that the client is there, and no pong within the interval ends
// the connection.
func (c *wsConn) keepalive(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(c.ctx, interval)
		err := c.ws.Ping(ctx)
		cancel()
		if err != nil {
			_ = c.ws.CloseNow()
			return
		}
		select {
		case c.pong <- struct{}{}:
		default:
		}
	}
}

// Read gives the session's xmpp.Reader the next bytes of the stream.
func (c *wsConn) Read(p []byte) (int, error) {
	for len(c.pend) == 0 {
		ch, err := c.next()
		if err != nil {
			return 0, err
		}
		data := ch.data
		if ch.first {
			if data, err = c.frame(ch); err != nil {
				return 0, err
			}
		}
		c.pend = data
	}
	n := copy(p, c.pend)
	c.pend = c.pend[n:]
	return n, nil
}

// next waits for the next chunk until the read deadline.
func (c *wsConn) next() (wsChunk, error) {
	for {
		c.mu.Lock()
		d := c.rdeadline
		c.mu.Unlock()
		var expire <-chan time.Time
		var t *time.Timer
		if !d.IsZero() {
			wait := time.Until(d)
			if wait <= 0 {
				return wsChunk{}, os.ErrDeadlineExceeded
			}
			t = time.NewTimer(wait)
			expire = t.C
		}
		select {
		case ch, ok := <-c.chunks:
			stopTimer(t)
			if !ok {
				return wsChunk{}, c.rerr
			}
			return ch, nil
		case <-c.kick:
			stopTimer(t)
		case <-c.pong:
			stopTimer(t)
			c.alive()
		case <-expire:
			return wsChunk{}, os.ErrDeadlineExceeded
		}
	}
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// alive restarts a bound session's idle timeout when the client answered
// a ping, as bytes do on TCP (liveConn). It runs on the session's
// goroutine, which owns its state.
func (c *wsConn) alive() {
	s := c.sess
	if s == nil || s.state&stateBound == 0 || s.srv.cfg.IdleTimeout <= 0 || s.closing.Load() {
		return
	}
	c.mu.Lock()
	c.rdeadline = time.Now().Add(s.srv.cfg.IdleTimeout)
	c.mu.Unlock()
}

// frame turns the first chunk of a message into stream bytes: <open/>
// into a stream header, <close/> into the closing tag, anything else as
// it is (the xmpp.Reader checks it as any stanza).
func (c *wsConn) frame(ch wsChunk) ([]byte, error) {
	data := ch.data
	name := frameName(data)
	expect := c.expectOpen
	switch {
	case name == "open" && ch.last:
		if !expect {
			return nil, xmpp.NewStreamError(xmpp.InvalidXML, "<open/> starts a stream, and this one is open (RFC 7395 §3.4)")
		}
		c.expectOpen = false
		return openToHeader(data)
	case name == "close" && ch.last:
		if isFraming(data) {
			return []byte("</stream:stream>"), nil
		}
	case expect || name == "stream:stream":
		// Not an XMPP-over-TCP stream header, nor anything else before
		// the stream is open.
		return nil, xmpp.NewStreamError(xmpp.InvalidNamespace,
			"over WebSocket a stream starts with <open xmlns='"+xmpp.NSFraming+"'/> (RFC 7395 §3.4), not <"+name+">")
	}
	return data, nil
}

// frameName returns the name of the element a frame starts with.
func frameName(data []byte) string {
	data = bytes.TrimLeft(data, " \t\r\n")
	if len(data) < 2 || data[0] != '<' {
		return ""
	}
	data = data[1:]
	end := bytes.IndexAny(data, " \t\r\n/>")
	if end < 0 {
		end = len(data)
	}
	return string(data[:end])
}

// isFraming reports whether the frame's element is in the framing
// namespace.
func isFraming(data []byte) bool {
	_, err := parseFraming(data)
	return err == nil
}

// parseFraming parses an <open/> or <close/> frame.
func parseFraming(data []byte) (xml.StartElement, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Space != xmpp.NSFraming {
				return se, errors.New("not in the framing namespace")
			}
			return se, nil
		}
	}
}

// openToHeader writes an <open/> frame as the stream header it stands for.
func openToHeader(data []byte) ([]byte, error) {
	se, err := parseFraming(data)
	if err != nil {
		return nil, xmpp.NewStreamError(xmpp.InvalidNamespace, "<open/> is in the namespace "+xmpp.NSFraming+" (RFC 7395 §3.3.2)")
	}
	var b bytes.Buffer
	b.WriteString("<stream:stream xmlns='" + xmpp.NSClient + "' xmlns:stream='" + xmpp.NSStream + "'")
	for _, a := range se.Attr {
		var key string
		switch {
		case a.Name.Space == "" && (a.Name.Local == "to" || a.Name.Local == "from" || a.Name.Local == "version" || a.Name.Local == "id"):
			key = a.Name.Local
		case a.Name.Space == "http://www.w3.org/XML/1998/namespace" && a.Name.Local == "lang":
			key = "xml:lang"
		default:
			continue
		}
		b.WriteString(" " + key + "='")
		_ = xml.EscapeText(&b, []byte(a.Value))
		b.WriteString("'")
	}
	b.WriteString(">")
	return b.Bytes(), nil
}

// SetReadDeadline sets when a waiting Read fails with a timeout; the
// connection stays open.
func (c *wsConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdeadline = t
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return nil
}

// SetWriteDeadline sets when Flush fails; the library then closes the
// connection.
func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wdeadline = t
	c.mu.Unlock()
	return nil
}

// SetDeadline sets both deadlines.
func (c *wsConn) SetDeadline(t time.Time) error {
	_ = c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// Write adds p to the frame being written (xmpp.FrameWriter).
func (c *wsConn) Write(p []byte) (int, error) {
	c.out = append(c.out, p...)
	return len(p), nil
}

// EndFrame ends the frame being written.
func (c *wsConn) EndFrame() { c.ends = append(c.ends, len(c.out)) }

// Flush sends the ended frames, one message each, within the write
// deadline.
func (c *wsConn) Flush() error {
	c.mu.Lock()
	d := c.wdeadline
	c.mu.Unlock()
	ctx, cancel := c.ctx, context.CancelFunc(func() {})
	if !d.IsZero() {
		ctx, cancel = context.WithDeadline(c.ctx, d)
	}
	defer cancel()
	if c.cork != nil && len(c.ends) > 1 {
		c.cork.cork()
	}
	start := 0
	var err error
	for _, end := range c.ends {
		if err = c.ws.Write(ctx, websocket.MessageText, c.out[start:end]); err != nil {
			break
		}
		start = end
	}
	if c.cork != nil {
		if uerr := c.cork.uncork(d); err == nil {
			err = uerr
		}
	}
	c.ends = c.ends[:0]
	if cap(c.out) > 64<<10 {
		c.out = nil // a burst must not pin its buffer for the session's life
	} else {
		c.out = c.out[:0]
	}
	return err
}

// Close ends the WebSocket with a normal closure, after the close
// handshake or its timeout, without waiting for either.
func (c *wsConn) Close() error {
	c.closeOnce.Do(func() {
		go func() {
			_ = c.ws.Close(websocket.StatusNormalClosure, "")
			c.cancel()
		}()
	})
	return nil
}

// LocalAddr is not known beneath the WebSocket library.
func (c *wsConn) LocalAddr() net.Addr { return &net.TCPAddr{} }

// RemoteAddr is the client's address.
func (c *wsConn) RemoteAddr() net.Addr { return c.remote }

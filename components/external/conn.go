package external

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// Timeouts of a component's stream.
const (
	// handshakeTimeout bounds the stream header and the handshake: a
	// connection that has not authenticated by then is closed.
	handshakeTimeout = 30 * time.Second
	// writeTimeout bounds one flush to the component: one that does not
	// read for that long is closed, so that its queue never waits for
	// ever.
	writeTimeout = 30 * time.Second
	// closeWait is how long a closing stream waits for the component's
	// closing tag after ours.
	closeWait = 3 * time.Second
)

// deliverResult is what conn.deliver did with a stanza.
type deliverResult int

const (
	queued deliverResult = iota
	queueFull
	connClosing
)

// conn is one component connection: its reader is the goroutine that
// serves it, its writer a goroutine of its own once authenticated.
type conn struct {
	nc   net.Conn
	addr string
	id   string
	r    *xmpp.Reader
	w    *xmpp.Writer
	log  *slog.Logger
	host *Host // once authenticated

	mu      sync.Mutex
	queue   []*etree.Element
	qbytes  int64
	closing bool
	// serr is the stream error the writer ends the stream with (nil:
	// just the closing tag).
	serr *xmpp.StreamError
	// routeClosing keeps routing what the component sends after the
	// close began: a drain at shutdown, not an error.
	routeClosing bool
	// broken means the connection failed: nothing more is written.
	broken bool

	wake chan struct{} // the writer has work: cap 1
	// wdone is closed when the writer ends; done when the connection has.
	wdone, done chan struct{}
}

func newConn(nc net.Conn, l xmpp.Limits, log *slog.Logger) *conn {
	var b [12]byte
	_, _ = rand.Read(b[:])
	addr := nc.RemoteAddr().String()
	return &conn{
		nc: nc, addr: addr, id: hex.EncodeToString(b[:]),
		r: xmpp.NewReader(nc, l), w: xmpp.NewWriter(nc),
		log:  log.With("addr", addr),
		wake: make(chan struct{}, 1), wdone: make(chan struct{}), done: make(chan struct{}),
	}
}

// handshakeDigest is the handshake XEP-0114 §3 asks for: the lower-case
// hex SHA-1 of the stream id followed by the secret.
func handshakeDigest(id, secret string) string {
	sum := sha1.Sum([]byte(id + secret))
	return hex.EncodeToString(sum[:])
}

// negotiate reads the stream header and the handshake and attaches the
// connection to its host. Its error is a *xmpp.StreamError to send, or
// an I/O error.
// A handshake's answer may wait (handshakeLimits); stop ends the wait.
func (c *conn) negotiate(hosts map[string]*Host, stop <-chan struct{}) (sent bool, err error) {
	hdr, err := c.r.ReadHeader()
	if err != nil {
		return false, err
	}
	reply := xmpp.Header{NS: xmpp.NSAccept, ID: c.id}
	domain, derr := xmpp.NormalizeDomain(hdr.To)
	var h *Host
	switch {
	case hdr.NS != xmpp.NSAccept:
		err = xmpp.NewStreamError(xmpp.InvalidNamespace, "a component stream's default namespace is "+xmpp.NSAccept)
	case hdr.To == "":
		err = xmpp.NewStreamError(xmpp.ImproperAddressing, "the stream header needs the component's domain as its to")
	case derr != nil || hosts[domain] == nil:
		err = xmpp.NewStreamError(xmpp.HostUnknown, hdr.To+" is not a component of this server")
	default:
		h = hosts[domain]
		reply.From = domain
	}
	// XEP-0114 §3: errors about the header come after a header of ours.
	if werr := c.w.WriteHeader(reply); werr != nil {
		return false, werr
	}
	if err != nil {
		return true, err
	}
	if err := c.w.Flush(); err != nil {
		return true, err
	}
	c.log = c.log.With("component", domain)
	el, err := c.r.ReadElement()
	if err != nil {
		return true, err
	}
	got := strings.ToLower(el.Text())
	want := handshakeDigest(c.id, h.opts.Secret)
	ns := xmpp.NS(el)
	right := el.Tag == "handshake" && (ns == "" || ns == xmpp.NSAccept) && len(el.ChildElements()) == 0 &&
		subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
	// The answer waits as long whether the handshake was right or
	// wrong, so that a guesser learns nothing from how soon it comes.
	now := time.Now()
	if d := h.guard.delay(c.addr, now); d > 0 {
		h.guard.waited(d)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-stop:
			t.Stop()
			return true, xmpp.NewStreamError(xmpp.SystemShutdown, "the server is stopping")
		}
		_ = c.nc.SetDeadline(time.Now().Add(writeTimeout))
	}
	if !right {
		h.guard.fail(c.addr, now)
		c.log.Info("component: handshake refused")
		return true, xmpp.NewStreamError(xmpp.StreamNotAuthorized, "the handshake does not match the secret")
	}
	h.guard.succeed(c.addr, now)
	// Authenticated: no deadline from here (a close sets its own).
	_ = c.nc.SetDeadline(time.Time{})
	if serr := h.attach(c); serr != nil {
		return true, serr
	}
	c.host = h
	if err := c.w.WriteElement(etree.NewElement("handshake")); err != nil {
		return true, err
	}
	return true, nil
}

// refuse ends a connection that did not authenticate with e (when e is a
// stream error) and closes it.
func (c *conn) refuse(sent bool, err error) {
	defer c.nc.Close()
	var se *xmpp.StreamError
	if !errors.As(err, &se) {
		if !errors.Is(err, xmpp.ErrStreamClosed) {
			c.log.Debug("component: connection ended before the handshake", "err", err)
			return
		}
		se = nil
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if !sent {
		_ = c.w.WriteHeader(xmpp.Header{NS: xmpp.NSAccept, ID: c.id})
	}
	if se != nil {
		_ = c.w.WriteStreamError(se)
	}
	_ = c.w.WriteEnd()
	_ = c.w.Flush()
}

// run serves an authenticated connection: its writer in a goroutine,
// its reader here, until the stream ends.
func (c *conn) run() {
	defer close(c.done)
	c.log.Info("component: connected")
	go c.writeLoop()
	c.wakeWriter() // the handshake answer, and what was queued meanwhile
	c.readLoop()
	<-c.wdone
	c.nc.Close()
	c.host.detach(c)
	// What was never written goes back to its senders.
	c.mu.Lock()
	left := c.queue
	c.queue, c.qbytes = nil, 0
	c.mu.Unlock()
	c.bounce(left)
	c.log.Info("component: disconnected")
}

// readLoop routes what the component sends until its stream ends.
func (c *conn) readLoop() {
	for {
		el, err := c.r.ReadElement()
		if err != nil {
			var se *xmpp.StreamError
			switch {
			case errors.Is(err, xmpp.ErrStreamClosed):
				c.close(nil, false)
			case errors.As(err, &se):
				c.log.Info("component: stream error", "err", err)
				c.close(se, false)
			default:
				// The connection failed or the close's wait ended.
				c.fail()
			}
			return
		}
		c.mu.Lock()
		skip := c.closing && !c.routeClosing
		c.mu.Unlock()
		if skip {
			continue
		}
		if se := c.handle(el); se != nil {
			c.log.Warn("component: stream closed", "err", se)
			c.close(se, false)
		}
	}
}

// handle takes one element the component sent: a stanza from its domain
// is routed. The error is the stream error that ends the stream.
func (c *conn) handle(el *etree.Element) *xmpp.StreamError {
	if a := el.SelectAttr("xmlns"); a != nil && a.Value == xmpp.NSClient {
		// Prosody takes jabber:client stanzas too; the router's
		// stanzas carry no namespace of their own.
		el.RemoveAttr("xmlns")
	}
	if xmpp.KindOf(el) == xmpp.KindNone {
		return xmpp.NewStreamError(xmpp.UnsupportedStanzaType, "<"+el.Tag+"/> is not a stanza")
	}
	st, err := xmpp.NewStanza(el)
	from := el.SelectAttrValue("from", "")
	if from == "" || st.From.IsZero() || !c.host.mayFrom(st.From.Domain()) {
		return xmpp.NewStreamError(xmpp.InvalidFrom, "a stanza from "+c.host.name+" needs a from in "+c.host.name+", not "+strings.TrimSpace(from))
	}
	if err != nil {
		var se *xmpp.StanzaError
		if errors.As(err, &se) {
			c.answer(st, se)
		}
		return nil
	}
	if st.To.IsZero() {
		c.answer(st, xmpp.NewStanzaError(xmpp.BadRequest, "a component's stanza needs a to address"))
		return nil
	}
	// A component speaks for its own domains (mayFrom), not for the
	// server's others: see xmpp.StripForeignDelays.
	xmpp.StripForeignDelays(st, func(d string) bool { return !c.host.mayFrom(d) && c.host.router.Serves(d) })
	// Counted before it is routed: a recipient may have it (Deliver
	// writes at once) before Route returns.
	c.host.in.Add(1)
	c.host.router.Route(st)
	return nil
}

// answer sends the component an error for its own stanza st.
func (c *conn) answer(st *xmpp.Stanza, e *xmpp.StanzaError) {
	if st.IsError() || (st.Kind == xmpp.KindIQ && st.Type == "result") {
		return
	}
	reply := st.ErrorReply(e)
	if reply.From.IsZero() {
		reply.SetFrom(xmpp.MustParse(c.host.name))
	}
	if c.deliver(reply.El) == queueFull {
		c.close(xmpp.NewStreamError(xmpp.StreamPolicyViolation, "the component does not read its stream"), false)
	}
}

// deliver queues el for the writer without waiting.
func (c *conn) deliver(el *etree.Element) deliverResult {
	w := xmpp.Weight(el)
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return connClosing
	}
	if c.qbytes > 0 && c.qbytes+w > int64(c.host.opts.QueueBytes) {
		c.mu.Unlock()
		return queueFull
	}
	c.queue = append(c.queue, el)
	c.qbytes += w
	c.mu.Unlock()
	c.wakeWriter()
	return queued
}

func (c *conn) wakeWriter() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// close ends the stream: the writer writes what is queued, then e (if
// any) and the closing tag; the reader waits closeWait at most for the
// component's closing tag, routing what comes meanwhile when route is
// set (a drain), dropping it otherwise (an error).
func (c *conn) close(e *xmpp.StreamError, route bool) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing, c.serr, c.routeClosing = true, e, route
	c.mu.Unlock()
	_ = c.nc.SetReadDeadline(time.Now().Add(closeWait))
	c.wakeWriter()
}

// fail ends a connection that broke: nothing more is written.
func (c *conn) fail() {
	c.mu.Lock()
	c.closing, c.broken = true, true
	c.mu.Unlock()
	c.wakeWriter()
}

// writeLoop writes what is queued, in one flush per batch, until the
// stream is closed.
func (c *conn) writeLoop() {
	defer close(c.wdone)
	for range c.wake {
		c.mu.Lock()
		batch, closing, broken, serr := c.queue, c.closing, c.broken, c.serr
		c.queue, c.qbytes = nil, 0
		c.mu.Unlock()
		if broken {
			c.bounce(batch)
			return
		}
		_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		for _, el := range batch {
			_ = c.w.WriteElement(el)
		}
		if closing {
			if serr != nil {
				_ = c.w.WriteStreamError(serr)
			}
			_ = c.w.WriteEnd()
		}
		if err := c.w.Flush(); err != nil {
			// Whether the component got any of it is unknown: its
			// senders learn that it did not answer.
			c.log.Info("component: write failed", "err", err)
			c.bounce(batch)
			c.fail()
			c.nc.Close() // the reader ends too
			return
		}
		c.host.out.Add(int64(len(batch)))
		if closing {
			return
		}
	}
}

// bounce answers what was queued for the component and never written
// with service-unavailable.
func (c *conn) bounce(els []*etree.Element) {
	for _, el := range els {
		st, err := xmpp.NewStanza(el)
		if err != nil {
			continue
		}
		c.host.unavailable(st)
	}
}

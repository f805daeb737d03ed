package c2s

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// state is what a stream has negotiated so far.
type state uint8

const (
	stateSecure state = 1 << iota
	stateAuthenticated
	stateBound
)

// Session is one client stream, from accept to close. Its goroutine reads
// and owns the negotiation state; once bound, everything it sends goes
// through the bounded outbound queue, which a writer loop drains to the
// socket. The writer loop runs only while stanzas wait, so an idle session
// holds no write buffer. How little else an idle session holds (its read
// buffer, its goroutine) is the business of the idle-memory machinery,
// which the session calls at a few points (Server.idle: see idlemem.go).
// The connection is only the session's current transport: the queue and
// the identity belong to the session.
type Session struct {
	srv *Server
	id  string

	conn     net.Conn // replaced by STARTTLS: the session's goroutine's alone before bind
	tcp      net.Conn // the connection beneath TLS, never replaced: for other goroutines
	r        *xmpp.Reader
	w        *xmpp.Writer
	host     string   // the local host of the stream
	username string   // set by SASL
	jid      xmpp.JID // set at bind, never changed after
	jidAddr  string   // jid rendered once, stamped as from on every stanza
	token    *string  // a checked invite token (XEP-0401 preauth); a pointer, for the size class

	// In one word (every idle session holds them): the state, whether our
	// stream header for the current stream is out, and, before bind,
	// whether the stream counts against its address's unauthenticated
	// connections (Server.admit), whether it was refused for too many of
	// them, and its failed SASL attempts.
	state    state
	sent     bool
	unauth   bool
	refused  bool
	failures int32

	// When the stream must be bound by (Unix nanoseconds; keepalives do
	// not move it).
	preauthBy int64

	// What the idle-memory machinery keeps (idlemem.go); zero when it
	// is off.
	idleState

	// The outbound queue: a slice that grows only while stanzas wait, so
	// an idle session holds no queue memory. qmu guards everything below
	// it up to closeOnce; it is held only to append, to take the whole
	// batch, or to decide who writes. It is the innermost lock: nothing
	// else is locked or called while it is held.
	//
	// Before bind the session's goroutine writes to the connection itself
	// (STARTTLS swaps it); queued is set at bind, and from then on only
	// writeLoop writes. Whoever queues a stanza (or closes the session)
	// while writing is false sets it and starts writeLoop (claimWriter),
	// and writeLoop sets it back to false when it finds the queue empty,
	// under qmu: one loop runs at a time, and a stanza is never left
	// behind with nobody to write it. The loop that ends the stream (the
	// closing tag after Close, or a failed write) leaves writing set, so
	// no other starts, and sets written.
	//
	// Deliver reads closing under qmu, and so does the loop that takes
	// the last batch: nothing is queued after that batch, and what a
	// failed or lost connection will not write goes back to the router
	// (Router.Undelivered) instead of being dropped.
	//
	// qmu also guards closed, which makes Close run once (a sync.Once
	// would cost 12 bytes, and the struct is at the top of its size
	// class, 352 bytes), and the session's context (context.go): over
	// and cx.
	qmu     sync.Mutex
	queue   []*etree.Element
	qbytes  int64            // xmpp.Weight of what is queued and of the batch being written
	wbytes  int64            // of that, the batch being written
	spare   []*etree.Element // the last batch's array, reused when small
	queued  bool             // bound: writeLoop writes; set by the session's goroutine
	writing bool             // writeLoop runs, or the writing is over
	written bool             // the connection's last write was made and it is closed
	lost    bool             // the reader found the connection gone: the last batch is handed back, not written
	over    bool             // the session's context is done: Close was called or the session ended
	ended   chan struct{}    // made by waitWritten, closed with written
	cx      *ctxState        // what the session's context needs while it is watched; nil mostly

	closing  atomic.Bool       // set by Close
	doing    atomic.Uint32     // what the session's goroutine is doing (doNegotiating...), for Shutdown's report
	closeErr *xmpp.StreamError // set by Close before closing

	available atomic.Bool
	priority  atomic.Int32

	// sm is stream management (sm.go), set by <enable/> under qmu; nil
	// for a session without it.
	sm *smState
}

func newSession(srv *Server, conn net.Conn, directTLS bool) *Session {
	s := &Session{
		srv:       srv,
		id:        randomID(),
		conn:      conn,
		preauthBy: time.Now().Add(srv.cfg.HandshakeTimeout).UnixNano(),
	}
	if directTLS {
		s.state |= stateSecure
	}
	// The connection beneath direct TLS. After STARTTLS it stays the
	// same connection.
	s.tcp = conn
	if tc, ok := conn.(*tls.Conn); ok {
		s.tcp = tc.NetConn()
	}
	s.r = xmpp.NewReader(conn, srv.cfg.Limits)
	if fw, ok := conn.(*wsConn); ok {
		s.w = xmpp.NewFramedWriter(fw, xmpp.NSClient)
	} else {
		s.w = xmpp.NewWriter(conn)
	}
	srv.idle.attach(s)
	return s
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// log logs one line with the session's attributes first: its id, the
// remote address, and the user and the JID once known. They are put
// together only for a line that is written, instead of a logger per
// session built ahead of time. writeLoop logs too: what log reads (conn,
// state, username, host, jid) is set before bind and never after.
func (s *Session) log(level slog.Level, msg string, args ...any) {
	l := s.srv.cfg.Logger
	ctx := context.Background()
	if !l.Enabled(ctx, level) {
		return
	}
	attrs := make([]any, 0, 8+len(args))
	attrs = append(attrs, "session", s.id, "remote", s.tcp.RemoteAddr().String())
	if s.state&stateAuthenticated != 0 {
		attrs = append(attrs, "user", s.username+"@"+s.host)
	}
	if s.jidAddr != "" {
		attrs = append(attrs, "jid", s.jidAddr)
	}
	l.Log(ctx, level, msg, append(attrs, args...)...)
}

// ID returns the session's id, which is also its stream id.
func (s *Session) ID() string { return s.id }

// JID returns the full JID the session is bound to; zero before bind.
func (s *Session) JID() xmpp.JID { return s.jid }

// Available reports whether the session has sent available presence.
func (s *Session) Available() bool { return s.available.Load() }

// Priority returns the priority of the session's last available
// presence. Unavailable presence keeps it, since a priority only ranks
// available resources: a session that went away still tells at which
// priority it took messages to its bare JID.
func (s *Session) Priority() int { return int(s.priority.Load()) }

// SetPresence records the session's broadcast presence: the router calls it
// for each presence the user sends without a to, and with unavailable when
// the session is unbound.
func (s *Session) SetPresence(available bool, priority int) {
	if available {
		s.priority.Store(int32(priority))
	}
	s.available.Store(available)
}

// Deliver queues el for the client without blocking. It returns false when
// the queue is full or the session is closing: the caller's slow-consumer
// policy decides what then happens to el. el must not change afterwards.
// Once Deliver took el, the session writes it or hands it back to the
// router (Router.Undelivered).
func (s *Session) Deliver(el *etree.Element) bool {
	// Weighed before the lock: qmu is the writer's too, and a big stanza
	// is a long walk.
	w := xmpp.Weight(el)
	s.qmu.Lock()
	// closing is read under qmu: a stanza that a Close races with is
	// either in the last batch or refused here, never queued after it.
	waiting := len(s.queue)
	if s.sm != nil {
		// What the client has not acknowledged is held as long as what
		// waits: both count against the queue's bound.
		waiting += len(s.sm.unacked)
	}
	if s.closing.Load() || waiting >= s.srv.cfg.Queue ||
		s.qbytes > 0 && s.qbytes+w > s.srv.cfg.QueueBytes {
		s.qmu.Unlock()
		return false
	}
	s.qbytes += w
	s.queue = append(s.queue, s.deliverDetachedLocked(el))
	start := s.claimWriter()
	// Nothing else waits and no writer runs: write it from here, if the
	// socket takes it at once (writeNow).
	now := start && s.sock != nil && len(s.queue) == 1 && inlineWrites
	s.qmu.Unlock()
	switch {
	case now:
		s.writeNow()
	case start:
		s.srv.idle.write(s)
	}
	return true
}

// inlineWrites lets Deliver write from its caller's goroutine (writeNow);
// tests turn it off to exercise the writer pool alone.
var inlineWrites = true

// writeNow writes the queue's one batch from Deliver's caller, without
// blocking: the socket beneath TLS takes what it takes at once, and what
// it does not, or an error, goes to the writer pool with the batch
// (writeLoop starts with it), as does anything queued meanwhile. The
// caller claimed the writing; only the pool ever blocks on the socket.
//
// A room's message to 20 occupants used to wake 20 pooled writers, each
// setting a write deadline (a timer) and making one write: at a room's
// rate every wake-up found one stanza, and the hand-offs and deadlines
// cost about a fifth of the server's CPU (BENCHMARKS.md). The write itself
// is the same system call either way.
//
// The caller may hold locks of the router's (Close says so): nothing here
// calls out, and a failure is the pool's to handle, off this goroutine.
func (s *Session) writeNow() {
	defer func() {
		if p := recover(); p != nil {
			s.log(slog.LevelError, "c2s: panic in writer", "panic", p, "stack", string(debug.Stack()))
			s.finishWriting()
		}
	}()
	s.qmu.Lock()
	sm := s.sm
	batch := s.takeBatchLocked()
	ask := false
	if sm != nil {
		ask = sm.trackLocked(batch)
	}
	sock := s.sock
	s.qmu.Unlock()
	sock.beginTry()
	for _, el := range batch {
		_ = s.w.WriteElement(el)
	}
	if ask {
		_ = s.w.WriteElement(smRequest)
	}
	if sock.endTry(batch, s.w.Flush()) {
		// The pool writes the rest (takeLate), or meets the error: a
		// failed flush leaves the writer failed, and its next flush
		// fails the same way. Either way the batch is answered for.
		s.srv.idle.write(s)
		return
	}
	s.returnBatch(batch)
	s.qmu.Lock()
	more := len(s.queue) > 0 || s.closing.Load() || sm != nil && sm.broken.Load()
	if !more {
		s.writing = false
	}
	s.qmu.Unlock()
	if more {
		s.srv.idle.write(s)
	}
}

// claimWriter reports whether the caller is to start writeLoop: the
// session is bound and no writeLoop runs. qmu is held.
func (s *Session) claimWriter() bool {
	if !s.queued || s.writing || s.sm != nil && s.sm.broken.Load() {
		return false
	}
	s.writing = true
	return true
}

// takeBatch removes and returns everything queued.
func (s *Session) takeBatch() []*etree.Element {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return s.takeBatchLocked()
}

// takeBatchLocked is takeBatch with qmu held.
func (s *Session) takeBatchLocked() []*etree.Element {
	s.wbytes = s.qbytes
	batch := s.queue
	s.queue = s.spare[:0]
	s.spare = nil
	return batch
}

// returnBatch keeps a written batch's array for the next one, unless it
// grew large: a burst must not pin memory for the rest of the session.
func (s *Session) returnBatch(batch []*etree.Element) {
	keep := cap(batch) <= 64
	if keep {
		clear(batch)
	}
	s.qmu.Lock()
	s.qbytes -= s.wbytes
	s.wbytes = 0
	if keep && s.spare == nil {
		s.spare = batch[:0]
	}
	s.qmu.Unlock()
}

// Closing reports whether Close was called.
func (s *Session) Closing() bool { return s.closing.Load() }

// Close ends the session with the stream error e (nil for a plain close)
// after what is already queued is written. It does not wait. Close also ends the session's context (Context).
func (s *Session) Close(e *xmpp.StreamError) {
	s.qmu.Lock()
	if s.closing.Load() { // set only here, under qmu
		s.qmu.Unlock()
		return
	}
	if s.sm != nil && s.sm.detached {
		// Nobody to tell: the session expires now. Not on the caller's
		// goroutine, which may hold locks of the router that handing
		// back takes.
		s.qmu.Unlock()
		go s.expire()
		return
	}
	// closeErr is set before closing, which others read without qmu
	// (end, through isClosing) before they read closeErr.
	s.closeErr = e
	s.closing.Store(true)
	// Once bound, a writer ends the stream: the one that runs sees
	// closing when it next looks at the queue (closing is set under qmu
	// here), or none runs and one starts now.
	start := s.claimWriter()
	hooks := s.endContextLocked()
	s.qmu.Unlock()
	runHooks(hooks)
	if start {
		s.srv.idle.write(s)
	}
	// Wake the reader if it is blocked or parked; before bind it
	// ends the stream itself.
	// The deadline of the connection beneath TLS is TLS's too, and
	// that connection is never replaced, unlike s.conn in STARTTLS.
	_ = s.tcp.SetReadDeadline(time.Now())
	s.srv.idle.wake(s)
}

// serve runs the session to its end, or until it parks (then it reports
// true, and a later goroutine serves it again: see idleMem.wait).
func (s *Session) serve() (parked bool) {
	var err error
	defer func() {
		if p := recover(); p != nil {
			s.log(slog.LevelError, "c2s: panic in session", "panic", p, "stack", string(debug.Stack()))
			err = xmpp.NewStreamError(xmpp.StreamInternalError, "")
		}
		if err == errParked {
			parked = true
			return
		}
		if err == errTransplanted {
			// The connection is the resumed session's now.
			s.endContext()
			return
		}
		if s.detachable(err) && s.detach() {
			// The session waits for a resume without a goroutine, as
			// a parked one does; it ends at expire, or goes on in the
			// goroutine resumeFrom starts.
			parked = true
			return
		}
		// The session is over, whatever ended it (the client, a stream
		// error, the idle timeout): work done for it stops, before the
		// router hears of its end in end.
		s.endContext()
		s.doing.Store(doEnding)
		s.end(err)
	}()
	err = s.run()
	return false
}

// run negotiates the stream, then reads stanzas until the stream ends. A
// session resumed from parking is bound already, and goes on reading.
func (s *Session) run() error {
	if s.refused {
		if _, ok := s.conn.(*tls.Conn); ok {
			// Direct TLS: a handshake is the work a flood wants from
			// us, and without one there is nobody to tell.
			return errRefused
		}
		return xmpp.NewStreamError(xmpp.StreamPolicyViolation, fmt.Sprintf(
			"more than %d connections from your address are logging in; try again in a few seconds", s.srv.cfg.UnauthenticatedPerIP))
	}
	if s.state&stateBound == 0 {
		if tc, ok := s.conn.(*tls.Conn); ok {
			if err := s.handshake(tc); err != nil {
				return err
			}
		}
		if err := s.openStream(); err != nil {
			return err
		}
	}
	for {
		el, err := s.next()
		if err != nil {
			return err
		}
		if s.state&stateBound != 0 {
			if err := s.handleStanza(el); err != nil {
				return err
			}
			continue
		}
		if err := s.negotiate(el); err != nil {
			return err
		}
	}
}

// next reads the next element: it sets the read deadline and, when the
// reader holds nothing (Idle gives its buffer back), lets the idle-memory
// machinery wait for the peer or park the session (idleMem.wait).
func (s *Session) next() (*etree.Element, error) {
	if err := s.setReadDeadline(); err != nil {
		return nil, err
	}
	if s.r.Idle() {
		if err := s.srv.idle.wait(s); err != nil {
			return nil, err
		}
	}
	return s.r.ReadElement()
}

func (s *Session) setReadDeadline() error {
	var deadline time.Time
	switch {
	case s.state&stateBound == 0:
		// Before bind the deadline is where it was set at accept:
		// keepalives, slow SASL and a trickle of bytes do not extend it
		// (500 streams sending a space every 20 s stayed open for
		// ever).
		deadline = time.Unix(0, s.preauthBy)
	case s.srv.cfg.IdleTimeout > 0:
		deadline = time.Now().Add(s.srv.cfg.IdleTimeout)
	}
	if err := s.conn.SetReadDeadline(deadline); err != nil {
		return err
	}
	// Checked after setting: a Close that comes later sets its own
	// deadline after ours, so the reader cannot sleep through it.
	if s.closing.Load() {
		return errClosing
	}
	if s.sm != nil && s.sm.broken.Load() {
		return errBroken
	}
	return nil
}

var errClosing = errors.New("c2s: session closed")

// errRefused ends a direct TLS connection refused at accept.
var errRefused = errors.New("c2s: too many unauthenticated connections from the address")

func (s *Session) handshake(tc *tls.Conn) error {
	ctx, cancel := s.opContext(time.Unix(0, s.preauthBy))
	defer cancel()
	s.doing.Store(doHandshake)
	defer s.doing.Store(doNegotiating)
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("c2s: tls handshake: %w", err)
	}
	return nil
}

// openStream reads the client's stream header and answers with ours and
// the features on offer.
func (s *Session) openStream() error {
	s.sent = false
	if err := s.setReadDeadline(); err != nil {
		return err
	}
	s.expectHeader()
	h, err := s.r.ReadHeader()
	if err != nil {
		return err
	}
	if h.NS != xmpp.NSClient {
		return xmpp.NewStreamError(xmpp.InvalidNamespace, "a client stream's default namespace is "+xmpp.NSClient)
	}
	host, err := xmpp.NormalizeDomain(h.To)
	switch {
	case h.To == "":
		return xmpp.NewStreamError(xmpp.HostUnknown, "the stream header needs a to address")
	case err != nil || !s.srv.cfg.IsLocalHost(host):
		return xmpp.NewStreamError(xmpp.HostUnknown, "this server does not serve "+h.To)
	case s.host != "" && host != s.host:
		return xmpp.NewStreamError(xmpp.HostUnknown, "a restarted stream must stay on "+s.host)
	}
	s.host = host
	if !strings.HasPrefix(h.Version, "1.") {
		// Answer with our header first, then the error, as RFC 6120 §4.9.3.25 shows.
		return xmpp.NewStreamError(xmpp.UnsupportedVersion, "this server speaks XMPP 1.0")
	}
	reply := xmpp.Header{NS: xmpp.NSClient, ID: s.id, From: s.host, Version: "1.0", Lang: "en"}
	if from, err := xmpp.Parse(h.From); err == nil && !from.IsZero() {
		reply.To = from.String()
	}
	if err := s.w.WriteHeader(reply); err != nil {
		return err
	}
	s.sent = true
	if err := s.w.WriteElement(s.streamFeatures()); err != nil {
		return err
	}
	return s.w.Flush()
}

// writeHeaderIfNeeded sends a stream header when an error comes before ours
// was sent (RFC 6120 §4.9.1.3).
func (s *Session) writeHeaderIfNeeded() {
	if s.sent {
		return
	}
	from := s.host
	_ = s.w.WriteHeader(xmpp.Header{NS: xmpp.NSClient, ID: s.id, From: from, Version: "1.0"})
	s.sent = true
}

// handleStanza takes one element of a bound stream. With stream
// management on, a stanza counts as handled once it was routed (or
// answered).
func (s *Session) handleStanza(el *etree.Element) error {
	if xmpp.KindOf(el) == xmpp.KindNone && xmpp.NS(el) == NSSM {
		// Only what is no stanza can be stream management's: a
		// message, presence or iq meets no namespace lookup here.
		return s.handleSM(el)
	}
	if err := s.handleOne(el); err != nil {
		return err
	}
	if s.sm != nil {
		s.sm.inH++ // mod 2^32
	}
	return nil
}

// handleOne takes one stanza, or fails on what is none.
func (s *Session) handleOne(el *etree.Element) error {
	if xmpp.KindOf(el) == xmpp.KindNone {
		if nr, ok := s.srv.cfg.Router.(NonzaRouter); ok && nr.Nonza(s, el) {
			return nil
		}
		return xmpp.NewStreamError(xmpp.UnsupportedStanzaType, "<"+el.Tag+"/> is not supported here")
	}
	// Identity is the server's: whatever the client wrote as from, it is
	// replaced by the session's full JID (RFC 6120 §8.1.2.1), so it is
	// not even parsed.
	el.RemoveAttr("from")
	st, err := xmpp.NewStanza(el)
	if err != nil {
		var se *xmpp.StanzaError
		if errors.As(err, &se) && !st.IsError() {
			reply := st.ErrorReply(se)
			reply.SetTo(s.jid)
			s.enqueue(reply.El)
		}
		return nil
	}
	st.StampFrom(s.jid, s.jidAddr)
	if st.Kind == xmpp.KindIQ && st.Type == "set" && st.To.IsZero() {
		if p := st.Payload(); p.Tag == "session" && xmpp.NS(p) == xmpp.NSSession {
			// The legacy session iq of RFC 3921: nothing to do any more.
			s.enqueue(xmpp.NewIQ("result", st.ID, xmpp.JID{}, s.jid, nil).El)
			return nil
		}
	}
	s.doing.Store(doRouting)
	s.srv.cfg.Router.Route(st)
	s.doing.Store(doReading)
	return nil
}

// enqueue hands el to the writer from the session's own goroutine. A full
// queue here means the client does not read what it asked for: it is
// closed as a slow consumer.
func (s *Session) enqueue(el *etree.Element) {
	if !s.Deliver(el) {
		s.Close(xmpp.NewStreamError(xmpp.StreamPolicyViolation, "the client does not read its stream"))
	}
}

// startWriter hands writing over to writeLoop, with first as the first
// elements it writes (the bind result, ahead of anything routed to the
// session since Router.Bind); from now on only writeLoop writes to the
// connection.
func (s *Session) startWriter(first ...*etree.Element) {
	s.qmu.Lock()
	s.queue = append(first[:len(first):len(first)], s.queue...)
	s.queued = true
	start := s.claimWriter()
	s.qmu.Unlock()
	if start {
		s.srv.idle.write(s)
	}
}

// writeLoop drains the queue, writing each batch with one flush, and
// returns when the queue is empty. After Close it writes the rest of the
// queue, the stream error and the closing tag, and closes the connection.
//
// What the connection will not take goes back to the router: the batch of
// a flush that failed and everything queued behind it, or, when the reader
// found the connection gone, the last batch unwritten. A stanza of a
// failed flush may have partly or even wholly reached the client: it
// counts as undelivered all the same, because the router then stores it
// or gives it to another resource, and a duplicate (at least once) is
// better than a message lost. What earlier flushes wrote counts as
// delivered: without stream management nothing tells what of it arrived.
func (s *Session) writeLoop() {
	if batch, ok := s.sock.takeLate(); ok {
		// writeNow left bytes of batch, or an error: what it did not
		// write goes first, under a write deadline.
		err := s.armWrite()
		if err == nil {
			err = s.sock.drain()
		}
		if err == nil {
			err = s.w.Flush() // the error of a failed flush, if that was it
		}
		if err != nil {
			s.qmu.Lock()
			sm := s.sm
			s.qmu.Unlock()
			s.writeFailed(sm, batch, err)
			return
		}
		s.returnBatch(batch)
	}
	for {
		s.qmu.Lock()
		sm := s.sm
		if sm != nil && sm.broken.Load() {
			// The connection is gone or taken: the session detaches,
			// and this writer stops (stopWriter waits for it).
			s.writing = false
			s.writerStoppedLocked()
			s.qmu.Unlock()
			return
		}
		closing := s.closing.Load()
		if len(s.queue) == 0 && !closing {
			s.writing = false
			s.qmu.Unlock()
			return
		}
		lost := closing && s.lost
		batch := s.takeBatchLocked()
		ask := false
		if sm != nil {
			ask = sm.trackLocked(batch)
		}
		s.qmu.Unlock()
		if lost {
			s.handBack(s.unackedOr(batch), errLost)
			s.finishWriting()
			return
		}
		// One deadline for the batch's writes and its flush: set before
		// the writes, which spill into the connection once the buffer
		// is full (armWrite). Setting it costs a timer update: once a
		// batch, not twice (2 µs a delivery at a room's rate).
		armErr := s.armWrite()
		for _, el := range batch {
			_ = s.w.WriteElement(el)
		}
		if ask {
			_ = s.w.WriteElement(smRequest)
		}
		if closing {
			if s.closeErr != nil {
				_ = s.w.WriteElement(s.streamErrorElement(s.closeErr))
			}
			_ = s.w.WriteEnd()
			if err := s.flushArmed(armErr); err != nil || sm != nil {
				// Closing: nothing was queued after this batch. With
				// stream management, what the client did not
				// acknowledge is not known to have arrived, written or
				// not: the session will not hear of it again.
				s.handBack(s.unackedOr(batch), err)
			}
			s.finishWriting()
			return
		}
		if err := s.flushArmed(armErr); err != nil {
			s.writeFailed(sm, batch, err)
			return
		}
		// Given back only once written: a failed flush hands its batch
		// back.
		s.returnBatch(batch)
	}
}

// writeFailed ends the writing after the flush of batch failed with err
// (the session is not closing); the writer stops.
func (s *Session) writeFailed(sm *smState, batch []*etree.Element, err error) {
	if sm != nil && sm.id != "" {
		// Resumable: nothing is handed back. The batch waits in
		// unacked, the rest in the queue, and the reader, woken,
		// detaches the session.
		s.qmu.Lock()
		sm.broken.Store(true)
		s.writing = false
		s.writerStoppedLocked()
		// Read under qmu: once it is released, a resume may put its
		// own connection in s.tcp.
		tcp := s.tcp
		s.qmu.Unlock()
		s.returnBatch(batch)
		_ = tcp.SetReadDeadline(aLongTimeAgo)
		s.srv.idle.wake(s)
		return
	}
	// Closing first, so that from now on Deliver refuses and the router
	// sends elsewhere what it would have queued; then what was queued
	// meanwhile, which nobody will write. Close also wakes the reader,
	// which unbinds the session.
	s.Close(nil)
	s.handBack(append(s.unackedOr(batch), s.takeBatch()...), err)
	s.finishWriting()
}

// write runs writeLoop; the idle-memory machinery picks the goroutine
// (idleMem.write). A panic ends that session's stream, as one in its
// reader does, not the process or the goroutine's next sessions.
func (s *Session) write() {
	defer func() {
		if p := recover(); p != nil {
			s.log(slog.LevelError, "c2s: panic in writer", "panic", p, "stack", string(debug.Stack()))
			s.finishWriting()
		}
	}()
	s.writeLoop()
}

// errLost is why the last batch of a session whose reader found the
// connection gone is handed back unwritten.
var errLost = errors.New("c2s: the connection is gone")

// handBack gives the router the stanzas the session will never write.
// The session is closing, so none of them can come back to it.
func (s *Session) handBack(els []*etree.Element, why error) {
	s.log(slog.LevelDebug, "c2s: write failed", "err", why, "undelivered", len(els))
	if len(els) > 0 {
		s.srv.cfg.Router.Undelivered(s, els)
	}
}

// unackedOr returns, with stream management, the stanzas the client did
// not acknowledge (batch's among them), which it takes; otherwise batch.
func (s *Session) unackedOr(batch []*etree.Element) []*etree.Element {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.sm == nil {
		return batch
	}
	return s.takeSentLocked()
}

// streamErrorElement renders e, with stream management's application
// condition when there is one.
func (s *Session) streamErrorElement(e *xmpp.StreamError) *etree.Element {
	el := e.Element()
	if s.sm != nil && s.sm.errApp != nil {
		el.AddChild(s.sm.errApp)
	}
	return el
}

// closeConn closes the connection after its last write (xmpp.CloseConn);
// the caller owns the writer. A write that failed may have been the
// writer's or a try's (writeNow).
func (s *Session) closeConn() error {
	return xmpp.CloseConn(s.conn, s.w.Failed() || s.sock.writeFailed())
}

// finishWriting closes the connection after its last write: no writer
// starts again, and waitWritten returns.
func (s *Session) finishWriting() {
	_ = s.closeConn()
	// A parked reader would not learn of it from the closed socket.
	s.srv.idle.wake(s)
	s.qmu.Lock()
	s.writerStoppedLocked()
	s.written = true
	if s.ended != nil {
		close(s.ended)
	}
	s.qmu.Unlock()
}

// waitWritten waits until a writer made the last write and closed the
// connection. Only the session's goroutine waits, after Close.
func (s *Session) waitWritten() {
	s.qmu.Lock()
	if s.written {
		s.qmu.Unlock()
		return
	}
	if s.ended == nil {
		s.ended = make(chan struct{})
	}
	ended := s.ended
	s.qmu.Unlock()
	<-ended
}

// flush writes what the writer holds, within WriteTimeout or, once the
// server is shutting down, by its drain deadline (Server.Shutdown): a
// client that does not read then fails the write in time for what it did
// not take to be handed back while the store is still open.
func (s *Session) flush() error {
	if err := s.armWrite(); err != nil {
		return err
	}
	return s.w.Flush()
}

// flushArmed flushes under the deadline armWrite set, which returned
// armErr.
func (s *Session) flushArmed(armErr error) error {
	if armErr != nil {
		return armErr
	}
	return s.w.Flush()
}

// armWrite sets the deadline of the writes from now to the next flush:
// WriteTimeout from now, or the drain deadline (see flush). A batch
// larger than the writer's buffer spills into the connection before its
// flush, so the writer loop arms before each batch too: under the last
// flush's deadline, long past after an idle spell, those writes would
// fail at once and cut the stream.
func (s *Session) armWrite() error {
	deadline := time.Now().Add(s.srv.cfg.WriteTimeout)
	by := s.srv.drainBy.Load()
	if by != 0 && by < deadline.UnixNano() {
		deadline = time.Unix(0, by)
	}
	if err := s.conn.SetWriteDeadline(deadline); err != nil {
		return err
	}
	// Shutdown may have set the drain deadline between the load above and
	// our deadline, overriding its own: look once more.
	if by2 := s.srv.drainBy.Load(); by2 != by && by2 < deadline.UnixNano() {
		_ = s.conn.SetWriteDeadline(time.Unix(0, by2))
	}
	return nil
}

// end closes the stream after run returned err.
func (s *Session) end(err error) {
	if s.sm != nil && s.sm.broken.Load() {
		// A resumable session closed while its connection was being
		// let go: no writer runs to end the stream.
		s.endLost()
		return
	}
	var se *xmpp.StreamError
	switch {
	case errors.As(err, &se):
	case isClosing(s, err):
		se = s.closeErr
	case errors.Is(err, xmpp.ErrStreamClosed), err == nil:
		// The client closed its stream: we close ours.
	case isTimeout(err):
		se = xmpp.NewStreamError(xmpp.ConnectionTimeout, "")
	default:
		// The connection is gone (reset, EOF, TLS failure): nobody to
		// tell, and nobody to write to. What waits in the queue goes back
		// to the router rather than into a socket that may still take
		// bytes (a peer's FIN does not fail the next write) and lose them.
		s.log(slog.LevelDebug, "c2s: connection ended", "err", err)
		s.unbind()
		if s.queued {
			s.qmu.Lock()
			s.lost = true
			s.qmu.Unlock()
			s.Close(nil)
			s.waitWritten()
		}
		s.closeConn()
		return
	}
	if se != nil && se.Condition != xmpp.SystemShutdown && se.Condition != xmpp.StreamConflict {
		s.logRefusal(slog.LevelInfo, "stream:"+string(se.Condition), "c2s: stream error", "condition", se.Condition, "text", se.Text)
	}
	s.unbind()
	if s.queued {
		s.Close(se)
		s.waitWritten()
		return
	}
	s.writeHeaderIfNeeded()
	if se != nil {
		_ = s.w.WriteElement(s.streamErrorElement(se))
	}
	_ = s.w.WriteEnd()
	_ = s.flush()
	s.closeConn()
}

func (s *Session) unbind() {
	if s.state&stateBound != 0 {
		s.srv.cfg.Router.Unbind(s)
	}
}

// isClosing reports whether err came from Close waking the reader.
func isClosing(s *Session, err error) bool {
	if !s.closing.Load() {
		return false
	}
	return errors.Is(err, errClosing) || isTimeout(err) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

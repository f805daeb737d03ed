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
// and owns the negotiation state; once bound, a second goroutine drains the
// bounded outbound queue to the socket. The connection is only the
// session's current transport: the queue and the identity belong to the
// session.
type Session struct {
	srv *Server
	id  string
	log *slog.Logger

	conn     net.Conn
	r        *xmpp.Reader
	w        *xmpp.Writer
	state    state
	host     string   // the local host of the stream
	username string   // set by SASL
	jid      xmpp.JID // set at bind, never changed after
	failures int      // failed SASL attempts on this stream
	token    string   // a checked invite token (XEP-0401 preauth)
	sent     bool     // our stream header for the current stream is out

	// The outbound queue: a slice that grows only while stanzas wait, so
	// an idle session holds no queue memory, and a one-slot channel that
	// wakes the writer. qmu guards queue; it is held only to append or to
	// take the whole batch.
	qmu        sync.Mutex
	queue      []*etree.Element
	spare      []*etree.Element // the last batch's array, reused when small
	wake       chan struct{}
	writing    bool          // the writer goroutine runs; reader-owned
	writerDone chan struct{} // closed when the writer goroutine exits

	closeOnce sync.Once
	closing   chan struct{} // closed by Close
	closeErr  *xmpp.StreamError

	available atomic.Bool
	priority  atomic.Int32
}

func newSession(srv *Server, conn net.Conn, directTLS bool) *Session {
	id := randomID()
	s := &Session{
		srv:        srv,
		id:         id,
		log:        srv.cfg.Logger.With("session", id, "remote", conn.RemoteAddr().String()),
		conn:       conn,
		wake:       make(chan struct{}, 1),
		writerDone: make(chan struct{}),
		closing:    make(chan struct{}),
	}
	if directTLS {
		s.state |= stateSecure
	}
	s.r = xmpp.NewReader(conn, srv.cfg.Limits)
	s.w = xmpp.NewWriter(conn)
	return s
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ID returns the session's id, which is also its stream id.
func (s *Session) ID() string { return s.id }

// JID returns the full JID the session is bound to; zero before bind.
func (s *Session) JID() xmpp.JID { return s.jid }

// Available reports whether the session has sent available presence.
func (s *Session) Available() bool { return s.available.Load() }

// Priority returns the priority of the session's last presence.
func (s *Session) Priority() int { return int(s.priority.Load()) }

// SetPresence records the session's broadcast presence: the router calls it
// for each presence the user sends without a to.
func (s *Session) SetPresence(available bool, priority int) {
	s.priority.Store(int32(priority))
	s.available.Store(available)
}

// Deliver queues el for the client without blocking. It returns false when
// the queue is full or the session is closing: the caller's slow-consumer
// policy decides what then happens to el. el must not change afterwards.
func (s *Session) Deliver(el *etree.Element) bool {
	select {
	case <-s.closing:
		return false
	default:
	}
	s.qmu.Lock()
	if len(s.queue) >= s.srv.cfg.Queue {
		s.qmu.Unlock()
		return false
	}
	s.queue = append(s.queue, el)
	s.qmu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
		// The writer is already due to look.
	}
	return true
}

// takeBatch removes and returns everything queued.
func (s *Session) takeBatch() []*etree.Element {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	batch := s.queue
	s.queue = s.spare[:0]
	s.spare = nil
	return batch
}

// returnBatch keeps a written batch's array for the next one, unless it
// grew large: a burst must not pin memory for the rest of the session.
func (s *Session) returnBatch(batch []*etree.Element) {
	if cap(batch) > 64 {
		return
	}
	clear(batch)
	s.qmu.Lock()
	if s.spare == nil {
		s.spare = batch[:0]
	}
	s.qmu.Unlock()
}

// Closing reports whether Close was called.
func (s *Session) Closing() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// Close ends the session with the stream error e (nil for a plain close)
// after what is already queued is written. It does not wait.
func (s *Session) Close(e *xmpp.StreamError) {
	s.closeOnce.Do(func() {
		s.closeErr = e
		close(s.closing)
		// Wake the reader if it is blocked before bind; once bound, the
		// writer sees closing and ends the connection.
		_ = s.conn.SetReadDeadline(time.Now())
	})
}

// serve runs the session to its end.
func (s *Session) serve() {
	var err error
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("c2s: panic in session", "panic", p, "stack", string(debug.Stack()))
			err = xmpp.NewStreamError(xmpp.StreamInternalError, "")
		}
		s.end(err)
	}()
	err = s.run()
}

// run negotiates the stream, then reads stanzas until the stream ends.
func (s *Session) run() error {
	if tc, ok := s.conn.(*tls.Conn); ok {
		if err := s.handshake(tc); err != nil {
			return err
		}
	}
	if err := s.openStream(); err != nil {
		return err
	}
	for {
		if err := s.setReadDeadline(); err != nil {
			return err
		}
		el, err := s.r.ReadElement()
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

func (s *Session) setReadDeadline() error {
	var d time.Duration
	if s.state&stateBound == 0 {
		d = s.srv.cfg.HandshakeTimeout
	} else {
		d = s.srv.cfg.IdleTimeout
	}
	var deadline time.Time
	if d > 0 {
		deadline = time.Now().Add(d)
	}
	if err := s.conn.SetReadDeadline(deadline); err != nil {
		return err
	}
	// Checked after setting: a Close that comes later sets its own
	// deadline after ours, so the reader cannot sleep through it.
	select {
	case <-s.closing:
		return errClosing
	default:
		return nil
	}
}

var errClosing = errors.New("c2s: session closed")

func (s *Session) handshake(tc *tls.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.srv.cfg.HandshakeTimeout)
	defer cancel()
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

// handleStanza takes one element of a bound stream.
func (s *Session) handleStanza(el *etree.Element) error {
	if xmpp.KindOf(el) == xmpp.KindNone {
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
	st.SetFrom(s.jid)
	if st.Kind == xmpp.KindIQ && st.Type == "set" && st.To.IsZero() {
		if p := st.Payload(); p.Tag == "session" && xmpp.NS(p) == xmpp.NSSession {
			// The legacy session iq of RFC 3921: nothing to do any more.
			s.enqueue(xmpp.NewIQ("result", st.ID, xmpp.JID{}, s.jid, nil).El)
			return nil
		}
	}
	s.srv.cfg.Router.Route(st)
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

// startWriter hands writing over to the writer goroutine; from now on only
// it writes to the connection.
func (s *Session) startWriter() {
	s.writing = true
	go s.writeLoop()
}

// writeLoop drains the queue, writing each batch with one flush.
func (s *Session) writeLoop() {
	defer close(s.writerDone)
	defer s.conn.Close()
	for {
		select {
		case <-s.wake:
			batch := s.takeBatch()
			for _, el := range batch {
				_ = s.w.WriteElement(el)
			}
			s.returnBatch(batch)
			if err := s.flush(); err != nil {
				s.log.Debug("c2s: write failed", "err", err)
				_ = s.conn.Close()
				return
			}
		case <-s.closing:
			for _, el := range s.takeBatch() {
				_ = s.w.WriteElement(el)
			}
			if s.closeErr != nil {
				_ = s.w.WriteStreamError(s.closeErr)
			}
			_ = s.w.WriteEnd()
			_ = s.flush()
			return
		}
	}
}

func (s *Session) flush() error {
	if err := s.conn.SetWriteDeadline(time.Now().Add(s.srv.cfg.WriteTimeout)); err != nil {
		return err
	}
	return s.w.Flush()
}

// end closes the stream after run returned err.
func (s *Session) end(err error) {
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
		// The connection is gone (reset, EOF, TLS failure): nobody to tell.
		s.log.Debug("c2s: connection ended", "err", err)
		s.unbind()
		if s.writing {
			s.Close(nil)
			<-s.writerDone
		}
		s.conn.Close()
		return
	}
	if se != nil && se.Condition != xmpp.SystemShutdown && se.Condition != xmpp.StreamConflict {
		s.log.Info("c2s: stream error", "condition", se.Condition, "text", se.Text, "jid", s.jid.String())
	}
	s.unbind()
	if s.writing {
		s.Close(se)
		<-s.writerDone
		return
	}
	s.writeHeaderIfNeeded()
	if se != nil {
		_ = s.w.WriteStreamError(se)
	}
	_ = s.w.WriteEnd()
	_ = s.flush()
	s.conn.Close()
}

func (s *Session) unbind() {
	if s.state&stateBound != 0 {
		s.srv.cfg.Router.Unbind(s)
	}
}

// isClosing reports whether err came from Close waking the reader.
func isClosing(s *Session, err error) bool {
	select {
	case <-s.closing:
		return errors.Is(err, errClosing) || isTimeout(err) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
	default:
		return false
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

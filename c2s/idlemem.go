package c2s

import (
	"net"
	"sync/atomic"
	"time"
)

// The idle-memory seam.
//
// A session's life (session.go) is the same whatever an idle session
// costs: accept, negotiate, read stanzas in its goroutine, write through
// its queue, close. What makes 10,000 idle sessions cost about 10 KiB each
// (BENCHMARKS.md) is machinery beside that life, all of it behind idleMem
// and in the files named idlemem_*.go:
//
//   - waiting without a buffer (idlemem_sock*.go): the accepted socket is
//     wrapped so that an idle session waits for its peer in Go's poller
//     holding no read buffer, and takes whitespace keepalives without
//     waking the XML reader (probing, idlemem_lean.go);
//   - parking (idlemem_park*.go): after Config.ParkAfter, an idle bound
//     session's goroutine ends and its socket waits in an epoll set; a new
//     goroutine resumes it when the client sends, when it is closed or at
//     its idle timeout;
//   - the writer pool (idlemem_writers.go): a session has no writer
//     goroutine of its own; its writeLoop runs on a shared goroutine while
//     stanzas wait, and a lone stanza that the socket takes at once is
//     written by Deliver's caller (Session.writeNow, through the socket's
//     non-blocking try);
//   - with the build tag parley_tlsmem only, the release of crypto/tls's
//     read buffers when a session parks (idlemem_tls.go).
//
// Config.ParkAfter = 0 (park_after = "0s") turns all of it off: plainIdle
// below is then the whole of it. A session blocks in its read, holding its
// goroutine and its reader's buffer; a write burst runs on a goroutine of
// its own; nothing parks. Read plainIdle to learn what the lifecycle needs,
// leanIdle (idlemem_lean.go) for how the memory is saved.
type idleMem interface {
	// wrap wraps a connection just accepted, beneath any TLS.
	wrap(conn net.Conn) net.Conn
	// attach is called by newSession, once the session exists.
	attach(s *Session)
	// wait is called by the session's goroutine before it reads an
	// element, when its reader holds no bytes (xmpp.Reader.Idle). It
	// returns nil when the read is to go on (it may have waited for the
	// peer, or not at all), errParked when the session parked (its
	// goroutine ends: see Session.serve), or the error that ends the
	// session.
	wait(s *Session) error
	// write runs s.write on some goroutine. The caller has claimed the
	// session's writing (Session.claimWriter), so one runs at a time.
	write(s *Session)
	// wake is called when the session's reader must look at it now
	// (Close, the writer closed the connection): a parked session gets a
	// goroutine again. The connection's read deadline wakes one that is
	// not parked.
	wake(s *Session)
	// done is called once the session has ended.
	done(s *Session)
	// start is called by every Serve before it accepts; stop by every
	// Shutdown, once the sessions are gone or its context ended.
	start()
	stop()
}

// newIdleMem picks the machinery for srv's config.
func newIdleMem(srv *Server) idleMem {
	if srv.cfg.ParkAfter <= 0 {
		return plainIdle{}
	}
	return newLeanIdle(srv)
}

// plainIdle is the idle-memory machinery switched off: what a session does
// when nothing tries to save memory while it waits.
type plainIdle struct{}

// wrap wraps conn so that bytes restart the idle timeout (liveConn).
func (plainIdle) wrap(conn net.Conn) net.Conn { return &liveConn{Conn: conn} }

func (plainIdle) attach(s *Session) {
	if lc, ok := s.tcp.(*liveConn); ok {
		lc.s = s
	}
}

// wait does not wait: the read that follows blocks.
func (plainIdle) wait(*Session) error { return nil }

// write starts a goroutine for the burst; it ends when the queue is empty.
func (plainIdle) write(s *Session) { go s.write() }

func (plainIdle) wake(*Session) {}
func (plainIdle) done(*Session) {}
func (plainIdle) start()        {}
func (plainIdle) stop()         {}

// liveConn restarts a bound session's idle timeout whenever bytes arrive.
// A session that blocks in ReadElement set its deadline before the read,
// and the reader skips whitespace keepalives without returning, so
// without this a client that only sends keepalives would be cut off at
// IdleTimeout, though they keep a stream alive (RFC 6120 §4.6.1). Only the
// session's goroutine reads, so reading s.state needs no lock.
type liveConn struct {
	net.Conn
	s *Session // nil until attach
}

func (c *liveConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if s := c.s; n > 0 && s != nil && s.state&stateBound != 0 && s.srv.cfg.IdleTimeout > 0 {
		_ = c.Conn.SetReadDeadline(time.Now().Add(s.srv.cfg.IdleTimeout))
		// Close sets a deadline in the past to wake the reader; ours
		// must not replace it (Close set closing first).
		if s.closing.Load() {
			_ = c.Conn.SetReadDeadline(aLongTimeAgo)
		}
	}
	return n, err
}

// idleState is what the idle-memory machinery keeps in each Session. It
// is zero, and unused, when the machinery is off (plainIdle).
type idleState struct {
	// Waiting for the peer (idle): the socket beneath TLS, nil when it
	// cannot be waited on, and a byte to read into.
	sock *sockConn
	one  [1]byte

	// Parking (idlemem_park.go): who runs the session, since when it
	// waits (in the parker's ticks), the socket's descriptor + 1 once it
	// parked, and what the goroutine that resumed it should know.
	wstate    atomic.Uint32
	waitSince atomic.Int64
	parkFD    int32
	resumed   bool // woken from parking; cleared when an element comes
	expired   bool // woken at the idle timeout
	noPark    bool // the poller refused it once: it waits in its goroutine
}

// reset forgets the connection a resumed session had (sm.go): the new one
// starts running, neither parked nor probed.
func (st *idleState) reset() {
	st.sock = nil
	st.wstate.Store(wsRunning)
	st.waitSince.Store(0)
	st.parkFD = 0
	st.resumed, st.expired, st.noPark = false, false, false
}

// aLongTimeAgo is a read deadline that ends a wait at once.
var aLongTimeAgo = time.Unix(1, 0)

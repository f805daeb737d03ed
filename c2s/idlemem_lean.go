package c2s

import (
	"net"
	"sync"
)

// leanIdle is the idle-memory machinery switched on (ParkAfter > 0): see
// idleMem. On a system without epoll, sessions wait without a buffer but
// do not park; on one whose sockets cannot be waited on (not unix), they
// block in their reads, as with plainIdle, and only the writer pool is
// left.
type leanIdle struct {
	srv     *Server
	writers *writers // the sessions' writer goroutines

	// The parker is made by the first Serve (start), before any session
	// reads it, and stopped by Shutdown (stop); nil when sessions do not
	// park.
	parkOnce sync.Once
	parker   *parker
	stopOnce sync.Once
}

func newLeanIdle(srv *Server) *leanIdle {
	return &leanIdle{srv: srv, writers: newWriters()}
}

// wrap makes conn a *sockConn, which a session can wait on without a
// buffer, when it is a socket; otherwise it falls back on plainIdle's
// wrapper.
func (l *leanIdle) wrap(conn net.Conn) net.Conn {
	if sock := wrapSock(conn); sock != nil {
		return sock
	}
	return plainIdle{}.wrap(conn)
}

func (l *leanIdle) attach(s *Session) {
	// After STARTTLS, s.tcp is still the same socket.
	s.sock, _ = s.tcp.(*sockConn)
	if s.sock == nil {
		plainIdle{}.attach(s)
	}
}

func (l *leanIdle) wait(s *Session) error {
	if s.expired {
		return errIdle
	}
	if err := s.idle(l.parker); err != nil {
		return err
	}
	s.resumed = false
	return nil
}

func (l *leanIdle) write(s *Session) { l.writers.start(s) }

func (l *leanIdle) wake(s *Session) { s.wake(false) }

func (l *leanIdle) done(s *Session) {
	if l.parker != nil {
		l.parker.poll.forget(s)
	}
}

func (l *leanIdle) start() { l.parkOnce.Do(func() { l.parker = newParker(l.srv) }) }

func (l *leanIdle) stop() {
	// A Serve that comes after Shutdown starts no parker.
	l.parkOnce.Do(func() {})
	l.stopOnce.Do(func() {
		// Writers that wait for work exit.
		close(l.writers.quit)
		if l.parker != nil {
			l.parker.stop()
		}
	})
}

// idle waits, holding no read buffer (the reader gave its own back in
// Idle), until the peer sends something other than whitespace keepalives,
// which it takes as it goes, each one restarting the idle timeout. It
// returns early when the wait meets the read deadline, the end of the
// stream or an error: the read that follows meets it too, and handles it.
// It fails when the session is closing, and returns errParked when the
// session parked (idlemem_park.go); p is nil when sessions do not park.
//
// The wait, waitPeer, first parks the goroutine in Go's poller: an idle
// session then costs little more than its TLS state and its goroutine's
// stack. It is called from here, few frames deep, because the runtime
// shrinks a stack that the handshake and the first stanzas grew, at each
// GC, only while less than a quarter of it is used, counting 800 bytes of
// reserve on top: waiting this shallow, the stack gets to 4 KiB (2 KiB
// would need under 224 bytes of frames). A session that waits longer
// parks: its goroutine ends, and the stack with it.
func (s *Session) idle(p *parker) error {
	for {
		wait, err := s.probe()
		if err != nil || !wait {
			return err
		}
		if err := s.waitPeer(p); err != nil {
			if err == errParked {
				return err
			}
			if s.closing.Load() {
				return errClosing
			}
			return nil
		}
	}
}

// probe takes what has arrived without blocking: one byte at a time, read
// through TLS (which may hold whole records or decrypted bytes) with the
// socket set to fail at once when it has nothing (probing). It reports
// whether the session should wait on the socket: false when it gave the
// reader a byte that starts an element, when the transport reported the
// end of the stream or an error (for the read that follows), or when the
// socket cannot be waited on. Whitespace between stanzas, a keepalive, is
// taken and restarts the idle timeout (RFC 6120 §4.6.1: it keeps the
// stream alive).
func (s *Session) probe() (wait bool, err error) {
	sc := s.sock
	if sc == nil {
		return false, nil
	}
	keepalive := false
	for {
		// s.conn is sc, or TLS over it.
		sc.probing = true
		n, err := s.conn.Read(s.one[:])
		sc.probing = false
		if n == 0 {
			if keepalive {
				if err := s.setReadDeadline(); err != nil {
					return false, err
				}
			}
			return err == errWouldBlock, nil
		}
		s.r.Prepend(s.one[0])
		if !s.r.Idle() {
			return false, nil
		}
		keepalive = true
		// A keepalive: take what follows it in bulk, not a byte at a
		// time (a flood of white space cost 0.2 s of CPU a MiB).
		if idle, err := s.drainSpace(); !idle || err != nil {
			return false, err
		}
	}
}

// drainSpace reads, without blocking, what follows a keepalive, in bulk,
// and gives it to the reader. It reports whether the reader is still idle
// (all of it was white space, or nothing more had come).
func (s *Session) drainSpace() (idle bool, err error) {
	// A buffer of the socket's pool, only for the read, so that an idle
	// session holds none.
	bp := sockBuffers.Get().(*[]byte)
	defer sockBuffers.Put(bp)
	buf := *bp
	for {
		s.sock.probing = true
		n, _ := s.conn.Read(buf)
		s.sock.probing = false
		if n == 0 {
			// Nothing more, or the end or an error: the next one-byte
			// read meets it again.
			return true, nil
		}
		if !s.r.Feed(buf[:n]) {
			return false, nil
		}
	}
}

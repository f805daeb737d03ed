package c2s

import (
	"net"
	"sync"

	"github.com/beevik/etree"
)

// sockConn (part of the idle-memory machinery: idlemem.go) is a client's
// TCP connection as its session reads it: beneath TLS, when there is TLS. It lets an idle session wait for its peer while
// holding no buffer (wait, on systems that support it), and lets the
// session ask crypto/tls, without blocking and without touching deadlines,
// whether it holds bytes already (probing).
//
// Only the session's goroutine reads, so the fields need no lock.
type sockConn struct {
	net.Conn
	waiter

	// Bytes the last wait read from the socket, for the next Read: the
	// wait reads rather than peeks, so that a busy connection costs no
	// extra system call. buf comes from sockBuffers and goes back to it
	// once the bytes are handed over.
	buf  *[]byte
	pend []byte
	// rerr is what the wait's read met instead of bytes (the end of the
	// stream, an error): every Read after pend returns it.
	rerr error

	// probing makes a Read with nothing pending fail at once with
	// errWouldBlock instead of reading the socket.
	probing bool

	// The write side (Session.writeNow): wmu serialises Write, which
	// crypto/tls calls from the session's writer and, for an alert, from
	// its reader. try, set by the writer that must not block, makes a
	// Write take what the socket takes at once and keep the rest in late,
	// which the writer pool writes (drain) before anything else.
	wmu  sync.Mutex
	try  bool
	late *lateWrites // made by the first try
}

// sockBufferSize is the size of the buffers a wait reads into.
const sockBufferSize = 4096

var sockBuffers = sync.Pool{New: func() any { b := make([]byte, sockBufferSize); return &b }}

// Read hands over what the last wait read, then reads the socket.
func (c *sockConn) Read(p []byte) (int, error) {
	if len(c.pend) > 0 {
		n := copy(p, c.pend)
		c.pend = c.pend[n:]
		if len(c.pend) == 0 {
			c.release()
		}
		return n, nil
	}
	if c.rerr != nil {
		return 0, c.rerr
	}
	if c.probing {
		return 0, errWouldBlock
	}
	return c.Conn.Read(p)
}

// release gives the wait's buffer back.
func (c *sockConn) release() {
	if c.buf != nil {
		sockBuffers.Put(c.buf)
		c.buf, c.pend = nil, nil
	}
}

// wouldBlock is the error of a probing Read with nothing to hand over. It
// is temporary, so crypto/tls keeps the connection usable after it.
type wouldBlock struct{}

func (wouldBlock) Error() string   { return "c2s: nothing buffered" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

var errWouldBlock net.Error = wouldBlock{}

// lateWrites is what a try could not write at once: the bytes, in order,
// or the error the socket gave, with the batch of stanzas they carry. The
// session's writer pool owns the batch (Session.writeLoop). A sockConn
// holds one only during a try and while something is left: they come
// from a pool, so that an idle session holds none.
type lateWrites struct {
	pend  []byte // what waits, in order
	err   error  // the socket's error; once set, nothing more is written
	batch []*etree.Element

	// The current try's bytes and how many went out, and the func that
	// writes them (on unix, tryWriteFD), made once per lateWrites.
	p    []byte
	n    int
	perr error
	fn   func(fd uintptr) bool
}

var lateWritesPool = sync.Pool{New: func() any { return new(lateWrites) }}

// Write writes p to the socket. In a try it never blocks: it writes what
// the socket takes now and keeps the rest, or the error, for drain, and
// reports all of p written, so that crypto/tls's record state goes on as
// if it had been. Otherwise it first writes what a try left, then p,
// blocking until the write deadline.
func (c *sockConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.try {
		c.tryWrite(p)
		return len(p), nil
	}
	if err := c.drainLocked(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// tryWrite is Write in a try; wmu is held, and c.late is set.
func (c *sockConn) tryWrite(p []byte) {
	l := c.late
	switch {
	case l.err != nil:
	case len(l.pend) > 0:
		// Behind bytes that wait: they go first.
		l.pend = append(l.pend, p...)
	default:
		n, err := c.writeNow(l, p)
		if err != nil {
			l.err = err
		} else if n < len(p) {
			l.pend = append([]byte(nil), p[n:]...)
		}
	}
}

// drainLocked writes what tries left, blocking until the write deadline;
// wmu is held.
func (c *sockConn) drainLocked() error {
	l := c.late
	if l == nil {
		return nil
	}
	if l.err != nil {
		return l.err
	}
	for len(l.pend) > 0 {
		n, err := c.Conn.Write(l.pend)
		l.pend = l.pend[n:]
		if err != nil {
			l.err = err
			return err
		}
	}
	c.releaseLateLocked()
	return nil
}

// releaseLateLocked gives c.late back to the pool when nothing is left in
// it; wmu is held.
func (c *sockConn) releaseLateLocked() {
	l := c.late
	if l == nil || len(l.pend) > 0 || l.err != nil || l.batch != nil || c.try {
		return
	}
	l.pend = nil
	c.late = nil
	lateWritesPool.Put(l)
}

// beginTry makes the writes up to endTry tries.
func (c *sockConn) beginTry() {
	c.wmu.Lock()
	if c.late == nil {
		c.late = lateWritesPool.Get().(*lateWrites)
	}
	c.try = true
	c.wmu.Unlock()
}

// endTry ends the tries and reports whether they left bytes or an error
// behind, or the flush that made them failed (flushErr: the writer had
// failed before); if so, batch is what they carried, kept for takeLate.
func (c *sockConn) endTry(batch []*etree.Element, flushErr error) (left bool) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.try = false
	l := c.late
	if len(l.pend) == 0 && l.err == nil && flushErr == nil {
		c.releaseLateLocked()
		return false
	}
	l.batch = batch
	return true
}

// takeLate returns the batch whose bytes a try left behind, if any, and
// forgets it: the caller drains and answers for it.
func (c *sockConn) takeLate() (batch []*etree.Element, ok bool) {
	if c == nil {
		return nil, false
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.late == nil || c.late.batch == nil {
		return nil, false
	}
	batch, c.late.batch = c.late.batch, nil
	return batch, true
}

// drain writes what tries left behind (see drainLocked).
func (c *sockConn) drain() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.drainLocked()
}

// writeFailed reports whether a try or a drain met an error: the socket
// may have taken part of a record.
func (c *sockConn) writeFailed() bool {
	if c == nil {
		return false
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.late != nil && c.late.err != nil
}

package c2s

import (
	"net"
	"sync"
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

//go:build unix

package c2s

import (
	"net"
	"syscall"
)

// waiter waits for a socket to have something to read, parked in Go's
// poller in a shallow frame, holding no buffer while it waits.
type waiter struct {
	raw syscall.RawConn
	fn  func(fd uintptr) bool // c.tryRead, made once
}

// wrapSock returns conn as a *sockConn, or nil when conn is not a socket
// it can wait on (a pipe in tests): the session then just reads.
func wrapSock(conn net.Conn) *sockConn {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	c := &sockConn{Conn: conn}
	c.raw = raw
	c.fn = c.tryRead
	return c
}

// wait returns when the socket had bytes (now pending for the next Read),
// reached its end or an error (which the next Read meets), when the read
// deadline passes, or when the connection is closed.
func (c *sockConn) wait() {
	if len(c.pend) > 0 {
		return
	}
	_ = c.raw.Read(c.fn)
}

// tryRead reads the socket fd without blocking, into a buffer taken from
// the pool only for the read, and reports whether the wait is over.
func (c *sockConn) tryRead(fd uintptr) bool {
	buf := sockBuffers.Get().(*[]byte)
	for {
		n, err := syscall.Read(int(fd), *buf)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
			sockBuffers.Put(buf)
			return false
		case n > 0:
			c.buf, c.pend = buf, (*buf)[:n]
			return true
		default:
			// The end of the stream or an error: the next Read of the
			// socket reports it.
			sockBuffers.Put(buf)
			return true
		}
	}
}

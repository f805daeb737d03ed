//go:build unix

package c2s

import (
	"errors"
	"io"
	"net"
	"os"
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

// wait returns when the socket had bytes (now pending for the next Read)
// or reached its end or an error (which every later Read returns), and
// reports the read deadline passing or the connection closing as an error.
func (c *sockConn) wait() error {
	if len(c.pend) > 0 || c.rerr != nil {
		return nil
	}
	return c.raw.Read(c.fn)
}

// poke reads what the socket holds without waiting, and reports whether
// there are bytes (or the end or an error) for the next Read.
func (c *sockConn) poke() bool {
	if len(c.pend) == 0 && c.rerr == nil {
		_ = c.raw.Read(func(fd uintptr) bool {
			c.tryRead(fd)
			return true
		})
	}
	return len(c.pend) > 0 || c.rerr != nil
}

// tryRead reads the socket fd without blocking, into a buffer taken from
// the pool only for the read, and reports whether the wait is over.
func (c *sockConn) tryRead(fd uintptr) bool {
	buf := sockBuffers.Get().(*[]byte)
	for {
		n, err := sysRead(int(fd), *buf)
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
			sockBuffers.Put(buf)
			if err == nil {
				err = io.EOF
			} else {
				err = &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", err)}
			}
			c.rerr = err
			return true
		}
	}
}

// writeNow writes p to the socket without waiting and returns how much of
// it the socket took. A passed write deadline (the last blocking write's,
// after an idle spell) counts as a full socket: the writer pool's drain
// sets a new one.
func (c *sockConn) writeNow(l *lateWrites, p []byte) (int, error) {
	if l.fn == nil {
		l.fn = l.tryWriteFD
	}
	l.p, l.n, l.perr = p, 0, nil
	err := c.raw.Write(l.fn)
	n, perr := l.n, l.perr
	l.p, l.perr = nil, nil
	switch {
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		return n, nil
	case err != nil:
		return n, err
	}
	return n, perr
}

// tryWriteFD writes l.p to fd until done or the socket is full; it never
// asks to wait.
func (l *lateWrites) tryWriteFD(fd uintptr) bool {
	for l.n < len(l.p) {
		m, err := sysWrite(int(fd), l.p[l.n:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
			return true
		case err != nil:
			l.perr = os.NewSyscallError("write", err)
			return true
		case m <= 0:
			return true
		}
		l.n += m
	}
	return true
}

//go:build unix

package c2s

import (
	"net"
	"syscall"
)

// socketWait waits for a socket to become readable without reading from
// it and without a buffer: the goroutine parks in Go's poller in a shallow
// frame. It is made on first use and kept for the connection.
type socketWait struct {
	raw  syscall.RawConn
	fn   func(fd uintptr) bool
	peek [1]byte
}

// wait returns when c has bytes to read or an error to report, when its
// read deadline passes, or when it is closed. When c cannot be waited on
// it returns at once, and the read that follows blocks instead.
func (w *socketWait) wait(c net.Conn) {
	if w.raw == nil {
		sc, ok := c.(syscall.Conn)
		if !ok {
			return
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			return
		}
		w.raw = raw
		w.fn = w.ready
	}
	_ = w.raw.Read(w.fn)
}

// ready reports whether the socket fd has something for a read: bytes, the
// peer's close or an error. The poller calls it before parking and after
// every wake-up. It must look at the socket itself: the poller clears its
// readiness flag before calling, trusting the call to read.
func (w *socketWait) ready(fd uintptr) bool {
	for {
		_, _, err := syscall.Recvfrom(int(fd), w.peek[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if err == syscall.EINTR {
			continue
		}
		return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK
	}
}

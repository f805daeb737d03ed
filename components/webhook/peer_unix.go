//go:build unix

package webhook

import (
	"syscall"
	"time"
)

// peerClosed reports whether the webhook closed pc, or sent something
// unasked, while pc sat idle: a look at the socket that neither reads
// nor waits. A connection it cannot look at is taken as open.
func (pc *leanConn) peerClosed() bool {
	if pc.raw == nil {
		return false
	}
	// The last request's deadline may have passed while pc was idle; the
	// poller would then refuse to look.
	if err := pc.conn.SetReadDeadline(time.Time{}); err != nil {
		return true
	}
	closed := false
	err := pc.raw.Read(func(fd uintptr) bool {
		var b [1]byte
		for {
			_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if err == syscall.EINTR {
				continue
			}
			// Nothing to read means open. Anything else is the end, an
			// error, or bytes nobody asked for (a TLS close_notify, a
			// 408): not a connection to send a request on.
			closed = err != syscall.EAGAIN && err != syscall.EWOULDBLOCK
			return true
		}
	})
	return closed || err != nil
}

//go:build linux

package c2s

import (
	"syscall"
	"unsafe"
)

// canWatchHangUp: Linux tells a hang-up apart from data (POLLRDHUP).
const canWatchHangUp = true

// pollfd is struct pollfd of poll(2).
type pollfd struct {
	fd      int32
	events  int16
	revents int16
}

const (
	pollERR   = 0x8
	pollHUP   = 0x10
	pollRDHUP = 0x2000
)

// hungUp reports, without waiting and without reading, whether the peer
// of socket fd closed or reset its connection. POLLRDHUP is set by the
// peer's FIN even when unread bytes come before it (a TLS close_notify,
// pipelined stanzas), which a peek could not see past. Go's poller asks
// epoll for EPOLLRDHUP too, so the FIN wakes the watch.
func hungUp(fd uintptr) bool {
	p := pollfd{fd: int32(fd), events: pollRDHUP}
	var now syscall.Timespec // zero: do not wait
	n, _, errno := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&p)), 1, uintptr(unsafe.Pointer(&now)), 0, 0, 0)
	if errno != 0 || n == 0 {
		return false
	}
	return p.revents&(pollRDHUP|pollHUP|pollERR) != 0
}

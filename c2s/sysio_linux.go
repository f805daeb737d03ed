//go:build linux && !race

package c2s

import (
	"syscall"
	"unsafe"
)

// sysRead and sysWrite are read(2) and write(2) on a socket in
// non-blocking mode (Go's poller sets every socket so), made without
// telling the scheduler that a system call starts (syscall.RawSyscall):
// such a call cannot block, so there is nothing to hand the P over for.
//
// The scheduler's bookkeeping is not the point; its monitor thread is.
// When every P has been idle, the runtime's sysmon sleeps until a timer is
// due, and the next system call that enters through entersyscall wakes it
// and resets its period to 20 µs, as a bet that more calls will need a P
// retaken. A server at a room's rate goes idle between messages, so each
// message's first read woke sysmon, which then woke every 20 µs for as long
// as the message's fan-out ran: in a profile of the muc scenario (perf,
// 1 msg/s per occupant) its sleeps and wake-ups were 12 % of the server's
// CPU. Reads and writes that never block do not need sysmon.
//
// Under the race detector the session uses syscall.Read and syscall.Write
// (sysio_unix.go): they tell the detector that a write to a descriptor
// happens before the read that gets its bytes, as the kernel guarantees,
// and raw calls would hide that from it.
func sysRead(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}

// sysWrite: see sysRead.
func sysWrite(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}

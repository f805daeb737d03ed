//go:build unix && (!linux || race)

package c2s

import "syscall"

// sysRead is read(2) through the syscall package: on Linux without the
// race detector, sysio_linux.go's raw call (see there for why).
func sysRead(fd int, p []byte) (int, error) { return syscall.Read(fd, p) }

// sysWrite is write(2): see sysRead.
func sysWrite(fd int, p []byte) (int, error) { return syscall.Write(fd, p) }

//go:build unix && !linux

package c2s

import "syscall"

// sysRead is read(2) (see sysio_linux.go for why Linux's differs).
func sysRead(fd int, p []byte) (int, error) { return syscall.Read(fd, p) }

// sysWrite is write(2).
func sysWrite(fd int, p []byte) (int, error) { return syscall.Write(fd, p) }

//go:build unix

package c2s

import (
	"syscall"
	"testing"
)

// TestSysReadWrite: sysRead and sysWrite on a non-blocking socket pair
// move bytes, report a full or empty socket as EAGAIN rather than
// blocking, and report the peer's end.
func TestSysReadWrite(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := fds[0], fds[1]
	defer syscall.Close(a)
	for _, fd := range fds {
		if err := syscall.SetNonblock(fd, true); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 64)
	steps := []struct {
		name string
		do   func() (int, error)
		n    int
		err  error
	}{
		{"read from an empty socket", func() (int, error) { return sysRead(b, buf) }, -1, syscall.EAGAIN},
		{"write", func() (int, error) { return sysWrite(a, []byte("<message/>")) }, 10, nil},
		{"read what was written", func() (int, error) { return sysRead(b, buf) }, 10, nil},
		{"empty write", func() (int, error) { return sysWrite(a, nil) }, 0, nil},
		{"fill the socket", func() (int, error) {
			big := make([]byte, 1<<16)
			for {
				if _, err := sysWrite(a, big); err != nil {
					return -1, err
				}
			}
		}, -1, syscall.EAGAIN},
		{"peer gone", func() (int, error) {
			syscall.Close(b)
			return sysWrite(a, []byte("x"))
		}, -1, syscall.EPIPE},
	}
	for _, st := range steps {
		n, err := st.do()
		if n != st.n || err != st.err {
			t.Fatalf("%s: got %d, %v; want %d, %v", st.name, n, err, st.n, st.err)
		}
		if st.name == "read what was written" && string(buf[:n]) != "<message/>" {
			t.Fatalf("read %q", buf[:n])
		}
	}
}

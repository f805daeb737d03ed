//go:build linux

package c2s

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// epollPoller keeps parked sessions' sockets in an epoll set of its own.
// The set's descriptor is itself waited on in Go's poller, so the poller
// costs one goroutine and no thread. Each socket is armed one-shot: one
// event wakes its session, which arms it again when it parks again.
// Events name the socket's descriptor; a session is found by it in byFD.
// An event that arrives for a socket whose session no longer waits (it was
// woken otherwise, or the descriptor now belongs to another parked
// session) at worst wakes a session that finds nothing and parks again.
type epollPoller struct {
	file *os.File // the epoll set, in Go's poller
	epfd int

	mu   sync.Mutex
	byFD map[int32]*Session
	done chan struct{}
}

func newPoller(srv *Server) (poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("c2s: epoll_create1: %w", err)
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		return nil, fmt.Errorf("c2s: epoll set non-blocking: %w", err)
	}
	p := &epollPoller{
		file: os.NewFile(uintptr(epfd), "c2s-epoll"),
		epfd: epfd,
		byFD: make(map[int32]*Session),
		done: make(chan struct{}),
	}
	raw, err := p.file.SyscallConn()
	if err == nil {
		// Only a descriptor in Go's poller takes deadlines.
		err = p.file.SetReadDeadline(time.Time{})
	}
	if err != nil {
		p.file.Close()
		return nil, fmt.Errorf("c2s: epoll set: %w", err)
	}
	go p.run(raw, srv)
	return p, nil
}

// parkEvents are what wakes a parked session: bytes, the peer's end of the
// stream, an error or a hang-up (the last two are always reported).
const parkEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

func (p *epollPoller) track(s *Session) error {
	err := s.sock.raw.Control(func(fd uintptr) {
		s.parkFD = int32(fd) + 1
		p.mu.Lock()
		p.byFD[int32(fd)] = s
		p.mu.Unlock()
	})
	if err != nil {
		return fmt.Errorf("c2s: park: %w", err)
	}
	return nil
}

func (p *epollPoller) arm(s *Session) error {
	var cerr error
	// Control holds the descriptor open while it is armed, even when the
	// session is woken and closed meanwhile.
	err := s.sock.raw.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{Events: parkEvents, Fd: int32(fd)}
		// Armed again after its first park; added the first time (or
		// when the descriptor was closed and opened anew).
		cerr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev)
		if errors.Is(cerr, syscall.ENOENT) {
			cerr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
		}
	})
	if err != nil {
		return fmt.Errorf("c2s: park: %w", err)
	}
	if cerr != nil {
		return fmt.Errorf("c2s: park: epoll_ctl: %w", cerr)
	}
	return nil
}

func (p *epollPoller) forget(s *Session) {
	if s.parkFD == 0 {
		return
	}
	p.mu.Lock()
	if p.byFD[s.parkFD-1] == s {
		delete(p.byFD, s.parkFD-1)
	}
	p.mu.Unlock()
}

func (p *epollPoller) close() {
	p.file.Close()
	<-p.done
}

// run waits for events and wakes their sessions, until the set is closed.
func (p *epollPoller) run(raw syscall.RawConn, srv *Server) {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 128)
	var n int
	wait := func(fd uintptr) bool {
		for {
			var err error
			n, err = syscall.EpollWait(int(fd), events, 0)
			switch {
			case err == syscall.EINTR:
				continue
			case err != nil:
				srv.cfg.Logger.Error("c2s: epoll_wait", "err", err)
				n = 0
				return false
			}
			// Go's poller watches the set edge-triggered: it waits
			// again only once the set is drained.
			return n > 0
		}
	}
	for {
		if err := raw.Read(wait); err != nil {
			return // closed
		}
		for i := range events[:n] {
			p.mu.Lock()
			s := p.byFD[events[i].Fd]
			p.mu.Unlock()
			if s != nil {
				s.wake(false)
			}
		}
	}
}

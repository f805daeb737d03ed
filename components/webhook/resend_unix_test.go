//go:build unix

package webhook

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// keepServer answers every request with a kept-alive 200, and keeps each
// connection open until the test ends, whatever the client does with its
// end: a connection it stops reading is not closed (a FIN from it would
// be seen by the client's look at the socket, which is not under test).
type keepServer struct {
	url string
	// accepted gets the server's end of each connection, in order.
	accepted chan net.Conn
	conns    atomic.Int64

	mu   sync.Mutex
	seen []string // "connNo body" of each request read whole
}

func newKeepServer(t *testing.T) *keepServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &keepServer{url: "http://" + ln.Addr().String() + "/", accepted: make(chan net.Conn, 16)}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var open []net.Conn
	var openMu sync.Mutex
	t.Cleanup(func() {
		ln.Close()
		close(stop)
		openMu.Lock()
		for _, c := range open {
			c.Close()
		}
		openMu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for connNo := 0; ; connNo++ {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			openMu.Lock()
			open = append(open, conn)
			openMu.Unlock()
			s.conns.Add(1)
			s.accepted <- conn
			wg.Go(func() {
				br := bufio.NewReader(conn)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						break
					}
					body, err := io.ReadAll(req.Body)
					if err != nil {
						break
					}
					s.mu.Lock()
					s.seen = append(s.seen, fmt.Sprintf("%d %s", connNo, body))
					s.mu.Unlock()
					if _, err := io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
						break
					}
				}
				<-stop // the cleanup closes conn
			})
		}
	})
	return s
}

func (s *keepServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

// beforeWrite runs f once, just before the first write on the embedded
// connection: after the client's look at the socket, as a webhook that
// closes a connection at that moment would.
type beforeWrite struct {
	net.Conn
	once sync.Once
	f    func()
}

func (b *beforeWrite) Write(p []byte) (int, error) {
	b.once.Do(b.f)
	return b.Conn.Write(p)
}

// waitReset waits until the socket of pc has taken the peer's RST: a peek
// that neither reads nor waits stops saying "nothing yet".
func waitReset(t *testing.T, pc *leanConn) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second) // a guard, not an assertion
	for {
		var perr error
		if err := pc.raw.Control(func(fd uintptr) {
			var b [1]byte
			_, _, perr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		}); err != nil {
			t.Errorf("looking at the socket: %v", err)
			return
		}
		if perr != syscall.EAGAIN && perr != syscall.EWOULDBLOCK && perr != syscall.EINTR {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("the RST did not arrive: %v", perr)
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLeanClientResendsARequestWhoseWriteFailed: a kept-alive connection
// that passes the client's look at the socket but fails the write of the
// next request is given up, and that request goes, once, on a fresh
// connection. The webhook sees every request exactly once; the
// component's retries (0 here) have nothing to do with it.
func TestLeanClientResendsARequestWhoseWriteFailed(t *testing.T) {
	tests := []struct {
		name string
		// breakConn breaks the kept connection pc of the client; srv is
		// the server's end of it.
		breakConn func(t *testing.T, pc *leanConn, srv net.Conn)
	}{
		{"the webhook resets the connection after the look, before the write",
			func(t *testing.T, pc *leanConn, srv net.Conn) {
				pc.conn = &beforeWrite{Conn: pc.conn, f: func() {
					if err := srv.(*net.TCPConn).SetLinger(0); err != nil {
						t.Errorf("SetLinger: %v", err)
					}
					_ = srv.Close() // an RST, at once
					waitReset(t, pc)
				}}
			}},
		{"the connection can no longer be written, the look sees nothing",
			func(t *testing.T, pc *leanConn, _ net.Conn) {
				// Our half is shut: a write fails with EPIPE, while the
				// socket still has nothing to read (the server keeps its
				// half open).
				if err := pc.conn.(*net.TCPConn).CloseWrite(); err != nil {
					t.Fatal(err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newKeepServer(t)
			c, w := newPoster(t, s.url, nil) // Retries: 0
			if c.lean == nil {
				t.Fatal("the component does not use its own client")
			}
			if _, _, body, err := postBody(c, w, `{"n":0}`); err != nil || body != "ok" {
				t.Fatalf("request 0: %q, %v", body, err)
			}
			srv0 := <-s.accepted
			c.lean.mu.Lock()
			if len(c.lean.idle) != 1 {
				c.lean.mu.Unlock()
				t.Fatalf("%d idle connections after the first answer, want 1", len(c.lean.idle))
			}
			pc := c.lean.idle[0]
			c.lean.mu.Unlock()
			if pc.raw == nil {
				t.Fatal("the kept connection has no socket to look at")
			}
			tt.breakConn(t, pc, srv0)
			if pc.peerClosed() {
				t.Fatal("the look at the socket sees the broken connection: the write would not be tried")
			}

			_, _, body, err := postBody(c, w, `{"n":1}`)
			if err != nil || body != "ok" {
				t.Fatalf("request 1: %q, %v; want it sent again on a fresh connection and answered", body, err)
			}
			got := s.requests()
			if len(got) != 2 || got[0] != `0 {"n":0}` || got[1] != `1 {"n":1}` {
				t.Fatalf("the server saw %q; want request 0 on connection 0 and request 1 once, on connection 1", got)
			}
			if n := s.conns.Load(); n != 2 {
				t.Fatalf("%d connections, want 2", n)
			}
			if c.lean.retried.Load() != 1 || c.Metrics().Requests() != 2 || c.Metrics().Retries() != 0 {
				t.Fatalf("%d resent by the client, %d requests and %d retries counted; want 1, 2 and 0",
					c.lean.retried.Load(), c.Metrics().Requests(), c.Metrics().Retries())
			}
			if c.lean.idleConns() != 1 {
				t.Fatalf("%d idle connections, want the fresh one kept", c.lean.idleConns())
			}
		})
	}
}

package c2s

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// TestSessionStaysInItsSizeClass: every idle session holds a Session, at
// the top of the allocator's 352-byte size class (BENCHMARKS.md); a field
// more moves it to 384 bytes, 3 % of an idle session's cost.
func TestSessionStaysInItsSizeClass(t *testing.T) {
	if size := unsafe.Sizeof(Session{}); size > 352 {
		t.Fatalf("c2s.Session is %d bytes, past its 352-byte size class", size)
	}
}

// ctxRouter is a Router whose Route blocks, while block is open, until
// release is closed.
type ctxRouter struct {
	s       *Session
	routing chan struct{} // a Route began
	release chan struct{}
	block   bool
}

func (r *ctxRouter) Route(st *xmpp.Stanza) {
	if r.block {
		r.routing <- struct{}{}
		<-r.release
		return
	}
	r.s.Deliver(st.El)
}
func (r *ctxRouter) Bind(*Session) error                    { return nil }
func (r *ctxRouter) Unbind(*Session)                        {}
func (r *ctxRouter) Undelivered(*Session, []*etree.Element) {}

// serveBound is servedPair for any system and router: a bound session
// served by its server as Serve would, over loopback TCP, with TLS or not.
func serveBound(t *testing.T, useTLS bool, cfg Config) (*Session, net.Conn, *clientReader) {
	t.Helper()
	s, client := pairOn(t, false, useTLS, cfg)
	s.jid = xmpp.MustParse("juliet@example.com/balcony")
	s.jidAddr = s.jid.String()
	s.doing.Store(doReading)
	srv := s.srv
	srv.idle.start()
	s.queued = true
	srv.mu.Lock()
	srv.sessions[s] = struct{}{}
	srv.wg.Add(1)
	srv.mu.Unlock()
	go srv.serveSession(s)
	return s, client, readClient(client)
}

// waitDone waits for ctx to end, and checks that it was cancelled.
func waitDone(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("after 10s, %s did not end", what)
	}
	if err := ctx.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("%s ended with %v, want context.Canceled", what, err)
	}
}

// TestSessionContextEndsWithTheSession: the session's context ends however
// the session does, and so do contexts derived from it (through
// AfterFunc), those made before the end and those made after.
func TestSessionContextEndsWithTheSession(t *testing.T) {
	tests := []struct {
		name string
		park time.Duration // ParkAfter
		idle time.Duration // IdleTimeout
		end  func(t *testing.T, s *Session, c net.Conn)
	}{
		{"the client closes its stream", time.Hour, time.Minute, func(t *testing.T, s *Session, c net.Conn) {
			_, _ = io.WriteString(c, "</stream:stream>")
		}},
		{"the client hangs up", time.Hour, time.Minute, func(t *testing.T, s *Session, c net.Conn) { c.Close() }},
		{"the server ends the stream with an error", time.Hour, time.Minute, func(t *testing.T, s *Session, c net.Conn) {
			_, _ = io.WriteString(c, "<nonsense/>")
		}},
		{"the idle timeout", time.Hour, 200 * time.Millisecond, func(*testing.T, *Session, net.Conn) {}},
		{"Close", time.Hour, time.Minute, func(t *testing.T, s *Session, c net.Conn) {
			s.Close(xmpp.NewStreamError(xmpp.StreamPolicyViolation, ""))
		}},
		{"Close of a parked session", 10 * time.Millisecond, time.Minute, func(t *testing.T, s *Session, c net.Conn) {
			if parkerOf(s.srv) == nil {
				t.Skip("sessions do not park on this system")
			}
			waitParked(t, s)
			s.Close(nil)
		}},
		{"Shutdown", time.Hour, time.Minute, func(t *testing.T, s *Session, c net.Conn) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.srv.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		for _, useTLS := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s, TLS %v", tt.name, useTLS), func(t *testing.T) {
				rt := &ctxRouter{}
				s, c, _ := serveBound(t, useTLS, Config{Router: rt, WriteTimeout: 5 * time.Second, ParkAfter: tt.park, IdleTimeout: tt.idle})
				rt.s = s
				ctx := s.Context()
				if err := ctx.Err(); err != nil {
					t.Fatalf("the context of a live session ended: %v", err)
				}
				before, cancel := context.WithCancel(ctx)
				defer cancel()
				tt.end(t, s, c)
				waitDone(t, ctx, "the session's context")
				waitDone(t, before, "a context derived before the end")
				after, cancel2 := context.WithCancel(ctx)
				defer cancel2()
				waitDone(t, after, "a context derived after the end")
				waitFor(t, "the session ends", func() bool { return s.srv.Sessions() == 0 })
			})
		}
	}
}

// TestSessionContextEndsBeforeBind: a session that never bound ends
// without Close (which a bound one's end calls); its context ends too.
func TestSessionContextEndsBeforeBind(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration // HandshakeTimeout
		end     func(c net.Conn)
	}{
		{"the client closes its stream", time.Minute, func(c net.Conn) { _, _ = io.WriteString(c, "</stream:stream>") }},
		{"the client hangs up", time.Minute, func(c net.Conn) { c.Close() }},
		{"a stream error", time.Minute, func(c net.Conn) { _, _ = io.WriteString(c, "<message/>") }},
		{"the stream's deadline", 300 * time.Millisecond, func(net.Conn) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, addr, _ := startPreauth(t, Config{HandshakeTimeout: tt.timeout})
			c := openPreauth(t, addr)
			open := srv.sessionList(nil)
			if len(open) != 1 {
				t.Fatalf("%d sessions open, want 1", len(open))
			}
			ctx := open[0].Context()
			tt.end(c)
			waitDone(t, ctx, "the session's context")
		})
	}
}

// TestSessionContextHoldsNothingOnceUnwatched: the session's own work
// (store calls, the TLS handshake: opContext) leaves nothing behind for
// its context once over, so a session that logged in costs no more while
// idle; AfterFunc hooks go with their stop.
func TestSessionContextHoldsNothingOnceUnwatched(t *testing.T) {
	s, _ := boundSession(t, 10)
	for range 3 {
		ctx, end := s.opContext(time.Now().Add(time.Minute))
		stop := s.Context().(interface{ AfterFunc(func()) func() bool }).AfterFunc(func() {})
		end()
		if !stop() {
			t.Fatal("stop did not find its hook")
		}
		if ctx.Err() == nil {
			t.Fatal("the op context did not end with its cancel")
		}
	}
	s.qmu.Lock()
	cx := s.cx
	s.qmu.Unlock()
	if cx != nil {
		t.Fatalf("the session holds %+v for contexts nobody watches", cx)
	}
}

// hangingAccounts is a store whose lookups hang: until their context ends,
// or, with ignoreCtx, until the test ends.
type hangingAccounts struct {
	ignoreCtx bool
	entered   chan struct{} // one per lookup begun
	ended     chan error    // the context's error, for each lookup its context ended
	release   chan struct{}
}

func newHangingAccounts(ignoreCtx bool) *hangingAccounts {
	return &hangingAccounts{ignoreCtx: ignoreCtx, entered: make(chan struct{}, 10), ended: make(chan error, 10), release: make(chan struct{})}
}

func (a *hangingAccounts) Account(ctx context.Context, host, username string) (storage.Account, error) {
	a.entered <- struct{}{}
	done := ctx.Done()
	if a.ignoreCtx {
		done = nil
	}
	select {
	case <-done:
		a.ended <- ctx.Err()
		return storage.Account{}, ctx.Err()
	case <-a.release:
		return storage.Account{}, storage.ErrNotFound
	}
}

// startLookup opens a stream to addr and starts a SCRAM exchange, whose
// first message makes the server look the user up; it returns once the
// lookup has begun. The lookup is let go at the end of the test, before
// the server's Shutdown (cleanups run last first).
func startLookup(t *testing.T, addr string, a *hangingAccounts) net.Conn {
	t.Helper()
	t.Cleanup(func() { close(a.release) })
	c := openPreauth(t, addr)
	first := base64.StdEncoding.EncodeToString([]byte("n,,n=juliet,r=fyko+d2lbbFgONRv9qkxdawL"))
	if _, err := fmt.Fprintf(c, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>%s</auth>", first); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the server never looked the user up")
	}
	return c
}

// TestAHangingLookupEndsWithItsSession: a SASL lookup that the store does
// not answer ends when the client hangs up or at Shutdown, not at its
// timeout (the stream's deadline here, a minute away), and the session
// goes with it.
func TestAHangingLookupEndsWithItsSession(t *testing.T) {
	tests := []struct {
		name string
		// end ends the session's need of its lookup.
		end func(t *testing.T, srv *Server, c net.Conn)
		// shutdown: end shut the server down.
		shutdown bool
	}{
		{"the client hangs up", func(t *testing.T, srv *Server, c net.Conn) { c.Close() }, false},
		{"the client sends more, then hangs up", func(t *testing.T, srv *Server, c net.Conn) {
			// Bytes before the FIN, unread while the session waits on
			// the store: the hang-up is seen all the same.
			_, _ = io.WriteString(c, "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>x</response>")
			c.Close()
		}, false},
		{"Shutdown", func(t *testing.T, srv *Server, c net.Conn) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			if got := readUntil(t, c, "</stream:stream>"); !strings.Contains(got, "system-shutdown") || strings.Contains(got, "<failure") {
				t.Errorf("the client got %q, want <system-shutdown/> and no SASL failure", got)
			}
		}, true},
	}
	for _, tt := range tests {
		for _, park := range []time.Duration{0, time.Hour} {
			t.Run(fmt.Sprintf("%s, park_after %v", tt.name, park), func(t *testing.T) {
				a := newHangingAccounts(false)
				srv, addr, _ := startPreauth(t, Config{Accounts: a, HandshakeTimeout: time.Minute, ParkAfter: park})
				c := startLookup(t, addr, a)
				if n := srv.Sessions(); n != 1 {
					t.Fatalf("Sessions() = %d during the lookup, want 1", n)
				}
				tt.end(t, srv, c)
				select {
				case err := <-a.ended:
					if !errors.Is(err, context.Canceled) {
						t.Fatalf("the lookup's context ended with %v, want context.Canceled", err)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("after 10s the lookup still hangs")
				}
				waitFor(t, "the session ends", func() bool { return srv.Sessions() == 0 })
				// A lookup the client walked away from judged nothing:
				// no SASL failure is counted against anyone.
				for k, n := range srv.Refusals() {
					if strings.HasPrefix(k, "sasl:") {
						t.Errorf("Refusals()[%q] = %d, want no SASL refusal", k, n)
					}
				}
				if l := srv.LoginStats(); l.Failed != 0 {
					t.Errorf("LoginStats().Failed = %d, want 0: an unanswered lookup is no failed login", l.Failed)
				}
			})
		}
	}
}

// syncBuffer is a bytes.Buffer for a logger that several goroutines use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestShutdownNamesTheSessionsThatHang: when Shutdown's context ends
// before every session has, it logs which are still open, by JID or by
// address, with what each is doing, and how many.
func TestShutdownNamesTheSessionsThatHang(t *testing.T) {
	tests := []struct {
		name string
		// hang makes one session hang past Shutdown and returns the
		// server, the session's name, and what it is doing.
		hang func(t *testing.T, log *slog.Logger) (srv *Server, name, doing string)
	}{
		{"a bound session in the router", func(t *testing.T, log *slog.Logger) (*Server, string, string) {
			rt := &ctxRouter{block: true, routing: make(chan struct{}, 1), release: make(chan struct{})}
			s, c, _ := serveBound(t, true, Config{Router: rt, WriteTimeout: 5 * time.Second, ParkAfter: time.Hour, Logger: log})
			t.Cleanup(func() { close(rt.release) })
			rt.s = s
			if _, err := io.WriteString(c, "<message to='romeo@example.net'/>"); err != nil {
				t.Fatal(err)
			}
			<-rt.routing
			return s.srv, "juliet@example.com/balcony", "routing a stanza"
		}},
		{"a session whose store lookup hangs", func(t *testing.T, log *slog.Logger) (*Server, string, string) {
			a := newHangingAccounts(true)
			srv, addr, _ := startPreauth(t, Config{Accounts: a, HandshakeTimeout: time.Minute, Logger: log})
			c := startLookup(t, addr, a)
			return srv, c.LocalAddr().String(), "waiting on the store"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf syncBuffer
			log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
			srv, name, doing := tt.hang(t, log)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			if err := srv.Shutdown(ctx); err == nil || !strings.Contains(err.Error(), "1 sessions still open") {
				t.Fatalf("Shutdown = %v, want an error that counts 1 session", err)
			}
			got := buf.String()
			for _, want := range []string{"level=WARN", "sessions still open", "count=1", name + " (" + doing + ")"} {
				if !strings.Contains(got, want) {
					t.Errorf("the log lacks %q:\n%s", want, got)
				}
			}
		})
	}
}

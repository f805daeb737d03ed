package c2s

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/parley-im/parley/server/certs"
	"github.com/parley-im/parley/xmpp"
)

// tlsPair returns a bound session reading from the server end of a TLS
// connection over loopback TCP, its stream header already read, and the
// client end. split makes the client's TCP writes go out in two halves,
// the second after a pause, so records arrive cut in two.
func tlsPair(t *testing.T, split bool) (*Session, net.Conn) { return pair(t, split, true, time.Minute) }

// pair is tlsPair, with TLS or without, and the server's idle timeout.
// The idle-memory machinery is on (ParkAfter), but the server does not
// Serve, so it has no parker: the session waits without a buffer and
// never parks.
func pair(t *testing.T, split, useTLS bool, idleTimeout time.Duration) (*Session, net.Conn) {
	t.Helper()
	return pairOn(t, split, useTLS, Config{WriteTimeout: 5 * time.Second, IdleTimeout: idleTimeout, ParkAfter: time.Hour})
}

// pairOn is pair on a server with the config cfg, whose ParkAfter must be
// positive.
func pairOn(t *testing.T, split, useTLS bool, cfg Config) (*Session, net.Conn) {
	t.Helper()
	store := certs.NewStore()
	if err := store.LoadOrCreate("example.com", "", "", t.TempDir()); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var under net.Conn = raw
	if split {
		under = &splitConn{Conn: raw}
	}
	sraw, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	sock := wrapSock(sraw)
	if sock == nil {
		t.Skip("no waiting on sockets on this system")
	}
	var client, server net.Conn = under, sock
	if useTLS {
		tc := tls.Client(under, &tls.Config{InsecureSkipVerify: true})
		ts := tls.Server(sock, store.TLSConfig())
		errc := make(chan error, 1)
		go func() { errc <- ts.Handshake() }()
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		client, server = tc, ts
	}
	t.Cleanup(func() { client.Close(); server.Close() })

	srv := NewServer(cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	s := newSession(srv, server, useTLS)
	if s.sock != sock {
		t.Fatal("the session did not find its socket wrapper")
	}
	s.state |= stateAuthenticated | stateBound
	if _, err := client.Write([]byte(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	return s, client
}

// splitConn writes each Write in two halves with a pause between them.
type splitConn struct{ net.Conn }

func (c *splitConn) Write(p []byte) (int, error) {
	if len(p) < 2 {
		return c.Conn.Write(p)
	}
	h := len(p) / 2
	n, err := c.Conn.Write(p[:h])
	if err != nil {
		return n, err
	}
	time.Sleep(20 * time.Millisecond)
	m, err := c.Conn.Write(p[h:])
	return n + m, err
}

// readNext is the session's next element, as tag:id.
func readNext(s *Session) (string, error) {
	el, err := s.next()
	if err != nil {
		return "", err
	}
	return el.Tag + ":" + el.SelectAttrValue("id", ""), nil
}

func TestWaitReadable(t *testing.T) {
	tests := []struct {
		name  string
		split bool
		gap   bool // a pause after each write: the session waits again
		// writes are the client's TLS writes, each its own record; the
		// session must read want from them.
		writes []string
		want   []string
	}{
		{"one stanza", false, false,
			[]string{"<message id='1'/>"},
			[]string{"message:1"}},
		{"keepalives, then a stanza", false, false,
			[]string{" ", "\n", " \n ", "<iq type='get' id='2'/>"},
			[]string{"iq:2"}},
		// Each keepalive arrives while the session waits; it is taken
		// there, and the session waits again holding nothing.
		{"keepalives one at a time, then a stanza", false, true,
			[]string{" ", "\n", " \n ", "<iq type='get' id='3'/>"},
			[]string{"iq:3"}},
		{"two stanzas in one record", false, false,
			[]string{"<message id='1'/><message id='2'/>"},
			[]string{"message:1", "message:2"}},
		// Three records written at once reach the server's TLS in one
		// read of the socket: after the first stanza, the socket has
		// nothing more to say, the records wait inside crypto/tls.
		{"records already inside TLS", false, false,
			[]string{"<message id='1'/>", "<message id='2'/>", "<message id='3'/>"},
			[]string{"message:1", "message:2", "message:3"}},
		{"a stanza cut across records", false, true,
			[]string{"<message id='4'><bo", "dy>x</bo", "dy></message>"},
			[]string{"message:4"}},
		// Records cut in two on the wire: TLS holds half a record when
		// the wait starts, and the socket's next bytes complete it.
		{"records cut on the wire", true, false,
			[]string{"<message id='5'/>", " ", "<presence id='6'/>"},
			[]string{"message:5", "presence:6"}},
	}
	for _, tt := range tests {
		for _, useTLS := range []bool{true, false} {
			name := tt.name
			if !useTLS {
				name += " without TLS"
			}
			t.Run(name, func(t *testing.T) {
				s, client := pair(t, tt.split, useTLS, time.Minute)
				// Wait first with nothing sent: the session must not
				// return before the client writes.
				got := make(chan string, len(tt.want))
				errc := make(chan error, 1)
				go func() {
					for range tt.want {
						tag, err := readNext(s)
						if err != nil {
							errc <- err
							return
						}
						got <- tag
					}
				}()
				select {
				case tag := <-got:
					t.Fatalf("read %q before the client sent anything", tag)
				case err := <-errc:
					t.Fatal(err)
				case <-time.After(20 * time.Millisecond):
				}
				for _, w := range tt.writes {
					if _, err := client.Write([]byte(w)); err != nil {
						t.Fatal(err)
					}
					if tt.gap {
						time.Sleep(20 * time.Millisecond)
					}
				}
				for i, want := range tt.want {
					select {
					case tag := <-got:
						if tag != want {
							t.Fatalf("element %d = %s, want %s", i, tag, want)
						}
					case err := <-errc:
						t.Fatal(err)
					case <-time.After(10 * time.Second):
						t.Fatalf("element %d (%s) never read: the wait missed bytes", i, want)
					}
				}
				if s.r.Buffered() != 0 || !s.r.Idle() {
					t.Fatal("bytes left over after the last element")
				}
			})
		}
	}
}

func TestCloseWakesAWaitingSession(t *testing.T) {
	s, _ := tlsPair(t, false)
	errc := make(chan error, 1)
	go func() {
		_, err := readNext(s)
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	s.Close(xmpp.NewStreamError(xmpp.SystemShutdown, ""))
	select {
	case err := <-errc:
		if !isClosing(s, err) {
			t.Fatalf("err = %v, want the closing session's", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not wake the waiting session")
	}
}

func TestIdleEnds(t *testing.T) {
	tests := []struct {
		name   string
		idle   time.Duration
		client func(t *testing.T, c net.Conn)
		// check judges the error that ends the read.
		check func(s *Session, err error) bool
		want  string
	}{
		{"the client closes while the session waits", time.Minute,
			func(t *testing.T, c net.Conn) { c.Close() },
			func(s *Session, err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) },
			"the end of the stream"},
		{"the idle timeout passes while the session waits", 200 * time.Millisecond,
			func(t *testing.T, c net.Conn) {},
			func(s *Session, err error) bool { return isTimeout(err) },
			"a timeout"},
	}
	for _, tt := range tests {
		for _, useTLS := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s, TLS %v", tt.name, useTLS), func(t *testing.T) {
				s, client := pair(t, false, useTLS, tt.idle)
				errc := make(chan error, 1)
				go func() {
					tag, err := readNext(s)
					if err == nil {
						err = fmt.Errorf("read %s", tag)
					}
					errc <- err
				}()
				time.Sleep(20 * time.Millisecond)
				tt.client(t, client)
				select {
				case err := <-errc:
					if !tt.check(s, err) {
						t.Fatalf("err = %v, want %s", err, tt.want)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("the waiting session never returned")
				}
			})
		}
	}
}

func TestKeepalivesRestartTheIdleTimeout(t *testing.T) {
	// A keepalive every eighth of the timeout: a loaded machine (CI ran
	// one at 400 ms with a keepalive every 100 ms and missed) may hold
	// one back by most of a timeout and the test still means something.
	const idle = time.Second
	s, client := pair(t, false, true, idle)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Keepalives for three idle timeouts, then a stanza.
		for range 24 {
			if _, err := client.Write([]byte(" ")); err != nil {
				return
			}
			time.Sleep(idle / 8)
		}
		_, _ = client.Write([]byte("<message id='9'/>"))
	}()
	tag, err := readNext(s)
	if err != nil || tag != "message:9" {
		t.Fatalf("read %q, %v: keepalives did not keep the stream alive", tag, err)
	}
	<-done
}

package c2s

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/server/certs"
	"github.com/parley-im/parley/xmpp"
)

// readUntil reads c until what it read contains want.
func readUntil(t *testing.T, c net.Conn, want string) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(got.String(), want) {
		n, err := c.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			t.Fatalf("reading for %q: %v; got %q", want, err, got.String())
		}
	}
	return got.String()
}

// TestCloseAfterSTARTTLSBeforeBind: Close comes from other goroutines (a
// shutdown, say) at any moment, also after STARTTLS replaced the session's
// connection and before bind; it must wake the session, which ends the
// stream with its error over TLS. (Close sets the deadline on the
// connection beneath TLS, which STARTTLS never replaces: reading s.conn
// there raced with STARTTLS, which the race detector did not report here,
// because later reads of the field by the session's goroutine push the
// write out of its history.)
func TestCloseAfterSTARTTLSBeforeBind(t *testing.T) {
	store := certs.NewStore()
	if err := store.LoadOrCreate("example.com", "", "", t.TempDir()); err != nil {
		t.Fatal(err)
	}
	srv := NewServer(Config{
		Router:      &echoRouter{unbound: make(chan struct{})},
		TLS:         store.TLSConfig(),
		IsLocalHost: func(d string) bool { return d == "example.com" },
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln, false) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	const header = `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>`
	if _, err := io.WriteString(raw, header); err != nil {
		t.Fatal(err)
	}
	readUntil(t, raw, "</stream:features>")
	if _, err := io.WriteString(raw, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"); err != nil {
		t.Fatal(err)
	}
	readUntil(t, raw, "<proceed")
	tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, ServerName: "example.com"})
	if _, err := io.WriteString(tc, header); err != nil {
		t.Fatal(err)
	}
	readUntil(t, tc, "</stream:features>")
	list := srv.sessionList(nil)
	if len(list) != 1 {
		t.Fatalf("%d sessions, want 1", len(list))
	}
	list[0].Close(xmpp.NewStreamError(xmpp.SystemShutdown, ""))
	readUntil(t, tc, "system-shutdown")
}

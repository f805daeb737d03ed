package c2s

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/server/certs"
)

// startPreauth serves cfg (with a TLS store and the host example.com) on a
// STARTTLS and a direct TLS listener of 127.0.0.1.
func startPreauth(t *testing.T, cfg Config) (srv *Server, starttls, direct string) {
	t.Helper()
	store := certs.NewStore()
	if err := store.LoadOrCreate("example.com", "", "", t.TempDir()); err != nil {
		t.Fatal(err)
	}
	cfg.Router = &echoRouter{unbound: make(chan struct{})}
	cfg.TLS = store.TLSConfig()
	cfg.IsLocalHost = func(d string) bool { return d == "example.com" }
	srv = NewServer(cfg)
	var addrs []string
	for _, direct := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = srv.Serve(ln, direct) }()
		addrs = append(addrs, ln.Addr().String())
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return srv, addrs[0], addrs[1]
}

// openPreauth opens a stream to addr and reads the features; the test
// closes it at its end.
func openPreauth(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, preauthHeader); err != nil {
		t.Fatal(err)
	}
	readUntil(t, c, "</stream:features>")
	return c
}

const preauthHeader = `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>`

// TestKeepalivesDoNotExtendThePreauthDeadline: before bind, the stream is
// closed HandshakeTimeout after accept however often the client sends
// white space (each keepalive restarts the idle timeout of a bound stream,
// and restarted this one's too: 500 streams sending a space every 20 s
// stayed open for ever).
func TestKeepalivesDoNotExtendThePreauthDeadline(t *testing.T) {
	const timeout = 600 * time.Millisecond
	_, addr, _ := startPreauth(t, Config{HandshakeTimeout: timeout})
	c := openPreauth(t, addr)
	// Keepalives every tenth of the timeout, for three timeouts: the
	// stream must end on the way, with connection-timeout.
	done := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(c)
		done <- string(b)
	}()
	for range 30 {
		if _, err := io.WriteString(c, " "); err != nil {
			break // closed, as it should be
		}
		select {
		case got := <-done:
			if !strings.Contains(got, "connection-timeout") {
				t.Fatalf("the stream ended with %q, want <connection-timeout/>", got)
			}
			return
		case <-time.After(timeout / 10):
		}
	}
	t.Fatal("keepalives kept an unauthenticated stream open past three times its handshake timeout")
}

// TestUnauthenticatedPerIP: past the limit, a new connection from the same
// address is refused at once, with policy-violation on the STARTTLS port
// and closed without a handshake on the direct TLS port; closing one of
// the waiting connections makes room again.
func TestUnauthenticatedPerIP(t *testing.T) {
	srv, addr, direct := startPreauth(t, Config{UnauthenticatedPerIP: 3})
	var held []net.Conn
	for range 3 {
		held = append(held, openPreauth(t, addr))
	}

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, _ := io.ReadAll(c)
	if !strings.Contains(string(got), "<policy-violation") || !strings.Contains(string(got), "connections from your address") {
		t.Fatalf("the fourth connection got %q, want <policy-violation/> with a text", got)
	}

	d, err := net.Dial("tcp", direct)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_ = d.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got, _ := io.ReadAll(d); len(got) != 0 {
		t.Fatalf("the direct TLS connection got %q, want it closed with nothing", got)
	}
	if n := srv.Refused(); n != 2 {
		t.Errorf("Refused() = %d, want 2", n)
	}

	held[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, preauthHeader); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4096)
		n, _ := io.ReadAtLeast(c, buf, 1)
		c.Close()
		if strings.Contains(string(buf[:n]), "<stream:features") || strings.Contains(string(buf[:n]), "starttls") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after one closed, a new connection still got %q", buf[:n])
		}
		time.Sleep(20 * time.Millisecond) // the server has yet to see the close
	}
}

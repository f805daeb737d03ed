package s2s

import (
	"crypto/tls"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// cutConn is a connection whose next Write, once cut is set, takes all
// but the last 10 bytes of what it is given and times out, as a write to
// a peer that reads too slowly may at its deadline; later writes go
// through.
type cutConn struct {
	net.Conn
	cut atomic.Bool
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func (c *cutConn) Write(p []byte) (int, error) {
	if c.cut.CompareAndSwap(true, false) {
		n, _ := c.Conn.Write(p[:len(p)-10])
		return n, timeoutError{}
	}
	return c.Conn.Write(p)
}

// tlsPair is a TLS connection of ours over a cutConn, and the peer's
// end, both handshaken; server says which side is ours.
func tlsPair(t *testing.T, server bool) (ours *tls.Conn, cut *cutConn, peer *tls.Conn) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	cut = &cutConn{Conn: a}
	srvCfg := &tls.Config{Certificates: []tls.Certificate{selfSigned(t, "local.example")}}
	cliCfg := &tls.Config{InsecureSkipVerify: true}
	if server {
		ours, peer = tls.Server(cut, srvCfg), tls.Client(b, cliCfg)
	} else {
		ours, peer = tls.Client(cut, cliCfg), tls.Server(b, srvCfg)
	}
	errc := make(chan error, 1)
	go func() { errc <- ours.Handshake() }()
	if err := peer.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return ours, cut, peer
}

// readAll reads the peer's end until it fails; the error is sent on the
// returned channel, what was read before on got.
func readAll(peer *tls.Conn, got chan<- string) <-chan error {
	ended := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := peer.Read(buf)
			if n > 0 {
				got <- string(buf[:n])
			}
			if err != nil {
				ended <- err
				return
			}
		}
	}()
	return ended
}

// endsAsDropped fails the test unless the peer's stream ends as a
// dropped connection does: not with a TLS alert or a corrupt record.
func endsAsDropped(t *testing.T, ended <-chan error) {
	t.Helper()
	select {
	case err := <-ended:
		t.Logf("the peer's stream ends with %v", err)
		if strings.Contains(err.Error(), "MAC") || strings.Contains(err.Error(), "alert") {
			t.Fatalf("the peer's stream ends with %v; want the end of a dropped connection", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the peer's stream did not end")
	}
}

// TestATimedOutWriteEndsS2STLSCleanly: when a write to a peer server
// times out part way through a TLS record, on a stream it opened to us
// or on one we opened to it, the connection ends as a dropped one.
// crypto/tls's Close would have sent its close_notify alert after the
// cut record, and the peer, reading on, would have taken the whole for a
// forged record ("bad record MAC").
func TestATimedOutWriteEndsS2STLSCleanly(t *testing.T) {
	svc, err := New(Config{
		Router: nopRouter{}, TLS: &tls.Config{},
		Certificate: func(string) (*tls.Certificate, bool) { return nil, false },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("inbound", func(t *testing.T) {
		ours, cut, peer := tlsPair(t, true)
		in := newInStream(svc, ours)
		in.tls = true
		done := make(chan struct{})
		go func() { defer close(done); in.serve() }()
		t.Cleanup(func() { ours.NetConn().Close(); <-done })
		got := make(chan string, 100)
		ended := readAll(peer, got)
		// Our answer, the header and the features, is cut short.
		cut.cut.Store(true)
		if _, err := peer.Write([]byte(streamHeader("remote.example", "local.example", "") + " ")); err != nil {
			t.Fatal(err)
		}
		endsAsDropped(t, ended)
	})
	t.Run("outbound", func(t *testing.T) {
		ours, cut, peer := tlsPair(t, false)
		ps := &peerStream{conn: ours, local: "local.example", remote: "remote.example", tls: true,
			r: xmpp.NewReader(ours, svc.cfg.Limits), w: xmpp.NewWriter(ours)}
		o := newOutStream(svc, pair{local: ps.local, remote: ps.remote})
		done := make(chan struct{})
		go func() { defer close(done); o.serve(ps) }()
		t.Cleanup(func() { ours.NetConn().Close(); <-done })
		got := make(chan string, 100)
		ended := readAll(peer, got)
		cut.cut.Store(true)
		m := etree.NewElement("message")
		m.CreateAttr("from", "alice@local.example")
		m.CreateAttr("to", "bob@remote.example")
		m.CreateElement("body").SetText(strings.Repeat("y", 2000))
		st, err := xmpp.NewStanza(m)
		if err != nil {
			t.Fatal(err)
		}
		if r := o.enqueue(st); r != enqueued {
			t.Fatalf("enqueue: %v", r)
		}
		endsAsDropped(t, ended)
	})
}

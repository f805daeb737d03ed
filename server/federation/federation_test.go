package federation_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/server"
	"github.com/parley-im/parley/server/federation"
	"github.com/parley-im/parley/xmpp"
)

// TestFederationRunsOnlyWithListen: without [s2s] listen there is no
// federation (remote servers could not verify this server's dialback
// keys), so a stanza to a remote domain bounces and /metrics has no s2s
// lines; with it, both listeners serve server streams, the router hands
// remote domains to it, and /metrics shows its counts.
func TestFederationRunsOnlyWithListen(t *testing.T) {
	tests := []struct {
		name   string
		listen bool
	}{
		{"no_s2s_listen_no_federation", false},
		{"s2s_listen_serves_and_counts", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// remote.example's server: it takes a connection and
			// closes it, so the stream fails at once.
			peer, dialed := closingPeer(t)
			s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) {
				if tt.listen {
					c.S2S.Listen = []string{"127.0.0.1:0"}
					c.S2S.DirectTLS = []string{"127.0.0.1:0"}
					c.S2S.StaticRoutes = map[string]string{"remote.example": peer}
				}
			}))
			f := federation.Of(s.Server)
			if (f != nil) != tt.listen {
				t.Fatalf("federation.Of = %v with [s2s] listen %v", f, tt.listen)
			}
			metrics := get(t, s.HTTPURL+"/metrics")
			if got := strings.Contains(metrics, `parley_s2s_streams{direction="in"} 0`); got != tt.listen {
				t.Errorf("/metrics shows the s2s streams: %v, want %v:\n%s", got, tt.listen, metrics)
			}

			s.AddUser("alice@localhost", "secret")
			alice := s.Login("alice@localhost", "secret", "desk")
			alice.Send("<message to='bob@remote.example' id='m1' type='chat'><body>hi</body></message>")
			st := alice.NextStanza()
			if st.Type != "error" || st.El.FindElement("error/remote-server-not-found") == nil {
				t.Fatalf("a message to a remote domain: %s, want remote-server-not-found", alice.String(st.El))
			}
			if !tt.listen {
				select {
				case <-dialed:
					t.Fatal("remote.example was dialed with no federation")
				default:
				}
				return
			}
			// The router gave the message to federation, which
			// dialed the static route before the bounce.
			select {
			case <-dialed:
			default:
				t.Fatal("the bounce came without a dial of remote.example")
			}
			if s.S2S() != f.S2S() || len(f.Addrs()) != 1 || len(f.DirectTLSAddrs()) != 1 {
				t.Fatalf("federation: %v, addrs %v and %v", f.S2S(), f.Addrs(), f.DirectTLSAddrs())
			}
			conn, err := net.Dial("tcp", f.Addrs()[0].String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			_, _ = io.WriteString(conn, "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='"+
				xmpp.NSStream+"' xmlns:db='jabber:server:dialback' to='localhost' from='remote.example' version='1.0'>")
			// The XML declaration, then the stream header.
			r := bufio.NewReader(conn)
			head, err := r.ReadString('>')
			if err == nil {
				var more string
				more, err = r.ReadString('>')
				head += more
			}
			if err != nil || !strings.Contains(head, "<stream:stream") {
				t.Fatalf("the STARTTLS listener answered %q, %v", head, err)
			}
			tc, err := tls.Dial("tcp", f.DirectTLSAddrs()[0].String(), &tls.Config{
				ServerName: "localhost", RootCAs: s.CertPool, NextProtos: []string{"xmpp-server"},
			})
			if err != nil {
				t.Fatalf("the direct TLS listener: %v", err)
			}
			tc.Close()
		})
	}
}

// TestStartFailsOnATakenPort: an address in use fails Start with the
// address and the system's error (parleytest.StartFederated retries on
// EADDRINUSE), and the s2s listeners Start had opened are closed again,
// whether the taken port was federation's own or one opened after them
// (the external components'), so a failed start holds no port.
func TestStartFailsOnATakenPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name      string
		directTLS string // [s2s] direct_tls; "" for a free one
		component string // [component] listen; "" for a free one
	}{
		{"s2s_direct_tls_taken", busy.Addr().String(), ""},
		{"component_port_taken_after_s2s_opened", "", busy.Addr().String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plain, direct, component := freeAddr(t), tt.directTLS, tt.component
			if direct == "" {
				direct = freeAddr(t)
			}
			if component == "" {
				component = freeAddr(t)
			}
			cfg, err := conf.Parse("federation.toml", []byte(`database = ":memory:"
[c2s]
listen = ["127.0.0.1:0"]
[s2s]
listen = ["`+plain+`"]
direct_tls = ["`+direct+`"]
[component]
listen = ["`+component+`"]
[[host]]
name = "localhost"
[[host]]
name = "gateway.localhost"
type = "component"
secret = "a secret of the component's"
`))
			if err != nil {
				t.Fatal(err)
			}
			cfg.DataDir = t.TempDir()
			srv, err := server.New(cfg, server.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			err = srv.Start(context.Background())
			if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), busy.Addr().String()) {
				t.Fatalf("Start: %v, want the taken address", err)
			}
			for _, a := range []string{plain, direct} {
				if a == busy.Addr().String() {
					continue
				}
				if c, err := net.Dial("tcp", a); err == nil {
					c.Close()
					t.Fatalf("the s2s listener on %s is still open after the failed Start", a)
				}
			}
		})
	}
}

// freeAddr is a loopback address nobody listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	a, err := parleytest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// closingPeer is a listener that closes each connection it takes; dialed
// has a value once one came.
func closingPeer(t *testing.T) (addr string, dialed <-chan struct{}) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ch := make(chan struct{}, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			select {
			case ch <- struct{}{}:
			default:
			}
			c.Close()
		}
	}()
	return l.Addr().String(), ch
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

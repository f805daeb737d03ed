// Package parleytest starts real, in-process Parley servers for tests:
// listening on free loopback ports, with an in-memory store, generated
// certificates and the users a test asks for, and stopped by t.Cleanup.
// It also has a raw-XML client connection for scripted exchanges.
//
// It is a test fixture, not a client library: for a real client use one
// (the project's own tests use mellium.im/xmpp beside the raw helper).
package parleytest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parley-im/parley/c2s/sasl"
	"github.com/parley-im/parley/components/webhook"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/server"
	"github.com/parley-im/parley/server/local"
	// The standard host types and modules, as cmd/parley runs them.
	_ "github.com/parley-im/parley/server/std"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// Option changes the config a test server starts with.
type Option func(*conf.Config)

// WithHost adds a host of the given type (local.HostLocal when empty). A
// server started without a local host gets one first, "localhost"; Domain
// is the first host.
func WithHost(name, typ string) Option {
	return func(c *conf.Config) {
		c.Hosts = append(c.Hosts, conf.Host{Name: name, Type: typ})
	}
}

// WithBot adds an http_component host whose webhook is postURL; edit
// changes the rest of the host's settings (may be nil), its options
// through webhook.OptionsOf(h). Its timeout defaults to 5s here.
func WithBot(name, postURL string, edit func(*conf.Host)) Option {
	return func(c *conf.Config) {
		h := conf.Host{Name: name, Type: webhook.HostType, Options: &webhook.Options{
			PostURL: postURL, Timeout: conf.Duration{Duration: 5 * time.Second},
		}}
		if edit != nil {
			edit(&h)
		}
		c.Hosts = append(c.Hosts, h)
	}
}

// OnDisk keeps the server's database and data in dir, so that a server
// started again with the same option finds what the last one left.
func OnDisk(dir string) Option {
	return func(c *conf.Config) {
		c.Database = filepath.Join(dir, "parley.db")
		c.DataDir = dir
	}
}

// WithConfig lets a test change anything else.
func WithConfig(f func(*conf.Config)) Option { return f }

// WithLogLevel shows the server's logs from this level up in the test
// log; the default is warn.
func WithLogLevel(l slog.Level) Option {
	return func(c *conf.Config) { c.LogLevel = strings.ToLower(l.String()) }
}

const defaultHost = "localhost"

func hasLocal(hosts []conf.Host) bool {
	for _, h := range hosts {
		if h.Type == "" || h.Type == local.HostLocal {
			return true
		}
	}
	return false
}

// Server is a running test server.
type Server struct {
	*server.Server
	// Domain is the first host's name.
	Domain string
	// Addr is the STARTTLS c2s address, DirectTLSAddr the direct TLS one.
	Addr, DirectTLSAddr string
	// HTTPURL is the base URL of the HTTP listener (send API, metrics),
	// like "http://127.0.0.1:port".
	HTTPURL string
	// CertPool trusts the server's certificates.
	CertPool *x509.CertPool

	t          testing.TB
	iterations int
}

// Start starts a server on 127.0.0.1 with free ports and an in-memory
// store. It is ready when Start returns, and shut down by t.Cleanup.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := start(t, opts...)
	if err != nil {
		t.Fatalf("parleytest: %v", err)
	}
	return s
}

// StartSelfAddressed starts a server whose config names its own HTTP
// listener, as the demo echo bot's post_url does: edit gets the address
// the listener will have. A port picked before the server starts can be
// taken by another process (or an outgoing connection's local port) in
// between, so a start that finds it taken is tried again on another.
func StartSelfAddressed(t testing.TB, edit func(c *conf.Config, httpAddr string), opts ...Option) *Server {
	t.Helper()
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		var addr string
		addr, err = FreeAddr()
		if err != nil {
			break
		}
		withAddr := append(opts[:len(opts):len(opts)], func(c *conf.Config) {
			c.HTTP.Listen = []string{addr}
			edit(c, addr)
		})
		var s *Server
		if s, err = start(t, withAddr...); err == nil {
			return s
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	t.Fatalf("parleytest: %v", err)
	return nil
}

// FreeAddr returns a loopback address whose port was free a moment ago.
// Anything that binds it must be ready to find it taken and try again.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("parleytest: pick a port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func start(t testing.TB, opts ...Option) (*Server, error) {
	cfg := conf.New()
	cfg.DataDir = t.TempDir()
	cfg.Database = ":memory:"
	cfg.LogLevel = "warn"
	cfg.C2S.Listen = []string{"127.0.0.1:0"}
	cfg.C2S.DirectTLS = []string{"127.0.0.1:0"}
	cfg.HTTP.Listen = []string{"127.0.0.1:0"}
	cfg.Component.Listen = []string{"127.0.0.1:0"}
	cfg.Auth.SCRAMIterations = 4096 // the RFC 7677 minimum: tests log in often
	// Every test client comes from 127.0.0.1, and tests fail logins on
	// purpose: the login limits would hold their answers.
	cfg.Limits.LoginBackoffAfter = 1 << 20
	cfg.Limits.LoginSprayAccounts = 1 << 20
	cfg.Limits.LoginAccountFailures = 1 << 20
	cfg.Limits.UnauthenticatedPerIP = 1 << 20
	// Tests log in as one account many times over.
	cfg.Limits.SessionsPerAccount = 1 << 20
	for _, o := range opts {
		o(cfg)
	}
	if !hasLocal(cfg.Hosts) {
		cfg.Hosts = append([]conf.Host{{Name: defaultHost}}, cfg.Hosts...)
	}
	level := slog.LevelWarn
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewTextHandler(&testWriter{t: t}, &slog.HandlerOptions{Level: level}))
	srv, err := server.New(cfg, server.WithLogger(log))
	if err != nil {
		return nil, err
	}
	if err := srv.Start(context.Background()); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		return nil, err
	}
	s := &Server{
		Server:        srv,
		Domain:        cfg.Hosts[0].Name,
		Addr:          srv.C2SAddrs()[0].String(),
		DirectTLSAddr: srv.DirectTLSAddrs()[0].String(),
		HTTPURL:       httpScheme(cfg) + "://" + srv.HTTPAddrs()[0].String(),
		CertPool:      srv.CertPool(),
		t:             t,
		iterations:    cfg.Auth.SCRAMIterations,
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("parleytest: shutdown: %v", err)
		}
	})
	return s, nil
}

// AddUser creates the account of jid (local@host) with password.
func (s *Server) AddUser(jid, password string) {
	s.t.Helper()
	j, err := xmpp.Parse(jid)
	if err != nil || j.Local() == "" {
		s.t.Fatalf("parleytest: AddUser(%q): not a user JID: %v", jid, err)
	}
	k1, k256, err := sasl.NewKeys(password, s.iterations)
	if err != nil {
		s.t.Fatalf("parleytest: AddUser(%q): %v", jid, err)
	}
	err = s.Store().CreateAccount(context.Background(), storage.Account{Host: j.Domain(), Username: j.Local(), SHA1: k1, SHA256: k256})
	if err != nil {
		s.t.Fatalf("parleytest: AddUser(%q): %v", jid, err)
	}
}

// TLSConfig returns a client TLS config that trusts the server, for host.
func (s *Server) TLSConfig(host string) *tls.Config {
	return &tls.Config{ServerName: host, RootCAs: s.CertPool, MinVersion: tls.VersionTLS12}
}

// testWriter sends log lines to t.Log until the test ends.
type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		defer func() {
			// t.Log after the test ended panics: stop logging then.
			if recover() != nil {
				w.done = true
			}
		}()
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

var _ io.Writer = (*testWriter)(nil)
var _ net.Conn = (*Conn)(nil)

// httpScheme is the HTTP listener's scheme: https with [http] tls.
func httpScheme(cfg *conf.Config) string {
	if cfg.HTTP.TLS {
		return "https"
	}
	return "http"
}

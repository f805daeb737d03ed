package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/parley-im/parley/c2s"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/server/certs"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// ErrServerClosed is returned by Start after Shutdown.
var ErrServerClosed = errors.New("server: closed")

// Option changes how New builds a Server.
type Option func(*Server)

// WithLogger sends the server's logs to l instead of slog.Default().
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// Server is one Parley: its store, its hosts, its router and its
// listeners. Build it with New, then Start; Shutdown ends it. Nothing in
// here parses flags or waits for signals, so the same server runs in a
// test.
type Server struct {
	cfg    *conf.Config
	log    *slog.Logger
	store  *storage.Store
	certs  *certs.Store
	router *Router
	local  map[string]*localHost
	c2s    *c2s.Server

	mu        sync.Mutex
	started   bool
	closed    bool
	listeners []listener
	serving   sync.WaitGroup
}

type listener struct {
	l         net.Listener
	directTLS bool
}

// New builds a server from cfg: it validates cfg, opens the store, loads or
// makes the hosts' certificates and builds the router. It listens on
// nothing until Start.
func New(cfg *conf.Config, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: slog.Default(), local: make(map[string]*localHost)}
	for _, o := range opts {
		o(s)
	}
	s.certs = certs.NewStore()
	certDir := cfg.DataDir
	if cfg.DatabasePath() == ":memory:" {
		// An ephemeral server leaves nothing on disk.
		certDir = ""
	}
	var components []string
	for _, h := range cfg.Hosts {
		if err := s.certs.LoadOrCreate(h.Name, h.TLSCert, h.TLSKey, certDir); err != nil {
			return nil, fmt.Errorf("server: host %s: %w", h.Name, err)
		}
		switch h.Type {
		case conf.HostLocal:
		default:
			return nil, fmt.Errorf("server: host %s: type %q is not implemented yet; only %q hosts run in this version", h.Name, h.Type, conf.HostLocal)
		}
	}
	store, err := storage.Open(context.Background(), cfg.DatabasePath())
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s.store = store
	s.router = &Router{hosts: make(map[string]Handler), log: s.log}
	services := serverServices(components)
	for _, h := range cfg.Hosts {
		lh := newLocalHost(h.Name, s.router, store, services, s.log)
		s.local[h.Name] = lh
		s.router.hosts[h.Name] = lh
	}
	limits := xmpp.Limits{
		MaxStanza: int64(cfg.Limits.StanzaSize),
		MaxDepth:  cfg.Limits.MaxDepth,
		MaxAttrs:  cfg.Limits.MaxAttributes,
		Rate:      int64(cfg.Limits.Rate),
		Burst:     int64(cfg.Limits.Burst),
	}
	s.c2s = c2s.NewServer(c2s.Config{
		Router:             (*c2sRouter)(s),
		Accounts:           store,
		TLS:                s.certs.TLSConfig(),
		IsLocalHost:        func(d string) bool { _, ok := s.local[d]; return ok },
		RequireTLS:         cfg.C2S.RequireTLS,
		AllowPlain:         cfg.Auth.AllowPlain,
		Iterations:         cfg.Auth.SCRAMIterations,
		Limits:             limits,
		Queue:              cfg.Limits.Queue,
		IdleTimeout:        cfg.C2S.IdleTimeout.Duration,
		AuthFailures:       cfg.Limits.AuthFailures,
		LoginFailuresPerIP: cfg.Limits.LoginsPerIP,
		Logger:             s.log,
	})
	return s, nil
}

// c2sRouter gives the c2s package the router and the session registry.
type c2sRouter Server

func (r *c2sRouter) Route(st *xmpp.Stanza) { r.router.Route(st) }

func (r *c2sRouter) Bind(sess *c2s.Session) error {
	h, ok := r.local[sess.JID().Domain()]
	if !ok {
		return fmt.Errorf("server: %s is not a local host", sess.JID().Domain())
	}
	return h.Bind(sess)
}

func (r *c2sRouter) Unbind(sess *c2s.Session) {
	if h, ok := r.local[sess.JID().Domain()]; ok {
		h.Unbind(sess)
	}
}

// Start listens on every configured address and serves in the background.
// When it returns without error, every listener accepts connections.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrServerClosed
	}
	if s.started {
		return errors.New("server: already started")
	}
	s.started = true
	var lc net.ListenConfig
	listen := func(addrs []string, directTLS bool) error {
		for _, a := range addrs {
			l, err := lc.Listen(ctx, "tcp", a)
			if err != nil {
				return fmt.Errorf("server: listen on %s: %w", a, err)
			}
			s.listeners = append(s.listeners, listener{l, directTLS})
		}
		return nil
	}
	err := listen(s.cfg.C2S.Listen, false)
	if err == nil {
		err = listen(s.cfg.C2S.DirectTLS, true)
	}
	if err != nil {
		for _, l := range s.listeners {
			l.l.Close()
		}
		s.listeners = nil
		return err
	}
	for _, w := range []string{"s2s", "http"} {
		if (w == "s2s" && len(s.cfg.S2S.Listen) > 0) || (w == "http" && len(s.cfg.HTTP.Listen) > 0) {
			s.log.Warn("server: listener not implemented yet, not listening", "listener", w)
		}
	}
	for _, l := range s.listeners {
		s.serving.Add(1)
		go func() {
			defer s.serving.Done()
			err := s.c2s.Serve(l.l, l.directTLS)
			if err != nil && !errors.Is(err, c2s.ErrServerClosed) {
				s.log.Error("server: c2s listener stopped", "addr", l.l.Addr().String(), "err", err)
			}
		}()
		kind := "starttls"
		if l.directTLS {
			kind = "direct_tls"
		}
		s.log.Info("server: c2s listening", "addr", l.l.Addr().String(), "kind", kind)
	}
	return nil
}

// C2SAddrs returns the addresses of the STARTTLS listeners, once started.
func (s *Server) C2SAddrs() []net.Addr { return s.addrs(false) }

// DirectTLSAddrs returns the addresses of the direct TLS listeners.
func (s *Server) DirectTLSAddrs() []net.Addr { return s.addrs(true) }

func (s *Server) addrs(directTLS bool) []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []net.Addr
	for _, l := range s.listeners {
		if l.directTLS == directTLS {
			out = append(out, l.l.Addr())
		}
	}
	return out
}

// Store returns the server's store, for adding accounts from Go.
func (s *Server) Store() *storage.Store { return s.store }

// Router returns the server's router.
func (s *Server) Router() *Router { return s.router }

// CertPool returns a pool that trusts the hosts' self-signed
// certificates, for clients in tests.
func (s *Server) CertPool() *x509.CertPool { return s.certs.CertPool() }

// Sessions returns the number of open client connections.
func (s *Server) Sessions() int { return s.c2s.Sessions() }

// Shutdown stops accepting, closes every stream with <system-shutdown/>,
// waits for the sessions to end (or ctx) and closes the store.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	err := s.c2s.Shutdown(ctx)
	s.serving.Wait()
	if cerr := s.store.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err == nil {
		s.log.Info("server: stopped")
	}
	return err
}

// shutdownTimeout is how long Close waits for sessions.
const shutdownTimeout = 10 * time.Second

// Close shuts down with a default timeout.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	return s.Shutdown(ctx)
}

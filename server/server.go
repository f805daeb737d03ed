package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/beevik/etree"
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
	// sessionHosts are the hosts whose users log in (SessionHost), by
	// domain: c2s binds sessions to them.
	sessionHosts map[string]SessionHost
	c2s          *c2s.Server
	http         *http.Server
	// services are the registered services the config turns on
	// (RegisterService): federation.
	services []runningService

	flushStop chan struct{} // ends flushLoop; closed by Shutdown
	// ctx is the server's lifetime, which handlers' contexts derive
	// from; cancel ends it in Shutdown.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	started   bool
	closed    bool
	listeners []listener
	// typeListeners are the host types' own listeners (HostType.Listen),
	// by type name.
	typeListeners map[string]Listener
	serving       sync.WaitGroup
}

type listener struct {
	l         net.Listener
	directTLS bool
	http      bool
}

// New builds a server from cfg: it validates cfg, opens the store, loads or
// makes the hosts' certificates and builds the router. It listens on
// nothing until Start.
func New(cfg *conf.Config, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: slog.Default(), sessionHosts: make(map[string]SessionHost)}
	for _, o := range opts {
		o(s)
	}
	s.certs = certs.NewStore()
	s.certs.SetLogger(s.log)
	certDir := cfg.DataDir
	if cfg.DatabasePath() == ":memory:" {
		// An ephemeral server leaves nothing on disk.
		certDir = ""
	}
	for _, h := range cfg.Hosts {
		if err := s.certs.LoadOrCreate(h.Name, h.TLSCert, h.TLSKey, certDir); err != nil {
			return nil, fmt.Errorf("server: host %s: %w", h.Name, err)
		}
		if _, ok := lookupType(h.Type); !ok {
			return nil, fmt.Errorf("server: host %s: type %q is not implemented yet; this version runs %s", h.Name, h.Type, typesRunning())
		}
	}
	store, err := storage.Open(context.Background(), cfg.DatabasePath())
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s.store = store
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.router = &Router{hosts: make(map[string]Handler), log: s.log, ctx: s.ctx}
	if err := s.buildHosts(certDir); err != nil {
		s.abandon()
		return nil, fmt.Errorf("server: %w", err)
	}
	if err := s.buildServices(); err != nil {
		s.abandon()
		return nil, fmt.Errorf("server: %w", err)
	}
	fakeSecret, err := loadFakeSecret(certDir)
	if err != nil {
		s.abandon()
		return nil, fmt.Errorf("server: %w", err)
	}
	limits := xmpp.Limits{
		MaxStanza: int64(cfg.Limits.StanzaSize),
		MaxDepth:  cfg.Limits.MaxDepth,
		MaxAttrs:  cfg.Limits.MaxAttributes,
		Rate:      int64(cfg.Limits.Rate),
		Burst:     int64(cfg.Limits.Burst),
	}
	s.c2s = c2s.NewServer(c2s.Config{
		Router:         (*c2sRouter)(s),
		Accounts:       store,
		Registrar:      (*registrar)(s),
		ExtraFeatures:  s.extraFeatures,
		TLS:            s.certs.TLSConfig(),
		IsLocalHost:    func(d string) bool { _, ok := s.sessionHosts[d]; return ok },
		RequireTLS:     cfg.C2S.RequireTLS,
		AllowPlain:     cfg.Auth.AllowPlain,
		Iterations:     cfg.Auth.SCRAMIterations,
		FakeSecret:     fakeSecret,
		KeyIterations:  newKeyIterations(store).get,
		Limits:         limits,
		Queue:          cfg.Limits.Queue,
		QueueBytes:     int64(cfg.Limits.QueueBytes),
		IdleTimeout:    cfg.C2S.IdleTimeout.Duration,
		ParkAfter:      cfg.C2S.ParkAfter.Duration,
		ResumeTimeout:  cfg.C2S.ResumeTimeout.Duration,
		ResumeLocation: cfg.C2S.ResumeLocation,
		Tokens:         store,
		TokenTTL:       cfg.Auth.FastTokenLifetime.Duration,
		AuthFailures:   cfg.Limits.AuthFailures,
		ChannelBinding: cfg.Auth.ChannelBinding == conf.ChannelBindingStrict,
		Logins: c2s.LoginLimits{
			BackoffAfter:    cfg.Limits.LoginBackoffAfter,
			SprayAccounts:   cfg.Limits.LoginSprayAccounts,
			AccountFailures: cfg.Limits.LoginAccountFailures,
			BackoffMax:      backoffMax(cfg.Limits.LoginBackoffMax.Duration),
			Window:          cfg.Limits.LoginWindow.Duration,
		},
		RegistrationsPerIP:   cfg.Limits.RegistrationsPerIP,
		UnauthenticatedPerIP: cfg.Limits.UnauthenticatedPerIP,
		SMCounts:             store,
		Logger:               s.log,
	})
	return s, nil
}

// backoffMax maps the config's "0s" (never hold an answer) to the c2s
// package's negative value; its zero is the default.
func backoffMax(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// c2sRouter gives the c2s package the router and the session registry.
type c2sRouter Server

// Route takes a stanza from a client: a host whose users log in takes
// what they send (SessionHost.FromClient: its IM rules, then routing);
// anything else is routed.
func (r *c2sRouter) Route(st *xmpp.Stanza) {
	if h := r.sessionHosts[st.From.Domain()]; h != nil {
		h.FromClient(st)
		return
	}
	r.router.Route(st)
}

// extraFeatures are the stream features of a host that c2s only
// announces (SessionHost.StreamFeatures).
func (s *Server) extraFeatures(host string, authenticated bool) []*etree.Element {
	if h := s.sessionHosts[host]; h != nil {
		return h.StreamFeatures(authenticated)
	}
	return nil
}

// Nonza hands a session's top-level element that is not a stanza to
// its host, when the host takes such elements (NonzaHost).
func (r *c2sRouter) Nonza(sess *c2s.Session, el *etree.Element) bool {
	h, ok := r.sessionHosts[sess.JID().Domain()].(NonzaHost)
	return ok && h.Nonza(sess, el)
}

// BeforeAck lets the session's host finish what must be done before the
// session's stanzas are acknowledged (AckHost).
func (r *c2sRouter) BeforeAck(sess *c2s.Session) {
	if h, ok := r.sessionHosts[sess.JID().Domain()].(AckHost); ok {
		h.BeforeAck(sess)
	}
}

// InlineFeatures are the features a host's sessions may enable inline
// in Bind2 (InlineHost).
func (r *c2sRouter) InlineFeatures(host string) []string {
	if h, ok := r.sessionHosts[host].(InlineHost); ok {
		return h.InlineFeatures()
	}
	return nil
}

// Inline hands one child of a bound session's Bind2 request to its host
// (InlineHost).
func (r *c2sRouter) Inline(sess *c2s.Session, el *etree.Element) bool {
	h, ok := r.sessionHosts[sess.JID().Domain()].(InlineHost)
	return ok && h.Inline(sess, el)
}

// Detached tells the host of a session that detached (stream
// management), when it wants to know (DetachHost).
func (r *c2sRouter) Detached(sess *c2s.Session, pending []*etree.Element) {
	if h, ok := r.sessionHosts[sess.JID().Domain()].(DetachHost); ok {
		h.Detached(sess, pending)
	}
}

func (r *c2sRouter) Bind(sess *c2s.Session) error {
	h, ok := r.sessionHosts[sess.JID().Domain()]
	if !ok {
		return fmt.Errorf("server: %s is not a host with accounts", sess.JID().Domain())
	}
	return h.Bind(sess)
}

func (r *c2sRouter) Unbind(sess *c2s.Session) {
	if h, ok := r.sessionHosts[sess.JID().Domain()]; ok {
		h.Unbind(sess)
	}
}

// Undelivered routes the stanzas a closing session will never write (its
// connection failed or is gone) as if the session had already gone: see
// SessionHost.Undelivered.
func (r *c2sRouter) Undelivered(sess *c2s.Session, els []*etree.Element) {
	for _, el := range els {
		st, err := xmpp.NewStanza(el)
		if err != nil {
			// Only stanzas are queued; this one cannot be routed.
			r.log.Debug("server: undelivered element dropped", "jid", sess.JID().String(), "tag", el.Tag, "err", err)
			continue
		}
		r.router.Undelivered(sess, st)
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
	// Before the first client: a resume across the restart finds its
	// session's count. A store that cannot give them costs those
	// clients their h, not the start.
	if err := s.c2s.RestoreSMCounts(ctx); err != nil {
		s.log.Warn("server: stream management counts of the last run not read", "err", err)
	}
	var lc net.ListenConfig
	listen := func(addrs []string, directTLS bool) error {
		for _, a := range addrs {
			l, err := lc.Listen(ctx, "tcp", a)
			if err != nil {
				return fmt.Errorf("server: listen on %s: %w", a, err)
			}
			s.listeners = append(s.listeners, listener{l: l, directTLS: directTLS})
		}
		return nil
	}
	err := listen(s.cfg.C2S.Listen, false)
	if err == nil {
		err = listen(s.cfg.C2S.DirectTLS, true)
	}
	if err == nil {
		n := len(s.listeners)
		err = listen(s.cfg.HTTP.Listen, false)
		for i := n; i < len(s.listeners); i++ {
			s.listeners[i].http = true
		}
	}
	var serviceListeners []Listener
	if err == nil {
		serviceListeners, err = s.listenServices(ctx)
	}
	if err == nil {
		err = s.listenTypes(ctx)
	}
	if err != nil {
		for _, l := range s.listeners {
			l.l.Close()
		}
		s.listeners = nil
		for _, l := range serviceListeners {
			_ = l.Close()
		}
		s.closeListeners(s.typeListeners)
		s.typeListeners = nil
		return err
	}
	s.http = s.newHTTPServer()
	s.flushStop = make(chan struct{})
	s.serving.Add(1)
	go s.flushLoop()
	for _, l := range s.listeners {
		if l.http {
			ln := l.l
			if s.cfg.HTTP.TLS {
				ln = tls.NewListener(ln, s.httpsConfig())
			}
			s.serving.Add(1)
			go func() {
				defer s.serving.Done()
				if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					s.log.Error("server: http listener stopped", "addr", l.l.Addr().String(), "err", err)
				}
			}()
			s.log.Info("server: http listening", "addr", l.l.Addr().String())
			continue
		}
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

// listenTypes opens the host types' own listeners (HostType.Listen) of
// the types this server has hosts of.
func (s *Server) listenTypes(ctx context.Context) error {
	s.typeListeners = map[string]Listener{}
	for _, t := range registeredTypes() {
		hosts := s.hostsOfType(t.name)
		if t.Listen == nil || len(hosts) == 0 {
			continue
		}
		l, err := t.Listen(ctx, s.cfg, hosts)
		if err != nil {
			return fmt.Errorf("server: %s listener: %w", t.name, err)
		}
		s.typeListeners[t.name] = l
	}
	return nil
}

// closeListeners closes host types' own listeners, by type name.
func (s *Server) closeListeners(ls map[string]Listener) {
	for name, l := range ls {
		if err := l.Close(); err != nil {
			s.log.Warn("server: host type listener did not close", "type", name, "err", err)
		}
	}
}

// TypeAddrs returns the addresses of the host type typ's own listener
// (HostType.Listen), once started; none when it has none.
func (s *Server) TypeAddrs(typ string) []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.typeListeners[typ]; ok {
		return l.Addrs()
	}
	return nil
}

// C2SAddrs returns the addresses of the STARTTLS listeners, once started.
func (s *Server) C2SAddrs() []net.Addr { return s.addrs(listener{}) }

// DirectTLSAddrs returns the addresses of the direct TLS listeners.
func (s *Server) DirectTLSAddrs() []net.Addr { return s.addrs(listener{directTLS: true}) }

// HTTPAddrs returns the addresses of the HTTP listeners.
func (s *Server) HTTPAddrs() []net.Addr { return s.addrs(listener{http: true}) }

func (s *Server) addrs(kind listener) []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []net.Addr
	for _, l := range s.listeners {
		if l.directTLS == kind.directTLS && l.http == kind.http {
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

// abandon undoes a New that failed after the hosts began: their work
// drained, their background tasks ended, the store closed.
func (s *Server) abandon() {
	s.shutdownServices(context.Background())
	s.drainHosts(context.Background())
	s.cancel()
	s.router.waitTasks()
	s.store.Close()
}

// Shutdown stops accepting, closes every stream with <system-shutdown/>,
// waits for the sessions to end (or ctx) and closes the store. When ctx
// ends first, the handlers still waiting (for the store, say) are
// cancelled, so that their sessions can end.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	httpSrv := s.http
	typeListeners := s.typeListeners
	s.typeListeners = nil
	s.mu.Unlock()
	// No new peer of a host type's own listener while the hosts drain.
	s.closeListeners(typeListeners)
	if s.cancel != nil {
		stop := context.AfterFunc(ctx, s.cancel)
		defer stop()
	}
	if httpSrv != nil {
		_ = httpSrv.Shutdown(ctx)
	}
	// Hosts with work in flight (webhooks) first, so their last
	// replies still find the sessions.
	drainCtx, cancel := context.WithTimeout(ctx, drainTimeout)
	s.drainHosts(drainCtx)
	cancel()
	// Before the sessions: what remote servers still send finds them,
	// and what waits for a remote server bounces to them.
	s.shutdownServices(ctx)
	err := s.c2s.Shutdown(ctx)
	if s.flushStop != nil {
		close(s.flushStop)
	}
	s.serving.Wait()
	for _, h := range s.sessionHosts {
		// What the flush loop has not written yet, now that every
		// session has ended.
		h.Flush(ctx)
	}
	if s.cancel != nil {
		// Whatever a handler still waits for ends here: every session is
		// gone, and the store closes next, once the background tasks
		// (Router.Go) have seen it.
		s.cancel()
	}
	s.router.waitTasks()
	if cerr := s.store.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err == nil {
		s.log.Info("server: stopped")
	}
	return err
}

// flushLoop has the hosts write what they batch (SessionHost.Flush) once
// a second until Shutdown.
func (s *Server) flushLoop() {
	defer s.serving.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.flushStop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			for _, h := range s.sessionHosts {
				h.Flush(ctx)
			}
			cancel()
		}
	}
}

// drainTimeout is how long Shutdown lets the hosts' work in flight
// (webhooks) finish.
const drainTimeout = 5 * time.Second

// shutdownTimeout is how long Close waits for sessions.
const shutdownTimeout = 10 * time.Second

// Close shuts down with a default timeout.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	return s.Shutdown(ctx)
}

// The c2s router tells hosts of their sessions' detaches.
var _ c2s.DetachRouter = (*c2sRouter)(nil)

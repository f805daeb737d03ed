package federation

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/s2s"
	"github.com/parley-im/parley/server"
	"github.com/parley-im/parley/xmpp"
)

// Name is the service's name (server.RegisterService, Server.Service).
const Name = "s2s"

func init() { server.RegisterService(Name, server.ServiceType{New: New}) }

// Federation is one server's federation: the s2s.Service and its
// listeners.
type Federation struct {
	svc *s2s.Service
	cfg conf.S2S
	log *slog.Logger

	mu        sync.Mutex
	listeners []net.Listener // plain (STARTTLS) first, then direct TLS
	plain     int            // how many of listeners are plain
	serving   sync.WaitGroup
}

// Of returns the federation of srv, nil when [s2s] listen is not set (or
// the binary does not register this package).
func Of(srv *server.Server) *Federation {
	svc, _ := srv.Service(Name)
	f, _ := svc.(*Federation)
	return f
}

// S2S returns the s2s service, for its counts.
func (f *Federation) S2S() *s2s.Service { return f.svc }

// Addrs returns the addresses of the STARTTLS s2s listeners, after
// Start.
func (f *Federation) Addrs() []net.Addr { return f.addrs(false) }

// DirectTLSAddrs returns the addresses of the direct TLS s2s listeners
// (XEP-0368), after Start.
func (f *Federation) DirectTLSAddrs() []net.Addr { return f.addrs(true) }

func (f *Federation) addrs(directTLS bool) []net.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	ls := f.listeners[:f.plain]
	if directTLS {
		ls = f.listeners[f.plain:]
	}
	out := make([]net.Addr, 0, len(ls))
	for _, l := range ls {
		out = append(out, l.Addr())
	}
	return out
}

// limitsS2S are the reader's limits on streams from remote servers.
func limitsS2S(cfg *conf.Config) xmpp.Limits {
	return xmpp.Limits{
		MaxStanza: int64(cfg.Limits.S2SStanzaSize),
		MaxDepth:  cfg.Limits.MaxDepth,
		MaxAttrs:  cfg.Limits.MaxAttributes,
		// Paces what one stream sends, [s2s] rate (0: no limit).
		Rate: int64(cfg.S2S.Rate),
	}
}

// New builds federation when [s2s] listen is set: the router sends it
// what no host serves. Without a listener there is none, since remote
// servers verify this server's dialback keys on it.
func New(env *server.ServiceEnv) (server.Service, error) {
	c := env.Config.S2S
	if len(c.Listen) == 0 {
		return nil, nil
	}
	var roots *x509.CertPool
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("s2s.ca_file: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("s2s.ca_file: %s holds no PEM certificate", c.CAFile)
		}
	}
	svc, err := s2s.New(s2s.Config{
		Router:              env.Router,
		TLS:                 env.TLS,
		Certificate:         env.Certificate,
		Roots:               roots,
		Routes:              c.StaticRoutes,
		RequireTLS:          c.RequireTLS,
		RequireValidCerts:   c.RequireValidCerts,
		Allow:               c.Allow,
		Deny:                c.Deny,
		ConnectTimeout:      c.ConnectTimeout.Duration,
		IdleTimeout:         c.IdleTimeout.Duration,
		PingInterval:        c.PingInterval.Duration,
		MaxStreamsPerDomain: c.MaxStreamsPerDomain,
		Limits:              limitsS2S(env.Config),
		Logger:              env.Log,
	})
	if err != nil {
		return nil, err
	}
	env.Router.SetRemote(svc)
	return &Federation{svc: svc, cfg: c, log: env.Log}, nil
}

// Listen opens [s2s] listen and direct_tls and serves them.
func (f *Federation) Listen(ctx context.Context) (server.Listener, error) {
	var lc net.ListenConfig
	var opened []net.Listener
	for _, a := range append(append([]string(nil), f.cfg.Listen...), f.cfg.DirectTLS...) {
		l, err := lc.Listen(ctx, "tcp", a)
		if err != nil {
			for _, o := range opened {
				o.Close()
			}
			return nil, fmt.Errorf("server: listen on %s: %w", a, err)
		}
		opened = append(opened, l)
	}
	f.mu.Lock()
	f.listeners, f.plain = opened, len(f.cfg.Listen)
	f.mu.Unlock()
	for i, l := range opened {
		serve, kind := f.svc.Serve, "starttls"
		if i >= f.plain {
			serve, kind = f.svc.ServeDirectTLS, "direct_tls"
		}
		f.serving.Add(1)
		go func() {
			defer f.serving.Done()
			if err := serve(l); err != nil && !errors.Is(err, s2s.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				f.log.Error("federation: s2s listener stopped", "addr", l.Addr().String(), "err", err)
			}
		}()
		f.log.Info("federation: s2s listening", "addr", l.Addr().String(), "kind", kind)
	}
	return (*listeners)(f), nil
}

// listeners is what Listen returns: the server closes it when Start
// fails after it opened.
type listeners Federation

// Addrs are the addresses of every s2s listener.
func (l *listeners) Addrs() []net.Addr {
	f := (*Federation)(l)
	return append(f.Addrs(), f.DirectTLSAddrs()...)
}

// Close closes the s2s listeners; Shutdown ends their streams.
func (l *listeners) Close() error {
	f := (*Federation)(l)
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	for _, ln := range f.listeners {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Shutdown ends federation: its listeners, then its streams (what waits
// for a remote server bounces), while ctx allows.
func (f *Federation) Shutdown(ctx context.Context) error {
	err := f.svc.Shutdown(ctx)
	f.serving.Wait()
	return err
}

// Metrics writes federation's metrics, when it runs: streams
// open, stanzas carried, how streams authenticated, pings and the
// per-domain limit's refusals.
func (f *Federation) Metrics(w io.Writer) {
	out, in := f.svc.Streams()
	sin, sout := f.svc.Stanzas()
	st := f.svc.Stats()
	fmt.Fprintf(w, "# HELP parley_s2s_streams Server-to-server streams open or opening, by direction.\n"+
		"# TYPE parley_s2s_streams gauge\n"+
		"parley_s2s_streams{direction=\"out\"} %d\nparley_s2s_streams{direction=\"in\"} %d\n", out, in)
	fmt.Fprintf(w, "# HELP parley_s2s_stanzas_total Stanzas inbound streams routed and outbound streams wrote.\n"+
		"# TYPE parley_s2s_stanzas_total counter\n"+
		"parley_s2s_stanzas_total{direction=\"in\"} %d\nparley_s2s_stanzas_total{direction=\"out\"} %d\n", sin, sout)
	fmt.Fprintf(w, "# HELP parley_s2s_authenticated_total Domain pairs authenticated on server streams, by direction and method.\n"+
		"# TYPE parley_s2s_authenticated_total counter\n"+
		"parley_s2s_authenticated_total{direction=\"out\",method=\"external\"} %d\n"+
		"parley_s2s_authenticated_total{direction=\"out\",method=\"dialback\"} %d\n"+
		"parley_s2s_authenticated_total{direction=\"in\",method=\"external\"} %d\n"+
		"parley_s2s_authenticated_total{direction=\"in\",method=\"dialback\"} %d\n",
		st.OutExternal, st.OutDialback, st.InExternal, st.InDialback)
	fmt.Fprintf(w, "# HELP parley_s2s_pings_total XEP-0199 pings of idle outbound streams, sent and answered.\n"+
		"# TYPE parley_s2s_pings_total counter\n"+
		"parley_s2s_pings_total{result=\"sent\"} %d\nparley_s2s_pings_total{result=\"answered\"} %d\n",
		st.PingsSent, st.PingsAnswered)
	fmt.Fprintf(w, "# HELP parley_s2s_dead_peers_total Outbound streams closed for a ping not answered.\n"+
		"# TYPE parley_s2s_dead_peers_total counter\nparley_s2s_dead_peers_total %d\n", st.DeadPeers)
	fmt.Fprintf(w, "# HELP parley_s2s_refused_streams_total Inbound streams refused by a limit.\n"+
		"# TYPE parley_s2s_refused_streams_total counter\n"+
		"parley_s2s_refused_streams_total{limit=\"max_streams_per_domain\"} %d\n", st.StreamsRefused)
}

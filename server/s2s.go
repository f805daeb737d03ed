package server

import (
	"crypto/x509"
	"fmt"
	"io"
	"os"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/s2s"
	"github.com/parley-im/parley/xmpp"
)

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

// newS2S builds federation when [s2s] listen is set: the router sends it
// what no host serves. Without a listener there is none, since remote
// servers verify this server's dialback keys on it.
func (s *Server) newS2S(limits xmpp.Limits) error {
	c := s.cfg.S2S
	if len(c.Listen) == 0 {
		return nil
	}
	var roots *x509.CertPool
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return fmt.Errorf("s2s.ca_file: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("s2s.ca_file: %s holds no PEM certificate", c.CAFile)
		}
	}
	svc, err := s2s.New(s2s.Config{
		Router:              s.router,
		TLS:                 s.certs.TLSConfig(),
		Certificate:         s.certs.Certificate,
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
		Limits:              limits,
		Logger:              s.log,
	})
	if err != nil {
		return err
	}
	s.s2s = svc
	s.router.SetRemote(svc)
	return nil
}

// writeS2SMetrics writes federation's metrics, when it runs: streams
// open, stanzas carried, how streams authenticated, pings and the
// per-domain limit's refusals.
func (s *Server) writeS2SMetrics(w io.Writer) {
	if s.s2s == nil {
		return
	}
	out, in := s.s2s.Streams()
	sin, sout := s.s2s.Stanzas()
	st := s.s2s.Stats()
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

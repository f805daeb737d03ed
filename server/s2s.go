package server

import (
	"crypto/x509"
	"fmt"
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
		Router:            s.router,
		TLS:               s.certs.TLSConfig(),
		Certificate:       s.certs.Certificate,
		Roots:             roots,
		Routes:            c.StaticRoutes,
		RequireTLS:        c.RequireTLS,
		RequireValidCerts: c.RequireValidCerts,
		Allow:             c.Allow,
		Deny:              c.Deny,
		ConnectTimeout:    c.ConnectTimeout.Duration,
		IdleTimeout:       c.IdleTimeout.Duration,
		Limits:            limits,
		Logger:            s.log,
	})
	if err != nil {
		return err
	}
	s.s2s = svc
	s.router.SetRemote(svc)
	return nil
}

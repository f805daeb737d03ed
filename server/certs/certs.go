package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Store holds one certificate per host and picks one by SNI. It is safe for
// concurrent use; a handshake only takes a read lock.
type Store struct {
	mu    sync.RWMutex
	certs map[string]*tls.Certificate // by host, lower case
	hosts []string                    // in the order they were first added

	// now is the clock for generating certificates and judging their
	// expiry; tests set it.
	now func() time.Time
	// log receives the warnings of LoadOrCreate; nil means slog.Default().
	log *slog.Logger
}

// SetLogger sends the Store's warnings (a generated certificate replaced)
// to l. Call it before LoadOrCreate.
func (s *Store) SetLogger(l *slog.Logger) { s.log = l }

// logger returns the Store's logger.
func (s *Store) logger() *slog.Logger {
	if s.log == nil {
		return slog.Default()
	}
	return s.log
}

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{certs: make(map[string]*tls.Certificate), now: time.Now}
}

// Add makes cert the certificate of host, replacing any it had. When
// cert.Leaf is nil Add parses it from cert.Certificate[0], so that
// [Store.Certificate] callers can read the leaf (for example its DER, for
// SCRAM's tls-server-end-point channel binding). The first host added is
// the one that clients without SNI get.
func (s *Store) Add(host string, cert *tls.Certificate) {
	if cert.Leaf == nil && len(cert.Certificate) > 0 {
		if leaf, err := x509.ParseCertificate(cert.Certificate[0]); err == nil {
			cert.Leaf = leaf
		}
	}
	host = normalize(host)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.certs[host]; !ok {
		s.hosts = append(s.hosts, host)
	}
	s.certs[host] = cert
}

// Certificate returns the certificate for host: the host's own, else that
// of its parent domain when it covers host (through a *.parent name), else
// the first other certificate that names host. Host names are compared
// without case and without a trailing dot.
func (s *Store) Certificate(host string) (*tls.Certificate, bool) {
	host = normalize(host)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if c, ok := s.certs[host]; ok {
		return c, true
	}
	if _, parent, ok := strings.Cut(host, "."); ok {
		if c, ok := s.certs[parent]; ok && covers(c, host) {
			return c, true
		}
	}
	for _, h := range s.hosts {
		if c := s.certs[h]; covers(c, host) {
			return c, true
		}
	}
	return nil, false
}

// GetCertificate returns the certificate for the client's SNI, or the first
// added host's certificate when the client sent none or one the Store does
// not know. It is meant for [tls.Config.GetCertificate].
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello.ServerName != "" {
		if c, ok := s.Certificate(hello.ServerName); ok {
			return c, nil
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.hosts) == 0 {
		return nil, fmt.Errorf("certs: no certificate for %q: the store is empty", hello.ServerName)
	}
	return s.certs[s.hosts[0]], nil
}

// tls12Suites are the TLS 1.2 cipher suites a server accepts: forward
// secret (ECDHE) with an AEAD cipher, for ECDSA and RSA certificates (a
// user's tls_cert may be either). The CBC suites Go still enables by
// default (ECDHE-*-AES128-SHA, AES256-SHA...) are left out: their
// MAC-then-encrypt construction is the one Lucky13-style padding oracles
// attack, and every client that speaks TLS 1.2 has GCM. TLS 1.3 suites are
// not configurable in Go and are all AEAD.
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// TLSConfig returns a server configuration that takes its certificates from
// s, accepts TLS 1.3 and TLS 1.2 with ECDHE and AEAD ciphers only, and
// offers nextProtos for ALPN (for example "xmpp-client" on a direct TLS
// port).
func (s *Store) TLSConfig(nextProtos ...string) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   append([]uint16(nil), tls12Suites...),
		GetCertificate: s.GetCertificate,
		NextProtos:     append([]string(nil), nextProtos...),
	}
}

// CertPool returns a pool that trusts every self-signed certificate s holds,
// for clients (in tests, or a CLI talking to a local server) that have to
// verify a server using generated certificates. Certificates issued by a CA
// are left out: trust those through the CA.
func (s *Store) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, h := range s.hosts {
		if leaf := s.certs[h].Leaf; leaf != nil && selfSigned(leaf) {
			pool.AddCert(leaf)
		}
	}
	return pool
}

// normalize returns host in the form the Store keys it by.
func normalize(host string) string {
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

// covers reports whether c's leaf is valid for host.
func covers(c *tls.Certificate, host string) bool {
	return c.Leaf != nil && c.Leaf.VerifyHostname(host) == nil
}

// selfSigned reports whether c is signed by its own key.
func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) &&
		c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

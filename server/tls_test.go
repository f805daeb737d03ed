package server_test

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/parley-im/parley/parleytest"
)

// TestDirectTLSSuites: the c2s listeners take their TLS configuration from
// the certificate store: TLS 1.3, and TLS 1.2 with ECDHE and AEAD only.
func TestDirectTLSSuites(t *testing.T) {
	s := parleytest.Start(t)
	tests := []struct {
		name    string
		version uint16
		suite   uint16 // the only TLS 1.2 suite offered; 0: Go's defaults
		ok      bool
	}{
		{"TLS 1.3", tls.VersionTLS13, 0, true},
		{"TLS 1.2 ECDHE-ECDSA-AES128-GCM-SHA256", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, true},
		{"TLS 1.2 ECDHE-ECDSA-CHACHA20-POLY1305", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, true},
		{"TLS 1.2 ECDHE-ECDSA-AES128-SHA (CBC)", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, false},
		{"TLS 1.2 ECDHE-ECDSA-AES256-SHA (CBC)", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := s.TLSConfig(s.Domain)
			cfg.MaxVersion = tt.version
			cfg.NextProtos = []string{"xmpp-client"}
			if tt.suite != 0 {
				cfg.CipherSuites = []uint16{tt.suite}
			}
			d := &net.Dialer{Timeout: 10 * time.Second}
			c, err := tls.DialWithDialer(d, "tcp", s.DirectTLSAddr, cfg)
			if err == nil {
				defer c.Close()
			}
			if (err == nil) != tt.ok {
				t.Fatalf("handshake error %v; want success %v", err, tt.ok)
			}
			if tt.ok && c.ConnectionState().Version != tt.version {
				t.Errorf("version %x, want %x", c.ConnectionState().Version, tt.version)
			}
		})
	}
}

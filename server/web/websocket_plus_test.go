package web_test

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"hash"
	"net/http"
	"slices"
	"testing"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
)

// TestWebSocketSCRAMPlus logs in over wss:// with SCRAM-*-PLUS bound to the
// HTTPS connection the WebSocket came over, as over c2s TLS: each binding
// type the stream lists works, and a binding to any other TLS connection
// is refused.
func TestWebSocketSCRAMPlus(t *testing.T) {
	exporter := func(t *testing.T, cs *tls.ConnectionState) []byte {
		b, err := cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// RFC 5929 §4.1: the certificate's hash, with SHA-256 for MD5 and
	// SHA-1.
	endPoint := func(_ *testing.T, cs *tls.ConnectionState) []byte {
		cert := cs.PeerCertificates[0]
		var h hash.Hash
		switch cert.SignatureAlgorithm {
		case x509.SHA384WithRSA, x509.ECDSAWithSHA384, x509.SHA384WithRSAPSS:
			h = sha512.New384()
		case x509.SHA512WithRSA, x509.ECDSAWithSHA512, x509.SHA512WithRSAPSS:
			h = sha512.New()
		default:
			h = sha256.New()
		}
		h.Write(cert.Raw)
		return h.Sum(nil)
	}
	s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) {
		c.HTTP.TLS = true
		c.Auth.ChannelBinding = conf.ChannelBindingStrict
	}))
	s.AddUser("alice@localhost", "secret")
	dial := func(t *testing.T) (*parleytest.Conn, *tls.ConnectionState) {
		c, resp, err := s.DialWebSocketWith(parleytest.WSOptions{TLS: s.TLSConfig("localhost")})
		if err != nil {
			t.Fatal(err)
		}
		if resp.TLS == nil {
			t.Fatal("the WebSocket did not come over TLS")
		}
		c.Open("localhost")
		return c, resp.TLS
	}
	t.Run("features_list_plus_and_both_bindings", func(t *testing.T) {
		c, _ := dial(t)
		var mechs, bindings []string
		for _, m := range c.Features.FindElements("mechanisms/mechanism") {
			mechs = append(mechs, m.Text())
		}
		for _, b := range c.Features.FindElements("sasl-channel-binding/channel-binding") {
			bindings = append(bindings, b.SelectAttrValue("type", ""))
		}
		wantMechs := []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"}
		wantBindings := []string{"tls-exporter", "tls-server-end-point"}
		if !slices.Equal(mechs, wantMechs) || !slices.Equal(bindings, wantBindings) {
			t.Errorf("over wss: mechanisms %q, bindings %q; want %q, %q (as over c2s TLS)", mechs, bindings, wantMechs, wantBindings)
		}
	})
	for _, tc := range []struct {
		name, mechanism, flag string
		cb                    func(t *testing.T, own *tls.ConnectionState) []byte
		want                  string
	}{
		{"SCRAM-SHA-256-PLUS_with_tls-exporter_logs_in", "SCRAM-SHA-256-PLUS", "p=tls-exporter",
			func(t *testing.T, own *tls.ConnectionState) []byte { return exporter(t, own) }, "success"},
		{"SCRAM-SHA-1-PLUS_with_tls-exporter_logs_in", "SCRAM-SHA-1-PLUS", "p=tls-exporter",
			func(t *testing.T, own *tls.ConnectionState) []byte { return exporter(t, own) }, "success"},
		{"SCRAM-SHA-256-PLUS_with_tls-server-end-point_logs_in", "SCRAM-SHA-256-PLUS", "p=tls-server-end-point",
			func(t *testing.T, own *tls.ConnectionState) []byte { return endPoint(t, own) }, "success"},
		{"the_exporter_of_another_wss_connection_is_not_authorized", "SCRAM-SHA-256-PLUS", "p=tls-exporter",
			func(t *testing.T, _ *tls.ConnectionState) []byte {
				// What a man in the middle would have: a TLS connection
				// of its own to the server.
				_, other := dial(t)
				return exporter(t, other)
			}, "not-authorized"},
		{"y_where_plus_is_offered_is_refused_as_a_downgrade", "SCRAM-SHA-256", "y", nil, "not-authorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, own := dial(t)
			var cb []byte
			if tc.cb != nil {
				cb = tc.cb(t, own)
			}
			if el := c.AuthSCRAM(tc.mechanism, "alice", "secret", tc.flag, cb); outcome(el) != tc.want {
				t.Fatalf("got %s, want %s", c.String(el), tc.want)
			}
		})
	}
}

// TestWebSocketPlusNotThroughProxies: the TLS a forwarded request came
// over is the proxy's, not the client's, so no binding is offered there;
// nor on plain ws:// from loopback, which has no TLS at all.
func TestWebSocketPlusNotThroughProxies(t *testing.T) {
	s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) {
		c.HTTP.TLS = true
		c.HTTP.TrustForwarded = true
		c.Auth.ChannelBinding = conf.ChannelBindingStrict
	}))
	plain := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) {
		c.Auth.ChannelBinding = conf.ChannelBindingStrict
	}))
	for _, tc := range []struct {
		name string
		s    *parleytest.Server
		o    parleytest.WSOptions
	}{
		{"through_a_trusted_proxy", s, parleytest.WSOptions{TLS: s.TLSConfig("localhost"),
			Header: http.Header{"X-Forwarded-For": {"192.0.2.7"}, "X-Forwarded-Proto": {"https"}}}},
		{"plain_ws_from_loopback", plain, parleytest.WSOptions{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := tc.s.DialWebSocketWith(tc.o)
			if err != nil {
				t.Fatal(err)
			}
			c.Open("localhost")
			for _, m := range c.Features.FindElements("mechanisms/mechanism") {
				if m.Text() == "SCRAM-SHA-256-PLUS" || m.Text() == "SCRAM-SHA-1-PLUS" {
					t.Errorf("%s offered", m.Text())
				}
			}
			if el := c.Features.FindElement("sasl-channel-binding"); el != nil {
				t.Errorf("channel bindings listed: %s", c.String(el))
			}
			if len(c.Features.FindElements("mechanisms/mechanism")) == 0 {
				t.Error("no mechanism at all: the stream should still log in with SCRAM")
			}
		})
	}
}

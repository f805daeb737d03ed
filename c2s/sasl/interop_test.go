package sasl

import (
	"context"
	"crypto/elliptic"
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	msasl "mellium.im/sasl"
)

// exchange runs a whole exchange between a mellium.im/sasl client and a
// Server, as the c2s stream would carry it.
func exchange(ctx context.Context, client *msasl.Negotiator, s *Server) error {
	more, resp, err := client.Step(nil)
	if err != nil {
		return err
	}
	for {
		out, done, err := s.Step(ctx, resp)
		if err != nil {
			return err
		}
		if done {
			if more {
				// The client checks the additional data of <success/>.
				if more, _, err = client.Step(out); err != nil {
					return err
				}
			}
			if more {
				return errShort
			}
			return nil
		}
		if !more {
			return errShort
		}
		if more, resp, err = client.Step(out); err != nil {
			return err
		}
	}
}

var errShort = errors.New("the client stopped before the server was done")

func TestMelliumClient(t *testing.T) {
	tls13 := handshake(t, tls.VersionTLS13, elliptic.P256())
	tls12 := handshake(t, tls.VersionTLS12, elliptic.P256())
	// Another connection, as a man in the middle would have with the
	// client.
	other13 := handshake(t, tls.VersionTLS13, elliptic.P384())

	for _, tc := range []struct {
		name      string
		mechanism msasl.Mechanism
		pair      *tlsPair // the stream's TLS, nil for none
		clientTLS *tlsPair // the client's TLS when it is not the stream's
		cert      bool     // set Config.ServerCert
		remote    bool     // tell the client what the server offers
		user      string
		password  string
		authzid   string
		want      string // failure condition, "" for success
		noCB      bool   // leave Config.ChannelBinding off
	}{
		{
			name:      "a client that can bind, told the mechanisms of a stream without channel binding, sends y and authenticates",
			mechanism: msasl.ScramSha256, pair: &tls13, cert: true, remote: true, noCB: true,
		},
		{
			name:      "a SCRAM-SHA-1 client that can bind, on a stream without channel binding, authenticates",
			mechanism: msasl.ScramSha1, pair: &tls13, noCB: true,
		},
		{name: "SCRAM-SHA-1 without TLS authenticates", mechanism: msasl.ScramSha1},
		{name: "SCRAM-SHA-256 without TLS authenticates", mechanism: msasl.ScramSha256},
		{name: "SCRAM-SHA-256 over TLS 1.3 authenticates", mechanism: msasl.ScramSha256, pair: &tls13, remote: true},
		{name: "SCRAM-SHA-1-PLUS over TLS 1.3 binds with tls-exporter", mechanism: msasl.ScramSha1Plus, pair: &tls13, remote: true},
		{name: "SCRAM-SHA-256-PLUS over TLS 1.3 binds with tls-exporter", mechanism: msasl.ScramSha256Plus, pair: &tls13, remote: true},
		{name: "SCRAM-SHA-256-PLUS binds with tls-exporter when end-point is offered too", mechanism: msasl.ScramSha256Plus, pair: &tls13, cert: true, remote: true},
		{name: "PLAIN over TLS authenticates", mechanism: msasl.Plain, pair: &tls13},
		{name: "PLAIN with the user's JID as authzid authenticates", mechanism: msasl.Plain, pair: &tls13, authzid: "user@example.org"},
		{name: "SCRAM with the user's JID as authzid authenticates", mechanism: msasl.ScramSha256, authzid: "user@example.org"},

		{name: "SCRAM-SHA-256 with a wrong password is not authorized", mechanism: msasl.ScramSha256, password: "pencil2", want: condNotAuthorized},
		{name: "SCRAM-SHA-256-PLUS with a wrong password is not authorized", mechanism: msasl.ScramSha256Plus, pair: &tls13, remote: true, password: "x", want: condNotAuthorized},
		{name: "SCRAM-SHA-1 for an unknown user is not authorized", mechanism: msasl.ScramSha1, user: "nobody", want: condNotAuthorized},
		{name: "PLAIN with a wrong password is not authorized", mechanism: msasl.Plain, pair: &tls13, password: "pencil2", want: condNotAuthorized},
		{name: "PLAIN for an unknown user is not authorized", mechanism: msasl.Plain, pair: &tls13, user: "nobody", want: condNotAuthorized},
		{name: "SCRAM with another user's JID as authzid is refused", mechanism: msasl.ScramSha256, authzid: "admin@example.org", want: condInvalidAuthzid},
		{
			name:      "a -PLUS client that is not told the server's mechanisms sends y and is refused",
			mechanism: msasl.ScramSha256Plus, pair: &tls13, want: condMalformedRequest,
		},
		{
			name:      "a -PLUS client on TLS 1.2 binds with tls-unique, which is not supported",
			mechanism: msasl.ScramSha256Plus, pair: &tls12, cert: true, remote: true, want: condNotAuthorized,
		},
		{
			name:      "a -PLUS client whose TLS connection is not the server's is not authorized",
			mechanism: msasl.ScramSha256Plus, pair: &tls13, clientTLS: &other13, remote: true, want: condNotAuthorized,
		},
		{
			name:      "a SCRAM client told of -PLUS but using plain SCRAM sends n and authenticates",
			mechanism: msasl.ScramSha1, pair: &tls13, remote: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Lookup: newAccounts(t).lookup, Host: testHost, AllowPlain: true, ChannelBinding: !tc.noCB}
			var opts []msasl.Option
			if tc.pair != nil {
				cfg.TLS = &tc.pair.server
				if tc.cert {
					cfg.ServerCert = tc.pair.cert
				}
				clientTLS := tc.pair.client
				if tc.clientTLS != nil {
					clientTLS = tc.clientTLS.client
				}
				opts = append(opts, msasl.TLSState(clientTLS))
			}
			if tc.remote {
				opts = append(opts, msasl.RemoteMechanisms(cfg.Mechanisms()...))
			}
			user, password := tc.user, tc.password
			if user == "" {
				user = testUser
			}
			if password == "" {
				password = testPassword
			}
			opts = append(opts, msasl.Credentials(func() ([]byte, []byte, []byte) {
				return []byte(user), []byte(password), []byte(tc.authzid)
			}))
			client := msasl.NewClient(tc.mechanism, opts...)

			s, err := cfg.NewServer(tc.mechanism.Name)
			if err != nil {
				t.Fatalf("NewServer(%s): %v (offered: %s)", tc.mechanism.Name, err, strings.Join(cfg.Mechanisms(), " "))
			}
			err = exchange(context.Background(), client, s)
			if got := condition(err); got != tc.want {
				t.Fatalf("exchange: %v, want %q", err, tc.want)
			}
			if tc.want == "" && s.Username() != testUser {
				t.Errorf("Username() = %q, want %q", s.Username(), testUser)
			}
		})
	}
}

// TestMelliumClientBindsWithTLSExporter checks that the first message of
// mellium's -PLUS client on TLS 1.3 asks for tls-exporter, which is what
// the exchanges above depend on.
func TestMelliumClientBindsWithTLSExporter(t *testing.T) {
	tls13 := handshake(t, tls.VersionTLS13, elliptic.P256())
	tls12 := handshake(t, tls.VersionTLS12, elliptic.P256())
	for _, tc := range []struct {
		name string
		cs   tls.ConnectionState
		want string
	}{
		{"TLS 1.3 gives tls-exporter", tls13.client, "p=tls-exporter,"},
		{"TLS 1.2 gives tls-unique", tls12.client, "p=tls-unique,"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := msasl.NewClient(msasl.ScramSha256Plus,
				msasl.TLSState(tc.cs),
				msasl.RemoteMechanisms(SCRAMSHA256Plus),
				msasl.Credentials(func() ([]byte, []byte, []byte) { return []byte("u"), []byte("p"), nil }))
			_, first, err := c.Step(nil)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(first), tc.want) {
				t.Errorf("first message %q, want it to start with %q", first, tc.want)
			}
		})
	}
}

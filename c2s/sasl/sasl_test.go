package sasl

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/big"
	"slices"
	"testing"

	"github.com/parley-im/parley/storage"
)

func TestMechanisms(t *testing.T) {
	tls13 := handshake(t, tls.VersionTLS13, elliptic.P256())
	tls12 := handshake(t, tls.VersionTLS12, elliptic.P384())
	lookup := newAccounts(t).lookup
	all := []string{SCRAMSHA256Plus, SCRAMSHA1Plus, SCRAMSHA256, SCRAMSHA1}

	for _, tc := range []struct {
		name     string
		cfg      Config
		mechs    []string
		bindings []string
	}{
		{
			name:  "a stream without TLS offers plain SCRAM only",
			cfg:   Config{Lookup: lookup},
			mechs: []string{SCRAMSHA256, SCRAMSHA1},
		},
		{
			name:  "a stream without TLS never offers PLAIN",
			cfg:   Config{Lookup: lookup, AllowPlain: true, ServerCert: tls13.cert},
			mechs: []string{SCRAMSHA256, SCRAMSHA1},
		},
		{
			name:     "TLS 1.3 offers -PLUS with tls-exporter",
			cfg:      Config{Lookup: lookup, TLS: &tls13.server, ChannelBinding: true},
			mechs:    all,
			bindings: []string{TLSExporter},
		},
		{
			name:     "TLS 1.3 with AllowPlain offers PLAIN last",
			cfg:      Config{Lookup: lookup, TLS: &tls13.server, AllowPlain: true, ChannelBinding: true},
			mechs:    append(slices.Clone(all), Plain),
			bindings: []string{TLSExporter},
		},
		{
			name:     "TLS 1.3 with the certificate offers both bindings",
			cfg:      Config{Lookup: lookup, TLS: &tls13.server, ServerCert: tls13.cert, ChannelBinding: true},
			mechs:    all,
			bindings: []string{TLSExporter, TLSServerEndPoint},
		},
		{
			name:  "TLS 1.2 without the certificate has no channel binding",
			cfg:   Config{Lookup: lookup, TLS: &tls12.server, AllowPlain: true, ChannelBinding: true},
			mechs: []string{SCRAMSHA256, SCRAMSHA1, Plain},
		},
		{
			name:     "TLS 1.2 with the certificate offers tls-server-end-point",
			cfg:      Config{Lookup: lookup, TLS: &tls12.server, ServerCert: tls12.cert, ChannelBinding: true},
			mechs:    all,
			bindings: []string{TLSServerEndPoint},
		},
		{
			name:  "a certificate that does not parse gives no binding",
			cfg:   Config{Lookup: lookup, TLS: &tls12.server, ServerCert: []byte("not DER"), ChannelBinding: true},
			mechs: []string{SCRAMSHA256, SCRAMSHA1},
		},
		{
			name:  "an Ed25519 certificate has no tls-server-end-point",
			cfg:   Config{Lookup: lookup, TLS: &tls12.server, ServerCert: ed25519Cert(t), ChannelBinding: true},
			mechs: []string{SCRAMSHA256, SCRAMSHA1},
		},
		{
			name:  "without ChannelBinding TLS 1.3 with the certificate offers no -PLUS (slixmpp picks -PLUS whenever offered)",
			cfg:   Config{Lookup: lookup, TLS: &tls13.server, ServerCert: tls13.cert, AllowPlain: true},
			mechs: []string{SCRAMSHA256, SCRAMSHA1, Plain},
		},
		{
			name:  "without ChannelBinding TLS 1.2 with the certificate offers no -PLUS",
			cfg:   Config{Lookup: lookup, TLS: &tls12.server, ServerCert: tls12.cert},
			mechs: []string{SCRAMSHA256, SCRAMSHA1},
		},
		{
			name:  "a handshake that is not complete gives no binding",
			cfg:   Config{Lookup: lookup, TLS: &tls.ConnectionState{Version: tls.VersionTLS13}, ChannelBinding: true},
			mechs: []string{SCRAMSHA256, SCRAMSHA1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.cfg.Mechanisms(); !slices.Equal(got, tc.mechs) {
				t.Errorf("Mechanisms() = %q, want %q", got, tc.mechs)
			}
			if got := tc.cfg.ChannelBindings(); !slices.Equal(got, tc.bindings) {
				t.Errorf("ChannelBindings() = %q, want %q", got, tc.bindings)
			}
		})
	}
}

func ed25519Cert(tb testing.TB) []byte {
	tb.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{testHost}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

func TestNewServer(t *testing.T) {
	tls13 := handshake(t, tls.VersionTLS13, elliptic.P256())
	lookup := newAccounts(t).lookup
	for _, tc := range []struct {
		name      string
		cfg       Config
		mechanism string
		want      string
	}{
		{"an offered mechanism starts", Config{Lookup: lookup}, SCRAMSHA256, ""},
		{"an unknown mechanism is invalid", Config{Lookup: lookup}, "DIGEST-MD5", condInvalidMechanism},
		{"mechanism names are case-sensitive", Config{Lookup: lookup}, "scram-sha-256", condInvalidMechanism},
		{"-PLUS without TLS is invalid", Config{Lookup: lookup}, SCRAMSHA256Plus, condInvalidMechanism},
		{"PLAIN without AllowPlain is invalid", Config{Lookup: lookup, TLS: &tls13.server}, Plain, condInvalidMechanism},
		{"PLAIN without TLS or AllowPlain is invalid", Config{Lookup: lookup}, Plain, condInvalidMechanism},
		{"PLAIN without TLS but allowed needs encryption", Config{Lookup: lookup, AllowPlain: true}, Plain, condEncryptionRequired},
		{"PLAIN with TLS and AllowPlain starts", Config{Lookup: lookup, TLS: &tls13.server, AllowPlain: true}, Plain, ""},
		{"a config without Lookup is a temporary failure", Config{}, SCRAMSHA256, condTemporaryFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tc.cfg.NewServer(tc.mechanism)
			if got := condition(err); got != tc.want {
				t.Fatalf("NewServer(%q): %v, want %q", tc.mechanism, err, tc.want)
			}
			if (s == nil) != (err != nil) {
				t.Errorf("NewServer(%q) = %v, %v", tc.mechanism, s, err)
			}
		})
	}
}

func TestPlain(t *testing.T) {
	tls13 := handshake(t, tls.VersionTLS13, elliptic.P256())
	onlySHA1 := newAccounts(t)
	acct := onlySHA1.byName[testUser]
	acct.SHA256 = storage.SCRAMKey{}
	onlySHA1.byName[testUser] = acct
	nbsp := newAccounts(t)
	acct = nbsp.byName[testUser]
	acct.SHA256 = mustKey(t, sha256.New, "pen cil", "sha256-salt-16by", testIterations)
	nbsp.byName[testUser] = acct

	for _, tc := range []struct {
		name     string
		accounts *accounts
		msg      string
		want     string
	}{
		{name: "the right password authenticates", msg: "\x00user\x00pencil"},
		{name: "the username is normalized", msg: "\x00USER\x00pencil"},
		{name: "the user's own JID as authzid is accepted", msg: "user@example.org\x00user\x00pencil"},
		{name: "an account with only a SHA-1 key is checked against it", accounts: onlySHA1, msg: "\x00user\x00pencil"},
		{name: "the password is prepared with OpaqueString", accounts: nbsp, msg: "\x00user\x00pen\u00a0cil"},

		{name: "a wrong password is not authorized", msg: "\x00user\x00pencil2", want: condNotAuthorized},
		{name: "a wrong password against a SHA-1 key is not authorized", accounts: onlySHA1, msg: "\x00user\x00pencil2", want: condNotAuthorized},
		{name: "an unknown user is not authorized", msg: "\x00nobody\x00pencil", want: condNotAuthorized},
		{name: "a username PRECIS refuses is not authorized", msg: "\x00us er\x00pencil", want: condNotAuthorized},
		{name: "another user's authzid is refused", msg: "admin@example.org\x00user\x00pencil", want: condInvalidAuthzid},
		{name: "a bare username as authzid is refused", msg: "user\x00user\x00pencil", want: condInvalidAuthzid},
		{name: "an empty message is malformed", msg: "", want: condMalformedRequest},
		{name: "a message without NULs is malformed", msg: "userpencil", want: condMalformedRequest},
		{name: "a message with one NUL is malformed", msg: "user\x00pencil", want: condMalformedRequest},
		{name: "a message with three NULs is malformed", msg: "\x00user\x00pen\x00cil", want: condMalformedRequest},
		{name: "an empty username is malformed", msg: "\x00\x00pencil", want: condMalformedRequest},
		{name: "an empty password is malformed", msg: "\x00user\x00", want: condMalformedRequest},
		{name: "a message that is not UTF-8 is malformed", msg: "\x00user\x00pen\xffcil", want: condMalformedRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.accounts
			if a == nil {
				a = newAccounts(t)
			}
			cfg := Config{Lookup: a.lookup, Host: testHost, TLS: &tls13.server, AllowPlain: true}
			s, err := cfg.NewServer(Plain)
			if err != nil {
				t.Fatal(err)
			}
			out, done, err := s.Step(context.Background(), []byte(tc.msg))
			if got := condition(err); got != tc.want {
				t.Fatalf("Step: %v, want %q", err, tc.want)
			}
			if len(out) != 0 || done != (tc.want == "") {
				t.Errorf("Step = %q, %v", out, done)
			}
			wantUser := ""
			if tc.want == "" {
				wantUser = testUser
			}
			if got := s.Username(); got != wantUser {
				t.Errorf("Username() = %q, want %q", got, wantUser)
			}
		})
	}
}

func TestNewKey(t *testing.T) {
	tls13 := handshake(t, tls.VersionTLS13, elliptic.P256())
	for _, tc := range []struct {
		name       string
		password   string
		iterations int
		wantErr    bool
	}{
		{"a password gives a key", "pencil", testIterations, false},
		{"a non-ASCII password gives a key", "crème brûlée", testIterations, false},
		{"an empty password is an error", "", testIterations, true},
		{"a password OpaqueString refuses is an error", "pen\u0007cil", testIterations, true},
		{"zero iterations is an error", "pencil", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k1, k256, err := NewKeys(tc.password, tc.iterations)
			if (err != nil) != tc.wantErr {
				t.Fatalf("NewKeys: %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			for _, k := range []struct {
				key  storage.SCRAMKey
				size int
			}{{k1, sha1.Size}, {k256, sha256.Size}} {
				if len(k.key.Salt) < 16 || k.key.Iterations != tc.iterations ||
					len(k.key.StoredKey) != k.size || len(k.key.ServerKey) != k.size {
					t.Errorf("key %+v", k.key)
				}
			}
			if string(k1.Salt) == string(k256.Salt) {
				t.Error("both keys have the same salt")
			}
			// The keys work, for PLAIN and for SCRAM.
			a := &accounts{byName: map[string]storage.Account{testUser: {SHA1: k1, SHA256: k256}}}
			cfg := Config{Lookup: a.lookup, TLS: &tls13.server, AllowPlain: true}
			s, err := cfg.NewServer(Plain)
			if err != nil {
				t.Fatal(err)
			}
			if _, done, err := s.Step(context.Background(), []byte("\x00user\x00"+tc.password)); !done || err != nil {
				t.Errorf("PLAIN with the password: %v, %v", done, err)
			}
			s, err = cfg.NewServer(SCRAMSHA1)
			if err != nil {
				t.Fatal(err)
			}
			first := "n,,n=user,r=" + testClientNonce
			serverFirst, _, err := s.Step(context.Background(), []byte(first))
			if err != nil {
				t.Fatal(err)
			}
			final, _, err := scramClient{newHash: sha1.New, password: tc.password, first: first}.final(string(serverFirst))
			if err != nil {
				t.Fatal(err)
			}
			if _, done, err := s.Step(context.Background(), []byte(final)); !done || err != nil {
				t.Errorf("SCRAM-SHA-1 with the password: %v, %v", done, err)
			}
		})
	}
}

func TestNewKeySaltsDiffer(t *testing.T) {
	a, err := NewKey(sha256.New, "pencil", 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewKey(sha256.New, "pencil", 1)
	if err != nil {
		t.Fatal(err)
	}
	if string(a.Salt) == string(b.Salt) || string(a.StoredKey) == string(b.StoredKey) {
		t.Error("two keys of one password are the same")
	}
}

func TestSignatureHash(t *testing.T) {
	for _, tc := range []struct {
		name string
		alg  x509.SignatureAlgorithm
		want crypto.Hash
	}{
		{"MD5 becomes SHA-256", x509.MD5WithRSA, crypto.SHA256},
		{"SHA-1 becomes SHA-256", x509.SHA1WithRSA, crypto.SHA256},
		{"ECDSA with SHA-1 becomes SHA-256", x509.ECDSAWithSHA1, crypto.SHA256},
		{"RSA with SHA-256 stays SHA-256", x509.SHA256WithRSA, crypto.SHA256},
		{"ECDSA with SHA-256 stays SHA-256", x509.ECDSAWithSHA256, crypto.SHA256},
		{"ECDSA with SHA-384 is SHA-384", x509.ECDSAWithSHA384, crypto.SHA384},
		{"RSA-PSS with SHA-384 is SHA-384", x509.SHA384WithRSAPSS, crypto.SHA384},
		{"RSA with SHA-512 is SHA-512", x509.SHA512WithRSA, crypto.SHA512},
		{"ECDSA with SHA-512 is SHA-512", x509.ECDSAWithSHA512, crypto.SHA512},
		{"Ed25519 has no hash", x509.PureEd25519, 0},
		{"an unknown algorithm has no hash", x509.UnknownSignatureAlgorithm, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := signatureHash(tc.alg)
			if got != tc.want || (err != nil) != (tc.want == 0) {
				t.Errorf("signatureHash(%v) = %v, %v; want %v", tc.alg, got, err, tc.want)
			}
		})
	}
}

func TestCertificateSignatureAlgorithm(t *testing.T) {
	// The tls-server-end-point cases of TestSCRAMExchange rely on Go
	// signing a P-384 certificate with ECDSA-SHA384.
	for _, tc := range []struct {
		name  string
		curve elliptic.Curve
		want  x509.SignatureAlgorithm
	}{
		{"a P-256 certificate is signed with SHA-256", elliptic.P256(), x509.ECDSAWithSHA256},
		{"a P-384 certificate is signed with SHA-384", elliptic.P384(), x509.ECDSAWithSHA384},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, err := x509.ParseCertificate(handshake(t, tls.VersionTLS12, tc.curve).cert)
			if err != nil {
				t.Fatal(err)
			}
			if cert.SignatureAlgorithm != tc.want {
				t.Errorf("signed with %v, want %v", cert.SignatureAlgorithm, tc.want)
			}
		})
	}
}

func TestChannelBindingData(t *testing.T) {
	tls13 := handshake(t, tls.VersionTLS13, elliptic.P256())
	for _, tc := range []struct {
		name    string
		cfg     Config
		cb      string
		want    []byte
		wantErr bool
	}{
		{"tls-exporter is the same on both ends", Config{TLS: &tls13.server}, TLSExporter, tls13.exporter(t), false},
		{"tls-server-end-point hashes the certificate", Config{TLS: &tls13.server, ServerCert: tls13.cert}, TLSServerEndPoint, sha256Of(tls13.cert), false},
		{"tls-unique is not supported", Config{TLS: &tls13.server}, "tls-unique", nil, true},
		{"a made-up ConnectionState has no exporter", Config{TLS: &tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true}}, TLSExporter, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cfg.channelBinding(tc.cb)
			if (err != nil) != tc.wantErr || string(got) != string(tc.want) {
				t.Errorf("channelBinding(%s) = %x, %v; want %x", tc.cb, got, err, tc.want)
			}
		})
	}
}

func sha256Of(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

func TestFailure(t *testing.T) {
	for _, tc := range []struct {
		name    string
		f       *Failure
		message string
		is      error
		isWant  bool
	}{
		{"a failure without text names its condition", &Failure{Condition: "not-authorized"}, "sasl: not-authorized", &Failure{Condition: "not-authorized"}, true},
		{"a failure with text names both", &Failure{Condition: "malformed-request", Text: "bad nonce"}, "sasl: malformed-request: bad nonce", &Failure{Condition: "malformed-request"}, true},
		{"errors.Is compares conditions only", &Failure{Condition: "not-authorized", Text: "x"}, "sasl: not-authorized: x", &Failure{Condition: "aborted"}, false},
		{"errors.Is does not match other errors", &Failure{Condition: "aborted"}, "sasl: aborted", errors.New("sasl: aborted"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.f.Error(); got != tc.message {
				t.Errorf("Error() = %q, want %q", got, tc.message)
			}
			var err error = tc.f
			if got := errors.Is(err, tc.is); got != tc.isWant {
				t.Errorf("errors.Is(%v, %v) = %v", err, tc.is, got)
			}
		})
	}
}

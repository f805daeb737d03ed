package sasl

import (
	"context"
	"crypto/elliptic"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/base64"
	"hash"
	"strings"
	"testing"

	"github.com/parley-im/parley/storage"
)

func TestSCRAMMatchesTheRFCExamples(t *testing.T) {
	for _, tc := range []struct {
		name        string
		mechanism   string
		newHash     func() hash.Hash
		salt        string
		clientFirst string
		serverNonce string
		serverFirst string
		clientFinal string
		serverFinal string
	}{{
		name:        "RFC 5802 §5 SCRAM-SHA-1",
		mechanism:   SCRAMSHA1,
		newHash:     sha1.New,
		salt:        "QSXCR+Q6sek8bf92",
		clientFirst: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
		serverNonce: "3rfcNHYJY1ZVvWVs7j",
		serverFirst: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
		clientFinal: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
		serverFinal: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
	}, {
		name:        "RFC 7677 §3 SCRAM-SHA-256",
		mechanism:   SCRAMSHA256,
		newHash:     sha256.New,
		salt:        "W22ZaJ0SNY7soEsUEjb6gQ==",
		clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
		serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
		serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		clientFinal: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			salt, err := base64.StdEncoding.DecodeString(tc.salt)
			if err != nil {
				t.Fatal(err)
			}
			key := mustKey(t, tc.newHash, "pencil", string(salt), 4096)
			acct := storage.Account{Host: testHost, Username: "user"}
			if tc.mechanism == SCRAMSHA1 {
				acct.SHA1 = key
			} else {
				acct.SHA256 = key
			}
			a := &accounts{byName: map[string]storage.Account{"user": acct}}
			s, err := Config{Lookup: a.lookup, Host: testHost}.NewServer(tc.mechanism)
			if err != nil {
				t.Fatal(err)
			}
			s.serverNonce = tc.serverNonce
			ctx := context.Background()

			out, done, err := s.Step(ctx, []byte(tc.clientFirst))
			if err != nil || done || string(out) != tc.serverFirst {
				t.Fatalf("first step = %q, %v, %v; want %q", out, done, err, tc.serverFirst)
			}
			out, done, err = s.Step(ctx, []byte(tc.clientFinal))
			if err != nil || !done || string(out) != tc.serverFinal {
				t.Fatalf("final step = %q, %v, %v; want %q", out, done, err, tc.serverFinal)
			}
			if got := s.Username(); got != "user" {
				t.Errorf("Username() = %q, want user", got)
			}
		})
	}
}

func TestSCRAMExchange(t *testing.T) {
	tls13 := handshake(t, tls.VersionTLS13, elliptic.P256())
	tls12 := handshake(t, tls.VersionTLS12, elliptic.P384())
	onTLS13 := func(c *Config) { c.TLS = &tls13.server }
	onTLS13WithCert := func(c *Config) { c.TLS, c.ServerCert = &tls13.server, tls13.cert }
	onTLS12WithCert := func(c *Config) { c.TLS, c.ServerCert = &tls12.server, tls12.cert }
	sha256Sum := func(b []byte) []byte { s := sha256.Sum256(b); return s[:] }
	sha384Sum := func(b []byte) []byte { s := sha512.Sum384(b); return s[:] }
	const r = ",r=" + testClientNonce

	for _, tc := range []struct {
		name      string
		stream    func(*Config) // sets up TLS on the stream
		mechanism string
		first     string
		password  string              // the client's; testPassword when empty
		cbData    []byte              // what the client binds to
		spoil     func(string) string // changes the client-final-message
		failAt    int                 // 0 when the exchange succeeds, else the step that fails
		want      string              // the failure condition
		noCB      bool                // leave Config.ChannelBinding off
	}{
		{
			name: "y passes on TLS 1.3 where channel binding is not offered (slixmpp forced to plain SCRAM)", stream: onTLS13WithCert,
			noCB: true, mechanism: SCRAMSHA256, first: "y,,n=user" + r,
		},
		{
			name: "y passes for SCRAM-SHA-1 where channel binding is not offered", stream: onTLS13WithCert,
			noCB: true, mechanism: SCRAMSHA1, first: "y,,n=user" + r,
		},
		{
			name: "n passes where channel binding is not offered", stream: onTLS13WithCert,
			noCB: true, mechanism: SCRAMSHA256, first: "n,,n=user" + r,
		},
		{name: "SHA-1 with the right password authenticates", mechanism: SCRAMSHA1, first: "n,,n=user" + r},
		{name: "SHA-256 with the right password authenticates", mechanism: SCRAMSHA256, first: "n,,n=user" + r},
		{name: "a username is normalized before lookup", mechanism: SCRAMSHA256, first: "n,,n=USER" + r},
		{name: "an unknown extension is ignored", mechanism: SCRAMSHA256, first: "n,,n=user" + r + ",x=whatever"},
		{name: "y is fine where no channel binding is offered", mechanism: SCRAMSHA256, first: "y,,n=user" + r},
		{name: "n is fine on an encrypted stream", stream: onTLS13, mechanism: SCRAMSHA256, first: "n,,n=user" + r},
		{name: "the user's own bare JID as authzid is accepted", mechanism: SCRAMSHA256, first: "n,a=user@example.org,n=user" + r},
		{name: "an authzid is normalized before it is compared", mechanism: SCRAMSHA256, first: "n,a=User@Example.ORG,n=user" + r},
		{
			name: "SHA-256-PLUS with tls-exporter authenticates", stream: onTLS13,
			mechanism: SCRAMSHA256Plus, first: "p=tls-exporter,,n=user" + r, cbData: tls13.exporter(t),
		},
		{
			name: "SHA-1-PLUS with tls-exporter authenticates", stream: onTLS13,
			mechanism: SCRAMSHA1Plus, first: "p=tls-exporter,,n=user" + r, cbData: tls13.exporter(t),
		},
		{
			name: "tls-server-end-point of an ECDSA-SHA256 certificate is its SHA-256", stream: onTLS13WithCert,
			mechanism: SCRAMSHA256Plus, first: "p=tls-server-end-point,,n=user" + r, cbData: sha256Sum(tls13.cert),
		},
		{
			name: "tls-server-end-point of an ECDSA-SHA384 certificate is its SHA-384", stream: onTLS12WithCert,
			mechanism: SCRAMSHA256Plus, first: "p=tls-server-end-point,,n=user" + r, cbData: sha384Sum(tls12.cert),
		},

		{name: "a wrong password is not authorized at the proof step", mechanism: SCRAMSHA256, first: "n,,n=user" + r, password: "pencil2", failAt: 2, want: condNotAuthorized},
		{name: "an unknown user is not authorized at the proof step", mechanism: SCRAMSHA256, first: "n,,n=nobody" + r, failAt: 2, want: condNotAuthorized},
		{name: "an unknown user on SHA-1 is not authorized at the proof step", mechanism: SCRAMSHA1, first: "n,,n=nobody" + r, failAt: 2, want: condNotAuthorized},
		{name: "an escaped comma is decoded before lookup", mechanism: SCRAMSHA256, first: "n,,n=us=2Cer" + r, failAt: 2, want: condNotAuthorized},

		{name: "an empty message is malformed", mechanism: SCRAMSHA256, first: "", failAt: 1, want: condMalformedRequest},
		{name: "a message without gs2 header is malformed", mechanism: SCRAMSHA256, first: "n=user" + r, failAt: 1, want: condMalformedRequest},
		{name: "an unknown channel binding flag is malformed", mechanism: SCRAMSHA256, first: "x,,n=user" + r, failAt: 1, want: condMalformedRequest},
		{name: "the GS2 non-standard flag is malformed", mechanism: SCRAMSHA256, first: "F,n,,n=user" + r, failAt: 1, want: condMalformedRequest},
		{name: "an authzid without a= is malformed", mechanism: SCRAMSHA256, first: "n,user@example.org,n=user" + r, failAt: 1, want: condMalformedRequest},
		{name: "an empty authzid after a= is malformed", mechanism: SCRAMSHA256, first: "n,a=,n=user" + r, failAt: 1, want: condMalformedRequest},
		{name: "a missing username is malformed", mechanism: SCRAMSHA256, first: "n,,r=" + testClientNonce, failAt: 1, want: condMalformedRequest},
		{name: "a missing nonce is malformed", mechanism: SCRAMSHA256, first: "n,,n=user", failAt: 1, want: condMalformedRequest},
		{name: "an empty nonce is malformed", mechanism: SCRAMSHA256, first: "n,,n=user,r=", failAt: 1, want: condMalformedRequest},
		{name: "a nonce with a space is malformed", mechanism: SCRAMSHA256, first: "n,,n=user,r=ab cd", failAt: 1, want: condMalformedRequest},
		{name: "a bad saslname escape is malformed", mechanism: SCRAMSHA256, first: "n,,n=us=41er" + r, failAt: 1, want: condMalformedRequest},
		{name: "a cut saslname escape is malformed", mechanism: SCRAMSHA256, first: "n,,n=user=2" + r, failAt: 1, want: condMalformedRequest},
		{name: "a bad escape in the authzid is malformed", mechanism: SCRAMSHA256, first: "n,a=user=40example.org,n=user" + r, failAt: 1, want: condMalformedRequest},
		{name: "an m= extension before the username fails", mechanism: SCRAMSHA256, first: "n,,m=ext,n=user" + r, failAt: 1, want: condMalformedRequest},
		{name: "an m= extension after the nonce fails", mechanism: SCRAMSHA256, first: "n,,n=user" + r + ",m=ext", failAt: 1, want: condMalformedRequest},
		{name: "a message that is not UTF-8 is malformed", mechanism: SCRAMSHA256, first: "n,,n=us\xffer" + r, failAt: 1, want: condMalformedRequest},
		{name: "a username PRECIS refuses is not authorized", mechanism: SCRAMSHA256, first: "n,,n=us er" + r, failAt: 1, want: condNotAuthorized},

		{name: "y where channel binding is offered is a downgrade", stream: onTLS13, mechanism: SCRAMSHA256, first: "y,,n=user" + r, failAt: 1, want: condNotAuthorized},
		{name: "p= on a mechanism without -PLUS is malformed", stream: onTLS13, mechanism: SCRAMSHA256, first: "p=tls-exporter,,n=user" + r, failAt: 1, want: condMalformedRequest},
		{name: "n on a -PLUS mechanism is malformed", stream: onTLS13, mechanism: SCRAMSHA256Plus, first: "n,,n=user" + r, failAt: 1, want: condMalformedRequest},
		{name: "y on a -PLUS mechanism is malformed", stream: onTLS13, mechanism: SCRAMSHA256Plus, first: "y,,n=user" + r, failAt: 1, want: condMalformedRequest},
		{name: "an invalid channel binding name is malformed", stream: onTLS13, mechanism: SCRAMSHA256Plus, first: "p=tls exporter,,n=user" + r, failAt: 1, want: condMalformedRequest},
		{name: "tls-unique is not supported", stream: onTLS13, mechanism: SCRAMSHA256Plus, first: "p=tls-unique,,n=user" + r, failAt: 1, want: condNotAuthorized},
		{name: "tls-server-end-point without a certificate is not supported", stream: onTLS13, mechanism: SCRAMSHA256Plus, first: "p=tls-server-end-point,,n=user" + r, failAt: 1, want: condNotAuthorized},
		{name: "tls-exporter on TLS 1.2 is not supported", stream: onTLS12WithCert, mechanism: SCRAMSHA256Plus, first: "p=tls-exporter,,n=user" + r, failAt: 1, want: condNotAuthorized},
		{
			name: "wrong channel binding data is not authorized", stream: onTLS13,
			mechanism: SCRAMSHA256Plus, first: "p=tls-exporter,,n=user" + r, cbData: make([]byte, exporterLen),
			failAt: 2, want: condNotAuthorized,
		},
		{
			name: "tls-server-end-point with the wrong hash is not authorized", stream: onTLS12WithCert,
			mechanism: SCRAMSHA256Plus, first: "p=tls-server-end-point,,n=user" + r, cbData: sha256Sum(tls12.cert),
			failAt: 2, want: condNotAuthorized,
		},
		{
			name: "a c= without the channel binding data is not authorized", stream: onTLS13,
			mechanism: SCRAMSHA256Plus, first: "p=tls-exporter,,n=user" + r,
			failAt: 2, want: condNotAuthorized,
		},
		{
			name:      "a c= whose gs2-header differs from the first message is not authorized",
			mechanism: SCRAMSHA256, first: "y,,n=user" + r,
			spoil:  func(m string) string { return strings.Replace(m, "c=eSws", "c=biws", 1) },
			failAt: 2, want: condNotAuthorized,
		},

		{name: "another user's authzid is refused", mechanism: SCRAMSHA256, first: "n,a=admin@example.org,n=user" + r, failAt: 1, want: condInvalidAuthzid},
		{name: "an authzid on another host is refused", mechanism: SCRAMSHA256, first: "n,a=user@example.net,n=user" + r, failAt: 1, want: condInvalidAuthzid},
		{name: "a full JID as authzid is refused", mechanism: SCRAMSHA256, first: "n,a=user@example.org/phone,n=user" + r, failAt: 1, want: condInvalidAuthzid},
		{name: "a bare username as authzid is refused", mechanism: SCRAMSHA256, first: "n,a=user,n=user" + r, failAt: 1, want: condInvalidAuthzid},

		{
			name: "a nonce that is not the server's is not authorized", mechanism: SCRAMSHA256, first: "n,,n=user" + r,
			spoil:  func(m string) string { return strings.Replace(m, ",r="+testClientNonce, ",r="+testClientNonce+"x", 1) },
			failAt: 2, want: condNotAuthorized,
		},
		{
			name: "the bare client nonce is not authorized", mechanism: SCRAMSHA256, first: "n,,n=user" + r,
			spoil: func(m string) string {
				c, rest, _ := strings.Cut(m, ",r=")
				_, p, _ := strings.Cut(rest, ",")
				return c + ",r=" + testClientNonce + "," + p
			},
			failAt: 2, want: condNotAuthorized,
		},
		{
			name: "an m= extension in the final message fails", mechanism: SCRAMSHA256, first: "n,,n=user" + r,
			spoil:  func(m string) string { return strings.Replace(m, ",p=", ",m=x,p=", 1) },
			failAt: 2, want: condMalformedRequest,
		},
		{
			name: "an unknown extension in the final message changes the proof", mechanism: SCRAMSHA256, first: "n,,n=user" + r,
			spoil:  func(m string) string { return strings.Replace(m, ",p=", ",x=y,p=", 1) },
			failAt: 2, want: condNotAuthorized,
		},
		{
			name: "a proof that is not last is malformed", mechanism: SCRAMSHA256, first: "n,,n=user" + r,
			spoil: func(m string) string {
				c, rest, _ := strings.Cut(m, ",")
				r, p, _ := strings.Cut(rest, ",")
				return c + "," + p + "," + r
			},
			failAt: 2, want: condMalformedRequest,
		},
		{
			name: "a proof that is not base64 is malformed", mechanism: SCRAMSHA256, first: "n,,n=user" + r,
			spoil:  func(m string) string { return m[:strings.LastIndex(m, ",p=")] + ",p=!!!!" },
			failAt: 2, want: condMalformedRequest,
		},
		{
			name: "a short proof is not authorized", mechanism: SCRAMSHA256, first: "n,,n=user" + r,
			spoil:  func(m string) string { return m[:strings.LastIndex(m, ",p=")] + ",p=AAAA" },
			failAt: 2, want: condNotAuthorized,
		},
		{
			name: "an empty final message is malformed", mechanism: SCRAMSHA256, first: "n,,n=user" + r,
			spoil:  func(string) string { return "" },
			failAt: 2, want: condMalformedRequest,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Lookup: newAccounts(t).lookup, Host: testHost, ChannelBinding: !tc.noCB}
			if tc.stream != nil {
				tc.stream(&cfg)
			}
			s, err := cfg.NewServer(tc.mechanism)
			if err != nil {
				t.Fatalf("NewServer(%s): %v", tc.mechanism, err)
			}
			ctx := context.Background()
			serverFirst, done, err := s.Step(ctx, []byte(tc.first))
			if tc.failAt == 1 {
				if got := condition(err); got != tc.want || done || serverFirst != nil {
					t.Fatalf("first step = %q, %v, %v; want failure %s", serverFirst, done, err, tc.want)
				}
				return
			}
			if err != nil || done {
				t.Fatalf("first step = %q, %v, %v; want a challenge", serverFirst, done, err)
			}

			c := scramClient{newHash: s.newHash, password: tc.password, first: tc.first, cbData: tc.cbData}
			if c.password == "" {
				c.password = testPassword
			}
			final, wantServerFinal, err := c.final(string(serverFirst))
			if err != nil {
				t.Fatal(err)
			}
			if tc.spoil != nil {
				final = tc.spoil(final)
			}
			out, done, err := s.Step(ctx, []byte(final))
			if tc.failAt == 2 {
				if got := condition(err); got != tc.want || done || out != nil || s.Username() != "" {
					t.Fatalf("final step = %q, %v, %v; want failure %s", out, done, err, tc.want)
				}
				return
			}
			if err != nil || !done || string(out) != wantServerFinal {
				t.Fatalf("final step = %q, %v, %v; want %q", out, done, err, wantServerFinal)
			}
			if got := s.Username(); got != testUser {
				t.Errorf("Username() = %q, want %q", got, testUser)
			}
		})
	}
}

func TestSCRAMServerFirst(t *testing.T) {
	ctx := context.Background()
	first := func(t *testing.T, cfg Config, mechanism, username string) (salt, iterations string, nonce string) {
		t.Helper()
		s, err := cfg.NewServer(mechanism)
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := s.Step(ctx, []byte("n,,n="+username+",r="+testClientNonce))
		if err != nil {
			t.Fatal(err)
		}
		attrs := strings.Split(string(out), ",")
		if len(attrs) != 3 {
			t.Fatalf("server-first-message %q does not have three attributes", out)
		}
		return attrs[1], attrs[2], attrs[0]
	}
	cfg := Config{Lookup: newAccounts(t).lookup, Host: testHost, Iterations: testIterations}

	for _, tc := range []struct {
		name  string
		check func(t *testing.T)
	}{
		{"an unknown user gets a salt as long as a real one", func(t *testing.T) {
			real, _, _ := first(t, cfg, SCRAMSHA256, "user")
			fake, _, _ := first(t, cfg, SCRAMSHA256, "nobody")
			if len(real) != len(fake) {
				t.Errorf("real salt %s, fake salt %s", real, fake)
			}
		}},
		{"an unknown user gets the configured iteration count", func(t *testing.T) {
			_, realIter, _ := first(t, cfg, SCRAMSHA256, "user")
			_, fakeIter, _ := first(t, cfg, SCRAMSHA256, "nobody")
			if realIter != fakeIter {
				t.Errorf("real %s, fake %s", realIter, fakeIter)
			}
		}},
		{"an unknown user gets the same salt every time", func(t *testing.T) {
			a, _, _ := first(t, cfg, SCRAMSHA256, "nobody")
			b, _, _ := first(t, cfg, SCRAMSHA256, "Nobody")
			if a != b {
				t.Errorf("first %s, then %s", a, b)
			}
		}},
		{"two unknown users get different salts", func(t *testing.T) {
			a, _, _ := first(t, cfg, SCRAMSHA256, "nobody")
			b, _, _ := first(t, cfg, SCRAMSHA256, "somebody")
			if a == b {
				t.Errorf("both got %s", a)
			}
		}},
		{"an unknown user's salt differs between SHA-1 and SHA-256", func(t *testing.T) {
			a, _, _ := first(t, cfg, SCRAMSHA1, "nobody")
			b, _, _ := first(t, cfg, SCRAMSHA256, "nobody")
			if a == b {
				t.Errorf("both got %s", a)
			}
		}},
		{"zero iterations in the config means the default", func(t *testing.T) {
			_, iter, _ := first(t, Config{Lookup: newAccounts(t).lookup}, SCRAMSHA256, "nobody")
			if iter != "i=10000" {
				t.Errorf("got %s", iter)
			}
		}},
		{"the server nonce extends the client's with 24 random bytes", func(t *testing.T) {
			_, _, a := first(t, cfg, SCRAMSHA256, "user")
			_, _, b := first(t, cfg, SCRAMSHA256, "user")
			if a == b {
				t.Errorf("the nonce %s came twice", a)
			}
			rest, ok := strings.CutPrefix(a, "r="+testClientNonce)
			if !ok {
				t.Fatalf("%s does not start with the client nonce", a)
			}
			if raw, err := base64.StdEncoding.DecodeString(rest); err != nil || len(raw) != 24 {
				t.Errorf("server part %q: %d bytes, %v", rest, len(raw), err)
			}
		}},
		{"an account without a key for the hash gets a fake exchange", func(t *testing.T) {
			a := newAccounts(t)
			acct := a.byName[testUser]
			acct.SHA1 = storage.SCRAMKey{}
			a.byName[testUser] = acct
			c := Config{Lookup: a.lookup, Iterations: testIterations}
			salt, _, _ := first(t, c, SCRAMSHA1, "user")
			fake, _, _ := first(t, c, SCRAMSHA1, "nobody")
			if len(salt) != len(fake) {
				t.Errorf("salt %s, fake salt %s", salt, fake)
			}
		}},
	} {
		t.Run(tc.name, tc.check)
	}
}

func TestStep(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		lookup error
		steps  []string // the client's messages; the last fails
		want   string
	}{
		{
			name:  "a step after a failure is malformed",
			steps: []string{"x", "n,,n=user,r=abc"},
			want:  condMalformedRequest,
		},
		{
			name:   "a lookup error is a temporary failure",
			lookup: context.DeadlineExceeded,
			steps:  []string{"n,,n=user,r=abc"},
			want:   condTemporaryFailure,
		},
		{
			name:  "an over-long message is malformed",
			steps: []string{"n,,n=user,r=" + strings.Repeat("a", maxMessage)},
			want:  condMalformedRequest,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAccounts(t)
			a.err = tc.lookup
			s, err := Config{Lookup: a.lookup}.NewServer(SCRAMSHA256)
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range tc.steps {
				_, _, err = s.Step(ctx, []byte(m))
				if i < len(tc.steps)-1 {
					continue
				}
				if got := condition(err); got != tc.want {
					t.Errorf("step %d: %v, want %s", i+1, err, tc.want)
				}
			}
		})
	}
}

func TestStepAfterSuccessIsMalformed(t *testing.T) {
	cfg := Config{Lookup: newAccounts(t).lookup}
	s, err := cfg.NewServer(SCRAMSHA256)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first := "n,,n=user,r=" + testClientNonce
	serverFirst, _, err := s.Step(ctx, []byte(first))
	if err != nil {
		t.Fatal(err)
	}
	final, _, err := scramClient{newHash: sha256.New, password: testPassword, first: first}.final(string(serverFirst))
	if err != nil {
		t.Fatal(err)
	}
	if _, done, err := s.Step(ctx, []byte(final)); !done || err != nil {
		t.Fatalf("final step: %v, %v", done, err)
	}
	if _, _, err := s.Step(ctx, []byte(final)); condition(err) != condMalformedRequest {
		t.Errorf("step after success: %v", err)
	}
	if s.Username() != testUser {
		t.Errorf("Username() = %q after a late step", s.Username())
	}
}

// TestChecked checks what the login limits count: an exchange that reached
// the comparison of credentials, right or wrong, and no other.
func TestChecked(t *testing.T) {
	ctx := context.Background()
	const r = ",r=" + testClientNonce
	for _, tc := range []struct {
		name      string
		mechanism string
		first     string
		password  string              // SCRAM: the client's password
		spoil     func(string) string // SCRAM: changes the final message
		wantUser  string
		wantOK    bool
	}{
		{name: "PLAIN with the right password", mechanism: Plain, first: "\x00user\x00" + testPassword, wantUser: testUser, wantOK: true},
		{name: "PLAIN with a wrong password", mechanism: Plain, first: "\x00user\x00nope", wantUser: testUser, wantOK: true},
		{name: "PLAIN for an unknown user", mechanism: Plain, first: "\x00Nobody\x00nope", wantUser: "nobody", wantOK: true},
		{name: "PLAIN that is malformed", mechanism: Plain, first: "user"},
		{name: "SCRAM with the right password", mechanism: SCRAMSHA256, first: "n,,n=user" + r, wantUser: testUser, wantOK: true},
		{name: "SCRAM with a wrong password", mechanism: SCRAMSHA256, first: "n,,n=user" + r, password: "nope", wantUser: testUser, wantOK: true},
		{name: "SCRAM for an unknown user", mechanism: SCRAMSHA256, first: "n,,n=nobody" + r, password: "nope", wantUser: "nobody", wantOK: true},
		{
			name: "SCRAM whose nonce does not match", mechanism: SCRAMSHA256, first: "n,,n=user" + r,
			spoil: func(m string) string { return strings.Replace(m, ",r="+testClientNonce, ",r=x", 1) },
		},
		{name: "SCRAM that stops after the first message", mechanism: SCRAMSHA256, first: "n,,n=user" + r, spoil: func(string) string { return "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Lookup: newAccounts(t).lookup, Host: testHost, TLS: &tls.ConnectionState{}, AllowPlain: true}
			s, err := cfg.NewServer(tc.mechanism)
			if err != nil {
				t.Fatal(err)
			}
			out, _, err := s.Step(ctx, []byte(tc.first))
			if tc.mechanism != Plain && err == nil {
				c := scramClient{newHash: s.newHash, password: tc.password, first: tc.first}
				if c.password == "" {
					c.password = testPassword
				}
				final, _, err := c.final(string(out))
				if err != nil {
					t.Fatal(err)
				}
				if tc.spoil != nil {
					final = tc.spoil(final)
				}
				if final != "" {
					_, _, _ = s.Step(ctx, []byte(final))
				}
			}
			if user, ok := s.Checked(); user != tc.wantUser || ok != tc.wantOK {
				t.Errorf("Checked() = %q, %v; want %q, %v", user, ok, tc.wantUser, tc.wantOK)
			}
		})
	}
}

package sasl

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	msasl "mellium.im/sasl"

	"github.com/parley-im/parley/storage"
)

// BenchmarkSCRAMSHA256 runs one SCRAM-SHA-256 exchange on an account with
// 10000 iterations. "server" is the server's share alone, replaying fixed
// client messages (a SCRAM server does no PBKDF2); "with_mellium_client"
// adds a real client, whose PBKDF2 is most of the cost of a login.
func BenchmarkSCRAMSHA256(b *testing.B) {
	const iterations = 10000
	key := mustKey(b, sha256.New, testPassword, "bench-salt-16byt", iterations)
	a := &accounts{byName: map[string]storage.Account{testUser: {SHA256: key}}}
	cfg := Config{Lookup: a.lookup, Host: testHost, Iterations: iterations}
	ctx := context.Background()

	b.Run("server", func(b *testing.B) {
		const serverNonce = "0123456789abcdefghijklmnopqrstuv"
		first := "n,,n=user,r=" + testClientNonce
		s, err := cfg.NewServer(SCRAMSHA256)
		if err != nil {
			b.Fatal(err)
		}
		s.serverNonce = serverNonce
		serverFirst, _, err := s.Step(ctx, []byte(first))
		if err != nil {
			b.Fatal(err)
		}
		final, _, err := scramClient{newHash: sha256.New, password: testPassword, first: first}.final(string(serverFirst))
		if err != nil {
			b.Fatal(err)
		}
		firstMsg, finalMsg := []byte(first), []byte(final)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			a.asked = a.asked[:0]
			s, _ := cfg.NewServer(SCRAMSHA256)
			s.serverNonce = serverNonce
			if _, _, err := s.Step(ctx, firstMsg); err != nil {
				b.Fatal(err)
			}
			if _, done, err := s.Step(ctx, finalMsg); !done || err != nil {
				b.Fatal(done, err)
			}
		}
	})

	b.Run("with_mellium_client", func(b *testing.B) {
		creds := msasl.Credentials(func() ([]byte, []byte, []byte) {
			return []byte(testUser), []byte(testPassword), nil
		})
		b.ReportAllocs()
		for b.Loop() {
			a.asked = a.asked[:0]
			s, _ := cfg.NewServer(SCRAMSHA256)
			if err := exchange(ctx, msasl.NewClient(msasl.ScramSha256, creds), s); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzSCRAM feeds arbitrary client-first and client-final messages to a
// server: it must answer with a challenge or a *Failure, never panic, and
// never authenticate a made-up proof.
func FuzzSCRAM(f *testing.F) {
	for _, seed := range [][2]string{
		{"n,,n=user,r=" + testClientNonce, "c=biws,r=" + testClientNonce + "x,p=AAAA"},
		{"y,a=user@example.org,n=us=2Cer,r=abc,x=1", "c=eSws,r=abc,m=1,p="},
		{"p=tls-exporter,,n=user,r=abc", "c=,r=,p=="},
		{"n,,m=x,n=user,r=abc", ",,,"},
		{"", ""},
	} {
		f.Add(seed[0], seed[1])
	}
	a := newAccounts(f)
	cfg := Config{Lookup: a.lookup, Host: testHost, Iterations: 1}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, first, final string) {
		a.mu.Lock()
		a.asked = a.asked[:0]
		a.mu.Unlock()
		s, err := cfg.NewServer(SCRAMSHA256)
		if err != nil {
			t.Fatal(err)
		}
		out, done, err := s.Step(ctx, []byte(first))
		var fl *Failure
		if err != nil {
			if !errors.As(err, &fl) || out != nil || done {
				t.Fatalf("first step = %q, %v, %v", out, done, err)
			}
			return
		}
		if done || len(out) == 0 {
			t.Fatalf("first step = %q, %v", out, done)
		}
		out, done, err = s.Step(ctx, []byte(final))
		if err == nil || !errors.As(err, &fl) || out != nil || done || s.Username() != "" {
			t.Fatalf("final step = %q, %v, %v", out, done, err)
		}
	})
}

// BenchmarkHTSHA256None is the server's side of a FAST login, to compare
// with BenchmarkSCRAMSHA256/server: one message, two HMACs per token.
func BenchmarkHTSHA256None(b *testing.B) {
	tok := Token{Secret: []byte("secret-token:fast-0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"), Expires: time.Now().Add(time.Hour), ID: []byte("id")}
	// The lookup returns what the store gives: the token in use and a
	// new one, each derived from its id as c2s does.
	lookup := func(context.Context, string) ([]Token, error) {
		return []Token{tok, {Secret: []byte("secret-token:fast-other"), Expires: tok.Expires}}, nil
	}
	cfg := Config{Host: testHost}
	ctx := context.Background()
	msg := HTInitiator(testUser, tok.Secret)
	b.ReportAllocs()
	for b.Loop() {
		s, err := cfg.NewTokenServer(HTSHA256None, lookup)
		if err != nil {
			b.Fatal(err)
		}
		if _, done, err := s.Step(ctx, msg); err != nil || !done {
			b.Fatal(done, err)
		}
	}
}

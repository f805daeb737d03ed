package sasl

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/storage"
)

const (
	testHost     = "example.org"
	testUser     = "user"
	testPassword = "pencil"
	// testClientNonce is the client nonce of the RFC 5802 example.
	testClientNonce = "fyko+d2lbbFgONRv9qkxdawL"
	testIterations  = 4096
)

// accounts is a Lookup over a map, which also remembers the usernames it
// was asked for.
type accounts struct {
	mu     sync.Mutex
	byName map[string]storage.Account
	asked  []string
	err    error // returned for every lookup when set
}

func (a *accounts) lookup(_ context.Context, username string) (storage.Account, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked = append(a.asked, username)
	if a.err != nil {
		return storage.Account{}, a.err
	}
	acct, ok := a.byName[username]
	if !ok {
		return storage.Account{}, fmt.Errorf("account %s@%s: %w", username, testHost, ErrUnknownUser)
	}
	return acct, nil
}

// mustKey derives a key with a fixed salt, so tests need not depend on
// NewKey's randomness.
func mustKey(tb testing.TB, newHash func() hash.Hash, password, salt string, iterations int) storage.SCRAMKey {
	tb.Helper()
	k, err := deriveKey(newHash, password, []byte(salt), iterations)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// newAccounts holds "user" with password "pencil", with both keys.
func newAccounts(tb testing.TB) *accounts {
	tb.Helper()
	return &accounts{byName: map[string]storage.Account{
		testUser: {
			Host:     testHost,
			Username: testUser,
			SHA1:     mustKey(tb, sha1.New, testPassword, "sha1-salt-16byte", testIterations),
			SHA256:   mustKey(tb, sha256.New, testPassword, "sha256-salt-16by", testIterations),
		},
	}}
}

// tlsPair is one real TLS connection seen from both ends.
type tlsPair struct {
	server, client tls.ConnectionState
	cert           []byte // DER of the server's self-signed leaf
}

var (
	pairsMu sync.Mutex
	pairs   = map[string]tlsPair{}
)

// handshake runs a TLS handshake of the given version over net.Pipe with
// a fresh self-signed ECDSA certificate on curve, and returns both
// connection states. Results are shared between tests.
func handshake(tb testing.TB, version uint16, curve elliptic.Curve) tlsPair {
	tb.Helper()
	id := fmt.Sprintf("%x/%s", version, curve.Params().Name)
	pairsMu.Lock()
	defer pairsMu.Unlock()
	if p, ok := pairs[id]; ok {
		return p
	}

	priv, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: testHost},
		DNSNames:              []string{testHost},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)

	sc, cc := net.Pipe()
	defer sc.Close()
	defer cc.Close()
	srv := tls.Server(sc, &tls.Config{
		Certificates:           []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}},
		MinVersion:             version,
		MaxVersion:             version,
		SessionTicketsDisabled: true,
	})
	cli := tls.Client(cc, &tls.Config{
		ServerName: testHost,
		RootCAs:    roots,
		MinVersion: version,
		MaxVersion: version,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- srv.HandshakeContext(ctx) }()
	if err := cli.HandshakeContext(ctx); err != nil {
		tb.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		tb.Fatalf("server handshake: %v", err)
	}
	p := tlsPair{server: srv.ConnectionState(), client: cli.ConnectionState(), cert: der}
	pairs[id] = p
	return p
}

// exporter is the tls-exporter cb-data as the client computes it.
func (p tlsPair) exporter(tb testing.TB) []byte {
	tb.Helper()
	b, err := p.client.ExportKeyingMaterial(exporterLabel, nil, exporterLen)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// scramClient is a minimal SCRAM client for hand-built exchanges: it sends
// whatever client-first-message it is given and computes a correct
// client-final-message for it, which tests may then spoil.
type scramClient struct {
	newHash  func() hash.Hash
	password string
	first    string // the whole client-first-message
	cbData   []byte // what the client binds to after the gs2-header
	header   string // the gs2-header c= carries, when not first's
}

// final answers serverFirst, and returns the client-final-message and the
// server-final-message the client expects.
func (c scramClient) final(serverFirst string) (msg, serverFinal string, err error) {
	parts := strings.SplitN(c.first, ",", 3)
	if len(parts) != 3 {
		return "", "", errors.New("client-first-message without a gs2-header")
	}
	gs2, bare := parts[0]+","+parts[1]+",", parts[2]
	var nonce, salt string
	iter := -1
	for _, a := range strings.Split(serverFirst, ",") {
		switch {
		case strings.HasPrefix(a, "r="):
			nonce = a[2:]
		case strings.HasPrefix(a, "s="):
			salt = a[2:]
		case strings.HasPrefix(a, "i="):
			if iter, err = strconv.Atoi(a[2:]); err != nil {
				return "", "", err
			}
		}
	}
	rawSalt, err := base64.StdEncoding.DecodeString(salt)
	if err != nil || nonce == "" || iter < 1 {
		return "", "", fmt.Errorf("bad server-first-message %q", serverFirst)
	}
	salted, err := pbkdf2.Key(c.newHash, c.password, rawSalt, iter, c.newHash().Size())
	if err != nil {
		return "", "", err
	}
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(c.newHash, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	if c.header != "" {
		gs2 = c.header
	}
	without := "c=" + base64.StdEncoding.EncodeToString(append([]byte(gs2), c.cbData...)) + ",r=" + nonce
	authMessage := bare + "," + serverFirst + "," + without
	clientKey := mac(salted, "Client Key")
	h := c.newHash()
	h.Write(clientKey)
	sig := mac(h.Sum(nil), authMessage)
	for i := range sig {
		sig[i] ^= clientKey[i]
	}
	serverSig := mac(mac(salted, "Server Key"), authMessage)
	return without + ",p=" + base64.StdEncoding.EncodeToString(sig),
		"v=" + base64.StdEncoding.EncodeToString(serverSig), nil
}

// condition is the condition of a *Failure, or a description of what else
// err is.
func condition(err error) string {
	var f *Failure
	switch {
	case err == nil:
		return ""
	case errors.As(err, &f):
		return f.Condition
	}
	return fmt.Sprintf("not a *Failure: %T %v", err, err)
}

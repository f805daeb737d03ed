package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// mkdir makes dir/name and returns its path.
func mkdir(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeFiles writes each name → content under dir and returns the paths by
// name.
func writeFiles(t *testing.T, dir string, files map[string][]byte) map[string]string {
	t.Helper()
	paths := make(map[string]string)
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		paths[name] = p
	}
	return paths
}

// pemPair generates a self-signed pair for host and returns it in PEM.
func pemPair(t *testing.T, host string) (certPEM, keyPEM []byte) {
	t.Helper()
	_, certPEM, keyPEM, err := generate(host, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

// issued returns a certificate for dnsNames signed by a throwaway CA, as a
// tls.Certificate, so it is not self-signed.
func issued(t *testing.T, dnsNames ...string) *tls.Certificate {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	if ca, err = x509.ParseCertificate(caDER); err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: dnsNames[0]}, DNSNames: dnsNames,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key}
}

// oldGenerated returns, in PEM, a self-signed CA pair for host and *.host
// with Organization org, made as Parley versions before the leaf
// certificates made theirs (with org "Parley self-signed").
func oldGenerated(t *testing.T, host, org string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: host, Organization: []string{org}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(validity),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{host, "*." + host},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// mustLoad calls LoadOrCreate or fails the test.
func mustLoad(t *testing.T, s *Store, host, certFile, keyFile, dir string) *tls.Certificate {
	t.Helper()
	if err := s.LoadOrCreate(host, certFile, keyFile, dir); err != nil {
		t.Fatalf("LoadOrCreate(%q): %v", host, err)
	}
	c, ok := s.Certificate(host)
	if !ok {
		t.Fatalf("no certificate for %q after LoadOrCreate", host)
	}
	return c
}

func TestGenerate(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	cert, _, _, err := generate("example.com", now)
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	key, _ := cert.PrivateKey.(*ecdsa.PrivateKey)
	tests := []struct {
		name string
		ok   bool
	}{
		{"the leaf is the certificate's first DER", leaf != nil && bytes.Equal(leaf.Raw, cert.Certificate[0])},
		{"the key is ECDSA P-256", key != nil && key.Curve == elliptic.P256()},
		{"the leaf holds the key's public half", key != nil && key.PublicKey.Equal(leaf.PublicKey)},
		{"it names the host alone, no wildcard", slices.Equal(leaf.DNSNames, []string{"example.com"})},
		{"it is valid for the host", leaf.VerifyHostname("example.com") == nil},
		{"it is not valid for a subdomain", leaf.VerifyHostname("upload.example.com") != nil},
		{"it is not valid for another domain", leaf.VerifyHostname("example.org") != nil},
		{"it says it is not a CA", !leaf.IsCA && leaf.BasicConstraintsValid},
		{"it may sign handshakes and nothing else", leaf.KeyUsage == x509.KeyUsageDigitalSignature},
		{"it is for TLS servers, and for servers as clients of others (s2s)", slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})},
		{"it names Parley as its maker", slices.Equal(leaf.Subject.Organization, []string{generatedOrg})},
		{"it is valid from an hour ago", leaf.NotBefore.Equal(now.Add(-time.Hour))},
		{"it is valid for two years", leaf.NotAfter.Equal(now.Add(validity))},
		{"it is self-signed", selfSigned(leaf)},
		{"its serial is positive and at most 128 bits", leaf.SerialNumber.Sign() > 0 && leaf.SerialNumber.BitLen() <= 128},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.ok {
				t.Error("not so")
			}
		})
	}

	t.Run("it verifies for its name with itself as the only root", func(t *testing.T) {
		roots := x509.NewCertPool()
		roots.AddCert(leaf)
		opts := x509.VerifyOptions{DNSName: "example.com", Roots: roots, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		if _, err := leaf.Verify(opts); err != nil {
			t.Errorf("Verify: %v", err)
		}
		opts.DNSName = "upload.example.com"
		if _, err := leaf.Verify(opts); err == nil {
			t.Error("it verifies for a subdomain")
		}
	})
	t.Run("it cannot issue: a certificate it signs does not verify", func(t *testing.T) {
		roots := x509.NewCertPool()
		roots.AddCert(leaf)
		child := &x509.Certificate{
			SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "victim.example"}, DNSNames: []string{"victim.example"},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, child, leaf, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		if _, err := c.Verify(x509.VerifyOptions{DNSName: "victim.example", Roots: roots, CurrentTime: now}); err == nil {
			t.Error("a certificate signed by the generated key verifies: the generated certificate is a CA")
		}
	})
	t.Run("two generated certificates differ in serial and key", func(t *testing.T) {
		other, _, _, err := generate("example.com", now)
		if err != nil {
			t.Fatal(err)
		}
		if other.Leaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 || other.Leaf.PublicKey.(*ecdsa.PublicKey).Equal(leaf.PublicKey) {
			t.Error("two generated certificates share a serial or a key")
		}
	})
	t.Run("an IP address host gets an IP SAN", func(t *testing.T) {
		c, _, _, err := generate("192.0.2.1", now)
		if err != nil {
			t.Fatal(err)
		}
		if c.Leaf.VerifyHostname("192.0.2.1") != nil || len(c.Leaf.DNSNames) != 0 {
			t.Errorf("IP host certificate: DNS %v, IP %v", c.Leaf.DNSNames, c.Leaf.IPAddresses)
		}
	})
}

func TestLoadOrCreate(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, dir string)
	}{
		{"a generated certificate is persisted and the same one comes back after a restart", func(t *testing.T, dir string) {
			first := mustLoad(t, NewStore(), "example.com", "", "", dir)
			for file, want := range map[string]os.FileMode{"example.com.key": 0o600, "example.com.crt": 0o644} {
				fi, err := os.Stat(filepath.Join(dir, "certs", file))
				if err != nil {
					t.Fatalf("not persisted: %v", err)
				}
				if fi.Mode().Perm() != want {
					t.Errorf("%s mode = %v, want %v", file, fi.Mode().Perm(), want)
				}
			}
			again := mustLoad(t, NewStore(), "example.com", "", "", dir)
			if !bytes.Equal(again.Certificate[0], first.Certificate[0]) {
				t.Error("after a restart the certificate is a new one")
			}
			if !again.PrivateKey.(*ecdsa.PrivateKey).Equal(first.PrivateKey) {
				t.Error("after a restart the key is a new one")
			}
			if again.Leaf == nil || !bytes.Equal(again.Leaf.Raw, again.Certificate[0]) {
				t.Error("the reloaded certificate has no Leaf")
			}
		}},
		{"an ephemeral certificate is written nowhere", func(t *testing.T, dir string) {
			t.Chdir(dir)
			mustLoad(t, NewStore(), "example.com", "", "", "")
			if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
				t.Errorf("working directory holds %v (%v), want nothing", entries, err)
			}
		}},
		{"a generated certificate within 30 days of expiry is replaced", func(t *testing.T, dir string) {
			old := NewStore()
			old.now = func() time.Time { return time.Now().Add(-validity + 29*24*time.Hour) }
			first := mustLoad(t, old, "example.com", "", "", dir)
			again := mustLoad(t, NewStore(), "example.com", "", "", dir)
			if bytes.Equal(again.Certificate[0], first.Certificate[0]) {
				t.Fatal("an expiring certificate was kept")
			}
			if time.Until(again.Leaf.NotAfter) < validity-time.Hour {
				t.Errorf("the new certificate expires at %v", again.Leaf.NotAfter)
			}
			kept := mustLoad(t, NewStore(), "example.com", "", "", dir)
			if !bytes.Equal(kept.Certificate[0], again.Certificate[0]) {
				t.Error("the renewed certificate was not persisted")
			}
		}},
		{"a generated certificate with 31 days left is kept", func(t *testing.T, dir string) {
			old := NewStore()
			old.now = func() time.Time { return time.Now().Add(-validity + 31*24*time.Hour) }
			first := mustLoad(t, old, "example.com", "", "", dir)
			again := mustLoad(t, NewStore(), "example.com", "", "", dir)
			if !bytes.Equal(again.Certificate[0], first.Certificate[0]) {
				t.Error("a certificate with 31 days left was replaced")
			}
		}},
		{"a generated pair whose key was replaced alone is regenerated", func(t *testing.T, dir string) {
			first := mustLoad(t, NewStore(), "example.com", "", "", dir)
			_, keyPEM := pemPair(t, "example.com")
			writeFiles(t, filepath.Join(dir, "certs"), map[string][]byte{"example.com.key": keyPEM})
			again := mustLoad(t, NewStore(), "example.com", "", "", dir)
			if bytes.Equal(again.Certificate[0], first.Certificate[0]) {
				t.Error("a certificate whose key is gone was kept")
			}
		}},
		{"a corrupt generated certificate is an error that says what to delete", func(t *testing.T, dir string) {
			mustLoad(t, NewStore(), "example.com", "", "", dir)
			crt := filepath.Join(dir, "certs", "example.com.crt")
			writeFiles(t, filepath.Join(dir, "certs"), map[string][]byte{"example.com.crt": []byte("garbage")})
			err := NewStore().LoadOrCreate("example.com", "", "", dir)
			if err == nil || !strings.Contains(err.Error(), "not a PEM certificate") || !strings.Contains(err.Error(), "delete "+crt) {
				t.Errorf("LoadOrCreate() = %v, want an error naming %s", err, crt)
			}
		}},
		{"a CA generated by an older Parley is replaced by a leaf, which is kept after", func(t *testing.T, dir string) {
			certPEM, keyPEM := oldGenerated(t, "example.com", generatedOrg)
			writeFiles(t, mkdir(t, dir, "certs"), map[string][]byte{"example.com.crt": certPEM, "example.com.key": keyPEM})
			var logs bytes.Buffer
			s := NewStore()
			s.SetLogger(slog.New(slog.NewTextHandler(&logs, nil)))
			c := mustLoad(t, s, "example.com", "", "", dir)
			if c.Leaf.IsCA || c.Leaf.KeyUsage&x509.KeyUsageCertSign != 0 || !slices.Equal(c.Leaf.DNSNames, []string{"example.com"}) {
				t.Errorf("loaded: CA %v, key usage %b, names %v; want a leaf for example.com", c.Leaf.IsCA, c.Leaf.KeyUsage, c.Leaf.DNSNames)
			}
			if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "example.com.crt") {
				t.Errorf("no warning naming the replaced file; log:\n%s", logs.String())
			}
			again := mustLoad(t, NewStore(), "example.com", "", "", dir)
			if !bytes.Equal(again.Certificate[0], c.Certificate[0]) {
				t.Error("the new leaf was not persisted")
			}
		}},
		{"a self-signed CA in the data directory not made by Parley is kept", func(t *testing.T, dir string) {
			certPEM, keyPEM := oldGenerated(t, "example.com", "Someone Else")
			writeFiles(t, mkdir(t, dir, "certs"), map[string][]byte{"example.com.crt": certPEM, "example.com.key": keyPEM})
			c := mustLoad(t, NewStore(), "example.com", "", "", dir)
			if block, _ := pem.Decode(certPEM); !bytes.Equal(c.Certificate[0], block.Bytes) {
				t.Error("it was replaced")
			}
		}},
		{"a given pair is never replaced, even a CA that Parley generated", func(t *testing.T, dir string) {
			certPEM, keyPEM := oldGenerated(t, "example.com", generatedOrg)
			p := writeFiles(t, dir, map[string][]byte{"c.pem": certPEM, "k.pem": keyPEM})
			c := mustLoad(t, NewStore(), "example.com", p["c.pem"], p["k.pem"], dir)
			if block, _ := pem.Decode(certPEM); !bytes.Equal(c.Certificate[0], block.Bytes) {
				t.Error("a given pair was replaced")
			}
		}},
		{"a given pair is loaded with its leaf", func(t *testing.T, dir string) {
			certPEM, keyPEM := pemPair(t, "example.com")
			p := writeFiles(t, dir, map[string][]byte{"c.pem": certPEM, "k.pem": keyPEM})
			c := mustLoad(t, NewStore(), "example.com", p["c.pem"], p["k.pem"], dir)
			block, _ := pem.Decode(certPEM)
			if !bytes.Equal(c.Certificate[0], block.Bytes) || c.Leaf == nil || !bytes.Equal(c.Leaf.Raw, block.Bytes) {
				t.Error("the loaded certificate is not the one in the file")
			}
			if _, err := os.Stat(filepath.Join(dir, "certs")); !os.IsNotExist(err) {
				t.Error("loading a given pair wrote into the data directory")
			}
		}},
		{"a given pair may hold a chain and a SEC 1 key after EC parameters", func(t *testing.T, dir string) {
			c := issued(t, "example.com")
			var chain bytes.Buffer
			for _, der := range c.Certificate {
				pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: der})
			}
			ecDER, err := x509.MarshalECPrivateKey(c.PrivateKey.(*ecdsa.PrivateKey))
			if err != nil {
				t.Fatal(err)
			}
			key := append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}}),
				pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})...)
			p := writeFiles(t, dir, map[string][]byte{"c.pem": chain.Bytes(), "k.pem": key})
			got := mustLoad(t, NewStore(), "example.com", p["c.pem"], p["k.pem"], "")
			if len(got.Certificate) != 2 {
				t.Errorf("loaded chain has %d certificates, want 2", len(got.Certificate))
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, t.TempDir()) })
	}
}

func TestLoadOrCreateErrors(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := pemPair(t, "example.com")
	_, otherKey := pemPair(t, "example.com")
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}})
	p := writeFiles(t, dir, map[string][]byte{
		"cert.pem":      certPEM,
		"key.pem":       keyPEM,
		"other-key.pem": otherKey,
		"text.txt":      []byte("hello, not PEM\n"),
		"encrypted.pem": encrypted,
	})
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name              string
		host              string
		certFile, keyFile string
		want              []string // substrings of the error
	}{
		{"a missing certificate file is named", "example.com", missing, p["key.pem"],
			[]string{"certs: example.com:", "read certificate", missing, "no such file"}},
		{"a missing key file is named", "example.com", p["cert.pem"], missing,
			[]string{"read key", missing, "no such file"}},
		{"a certificate file that is not PEM is named", "example.com", p["text.txt"], p["key.pem"],
			[]string{p["text.txt"], "not a PEM certificate"}},
		{"a key file that is not PEM is named", "example.com", p["cert.pem"], p["text.txt"],
			[]string{p["text.txt"], "not a PEM private key"}},
		{"a key that is not the certificate's is named with both files", "example.com", p["cert.pem"], p["other-key.pem"],
			[]string{"key does not match certificate", p["other-key.pem"], p["cert.pem"]}},
		{"swapped files are called swapped", "example.com", p["key.pem"], p["cert.pem"],
			[]string{"swapped"}},
		{"an encrypted key is called encrypted", "example.com", p["cert.pem"], p["encrypted.pem"],
			[]string{p["encrypted.pem"], "encrypted"}},
		{"a certificate for another host is refused", "example.org", p["cert.pem"], p["key.pem"],
			[]string{"not valid for example.org", "(it names example.com)"}},
		{"a certificate without its key is refused", "example.com", p["cert.pem"], "",
			[]string{"without its key"}},
		{"a key without its certificate is refused", "example.com", "", p["key.pem"],
			[]string{"without its certificate"}},
		{"an empty host is refused", "", "", "", []string{"empty host"}},
		{"a host that would escape the directory is refused", "../etc", "", "", []string{"not a domain"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStore()
			err := s.LoadOrCreate(tt.host, tt.certFile, tt.keyFile, t.TempDir())
			if err == nil {
				t.Fatal("LoadOrCreate succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if _, ok := s.Certificate(tt.host); ok {
				t.Error("a failed LoadOrCreate added a certificate")
			}
		})
	}
}

func TestCertificate(t *testing.T) {
	s := NewStore()
	for _, h := range []string{"example.com", "example.org"} {
		mustLoad(t, s, h, "", "", "")
	}
	s.Add("chat.example.net", issued(t, "chat.example.net", "rooms.example.net"))
	s.Add("example.info", issued(t, "example.info", "*.example.info"))
	leafOf := func(host string) *x509.Certificate {
		c, _ := s.Certificate(host)
		return c.Leaf
	}
	com, org, netLeaf, info := leafOf("example.com"), leafOf("example.org"), leafOf("chat.example.net"), leafOf("example.info")
	namesOf := func(c *x509.Certificate) []string {
		if c == nil {
			return nil
		}
		return c.DNSNames
	}

	tests := []struct {
		name  string
		sni   string
		want  *x509.Certificate // for Certificate; nil: none
		wantG *x509.Certificate // for GetCertificate
	}{
		{"a host gets its own certificate", "example.org", org, org},
		{"a subdomain is not covered by its parent's generated certificate", "upload.example.org", nil, com},
		{"a subdomain gets its parent's wildcard certificate", "upload.example.info", info, info},
		{"host names are compared without case", "Upload.EXAMPLE.info", info, info},
		{"a trailing dot is ignored", "example.org.", org, org},
		{"a name another certificate lists gets that certificate", "rooms.example.net", netLeaf, netLeaf},
		{"a sub-subdomain is not covered by the wildcard", "a.b.example.info", nil, com},
		{"an unknown host gets no certificate, and the first host's by SNI", "example.edu", nil, com},
		{"no SNI gets the first host's certificate", "", nil, com},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := s.Certificate(tt.sni)
			if ok != (tt.want != nil) || (ok && c.Leaf != tt.want) {
				t.Errorf("Certificate(%q) = %v, %v; want %v", tt.sni, namesOf(c.Leaf), ok, namesOf(tt.want))
			}
			g, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: tt.sni})
			if err != nil || g.Leaf != tt.wantG {
				t.Errorf("GetCertificate(%q) = %v, %v; want %v", tt.sni, namesOf(g.Leaf), err, namesOf(tt.wantG))
			}
		})
	}

	t.Run("an empty store has no certificate to give", func(t *testing.T) {
		if _, err := NewStore().GetCertificate(&tls.ClientHelloInfo{}); err == nil {
			t.Error("GetCertificate on an empty store succeeded")
		}
	})
	t.Run("adding a host again replaces its certificate but not its place", func(t *testing.T) {
		s := NewStore()
		mustLoad(t, s, "example.com", "", "", "")
		mustLoad(t, s, "example.org", "", "", "")
		fresh := issued(t, "example.com")
		s.Add("example.com", fresh)
		if c, err := s.GetCertificate(&tls.ClientHelloInfo{}); err != nil || c != fresh {
			t.Errorf("GetCertificate without SNI = %v, %v; want the replaced example.com certificate", c, err)
		}
	})
	t.Run("the pool trusts the self-signed certificates only", func(t *testing.T) {
		opts := func(host string) x509.VerifyOptions { return x509.VerifyOptions{DNSName: host, Roots: s.CertPool()} }
		for _, leaf := range []*x509.Certificate{com, org} {
			if _, err := leaf.Verify(opts(leaf.DNSNames[0])); err != nil {
				t.Errorf("pool does not trust %v: %v", leaf.DNSNames, err)
			}
		}
		if _, err := netLeaf.Verify(opts("chat.example.net")); err == nil {
			t.Error("pool trusts a CA-issued certificate")
		}
	})
}

func TestHandshake(t *testing.T) {
	s := NewStore()
	mustLoad(t, s, "example.com", "", "", t.TempDir())
	mustLoad(t, s, "example.org", "", "", "")
	s.Add("rsa.example", rsaSelfSigned(t, "rsa.example"))
	pool := s.CertPool()

	const noSuite = "no cipher suite supported"
	tests := []struct {
		name       string
		serverName string
		maxVersion uint16
		wantLeaf   string // host whose certificate the client sees
		wantErr    string
		suite      uint16 // the only TLS 1.2 suite the client offers; 0: Go's defaults
	}{
		{"a client of the host verifies the server", "example.com", 0, "example.com", "", 0},
		{"a client of TLS 1.3 is served", "example.com", tls.VersionTLS13, "example.com", "", 0},
		{"a client of a subdomain cannot verify the server: no wildcard", "upload.example.com", 0, "", "certificate is valid for", 0},
		{"a client of the second host gets the second certificate", "example.org", 0, "example.org", "", 0},
		{"a client of TLS 1.2 is served", "example.org", tls.VersionTLS12, "example.org", "", 0},
		{"a client of an unknown host cannot verify the server", "example.edu", 0, "", "certificate is valid for", 0},
		{"a client of TLS 1.1 is refused", "example.com", tls.VersionTLS11, "", "protocol version", 0},

		{"TLS 1.2 ECDHE-ECDSA-AES128-GCM-SHA256 is served", "example.com", tls.VersionTLS12, "example.com", "", tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		{"TLS 1.2 ECDHE-ECDSA-AES256-GCM-SHA384 is served", "example.com", tls.VersionTLS12, "example.com", "", tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384},
		{"TLS 1.2 ECDHE-ECDSA-CHACHA20-POLY1305 is served", "example.com", tls.VersionTLS12, "example.com", "", tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256},
		{"TLS 1.2 ECDHE-ECDSA-AES128-SHA (CBC) is refused", "example.com", tls.VersionTLS12, "", noSuite, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA},
		{"TLS 1.2 ECDHE-ECDSA-AES256-SHA (CBC) is refused", "example.com", tls.VersionTLS12, "", noSuite, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA},
		{"TLS 1.2 ECDHE-ECDSA-AES128-SHA256 (CBC) is refused", "example.com", tls.VersionTLS12, "", noSuite, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256},
		{"TLS 1.2 ECDHE-RSA-AES128-GCM-SHA256 is served", "rsa.example", tls.VersionTLS12, "rsa.example", "", tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
		{"TLS 1.2 ECDHE-RSA-CHACHA20-POLY1305 is served", "rsa.example", tls.VersionTLS12, "rsa.example", "", tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256},
		{"TLS 1.2 ECDHE-RSA-AES128-SHA (CBC) is refused", "rsa.example", tls.VersionTLS12, "", noSuite, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA},
		{"TLS 1.2 ECDHE-RSA-AES256-SHA (CBC) is refused", "rsa.example", tls.VersionTLS12, "", noSuite, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA},
		{"TLS 1.2 AES256-SHA (RSA key exchange, CBC) is refused", "rsa.example", tls.VersionTLS12, "", noSuite, tls.TLS_RSA_WITH_AES_256_CBC_SHA},
		{"TLS 1.2 AES128-GCM-SHA256 (RSA key exchange) is refused", "rsa.example", tls.VersionTLS12, "", noSuite, tls.TLS_RSA_WITH_AES_128_GCM_SHA256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cconn, sconn := loopback(t)
			deadline := time.Now().Add(10 * time.Second)
			cconn.SetDeadline(deadline)
			sconn.SetDeadline(deadline)

			server := tls.Server(sconn, s.TLSConfig("xmpp-client"))
			serverErr := make(chan error, 1)
			go func() {
				serverErr <- server.Handshake()
				sconn.Close() // so a client waiting on a refused handshake returns
			}()
			cfg := &tls.Config{
				ServerName: tt.serverName,
				RootCAs:    pool,
				NextProtos: []string{"xmpp-client"},
				MinVersion: tls.VersionTLS10,
				MaxVersion: tt.maxVersion,
			}
			if tt.suite != 0 {
				cfg.CipherSuites = []uint16{tt.suite}
			}
			client := tls.Client(cconn, cfg)
			err := client.Handshake()
			cconn.Close()
			sErr := <-serverErr

			if tt.wantErr != "" {
				if err == nil || (!strings.Contains(err.Error(), tt.wantErr) && (sErr == nil || !strings.Contains(sErr.Error(), tt.wantErr))) {
					t.Errorf("handshake: client %v, server %v; want an error with %q", err, sErr, tt.wantErr)
				}
				return
			}
			if err != nil || sErr != nil {
				t.Fatalf("handshake: client %v, server %v", err, sErr)
			}
			st := client.ConnectionState()
			want, _ := s.Certificate(tt.wantLeaf)
			if got := st.PeerCertificates[0].Raw; !bytes.Equal(got, want.Leaf.Raw) {
				t.Errorf("client saw the certificate for %v, want %s's", st.PeerCertificates[0].DNSNames, tt.wantLeaf)
			}
			if st.NegotiatedProtocol != "xmpp-client" {
				t.Errorf("ALPN = %q, want xmpp-client", st.NegotiatedProtocol)
			}
			if tt.maxVersion != 0 && st.Version != tt.maxVersion {
				t.Errorf("version = %x, want %x", st.Version, tt.maxVersion)
			}
			if tt.suite != 0 && st.CipherSuite != tt.suite {
				t.Errorf("cipher suite = %s, want %s", tls.CipherSuiteName(st.CipherSuite), tls.CipherSuiteName(tt.suite))
			}
		})
	}
}

// rsaSelfSigned returns a self-signed RSA certificate for host, as a user's
// tls_cert might be.
func rsaSelfSigned(t *testing.T, host string) *tls.Certificate {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// loopback returns the two ends of a TCP connection on 127.0.0.1, closed
// when the test ends. (Over net.Pipe, which has no buffer, a client that
// rejects the server's certificate blocks writing its alert while the server
// blocks writing the rest of its flight.)
func loopback(t *testing.T) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}

func TestTLSConfig(t *testing.T) {
	s := NewStore()
	protos := []string{"xmpp-client"}
	c := s.TLSConfig(protos...)
	protos[0] = "changed"
	tests := []struct {
		name string
		ok   bool
	}{
		{"it refuses versions below TLS 1.2", c.MinVersion == tls.VersionTLS12},
		{"it takes certificates from the store", c.GetCertificate != nil && len(c.Certificates) == 0},
		{"it keeps its own copy of the protocols", slices.Equal(c.NextProtos, []string{"xmpp-client"})},
		{"it has no protocols when given none", s.TLSConfig().NextProtos == nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.ok {
				t.Error("not so")
			}
		})
	}
}

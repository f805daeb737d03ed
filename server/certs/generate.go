package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// validity is how long a generated certificate is valid: two years, under
// the 825 days Apple platforms accept for any TLS server certificate.
const validity = 2 * 365 * 24 * time.Hour

// generatedOrg is the Organization of every certificate [generate] makes,
// by which [LoadOrCreate] recognizes one it made before.
const generatedOrg = "Parley self-signed"

// generate makes a self-signed ECDSA P-256 certificate for host, valid from
// an hour before now (for clients whose clocks are behind) for [validity].
// It returns the certificate with its Leaf, and the certificate and PKCS #8
// key in PEM.
//
// The certificate is a leaf, not a CA (basicConstraints CA:FALSE, key usage
// digitalSignature only, extended key usage serverAuth), and names host
// alone: a user who imports it to trust their server trusts that one
// certificate for that one name, not a key on disk that could sign a
// certificate for any name. Verifiers that hold it as a trust anchor (Go's
// x509 with it in the roots pool, a client that pinned it) accept it as it
// is. No *.host wildcard: every configured host, bot and service
// subdomains included, gets a certificate of its own and the Store picks
// it by SNI.
func generate(host string, now time.Time) (cert *tls.Certificate, certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:   host,
			Organization: []string{generatedOrg},
		},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		IsCA:                  false,
		BasicConstraintsValid: true,
		// ECDSA signs the handshake; it has no key encipherment.
		KeyUsage: x509.KeyUsageDigitalSignature,
		// A server's certificate is its client certificate too when it
		// opens a stream to another server (SASL EXTERNAL, XEP-0178):
		// ejabberd refuses one without clientAuth ("unsupported
		// certificate purpose"), and Prosody's generated ones have both.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("parse generated certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("encode key: %w", err)
	}
	cert = &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return cert, certPEM, keyPEM, nil
}

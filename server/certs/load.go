package certs

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// renewBefore is how long before its expiry a generated certificate is
// replaced by a new one when it is loaded.
const renewBefore = 30 * 24 * time.Hour

// LoadOrCreate gives host its certificate. When certFile and keyFile are
// given it loads that PEM pair, which must be valid for host. Otherwise it
// uses a self-signed ECDSA P-256 leaf certificate for host: the one kept as
// <dir>/certs/<host>.crt and <dir>/certs/<host>.key when it exists, is good
// for at least 30 more days and is not a CA, else a new one, written there
// (the key with mode 0600) so that it survives restarts. With dir "" the
// new certificate lives in memory only.
//
// Versions of Parley before the leaf certificates generated a self-signed
// CA (CA:TRUE, keyCertSign, *.host); one of those found in <dir>/certs is
// replaced, with a warning, since a user who imported it trusts a key on
// disk to sign certificates for any name. Pairs named by certFile and
// keyFile are the user's and are never replaced.
//
// Errors name the file and what is wrong with it: missing, not PEM, the key
// not matching the certificate, the certificate not valid for host.
func (s *Store) LoadOrCreate(host, certFile, keyFile, dir string) error {
	if err := checkHost(host); err != nil {
		return fmt.Errorf("certs: %q: %w", host, err)
	}
	host = normalize(host)
	switch {
	case certFile != "" && keyFile == "":
		return fmt.Errorf("certs: %s: certificate %s given without its key file", host, certFile)
	case certFile == "" && keyFile != "":
		return fmt.Errorf("certs: %s: key %s given without its certificate file", host, keyFile)
	case certFile != "":
		cert, err := loadPair(certFile, keyFile)
		if err != nil {
			return fmt.Errorf("certs: %s: %w", host, err)
		}
		if err := cert.Leaf.VerifyHostname(host); err != nil {
			return fmt.Errorf("certs: %s: certificate %s is not valid for %s (it names %s)", host, certFile, host, names(cert.Leaf))
		}
		s.Add(host, cert)
		return nil
	case dir == "":
		cert, _, _, err := generate(host, s.now())
		if err != nil {
			return fmt.Errorf("certs: %s: %w", host, err)
		}
		s.Add(host, cert)
		return nil
	}

	certFile = filepath.Join(dir, "certs", host+".crt")
	keyFile = filepath.Join(dir, "certs", host+".key")
	cert, err := loadPair(certFile, keyFile)
	switch {
	case err == nil && generatedCA(cert.Leaf):
		s.logger().Warn("certs: replacing a generated certificate that is a CA with a leaf certificate; "+
			"clients that pinned or imported the old one must accept the new one",
			"host", host, "file", certFile)
	case err == nil && cert.Leaf.VerifyHostname(host) == nil && s.now().Add(renewBefore).Before(cert.Leaf.NotAfter):
		s.Add(host, cert)
		return nil
	case err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, errMismatch):
		return fmt.Errorf("certs: %s: generated pair: %w (delete %s and %s to generate a new pair)", host, err, certFile, keyFile)
	}
	// Missing, half replaced, expiring, for another name or a CA: replace it.
	cert, certPEM, keyPEM, err := generate(host, s.now())
	if err != nil {
		return fmt.Errorf("certs: %s: %w", host, err)
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return fmt.Errorf("certs: %s: %w", host, err)
	}
	// Each file is replaced atomically but the pair is not: a crash between
	// the two leaves a key without its certificate, which the next start
	// replaces like a missing pair.
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return fmt.Errorf("certs: %s: write key: %w", host, err)
	}
	if err := writeFileAtomic(certFile, certPEM, 0o644); err != nil {
		return fmt.Errorf("certs: %s: write certificate: %w", host, err)
	}
	s.Add(host, cert)
	return nil
}

// generatedCA reports whether c is a self-signed CA certificate that an
// older Parley generated.
func generatedCA(c *x509.Certificate) bool {
	return c.IsCA && slices.Equal(c.Subject.Organization, []string{generatedOrg}) && selfSigned(c)
}

// errMismatch is wrapped by loadPair's error when the key does not belong to
// the certificate.
var errMismatch = errors.New("key does not match certificate")

// checkHost refuses host names that cannot be a domain or that would escape
// the certificate directory when used as a file name.
func checkHost(host string) error {
	switch {
	case host == "":
		return errors.New("empty host name")
	case strings.ContainsAny(host, `/\:`+"\x00"), strings.HasPrefix(host, "."), strings.Contains(host, ".."):
		// ':' only appears in IPv6 literals, which would need escaping as
		// file names; XMPP hosts are domains.
		return errors.New("not a domain name")
	}
	return nil
}

// loadPair reads a PEM certificate chain from certFile and its private key
// from keyFile. Errors name the file at fault; a missing file's error wraps
// [fs.ErrNotExist].
func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}

	var (
		cert     tls.Certificate
		keyBlock *pem.Block
	)
	for rest := certPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		switch {
		case b.Type == "CERTIFICATE":
			cert.Certificate = append(cert.Certificate, b.Bytes)
		case strings.HasSuffix(b.Type, "PRIVATE KEY"):
			keyBlock = b
		}
	}
	if len(cert.Certificate) == 0 {
		if keyBlock != nil {
			return nil, fmt.Errorf("%s holds a private key, not a certificate (are the certificate and key files swapped?)", certFile)
		}
		return nil, fmt.Errorf("%s: not a PEM certificate: no \"-----BEGIN CERTIFICATE-----\" block found", certFile)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("%s: first certificate: %w", certFile, err)
	}
	cert.Leaf = leaf

	keyBlock = nil
	sawCert := false
	for rest := keyPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			sawCert = true
		}
		if strings.HasSuffix(b.Type, "PRIVATE KEY") {
			keyBlock = b
			break
		}
	}
	if keyBlock == nil {
		if sawCert {
			return nil, fmt.Errorf("%s holds a certificate, not a private key (are the certificate and key files swapped?)", keyFile)
		}
		return nil, fmt.Errorf("%s: not a PEM private key: no \"-----BEGIN ... PRIVATE KEY-----\" block found", keyFile)
	}
	if keyBlock.Type == "ENCRYPTED PRIVATE KEY" || keyBlock.Headers["Proc-Type"] != "" {
		return nil, fmt.Errorf("%s: the private key is encrypted; give an unencrypted key (openssl pkey -in %[1]s -out <new file>)", keyFile)
	}
	key, err := parseKey(keyBlock.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("%w: the key in %s is not the one of the certificate in %s", errMismatch, keyFile, certFile)
	}
	cert.PrivateKey = key
	return &cert, nil
}

// parseKey parses a DER private key in PKCS #8, PKCS #1 (RSA) or SEC 1 (EC)
// form, the forms crypto/tls accepts.
func parseKey(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
		return nil, fmt.Errorf("unsupported private key type %T: use an RSA, ECDSA or Ed25519 key", k)
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("cannot parse the private key (tried PKCS #8, PKCS #1 and SEC 1)")
}

// names lists the host names c is valid for, for error messages.
func names(c *x509.Certificate) string {
	var ns []string
	ns = append(ns, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		ns = append(ns, ip.String())
	}
	if len(ns) == 0 {
		return "no DNS names"
	}
	return strings.Join(ns, ", ")
}

// writeFileAtomic writes data to a temporary file next to name and renames
// it over name, so a reader sees the old file or the new one, never half.
func writeFileAtomic(name string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a successful rename this finds nothing
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}

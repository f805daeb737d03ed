package sasl

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"

	_ "crypto/sha256" // SHA-256 for crypto.Hash.New
	_ "crypto/sha512" // SHA-384 and SHA-512 for crypto.Hash.New
)

// Channel binding type names (RFC 5056 §7), as they appear in the p= flag
// of a SCRAM gs2-header and in XEP-0440.
const (
	TLSExporter       = "tls-exporter"
	TLSServerEndPoint = "tls-server-end-point"
)

// exporterLabel and exporterLen are the TLS exporter parameters of
// RFC 9266 §2.
const (
	exporterLabel = "EXPORTER-Channel-Binding"
	exporterLen   = 32
)

// channelBinding returns the cb-data of one channel binding type on this
// stream. The type must be one that ChannelBindings lists.
func (c Config) channelBinding(name string) (data []byte, err error) {
	switch name {
	case TLSExporter:
		// A ConnectionState that does not come from a tls.Conn has no
		// exporter and ExportKeyingMaterial panics on it.
		defer func() {
			if r := recover(); r != nil {
				data, err = nil, fmt.Errorf("tls-exporter: %v", r)
			}
		}()
		return c.TLS.ExportKeyingMaterial(exporterLabel, nil, exporterLen)
	case TLSServerEndPoint:
		h, err := endPointHash(c.ServerCert)
		if err != nil {
			return nil, err
		}
		d := h.New()
		d.Write(c.ServerCert)
		return d.Sum(nil), nil
	}
	return nil, fmt.Errorf("unsupported channel binding type %q", name)
}

// endPointHash picks the hash of tls-server-end-point for a DER
// certificate (RFC 5929 §4.1): the hash of the certificate's signature
// algorithm, except that MD5 and SHA-1 become SHA-256. Algorithms without
// exactly one hash, such as Ed25519, have no tls-server-end-point.
func endPointHash(der []byte) (crypto.Hash, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return 0, fmt.Errorf("tls-server-end-point: %w", err)
	}
	return signatureHash(cert.SignatureAlgorithm)
}

func signatureHash(alg x509.SignatureAlgorithm) (crypto.Hash, error) {
	switch alg {
	case x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1,
		x509.SHA256WithRSA, x509.DSAWithSHA256, x509.ECDSAWithSHA256, x509.SHA256WithRSAPSS:
		return crypto.SHA256, nil
	case x509.SHA384WithRSA, x509.ECDSAWithSHA384, x509.SHA384WithRSAPSS:
		return crypto.SHA384, nil
	case x509.SHA512WithRSA, x509.ECDSAWithSHA512, x509.SHA512WithRSAPSS:
		return crypto.SHA512, nil
	}
	return 0, errors.New("tls-server-end-point: no hash for signature algorithm " + alg.String())
}

// Package certs keeps the TLS certificates of Parley's hosts, one per host,
// and picks one for each handshake by the client's SNI.
//
// A host's certificate is either the pair named in the configuration
// (tls_cert, tls_key) or, when none is named, a self-signed ECDSA P-256
// leaf certificate (not a CA) for the host alone, generated on first start
// and kept in the data directory so that it survives restarts (and clients
// that pinned it keep trusting it). [Store.TLSConfig] is the one TLS
// configuration every listener uses: TLS 1.3, and TLS 1.2 with ECDHE and an
// AEAD cipher only.
// [Store.CertPool] trusts every self-signed certificate of the Store, so a
// test client can verify the server it started.
//
// This package does not obtain certificates from a CA (ACME), reload them
// while the server runs, or verify the certificates of peers; s2s and c2s do
// that with their own configuration.
package certs

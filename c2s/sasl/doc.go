// Package sasl is the server side of SASL for XMPP client streams
// (RFC 6120 §6): it decides which mechanisms a stream offers, runs one
// authentication exchange per [Server], and turns every way an exchange can
// go wrong into a [Failure] that carries an RFC 6120 §6.5 condition name.
//
// It speaks SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677), their -PLUS
// variants with the tls-exporter (RFC 9266, TLS 1.3 only) and
// tls-server-end-point (RFC 5929) channel bindings, and PLAIN (RFC 4616),
// which is offered only on encrypted streams and only when the operator
// allows it. Passwords are never stored: [NewKey] and [NewKeys] derive the
// [storage.SCRAMKey] values an account keeps, and PLAIN checks a password
// against those same keys.
//
// An exchange does not reveal whether an account exists. A username that
// has no account gets a server-first-message with a salt derived from the
// username, so that it looks the same on every attempt, and is refused with
// not-authorized at the proof step, like a wrong password.
//
// This package is not the stream code. It reads and writes no XML, does no
// base64 (the caller decodes the text of <auth/> and <response/>, answers
// malformed base64 with incorrect-encoding, and encodes what [Server.Step]
// returns into <challenge/> or <success/>), keeps no per-connection state
// beyond one exchange, and counts no failed attempts: rate limiting and
// account lockout belong to the c2s layer. It does not read accounts
// itself either; the caller hands it a [Lookup]. SASL2 (XEP-0388) and the
// security layers of RFC 4422 are not implemented.
package sasl

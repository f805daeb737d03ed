package sasl

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"time"

	"github.com/parley-im/parley/xmpp"
)

// HTSHA256None is the Hashed Token mechanism without channel binding
// (draft-schmaus-kitten-sasl-ht-08), the one FAST (XEP-0484) offers here.
// Its one message is the username, a NUL and HMAC-SHA-256(token,
// "Initiator"); the server answers HMAC-SHA-256(token, "Responder"). Only
// SASL2 offers it, and only with a token lookup.
const HTSHA256None = "HT-SHA-256-NONE"

// condCredentialsExpired is RFC 6120 §6.5.2's, which XEP-0484 §3.2 asks
// for a token the server no longer trusts.
const condCredentialsExpired = "credentials-expired"

// Token is one FAST token a client may hold: its secret, derived by the
// caller, and when it stops being good. ID is the caller's, handed back
// by [Server.Token].
type Token struct {
	Secret  []byte
	Expires time.Time
	ID      []byte
}

// TokenLookup returns the tokens of username for one client (the SASL2
// user-agent id) and mechanism; none is no error. An unknown user has
// none.
type TokenLookup func(ctx context.Context, username string) ([]Token, error)

// NewTokenServer starts a Hashed Token exchange of FAST. The error is a
// *Failure: invalid-mechanism for a mechanism other than HTSHA256None,
// temporary-auth-failure without a lookup.
func (c Config) NewTokenServer(mechanism string, lookup TokenLookup) (*Server, error) {
	if mechanism != HTSHA256None {
		return nil, fail(condInvalidMechanism, "FAST here is "+HTSHA256None)
	}
	if lookup == nil {
		return nil, fail(condTemporaryFailure, "no token lookup configured")
	}
	return &Server{cfg: c, mechanism: mechanism, newHash: sha256.New, tokens: lookup}, nil
}

// Token returns the token a Hashed Token exchange authenticated with, once
// it is done; nil otherwise.
func (s *Server) Token() *Token {
	if s.state != stateDone {
		return nil
	}
	return s.token
}

// htStep checks the one message of a Hashed Token exchange. Every token
// of the client is compared, in constant time each, so that which one
// matched does not show in the time taken; an unknown user costs one
// comparison with nothing.
func (s *Server) htStep(ctx context.Context, in []byte) ([]byte, error) {
	if len(in) > maxMessage {
		return nil, fail(condMalformedRequest, "the message is too long")
	}
	user, mac, ok := bytes.Cut(in, []byte{0})
	if !ok || len(user) == 0 || len(mac) != sha256.Size {
		return nil, fail(condMalformedRequest, "expected username, NUL and a SHA-256 HMAC")
	}
	username, err := xmpp.NormalizeLocal(string(user))
	if err != nil {
		return nil, fail(condNotAuthorized, textBadUsername)
	}
	s.claimed = username
	tokens, err := s.tokens(ctx, username)
	if err != nil {
		if errors.Is(err, ErrUnknownUser) {
			tokens = nil
		} else {
			return nil, &Failure{Condition: condTemporaryFailure, Text: textTryAgain, cause: err}
		}
	}
	s.checked = true
	var match *Token
	if len(tokens) == 0 {
		hmac.Equal(htMAC(nil, "Initiator"), mac)
	}
	for i := range tokens {
		if hmac.Equal(htMAC(tokens[i].Secret, "Initiator"), mac) && match == nil {
			match = &tokens[i]
		}
	}
	switch {
	case match == nil:
		return nil, fail(condNotAuthorized, textWrongCredentials)
	case !time.Now().Before(match.Expires):
		return nil, fail(condCredentialsExpired, "the token expired; log in with your password")
	}
	s.username = username
	s.token = match
	return htMAC(match.Secret, "Responder"), nil
}

// htMAC is HMAC-SHA-256(token, label) with no channel binding data.
func htMAC(token []byte, label string) []byte {
	m := hmac.New(sha256.New, token)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// HTInitiator is the client's message of HTSHA256None for username and
// token: for tests and benchmarks that play the client.
func HTInitiator(username string, token []byte) []byte {
	return append([]byte(username+"\x00"), htMAC(token, "Initiator")...)
}

// HTResponder is what the server answers with token: for clients that
// check the server knew it too.
func HTResponder(token []byte) []byte { return htMAC(token, "Responder") }

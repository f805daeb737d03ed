package sasl

import (
	"context"
	"crypto/subtle"
	"strings"

	"github.com/parley-im/parley/xmpp"
)

// plainStep reads a PLAIN message (RFC 4616 §2),
//
//	[authzid] NUL authcid NUL passwd
//
// and checks the password against the account's SCRAM-SHA-256 key, or its
// SCRAM-SHA-1 key when it has no SHA-256 one. That costs one PBKDF2, which
// an unknown user pays too, against a fake key.
func (s *Server) plainStep(ctx context.Context, in []byte) error {
	msg, err := checkMessage(in)
	if err != nil {
		return err
	}
	parts := strings.Split(msg, "\x00")
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return fail(condMalformedRequest, "expected authzid NUL authcid NUL passwd")
	}
	authzid, authcid, password := parts[0], parts[1], parts[2]

	username, err := xmpp.NormalizeLocal(authcid)
	if err != nil {
		return fail(condNotAuthorized, textBadUsername)
	}
	if err := s.cfg.checkAuthzid(authzid, username); err != nil {
		return err
	}
	prepared, err := preparePassword(password)
	if err != nil {
		return fail(condNotAuthorized, "the password has characters SASLprep (RFC 4013) does not allow")
	}

	key, known, err := s.lookup(ctx, username)
	if err != nil {
		return err
	}
	if !known {
		key = fakeKey(s.newHash, username, s.cfg.iterations())
	}
	salted, err := saltedPassword(s.newHash, prepared, key.Salt, key.Iterations)
	if err != nil {
		return fail(condTemporaryFailure, textTryAgain)
	}
	ok := subtle.ConstantTimeCompare(storedKey(s.newHash, salted), key.StoredKey) == 1
	s.claimed, s.checked = username, true
	if !ok || !known {
		return fail(condNotAuthorized, textWrongCredentials)
	}
	s.username = username
	return nil
}

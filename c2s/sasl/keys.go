package sasl

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"strconv"

	"golang.org/x/text/secure/precis"

	"github.com/parley-im/parley/storage"
)

// saltLen is the length of the salts NewKey makes, and of the fake salts
// of unknown users, so that the two cannot be told apart by length.
const saltLen = 16

var (
	clientKeyLabel = []byte("Client Key")
	serverKeyLabel = []byte("Server Key")
)

// NewKey derives what the server stores of password for one SCRAM hash
// (sha1.New or sha256.New): a random 16-byte salt, the iteration count,
// StoredKey = H(HMAC(SaltedPassword, "Client Key")) and
// ServerKey = HMAC(SaltedPassword, "Server Key"), where SaltedPassword is
// PBKDF2 of the password prepared with the PRECIS OpaqueString profile
// (RFC 8265 §4.2). An empty password, one OpaqueString refuses, or an
// iteration count below 1 is an error. RFC 7677 asks for at least 4096
// iterations; [DefaultIterations] is a good choice.
func NewKey(newHash func() hash.Hash, password string, iterations int) (storage.SCRAMKey, error) {
	if iterations < 1 {
		return storage.SCRAMKey{}, fmt.Errorf("sasl: iteration count %d is below 1", iterations)
	}
	prepared, err := preparePassword(password)
	if err != nil {
		return storage.SCRAMKey{}, err
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return storage.SCRAMKey{}, fmt.Errorf("sasl: salt: %w", err)
	}
	return deriveKey(newHash, prepared, salt, iterations)
}

// NewKeys derives the SHA-1 and the SHA-256 keys of password, each with its
// own salt, for a new account or a password change. See [NewKey].
func NewKeys(password string, iterations int) (sha1Key, sha256Key storage.SCRAMKey, err error) {
	sha1Key, err = NewKey(sha1.New, password, iterations)
	if err != nil {
		return storage.SCRAMKey{}, storage.SCRAMKey{}, err
	}
	sha256Key, err = NewKey(sha256.New, password, iterations)
	if err != nil {
		return storage.SCRAMKey{}, storage.SCRAMKey{}, err
	}
	return sha1Key, sha256Key, nil
}

// preparePassword applies the PRECIS OpaqueString profile.
func preparePassword(password string) (string, error) {
	if password == "" {
		return "", errors.New("sasl: empty password")
	}
	prepared, err := precis.OpaqueString.String(password)
	if err != nil {
		return "", fmt.Errorf("sasl: password: %w", err)
	}
	if prepared == "" {
		return "", errors.New("sasl: empty password")
	}
	return prepared, nil
}

// deriveKey computes the stored key of an already prepared password.
func deriveKey(newHash func() hash.Hash, prepared string, salt []byte, iterations int) (storage.SCRAMKey, error) {
	salted, err := saltedPassword(newHash, prepared, salt, iterations)
	if err != nil {
		return storage.SCRAMKey{}, err
	}
	return storage.SCRAMKey{
		Salt:       salt,
		Iterations: iterations,
		StoredKey:  storedKey(newHash, salted),
		ServerKey:  hmacSum(newHash, salted, serverKeyLabel),
	}, nil
}

// saltedPassword is Hi(password, salt, i) of RFC 5802 §2.2, which is PBKDF2
// with HMAC and an output as long as the hash.
func saltedPassword(newHash func() hash.Hash, prepared string, salt []byte, iterations int) ([]byte, error) {
	k, err := pbkdf2.Key(newHash, prepared, salt, iterations, newHash().Size())
	if err != nil {
		return nil, fmt.Errorf("sasl: pbkdf2: %w", err)
	}
	return k, nil
}

// storedKey is H(HMAC(SaltedPassword, "Client Key")).
func storedKey(newHash func() hash.Hash, salted []byte) []byte {
	h := newHash()
	h.Write(hmacSum(newHash, salted, clientKeyLabel))
	return h.Sum(nil)
}

func hmacSum(newHash func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(newHash, key)
	m.Write(msg)
	return m.Sum(nil)
}

// fakeSecret keys the fake keys of unknown users when Config.FakeSecret
// is empty. It is drawn once per process: within a process an unknown user
// gets the same salt on every attempt, as a real one would, but a new one
// after a restart, which a real one would not: servers give FakeSecret.
var fakeSecret = func() []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("sasl: no randomness for the fake-key secret: " + err.Error())
	}
	return b
}()

// fakeKey is the key of an account that does not exist: a salt that is a
// function of the secret, the username and the hash, the iteration count
// given, and keys that no password matches in practice (the exchange fails
// whatever the proof).
func fakeKey(newHash func() hash.Hash, secret []byte, username string, iterations int) storage.SCRAMKey {
	size := newHash().Size()
	if len(secret) == 0 {
		secret = fakeSecret
	}
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(label + "\x00" + strconv.Itoa(size) + "\x00" + username))
		return m.Sum(nil)
	}
	// SHA-256 gives 32 bytes, enough for a 16-byte salt and for a SHA-1
	// or SHA-256 key.
	return storage.SCRAMKey{
		Salt:       derive("salt")[:saltLen],
		Iterations: iterations,
		StoredKey:  derive("stored")[:size],
		ServerKey:  derive("server")[:size],
	}
}

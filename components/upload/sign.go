package upload

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/parley-im/parley/storage"
)

// A PUT token is "<expiry>.<mac>": the expiry in Unix seconds, and the
// HMAC-SHA256 under the upload secret of the slot's fields and that
// expiry, unpadded base64url. The fields are length-prefixed, so no two
// slots sign the same bytes.

// tokenDomain separates these MACs from any other use of the key.
const tokenDomain = "parley upload PUT v1"

// Why a token is refused.
var (
	errTokenMalformed = errors.New("the Authorization header is not Bearer <token> with a slot's token")
	errTokenWrong     = errors.New("the token is not this slot's")
	errTokenExpired   = errors.New("the token has expired; request a new slot")
)

// mac is the MAC of slot with expiry exp.
func mac(key []byte, slot *storage.UploadSlot, exp int64) []byte {
	m := hmac.New(sha256.New, key)
	var n [8]byte
	for _, f := range []string{tokenDomain, slot.ID, slot.Host, slot.Owner, slot.Filename, slot.ContentType} {
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		m.Write(n[:])
		m.Write([]byte(f))
	}
	binary.BigEndian.PutUint64(n[:], uint64(slot.Size))
	m.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(exp))
	m.Write(n[:])
	return m.Sum(nil)
}

// token returns the PUT token of slot, valid until exp.
func token(key []byte, slot *storage.UploadSlot, exp time.Time) string {
	e := exp.Unix()
	return strconv.FormatInt(e, 10) + "." + base64.RawURLEncoding.EncodeToString(mac(key, slot, e))
}

// checkToken checks the token tok for slot at now.
func checkToken(key []byte, slot *storage.UploadSlot, tok string, now time.Time) error {
	es, ms, ok := strings.Cut(tok, ".")
	if !ok {
		return errTokenMalformed
	}
	e, err := strconv.ParseInt(es, 10, 64)
	if err != nil {
		return errTokenMalformed
	}
	got, err := base64.RawURLEncoding.DecodeString(ms)
	if err != nil {
		return errTokenMalformed
	}
	// The MAC first: an expiry is only worth reading once it is known
	// to be the server's.
	if !hmac.Equal(got, mac(key, slot, e)) {
		return errTokenWrong
	}
	if now.Unix() >= e {
		return errTokenExpired
	}
	return nil
}

// newSlotID returns 128 random bits, unpadded base64url: 22 characters
// from [A-Za-z0-9_-], so never a path separator or a dot-dot.
func newSlotID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// validSlotID reports whether id can be a slot's name: checked before the
// name comes near the file system.
func validSlotID(id string) bool {
	if len(id) != 22 {
		return false
	}
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// secretFile is where a generated upload secret is kept, in data_dir.
const secretFile = "upload_secret"

// loadSecret returns the configured secret, or the one kept in dir,
// generating it on first use; with no dir (an ephemeral server) a random
// one that lives as long as the process.
func loadSecret(configured, dir string) ([]byte, error) {
	if configured != "" {
		return []byte(configured), nil
	}
	if dir == "" {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		return b, nil
	}
	path := filepath.Join(dir, secretFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) < minSecret {
			return nil, fmt.Errorf("upload: %s holds %d bytes; want %d or more (delete it to generate a new one)", path, len(b), minSecret)
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("upload: read the secret: %w", err)
	}
	b = make([]byte, 32)
	_, _ = rand.Read(b)
	// O_EXCL: two servers starting on one data_dir keep the first's.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return loadSecret("", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("upload: create the secret: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, fmt.Errorf("upload: write the secret: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("upload: write the secret: %w", err)
	}
	return b, nil
}

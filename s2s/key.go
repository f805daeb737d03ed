package s2s

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// dialbackKey is XEP-0220 §2.4's recommended key: HMAC-SHA256 keyed with
// the hex SHA-256 of the secret, over "receiving originating streamID",
// in hex. Only this process checks its keys (as the authoritative server
// of its own domains), so the secret is random per process.
func dialbackKey(secret []byte, receiving, originating, id string) string {
	sum := sha256.Sum256(secret)
	m := hmac.New(sha256.New, []byte(hex.EncodeToString(sum[:])))
	m.Write([]byte(receiving + " " + originating + " " + id))
	return hex.EncodeToString(m.Sum(nil))
}

// checkKey reports, in constant time, whether key is the one this
// server made for the pair and stream.
func checkKey(secret []byte, receiving, originating, id, key string) bool {
	want := dialbackKey(secret, receiving, originating, id)
	return hmac.Equal([]byte(want), []byte(key))
}

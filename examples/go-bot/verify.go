package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxSkew is how far webhook-timestamp may be from now, either way. A
// captured request can be replayed only within this window.
const maxSkew = 5 * time.Minute

// verify checks the Standard Webhooks signature Parley puts on a request:
// webhook-signature holds one or more space-separated "v1,<base64>"
// entries, each an HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>".
// It returns nil when one of them matches and the timestamp is recent.
func verify(secret string, h http.Header, body []byte, now time.Time) error {
	key := signingKey(secret)
	if len(key) == 0 {
		// An HMAC with an empty key proves nothing.
		return errors.New("no secret to verify with")
	}
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q is not Unix seconds", ts)
	}
	if age := now.Sub(time.Unix(sec, 0)); age > maxSkew || age < -maxSkew {
		return fmt.Errorf("webhook-timestamp is %v from now; the limit is %v", age.Round(time.Second), maxSkew)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, sig := range strings.Fields(sigs) {
		version, b64, _ := strings.Cut(sig, ",")
		got, err := base64.StdEncoding.DecodeString(b64)
		// hmac.Equal takes the same time wherever the bytes differ.
		if version == "v1" && err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no v1 signature matches")
}

// signingKey is the HMAC key of a secret, as Parley derives it: a secret
// written "whsec_<base64>" is its decoded bytes, any other string is used
// as it is.
func signingKey(secret string) []byte {
	if rest, ok := strings.CutPrefix(secret, "whsec_"); ok {
		if key, err := base64.StdEncoding.DecodeString(rest); err == nil {
			return key
		}
	}
	return []byte(secret)
}

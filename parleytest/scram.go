package parleytest

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"hash"
	"strconv"
	"strings"

	"github.com/beevik/etree"
)

// AuthSCRAM runs a SCRAM exchange (RFC 5802) of mechanism (SCRAM-SHA-1,
// SCRAM-SHA-256 or their -PLUS variants) the way a client library would,
// with flag as the gs2 channel binding flag ("n", "y" or "p=type") and
// cbData as the channel binding data of a "p=" flag. It returns the
// server's last answer: <success/> (whose server signature it checked) or
// <failure/>. For scripting what a particular client sends, such as
// slixmpp's "y" or its "p=tls-unique" on TLS 1.3.
func (c *Conn) AuthSCRAM(mechanism, user, password, flag string, cbData []byte) *etree.Element {
	c.t.Helper()
	newHash := sha256.New
	if strings.HasPrefix(mechanism, "SCRAM-SHA-1") {
		newHash = sha1.New
	}
	nonce := make([]byte, 18)
	_, _ = rand.Read(nonce)
	clientNonce := base64.RawStdEncoding.EncodeToString(nonce)
	gs2 := flag + ",,"
	first := "n=" + user + ",r=" + clientNonce
	c.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='%s'>%s</auth>",
		mechanism, base64.StdEncoding.EncodeToString([]byte(gs2+first)))
	el := c.Next()
	if el.Tag != "challenge" {
		return el
	}
	serverFirst, err := base64.StdEncoding.DecodeString(el.Text())
	if err != nil {
		c.t.Fatalf("parleytest: SCRAM challenge is not base64: %v", err)
	}
	attrs := map[byte]string{}
	for _, a := range strings.Split(string(serverFirst), ",") {
		if len(a) > 2 && a[1] == '=' {
			attrs[a[0]] = a[2:]
		}
	}
	salt, err := base64.StdEncoding.DecodeString(attrs['s'])
	iters, err2 := strconv.Atoi(attrs['i'])
	if err != nil || err2 != nil || !strings.HasPrefix(attrs['r'], clientNonce) {
		c.t.Fatalf("parleytest: bad SCRAM server-first-message %q", serverFirst)
	}
	salted, err := pbkdf2.Key(newHash, password, salt, iters, newHash().Size())
	if err != nil {
		c.t.Fatalf("parleytest: pbkdf2: %v", err)
	}
	cb := base64.StdEncoding.EncodeToString(append([]byte(gs2), cbData...))
	withoutProof := "c=" + cb + ",r=" + attrs['r']
	authMessage := []byte(first + "," + string(serverFirst) + "," + withoutProof)
	clientKey := mac(newHash, salted, []byte("Client Key"))
	h := newHash()
	h.Write(clientKey)
	proof := mac(newHash, h.Sum(nil), authMessage)
	subtle.XORBytes(proof, proof, clientKey)
	final := withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)
	c.Send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</response>", base64.StdEncoding.EncodeToString([]byte(final)))
	el = c.Next()
	if el.Tag == "success" {
		want := "v=" + base64.StdEncoding.EncodeToString(mac(newHash, mac(newHash, salted, []byte("Server Key")), authMessage))
		if got, _ := base64.StdEncoding.DecodeString(el.Text()); string(got) != want {
			c.t.Fatalf("parleytest: SCRAM server signature %q, want %q", got, want)
		}
	}
	return el
}

func mac(newHash func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(newHash, key)
	m.Write(msg)
	return m.Sum(nil)
}

package sasl

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/parley-im/parley/xmpp"
)

// serverNonceLen is how many random bytes the server adds to the nonce.
const serverNonceLen = 24

// scramFirst reads a client-first-message (RFC 5802 §7):
//
//	gs2-header = gs2-cbind-flag "," [ authzid ] ","
//	client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
//
// and answers with the server-first-message "r=nonce,s=salt,i=iterations".
// Every refusal here depends only on the message and the stream, never on
// whether the account exists.
func (s *Server) scramFirst(ctx context.Context, in []byte) ([]byte, error) {
	msg, err := checkMessage(in)
	if err != nil {
		return nil, err
	}
	flag, authzPart, bare, ok := cut3(msg)
	if !ok {
		return nil, fail(condMalformedRequest, "no gs2 header")
	}
	s.gs2Header = msg[:len(msg)-len(bare)]

	// The channel binding flag, against the mechanism and the stream.
	switch {
	case flag == "n":
		if s.plus {
			return nil, fail(condMalformedRequest, s.mechanism+" needs channel binding")
		}
	case flag == "y":
		if s.plus {
			return nil, fail(condMalformedRequest, s.mechanism+" needs channel binding")
		}
		// The client can bind but thinks we cannot, while this stream
		// offers -PLUS: someone may have removed it from the list the
		// client saw (RFC 5802 §6). Refusing protects that client from a
		// man in the middle. Without Config.ChannelBinding nothing is
		// offered, so "y" is true and passes.
		if cbs := s.cfg.ChannelBindings(); len(cbs) > 0 {
			return nil, fail(condNotAuthorized, "this stream offers channel binding ("+
				strings.Join(cbs, ", ")+"); pick a -PLUS mechanism, or send n if you cannot bind with these")
		}
	case strings.HasPrefix(flag, "p="):
		name := flag[2:]
		if !s.plus || !validCBName(name) {
			return nil, fail(condMalformedRequest, "channel binding flag does not fit "+s.mechanism)
		}
		if cbs := s.cfg.ChannelBindings(); !slices.Contains(cbs, name) {
			return nil, fail(condNotAuthorized, "channel binding type "+name+
				" is not offered on this stream; offered: "+strings.Join(cbs, ", "))
		}
		s.cbName = name
	default:
		return nil, fail(condMalformedRequest, "bad channel binding flag")
	}

	var authzid string
	if authzPart != "" {
		v, ok := strings.CutPrefix(authzPart, "a=")
		if !ok {
			return nil, fail(condMalformedRequest, "bad authzid")
		}
		if authzid, ok = decodeSaslname(v); !ok {
			return nil, fail(condMalformedRequest, "bad authzid")
		}
	}

	attrs := strings.Split(bare, ",")
	if err := checkAttrs(attrs); err != nil {
		return nil, err
	}
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") {
		return nil, fail(condMalformedRequest, "expected n= and r=")
	}
	name, ok := decodeSaslname(attrs[0][2:])
	if !ok {
		return nil, fail(condMalformedRequest, "bad username")
	}
	clientNonce := attrs[1][2:]
	if !validNonce(clientNonce) {
		return nil, fail(condMalformedRequest, "bad nonce")
	}

	username, err := xmpp.NormalizeLocal(name)
	if err != nil {
		return nil, fail(condNotAuthorized, textBadUsername)
	}
	if err := s.cfg.checkAuthzid(authzid, username); err != nil {
		return nil, err
	}

	key, known, err := s.lookup(ctx, username)
	if err != nil {
		return nil, err
	}
	if !known {
		key = fakeKey(s.newHash, username, s.cfg.iterations())
	}

	serverNonce := s.serverNonce
	if serverNonce == "" {
		b := make([]byte, serverNonceLen)
		if _, err := rand.Read(b); err != nil {
			return nil, fail(condTemporaryFailure, textTryAgain)
		}
		serverNonce = base64.StdEncoding.EncodeToString(b)
	}
	s.username = username
	s.clientFirstBare = bare
	s.nonce = clientNonce + serverNonce
	s.key = key
	s.known = known
	s.serverFirst = "r=" + s.nonce +
		",s=" + base64.StdEncoding.EncodeToString(key.Salt) +
		",i=" + strconv.Itoa(key.Iterations)
	return []byte(s.serverFirst), nil
}

// scramFinal reads a client-final-message (RFC 5802 §7):
//
//	channel-binding "," nonce ["," extensions] "," proof
//
// checks the channel binding, the nonce and the proof, and answers with
// the server-final-message "v=ServerSignature".
func (s *Server) scramFinal(in []byte) ([]byte, error) {
	msg, err := checkMessage(in)
	if err != nil {
		return nil, err
	}
	i := strings.LastIndexByte(msg, ',')
	if i < 0 {
		return nil, fail(condMalformedRequest, "no proof")
	}
	withoutProof, proofAttr := msg[:i], msg[i+1:]
	attrs := strings.Split(withoutProof, ",")
	if err := checkAttrs(append(attrs, proofAttr)); err != nil {
		return nil, err
	}
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "c=") || !strings.HasPrefix(attrs[1], "r=") ||
		!strings.HasPrefix(proofAttr, "p=") {
		return nil, fail(condMalformedRequest, "expected c=, r= and p=")
	}
	cb, err := base64.StdEncoding.Strict().DecodeString(attrs[0][2:])
	if err != nil {
		return nil, fail(condMalformedRequest, "channel binding is not base64")
	}
	proof, err := base64.StdEncoding.Strict().DecodeString(proofAttr[2:])
	if err != nil {
		return nil, fail(condMalformedRequest, "proof is not base64")
	}

	want := []byte(s.gs2Header)
	if s.plus {
		data, err := s.cfg.channelBinding(s.cbName)
		if err != nil {
			return nil, fail(condTemporaryFailure, textTryAgain)
		}
		want = append(want, data...)
	}
	if subtle.ConstantTimeCompare(cb, want) != 1 {
		return nil, fail(condNotAuthorized, "channel binding does not match")
	}
	if attrs[1][2:] != s.nonce {
		return nil, fail(condNotAuthorized, "nonce does not match")
	}

	// ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage), and the
	// client knows the password if H(ClientKey) is StoredKey. A fake
	// exchange does the same work and fails here too.
	authMessage := []byte(s.clientFirstBare + "," + s.serverFirst + "," + withoutProof)
	clientKey := hmacSum(s.newHash, s.key.StoredKey, authMessage)
	if len(proof) != len(clientKey) {
		return nil, fail(condNotAuthorized, textWrongCredentials)
	}
	subtle.XORBytes(clientKey, clientKey, proof)
	h := s.newHash()
	h.Write(clientKey)
	ok := subtle.ConstantTimeCompare(h.Sum(nil), s.key.StoredKey) == 1
	s.claimed, s.checked = s.username, true
	if !ok || !s.known {
		return nil, fail(condNotAuthorized, textWrongCredentials)
	}
	sig := hmacSum(s.newHash, s.key.ServerKey, authMessage)
	return []byte("v=" + base64.StdEncoding.EncodeToString(sig)), nil
}

// checkMessage refuses what no client message can be: empty, oversized or
// not UTF-8.
func checkMessage(in []byte) (string, error) {
	switch {
	case len(in) == 0:
		return "", fail(condMalformedRequest, "empty message")
	case len(in) > maxMessage:
		return "", fail(condMalformedRequest, "message too long")
	case !utf8.Valid(in):
		return "", fail(condMalformedRequest, "message is not UTF-8")
	}
	return string(in), nil
}

// cut3 splits "a,b,rest" into its three parts.
func cut3(s string) (a, b, rest string, ok bool) {
	a, s, ok1 := strings.Cut(s, ",")
	b, rest, ok2 := strings.Cut(s, ",")
	return a, b, rest, ok1 && ok2
}

// checkAttrs checks that each element is an attr-val, "x=value" with x a
// letter, and that none is the reserved m= of RFC 5802 §5.1, which must
// fail authentication.
func checkAttrs(attrs []string) error {
	for _, a := range attrs {
		if len(a) < 2 || a[1] != '=' || !isAlpha(a[0]) {
			return fail(condMalformedRequest, "bad attribute")
		}
		if a[0] == 'm' {
			return fail(condMalformedRequest, "unsupported mandatory extension")
		}
	}
	return nil
}

// decodeSaslname undoes the escaping of RFC 5802 §5.1: "=2C" is ',' and
// "=3D" is '='; any other '=' (or a ',') makes the name invalid, and so
// does an empty one.
func decodeSaslname(s string) (string, bool) {
	if s == "" || strings.ContainsRune(s, ',') {
		return "", false
	}
	if !strings.Contains(s, "=") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", false
		}
		i += 2
	}
	return b.String(), true
}

// validNonce checks for 1*printable, where printable is %x21-7E but ','.
func validNonce(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// validCBName checks cb-name = 1*(ALPHA / DIGIT / "." / "-").
func validCBName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlpha(c) && (c < '0' || c > '9') && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

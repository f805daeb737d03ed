package sasl

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"

	"github.com/parley-im/parley/storage"
)

// Mechanism names, as they appear in <mechanism/> and in the mechanism
// attribute of <auth/>.
const (
	SCRAMSHA1       = "SCRAM-SHA-1"
	SCRAMSHA1Plus   = "SCRAM-SHA-1-PLUS"
	SCRAMSHA256     = "SCRAM-SHA-256"
	SCRAMSHA256Plus = "SCRAM-SHA-256-PLUS"
	Plain           = "PLAIN"
)

// DefaultIterations is the PBKDF2 iteration count used for the fake
// exchanges of unknown users when [Config.Iterations] is zero. It is above
// the 4096 that RFC 7677 §4 sets as the floor. It is also the default of
// the iteration count of new keys ([auth] scram_iterations), which package
// conf takes from here.
const DefaultIterations = 10000

// maxMessage bounds every client message. A SCRAM client-first-message
// carries at most an escaped username and authzid of 1023 bytes each, so
// anything longer is not a real client.
const maxMessage = 8192

// Failure conditions of RFC 6120 §6.5 that this package produces.
const (
	condEncryptionRequired = "encryption-required"
	condInvalidAuthzid     = "invalid-authzid"
	condInvalidMechanism   = "invalid-mechanism"
	condMalformedRequest   = "malformed-request"
	condNotAuthorized      = "not-authorized"
	condTemporaryFailure   = "temporary-auth-failure"
)

// Texts of <failure/> that a person can act on. None of them tells whether
// an account exists: a wrong password and an unknown user read the same.
const (
	textWrongCredentials = "wrong username or password"
	textBadUsername      = "the username is not valid"
	textAuthzid          = "the authorization identity must be empty or your own bare JID"
	textTryAgain         = "the server could not check the credentials now; try again later"
)

// ErrUnknownUser is what a [Lookup] returns when the host has no account
// with that username. Any other error from a Lookup ends the exchange with
// temporary-auth-failure.
var ErrUnknownUser = errors.New("sasl: unknown user")

// Lookup finds the account of a normalized username on the stream's host.
// When there is no such account it returns an error that wraps
// [ErrUnknownUser]: a Lookup over storage.Store maps storage.ErrNotFound to
// it, since this package does not look at storage's errors.
type Lookup func(ctx context.Context, username string) (storage.Account, error)

// Failure is how an exchange ends when it does not authenticate. Condition
// is one of the RFC 6120 §6.5 element names (aborted, account-disabled,
// credentials-expired, encryption-required, incorrect-encoding,
// invalid-authzid, invalid-mechanism, malformed-request,
// mechanism-too-weak, not-authorized, temporary-auth-failure), to be sent as
// the child of <failure/>. Text, when not empty, is meant for the optional
// <text/> child: it never tells whether an account exists.
type Failure struct {
	Condition string
	Text      string
	// cause is what made a temporary-auth-failure (the store's error),
	// for the caller (errors.Is); the client sees Condition and Text.
	cause error
}

// Unwrap returns the cause of a temporary failure, if any.
func (f *Failure) Unwrap() error { return f.cause }

// Error returns "sasl: " followed by the condition and, when there is one,
// the text.
func (f *Failure) Error() string {
	if f.Text == "" {
		return "sasl: " + f.Condition
	}
	return "sasl: " + f.Condition + ": " + f.Text
}

// Is reports whether target is a *Failure with the same condition, so that
// errors.Is(err, &Failure{Condition: "not-authorized"}) matches any text.
func (f *Failure) Is(target error) bool {
	t, ok := target.(*Failure)
	return ok && t.Condition == f.Condition
}

func fail(condition, text string) error {
	return &Failure{Condition: condition, Text: text}
}

// Config is what one stream knows when it offers SASL. Build it after TLS
// (if any) is negotiated: what is offered depends on it.
type Config struct {
	// Lookup finds accounts on Host. It must not be nil.
	Lookup Lookup

	// Host is the domain the stream is addressed to, lower case. An
	// authorization identity is accepted only when it is the bare JID of
	// the authenticating user on this host.
	Host string

	// TLS is the state of the stream's TLS connection after the handshake,
	// from tls.Conn.ConnectionState, or nil when the stream is not
	// encrypted.
	TLS *tls.ConnectionState

	// ServerCert is the DER of the leaf certificate the server presented
	// on this stream (the one picked for its SNI), for the
	// tls-server-end-point channel binding. Leave it nil to offer only
	// tls-exporter.
	ServerCert []byte

	// AllowPlain offers PLAIN on encrypted streams. PLAIN is never offered
	// on a stream without TLS, whatever this says.
	AllowPlain bool

	// ChannelBinding offers channel binding: the -PLUS mechanisms and the
	// XEP-0440 list of [Config.ChannelBindings], and with them the
	// downgrade check of RFC 5802 §6, which refuses a client that says it
	// can bind but thinks the server cannot (gs2 flag "y").
	//
	// Left false, nothing with channel binding is offered, and "y" is then
	// the truth and passes. That is the default because of clients that
	// pick -PLUS whenever it is offered but know only tls-unique, which
	// TLS 1.3 does not have (RFC 9266 §3) and Go does not expose: slixmpp
	// 1.8 (and so poezio and most Python bots) fails -PLUS there, and its
	// "y" with plain SCRAM would then be refused as a downgrade, so it
	// could not log in at all. Prosody 0.12 offers no -PLUS on TLS 1.3 for
	// the same reason.
	ChannelBinding bool

	// Iterations is the PBKDF2 iteration count the server gives new keys.
	// An unknown user's fake exchange announces it, so that it looks like
	// a real account's, unless KeyIterations says what the accounts have.
	// Zero means DefaultIterations.
	Iterations int

	// FakeSecret keys the salts of unknown users' fake exchanges. Keep it
	// across restarts (the server keeps it in its data directory): a salt
	// that changed at a restart would tell that nobody has that name.
	// Empty means a secret drawn once per process.
	FakeSecret []byte

	// KeyIterations are the iteration counts of the accounts' keys and
	// how many keys have each. An unknown user's fake exchange announces
	// one of them, picked by its name (the same each time) in proportion
	// to how many keys have it, so that after scram_iterations changes an
	// old count does not tell a real account from a fake one. Empty means
	// Iterations.
	KeyIterations []IterationCount
}

// IterationCount is how many keys have one iteration count.
type IterationCount struct {
	Iterations, Keys int
}

// fakeIterations is the iteration count of username's fake key.
func (c Config) fakeIterations(username string) int {
	total := 0
	for _, k := range c.KeyIterations {
		if k.Iterations > 0 && k.Keys > 0 {
			total += k.Keys
		}
	}
	if total == 0 {
		if c.Iterations > 0 {
			return c.Iterations
		}
		return DefaultIterations
	}
	secret := c.FakeSecret
	if len(secret) == 0 {
		secret = fakeSecret
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("iterations\x00" + username))
	pick := int(binary.BigEndian.Uint64(m.Sum(nil)) % uint64(total))
	for _, k := range c.KeyIterations {
		if k.Iterations <= 0 || k.Keys <= 0 {
			continue
		}
		if pick < k.Keys {
			return k.Iterations
		}
		pick -= k.Keys
	}
	return c.Iterations // not reached
}

// Mechanisms lists the mechanisms to offer on this stream, strongest
// first: the -PLUS variants only when the stream is encrypted and has a
// channel binding (see [Config.ChannelBindings]), then plain SCRAM, then
// PLAIN only on an encrypted stream with AllowPlain set.
func (c Config) Mechanisms() []string {
	var m []string
	if len(c.ChannelBindings()) > 0 {
		m = append(m, SCRAMSHA256Plus, SCRAMSHA1Plus)
	}
	m = append(m, SCRAMSHA256, SCRAMSHA1)
	if c.TLS != nil && c.AllowPlain {
		m = append(m, Plain)
	}
	return m
}

// ChannelBindings lists the channel binding types this stream offers, in
// order of preference, for the -PLUS mechanisms and for XEP-0440:
// tls-exporter when the stream runs TLS 1.3, and tls-server-end-point when
// ServerCert is set and its signature algorithm names one hash
// (RFC 5929 §4.1; not Ed25519). It is empty without TLS, and without
// [Config.ChannelBinding].
func (c Config) ChannelBindings() []string {
	if !c.ChannelBinding || c.TLS == nil || !c.TLS.HandshakeComplete {
		return nil
	}
	var cb []string
	if c.TLS.Version >= tls.VersionTLS13 {
		cb = append(cb, TLSExporter)
	}
	if len(c.ServerCert) > 0 {
		if _, err := endPointHash(c.ServerCert); err == nil {
			cb = append(cb, TLSServerEndPoint)
		}
	}
	return cb
}

// NewServer starts an exchange with the mechanism the client picked. The
// error is a *Failure with invalid-mechanism when this stream does not
// offer that mechanism, encryption-required when it would be offered once
// the stream is encrypted (PLAIN with AllowPlain before TLS), or
// temporary-auth-failure when the Config has no Lookup.
func (c Config) NewServer(mechanism string) (*Server, error) {
	if !slices.Contains(c.Mechanisms(), mechanism) {
		if mechanism == Plain && c.TLS == nil && c.AllowPlain {
			return nil, fail(condEncryptionRequired, "PLAIN needs TLS")
		}
		return nil, fail(condInvalidMechanism, fmt.Sprintf("%q is not offered on this stream; pick one of %s",
			mechanism, strings.Join(c.Mechanisms(), ", ")))
	}
	if c.Lookup == nil {
		return nil, fail(condTemporaryFailure, "no account lookup configured")
	}
	s := &Server{cfg: c, mechanism: mechanism}
	switch mechanism {
	case SCRAMSHA1, SCRAMSHA1Plus:
		s.newHash = sha1.New
	case SCRAMSHA256, SCRAMSHA256Plus, Plain:
		s.newHash = sha256.New
	}
	s.plus = mechanism == SCRAMSHA1Plus || mechanism == SCRAMSHA256Plus
	return s, nil
}

// state is where an exchange stands.
type state uint8

const (
	stateFirst  state = iota // waiting for the client's first message
	stateFinal               // SCRAM: waiting for the client-final-message
	stateDone                // authenticated
	stateFailed              // refused; the exchange is over
)

// Server runs one SASL exchange on one stream. Get one from
// [Config.NewServer]; it is not safe for use by several goroutines, and a
// new attempt needs a new Server.
type Server struct {
	cfg       Config
	mechanism string
	newHash   func() hash.Hash
	plus      bool
	state     state
	username  string

	// claimed is the username the client gave, normalized, and checked
	// whether its credentials were compared (right or wrong): see
	// [Server.Checked]. Unlike username they outlive a failure.
	claimed string
	checked bool

	// SCRAM, between the first and the final message.
	gs2Header       string // as the client sent it, for the c= check
	cbName          string // the channel binding type of a -PLUS exchange
	clientFirstBare string
	serverFirst     string
	nonce           string // client nonce followed by server nonce
	key             storage.SCRAMKey
	known           bool // false while running a fake exchange

	// Hashed Token (FAST): where the tokens come from, and the one that
	// matched.
	tokens TokenLookup
	token  *Token

	// serverNonce, when set, replaces the random half of the nonce. Only
	// tests set it, to replay the RFC examples.
	serverNonce string
}

// Step takes the client's next message, decoded from base64, and returns
// the server's answer. The first call gets the initial response of <auth/>;
// when <auth/> carries none, the caller sends an empty <challenge/> itself
// and passes the client's <response/> to the first call. An initial
// response of "=" (present but empty) is an empty in, which no mechanism
// here accepts.
//
// While done is false, out goes into a <challenge/>. When done is true and
// err is nil the client is authenticated as [Server.Username], and out (the
// SCRAM server-final-message, empty for PLAIN) goes into <success/>. Any
// error is a *Failure, and ends the exchange.
func (s *Server) Step(ctx context.Context, in []byte) (out []byte, done bool, err error) {
	switch s.state {
	case stateFirst:
		switch {
		case s.tokens != nil:
			out, err = s.htStep(ctx, in)
			done = err == nil
		case s.mechanism == Plain:
			err = s.plainStep(ctx, in)
			done = err == nil
		default:
			out, err = s.scramFirst(ctx, in)
		}
	case stateFinal:
		out, err = s.scramFinal(in)
		done = err == nil
	default:
		// A finished exchange stays as it finished.
		return nil, false, fail(condMalformedRequest, "the exchange is over")
	}
	if err != nil {
		s.forget()
		s.username = ""
		s.state = stateFailed
		return nil, false, err
	}
	if done {
		s.forget()
		s.state = stateDone
	} else {
		s.state = stateFinal
	}
	return out, done, nil
}

// forget drops what an exchange keeps between its steps.
func (s *Server) forget() {
	s.gs2Header, s.cbName, s.clientFirstBare, s.serverFirst, s.nonce = "", "", "", "", ""
	s.key = storage.SCRAMKey{}
	s.known = false
}

// Claimed returns the normalized username the client gave, once a step has
// read it (SCRAM's first message, PLAIN's only one), whatever came of it;
// "" before that or when the message was malformed.
func (s *Server) Claimed() string { return s.claimed }

// Checked returns the normalized username of an exchange whose credentials
// were compared with the account's (PLAIN's password, SCRAM's proof),
// whatever the comparison found, and whether they were. A failure before
// that (a malformed message, a channel binding or nonce that does not
// match) is not a password guess, and returns ok false.
func (s *Server) Checked() (username string, ok bool) {
	return s.claimed, s.checked
}

// Username is the normalized username the client authenticated as, or ""
// until [Server.Step] has returned done with no error.
func (s *Server) Username() string {
	if s.state != stateDone {
		return ""
	}
	return s.username
}

// lookup finds the key of username for this exchange's hash. known is false
// when there is no account or it has no key for this hash; the caller then
// runs a fake exchange with the key that fakeKey returns.
func (s *Server) lookup(ctx context.Context, username string) (key storage.SCRAMKey, known bool, err error) {
	acct, err := s.cfg.Lookup(ctx, username)
	switch {
	case errors.Is(err, ErrUnknownUser):
		return storage.SCRAMKey{}, false, nil
	case err != nil:
		return storage.SCRAMKey{}, false, &Failure{Condition: condTemporaryFailure, Text: textTryAgain, cause: err}
	}
	size := s.newHash().Size()
	switch s.mechanism {
	case SCRAMSHA1, SCRAMSHA1Plus:
		key = acct.SHA1
	case SCRAMSHA256, SCRAMSHA256Plus:
		key = acct.SHA256
	case Plain:
		key = acct.SHA256
		if !validKey(key, size) {
			key = acct.SHA1
			s.newHash = sha1.New
			size = sha1.Size
		}
	}
	if !validKey(key, size) {
		return storage.SCRAMKey{}, false, nil
	}
	return key, true, nil
}

func validKey(k storage.SCRAMKey, size int) bool {
	return len(k.Salt) > 0 && k.Iterations > 0 && len(k.StoredKey) == size && len(k.ServerKey) == size
}

package c2s

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"strings"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/c2s/sasl"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// SASL2 (XEP-0388) with Bind2 (XEP-0386), stream management inline
// (XEP-0198 §7) and FAST tokens (XEP-0484).
//
// The mechanisms and channel-binding policy are SASL's (saslConfig), the
// exchange and the login limits too (exchange): only the wrapping
// differs. After <success/> the stream goes on without a restart. Bind2
// binds a resource before <success/> is written; what the client asks to
// enable with it is stream management's <enable/>, taken here, or handed
// to the host (InlineRouter), which says which features it offers.

// Namespaces of SASL2, Bind2 and FAST.
const (
	NSSASL2 = "urn:xmpp:sasl:2"
	NSBind2 = "urn:xmpp:bind:0"
	NSFast  = "urn:xmpp:fast:0"
)

// InlineRouter is a Router whose hosts take features that a Bind2 request
// enables inline (XEP-0386 §2.2: carbons, CSI). c2s names none of them.
type InlineRouter interface {
	// InlineFeatures lists the host's inline features (their disco
	// vars), for Bind2's <inline/> in the stream features.
	InlineFeatures(host string) []string
	// Inline hands the host one child of a Bind2 request, after the
	// session is bound and before <success/> is written; false means
	// nobody took it, and it is ignored.
	Inline(s *Session, el *etree.Element) bool
}

// Tokens keeps FAST tokens; storage.Store is one.
type Tokens interface {
	FastTokens(ctx context.Context, host, username, agent string) ([]storage.FastToken, error)
	AddFastToken(ctx context.Context, host, username, agent string, t storage.FastToken) error
	UseFastToken(ctx context.Context, host, username, agent string, id []byte) error
	DeleteFastToken(ctx context.Context, host, username, agent string, id []byte) error
}

// maxAgentID bounds the user-agent id (a UUID is 36 characters).
const maxAgentID = 128

// newTokenKey derives the key of FAST tokens' secrets from the server's
// long-lived secret, or draws one for the process when there is none
// (tokens then die with it).
func newTokenKey(secret []byte) []byte {
	if len(secret) == 0 {
		secret = make([]byte, 32)
		_, _ = rand.Read(secret)
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("parley fast tokens"))
	return m.Sum(nil)
}

// tokenSecret is the secret of the token id of a client: the database
// holds id, never this, and a copy of the database alone logs nobody in.
// (HT's HMAC is keyed by the token itself, so no hash of the token could
// check it: what is kept is the id and a key outside the database.)
func (srv *Server) tokenSecret(host, username, agent string, id []byte) []byte {
	m := hmac.New(sha256.New, srv.tokenKey)
	m.Write([]byte(host + "\x00" + username + "\x00" + agent + "\x00"))
	m.Write(id)
	return []byte("secret-token:fast-" + base64.RawURLEncoding.EncodeToString(m.Sum(nil)))
}

// offerSASL2 is the <authentication/> feature: SASL's mechanisms, and
// inline resumption, Bind2 and FAST.
func (s *Session) offerSASL2() *etree.Element {
	if s.mustEncrypt() {
		return nil
	}
	el := newElementNS(NSSASL2, "authentication")
	for _, m := range s.saslConfig().Mechanisms() {
		el.CreateElement("mechanism").SetText(m)
	}
	inline := el.CreateElement("inline")
	if s.srv.cfg.ResumeTimeout > 0 {
		inline.AddChild(newElementNS(NSSM, "sm"))
	}
	bind := newElementNS(NSBind2, "bind")
	bi := bind.CreateElement("inline")
	bi.CreateElement("feature").CreateAttr("var", NSSM)
	if ir, ok := s.srv.cfg.Router.(InlineRouter); ok {
		for _, f := range ir.InlineFeatures(s.host) {
			bi.CreateElement("feature").CreateAttr("var", f)
		}
	}
	inline.AddChild(bind)
	if s.srv.cfg.Tokens != nil {
		fast := newElementNS(NSFast, "fast")
		fast.CreateElement("mechanism").SetText(sasl.HTSHA256None)
		inline.AddChild(fast)
	}
	return el
}

// decodeSASL2 decodes SASL2's base64: an empty element is an empty
// message (XEP-0388 §2.2).
func decodeSASL2(text string) ([]byte, bool) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
	if b == nil {
		b = []byte{}
	}
	return b, err == nil
}

// authenticate2 runs a SASL2 <authenticate/>, and what it asks for
// inline: a resumption, a bind, a FAST token.
func (s *Session) authenticate2(el *etree.Element) error {
	if el.Tag != "authenticate" {
		return s.saslFailureIn(NSSASL2, &sasl.Failure{Condition: "aborted", Text: "no authentication is under way"})
	}
	if s.mustEncrypt() {
		return s.saslFailureIn(NSSASL2, &sasl.Failure{Condition: "encryption-required", Text: s.encryptFirst()})
	}
	agent := ""
	if ua := xmpp.Child(el, NSSASL2, "user-agent"); ua != nil {
		agent = strings.TrimSpace(ua.SelectAttrValue("id", ""))
		if len(agent) > maxAgentID {
			return s.saslFailureIn(NSSASL2, &sasl.Failure{Condition: "malformed-request", Text: "the user-agent id is too long"})
		}
	}
	mech := el.SelectAttrValue("mechanism", "")
	fast := xmpp.Child(el, NSFast, "fast")
	cfg := s.saslConfig()
	var srv *sasl.Server
	var err error
	switch {
	case fast == nil && !strings.HasPrefix(mech, "HT-"):
		srv, err = cfg.NewServer(mech)
	case s.srv.cfg.Tokens == nil:
		err = &sasl.Failure{Condition: "invalid-mechanism", Text: "this server offers no FAST"}
	case agent == "":
		err = &sasl.Failure{Condition: "malformed-request", Text: "FAST needs the <user-agent/> id its token was issued to"}
	default:
		srv, err = cfg.NewTokenServer(mech, s.tokenLookup(agent, mech))
	}
	if err != nil {
		return s.saslFailureIn(NSSASL2, err)
	}
	initial := ""
	decode := decodeSASL2
	if ir := xmpp.Child(el, NSSASL2, "initial-response"); ir != nil {
		initial = ir.Text()
	} else {
		// No initial response: the exchange starts with a challenge.
		decode = func(t string) ([]byte, bool) {
			decode = decodeSASL2
			return nil, true
		}
	}
	out, authed, err := s.exchange(NSSASL2, srv, initial, func(t string) ([]byte, bool) { return decode(t) })
	if !authed {
		return err
	}
	s.username = srv.Username()
	s.state |= stateAuthenticated
	s.log(slog.LevelInfo, "c2s: authenticated (SASL2)", "mechanism", mech)

	// <success/>'s children: additional data, the identity (filled in
	// last), then what the inline requests gave.
	success := newElementNS(NSSASL2, "success")
	if len(out) > 0 {
		success.CreateElement("additional-data").SetText(base64.StdEncoding.EncodeToString(out))
	}
	authzid := success.CreateElement("authorization-identifier")
	authzid.SetText(s.username + "@" + s.host)
	if tok := s.fastTokens(el, srv, fast, agent); tok != nil {
		success.AddChild(tok)
	}
	if r := xmpp.Child(el, NSSM, "resume"); r != nil {
		failed, err := s.resume(r, func(o *Session, resumed *etree.Element) *etree.Element {
			// The resumed session writes this <success/> first on
			// the connection it takes over, and no features after it
			// (XEP-0198 §7.2).
			authzid.SetText(o.jidAddr)
			success.AddChild(resumed)
			return success
		})
		if err != nil {
			return err
		}
		// XEP-0198 §7.2.1: the <failed/> goes into <success/>, and a
		// bind goes on.
		success.AddChild(failed)
	}
	if b := xmpp.Child(el, NSBind2, "bind"); b != nil && s.bind2(b, agent, success, authzid) {
		return nil
	}
	if err := s.w.WriteElement(success); err != nil {
		return err
	}
	if err := s.w.WriteElement(s.streamFeatures()); err != nil {
		return err
	}
	return s.flush()
}

// tokenLookup finds the tokens of a client for mechanism, with their
// secrets.
func (s *Session) tokenLookup(agent, mechanism string) sasl.TokenLookup {
	return func(_ context.Context, username string) ([]sasl.Token, error) {
		ctx, done := s.storeContext()
		defer done()
		stored, err := s.srv.cfg.Tokens.FastTokens(ctx, s.host, username, agent)
		if err != nil {
			return nil, err
		}
		var out []sasl.Token
		for _, t := range stored {
			if t.Mechanism != mechanism {
				// XEP-0484 §2.4: a token is good for its mechanism only.
				continue
			}
			out = append(out, sasl.Token{Secret: s.srv.tokenSecret(s.host, username, agent, t.ID), Expires: t.Expires, ID: t.ID})
		}
		return out, nil
	}
}

// fastTokens does FAST's part after a successful exchange: a token used
// is kept (or dropped, with invalidate), and a new one is issued when the
// client asked for one or the used one is in the second half of its life.
// It returns the <token/> for <success/>, or nil. A store that fails
// costs the client its new token, not its login.
func (s *Session) fastTokens(el *etree.Element, srv *sasl.Server, fast *etree.Element, agent string) *etree.Element {
	tokens := s.srv.cfg.Tokens
	if tokens == nil || agent == "" {
		return nil
	}
	ctx, done := s.storeContext()
	defer done()
	issue := ""
	if used := srv.Token(); used != nil {
		if v := fast.SelectAttrValue("invalidate", ""); v == "true" || v == "1" {
			if err := tokens.DeleteFastToken(ctx, s.host, s.username, agent, used.ID); err != nil {
				s.log(slog.LevelError, "c2s: fast: invalidate token", "err", err)
			}
		} else {
			if err := tokens.UseFastToken(ctx, s.host, s.username, agent, used.ID); err != nil {
				s.log(slog.LevelError, "c2s: fast: use token", "err", err)
			}
			if time.Until(used.Expires) < s.srv.cfg.TokenTTL/2 {
				issue = sasl.HTSHA256None // rotation (XEP-0484 §2.5)
			}
		}
	}
	if rt := xmpp.Child(el, NSFast, "request-token"); rt != nil {
		issue = rt.SelectAttrValue("mechanism", "")
	}
	if issue != sasl.HTSHA256None {
		return nil
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	t := storage.FastToken{Mechanism: issue, ID: id, Expires: time.Now().Add(s.srv.cfg.TokenTTL).Truncate(time.Second)}
	if err := tokens.AddFastToken(ctx, s.host, s.username, agent, t); err != nil {
		s.log(slog.LevelError, "c2s: fast: issue token", "err", err)
		return nil
	}
	tok := newElementNS(NSFast, "token")
	tok.CreateAttr("expiry", t.Expires.UTC().Format(time.RFC3339))
	tok.CreateAttr("token", string(s.srv.tokenSecret(s.host, s.username, agent, id)))
	return tok
}

// bind2 binds a resource for a Bind2 request and enables what it asks
// inline, then hands <success/> and the features to the writer. It
// reports false when the bind was refused: the caller then sends
// <success/> with the bare JID, and the stream offers legacy bind.
//
// The resource is the client's tag and an id that is the same for every
// login of the same client (user-agent id) and account, as Prosody
// derives it; it does not show the user-agent id (XEP-0386 §2.2.1). A
// second login of a client so replaces its first session (XEP-0386:
// "SHOULD terminate any earlier sessions from the same client"). Without
// a user-agent id it is random.
func (s *Session) bind2(req *etree.Element, agent string, success, authzid *etree.Element) bool {
	id := randomID()
	if agent != "" {
		sum := sha256.Sum256([]byte(s.host + "\x00" + s.username + "\x00" + agent))
		id = base64.RawURLEncoding.EncodeToString(sum[:9])
	}
	res := id
	if t := xmpp.Child(req, NSBind2, "tag"); t != nil {
		if tag := strings.TrimSpace(t.Text()); tag != "" && len(tag) <= 64 {
			res = tag + "/" + id
		}
	}
	local, err := xmpp.New(s.username, s.host, res)
	if err != nil {
		local, _ = xmpp.New(s.username, s.host, id)
	}
	s.jid, s.jidAddr = local, local.String()
	if err := s.srv.cfg.Router.Bind(s); err != nil {
		s.jid, s.jidAddr = xmpp.JID{}, ""
		s.log(slog.LevelInfo, "c2s: bind2 refused", "err", err)
		return false
	}
	s.state |= stateBound
	s.doing.Store(doReading)
	s.srv.mu.Lock()
	s.srv.authenticated(s)
	s.srv.mu.Unlock()
	s.log(slog.LevelInfo, "c2s: bound (bind2)")
	authzid.SetText(s.jidAddr)
	bound := newElementNS(NSBind2, "bound")
	ir, _ := s.srv.cfg.Router.(InlineRouter)
	for _, c := range req.ChildElements() {
		switch {
		case c.Tag == "tag" && xmpp.NS(c) == NSBind2:
		case c.Tag == "enable" && xmpp.NS(c) == NSSM:
			sm, enabled := s.newSM(c)
			// Nothing was written yet: what is queued since Bind goes
			// out after <success/>, and counts.
			s.qmu.Lock()
			s.sm = sm
			s.qmu.Unlock()
			bound.AddChild(enabled)
		case ir != nil && ir.Inline(s, c):
		default:
			s.log(slog.LevelDebug, "c2s: bind2: inline element not offered", "element", "{"+xmpp.NS(c)+"}"+c.Tag)
		}
	}
	success.AddChild(bound)
	s.startWriter(success, s.streamFeatures())
	return true
}

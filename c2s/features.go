package c2s

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/c2s/sasl"
	"github.com/parley-im/parley/internal/clientaddr"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// feature is one stream feature: when it is offered, what the offer looks
// like and how it is negotiated. New features (stream management, SASL2,
// Bind2) are new entries in the features list, not new branches.
type feature struct {
	name string
	// need and not select the streams it applies to: every bit of need is
	// set and no bit of not is.
	need, not state
	// offer returns the element announced in <stream:features/>, nil for
	// a feature that is negotiated but not announced.
	offer func(s *Session) *etree.Element
	// match reports whether el starts this feature's negotiation.
	match func(el *etree.Element) bool
	// negotiate runs it. A nil error with a stream restart is handled by
	// the feature itself.
	negotiate func(s *Session, el *etree.Element) error
}

// features is the ordered list of what a c2s stream can negotiate. It is
// filled in init because the negotiations refer back to it when they
// restart the stream.
var features []feature

func init() {
	features = []feature{
		{
			name: "starttls", not: stateSecure | stateAuthenticated,
			offer: func(s *Session) *etree.Element {
				if s.websocket() {
					// RFC 7395 §3.9: TLS is the WebSocket's (wss://).
					return nil
				}
				el := newElementNS(xmpp.NSTLS, "starttls")
				if s.srv.cfg.RequireTLS {
					el.CreateElement("required")
				}
				return el
			},
			match:     matchTop(xmpp.NSTLS, "starttls"),
			negotiate: (*Session).startTLS,
		},
		{
			name: "sasl", not: stateAuthenticated,
			offer:     (*Session).offerSASL,
			match:     func(el *etree.Element) bool { return xmpp.NS(el) == xmpp.NSSASL },
			negotiate: (*Session).authenticate,
		},
		{
			// XEP-0388, with Bind2 (XEP-0386), inline resumption
			// (XEP-0198 §7) and FAST (XEP-0484) inline: sasl2.go.
			name: "sasl2", not: stateAuthenticated,
			offer:     (*Session).offerSASL2,
			match:     func(el *etree.Element) bool { return xmpp.NS(el) == NSSASL2 },
			negotiate: (*Session).authenticate2,
		},
		{
			name: "sasl-channel-binding", not: stateAuthenticated, need: stateSecure,
			offer: func(s *Session) *etree.Element {
				cbs := s.saslConfig().ChannelBindings()
				if len(cbs) == 0 {
					return nil
				}
				el := newElementNS(xmpp.NSSASLCB, "sasl-channel-binding")
				for _, cb := range cbs {
					el.CreateElement("channel-binding").CreateAttr("type", cb)
				}
				return el
			},
		},
		{
			name: "register", need: stateSecure, not: stateAuthenticated,
			offer:     (*Session).offerRegister,
			match:     matchRegister,
			negotiate: (*Session).register,
		},
		{
			// XEP-0478: the limits this stream enforces, so that a client
			// can shrink a stanza (an avatar, a vCard) instead of losing
			// its stream to policy-violation, as Prosody 13 announces
			// them. The idle time is the bound stream's, which a client
			// plans its keepalives by (before bind the stream has a fixed
			// deadline, HandshakeTimeout after accept).
			name: "limits",
			offer: func(s *Session) *etree.Element {
				el := newElementNS(xmpp.NSLimits, "limits")
				el.CreateElement("max-bytes").SetText(strconv.FormatInt(s.srv.cfg.Limits.MaxStanza, 10))
				if idle := s.srv.cfg.IdleTimeout; idle >= time.Second {
					el.CreateElement("idle-seconds").SetText(strconv.Itoa(int(idle / time.Second)))
				}
				return el
			},
		},
		{
			// Features the server announces without negotiating them here
			// (entity capabilities, roster versioning, pre-approval): a
			// wrapper whose children are spliced in.
			name: "extra",
			offer: func(s *Session) *etree.Element {
				if s.srv.cfg.ExtraFeatures == nil {
					return nil
				}
				w := etree.NewElement("extra")
				for _, el := range s.srv.cfg.ExtraFeatures(s.host, s.state&stateAuthenticated != 0) {
					w.AddChild(el.Copy())
				}
				return w
			},
		},
		{
			name: "bind", need: stateAuthenticated, not: stateBound,
			offer: func(s *Session) *etree.Element { return newElementNS(xmpp.NSBind, "bind") },
			match: func(el *etree.Element) bool {
				if xmpp.KindOf(el) != xmpp.KindIQ {
					return false
				}
				c := el.ChildElements()
				return len(c) == 1 && c[0].Tag == "bind" && xmpp.NS(c[0]) == xmpp.NSBind
			},
			negotiate: (*Session).bind,
		},
		{
			// XEP-0198: offered with bind, enabled after it; a resume
			// takes the place of bind.
			name: "sm", need: stateAuthenticated, not: stateBound,
			offer:     smFeature,
			match:     func(el *etree.Element) bool { return xmpp.NS(el) == NSSM },
			negotiate: (*Session).negotiateSM,
		},
		{
			name: "session", need: stateAuthenticated, not: stateBound,
			offer: func(s *Session) *etree.Element {
				el := newElementNS(xmpp.NSSession, "session")
				el.CreateElement("optional")
				return el
			},
		},
	}
}

func matchTop(ns, local string) func(*etree.Element) bool {
	return func(el *etree.Element) bool { return el.Tag == local && xmpp.NS(el) == ns }
}

// applies reports whether f is available on the session's stream now.
func (f *feature) applies(s *Session) bool {
	return s.state&f.need == f.need && s.state&f.not == 0
}

// features builds <stream:features/> for the stream's current state.
func (s *Session) streamFeatures() *etree.Element {
	el := etree.NewElement("stream:features")
	for i := range features {
		f := &features[i]
		if f.offer == nil || !f.applies(s) {
			continue
		}
		o := f.offer(s)
		switch {
		case o == nil:
		case f.name == "extra":
			for _, c := range o.ChildElements() {
				el.AddChild(c)
			}
		default:
			el.AddChild(o)
		}
	}
	return el
}

// negotiate takes one element of a stream that is not bound yet.
func (s *Session) negotiate(el *etree.Element) error {
	for i := range features {
		f := &features[i]
		if f.match != nil && f.applies(s) && f.match(el) {
			return f.negotiate(s, el)
		}
	}
	if xmpp.KindOf(el) != xmpp.KindNone {
		// RFC 6120 §6.4.1 and §7.1: no stanzas before authentication and bind.
		return xmpp.NewStreamError(xmpp.StreamNotAuthorized, "authenticate and bind a resource before sending stanzas")
	}
	return xmpp.NewStreamError(xmpp.UnsupportedStanzaType, "<"+el.Tag+"/> is not expected here")
}

// startTLS upgrades the connection (RFC 6120 §5.4).
func (s *Session) startTLS(*etree.Element) error {
	if s.websocket() {
		return xmpp.NewStreamError(xmpp.UnsupportedFeature, "no STARTTLS over WebSocket: connect with wss:// (RFC 7395 §3.9)")
	}
	if s.r.SkipBufferedSpace() > 0 {
		// Data after <starttls/> and before <proceed/> would be read in
		// the clear and trusted as if it came over TLS: an attacker on
		// the path could inject stanzas that way (the STARTTLS command
		// injection of CVE-2011-0411). White space is not data and was
		// dropped (go-sendxmpp sends a newline with <starttls/>).
		return xmpp.NewStreamError(xmpp.StreamPolicyViolation, "data sent before the TLS handshake")
	}
	if err := s.w.WriteElement(newElementNS(xmpp.NSTLS, "proceed")); err != nil {
		return err
	}
	if err := s.flush(); err != nil {
		return err
	}
	tc := tls.Server(s.conn, s.srv.cfg.TLS)
	if err := s.handshake(tc); err != nil {
		return err
	}
	s.conn = tc
	s.r.Reset(tc)
	s.w.Reset(tc)
	s.state |= stateSecure
	return s.openStream()
}

// saslConfig describes this stream to the SASL mechanisms.
func (s *Session) saslConfig() sasl.Config {
	cfg := sasl.Config{
		Host:           s.host,
		AllowPlain:     s.srv.cfg.AllowPlain,
		ChannelBinding: s.srv.cfg.ChannelBinding,
		FakeSecret:     s.srv.cfg.FakeSecret,
		Iterations:     s.srv.cfg.Iterations,
		Lookup: func(_ context.Context, username string) (storage.Account, error) {
			// The session's context is what authenticate passes; the
			// lookup gets one of its own, bounded, and ended by a hang-up.
			ctx, done := s.storeContext()
			defer done()
			acc, err := s.srv.cfg.Accounts.Account(ctx, s.host, username)
			if errors.Is(err, storage.ErrNotFound) {
				return acc, sasl.ErrUnknownUser
			}
			return acc, err
		},
	}
	if k := s.srv.cfg.KeyIterations; k != nil {
		cfg.KeyIterations = k(s.host)
	}
	if cs := s.tlsState(); cs != nil {
		cfg.TLS = cs
		if get := s.srv.cfg.TLS.GetCertificate; get != nil {
			if cert, err := get(&tls.ClientHelloInfo{ServerName: cs.ServerName}); err == nil && cert != nil && len(cert.Certificate) > 0 {
				cfg.ServerCert = cert.Certificate[0]
			}
		}
	}
	return cfg
}

// offerSASL lists the mechanisms; on a stream that must be encrypted first,
// nothing is offered until STARTTLS.
func (s *Session) offerSASL() *etree.Element {
	if s.mustEncrypt() {
		return nil
	}
	el := newElementNS(xmpp.NSSASL, "mechanisms")
	for _, m := range s.saslConfig().Mechanisms() {
		el.CreateElement("mechanism").SetText(m)
	}
	return el
}

// authenticate runs one SASL exchange (RFC 6120 §6.4), started by <auth/>.
func (s *Session) authenticate(el *etree.Element) error {
	if el.Tag != "auth" {
		// A <response/> or <abort/> with no exchange under way.
		return s.saslFailure(&sasl.Failure{Condition: "aborted", Text: "no authentication is under way"})
	}
	if s.mustEncrypt() {
		return s.saslFailure(&sasl.Failure{Condition: "encryption-required", Text: s.encryptFirst()})
	}
	cfg := s.saslConfig()
	srv, err := cfg.NewServer(el.SelectAttrValue("mechanism", ""))
	if err != nil {
		return s.saslFailure(err)
	}
	out, authed, err := s.exchange(xmpp.NSSASL, srv, el.Text(), decodeSASL)
	if !authed {
		return err
	}
	success := newElementNS(xmpp.NSSASL, "success")
	if len(out) > 0 {
		success.SetText(base64.StdEncoding.EncodeToString(out))
	}
	if err := s.w.WriteElement(success); err != nil {
		return err
	}
	if err := s.flush(); err != nil {
		return err
	}
	s.username = srv.Username()
	s.state |= stateAuthenticated
	s.r.Restart()
	return s.openStream()
}

// exchange runs the steps of a SASL exchange, started with the initial
// response text (decoded by decode), with challenges and responses in
// namespace ns (SASL or SASL2). It reports authed with the data of the
// success when the client is authenticated; otherwise err is what the
// negotiation returns (nil once a <failure/> was sent and the stream goes
// on).
func (s *Session) exchange(ns string, srv *sasl.Server, initial string, decode func(string) ([]byte, bool)) (out []byte, authed bool, err error) {
	ip := remoteIP(s.conn.RemoteAddr())
	ctx := s.Context()
	// The login limits see the attempt from the step that names the user:
	// its answer is held there (holdLogin), and an exchange that ends
	// before its credentials are checked, a probe for a user's salt and
	// iteration count, counts as a failure (deferred).
	var held, recorded bool
	defer func() {
		if user := srv.Claimed(); user != "" && !recorded {
			s.recordLogin(user, ip, false)
		}
	}()
	in, ok := decode(initial)
	for {
		if !ok {
			return nil, false, s.saslFailureIn(ns, &sasl.Failure{Condition: "incorrect-encoding", Text: "the data is not base64"})
		}
		var done bool
		if in != nil {
			out, done, err = srv.Step(ctx, in)
			if user := srv.Claimed(); user != "" && !held {
				held = true
				s.holdLogin(user, ip)
			}
			if user, checked := srv.Checked(); checked && !recorded {
				recorded = true
				s.recordLogin(user, ip, err == nil)
			}
			if err != nil && (s.closing.Load() || errors.Is(err, context.Canceled)) {
				// The lookup ended unanswered: the client learnt nothing
				// (no salt, no verdict), so it is no probe and no failed
				// login for the limits to count.
				recorded = true
			}
			if err != nil {
				if s.closing.Load() {
					// Closed meanwhile (Shutdown), which ended the
					// lookup: the stream ends with Close's error, not a
					// <failure/> that does not count.
					return nil, false, errClosing
				}
				if errors.Is(err, context.Canceled) {
					// The client hung up while the store was asked (the
					// session's watch ended the lookup): nobody reads a
					// <failure/>, and no attempt was judged, so none is
					// counted (not even by the limits, above).
					return nil, false, errHungUp
				}
				return nil, false, s.saslFailureIn(ns, err)
			}
		}
		if done {
			return out, true, nil
		}
		challenge := newElementNS(ns, "challenge")
		if len(out) > 0 {
			challenge.SetText(base64.StdEncoding.EncodeToString(out))
		}
		if err := s.w.WriteElement(challenge); err != nil {
			return nil, false, err
		}
		if err := s.flush(); err != nil {
			return nil, false, err
		}
		if err := s.setReadDeadline(); err != nil {
			return nil, false, err
		}
		next, err := s.r.ReadElement()
		if err != nil {
			return nil, false, err
		}
		switch {
		case next.Tag == "abort" && xmpp.NS(next) == ns:
			return nil, false, s.saslFailureIn(ns, &sasl.Failure{Condition: "aborted", Text: "the client aborted the exchange"})
		case next.Tag == "response" && xmpp.NS(next) == ns:
			in, ok = decode(next.Text())
			if in == nil {
				in = []byte{}
			}
		default:
			return nil, false, xmpp.NewStreamError(xmpp.StreamNotAuthorized, "expected <response/> or <abort/> during authentication")
		}
	}
}

// holdLogin holds the answer to the step that named the user (SCRAM's
// first message, PLAIN's only one) as long as the login limits say, from
// the failures counted before it: the answer comes after the wait whatever
// the credentials, so a guesser cannot tell a success by its speed, and a
// prober of salts waits like a guesser (see LoginLimits).
func (s *Session) holdLogin(user, ip string) {
	g := s.srv.logins
	account := user + "@" + s.host
	d, reason := g.delay(account, ip, time.Now())
	if d <= 0 {
		return
	}
	g.waited(d, reason)
	s.log(slog.LevelDebug, "c2s: login answer held", "account", account, "wait", d)
	s.hold(d)
}

// recordLogin counts a login attempt whose credentials were checked.
func (s *Session) recordLogin(user, ip string, ok bool) {
	g := s.srv.logins
	account := user + "@" + s.host
	if ok {
		g.succeed(account, ip, time.Now())
	} else {
		g.fail(account, ip, time.Now())
	}
}

// hold waits d, or less if the session is closed meanwhile.
func (s *Session) hold(d time.Duration) {
	end := time.Now().Add(d)
	for !s.closing.Load() {
		left := time.Until(end)
		if left <= 0 {
			return
		}
		time.Sleep(min(left, 100*time.Millisecond))
	}
}

// decodeSASL decodes the text of <auth/> or <response/>: "" is no data,
// "=" is an empty message (RFC 6120 §6.4.2).
func decodeSASL(text string) ([]byte, bool) {
	text = strings.TrimSpace(text)
	switch text {
	case "":
		return nil, true
	case "=":
		return []byte{}, true
	}
	b, err := base64.StdEncoding.DecodeString(text)
	return b, err == nil
}

// errHungUp ends a session whose client hung up while it waited on the
// store: a dropped connection, quietly.
var errHungUp = fmt.Errorf("c2s: the client hung up during authentication: %w", net.ErrClosed)

// saslFailure sends <failure/>, and closes the stream at the
// AuthFailures-th (RFC 6120 §6.4.5: "a configurable but reasonable number
// of retries"). Every failure counts, aborts and unknown mechanisms too:
// ones that did not let a stream try for ever.
func (s *Session) saslFailure(err error) error { return s.saslFailureIn(xmpp.NSSASL, err) }

// saslFailureIn is saslFailure in namespace ns: SASL2's <failure/> has the
// same conditions, in SASL's namespace, and the same texts (XEP-0388 §2.6.2).
func (s *Session) saslFailureIn(ns string, err error) error {
	var f *sasl.Failure
	if !errors.As(err, &f) {
		s.log(slog.LevelError, "c2s: sasl", "err", err)
		f = &sasl.Failure{Condition: "temporary-auth-failure"}
	}
	el := newElementNS(ns, "failure")
	cond := el.CreateElement(f.Condition)
	if ns != xmpp.NSSASL {
		cond.CreateAttr("xmlns", xmpp.NSSASL)
	}
	if f.Text != "" {
		el.CreateElement("text").SetText(f.Text)
	}
	if err := s.w.WriteElement(el); err != nil {
		return err
	}
	if err := s.flush(); err != nil {
		return err
	}
	s.failures++
	s.logRefusal(slog.LevelInfo, "sasl:"+f.Condition, "c2s: authentication failed", "condition", f.Condition, "failures", s.failures)
	if int(s.failures) >= s.srv.cfg.AuthFailures {
		return xmpp.NewStreamError(xmpp.StreamPolicyViolation, "too many failed authentication attempts")
	}
	return nil
}

// remoteIP is the address the per-address limits count a connection
// under (clientaddr.Key: an IPv4 address, or an IPv6 /64).
func remoteIP(a net.Addr) string {
	if k, ok := clientaddr.Key(a.String()); ok {
		return k.String()
	}
	return a.String()
}

// bind binds a resource (RFC 6120 §7) and starts the writer.
func (s *Session) bind(el *etree.Element) error {
	st, err := xmpp.NewStanza(el)
	if err != nil || st.Type != "set" {
		return s.bindError(st, xmpp.NewStanzaError(xmpp.BadRequest, "bind is an iq of type set"))
	}
	res := ""
	if r := xmpp.Child(st.Payload(), xmpp.NSBind, "resource"); r != nil {
		res = strings.TrimSpace(r.Text())
	}
	if res == "" {
		res = "parley-" + randomID()
	}
	local, err := xmpp.New(s.username, s.host, res)
	if err != nil {
		return s.bindError(st, xmpp.NewStanzaError(xmpp.BadRequest, "the resource is not valid: "+err.Error()))
	}
	s.jid, s.jidAddr = local, local.String()
	if err := s.srv.cfg.Router.Bind(s); err != nil {
		s.jid, s.jidAddr = xmpp.JID{}, ""
		return s.bindError(st, xmpp.NewStanzaError(xmpp.ResourceConstraint, err.Error()))
	}
	s.state |= stateBound
	// From here on Shutdown's report may read jidAddr (describe).
	s.doing.Store(doReading)
	s.srv.mu.Lock()
	s.srv.authenticated(s)
	s.srv.mu.Unlock()
	s.log(slog.LevelInfo, "c2s: bound")
	payload := newElementNS(xmpp.NSBind, "bind")
	payload.CreateElement("jid").SetText(s.jidAddr)
	reply := xmpp.NewIQ("result", st.ID, xmpp.JID{}, xmpp.JID{}, payload)
	s.startWriter(reply.El)
	return nil
}

func (s *Session) bindError(st *xmpp.Stanza, e *xmpp.StanzaError) error {
	reply := st.ErrorReply(e)
	reply.SetFrom(xmpp.JID{})
	reply.SetTo(xmpp.JID{})
	if err := s.w.WriteElement(reply.El); err != nil {
		return err
	}
	return s.flush()
}

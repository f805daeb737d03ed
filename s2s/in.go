package s2s

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// maxVerifying bounds the dialback verifications one inbound stream may
// have in flight: each holds a connection to another server.
const maxVerifying = 8

// inStream is a stream a remote server opened to this one. One goroutine
// reads it; dialback verifications run beside it and write their answers
// under wmu.
type inStream struct {
	svc  *Service
	conn net.Conn
	r    *xmpp.Reader
	addr string // the peer's address, for logs
	// directTLS: TLS from the first byte (XEP-0368), before the header.
	directTLS bool

	wmu        sync.Mutex
	w          *xmpp.Writer
	headerSent bool
	// peerFrom and peerTo are the peer's header's, for a stream error's
	// header and logs from any goroutine.
	peerFrom, peerTo string

	// Read and written by the reading goroutine only.
	header     xmpp.Header // the peer's latest
	id         string      // our latest stream id
	tls        bool
	peerCerts  []*x509.Certificate
	externalOK bool // the peer's certificate validates for header.From
	sasl       bool // SASL done
	// key is what the stream counts under for MaxStreamsPerDomain: its
	// header's from, or the peer's address.
	key string

	mu        sync.Mutex
	authed    map[pair]bool // (local, remote) pairs the peer may send for
	verifying int
}

func newInStream(s *Service, c net.Conn) *inStream {
	return &inStream{svc: s, conn: c, addr: c.RemoteAddr().String(), r: xmpp.NewReader(c, s.cfg.Limits), w: xmpp.NewWriter(c), authed: map[pair]bool{}}
}

// authorized reports whether the peer authenticated for the pair.
func (in *inStream) authorized(p pair) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.authed[p]
}

// anyAuthorized reports whether the peer authenticated for any pair, and
// whether for any pair with the remote domain d.
func (in *inStream) anyAuthorized(d string) (any, domain bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for p := range in.authed {
		any = true
		if p.remote == d {
			domain = true
		}
	}
	return any, domain
}

func (in *inStream) authorize(p pair) {
	in.mu.Lock()
	in.authed[p] = true
	in.mu.Unlock()
}

// write sends el, flushed, with a bounded wait for a peer that does not
// read.
func (in *inStream) write(els ...*etree.Element) error {
	in.wmu.Lock()
	defer in.wmu.Unlock()
	_ = in.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	for _, el := range els {
		if err := in.w.WriteElement(el); err != nil {
			return err
		}
	}
	return in.w.Flush()
}

// fail ends the stream with e (RFC 6120 §4.9: a header first when none
// was sent yet).
func (in *inStream) fail(e *xmpp.StreamError) {
	in.wmu.Lock()
	defer in.wmu.Unlock()
	_ = in.conn.SetWriteDeadline(time.Now().Add(time.Second))
	if !in.headerSent {
		_ = in.w.WriteRaw(streamHeader(in.peerTo, in.peerFrom, newID()))
		in.headerSent = true
	}
	_ = in.w.WriteStreamError(e)
	_ = in.w.WriteEnd()
	_ = in.w.Flush()
	closeConn(in.conn, in.w)
	in.svc.log.Info("s2s: inbound stream closed with an error", "remote", in.peerFrom, "addr", in.addr, "err", e)
}

// shutdown ends the stream with <system-shutdown/>.
func (in *inStream) shutdown() { in.fail(xmpp.NewStreamError(xmpp.SystemShutdown, "")) }

func newID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// open reads the peer's stream header and answers with ours and our
// features.
func (in *inStream) open() *xmpp.StreamError {
	h, err := in.r.ReadHeader()
	if err != nil {
		var se *xmpp.StreamError
		if errors.As(err, &se) {
			return se
		}
		return xmpp.NewStreamError(xmpp.ConnectionTimeout, "")
	}
	in.header = h
	in.wmu.Lock()
	in.peerFrom, in.peerTo = h.From, h.To
	in.wmu.Unlock()
	switch {
	case h.NS != xmpp.NSServer:
		return xmpp.NewStreamError(xmpp.InvalidNamespace, "a server stream is in jabber:server")
	case h.To != "" && !in.svc.cfg.Router.Serves(strings.ToLower(h.To)):
		return xmpp.NewStreamError(xmpp.HostUnknown, "this server does not serve "+h.To)
	case h.From != "" && !in.svc.allowed(strings.ToLower(h.From)):
		return xmpp.NewStreamError(xmpp.StreamPolicyViolation, "this server does not federate with "+h.From)
	}
	key := strings.ToLower(h.From)
	if key == "" {
		host, _, _ := net.SplitHostPort(in.addr)
		key = "address " + host
	}
	if !in.svc.claimIn(in.key, key) {
		return xmpp.NewStreamError(xmpp.StreamPolicyViolation, "too many streams from "+key)
	}
	in.key = key
	// The certificate is checked against this header's from, not an
	// earlier one: a peer may not validate as one domain and then
	// claim another after the restart.
	in.externalOK = false
	if from := strings.ToLower(h.From); in.tls && from != "" {
		err := in.svc.verifyCert(in.peerCerts, from)
		in.externalOK = err == nil
		if err != nil {
			in.svc.log.Debug("s2s: peer certificate does not validate", "remote", from, "err", err)
		}
	}
	in.id = newID()
	in.wmu.Lock()
	_ = in.w.WriteRaw(streamHeader(h.To, h.From, in.id))
	in.headerSent = true
	in.wmu.Unlock()
	if h.Version != "1.0" {
		return nil // pre-1.0: no features, dialback only
	}
	// With the stream: prefix the header declares, as c2s writes them:
	// the same element as <features xmlns='...streams'/> to a namespace-
	// aware parser, but ejabberd (23.01) knows stream:features only by
	// its prefixed name and waits for ever on the other form.
	f := etree.NewElement("stream:features")
	if !in.tls {
		st := f.CreateElement("starttls")
		st.CreateAttr("xmlns", xmpp.NSTLS)
		if in.svc.cfg.RequireTLS {
			st.CreateElement("required")
		}
	}
	if in.tls && in.externalOK && !in.sasl {
		m := f.CreateElement("mechanisms")
		m.CreateAttr("xmlns", xmpp.NSSASL)
		m.CreateElement("mechanism").SetText("EXTERNAL")
	}
	if in.dialbackAllowed() {
		db := f.CreateElement("dialback")
		db.CreateAttr("xmlns", nsDialbackFeature)
		db.CreateElement("errors")
	}
	if err := in.write(f); err != nil {
		return xmpp.NewStreamError(xmpp.ConnectionTimeout, "")
	}
	return nil
}

// dialbackAllowed reports whether the peer may authenticate by dialback
// now: not without TLS when TLS is required, never when valid
// certificates are.
func (in *inStream) dialbackAllowed() bool {
	return !in.svc.cfg.RequireValidCerts && (in.tls || !in.svc.cfg.RequireTLS)
}

// serve runs the stream until it ends.
func (in *inStream) serve() {
	// The socket as accepted, beneath TLS once it is on (in.conn is
	// read here, before the handshake replaces it): no alert can follow
	// a record that a failed write cut short.
	defer in.conn.Close()
	negotiate := time.Now().Add(in.svc.cfg.ConnectTimeout)
	_ = in.conn.SetReadDeadline(negotiate)
	if in.directTLS && !in.handshake() {
		return
	}
	if e := in.open(); e != nil {
		in.fail(e)
		return
	}
	for {
		if a, _ := in.anyAuthorized(""); a {
			_ = in.conn.SetReadDeadline(deadline(in.svc.cfg.IdleTimeout))
		}
		el, err := in.r.ReadElement()
		if err != nil {
			var se *xmpp.StreamError
			switch {
			case errors.Is(err, xmpp.ErrStreamClosed):
				in.wmu.Lock()
				_ = in.w.WriteEnd()
				_ = in.w.Flush()
				in.wmu.Unlock()
			case errors.As(err, &se):
				in.fail(se)
			case errors.Is(err, os.ErrDeadlineExceeded):
				in.fail(xmpp.NewStreamError(xmpp.ConnectionTimeout, ""))
			}
			return
		}
		if e := in.handle(el); e != nil {
			in.fail(e)
			return
		}
	}
}

// handle takes one top-level element; a stream error ends the stream.
func (in *inStream) handle(el *etree.Element) *xmpp.StreamError {
	ns := xmpp.NS(el)
	switch {
	case ns == xmpp.NSTLS && el.Tag == "starttls":
		return in.startTLS()
	case ns == xmpp.NSSASL && el.Tag == "auth":
		return in.saslExternal(el)
	case ns == nsDialback && el.Tag == "result":
		if el.SelectAttrValue("type", "") == "" {
			in.dialbackResult(el)
		}
		return nil
	case ns == nsDialback && el.Tag == "verify":
		if el.SelectAttrValue("type", "") == "" {
			in.dialbackVerify(el)
		}
		return nil
	case ns == xmpp.NSStream && el.Tag == "error":
		in.svc.log.Info("s2s: inbound stream error from peer", "remote", in.header.From, "err", xmpp.ParseStreamError(el))
		return xmpp.NewStreamError(xmpp.StreamUndefined, "")
	case xmpp.KindOf(el) != xmpp.KindNone:
		return in.stanza(el)
	}
	return xmpp.NewStreamError(xmpp.UnsupportedStanzaType, "<"+el.Tag+"/> in "+ns)
}

// startTLS answers <starttls/> and restarts the stream over TLS, asking
// for the peer's certificate: one that validates for the domain of its
// header gets SASL EXTERNAL.
func (in *inStream) startTLS() *xmpp.StreamError {
	if in.tls {
		return xmpp.NewStreamError(xmpp.StreamPolicyViolation, "TLS is already on")
	}
	p := xmpp.NewElementNS(xmpp.NSTLS, "proceed")
	if err := in.write(p); err != nil {
		return xmpp.NewStreamError(xmpp.ConnectionTimeout, "")
	}
	if !in.handshake() {
		return nil
	}
	return in.open()
}

// handshake is the server side of TLS, asking for the peer's
// certificate (for SASL EXTERNAL), and offering ALPN xmpp-server
// (XEP-0368) on a direct TLS listener; false closed the connection.
func (in *inStream) handshake() bool {
	cfg := in.svc.cfg.TLS.Clone()
	cfg.ClientAuth = tls.RequestClientCert
	if in.directTLS {
		cfg.NextProtos = []string{"xmpp-server"}
	}
	tc := tls.Server(in.conn, cfg)
	_ = tc.SetDeadline(time.Now().Add(in.svc.cfg.ConnectTimeout))
	if err := tc.Handshake(); err != nil {
		in.svc.log.Info("s2s: inbound TLS failed", "addr", in.addr, "err", err)
		in.conn.Close()
		return false
	}
	_ = tc.SetWriteDeadline(time.Time{})
	in.wmu.Lock()
	in.conn, in.tls, in.headerSent = tc, true, false
	in.w.Reset(tc)
	in.wmu.Unlock()
	in.r.Reset(tc)
	in.peerCerts = tc.ConnectionState().PeerCertificates
	return true
}

// saslExternal is RFC 6120 §6 with EXTERNAL (XEP-0178): offered only to
// a peer whose certificate validates for the domain of its header, which
// the authorization identity, when given, must be.
func (in *inStream) saslExternal(el *etree.Element) *xmpp.StreamError {
	failure := func(cond string) *xmpp.StreamError {
		f := xmpp.NewElementNS(xmpp.NSSASL, "failure")
		f.CreateElement(cond)
		if err := in.write(f); err != nil {
			return xmpp.NewStreamError(xmpp.ConnectionTimeout, "")
		}
		return nil
	}
	if !in.tls || !in.externalOK || in.sasl || el.SelectAttrValue("mechanism", "") != "EXTERNAL" {
		return failure("invalid-mechanism")
	}
	from, to := strings.ToLower(in.header.From), strings.ToLower(in.header.To)
	if authz := strings.TrimSpace(el.Text()); authz != "" && authz != "=" {
		b, err := base64.StdEncoding.DecodeString(authz)
		if err != nil {
			return failure("incorrect-encoding")
		}
		if !strings.EqualFold(string(b), from) {
			return failure("invalid-authzid")
		}
	}
	if to == "" {
		return failure("not-authorized")
	}
	in.authorize(pair{local: to, remote: from})
	in.sasl = true
	in.svc.inExternal.Add(1)
	if err := in.write(xmpp.NewElementNS(xmpp.NSSASL, "success")); err != nil {
		return xmpp.NewStreamError(xmpp.ConnectionTimeout, "")
	}
	in.svc.log.Info("s2s: inbound stream authenticated", "remote", from, "local", to, "by", "sasl-external")
	in.r.Restart()
	in.wmu.Lock()
	in.headerSent = false
	in.wmu.Unlock()
	return in.open()
}

// dialbackError is a dialback element of type error (XEP-0220 §2.4).
func dialbackError(tag, from, to, id string, cond xmpp.StanzaCondition) *etree.Element {
	el := dialbackAnswer(tag, from, to, id, "error")
	el.AddChild(xmpp.NewStanzaError(cond, "").Element())
	return el
}

func dialbackAnswer(tag, from, to, id, typ string) *etree.Element {
	el := dialbackElement(tag)
	el.CreateAttr("from", from)
	el.CreateAttr("to", to)
	if id != "" {
		el.CreateAttr("id", id)
	}
	el.CreateAttr("type", typ)
	return el
}

// dialbackResult is the receiving server's side (XEP-0220 §2.2.1): the
// peer claims its from domain with a key, which the domain's
// authoritative server is asked to verify, on a stream of its own.
func (in *inStream) dialbackResult(el *etree.Element) {
	from := strings.ToLower(el.SelectAttrValue("from", ""))
	to := strings.ToLower(el.SelectAttrValue("to", ""))
	key := strings.TrimSpace(el.Text())
	var cond xmpp.StanzaCondition
	switch {
	case !in.svc.cfg.Router.Serves(to):
		cond = xmpp.ItemNotFound
	case from == "" || !in.svc.allowed(from):
		cond = xmpp.Forbidden
	case !in.dialbackAllowed():
		cond = xmpp.PolicyViolation
	}
	if cond == "" {
		in.mu.Lock()
		if in.verifying >= maxVerifying {
			cond = xmpp.ResourceConstraint
		} else {
			in.verifying++
		}
		in.mu.Unlock()
	}
	if cond != "" {
		_ = in.write(dialbackError("result", to, from, "", cond))
		return
	}
	id := in.id
	in.svc.wg.Add(1)
	go func() {
		defer in.svc.wg.Done()
		defer func() {
			in.mu.Lock()
			in.verifying--
			in.mu.Unlock()
		}()
		valid, err := in.svc.verifyKey(in.svc.ctx, to, from, id, key)
		switch {
		case err != nil:
			in.svc.log.Info("s2s: dialback verification failed", "remote", from, "local", to, "err", err)
			_ = in.write(dialbackError("result", to, from, "", xmpp.RemoteServerTimeout))
		case valid:
			in.authorize(pair{local: to, remote: from})
			in.svc.inDialback.Add(1)
			in.svc.log.Info("s2s: inbound stream authenticated", "remote", from, "local", to, "by", "dialback")
			_ = in.write(dialbackAnswer("result", to, from, "", "valid"))
		default:
			// §2.2.1: the peer tried to spoof from; the stream closes.
			in.svc.log.Warn("s2s: dialback key refused by the authoritative server", "remote", from, "local", to,
				"addr", in.addr)
			_ = in.write(dialbackAnswer("result", to, from, "", "invalid"))
			in.fail(xmpp.NewStreamError(xmpp.StreamNotAuthorized, "the dialback key for "+from+" is not valid"))
		}
	}()
}

// dialbackVerify is the authoritative server's side (XEP-0220 §2.2.2):
// is key the one this server made for the stream it opened?
func (in *inStream) dialbackVerify(el *etree.Element) {
	receiving := strings.ToLower(el.SelectAttrValue("from", ""))
	originating := strings.ToLower(el.SelectAttrValue("to", ""))
	id := el.SelectAttrValue("id", "")
	if !in.svc.cfg.Router.Serves(originating) {
		_ = in.write(dialbackError("verify", originating, receiving, id, xmpp.ItemNotFound))
		return
	}
	typ := "invalid"
	if checkKey(in.svc.secret, receiving, originating, id, strings.TrimSpace(el.Text())) {
		typ = "valid"
	}
	_ = in.write(dialbackAnswer("verify", originating, receiving, id, typ))
}

// stanza routes a stanza from the peer, if the stream authenticated its
// domain pair (RFC 6120 §4.9.3 for what ends the stream otherwise).
func (in *inStream) stanza(el *etree.Element) *xmpp.StreamError {
	if a, _ := in.anyAuthorized(""); !a {
		return xmpp.NewStreamError(xmpp.StreamNotAuthorized, "no domain is authenticated on this stream")
	}
	st, err := xmpp.NewStanza(el)
	from, to := el.SelectAttrValue("from", ""), el.SelectAttrValue("to", "")
	switch {
	case from == "" || to == "":
		// §8.1.1.1, §8.1.2.1: a server's stanza has both.
		return xmpp.NewStreamError(xmpp.ImproperAddressing, "a stanza between servers needs to and from")
	case st.From.IsZero():
		return xmpp.NewStreamError(xmpp.InvalidFrom, "the from address is not a JID")
	case st.To.IsZero():
		return xmpp.NewStreamError(xmpp.ImproperAddressing, "the to address is not a JID")
	case !in.svc.cfg.Router.Serves(st.To.Domain()):
		return xmpp.NewStreamError(xmpp.HostUnknown, "this server does not serve "+st.To.Domain())
	case !in.authorized(pair{local: st.To.Domain(), remote: st.From.Domain()}):
		return xmpp.NewStreamError(xmpp.InvalidFrom, st.From.Domain()+" is not authenticated on this stream for "+st.To.Domain())
	}
	if err != nil {
		// A malformed iq, say: its sender learns it.
		var se *xmpp.StanzaError
		if !errors.As(err, &se) {
			se = xmpp.NewStanzaError(xmpp.BadRequest, "")
		}
		in.svc.cfg.Router.Bounce(st, se)
		return nil
	}
	if in.svc.pong(st) {
		return nil
	}
	// A remote server speaks for its own domains, never for ours: a
	// delay it claims from one of them would pass for this server's.
	xmpp.StripForeignDelays(st, in.svc.cfg.Router.Serves)
	in.svc.stanzasIn.Add(1)
	in.svc.cfg.Router.Route(st)
	return nil
}

package s2s

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// Namespaces of dialback and its stream feature (XEP-0220).
const (
	nsDialback        = "jabber:server:dialback"
	nsDialbackFeature = "urn:xmpp:features:dialback"
)

// directTLSRoute starts a route that dials with direct TLS (the
// "tls://host:port" of conf's static_routes).
const directTLSRoute = "tls://"

// dialbackElement is the dialback element tag (result or verify) with
// the db: prefix every stream header of ours declares, as XEP-0220 writes
// them: the same element as one that declares jabber:server:dialback as
// its default namespace, but ejabberd (23.01) knows db:result and
// db:verify only by their prefixed names and ignores the other form.
func dialbackElement(tag string) *etree.Element {
	return etree.NewElement("db:" + tag)
}

// target is one address a remote domain's server may be reached at.
type target struct {
	addr      string
	directTLS bool // XEP-0368: TLS from the first byte, ALPN xmpp-server
}

// targets lists where domain's server may be: its static route alone when
// it has one (direct TLS for a "tls://" route); else the SRV records of _xmpps-server (direct TLS), then of
// _xmpp-server (RFC 6120 §3.2.1), each in the order the resolver sorts
// them (priority, then weight); else the domain itself on 5269 (§3.2.2).
// A "." target (§3.2.1: no service) leaves the domain unreachable.
func (s *Service) targets(ctx context.Context, domain string) ([]target, error) {
	if a, ok := s.cfg.Routes[domain]; ok {
		addr, direct := strings.CutPrefix(a, directTLSRoute)
		return []target{{addr: addr, directTLS: direct}}, nil
	}
	var out []target
	noService := false
	for _, svc := range []struct {
		name      string
		directTLS bool
	}{{"xmpps-server", true}, {"xmpp-server", false}} {
		_, srvs, err := s.cfg.Resolver.LookupSRV(ctx, svc.name, "tcp", domain)
		if err != nil {
			continue
		}
		for _, r := range srvs {
			if r.Target == "." {
				noService = true
				continue
			}
			out = append(out, target{addr: net.JoinHostPort(strings.TrimSuffix(r.Target, "."), fmt.Sprint(r.Port)), directTLS: svc.directTLS})
		}
	}
	if len(out) == 0 {
		if noService {
			return nil, fmt.Errorf("s2s: %s offers no server-to-server service", domain)
		}
		// net.Dialer tries the name's AAAA and A records with Happy
		// Eyeballs (RFC 8305).
		out = append(out, target{addr: net.JoinHostPort(domain, DefaultPort)})
	}
	return out, nil
}

// peerStream is one connection to a remote server, as the initiating
// side: negotiated up to TLS by dialPeer, then authenticated (outbound
// streams) or used for one db:verify (verify streams).
type peerStream struct {
	conn      net.Conn
	r         *xmpp.Reader
	w         *xmpp.Writer
	local     string
	remote    string
	id        string         // the peer's latest stream id
	features  *etree.Element // the peer's latest features; nil for a pre-1.0 peer
	tls       bool
	certValid bool // the peer's certificate validates for remote
}

// errUnreachable wraps a failure to reach any address of the remote.
var errUnreachable = errors.New("s2s: remote server not reachable")

// dialPeer connects to p.remote's server and negotiates TLS: the stream
// is open, its features read, when it returns. Its deadlines are ctx's.
func (s *Service) dialPeer(ctx context.Context, p pair) (*peerStream, error) {
	targets, err := s.targets(ctx, p.remote)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUnreachable, err)
	}
	var d net.Dialer
	var errs []error
	for _, t := range targets {
		conn, err := d.DialContext(ctx, "tcp", t.addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ps := &peerStream{conn: conn, local: p.local, remote: p.remote}
		if dl, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(dl)
		}
		if err := s.negotiateTLS(ctx, ps, t.directTLS); err != nil {
			conn.Close()
			return nil, err
		}
		return ps, nil
	}
	return nil, fmt.Errorf("%w: %w", errUnreachable, errors.Join(errs...))
}

// clientTLS is the TLS configuration of a stream to remote from local:
// the peer's certificate is checked by hand (a failure is not fatal
// unless RequireValidCerts: dialback may still authenticate), and local's
// certificate is offered for SASL EXTERNAL.
func (s *Service) clientTLS(ps *peerStream, directTLS bool) *tls.Config {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         ps.remote,
		InsecureSkipVerify: true, // checked in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			err := s.verifyCert(cs.PeerCertificates, ps.remote)
			ps.certValid = err == nil
			if err != nil && s.cfg.RequireValidCerts {
				return fmt.Errorf("s2s: %s's certificate: %w", ps.remote, err)
			}
			return nil
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if c, ok := s.cfg.Certificate(ps.local); ok {
				return c, nil
			}
			return &tls.Certificate{}, nil
		},
	}
	if directTLS {
		cfg.NextProtos = []string{"xmpp-server"}
	}
	return cfg
}

// negotiateTLS opens the stream and secures it: direct TLS, or STARTTLS
// when the peer offers it (required unless RequireTLS is off).
func (s *Service) negotiateTLS(ctx context.Context, ps *peerStream, directTLS bool) error {
	if directTLS {
		tc := tls.Client(ps.conn, s.clientTLS(ps, true))
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("s2s: TLS with %s: %w", ps.remote, err)
		}
		ps.conn, ps.tls = tc, true
	}
	ps.r = xmpp.NewReader(ps.conn, s.cfg.Limits)
	ps.w = xmpp.NewWriter(ps.conn)
	if err := ps.open(); err != nil {
		return err
	}
	if ps.tls {
		return nil
	}
	if ps.features == nil || xmpp.Child(ps.features, xmpp.NSTLS, "starttls") == nil {
		if s.cfg.RequireTLS {
			return fmt.Errorf("s2s: %s does not offer STARTTLS, and require_tls is on", ps.remote)
		}
		return nil
	}
	if err := ps.send(xmpp.NewElementNS(xmpp.NSTLS, "starttls")); err != nil {
		return err
	}
	el, err := ps.r.ReadElement()
	if err != nil {
		return fmt.Errorf("s2s: STARTTLS with %s: %w", ps.remote, err)
	}
	if el.Tag != "proceed" || xmpp.NS(el) != xmpp.NSTLS {
		return fmt.Errorf("s2s: %s refused STARTTLS: <%s/>", ps.remote, el.Tag)
	}
	tc := tls.Client(ps.conn, s.clientTLS(ps, false))
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("s2s: TLS with %s: %w", ps.remote, err)
	}
	ps.conn, ps.tls = tc, true
	ps.r.Reset(tc)
	ps.w.Reset(tc)
	return ps.open()
}

// close closes the stream's connection; the caller owns ps.w.
func (ps *peerStream) close() error { return closeConn(ps.conn, ps.w) }

// closeConn closes conn, which w writes to, as xmpp.CloseConn does after
// w's writes; the caller owns w.
func closeConn(conn net.Conn, w *xmpp.Writer) error {
	return xmpp.CloseConn(conn, w != nil && w.Failed())
}

// open sends a stream header and reads the peer's, and its features when
// the peer speaks XMPP 1.0.
func (ps *peerStream) open() error {
	if err := ps.w.WriteRaw(streamHeader(ps.local, ps.remote, "")); err != nil {
		return err
	}
	if err := ps.w.Flush(); err != nil {
		return fmt.Errorf("s2s: to %s: %w", ps.remote, err)
	}
	h, err := ps.r.ReadHeader()
	if err != nil {
		return fmt.Errorf("s2s: %s's stream header: %w", ps.remote, err)
	}
	if h.NS != xmpp.NSServer {
		return fmt.Errorf("s2s: %s opened a stream in namespace %q", ps.remote, h.NS)
	}
	if h.ID == "" {
		return fmt.Errorf("s2s: %s's stream has no id", ps.remote)
	}
	ps.id, ps.features = h.ID, nil
	if h.Version != "1.0" {
		return nil
	}
	el, err := ps.r.ReadElement()
	if err != nil {
		return fmt.Errorf("s2s: %s's stream features: %w", ps.remote, err)
	}
	if el.Tag != "features" || xmpp.NS(el) != xmpp.NSStream {
		return fmt.Errorf("s2s: %s sent <%s/> for its stream features", ps.remote, el.Tag)
	}
	ps.features = el
	return nil
}

// send writes el and flushes.
func (ps *peerStream) send(el *etree.Element) error {
	if err := ps.w.WriteElement(el); err != nil {
		return err
	}
	if err := ps.w.Flush(); err != nil {
		return fmt.Errorf("s2s: to %s: %w", ps.remote, err)
	}
	return nil
}

// offersExternal reports whether the features offer SASL EXTERNAL.
func offersExternal(f *etree.Element) bool {
	if f == nil {
		return false
	}
	mechs := xmpp.Child(f, xmpp.NSSASL, "mechanisms")
	if mechs == nil {
		return false
	}
	for _, m := range mechs.ChildElements() {
		if m.Tag == "mechanism" && strings.TrimSpace(m.Text()) == "EXTERNAL" {
			return true
		}
	}
	return false
}

// offersDialback reports whether the peer does dialback: the XEP-0220
// feature, or a pre-1.0 stream, where dialback is all there is.
func offersDialback(f *etree.Element) bool {
	return f == nil || xmpp.Child(f, nsDialbackFeature, "dialback") != nil
}

// errDialbackRefused is a dialback answered invalid or with an error.
var errDialbackRefused = errors.New("s2s: dialback refused")

// authenticate authenticates ps for its pair: SASL EXTERNAL when the
// peer offers it (XEP-0178: it does when our certificate validated),
// else, or when EXTERNAL fails, dialback.
func (s *Service) authenticate(ps *peerStream) error {
	if offersExternal(ps.features) {
		auth := xmpp.NewElementNS(xmpp.NSSASL, "auth")
		auth.CreateAttr("mechanism", "EXTERNAL")
		// XEP-0178 §3: the authorization identity is the sending domain.
		auth.SetText(base64.StdEncoding.EncodeToString([]byte(ps.local)))
		if err := ps.send(auth); err != nil {
			return err
		}
		el, err := ps.r.ReadElement()
		if err != nil {
			return fmt.Errorf("s2s: SASL with %s: %w", ps.remote, err)
		}
		if el.Tag == "success" && xmpp.NS(el) == xmpp.NSSASL {
			ps.r.Restart()
			if err := ps.open(); err != nil {
				return err
			}
			s.outExternal.Add(1)
			return nil
		}
		s.log.Info("s2s: SASL EXTERNAL refused; trying dialback", "local", ps.local, "remote", ps.remote, "answer", el.Tag)
	}
	if s.cfg.RequireValidCerts {
		return fmt.Errorf("s2s: %s does not accept our certificate, and require_valid_certs is on", ps.remote)
	}
	if !offersDialback(ps.features) {
		return fmt.Errorf("s2s: %s offers neither SASL EXTERNAL nor dialback", ps.remote)
	}
	res := dialbackElement("result")
	res.CreateAttr("from", ps.local)
	res.CreateAttr("to", ps.remote)
	res.SetText(dialbackKey(s.secret, ps.remote, ps.local, ps.id))
	if err := ps.send(res); err != nil {
		return err
	}
	for {
		el, err := ps.r.ReadElement()
		if err != nil {
			return fmt.Errorf("s2s: dialback with %s: %w", ps.remote, err)
		}
		if el.Tag != "result" || xmpp.NS(el) != nsDialback ||
			el.SelectAttrValue("from", "") != ps.remote || el.SelectAttrValue("to", "") != ps.local {
			continue
		}
		switch typ := el.SelectAttrValue("type", ""); typ {
		case "valid":
			s.outDialback.Add(1)
			return nil
		default:
			return fmt.Errorf("%w: %s answered %q", errDialbackRefused, ps.remote, typ)
		}
	}
}

// streamHeader is a jabber:server stream header declaring the dialback
// prefix, which servers before XEP-0220's feature look for.
func streamHeader(from, to, id string) string {
	var b strings.Builder
	b.WriteString("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='" + xmpp.NSStream +
		"' xmlns:db='" + nsDialback + "'")
	for _, a := range [][2]string{{"from", from}, {"to", to}, {"id", id}} {
		if a[1] == "" {
			continue
		}
		b.WriteString(" " + a[0] + "='")
		_ = xml.EscapeText(&b, []byte(a[1]))
		b.WriteString("'")
	}
	b.WriteString(" version='1.0'>")
	return b.String()
}

// verifyKey asks remote's authoritative server whether key is its key
// for the stream id it opened to local (XEP-0220 §2.1.2, on a stream of
// its own, closed after the answer).
func (s *Service) verifyKey(ctx context.Context, local, remote, id, key string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	ps, err := s.dialPeer(ctx, pair{local: local, remote: remote})
	if err != nil {
		return false, err
	}
	defer ps.close()
	v := dialbackElement("verify")
	v.CreateAttr("from", local)
	v.CreateAttr("to", remote)
	v.CreateAttr("id", id)
	v.SetText(key)
	if err := ps.send(v); err != nil {
		return false, err
	}
	for {
		el, err := ps.r.ReadElement()
		if err != nil {
			return false, fmt.Errorf("s2s: verifying with %s: %w", remote, err)
		}
		if el.Tag != "verify" || xmpp.NS(el) != nsDialback || el.SelectAttrValue("id", "") != id ||
			el.SelectAttrValue("from", "") != remote || el.SelectAttrValue("to", "") != local {
			continue
		}
		_ = ps.w.WriteEnd()
		_ = ps.w.Flush()
		switch typ := el.SelectAttrValue("type", ""); typ {
		case "valid":
			return true, nil
		case "invalid":
			return false, nil
		default:
			return false, fmt.Errorf("s2s: %s answered db:verify with %q", remote, typ)
		}
	}
}

// deadline returns the time d from now, or no deadline for d == 0.
func deadline(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

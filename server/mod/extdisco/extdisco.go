// Package extdisco is the module of external service discovery
// (XEP-0215, urn:xmpp:extdisco:2): it tells a host's users of the STUN
// and TURN servers in its config ([[host.external_service]]), with
// credentials for the TURN ones, so that their calls get through NAT.
//
// TURN credentials are static (username and password in the config) or
// time-limited, made with turn_secret as coturn's use-auth-secret (the
// TURN REST API draft, draft-uberti-behave-turn-rest-00) checks them:
// the username is "<expiry, unix seconds>:<the user's bare JID>" and the
// password base64(HMAC-SHA1(turn_secret, username)), valid for turn_ttl.
//
// A host with no external service does not list the feature and answers
// its iqs with <service-unavailable/>: XEP-0215 §2 allows that answer
// from an entity that does not support the protocol, and a client
// (Conversations, Dino) that finds the feature asks for services it
// would not get.
package extdisco

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"strconv"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/xmpp"
)

// NS is XEP-0215's namespace, and its disco#info feature.
const NS = "urn:xmpp:extdisco:2"

func init() {
	local.RegisterModule(local.Module{Name: "extdisco", Start: start})
}

func start(h *local.Host) error {
	o := h.Options()
	if o == nil || len(o.ExternalServices) == 0 {
		return nil
	}
	m := &module{
		host:     h.Name(),
		services: o.ExternalServices,
		secret:   []byte(o.TURNSecret),
		ttl:      o.TURNTTL.Duration,
		now:      time.Now,
	}
	h.HandleIQ(local.ToHost, "get", NS, "services", NS, m.usersOnly(m.list))
	// <credentials/> is part of the same feature (XEP-0215 §3.3).
	h.HandleIQ(local.ToHost, "get", NS, "credentials", "", m.usersOnly(m.credentials))
	return nil
}

type module struct {
	host     string
	services []local.ExternalService
	secret   []byte // turn_secret; empty when unset
	ttl      time.Duration
	now      func() time.Time
}

// usersOnly lets only the host's own users through: the services and
// their credentials are for its users' calls, not for anyone who can
// address the server (XEP-0215 §2: <forbidden/>).
func (m *module) usersOnly(f local.IQHandler) local.IQHandler {
	return func(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
		if st.From.Domain() != m.host || st.From.Local() == "" {
			return nil, xmpp.NewStanzaError(xmpp.Forbidden, "external services are for this server's users")
		}
		return f(ctx, st)
	}
}

// list answers <services/> (XEP-0215 §3.1, §3.2): every service, or those
// of the type asked for, with their credentials, fresh ones for TURN.
func (m *module) list(_ context.Context, st *xmpp.Stanza) (*etree.Element, error) {
	typ := st.Payload().SelectAttrValue("type", "")
	out := xmpp.NewElementNS(NS, "services")
	if typ != "" {
		out.CreateAttr("type", typ)
	}
	creds := m.credentialsFor(st.From.Bare())
	for _, s := range m.services {
		if typ == "" || s.Type == typ {
			m.service(out, s, creds)
		}
	}
	return out, nil
}

// credentials answers <credentials/> (XEP-0215 §3.3): the services that
// need credentials and match one of the <service/> asked for by type and
// host, and port when it is given.
func (m *module) credentials(_ context.Context, st *xmpp.Stanza) (*etree.Element, error) {
	asked := st.Payload().SelectElements("service")
	if len(asked) == 0 {
		return nil, xmpp.NewStanzaError(xmpp.BadRequest, "name a <service/> with its type and host")
	}
	for _, a := range asked {
		if a.SelectAttrValue("type", "") == "" || a.SelectAttrValue("host", "") == "" {
			return nil, xmpp.NewStanzaError(xmpp.BadRequest, "a <service/> needs a type and a host")
		}
	}
	creds := m.credentialsFor(st.From.Bare())
	out := xmpp.NewElementNS(NS, "credentials")
	found := false
	for _, s := range m.services {
		if m.restricted(s) && matchesAny(s, asked) {
			m.service(out, s, creds)
			found = true
		}
	}
	if !found {
		// §3.3: the server cannot obtain credentials at that service.
		return nil, xmpp.NewStanzaError(xmpp.ItemNotFound, "no service of this server with credentials matches")
	}
	return out, nil
}

// matchesAny reports whether s is one of the services asked for.
func matchesAny(s local.ExternalService, asked []*etree.Element) bool {
	for _, a := range asked {
		port := a.SelectAttrValue("port", "")
		if a.SelectAttrValue("type", "") == s.Type && a.SelectAttrValue("host", "") == s.Host &&
			(port == "" || port == strconv.Itoa(s.Port)) {
			return true
		}
	}
	return false
}

// turnREST are time-limited TURN credentials, the same for every TURN
// service of one answer.
type turnREST struct {
	username, password, expires string
}

// credentialsFor makes the time-limited credentials of user, or returns
// nil when the host has no turn_secret.
func (m *module) credentialsFor(user xmpp.JID) *turnREST {
	if len(m.secret) == 0 {
		return nil
	}
	exp := m.now().Add(m.ttl).UTC()
	username := strconv.FormatInt(exp.Unix(), 10) + ":" + user.String()
	mac := hmac.New(sha1.New, m.secret)
	mac.Write([]byte(username))
	return &turnREST{
		username: username,
		password: base64.StdEncoding.EncodeToString(mac.Sum(nil)),
		expires:  exp.Format("2006-01-02T15:04:05Z"), // XEP-0082, in UTC as §2 asks
	}
}

// restricted reports whether s needs credentials, which the server gives.
func (m *module) restricted(s local.ExternalService) bool {
	return s.Restricted || s.Password != "" || s.IsTURN() && len(m.secret) > 0
}

// service appends s's <service/> to parent, with its credentials: the
// static ones, or creds for a TURN service when there are any.
func (m *module) service(parent *etree.Element, s local.ExternalService, creds *turnREST) {
	e := parent.CreateElement("service")
	e.CreateAttr("type", s.Type)
	e.CreateAttr("host", s.Host)
	e.CreateAttr("port", strconv.Itoa(s.Port))
	e.CreateAttr("transport", s.Transport)
	if s.Name != "" {
		e.CreateAttr("name", s.Name)
	}
	if m.restricted(s) {
		e.CreateAttr("restricted", "true")
	}
	switch {
	case s.Password != "":
		e.CreateAttr("username", s.Username)
		e.CreateAttr("password", s.Password)
	case s.IsTURN() && creds != nil:
		e.CreateAttr("username", creds.username)
		e.CreateAttr("password", creds.password)
		e.CreateAttr("expires", creds.expires)
	}
}

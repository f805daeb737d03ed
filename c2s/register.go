package c2s

import (
	"context"
	"errors"
	"log/slog"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// Namespaces of in-band registration.
const (
	NSRegister        = "jabber:iq:register"
	NSRegisterFeature = "http://jabber.org/features/iq-register"
	NSPreauth         = "urn:xmpp:pars:0"
)

// Registration modes, as conf spells them.
const (
	RegistrationClosed = "closed"
	RegistrationOpen   = "open"
	RegistrationInvite = "invite"
)

// Registrar creates accounts for in-band registration (XEP-0077).
type Registrar interface {
	// Mode returns "closed", "open" or "invite" for a local host.
	Mode(host string) string
	// CheckInvite reports whether token is a valid, unused invite for
	// host, without using it.
	CheckInvite(ctx context.Context, host, token string) error
	// Register creates the account; with a token (invite mode) it uses
	// the invite up. It returns a *xmpp.StanzaError the client is shown:
	// conflict for a taken username, not-acceptable for a bad username or
	// password, not-allowed for a bad or used token.
	Register(ctx context.Context, host, username, password, token string) error
}

// registerFeature offers registration on secure, unauthenticated streams
// of hosts that allow it.
func (s *Session) offerRegister() *etree.Element {
	if s.srv.cfg.Registrar == nil || s.state&stateSecure == 0 {
		return nil
	}
	if mode := s.srv.cfg.Registrar.Mode(s.host); mode != RegistrationOpen && mode != RegistrationInvite {
		return nil
	}
	return newElementNS(NSRegisterFeature, "register")
}

// matchRegister matches the iqs of registration and pre-authentication.
func matchRegister(el *etree.Element) bool {
	if xmpp.KindOf(el) != xmpp.KindIQ {
		return false
	}
	c := el.ChildElements()
	if len(c) != 1 {
		return false
	}
	ns := xmpp.NS(c[0])
	return (c[0].Tag == "query" && ns == NSRegister) || (c[0].Tag == "preauth" && ns == NSPreauth)
}

// register answers a registration iq on an unauthenticated stream.
func (s *Session) register(el *etree.Element) error {
	st, err := xmpp.NewStanza(el)
	if err != nil {
		return s.bindError(st, xmpp.NewStanzaError(xmpp.BadRequest, err.Error()))
	}
	reg := s.srv.cfg.Registrar
	mode := RegistrationClosed
	if reg != nil && s.state&stateSecure != 0 {
		mode = reg.Mode(s.host)
	}
	if mode != RegistrationOpen && mode != RegistrationInvite {
		return s.bindError(st, xmpp.NewStanzaError(xmpp.NotAllowed, "this server does not allow in-band registration"))
	}
	p := st.Payload()
	switch {
	case p.Tag == "preauth" && st.Type == "set":
		// XEP-0401: the token comes first, registration after.
		token := p.SelectAttrValue("token", "")
		ctx, done := s.storeContext()
		err := reg.CheckInvite(ctx, s.host, token)
		done()
		if s.closing.Load() {
			// Closed meanwhile (Shutdown): the answer goes unsaid.
			return errClosing
		}
		if err != nil {
			return s.bindError(st, asStanzaError(err))
		}
		s.token = &token
		return s.bindReply(st, nil)
	case st.Type == "get":
		q := newElementNS(NSRegister, "query")
		text := "Choose a username and password."
		if mode == RegistrationInvite {
			text = "Choose a username and password; this server needs an invitation (its token in <key/>, or sent first as a XEP-0401 preauth)."
			q.CreateElement("key")
		}
		q.CreateElement("instructions").SetText(text)
		q.CreateElement("username")
		q.CreateElement("password")
		return s.bindReply(st, q)
	case st.Type == "set":
		if xmpp.Child(p, NSRegister, "remove") != nil {
			return s.bindError(st, xmpp.NewStanzaError(xmpp.NotAuthorized, "log in to remove your account"))
		}
		user, pass := childText(p, "username"), childText(p, "password")
		if user == "" || pass == "" {
			return s.bindError(st, xmpp.NewStanzaError(xmpp.NotAcceptable, "a username and a password are required"))
		}
		token := ""
		if s.token != nil {
			token = *s.token
		}
		if k := childText(p, "key"); k != "" {
			token = k
		}
		if mode == RegistrationInvite && token == "" {
			return s.bindError(st, xmpp.NewStanzaError(xmpp.NotAllowed, "this server needs an invitation token"))
		}
		if mode == RegistrationOpen {
			token = ""
		}
		// Registrations have a per-address budget of their own
		// (registrations_per_ip a minute): one address cannot make
		// accounts without end, and registering never stands in the way
		// of logging in.
		if l := s.srv.registrations; l != nil {
			remote := s.conn.RemoteAddr().String()
			if _, blocked := l.Blocked(remote); blocked {
				return s.bindError(st, xmpp.NewStanzaError(xmpp.ResourceConstraint, "too many registrations from your address; try again in a minute"))
			}
			l.Fail(remote)
		}
		ctx, done := s.storeContext()
		err := reg.Register(ctx, s.host, user, pass, token)
		done()
		if s.closing.Load() {
			return errClosing
		}
		if err != nil {
			return s.bindError(st, asStanzaError(err))
		}
		s.token = nil
		s.log(slog.LevelInfo, "c2s: account registered", "user", user+"@"+s.host)
		return s.bindReply(st, nil)
	}
	return s.bindError(st, xmpp.NewStanzaError(xmpp.BadRequest, ""))
}

func childText(el *etree.Element, local string) string {
	if c := el.SelectElement(local); c != nil {
		return c.Text()
	}
	return ""
}

func asStanzaError(err error) *xmpp.StanzaError {
	var se *xmpp.StanzaError
	if errors.As(err, &se) {
		return se
	}
	return xmpp.NewStanzaError(xmpp.InternalServerError, "")
}

// bindReply writes an iq result on a stream that is not bound yet.
func (s *Session) bindReply(st *xmpp.Stanza, payload *etree.Element) error {
	reply := xmpp.NewIQ("result", st.ID, xmpp.JID{}, xmpp.JID{}, payload)
	if err := s.w.WriteElement(reply.El); err != nil {
		return err
	}
	return s.flush()
}

// Package carbons is the module of Message Carbons (XEP-0280): a user's
// resources that enable carbons get a copy of each chat message that one
// of the user's other resources sends (<sent/>) or that is delivered to
// another resource (<received/>), so that every device shows the whole
// conversation.
//
// Which messages are copied follows XEP-0280 §6's suggested rules, as
// Prosody's mod_carbons reads them: chat, normal with a body, errors from
// a bare JID (bounces of what the user sent to a bare JID), Jingle
// message initiation, and anything the archive stamped for the user; never
// one marked <private/> (XEP-0280 §8) or <no-copy/> (XEP-0334), nor a
// private message through a group chat room.
package carbons

import (
	"context"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/xmpp"
)

// Namespaces of the module.
const (
	// NS is XEP-0280's namespace and feature.
	NS = "urn:xmpp:carbons:2"
	// NSRules is the feature saying the server follows XEP-0280's
	// eligibility rules of version 1.0 (Prosody and Conversations look
	// for it).
	NSRules = "urn:xmpp:carbons:rules:0"
	// NSForward is Stanza Forwarding (XEP-0297), the wrapper of a copy.
	NSForward = "urn:xmpp:forward:0"
	// NSHints is Message Processing Hints (XEP-0334).
	NSHints = "urn:xmpp:hints"
	// nsMUCUser marks a message that comes through a group chat room.
	nsMUCUser = "http://jabber.org/protocol/muc#user"
	// nsSID is Unique and Stable Stanza IDs (XEP-0359).
	nsSID = "urn:xmpp:sid:0"
)

// Priority is where the module's handlers run among others of their
// points: after the archive's (priority 0 and up), whose stanza-id the
// copies then carry, and before the core delivers the original.
const Priority = -10

func init() {
	local.RegisterModule(local.Module{Name: "carbons", Start: start})
}

type module struct {
	h *local.Host
	// enabled is whether a session asked for carbons.
	enabled local.SessionValue[bool]
}

func start(h *local.Host) error {
	m := &module{h: h, enabled: local.NewSessionValue[bool](h)}
	h.HandleIQ(local.ToBare, "set", NS, "enable", NS, m.toggle(true))
	h.HandleIQ(local.ToBare, "set", NS, "disable", "", m.toggle(false))
	h.Feature(NSRules)
	// Bind2 (XEP-0386 §2.2): <enable/> inline, where it always succeeds.
	h.InlineFeature(NS)
	h.HandleInline(NS, "enable", func(s local.Session, _ *etree.Element) { m.enabled.Set(s, true) })
	h.Hook(local.FromClient, xmpp.KindMessage, Priority, m.sent)
	h.Hook(local.ToBare, xmpp.KindMessage, Priority, m.received)
	h.Hook(local.ToFull, xmpp.KindMessage, Priority, m.received)
	return nil
}

// toggle answers <enable/> or <disable/> (XEP-0280 §4, §5). Asking twice
// is no mistake (§10.1).
func (m *module) toggle(on bool) local.IQHandler {
	return func(_ context.Context, st *xmpp.Stanza) (*etree.Element, error) {
		if !st.To.IsZero() && st.To.Bare() != st.From.Bare() {
			// §4.1: a client of another account (or server) cannot
			// decide what this account's resources get.
			return nil, xmpp.NewStanzaError(xmpp.NotAllowed, "carbons are for your own account")
		}
		s := m.h.Recipient(st.From)
		if s == nil || !m.enabled.Set(s, on) {
			return nil, xmpp.NewStanzaError(xmpp.NotAllowed, "only a session of this server can enable carbons")
		}
		return nil, nil
	}
}

// sent copies what a session of the user sends to the user's other
// resources that enabled carbons (XEP-0280 §7), whether or not the
// sender enabled them.
func (m *module) sent(from local.Session, st *xmpp.Stanza) bool {
	if !m.enabled.Any() || m.h.SessionCount(st.From.Local()) < 2 || !eligible(st, true, st.From.Bare()) {
		return false
	}
	others := m.h.Sessions(st.From.Local())
	var carbon *xmpp.Stanza
	for _, s := range others {
		if s == from || s.Closing() || !m.enabled.Get(s) {
			continue
		}
		if carbon == nil {
			orig := st
			if st.To.IsZero() {
				// Sent without to: to the user's own bare JID (RFC 6120
				// §10.3), which the copy says.
				orig = st.Copy()
				orig.SetTo(st.From.Bare())
			}
			carbon = wrap("sent", st.From.Bare(), orig)
		}
		m.h.Deliver(s, forTo(carbon, s.JID()))
	}
	return false
}

// received copies a message to a user to the user's resources that
// enabled carbons and will not get it by RFC 6121's rules (XEP-0280 §6):
// the full JID it is addressed to gets it, or, for a bare JID or a
// resource that is gone, the available resources of the highest
// non-negative priority do (§8.5.2.1.1).
func (m *module) received(_ local.Session, st *xmpp.Stanza) bool {
	if st.Type == "groupchat" {
		// §6: a message a room sends is not eligible, whatever it
		// carries; each resource in the room gets its own copy.
		return false
	}
	bare := st.To.Bare()
	if (!m.enabled.Any() || m.h.SessionCount(st.To.Local()) < 2) && xmpp.Child(st.El, NS, "private") == nil {
		// One resource gets the message, and nobody a copy.
		return false
	}
	if !eligible(st, false, bare) {
		if p := xmpp.Child(st.El, NS, "private"); p != nil {
			// §8: the recipient need not see the sender's wish.
			st.El.RemoveChild(p)
		}
		return false
	}
	all := m.h.Sessions(st.To.Local())
	if len(all) < 2 {
		return false
	}
	var target local.Session
	if st.To.Resource() != "" {
		target = m.h.Recipient(st.To)
	}
	best := -1
	if target == nil {
		for _, s := range all {
			if s.Available() && !s.Closing() && s.Priority() > best {
				best = s.Priority()
			}
		}
	}
	var carbon *xmpp.Stanza
	for _, s := range all {
		switch {
		case s == target, s.Closing():
			continue
		case target == nil && best >= 0 && s.Available() && s.Priority() == best:
			// It gets the original.
			continue
		case !m.enabled.Get(s):
			continue
		}
		if carbon == nil {
			carbon = wrap("received", bare, st)
		}
		m.h.Deliver(s, forTo(carbon, s.JID()))
	}
	return false
}

// eligible reports whether st is copied (XEP-0280 §6). fromClient says
// that the user sent it; user is the user's bare JID.
func eligible(st *xmpp.Stanza, fromClient bool, user xmpp.JID) bool {
	if xmpp.Child(st.El, NS, "private") != nil || xmpp.Child(st.El, NSHints, "no-copy") != nil {
		return false
	}
	if !fromClient && st.To.Resource() != "" && xmpp.Child(st.El, nsMUCUser, "x") != nil {
		// A private message through a room reaches the one occupant
		// it was meant for.
		return false
	}
	switch st.Type {
	case "chat":
		return true
	case "", "normal":
		if xmpp.Child(st.El, "", "body") != nil {
			return true
		}
	case "error":
		// The bounce of a message the user sent to a bare JID.
		if !fromClient && st.From.Resource() == "" {
			return true
		}
	}
	for _, t := range st.El.ChildElements() {
		switch ns := xmpp.NS(t); {
		case ns == "urn:xmpp:jingle-message:0" || ns == "urn:xmpp:jingle-message:1":
			return true
		case ns == nsSID && t.Tag == "stanza-id" && t.SelectAttrValue("by", "") == user.String():
			return true
		}
	}
	return false
}

// wrap makes the copy of orig that the user's resources get: from the
// user's bare JID, of orig's type, orig inside <dir><forwarded/></dir>
// (XEP-0297). Its to is set per resource by forTo.
func wrap(dir string, user xmpp.JID, orig *xmpp.Stanza) *xmpp.Stanza {
	inner := orig.El.Copy()
	inner.RemoveAttr("xmlns")
	inner.CreateAttr("xmlns", "jabber:client")
	fwd := xmpp.NewElementNS(NSForward, "forwarded")
	fwd.AddChild(inner)
	d := xmpp.NewElementNS(NS, dir)
	d.AddChild(fwd)
	msg := etree.NewElement("message")
	if orig.Type != "" {
		msg.CreateAttr("type", orig.Type)
	}
	msg.AddChild(d)
	c := &xmpp.Stanza{El: msg, Kind: xmpp.KindMessage, Type: orig.Type}
	c.SetFrom(user)
	return c
}

// forTo returns the copy addressed to one resource: each session gets its
// own element, since a session's writer reads it after Deliver returns.
func forTo(carbon *xmpp.Stanza, to xmpp.JID) *xmpp.Stanza {
	c := carbon.Copy()
	c.SetTo(to)
	return c
}

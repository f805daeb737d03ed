package muc

import (
	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// invite passes on a mediated invitation (XEP-0045 §7.8.2) from the
// occupant s: to each invitee, from the room, with the inviter's real
// JID, the reason and the room's password. In a members-only room only
// admins and owners may invite (§7.8.2's SHOULD, and Prosody's default)
// unless muc#roomconfig_allowinvites lets members too, and the invitee
// becomes a member, as in Prosody, so that the invitation can be used.
func (r *room) invite(st *xmpp.Stanza, s *session, invites []*etree.Element) {
	if s == nil {
		r.bounce(st, xmpp.NotAcceptable, "only occupants may invite to this room")
		return
	}
	if !r.mayInvite(r.affiliation(s.occ.bare)) {
		r.bounce(st, xmpp.Forbidden, "only admins may invite to this members-only room")
		return
	}
	invitees := make([]xmpp.JID, 0, len(invites))
	for _, inv := range invites {
		j, err := xmpp.Parse(inv.SelectAttrValue("to", ""))
		if err != nil {
			r.bounce(st, xmpp.JIDMalformed, "an invitation goes to a JID")
			return
		}
		invitees = append(invitees, j)
	}
	granted := false
	for i, inv := range invites {
		m := etree.NewElement("message")
		m.CreateAttr("from", r.jid.String())
		m.CreateAttr("to", invitees[i].String())
		if st.ID != "" {
			m.CreateAttr("id", st.ID)
		}
		reason := ""
		if rs := inv.SelectElement("reason"); rs != nil {
			reason = rs.Text()
		}
		x := m.CreateElement("x")
		x.CreateAttr("xmlns", NSMUCUser)
		ie := x.CreateElement("invite")
		ie.CreateAttr("from", st.From.String())
		if reason != "" {
			ie.CreateElement("reason").SetText(reason)
		}
		if r.cfg.PasswordProtected {
			x.CreateElement("password").SetText(r.cfg.Password)
		}
		// A body for clients that do not know invitations (Prosody
		// adds one too).
		body := st.From.Bare().String() + " invited you to the room " + r.jid.String()
		if reason != "" {
			body += " (" + reason + ")"
		}
		m.CreateElement("body").SetText(body)
		r.send(&xmpp.Stanza{El: m, Kind: xmpp.KindMessage, From: r.jid, To: invitees[i], ID: st.ID})
		if r.cfg.MembersOnly && r.affiliation(invitees[i].Bare()) == affNone && invitees[i].Local() != "" {
			r.affs[invitees[i].Bare()] = affMember
			granted = true
		}
	}
	if granted && r.cfg.Persistent {
		r.svc.markDirty(r)
	}
}

// decline passes on an invitee's decline (§7.8.3) to the inviter named
// in its to, from the room.
func (r *room) decline(st *xmpp.Stanza, d *etree.Element) {
	j, err := xmpp.Parse(d.SelectAttrValue("to", ""))
	if err != nil {
		r.bounce(st, xmpp.JIDMalformed, "a decline goes to the inviter's JID")
		return
	}
	m := etree.NewElement("message")
	m.CreateAttr("from", r.jid.String())
	m.CreateAttr("to", j.String())
	x := m.CreateElement("x")
	x.CreateAttr("xmlns", NSMUCUser)
	de := x.CreateElement("decline")
	de.CreateAttr("from", st.From.String())
	if rs := d.SelectElement("reason"); rs != nil {
		de.CreateElement("reason").SetText(rs.Text())
	}
	r.send(&xmpp.Stanza{El: m, Kind: xmpp.KindMessage, From: r.jid, To: j})
}

// mayInvite says whether a user of affiliation aff may invite others:
// anyone in an open room; in a members-only room, where an invitation
// grants membership, admins and owners, and members when the room
// allows it (muc#roomconfig_allowinvites), so that the member list stays
// the admins' to keep unless the owner lets it go.
func (r *room) mayInvite(aff string) bool {
	switch {
	case !r.cfg.MembersOnly:
		return true
	case affRank(aff) >= affRank(affAdmin):
		return true
	}
	return r.cfg.AllowInvites && aff == affMember
}

package muc

import (
	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// formRequest is the FORM_TYPE of voice requests (XEP-0045 §7.13, §8.6).
const formRequest = "http://jabber.org/protocol/muc#request"

// formFields returns the first value of each field of the data form x.
func formFields(x *etree.Element) map[string]string {
	out := map[string]string{}
	for _, f := range x.SelectElements("field") {
		v := ""
		if val := f.SelectElement("value"); val != nil {
			v = val.Text()
		}
		out[f.SelectAttrValue("var", "")] = v
	}
	return out
}

// voiceRequest handles a muc#request form from the occupant s: from a
// visitor it is a request for voice (§7.13), passed to the moderators as
// a form to approve; from a moderator it is that form submitted back
// (§8.6), which gives the visitor voice when muc#request_allow is true.
// What is neither is dropped, as Prosody does.
func (r *room) voiceRequest(st *xmpp.Stanza, s *session, fields map[string]string) {
	if s == nil {
		r.bounce(st, xmpp.NotAcceptable, "only occupants may ask for voice")
		return
	}
	switch s.occ.role {
	case roleModerator:
		if allow, err := parseBool("muc#request_allow", fields["muc#request_allow"]); err != nil || !allow {
			return
		}
		target := r.occupants[fields["muc#roomnick"]]
		if j, err := xmpp.Parse(fields["muc#jid"]); err == nil && r.byReal[j] != nil {
			target = r.byReal[j].occ
		}
		if target != nil && target.role == roleVisitor {
			r.setRole(target, roleParticipant, s, "")
		}
	case roleVisitor:
		m := newEl("message", r.jid, "normal")
		x := m.CreateElement("x")
		x.CreateAttr("xmlns", NSData)
		x.CreateAttr("type", "form")
		x.CreateElement("title").SetText("Voice request")
		field(x, "FORM_TYPE", "hidden", "", nil, formRequest)
		field(x, "muc#jid", "jid-single", "User ID", nil, s.real.String())
		field(x, "muc#roomnick", "text-single", "Room nickname", nil, s.occ.nick)
		field(x, "muc#role", "list-single", "Requested role", []string{roleParticipant}, roleParticipant)
		field(x, "muc#request_allow", "boolean", "Grant voice to this person?", nil, "false")
		m.Child = m.Child[:len(m.Child):len(m.Child)]
		for _, o := range r.sortedOccupants() {
			if o.role != roleModerator {
				continue
			}
			for _, ms := range o.sessions {
				r.send(to(m, xmpp.KindMessage, ms, nil))
			}
		}
	}
}

package muc

import "github.com/parley-im/parley/xmpp"

// announceAbsent tells the room that the affiliation of bare, a user not
// in it, is now aff (XEP-0045 §9.3–§10.7: "the service MAY send a
// message from the room itself to the room occupants"), as Prosody
// does: a message with the muc#user item. The item names the real JID,
// so in a semi-anonymous room only moderators get it; r.mu is held.
func (r *room) announceAbsent(bare xmpp.JID, aff, reason string) {
	m := newEl("message", r.jid, "")
	x := m.CreateElement("x")
	x.CreateAttr("xmlns", NSMUCUser)
	it := x.CreateElement("item")
	it.CreateAttr("affiliation", aff)
	it.CreateAttr("jid", bare.String())
	it.CreateAttr("role", roleNone)
	if reason != "" {
		it.CreateElement("reason").SetText(reason)
	}
	m.Child = m.Child[:len(m.Child):len(m.Child)]
	for _, o := range r.sortedOccupants() {
		if !r.seesJIDs(o) {
			continue
		}
		for _, s := range o.sessions {
			r.send(to(m, xmpp.KindMessage, s, nil))
		}
	}
}

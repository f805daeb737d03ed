package muc

import (
	"sort"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// affRank orders affiliations (XEP-0045 §5.2): who may change whom is
// decided by comparing them.
func affRank(a string) int {
	switch a {
	case affBanned:
		return 0
	case affMember:
		return 2
	case affAdmin:
		return 3
	case affOwner:
		return 4
	}
	return 1 // none
}

func validAff(a string) bool {
	switch a {
	case affOwner, affAdmin, affMember, affNone, affBanned:
		return true
	}
	return false
}

func validRole(r string) bool {
	switch r {
	case roleModerator, roleParticipant, roleVisitor, roleNone:
		return true
	}
	return false
}

// sortedOccupants returns the occupants by nick, so that what is sent
// for several of them comes in an order tests and clients can rely on.
func (r *room) sortedOccupants() []*occupant {
	out := make([]*occupant, 0, len(r.occupants))
	for _, o := range r.occupants {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].nick < out[j].nick })
	return out
}

// admin handles a muc#admin iq (XEP-0045 §8, §9, §10.3–10.8); it returns
// true when it released r.mu itself.
func (r *room) admin(st *xmpp.Stanza, q *etree.Element) bool {
	if st.Type == "get" {
		r.adminList(st, q)
		return false
	}
	return r.adminSet(st, q)
}

// adminList answers a list request: by affiliation (the ban list and the
// member list for admins, §9.1 and §9.5; the admin and owner lists for
// owners, §10.5 and §10.8) or by role (the voice list §8.5, the
// moderator list §9.8, for moderators).
func (r *room) adminList(st *xmpp.Stanza, q *etree.Element) {
	items := q.SelectElements("item")
	if len(items) != 1 {
		r.bounce(st, xmpp.BadRequest, "ask for one list")
		return
	}
	aff, role := items[0].SelectAttrValue("affiliation", ""), items[0].SelectAttrValue("role", "")
	res := xmpp.NewElementNS(NSMUCAdmin, "query")
	switch {
	case aff != "" && role == "":
		if !validAff(aff) || aff == affNone {
			r.bounce(st, xmpp.BadRequest, "no list of affiliation "+aff)
			return
		}
		need := affAdmin
		if aff == affOwner || aff == affAdmin {
			need = affOwner
		}
		if affRank(r.affiliation(st.From.Bare())) < affRank(need) {
			r.bounce(st, xmpp.Forbidden, "only the room's "+need+"s may see that list")
			return
		}
		var jids []xmpp.JID
		for j, a := range r.affs {
			if a == aff {
				jids = append(jids, j)
			}
		}
		sort.Slice(jids, func(i, k int) bool { return jids[i].String() < jids[k].String() })
		for _, j := range jids {
			it := res.CreateElement("item")
			it.CreateAttr("affiliation", aff)
			it.CreateAttr("jid", j.String())
			if n := r.nicks[j]; n != "" {
				it.CreateAttr("nick", n) // §9.5: the member's registered nick
			}
		}
	case role != "" && aff == "":
		if !validRole(role) || role == roleNone {
			r.bounce(st, xmpp.BadRequest, "no list of role "+role)
			return
		}
		if s := r.byReal[st.From]; s == nil || s.occ.role != roleModerator {
			r.bounce(st, xmpp.Forbidden, "only moderators may see that list")
			return
		}
		for _, o := range r.sortedOccupants() {
			if o.role != role {
				continue
			}
			it := res.CreateElement("item")
			it.CreateAttr("affiliation", r.affiliation(o.bare))
			if o.last != nil {
				it.CreateAttr("jid", o.last.real.String()) // a moderator sees real JIDs
			}
			it.CreateAttr("nick", o.nick)
			it.CreateAttr("role", role)
		}
	default:
		r.bounce(st, xmpp.BadRequest, "an item names an affiliation or a role")
		return
	}
	r.send(st.Result(res))
}

// change is one checked item of a muc#admin set.
type change struct {
	role   string    // a role change of occ, or ""
	occ    *occupant // its target
	aff    string    // an affiliation change of jid, or ""
	jid    xmpp.JID
	reason string
}

// adminSet applies the items of a muc#admin set: all of them or, when
// one is refused, none (§9: "the service MUST NOT change any of them").
// Affiliation changes are saved before the answer.
func (r *room) adminSet(st *xmpp.Stanza, q *etree.Element) bool {
	items := q.SelectElements("item")
	if len(items) == 0 {
		r.bounce(st, xmpp.BadRequest, "no item")
		return false
	}
	var changes []change
	for _, it := range items {
		c, cond, text := r.check(st, it)
		if cond != "" {
			r.bounce(st, cond, text)
			return false
		}
		changes = append(changes, c)
	}
	// §10.6, §10.7: the room keeps an owner. The count is of the room
	// after every item, so that one iq may hand ownership on.
	owners := map[xmpp.JID]bool{}
	for j, a := range r.affs {
		if a == affOwner {
			owners[j] = true
		}
	}
	hadOwner := len(owners) > 0
	affChanged := false
	for _, c := range changes {
		if c.aff != "" {
			affChanged = true
			owners[c.jid] = c.aff == affOwner
			if !owners[c.jid] {
				delete(owners, c.jid)
			}
		}
	}
	if hadOwner && len(owners) == 0 {
		r.bounce(st, xmpp.Conflict, "the room would have no owner left")
		return false
	}
	actor := r.byReal[st.From]
	for _, c := range changes {
		if c.aff != "" {
			r.setAffiliation(c.jid, c.aff, actor, c.reason)
		} else if r.occupants[c.occ.nick] == c.occ { // an earlier item may have removed it
			r.setRole(c.occ, c.role, actor, c.reason)
		}
	}
	if !affChanged {
		r.send(st.Result(nil))
		return false
	}
	return r.saveAndAnswer(st, "affiliation")
}

// check reads and checks one item of a muc#admin set from st's sender,
// by the permission rules of XEP-0045 §8 (moderators: kick, voice), §9
// (admins: ban, members, moderators) and §10 (owners: admins, owners).
// It returns the error condition and text of a refusal, or "".
func (r *room) check(st *xmpp.Stanza, it *etree.Element) (change, xmpp.StanzaCondition, string) {
	c := change{role: it.SelectAttrValue("role", ""), aff: it.SelectAttrValue("affiliation", "")}
	if rs := it.SelectElement("reason"); rs != nil {
		c.reason = rs.Text()
	}
	nick, jid := it.SelectAttrValue("nick", ""), it.SelectAttrValue("jid", "")
	actorAff := r.affiliation(st.From.Bare())
	switch {
	case c.role != "" && c.aff == "":
		if !validRole(c.role) {
			return c, xmpp.BadRequest, c.role + " is not a role"
		}
		if nick == "" && jid != "" {
			// Roles are by nick; some clients name the occupant by JID.
			if j, err := xmpp.Parse(jid); err == nil {
				for _, o := range r.occupants {
					if o.bare == j.Bare() {
						nick = o.nick
						break
					}
				}
			}
		}
		actor := r.byReal[st.From]
		if actor == nil || actor.occ.role != roleModerator {
			return c, xmpp.Forbidden, "only moderators may change roles"
		}
		c.occ = r.occupants[nick]
		if c.occ == nil {
			return c, xmpp.ItemNotFound, "no occupant of that nick"
		}
		targetAff := r.affiliation(c.occ.bare)
		switch {
		case c.role == roleModerator && affRank(actorAff) < affRank(affAdmin):
			return c, xmpp.Forbidden, "only admins and owners may grant moderation (§9.6)"
		case c.occ.role == roleModerator && c.role != roleModerator && affRank(actorAff) < affRank(affAdmin):
			return c, xmpp.NotAllowed, "only admins and owners may revoke moderation (§9.7)"
		case c.role == roleNone && affRank(actorAff) < affRank(targetAff):
			return c, xmpp.NotAllowed, "an occupant cannot be kicked by one of lower affiliation (§8.2)"
		case (c.role == roleVisitor || c.role == roleParticipant) && (targetAff == affAdmin || targetAff == affOwner):
			return c, xmpp.NotAllowed, "admins and owners keep their voice and moderation (§8.4, §9.7)"
		case c.role == roleVisitor && c.occ.role != roleVisitor && affRank(targetAff) >= affRank(actorAff):
			return c, xmpp.NotAllowed, "voice cannot be revoked from an occupant of the moderator's affiliation or above (§8.4)"
		}
	case c.aff != "" && c.role == "":
		if !validAff(c.aff) {
			return c, xmpp.BadRequest, c.aff + " is not an affiliation"
		}
		if jid == "" {
			if o := r.occupants[nick]; nick != "" && o != nil {
				jid = o.bare.String()
			} else {
				return c, xmpp.BadRequest, "an affiliation is given to a JID"
			}
		}
		j, err := xmpp.Parse(jid)
		if err != nil {
			return c, xmpp.JIDMalformed, "not a JID: " + jid
		}
		if j.Local() == "" && c.aff != affBanned && c.aff != affNone {
			// A domain's affiliation is a ban (affiliation): one of
			// another kind would list a membership no one has.
			return c, xmpp.NotAcceptable, "a domain can only be banned (outcast) or unbanned (none)"
		}
		// Affiliations are by bare JID (§5.2); a full JID names its user.
		c.jid = j.Bare()
		targetAff := r.affiliation(c.jid)
		switch {
		case actorAff == affOwner:
			// An owner may change any affiliation; the last owner is
			// kept by adminSet.
		case actorAff != affAdmin:
			return c, xmpp.Forbidden, "only admins and owners may change affiliations"
		case c.aff == affOwner || c.aff == affAdmin:
			return c, xmpp.NotAllowed, "only owners may grant or revoke admin and owner (§10.3–10.7)"
		case targetAff == affOwner || targetAff == affAdmin:
			return c, xmpp.NotAllowed, "an admin cannot change an admin's or an owner's affiliation (§9.1)"
		}
	default:
		return c, xmpp.BadRequest, "an item changes a role or an affiliation, not both"
	}
	return c, "", ""
}

// actorItem returns what an item of a change's presence says of it: the
// actor's nick and the reason (§8.2).
func actorItem(actor *session, reason string) func(*etree.Element) {
	if actor == nil && reason == "" {
		return nil
	}
	return func(it *etree.Element) {
		if actor != nil {
			it.CreateElement("actor").CreateAttr("nick", actor.occ.nick)
		}
		if reason != "" {
			it.CreateElement("reason").SetText(reason)
		}
	}
}

// setRole gives o the role role, for actor (nil for the room itself),
// and tells the room; role none removes o with 307 (§8.2).
func (r *room) setRole(o *occupant, role string, actor *session, reason string) {
	if role == roleNone {
		r.remove(o, actorItem(actor, reason), statusKicked)
		return
	}
	old := o.role
	o.role = role
	r.announce(o, old, actorItem(actor, reason))
}

// announce tells the room, o's own sessions too, of o's new role or
// affiliation; an occupant that gains or loses moderation in a
// semi-anonymous room gets the others' presence again, now with or
// without their real JIDs.
func (r *room) announce(o *occupant, oldRole string, item func(*etree.Element)) {
	r.broadcastPresence(o, "", item)
	for _, s := range o.sessions {
		r.selfPresence(o, s, "", item)
	}
	if r.nonAnonymous() || (oldRole == roleModerator) == (o.role == roleModerator) {
		return
	}
	sees := r.seesJIDs(o)
	for _, other := range r.sortedOccupants() {
		if other == o {
			continue
		}
		tmpl := r.presenceOf(other, "", sees, nil)
		for _, s := range o.sessions {
			r.send(to(tmpl, xmpp.KindPresence, s, nil))
		}
	}
}

// setAffiliation gives the user bare the affiliation aff and tells the
// room: an outcast's occupants are removed with 301, a removed member's
// in a members-only room with 321; the others' roles follow the new
// affiliation (a demotion lowers the role to the new default, a
// promotion raises it, as Prosody does).
func (r *room) setAffiliation(bare xmpp.JID, aff string, actor *session, reason string) {
	old := r.affiliation(bare)
	if aff == affNone {
		delete(r.affs, bare)
		r.clearNick(bare) // a registered nick goes with its affiliation
	} else {
		r.affs[bare] = aff
	}
	item := actorItem(actor, reason)
	// A banned domain's users go too (unless they have an affiliation
	// of their own, which affiliation reads first).
	domainBan := bare.Local() == "" && aff == affBanned
	present := false
	for _, o := range r.sortedOccupants() {
		if o.bare != bare && (!domainBan || o.bare.Domain() != bare.Domain() || r.affiliation(o.bare) != affBanned) {
			continue
		}
		present = true
		switch def := r.defaultRole(aff); {
		case aff == affBanned:
			r.remove(o, item, statusBanned)
		case def == roleNone:
			r.remove(o, item, statusAffRemoved)
		default:
			oldRole := o.role
			if affRank(aff) < affRank(old) || roleRank(def) > roleRank(o.role) {
				o.role = def
			}
			r.announce(o, oldRole, item)
		}
	}
	if !present && aff != old {
		r.announceAbsent(bare, aff, reason)
	}
}

func roleRank(role string) int {
	switch role {
	case roleVisitor:
		return 1
	case roleParticipant:
		return 2
	case roleModerator:
		return 3
	}
	return 0
}

// remove takes o and all its sessions out of the room, with codes (307
// kicked, 301 banned, 321, 322): each session gets its unavailable
// presence with 110, the others o's.
func (r *room) remove(o *occupant, item func(*etree.Element), codes ...string) {
	delete(r.occupants, o.nick)
	r.svc.dropOccupancy(o.bare)
	for _, s := range o.sessions {
		delete(r.byReal, s.real)
	}
	r.broadcastPresence(o, "unavailable", item, codes...)
	for _, s := range o.sessions {
		r.selfPresence(o, s, "unavailable", item, codes...)
	}
	o.role = roleNone
	if len(r.occupants) == 0 && (!r.cfg.Persistent || r.locked) {
		r.gone = true
	}
}

// destroy destroys the room (§10.9) at its owner's request: each
// occupant gets its unavailable presence with the <destroy/> (the
// alternate venue, the reason, its password), the room's stored row is
// deleted before the owner's answer, and the room is gone. owner checked
// that the sender is an owner; destroy releases r.mu itself.
func (r *room) destroy(st *xmpp.Stanza, d *etree.Element) bool {
	el := etree.NewElement("destroy")
	if alt := d.SelectAttrValue("jid", ""); alt != "" {
		j, err := xmpp.Parse(alt)
		if err != nil {
			r.bounce(st, xmpp.JIDMalformed, "the alternate venue is not a JID")
			return false
		}
		el.CreateAttr("jid", j.String())
	}
	for _, tag := range []string{"reason", "password"} {
		if c := d.SelectElement(tag); c != nil {
			el.CreateElement(tag).SetText(c.Text())
		}
	}
	// The <destroy/> goes next to the item, in the muc#user <x/>.
	withDestroy := func(it *etree.Element) { it.Parent().AddChild(el.Copy()) }
	// §10.9's example shows affiliation none: the room and its
	// affiliations are gone.
	r.affs = map[xmpp.JID]string{}
	for _, o := range r.sortedOccupants() {
		for _, s := range o.sessions {
			r.selfPresence(o, s, "unavailable", withDestroy)
		}
	}
	r.dropAllOccupants()
	r.gone = true
	return r.saveAndAnswer(st, "destruction")
}

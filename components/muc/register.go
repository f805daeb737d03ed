package muc

import (
	"strings"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// Registration with a room (XEP-0045 §7.10) and the discovery of one's
// registered nick (§7.12).
const (
	// NSRegister is In-Band Registration's namespace (XEP-0077), which
	// a room answers for its nicks.
	NSRegister = "jabber:iq:register"
	// formRegister is the FORM_TYPE of a room's registration form.
	formRegister = "http://jabber.org/protocol/muc#register"
	fRoomNick    = "muc#register_roomnick"
	// nodeRoomUserItem is the disco#info node that tells a user its
	// registered nick (§7.12).
	nodeRoomUserItem = "x-roomuser-item"
)

// A registered nick belongs to an affiliation (as Prosody keeps it, in
// the affiliation's data): it is registered by a user who has one or
// gets one by registering, and it goes when the affiliation goes.
// r.nicks and r.nickOwners are one table read both ways; setNick and
// clearNick keep them so. r.mu is held by every method here.

// setNick registers nick for the user bare, replacing its former nick.
func (r *room) setNick(bare xmpp.JID, nick string) {
	r.clearNick(bare)
	if r.nicks == nil {
		r.nicks, r.nickOwners = map[xmpp.JID]string{}, map[string]xmpp.JID{}
	}
	r.nicks[bare] = nick
	r.nickOwners[nick] = bare
}

// clearNick removes the registered nick of bare, if any.
func (r *room) clearNick(bare xmpp.JID) {
	if n, ok := r.nicks[bare]; ok {
		delete(r.nicks, bare)
		delete(r.nickOwners, n)
	}
}

// reservedFromOthers reports whether nick is registered to a user other
// than bare: such a join or nick change gets conflict (§7.12), so that
// the nick keeps naming the one who registered it.
func (r *room) reservedFromOthers(nick string, bare xmpp.JID) bool {
	owner, ok := r.nickOwners[nick]
	return ok && owner != bare
}

// enforcedNick returns the nick bare may be in the room under when it
// asks for nick: its registered nick when the service keeps users to
// theirs (enforce_registered_nick, as Prosody's
// enforce_registered_nickname), else nick.
func (r *room) enforcedNick(bare xmpp.JID, nick string) string {
	if reg := r.nicks[bare]; reg != "" && r.svc.opts.EnforceRegisteredNick {
		return reg
	}
	return nick
}

// register handles a jabber:iq:register iq to the room (§7.10): get
// returns the registration form, or the registered nick; set registers
// the submitted nick, or with <remove/> unregisters. As in Prosody
// (register.lib.lua), a user who has an affiliation keeps it and one of
// none becomes a member, which only allow_unaffiliated_register permits
// and never in a members-only room: registering is not a way around the
// member list, nor, in a moderated room, around voice. It returns true
// when it released r.mu itself.
func (r *room) register(st *xmpp.Stanza, q *etree.Element) bool {
	bare := st.From.Bare()
	aff := r.affiliation(bare)
	switch {
	case aff == affBanned:
		r.bounce(st, xmpp.Forbidden, "you are banned from this room")
		return false
	case aff == affNone && (!r.svc.opts.AllowUnaffiliatedRegister || r.cfg.MembersOnly):
		r.bounce(st, xmpp.RegistrationRequired, "only the room's members may register a nick with it")
		return false
	}
	registered := r.nicks[bare]
	if st.Type == "get" {
		res := xmpp.NewElementNS(NSRegister, "query")
		if registered != "" {
			res.CreateElement("registered")
			res.CreateElement("username").SetText(registered)
		} else {
			x := xmpp.NewElementNS(NSData, "x")
			x.CreateAttr("type", "form")
			x.CreateElement("title").SetText("Register a nick with " + r.jid.String())
			field(x, "FORM_TYPE", "hidden", "", nil, formRegister)
			field(x, fRoomNick, "text-single", "Nickname", nil, "").CreateElement("required")
			res.AddChild(x)
		}
		r.send(st.Result(res))
		return false
	}
	if q.SelectElement("remove") != nil {
		// The nick goes, and a membership that came with it; a higher
		// affiliation stays (Prosody's choice).
		r.clearNick(bare)
		if aff == affMember {
			r.setAffiliation(bare, affNone, nil, "")
		}
		return r.saveAndAnswer(st, "unregistration")
	}
	x := xmpp.Child(q, NSData, "x")
	if x == nil || x.SelectAttrValue("type", "submit") != "submit" {
		r.bounce(st, xmpp.BadRequest, "submit the registration form")
		return false
	}
	f := formFields(x)
	if f["FORM_TYPE"] != formRegister {
		r.bounce(st, xmpp.BadRequest, "the form's FORM_TYPE is not "+formRegister)
		return false
	}
	j, err := r.jid.WithResource(f[fRoomNick])
	if err != nil || strings.TrimSpace(j.Resource()) == "" {
		r.bounce(st, xmpp.BadRequest, fRoomNick+" is not a nick")
		return false
	}
	nick := j.Resource()
	if o := r.occupants[nick]; (o != nil && o.bare != bare) || r.reservedFromOthers(nick, bare) {
		r.bounce(st, xmpp.Conflict, "that nick is taken")
		return false
	}
	if nick == registered {
		r.send(st.Result(nil))
		return false
	}
	if r.svc.opts.EnforceRegisteredNick {
		// As Prosody: the user's occupants under other nicks are kicked
		// (307) before the nick is theirs; they may come back under it.
		for _, o := range r.sortedOccupants() {
			if o.bare == bare && o.nick != nick {
				r.remove(o, actorItem(nil, "you registered the nick "+nick+" with this room: join under it"), statusKicked)
			}
		}
	}
	if aff == affNone {
		r.setAffiliation(bare, affMember, nil, "")
	}
	r.setNick(bare, nick)
	return r.saveAndAnswer(st, "registration")
}

// roomUserItem answers the x-roomuser-item node (§7.12): the registered
// nick of bare as an identity's name, or an empty query.
func (r *room) roomUserItem(bare xmpp.JID) *etree.Element {
	q := xmpp.NewElementNS(xmpp.NSDiscoInfo, "query")
	q.CreateAttr("node", nodeRoomUserItem)
	if n := r.nicks[bare]; n != "" {
		id := q.CreateElement("identity")
		id.CreateAttr("category", "conference")
		id.CreateAttr("name", n)
		id.CreateAttr("type", "text")
	}
	return q
}

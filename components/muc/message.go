package muc

import (
	"strconv"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// message handles a message to the room or to an occupant; r.mu is held.
func (r *room) message(st *xmpp.Stanza) {
	s := r.byReal[st.From]
	if st.Type == "error" {
		if s != nil && kickable(st) {
			r.leave(s, statusTechnical)
		}
		return
	}
	if st.To.Resource() != "" {
		r.private(st, s)
		return
	}
	if st.Type != "groupchat" {
		if x := xmpp.Child(st.El, NSMUCUser, "x"); x != nil {
			if inv := x.SelectElements("invite"); len(inv) > 0 {
				r.invite(st, s, inv)
				return
			}
			if d := x.SelectElement("decline"); d != nil {
				r.decline(st, d)
				return
			}
		}
		if x := xmpp.Child(st.El, NSData, "x"); x != nil {
			if f := formFields(x); f["FORM_TYPE"] == formRequest {
				r.voiceRequest(st, s, f)
				return
			}
		}
		r.bounce(st, xmpp.FeatureNotImplemented, "this room takes groupchat messages, invitations and voice requests")
		return
	}
	if s == nil {
		r.bounce(st, xmpp.NotAcceptable, "only occupants may send messages to the room")
		return
	}
	o := s.occ
	if o.role == roleVisitor {
		// XEP-0045 §7.4: a visitor has no voice.
		r.bounce(st, xmpp.Forbidden, "visitors may not speak in this room")
		return
	}
	subject := xmpp.Child(st.El, xmpp.NSClient, "subject")
	if subject == nil {
		subject = xmpp.Child(st.El, "", "subject")
	}
	hasBody := xmpp.Child(st.El, xmpp.NSClient, "body") != nil || xmpp.Child(st.El, "", "body") != nil
	isSubject := subject != nil && !hasBody
	if isSubject && !r.cfg.ChangeSubject && o.role != roleModerator {
		r.bounce(st, xmpp.Forbidden, "only moderators may change the subject of this room")
		return
	}
	tmpl := newEl("message", o.jid, "groupchat")
	if st.ID != "" {
		// The sender recognises its own message by its id.
		tmpl.CreateAttr("id", st.ID)
	}
	// The sender's children are shared, not copied: the stanza is the
	// room's now, and nothing changes a routed stanza's children.
	kids := r.passOn(st.El, false)
	oid := xmpp.NewElementNS(NSOccupantID, "occupant-id")
	oid.CreateAttr("id", o.id)
	kids = append(kids, oid)
	tmpl.Child = kids[:len(kids):len(kids)]
	r.stampMessage(tmpl, o) // mam.go: stanza-id and archive
	now := time.Now()
	if isSubject {
		r.subject, r.subjectFrom, r.subjectAt = subject.Text(), o.nick, now
		if r.cfg.Persistent {
			r.svc.markDirty(r)
		}
	} else if hasBody && r.svc.opts.HistoryLength > 0 {
		if len(r.history) >= r.svc.opts.HistoryLength {
			copy(r.history, r.history[1:])
			r.history = r.history[:len(r.history)-1]
		}
		r.history = append(r.history, histEntry{el: tmpl, at: now})
	}
	r.fanOut(tmpl)
}

// fanOut sends the template tmpl to every occupant's sessions: one small
// root each, the children shared (see to), and serialized once for all
// of their writers (xmpp.ShareChildren).
func (r *room) fanOut(tmpl *etree.Element) {
	from, sent := fromOf(tmpl), len(r.out)
	for _, o := range r.occupants {
		for _, s := range o.sessions {
			r.send(toAs(tmpl, xmpp.KindMessage, from, s, nil))
		}
	}
	// Before flush routes them: nothing is serialized yet.
	xmpp.ShareChildren(tmpl.Child, len(r.out)-sent)
}

// private handles a message to room@service/nick (§7.5): to the
// occupant's sessions, from the sender's occupant JID.
func (r *room) private(st *xmpp.Stanza, s *session) {
	switch {
	case s == nil:
		r.bounce(st, xmpp.NotAcceptable, "only occupants may send private messages in this room")
		return
	case st.Type == "groupchat":
		r.bounce(st, xmpp.BadRequest, "a private message is not of type groupchat")
		return
	}
	target := r.occupants[st.To.Resource()]
	if target == nil {
		r.bounce(st, xmpp.ItemNotFound, "no occupant of that nick")
		return
	}
	role := s.occ.role
	switch r.cfg.AllowPM {
	case "none":
		r.bounce(st, xmpp.NotAllowed, "private messages are off in this room")
		return
	case "participants":
		if role == roleVisitor {
			r.bounce(st, xmpp.NotAllowed, "visitors may not send private messages in this room")
			return
		}
	case "moderators":
		if role != roleModerator {
			r.bounce(st, xmpp.NotAllowed, "only moderators may send private messages in this room")
			return
		}
	}
	tmpl := newEl("message", s.occ.jid, st.Type)
	if st.ID != "" {
		tmpl.CreateAttr("id", st.ID)
	}
	kids := r.passOn(st.El, false)
	// XEP-0045 §7.5: the <x/> tells the recipient's client (and its
	// server's carbons) that this is a private message in a room.
	kids = append(kids, xmpp.NewElementNS(NSMUCUser, "x"))
	oid := xmpp.NewElementNS(NSOccupantID, "occupant-id")
	oid.CreateAttr("id", s.occ.id)
	kids = append(kids, oid)
	tmpl.Child = kids[:len(kids):len(kids)]
	for _, t := range target.sessions {
		r.send(to(tmpl, xmpp.KindMessage, t, nil))
	}
}

// iq handles an iq to the room or to an occupant. It returns true when
// it released r.mu itself (an owner iq that waited for the store).
func (r *room) iq(st *xmpp.Stanza) bool {
	if st.Type != "get" && st.Type != "set" {
		return false // results and errors to the room: nothing asked
	}
	s := r.byReal[st.From]
	p := st.Payload()
	ns := xmpp.NS(p)
	if st.To.Resource() != "" {
		switch {
		case s == nil:
			// XEP-0410 §3: "not joined" is not-acceptable.
			r.bounce(st, xmpp.NotAcceptable, "you are not in this room")
		case st.Type == "get" && p.Tag == "ping" && ns == xmpp.NSPing && s.occ.nick == st.To.Resource():
			// XEP-0410: the self-ping is answered by the room.
			r.send(st.Result(nil))
		default:
			r.bounce(st, xmpp.FeatureNotImplemented, "iqs to occupants are not passed on yet")
		}
		return false
	}
	switch {
	case st.Type == "get" && p.Tag == "query" && ns == xmpp.NSDiscoInfo && p.SelectAttr("node") == nil:
		r.send(st.Result(r.discoInfo()))
	case st.Type == "get" && p.Tag == "query" && ns == xmpp.NSDiscoInfo && p.SelectAttrValue("node", "") == nodeRoomUserItem:
		r.send(st.Result(r.roomUserItem(st.From.Bare())))
	case p.Tag == "query" && ns == NSRegister:
		return r.register(st, p)
	case p.Tag == "vCard" && ns == NSVCard:
		return r.vcard(st, p)
	case st.Type == "get" && p.Tag == "query" && ns == xmpp.NSDiscoItems && p.SelectAttr("node") == nil:
		// The occupants are not listed: in a semi-anonymous room that
		// is for moderators, and clients get them by joining.
		r.send(st.Result(xmpp.NewElementNS(xmpp.NSDiscoItems, "query")))
	case st.Type == "get" && p.Tag == "ping" && ns == xmpp.NSPing:
		r.send(st.Result(nil))
	case p.Tag == "query" && ns == NSMUCOwner:
		return r.owner(st, p)
	case p.Tag == "query" && ns == NSMUCAdmin:
		return r.admin(st, p)
	case p.Tag == "query" && ns == nsMAM:
		return r.mamIQ(st, p) // mam.go
	case st.Type == "get" && p.Tag == "metadata" && ns == nsMAM:
		return r.mamMetadata(st) // mam.go
	case st.Type == "set" && (ns == nsModerate || ns == nsFasten):
		return r.moderationIQ(st, p) // moderate.go
	default:
		r.bounce(st, xmpp.FeatureNotImplemented, "")
	}
	return false
}

// discoInfo is the room's disco#info (§6.4): what it enforces, and the
// muc#roominfo form: what the room is, each of it enforced.
func (r *room) discoInfo() *etree.Element {
	q := xmpp.NewElementNS(xmpp.NSDiscoInfo, "query")
	id := q.CreateElement("identity")
	id.CreateAttr("category", "conference")
	id.CreateAttr("type", "text")
	name := r.cfg.Name
	if name == "" {
		name = r.name
	}
	id.CreateAttr("name", name)
	feats := []string{xmpp.NSDiscoInfo, xmpp.NSDiscoItems, NSMUC, NSOccupantID, NSSelfPing, formRequest, pick(r.cfg.Public, "muc_public", "muc_hidden"),
		pick(r.cfg.Persistent, "muc_persistent", "muc_temporary"),
		pick(r.nonAnonymous(), "muc_nonanonymous", "muc_semianonymous"),
		pick(r.cfg.MembersOnly, "muc_membersonly", "muc_open"),
		pick(r.cfg.PasswordProtected, "muc_passwordprotected", "muc_unsecured"),
		pick(r.cfg.Moderated, "muc_moderated", "muc_unmoderated")}
	feats = append(feats, NSRegister)
	if r.svc.opts.AvatarMaxBytes > 0 {
		feats = append(feats, NSVCard)
	}
	feats = append(feats, r.archiveFeatures()...)
	for _, f := range feats {
		q.CreateElement("feature").CreateAttr("var", f)
	}
	x := xmpp.NewElementNS(NSData, "x")
	x.CreateAttr("type", "result")
	field(x, "FORM_TYPE", "hidden", "", nil, formRoomInfo)
	field(x, "muc#roominfo_description", "", "Description", nil, r.cfg.Desc)
	field(x, "muc#roominfo_subject", "", "Subject", nil, r.subject)
	field(x, "muc#roominfo_occupants", "", "Number of occupants", nil, strconv.Itoa(len(r.occupants)))
	field(x, fChangeSubject, "", "Occupants may change the subject", nil, boolStr(r.cfg.ChangeSubject))
	r.moreRoomInfo(x)
	q.AddChild(x)
	sortFeatures(q)
	return q
}

func pick(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

// owner handles a muc#owner iq (§10): only an owner may; get returns the
// configuration form, set submits it (or cancels a new room's creation).
// It releases r.mu itself and returns true.
func (r *room) owner(st *xmpp.Stanza, q *etree.Element) bool {
	if r.affiliation(st.From.Bare()) != affOwner {
		r.bounce(st, xmpp.Forbidden, "only the room's owners may configure it")
		return false
	}
	if st.Type == "get" {
		res := xmpp.NewElementNS(NSMUCOwner, "query")
		res.AddChild(r.cfg.form())
		r.send(st.Result(res))
		return false
	}
	x := xmpp.Child(q, NSData, "x")
	if x == nil {
		if d := q.SelectElement("destroy"); d != nil {
			return r.destroy(st, d)
		}
		r.bounce(st, xmpp.BadRequest, "submit the form, cancel it, or destroy the room")
		return false
	}
	switch x.SelectAttrValue("type", "") {
	case "cancel":
		if r.locked {
			// §10.1.3: cancelling a new room's configuration destroys it.
			for _, o := range r.occupants {
				for _, s := range o.sessions {
					r.selfPresence(o, s, "unavailable", nil)
				}
			}
			r.dropAllOccupants()
			r.gone = true
		}
		r.send(st.Result(nil))
		return false
	case "submit":
	default:
		r.bounce(st, xmpp.BadRequest, "submit the form, or cancel it")
		return false
	}
	cfg, err := r.cfg.submit(x)
	if err != nil {
		r.bounce(st, xmpp.BadRequest, err.Error())
		return false
	}
	wasLocked, wasMembersOnly := r.locked, r.cfg.MembersOnly
	wasArchiving := r.archiving()
	r.cfg, r.locked = cfg, false
	if cfg.MembersOnly && !wasMembersOnly {
		// §9.3: a room that becomes members-only removes its
		// non-members, with 322.
		for _, o := range r.sortedOccupants() {
			if r.affiliation(o.bare) == affNone {
				r.remove(o, nil, statusMembersOnly)
			}
		}
	}
	if len(r.occupants) == 0 && !cfg.Persistent {
		r.gone = true
	}
	if !wasLocked {
		// §10.2.1: the occupants learn that the configuration changed.
		r.configChanged(r.archiveStatus(wasArchiving)...) // mam.go
	}
	return r.saveAndAnswer(st, "configuration")
}

// saveAndAnswer saves the room and then answers st with a result, or
// with internal-server-error when the store failed: the answer waits for
// the commit, so that what its sender saw applied survives a crash. It
// releases r.mu, forgets a room that is gone, and returns true (iq's
// "released r.mu itself").
func (r *room) saveAndAnswer(st *xmpp.Stanza, what string) bool {
	gone := r.gone
	r.mu.Unlock()
	ctx, cancel := r.svc.router.StoreContext()
	err := r.svc.save(ctx, r)
	cancel()
	if gone {
		r.svc.forget(r)
	}
	r.mu.Lock()
	if err != nil {
		r.svc.log.Error("muc: save room", "room", r.name, "what", what, "err", err)
		r.bounce(st, xmpp.InternalServerError, "the "+what+" was applied but could not be stored")
	} else {
		r.send(st.Result(nil))
	}
	r.mu.Unlock()
	return true
}

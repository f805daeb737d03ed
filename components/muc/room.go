package muc

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// Affiliations and roles (XEP-0045 §5). A room's creator is its owner;
// the muc#admin and muc#owner iqs (admin.go) change the rest. An
// occupant's role starts as defaultRole of its affiliation and then
// changes by those iqs alone.
const (
	affOwner  = "owner"
	affAdmin  = "admin"
	affMember = "member"
	affNone   = "none"
	affBanned = "outcast"

	roleModerator   = "moderator"
	roleParticipant = "participant"
	roleVisitor     = "visitor"
	roleNone        = "none"
)

// Status codes of XEP-0045 §15.6 that this slice sends.
const (
	statusNonAnonymous = "100"
	statusConfigChange = "104"
	statusSelf         = "110"
	statusCreated      = "201"
	statusBanned       = "301"
	statusNickAssigned = "210"
	statusNewNick      = "303"
	statusKicked       = "307"
	statusAffRemoved   = "321"
	statusMembersOnly  = "322"
	statusTechnical    = "333"
)

// room is one room: its configuration, affiliations, occupants, subject
// and history, under mu.
type room struct {
	svc  *Service
	name string
	jid  xmpp.JID

	mu      sync.Mutex
	cfg     roomConfig
	secret  []byte
	affs    map[xmpp.JID]string // by bare JID; none is absent
	locked  bool                // created and not configured yet (§10.1.1)
	created bool                // the next self-presence says 201
	gone    bool                // removed from the service: look again

	occupants map[string]*occupant  // by nick
	byReal    map[xmpp.JID]*session // by real full JID

	subject, subjectFrom string
	subjectAt            time.Time

	history []histEntry // oldest first, at most HistoryLength

	// nicks are the registered nicks by bare JID, nickOwners the same
	// by nick (register.go).
	nicks      map[xmpp.JID]string
	nickOwners map[string]xmpp.JID
	// vcardXML is the room's vCard as its owner set it, nil for none;
	// avatarHash the XEP-0153 hash of its PHOTO (avatar.go).
	vcardXML   []byte
	avatarHash string

	// out is what the room has to send, in order; flush routes it
	// outside mu, draining says a flush is under way.
	out      []*xmpp.Stanza
	draining bool
}

// occupant is one nick in the room: one user (bare JID), with one or
// more sessions (XEP-0045 §7.2.9 allows a user's resources to share a
// nick).
type occupant struct {
	nick     string
	jid      xmpp.JID // room@service/nick
	bare     xmpp.JID // the real bare JID
	id       string   // occupant-id (XEP-0421)
	role     string   // moderator, participant or visitor (§5.1)
	sessions []*session
	// last is the session whose presence the room shows.
	last *session
}

// session is one real full JID of an occupant.
type session struct {
	occ  *occupant
	real xmpp.JID
	// to is real rendered once, for every stanza sent to it.
	to string
	// pres holds the children of its last available presence that the
	// room passes on (show, status, caps...).
	pres []etree.Token
}

// histEntry is one groupchat message kept for those who join.
type histEntry struct {
	el *etree.Element // from the occupant JID, no to
	at time.Time
}

func (s *Service) newRoom(name string, cfg roomConfig, secret []byte) *room {
	j, _ := xmpp.New(name, s.domain.Domain(), "")
	if len(secret) == 0 {
		secret = newSecret()
	}
	if cfg.Archive == nil {
		on := s.opts.Archive
		cfg.Archive = &on
	}
	return &room{
		svc: s, name: name, jid: j, cfg: cfg, secret: secret,
		affs: map[xmpp.JID]string{}, occupants: map[string]*occupant{}, byReal: map[xmpp.JID]*session{},
	}
}

// record is the room as the store keeps it; r.mu is held.
func (r *room) record() storage.MUCRoom {
	affs := make(map[string]string, len(r.affs))
	for j, a := range r.affs {
		affs[j.String()] = a
	}
	nicks := make(map[string]string, len(r.nicks))
	for j, n := range r.nicks {
		nicks[j.String()] = n
	}
	return storage.MUCRoom{Name: r.name, Config: r.cfg.encode(), Secret: r.secret, Subject: r.subject,
		SubjectFrom: r.subjectFrom, SubjectAt: r.subjectAt, Affiliations: affs, Nicks: nicks, VCard: r.vcardXML}
}

// handle serves st; false means the room is gone and st was not handled.
func (r *room) handle(st *xmpp.Stanza) bool {
	r.mu.Lock()
	if r.gone {
		r.mu.Unlock()
		return false
	}
	switch st.Kind {
	case xmpp.KindPresence:
		r.presence(st)
	case xmpp.KindMessage:
		r.message(st)
	case xmpp.KindIQ:
		if r.iq(st) {
			return true // iq unlocked r.mu itself
		}
	}
	gone := r.gone
	r.mu.Unlock()
	if gone {
		r.svc.forget(r)
		r.deleteStored()
	}
	return true
}

// deleteStored removes a room that is gone from the store, in the
// background: it may have been persistent.
func (r *room) deleteStored() {
	if r.svc.store == nil {
		return
	}
	r.svc.router.Go(func(ctx context.Context) {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.svc.store.DeleteMUCRoom(sctx, r.svc.domain.String(), r.name); err != nil {
			r.svc.log.Error("muc: delete room", "room", r.name, "err", err)
		}
	})
}

// send queues st for flush; r.mu is held.
func (r *room) send(st *xmpp.Stanza) { r.out = append(r.out, st) }

// bounce queues the error reply to st; r.mu is held.
func (r *room) bounce(st *xmpp.Stanza, cond xmpp.StanzaCondition, text string) {
	if st.IsError() || (st.Kind == xmpp.KindIQ && st.Type == "result") {
		return
	}
	if st.Kind == xmpp.KindPresence && st.Type != "" {
		return
	}
	r.send(st.ErrorReply(xmpp.NewStanzaError(cond, text)))
}

// flush routes what the room queued, outside r.mu and in order. A
// stanza that comes back into the room while it routes (a bounce) only
// queues: the flush under way sends it.
func (r *room) flush() {
	r.mu.Lock()
	if r.draining {
		r.mu.Unlock()
		return
	}
	r.draining = true
	for len(r.out) > 0 {
		batch := r.out
		r.out = nil
		r.mu.Unlock()
		// A message's copies for the occupants go to each local host
		// at once (server.FanOutHost).
		r.svc.router.RouteFanOut(batch)
		clear(batch)
		r.mu.Lock()
		if r.out == nil {
			r.out = batch[:0] // keep the array for the next stanzas
		}
	}
	r.draining = false
	r.mu.Unlock()
}

// occupantID is the XEP-0421 id of the user bare: an HMAC of the real
// bare JID under the room's own key, so that it is stable in the room and
// differs from room to room.
func (r *room) occupantID(bare xmpp.JID) string {
	m := hmac.New(sha256.New, r.secret)
	m.Write([]byte(bare.String()))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// affiliation of the user bare; r.mu is held. A user of no affiliation
// of its own whose domain is an outcast is an outcast (§9.1 leaves
// domain bans to the service; Prosody has them): a spam server's
// fresh accounts are shut out at once.
func (r *room) affiliation(bare xmpp.JID) string {
	if a, ok := r.affs[bare]; ok {
		return a
	}
	if bare.Local() != "" && r.affs[bare.DomainJID()] == affBanned {
		return affBanned
	}
	return affNone
}

// defaultRole is the role an occupant of affiliation aff gets when it
// joins (XEP-0045 §5.1.2 and the table of §5.2.2): owners and admins
// moderate, members take part, others are visitors in a moderated room
// and none (may not enter) in a members-only one.
func (r *room) defaultRole(aff string) string {
	switch aff {
	case affOwner, affAdmin:
		return roleModerator
	case affMember:
		return roleParticipant
	case affNone:
		switch {
		case r.cfg.MembersOnly:
			return roleNone
		case r.cfg.Moderated:
			return roleVisitor
		}
		return roleParticipant
	}
	return roleNone
}

// nonAnonymous reports whether everyone sees real JIDs.
func (r *room) nonAnonymous() bool { return r.cfg.WhoIs == "anyone" }

// seesJIDs reports whether the occupant o is shown real JIDs.
func (r *room) seesJIDs(o *occupant) bool {
	return r.nonAnonymous() || o.role == roleModerator
}

// newEl returns a stanza element from from, of type typ ("" for none).
func newEl(tag string, from xmpp.JID, typ string) *etree.Element {
	el := etree.NewElement(tag)
	el.CreateAttr("from", from.String())
	if typ != "" {
		el.CreateAttr("type", typ)
	}
	return el
}

// to returns a copy of the template tmpl addressed to s, sharing tmpl's
// children: only the root and its attributes are new, so a stanza for N
// recipients is built once and costs N small roots. The child slice is
// cut to its length, so that whoever adds a child to one copy (a
// stanza-id) gets a new array and the others do not see it. extra, when
// not nil, is added to this copy alone.
func to(tmpl *etree.Element, kind xmpp.Kind, s *session, extra *etree.Element) *xmpp.Stanza {
	return toAs(tmpl, kind, fromOf(tmpl), s, extra)
}

// fromOf is tmpl's from, parsed: what a loop over recipients reads once
// and passes to toAs.
func fromOf(tmpl *etree.Element) xmpp.JID {
	from, _ := xmpp.Parse(tmpl.SelectAttrValue("from", ""))
	return from
}

// toAs is to with the stanza's From given: fromOf(tmpl), read once for
// all the copies of a fan-out or a broadcast.
func toAs(tmpl *etree.Element, kind xmpp.Kind, from xmpp.JID, s *session, extra *etree.Element) *xmpp.Stanza {
	el := &etree.Element{Space: tmpl.Space, Tag: tmpl.Tag}
	el.Attr = make([]etree.Attr, len(tmpl.Attr), len(tmpl.Attr)+1)
	copy(el.Attr, tmpl.Attr)
	el.Attr = append(el.Attr, etree.Attr{Key: "to", Value: s.to})
	n := len(tmpl.Child)
	if extra == nil {
		el.Child = tmpl.Child[:n:n]
	} else {
		el.Child = make([]etree.Token, n, n+1)
		copy(el.Child, tmpl.Child)
		el.Child = append(el.Child, extra)
	}
	st := &xmpp.Stanza{El: el, Kind: kind, From: from, To: s.real}
	for _, a := range tmpl.Attr {
		switch a.Key {
		case "type":
			st.Type = a.Value
		case "id":
			st.ID = a.Value
		}
	}
	return st
}

// presenceOf builds the in-room presence of o (XEP-0045 §7.2.3): its
// last presence's payload, the muc#user item (with the real JID when
// withJID), the status codes, and the occupant-id. typ is "" or
// "unavailable"; item sets more of the item (a new nick).
func (r *room) presenceOf(o *occupant, typ string, withJID bool, item func(*etree.Element), codes ...string) *etree.Element {
	el := newEl("presence", o.jid, typ)
	if typ == "" && o.last != nil {
		for _, t := range o.last.pres {
			el.AddChild(t.(*etree.Element).Copy())
		}
	}
	x := el.CreateElement("x")
	x.CreateAttr("xmlns", NSMUCUser)
	it := x.CreateElement("item")
	aff := r.affiliation(o.bare)
	it.CreateAttr("affiliation", aff)
	if typ == "unavailable" {
		it.CreateAttr("role", "none")
	} else {
		it.CreateAttr("role", o.role)
	}
	if withJID && o.last != nil {
		it.CreateAttr("jid", o.last.real.String())
	}
	if item != nil {
		item(it)
	}
	for _, c := range codes {
		x.CreateElement("status").CreateAttr("code", c)
	}
	oid := xmpp.NewElementNS(NSOccupantID, "occupant-id")
	oid.CreateAttr("id", o.id)
	el.AddChild(oid)
	return el
}

// broadcastPresence sends o's presence to every occupant but o, each its
// variant: with the real JID to those who see them.
func (r *room) broadcastPresence(o *occupant, typ string, item func(*etree.Element), codes ...string) {
	var with, without *etree.Element
	for _, other := range r.occupants {
		if other == o {
			continue
		}
		var tmpl *etree.Element
		if r.seesJIDs(other) {
			if with == nil {
				with = r.presenceOf(o, typ, true, item, codes...)
			}
			tmpl = with
		} else {
			if without == nil {
				without = r.presenceOf(o, typ, false, item, codes...)
			}
			tmpl = without
		}
		for _, s := range other.sessions {
			r.send(toAs(tmpl, xmpp.KindPresence, o.jid, s, nil))
		}
	}
}

// selfPresence queues o's presence to its session s, with 110 (§7.2.3), and
// returns it.
func (r *room) selfPresence(o *occupant, s *session, typ string, item func(*etree.Element), codes ...string) *xmpp.Stanza {
	codes = append([]string{statusSelf}, codes...)
	if typ == "" && r.nonAnonymous() {
		codes = append(codes, statusNonAnonymous)
	}
	st := to(r.presenceOf(o, typ, true, item, codes...), xmpp.KindPresence, s, nil)
	r.send(st)
	return st
}

// passOn returns the children of a client's stanza that the room passes
// on: not the MUC elements, nor an occupant-id, which only the room may
// set (XEP-0421 §5), nor a stanza-id claiming to be the room's (XEP-0359
// §5: only the room may make them, or a sender could make a client take
// its message for another, in the room or in private).
func (r *room) passOn(el *etree.Element, presence bool) []etree.Token {
	var out []etree.Token
	for _, c := range el.ChildElements() {
		ns := xmpp.NS(c)
		switch {
		case ns == NSOccupantID && c.Tag == "occupant-id":
			continue
		case ns == nsStanzaID && c.Tag == "stanza-id" && r.claimsRoom(c.SelectAttrValue("by", "")):
			continue
		case ns == NSMUCUser || (presence && ns == NSMUC):
			continue
		case presence && c.Tag == "error":
			continue
		}
		out = append(out, c)
	}
	return out
}

// claimsRoom reports whether by, a stanza-id's, is the room, or no JID
// at all (which the room cannot vouch for either).
func (r *room) claimsRoom(by string) bool {
	j, err := xmpp.Parse(by)
	return err != nil || j == r.jid
}

// presence handles a presence to the room; r.mu is held.
func (r *room) presence(st *xmpp.Stanza) {
	s := r.byReal[st.From]
	switch st.Type {
	case "":
	case "unavailable":
		if s != nil {
			r.leave(s)
		}
		return
	case "error":
		if s != nil && kickable(st) {
			r.leave(s, statusTechnical)
		}
		return
	default:
		return // subscriptions and probes: a room has no roster
	}
	nick := st.To.Resource()
	if strings.TrimSpace(nick) == "" {
		r.bounce(st, xmpp.JIDMalformed, "join a room as room@service/nick")
		return
	}
	join := xmpp.Child(st.El, NSMUC, "x")
	switch {
	case s == nil:
		r.join(st, nick, join)
	case s.occ.nick != nick:
		r.changeNick(st, s, nick)
	case join != nil:
		// §7.2.1: a join from a client that is in the room: it lost
		// track, so it gets everything a join gets.
		s.pres = r.passOn(st.El, true)
		s.occ.last = s
		r.welcome(s.occ, s, join, st.ID, nil)
	default:
		s.pres = r.passOn(st.El, true)
		s.occ.last = s
		r.broadcastPresence(s.occ, "", nil)
		r.selfPresence(s.occ, s, "", nil)
	}
}

// join adds st's sender to the room as nick (§7.2), or refuses it. A
// user kept to its registered nick (enforcedNick) joins under that one,
// and its self-presence says so with 210 (§7.2.9); the nick it asked
// for must still be no one else's registered nick (Prosody's order).
func (r *room) join(st *xmpp.Stanza, asked string, x *etree.Element) {
	bare := st.From.Bare()
	aff := r.affiliation(bare)
	nick := r.enforcedNick(bare, asked)
	o := r.occupants[nick]
	switch {
	case r.locked && aff != affOwner:
		r.bounce(st, xmpp.ItemNotFound, "the room is locked until its owner configures it")
		return
	case aff == affBanned:
		r.bounce(st, xmpp.Forbidden, "you are banned from this room")
		return
	case r.cfg.MembersOnly && aff == affNone:
		r.bounce(st, xmpp.RegistrationRequired, "this room is for its members")
		return
	case r.cfg.PasswordProtected && aff != affOwner && !passwordMatches(x, r.cfg.Password):
		r.bounce(st, xmpp.NotAuthorized, "this room needs its password")
		return
	case o != nil && o.bare != bare:
		r.bounce(st, xmpp.Conflict, "that nick is taken")
		return
	case r.reservedFromOthers(asked, bare):
		r.bounce(st, xmpp.Conflict, "that nick is registered to another user")
		return
	case o == nil && r.cfg.MaxUsers > 0 && len(r.occupants) >= r.cfg.MaxUsers && r.defaultRole(aff) != roleModerator:
		r.bounce(st, xmpp.ServiceUnavailable, "the room is full")
		return
	}
	fresh := o == nil
	if fresh {
		j, err := r.jid.WithResource(nick)
		if err != nil {
			r.bounce(st, xmpp.JIDMalformed, "not a nick")
			return
		}
		if !r.svc.takeOccupancy(bare) {
			r.bounce(st, xmpp.ResourceConstraint, errTooManyRooms)
			return
		}
		o = &occupant{nick: nick, jid: j, bare: bare, id: r.occupantID(bare), role: r.defaultRole(aff)}
		r.occupants[nick] = o
	}
	s := &session{occ: o, real: st.From, to: st.From.String(), pres: r.passOn(st.El, true)}
	o.sessions = append(o.sessions, s)
	o.last = s
	r.byReal[st.From] = s
	if fresh {
		// The others learn of the newcomer once it has the room's
		// roster (below): its presence to them is queued first, which
		// changes nothing for the newcomer's own order.
		r.broadcastPresence(o, "", nil)
	}
	var codes []string
	if nick != asked {
		codes = append(codes, statusNickAssigned)
	}
	r.welcome(o, s, x, st.ID, codes)
}

// welcome sends the session s of o what a join gets, in XEP-0045 §7.1's
// order: the other occupants' presence, its own presence (110, 100, 201,
// and codes), the history, the subject.
func (r *room) welcome(o *occupant, s *session, x *etree.Element, joinID string, codes []string) {
	sees := r.seesJIDs(o)
	for _, other := range r.occupants {
		if other != o {
			r.send(to(r.presenceOf(other, "", sees, nil), xmpp.KindPresence, s, nil))
		}
	}
	if r.created {
		codes = append(codes, statusCreated)
		r.created = false
	}
	self := r.selfPresence(o, s, "", nil, codes...)
	if joinID != "" {
		// The join's id on the self-presence, as Prosody does: a client
		// (mellium's muc.Join) matches its join to the answer by it.
		// The root is this session's own copy (see to).
		self.El.CreateAttr("id", joinID)
		self.ID = joinID
	}
	r.sendHistory(s, x)
	subj := newEl("message", r.jid, "groupchat")
	if r.subjectFrom != "" {
		if j, err := r.jid.WithResource(r.subjectFrom); err == nil {
			subj.Attr[0].Value = j.String()
		}
	}
	subj.CreateElement("subject").SetText(r.subject)
	if !r.subjectAt.IsZero() {
		subj.AddChild(xmpp.NewDelay(r.jid.String(), r.subjectAt))
	}
	r.send(to(subj, xmpp.KindMessage, s, nil))
	r.sendAvatar(s)
}

// passwordMatches reports whether the join's <password/> is pw.
func passwordMatches(x *etree.Element, pw string) bool {
	if x == nil {
		return false
	}
	p := x.SelectElement("password")
	return p != nil && hmac.Equal([]byte(p.Text()), []byte(pw))
}

// sendHistory sends s the history its join's <history/> asks for
// (§7.2.15): the fewest messages that meet every limit it sets, at most
// the room's history.
func (r *room) sendHistory(s *session, x *etree.Element) {
	maxStanzas, maxChars := len(r.history), -1
	var since time.Time
	if x != nil {
		if h := x.SelectElement("history"); h != nil {
			if n, err := strconv.Atoi(h.SelectAttrValue("maxstanzas", "")); err == nil && n >= 0 && n < maxStanzas {
				maxStanzas = n
			}
			if n, err := strconv.Atoi(h.SelectAttrValue("maxchars", "")); err == nil && n >= 0 {
				maxChars = n
			}
			if n, err := strconv.Atoi(h.SelectAttrValue("seconds", "")); err == nil && n >= 0 {
				since = time.Now().Add(-time.Duration(n) * time.Second)
			}
			if t, err := time.Parse(time.RFC3339, h.SelectAttrValue("since", "")); err == nil && t.After(since) {
				since = t
			}
		}
	}
	var picked []*xmpp.Stanza
	chars := 0
	for i := len(r.history) - 1; i >= 0 && len(picked) < maxStanzas; i-- {
		e := r.history[i]
		if !since.IsZero() && e.at.Before(since) {
			break
		}
		st := to(e.el, xmpp.KindMessage, s, xmpp.NewDelay(r.jid.String(), e.at))
		if maxChars >= 0 {
			chars += serializedLen(st.El)
			if chars > maxChars {
				break
			}
		}
		picked = append(picked, st)
	}
	for i := len(picked) - 1; i >= 0; i-- {
		r.send(picked[i])
	}
}

// serializedLen is the length of el as written on a stream: maxchars
// counts "the characters of the complete XML stanzas".
func serializedLen(el *etree.Element) int {
	var b bytes.Buffer
	w := xmpp.NewWriter(&b)
	_ = w.WriteElement(el)
	_ = w.Flush()
	return b.Len()
}

// leave removes the session s (§7.14): the others see the occupant go
// when it was its last session; s gets its own unavailable presence.
func (r *room) leave(s *session, codes ...string) {
	o := s.occ
	delete(r.byReal, s.real)
	for i, x := range o.sessions {
		if x == s {
			o.sessions = append(o.sessions[:i], o.sessions[i+1:]...)
			break
		}
	}
	if o.last == s && len(o.sessions) > 0 {
		o.last = o.sessions[len(o.sessions)-1]
	}
	if len(o.sessions) == 0 {
		delete(r.occupants, o.nick)
		r.svc.dropOccupancy(o.bare)
		r.broadcastPresence(o, "unavailable", nil, codes...)
	}
	r.selfPresence(o, s, "unavailable", nil, codes...)
	if len(r.occupants) == 0 && (!r.cfg.Persistent || r.locked) {
		r.gone = true
	}
}

// kickable says whether an error an occupant's server sent back means
// the occupant is gone (Prosody's list); a full queue
// (resource-constraint) does not: a slow occupant stays.
func kickable(st *xmpp.Stanza) bool {
	e := xmpp.ParseStanzaError(st.El)
	if e == nil {
		return true
	}
	switch e.Condition {
	case xmpp.Gone, xmpp.InternalServerError, xmpp.ItemNotFound, xmpp.JIDMalformed, xmpp.RecipientUnavailable,
		xmpp.Redirect, xmpp.RemoteServerNotFound, xmpp.RemoteServerTimeout, xmpp.ServiceUnavailable:
		return true
	}
	return false
}

// changeNick moves every session of s's occupant to nick (§7.6): the
// old nick's unavailable presence with 303 and the new nick, then the
// new nick's presence. As in Prosody, another user's registered nick
// gets conflict, then a user kept to its registered nick (enforcedNick)
// gets not-acceptable for any other, then a nick in use gets conflict.
func (r *room) changeNick(st *xmpp.Stanza, s *session, nick string) {
	o := s.occ
	if r.reservedFromOthers(nick, o.bare) {
		r.bounce(st, xmpp.Conflict, "that nick is registered to another user")
		return
	}
	if reg := r.enforcedNick(o.bare, nick); reg != nick {
		// Of type cancel, as Prosody's: no other nick will do.
		e := xmpp.NewStanzaError(xmpp.NotAcceptable, "this room keeps you to your registered nick, "+reg)
		e.Type = xmpp.ErrCancel
		r.send(st.ErrorReply(e))
		return
	}
	if other := r.occupants[nick]; other != nil && other.bare != o.bare {
		r.bounce(st, xmpp.Conflict, "that nick is taken")
		return
	}
	if other := r.occupants[nick]; other != nil {
		// The user's other nick: moving into it would merge two
		// occupants, which the admin iqs do not expect.
		r.bounce(st, xmpp.Conflict, "you are in the room under that nick already")
		return
	}
	j, err := r.jid.WithResource(nick)
	if err != nil {
		r.bounce(st, xmpp.JIDMalformed, "not a nick")
		return
	}
	setNick := func(it *etree.Element) { it.CreateAttr("nick", nick) }
	r.broadcastPresence(o, "unavailable", setNick, statusNewNick)
	for _, x := range o.sessions {
		r.selfPresence(o, x, "unavailable", setNick, statusNewNick)
	}
	delete(r.occupants, o.nick)
	o.nick, o.jid = nick, j
	r.occupants[nick] = o
	s.pres = r.passOn(st.El, true)
	o.last = s
	r.broadcastPresence(o, "", nil)
	for _, x := range o.sessions {
		r.selfPresence(o, x, "", nil)
	}
}

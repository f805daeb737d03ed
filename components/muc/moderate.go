package muc

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// Message moderation (XEP-0425): a moderator retracts a message of the
// room by its stanza-id. The room replaces the archived message with a
// tombstone, drops it from the history it gives those who join, and
// tells the occupants, who hide it. Requests come in XEP-0425's current
// form (urn:xmpp:message-moderate:1) and in the older one, through
// XEP-0422's apply-to (urn:xmpp:message-moderate:0), which Prosody's
// mod_muc_moderation still answers and clients of its time send; the
// announcement and the tombstone carry both, so either kind of client
// understands them.

// moderationRequest reads an iq's payload as a moderation request: the
// stanza-id it is for, its reason, whether it asks for a retraction, and
// ok when it is one at all.
func moderationRequest(p *etree.Element) (id, reason string, retract, ok bool) {
	var m *etree.Element
	switch ns := xmpp.NS(p); {
	case p.Tag == "moderate" && ns == nsModerate:
		m = p
		retract = xmpp.Child(m, nsRetract, "retract") != nil
	case p.Tag == "apply-to" && ns == nsFasten:
		if m = xmpp.Child(p, nsModerate0, "moderate"); m == nil {
			return "", "", false, false
		}
		retract = xmpp.Child(m, nsRetract0, "retract") != nil
	default:
		return "", "", false, false
	}
	if r := m.SelectElement("reason"); r != nil {
		reason = r.Text()
	}
	return p.SelectAttrValue("id", ""), reason, retract, true
}

// moderate answers a moderation request; it releases r.mu itself when it
// returns true.
func (r *room) moderate(st *xmpp.Stanza, id, reason string, retract bool) bool {
	if !r.archiving() {
		// Without the archive the room cannot find the message, nor
		// stop it being served: moderation is not offered.
		r.bounce(st, xmpp.FeatureNotImplemented, "this room keeps no archive to moderate")
		return false
	}
	// Only moderators: a participant who could retract others' messages
	// could silence them. One not in the room has the role its
	// affiliation would give it (Prosody's rule), so owners and admins
	// moderate from outside too.
	actor := r.jid
	bare := st.From.Bare()
	actorID := r.occupantID(bare)
	role := r.defaultRole(r.affiliation(bare))
	if s := r.byReal[st.From]; s != nil {
		actor, actorID, role = s.occ.jid, s.occ.id, s.occ.role
	}
	switch {
	case role != roleModerator:
		r.bounce(st, xmpp.Forbidden, "only moderators may moderate messages")
		return false
	case id == "":
		r.bounce(st, xmpp.BadRequest, "the request names no message")
		return false
	case !retract:
		r.bounce(st, xmpp.FeatureNotImplemented, "only retraction is supported")
		return false
	}
	// The store is read and written without the room's lock.
	r.mu.Unlock()
	if serr := r.svc.tombstone(r.name, id, actor, actorID, reason); serr != nil {
		r.svc.router.Bounce(st, serr)
		return true
	}
	r.mu.Lock()
	if !r.gone {
		r.dropHistory(id)
		ann := newEl("message", r.jid, "groupchat")
		ann.CreateAttr("id", randomID())
		ann.AddChild(moderated(nsRetract, "retract", id, actor, actorID, reason, time.Time{}))
		apply := xmpp.NewElementNS(nsFasten, "apply-to")
		apply.CreateAttr("id", id)
		apply.AddChild(moderated0(actor, reason, false))
		ann.AddChild(apply)
		r.stampMessage(ann, nil)
		r.fanOut(ann)
	}
	r.send(st.Result(nil))
	r.mu.Unlock()
	return true
}

// tombstone replaces the archived message id of the room name with its
// tombstone (XEP-0425 §6): the author's occupant JID, message id and
// occupant-id stay, the content goes. It returns the stanza error for
// the requester, or nil.
func (s *Service) tombstone(name, id string, actor xmpp.JID, actorID, reason string) *xmpp.StanzaError {
	a := s.archiveStore()
	ctx, cancel := context.WithTimeout(context.Background(), archiveTimeout)
	defer cancel()
	fail := func(err error) *xmpp.StanzaError {
		s.log.Error("muc: moderate a message", "room", name, "id", id, "err", err)
		return xmpp.NewStanzaError(xmpp.InternalServerError, "the message could not be moderated")
	}
	if err := a.SyncArchive(ctx); err != nil {
		return fail(err)
	}
	page, err := a.QueryRoomArchive(ctx, s.domain.String(), name, storage.ArchiveQuery{IDs: []string{id}})
	if errors.Is(err, storage.ErrNotFound) {
		return xmpp.NewStanzaError(xmpp.ItemNotFound, "no such message in the room's archive")
	}
	if err != nil || len(page.Messages) != 1 {
		return fail(err)
	}
	orig, err := xmpp.ParseElement(string(page.Messages[0].Stanza), storedLimits)
	if err != nil {
		return fail(err)
	}
	ts := etree.NewElement("message")
	for _, k := range []string{"from", "type", "id"} {
		if v := orig.SelectAttrValue(k, ""); v != "" {
			ts.CreateAttr(k, v)
		}
	}
	for _, c := range orig.ChildElements() {
		// Who wrote it stays (what the querier may see of them); what
		// they wrote goes.
		if ns := xmpp.NS(c); (c.Tag == "occupant-id" && ns == NSOccupantID) || (c.Tag == "x" && ns == NSMUCUser) {
			ts.AddChild(c.Copy())
		}
	}
	now := time.Now()
	ts.AddChild(moderated(nsRetract, "retracted", "", actor, actorID, reason, now))
	ts.AddChild(moderated0(actor, reason, true))
	if err := a.ReplaceRoomArchived(ctx, s.domain.String(), name, id, local.Serialize(ts)); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return xmpp.NewStanzaError(xmpp.ItemNotFound, "no such message in the room's archive")
		}
		return fail(err)
	}
	return nil
}

// moderated returns XEP-0425's current element: a <retract/> (the
// announcement, with the message's id) or a <retracted/> (the
// tombstone, with its time) holding who moderated and why.
func moderated(ns, tag, id string, actor xmpp.JID, actorID, reason string, stamp time.Time) *etree.Element {
	el := xmpp.NewElementNS(ns, tag)
	if id != "" {
		el.CreateAttr("id", id)
	}
	if !stamp.IsZero() {
		el.CreateAttr("stamp", stamp.UTC().Format(time.RFC3339))
	}
	m := el.CreateElement("moderated")
	m.CreateAttr("xmlns", nsModerate)
	m.CreateAttr("by", actor.String())
	oid := m.CreateElement("occupant-id")
	oid.CreateAttr("xmlns", NSOccupantID)
	oid.CreateAttr("id", actorID)
	if reason != "" {
		el.CreateElement("reason").SetText(reason)
	}
	return el
}

// moderated0 returns the older form's <moderated/>, with a <retract/>
// (the announcement) or a <retracted/> (the tombstone).
func moderated0(actor xmpp.JID, reason string, tombstone bool) *etree.Element {
	m := xmpp.NewElementNS(nsModerate0, "moderated")
	m.CreateAttr("by", actor.String())
	tag := "retract"
	if tombstone {
		tag = "retracted"
	}
	r := m.CreateElement(tag)
	r.CreateAttr("xmlns", nsRetract0)
	if tombstone {
		r.CreateAttr("stamp", time.Now().UTC().Format(time.RFC3339))
	}
	if reason != "" {
		m.CreateElement("reason").SetText(reason)
	}
	return m
}

// dropHistory removes the message of stanza-id id from the history the
// room sends those who join (XEP-0425 §5: the service SHOULD stop
// distributing a retracted message); r.mu is held.
func (r *room) dropHistory(id string) {
	kept := r.history[:0]
	for _, h := range r.history {
		if stanzaID(h.el, r.jid) != id {
			kept = append(kept, h)
		}
	}
	clear(r.history[len(kept):])
	r.history = kept
}

// stanzaID returns the room's stanza-id of el, "" if it has none.
func stanzaID(el *etree.Element, room xmpp.JID) string {
	for _, c := range el.ChildElements() {
		if c.Tag == "stanza-id" && xmpp.NS(c) == nsStanzaID && c.SelectAttrValue("by", "") == room.String() {
			return c.SelectAttrValue("id", "")
		}
	}
	return ""
}

// randomID returns a new message id.
func randomID() string {
	b := make([]byte, 9)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// moderationIQ answers an iq set whose payload may be a moderation
// request; it releases r.mu itself when it returns true.
func (r *room) moderationIQ(st *xmpp.Stanza, p *etree.Element) bool {
	id, reason, retract, ok := moderationRequest(p)
	if !ok {
		r.bounce(st, xmpp.FeatureNotImplemented, "")
		return false
	}
	return r.moderate(st, id, reason, retract)
}

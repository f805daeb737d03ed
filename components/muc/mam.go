package muc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/server/mod/mam/mamquery"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// A room's archive (XEP-0313 on a MUC room, as Prosody's mod_muc_mam and
// ejabberd's mod_mam keep it: an archive owned by the room's bare JID).
// Each groupchat message the room broadcasts with a body, or with a
// retraction (XEP-0424) or moderation (XEP-0425) marker, is queued for
// the store's archive writer under the room's lock, in the room's order,
// and gets its stanza-id (XEP-0359) at once: the same in every
// occupant's copy and in the history. The writer commits what waits in
// one transaction (storage.ArchiveRoomAsync), so the fan-out does not
// wait for the disk, unless the writer's queue (shared with the users'
// archives, 4,096 appends) is full: then the room, its lock held, waits
// for room in it, up to archiveTimeout, and a message that times out goes
// out without a stanza-id. A query first waits for what was queued
// before it.
// Subject changes are not archived (Prosody's rule: the subject is the
// room's state, not a message).

const (
	// archivePage is the most messages one query returns: a larger RSM
	// max is clamped (XEP-0313 §4.3.1), as on local hosts by default.
	archivePage = 100
	// archiveTimeout bounds a wait for the archive writer: for room in
	// its queue, or for a commit.
	archiveTimeout = 10 * time.Second
	// expireBatch is how many expired messages one transaction deletes.
	expireBatch = 1000
)

// expireEvery is how often expired room messages are deleted.
var expireEvery = time.Hour

// storedLimits bound what is parsed back from the archive: stanzas the
// room built from messages within the stanza limits, and what it added.
var storedLimits = xmpp.Limits{MaxStanza: 2 << 20}

// The namespaces of message retraction (XEP-0424) and moderation
// (XEP-0425): the current ones, and the older ones that Prosody's
// mod_muc_moderation still answers through XEP-0422's apply-to.
const (
	nsRetract    = "urn:xmpp:message-retract:1"
	nsModerate   = "urn:xmpp:message-moderate:1"
	nsRetract0   = "urn:xmpp:message-retract:0"
	nsModerate0  = "urn:xmpp:message-moderate:0"
	nsFasten     = "urn:xmpp:fasten:0"
	nsStanzaID   = mamquery.NSSID
	nsMAM        = mamquery.NS
	nsMAMExtends = mamquery.NSExtended
)

// ArchiveStore is what rooms' archives need of the store: package
// storage implements it. A Store without it keeps no archives.
type ArchiveStore interface {
	ArchiveRoomAsync(ctx context.Context, host, room string, e storage.ArchiveEntry, notify func(error)) (string, error)
	SyncArchive(ctx context.Context) error
	QueryRoomArchive(ctx context.Context, host, room string, q storage.ArchiveQuery) (storage.ArchivePage, error)
	ReplaceRoomArchived(ctx context.Context, host, room, id string, stanza []byte) error
	DeleteRoomArchive(ctx context.Context, host, room string) error
	DeleteOrphanRoomArchives(ctx context.Context, host string) (int64, error)
	ExpireRoomArchive(ctx context.Context, host string, cutoff time.Time, batch int) (int64, error)
}

// archiveStore returns the store's archive, or nil.
func (s *Service) archiveStore() ArchiveStore {
	a, _ := s.store.(ArchiveStore)
	return a
}

// startArchive deletes the archives of rooms a restart ended (temporary
// ones: a new room of the same name, made by anyone, must not show
// them), and runs the retention loop.
func (s *Service) startArchive(ctx context.Context, router interface{ Go(func(context.Context)) }) error {
	a := s.archiveStore()
	if a == nil {
		return nil
	}
	n, err := a.DeleteOrphanRoomArchives(ctx, s.domain.String())
	if err != nil {
		return fmt.Errorf("muc: delete the archives of rooms that are gone: %w", err)
	}
	if n > 0 {
		s.log.Info("muc: deleted the archives of rooms that are gone", "rooms", n)
	}
	if keep := s.opts.ArchiveRetention(); keep > 0 {
		router.Go(func(ctx context.Context) { s.expireArchive(ctx, a, keep) })
	}
	return nil
}

// expireArchive deletes the host's room messages older than keep, now and
// then every expireEvery, until ctx (the server's life) ends.
func (s *Service) expireArchive(ctx context.Context, a ArchiveStore, keep time.Duration) {
	tick := time.NewTicker(expireEvery)
	defer tick.Stop()
	for {
		n, err := a.ExpireRoomArchive(ctx, s.domain.String(), time.Now().Add(-keep), expireBatch)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("muc: expiring archived messages failed", "deleted", n, "err", err)
		case n > 0:
			s.log.Debug("muc: expired archived messages", "deleted", n, "older_than", keep)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// dropArchive deletes the archive of the room name, which is gone
// (destroyed, or a temporary room left empty): its messages go with it.
func (s *Service) dropArchive(name string) {
	a := s.archiveStore()
	if a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), archiveTimeout)
	defer cancel()
	if err := a.DeleteRoomArchive(ctx, s.domain.String(), name); err != nil {
		s.log.Error("muc: delete a room's archive", "room", name, "err", err)
	}
}

// archiving reports whether the room keeps an archive; r.mu is held.
func (r *room) archiving() bool {
	return r.cfg.Archive != nil && *r.cfg.Archive && r.svc.archiveStore() != nil
}

// archiveFeatures are the room's disco#info features of its archive:
// none when it keeps none.
func (r *room) archiveFeatures() []string {
	if !r.archiving() {
		return nil
	}
	return []string{nsMAM, nsMAMExtends, nsStanzaID, nsModerate, nsModerate0}
}

// archiveStatus returns the status codes of a configuration change that
// turned the archive on (170) or off (171) (XEP-0045 §10.2.1, as
// Prosody's mod_muc_mam sends them), none when it did not change; r.mu
// is held.
func (r *room) archiveStatus(was bool) []string {
	switch now := r.archiving(); {
	case now && !was:
		return []string{"170"}
	case was && !now:
		return []string{"171"}
	}
	return nil
}

// historic says whether a groupchat message is archived (Prosody's
// muc-message-is-historic and mod_muc_moderation): one with a body, or
// a retraction or moderation marker; not a subject change.
func historic(el *etree.Element) bool {
	for _, t := range el.Child {
		c, ok := t.(*etree.Element)
		if !ok {
			continue
		}
		switch ns := xmpp.NS(c); {
		case c.Tag == "body" && (ns == xmpp.NSClient || ns == ""):
			return true
		case c.Tag == "retract" && ns == nsRetract, c.Tag == "apply-to" && ns == nsFasten:
			return true
		}
	}
	return false
}

// stampMessage prepares the template of a groupchat message before it
// is fanned out; r.mu is held. When the room archives and the message is
// historic, it archives it and adds its stanza-id; a stanza-id that
// claimed to be the room's was not passed on (passOn). from is the
// sender, nil for the room itself.
func (r *room) stampMessage(tmpl *etree.Element, from *occupant) {
	if !r.archiving() || !historic(tmpl) {
		return
	}
	// The stored copy carries the sender's real bare JID in a muc#user
	// item, as Prosody's does: a query shows it only to who may see it.
	stored := &etree.Element{Tag: tmpl.Tag, Attr: tmpl.Attr, Child: tmpl.Child[:len(tmpl.Child):len(tmpl.Child)]}
	nick := ""
	if from != nil {
		nick = from.nick
		x := xmpp.NewElementNS(NSMUCUser, "x")
		it := x.CreateElement("item")
		it.CreateAttr("jid", from.bare.String())
		stored.Child = append(stored.Child, x)
	}
	e := storage.ArchiveEntry{With: r.jid.String(), Resource: nick, Stanza: local.Serialize(stored)}
	ctx, cancel := context.WithTimeout(context.Background(), archiveTimeout)
	defer cancel()
	room, log := r.name, r.svc.log
	id, err := r.svc.archiveStore().ArchiveRoomAsync(ctx, r.svc.domain.String(), r.name, e, func(err error) {
		if err != nil {
			log.Warn("muc: archiving a message failed", "room", room, "err", err)
		}
	})
	if err != nil {
		// No stanza-id for a message that is not archived.
		r.svc.log.Warn("muc: archiving a message failed", "room", r.name, "err", err)
		return
	}
	sid := xmpp.NewElementNS(nsStanzaID, "stanza-id")
	sid.CreateAttr("by", r.jid.String())
	sid.CreateAttr("id", id)
	tmpl.Child = append(tmpl.Child, sid)
	tmpl.Child = tmpl.Child[:len(tmpl.Child):len(tmpl.Child)]
}

// queryAccess says whether the user bare may read the room's archive,
// and whether it is shown real JIDs; r.mu is held. Banned users may not;
// in a members-only room, members (and admins, owners) may; in an open
// room, occupants and affiliated users. Prosody lets anyone read an open
// room's archive, but an open room may have a password, and its archive
// is what the password keeps out: who is not in the room reads nothing.
// Real JIDs are shown as in the room: to everyone in a non-anonymous
// room, else to moderators (and owners and admins, moderators when they
// join).
func (r *room) queryAccess(bare xmpp.JID) (ok, seesJIDs bool) {
	aff := r.affiliation(bare)
	var occ *occupant
	for _, o := range r.occupants {
		if o.bare == bare {
			occ = o
			break
		}
	}
	switch {
	case aff == affBanned:
		return false, false
	case r.cfg.MembersOnly && aff == affNone:
		return false, false
	case aff == affNone && occ == nil:
		return false, false
	}
	sees := r.nonAnonymous() || aff == affOwner || aff == affAdmin || (occ != nil && occ.role == roleModerator)
	return true, sees
}

// mamIQ answers an archive iq to the room: the query form (get) or a
// query (set). It releases r.mu itself when it returns true.
func (r *room) mamIQ(st *xmpp.Stanza, q *etree.Element) bool {
	if !r.archiving() {
		r.bounce(st, xmpp.FeatureNotImplemented, "this room keeps no archive")
		return false
	}
	ok, sees := r.queryAccess(st.From.Bare())
	if !ok {
		r.bounce(st, xmpp.Forbidden, "only the room's occupants, and members of a members-only room, may read its archive")
		return false
	}
	if st.Type == "get" {
		r.send(st.Result(mamquery.Form(false)))
		return false
	}
	sq, flip, err := mamquery.Parse(q, archivePage, false)
	if err != nil {
		var serr *xmpp.StanzaError
		if errors.As(err, &serr) {
			r.send(st.ErrorReply(serr))
		} else {
			r.bounce(st, xmpp.BadRequest, err.Error())
		}
		return false
	}
	// The store is read without the room's lock: the room goes on.
	r.mu.Unlock()
	r.svc.archiveQuery(r.jid, r.name, st, q.SelectAttrValue("queryid", ""), sq, flip, sees)
	return true
}

// archiveQuery reads a page of the room's archive and routes it to the
// querier, then the iq result with <fin/> (XEP-0313 §4.2); each result
// comes from the room, the forwarded message from the occupant JID.
func (s *Service) archiveQuery(roomJID xmpp.JID, name string, st *xmpp.Stanza, queryID string, sq storage.ArchiveQuery, flip, sees bool) {
	a := s.archiveStore()
	ctx, cancel := context.WithTimeout(context.Background(), archiveTimeout)
	defer cancel()
	fail := func(err error) {
		s.log.Error("muc: archive query", "room", name, "err", err)
		s.router.Bounce(st, xmpp.NewStanzaError(xmpp.InternalServerError, "the archive could not be read"))
	}
	if err := a.SyncArchive(ctx); err != nil {
		fail(err)
		return
	}
	page, err := a.QueryRoomArchive(ctx, s.domain.String(), name, sq)
	if err != nil {
		if serr := mamquery.StoreError(err); serr != nil {
			s.router.Bounce(st, serr)
			return
		}
		fail(err)
		return
	}
	msgs := page.Messages
	for i := range msgs {
		am := msgs[i]
		if flip {
			am = msgs[len(msgs)-1-i]
		}
		orig, err := xmpp.ParseElement(string(am.Stanza), storedLimits)
		if err != nil {
			fail(fmt.Errorf("reading archived message %s: %w", am.ID, err))
			return
		}
		if !sees {
			for _, x := range orig.ChildElements() {
				if x.Tag == "x" && xmpp.NS(x) == NSMUCUser {
					orig.RemoveChild(x)
				}
			}
		}
		out := &xmpp.Stanza{El: mamquery.Result(queryID, am, orig, roomJID.String()), Kind: xmpp.KindMessage}
		out.SetFrom(roomJID)
		out.SetTo(st.From)
		s.router.Route(out)
	}
	s.router.Route(st.Result(mamquery.Fin(page)))
}

// mamMetadata answers a <metadata/> get to the room (XEP-0313 §5, part
// of the urn:xmpp:mam:2#extended the room advertises): the first and last
// messages of its archive, or an empty <metadata/> when it holds none.
// Who may query the archive may ask, no one else: the ids and times tell
// when the room was last spoken in. It releases r.mu itself when it
// returns true.
func (r *room) mamMetadata(st *xmpp.Stanza) bool {
	if !r.archiving() {
		r.bounce(st, xmpp.FeatureNotImplemented, "this room keeps no archive")
		return false
	}
	if ok, _ := r.queryAccess(st.From.Bare()); !ok {
		r.bounce(st, xmpp.Forbidden, "only the room's occupants, and members of a members-only room, may read its archive")
		return false
	}
	// The store is read without the room's lock, as a query's.
	r.mu.Unlock()
	r.svc.archiveMetadata(r.name, st)
	return true
}

// archiveMetadata reads the first and last messages of the room name's
// archive, after what was queued before it, and answers st with them.
func (s *Service) archiveMetadata(name string, st *xmpp.Stanza) {
	a := s.archiveStore()
	ctx, cancel := context.WithTimeout(context.Background(), archiveTimeout)
	defer cancel()
	fail := func(err error) {
		s.log.Error("muc: archive metadata", "room", name, "err", err)
		s.router.Bounce(st, xmpp.NewStanzaError(xmpp.InternalServerError, "the archive could not be read"))
	}
	if err := a.SyncArchive(ctx); err != nil {
		fail(err)
		return
	}
	// The first page of one and the last: the archive's order, the one
	// its queries page in.
	var ends [2]storage.ArchivedMessage
	for i, backward := range []bool{false, true} {
		page, err := a.QueryRoomArchive(ctx, s.domain.String(), name, storage.ArchiveQuery{Max: 1, Backward: backward})
		if err != nil {
			fail(err)
			return
		}
		if len(page.Messages) == 0 {
			s.router.Route(st.Result(mamquery.Metadata(ends[0], ends[1], false)))
			return
		}
		ends[i] = page.Messages[0]
	}
	s.router.Route(st.Result(mamquery.Metadata(ends[0], ends[1], true)))
}

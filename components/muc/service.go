// Package muc is the "muc" host type: a multi-user chat service
// (XEP-0045) whose rooms are created by joining them, configured through
// the muc#owner form, moderated and administered through muc#admin
// (roles, affiliations, their lists), destroyed by their owners, and,
// when persistent, kept in the store with their affiliations. Rooms
// pass on mediated invitations and voice requests. Every presence and
// groupchat message carries an occupant-id (XEP-0421), and self-pings
// (XEP-0410) are answered.
//
// A room's state is guarded by its own lock; what the room sends is
// queued under that lock and routed after it is released (room.flush),
// in the order it was queued, so that a stanza the router bounces back
// into the room (an error from a gone occupant) never meets the lock
// held, and a room's stanzas keep their order.
package muc

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/server"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// Namespaces of XEP-0045 and the extensions the service speaks.
const (
	NSMUC        = "http://jabber.org/protocol/muc"
	NSMUCUser    = "http://jabber.org/protocol/muc#user"
	NSMUCOwner   = "http://jabber.org/protocol/muc#owner"
	NSMUCAdmin   = "http://jabber.org/protocol/muc#admin"
	NSOccupantID = "urn:xmpp:occupant-id:0"
	NSSelfPing   = "http://jabber.org/protocol/muc#self-ping-optimization"
	NSData       = "jabber:x:data"
)

// Store is what the service needs of the store: package storage
// implements it.
type Store interface {
	PutMUCRoom(ctx context.Context, host string, r storage.MUCRoom) error
	DeleteMUCRoom(ctx context.Context, host, name string) error
	MUCRooms(ctx context.Context, host string) ([]storage.MUCRoom, error)
}

// Config is what New needs.
type Config struct {
	// Domain is the service's domain.
	Domain string
	// Options are the host's options, checked.
	Options Options
	// LocalDomains are the domains of this server's local hosts, whose
	// users "local" room creation lets in.
	LocalDomains map[string]bool
	// Router routes what the rooms send.
	Router *server.Router
	// Store keeps the persistent rooms; nil keeps none.
	Store Store
	// Logger logs; nil is slog.Default.
	Logger *slog.Logger
}

// Service is a muc host: the server.Handler of its domain.
type Service struct {
	domain xmpp.JID
	opts   Options
	locals map[string]bool
	router *server.Router
	store  Store
	log    *slog.Logger

	mu    sync.Mutex
	rooms map[string]*room // by localpart
	// dirty are the persistent rooms changed since their last save
	// (a subject), which saveLoop writes; wake tells it.
	dirty map[string]*room
	wake  chan struct{}

	// occupancies counts, by bare JID, the occupants a user is in the
	// service's rooms (max_user_rooms); occMu guards it, taken under a
	// room's lock and never the other way.
	occMu       sync.Mutex
	occupancies map[xmpp.JID]int
}

// New returns a service with no rooms.
func New(c Config) (*Service, error) {
	d, err := xmpp.Parse(c.Domain)
	if err != nil || d.Local() != "" || d.Resource() != "" {
		return nil, errors.New("muc: " + c.Domain + " is not a domain")
	}
	if c.Router == nil {
		return nil, errors.New("muc: no router")
	}
	log := c.Logger
	if log == nil {
		log = slog.Default()
	}
	if c.Options.HistoryLength == 0 && c.Options.RestrictRoomCreation == "" {
		c.Options = Options{RestrictRoomCreation: CreateLocal, HistoryLength: 20, AvatarMaxBytes: defaultAvatarBytes,
			MaxRooms: defaultMaxRooms, MaxUserRooms: defaultMaxUserRooms}
	}
	return &Service{
		domain: d, opts: c.Options, locals: c.LocalDomains, router: c.Router, store: c.Store,
		log: log.With("host", c.Domain), rooms: map[string]*room{}, dirty: map[string]*room{},
		wake: make(chan struct{}, 1),
	}, nil
}

// HandleStanza serves a stanza to the service or one of its rooms. It
// never blocks on an occupant: what rooms send goes through
// Router.Route, and from there into the sessions' queues.
func (s *Service) HandleStanza(st *xmpp.Stanza) {
	if st.To.Local() == "" {
		s.toService(st)
		return
	}
	for {
		r := s.room(st.To.Local())
		if r == nil {
			s.toNoRoom(st)
			return
		}
		if r.handle(st) {
			r.flush()
			return
		}
		// The room vanished (its last occupant left) between the lookup
		// and its lock: look again, which may create it anew.
	}
}

// room returns the room named local, or nil.
func (s *Service) room(local string) *room {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rooms[local]
}

// toNoRoom answers a stanza to a room that does not exist: a join
// creates it when the sender may; anything else is item-not-found.
func (s *Service) toNoRoom(st *xmpp.Stanza) {
	if st.Kind != xmpp.KindPresence || st.Type != "" {
		if st.Kind == xmpp.KindPresence {
			return // unavailable, errors, subscriptions: nothing to leave
		}
		s.router.Bounce(st, xmpp.NewStanzaError(xmpp.ItemNotFound, "no such room"))
		return
	}
	if st.To.Resource() == "" {
		s.router.Bounce(st, xmpp.NewStanzaError(xmpp.JIDMalformed, "join a room as room@service/nick"))
		return
	}
	if !s.mayCreate(st.From) {
		s.router.Bounce(st, xmpp.NewStanzaError(xmpp.NotAllowed, "room creation is restricted"))
		return
	}
	if s.occupancyFull(st.From.Bare()) {
		// Before the room exists: a join refused would leave it empty.
		s.router.Bounce(st, xmpp.NewStanzaError(xmpp.ResourceConstraint, errTooManyRooms))
		return
	}
	s.mu.Lock()
	r := s.rooms[st.To.Local()]
	if r == nil && s.opts.MaxRooms > 0 && len(s.rooms) >= s.opts.MaxRooms {
		// Each room holds memory and, persistent, a row: a user who
		// could create rooms without end could fill both.
		s.mu.Unlock()
		s.log.Warn("muc: room not created: the service holds max_rooms rooms", "rooms", s.opts.MaxRooms)
		s.router.Bounce(st, xmpp.NewStanzaError(xmpp.ResourceConstraint, "this service holds as many rooms as it may (max_rooms)"))
		return
	}
	if r == nil {
		r = s.newRoom(st.To.Local(), defaultConfig(), newSecret())
		r.locked = true
		r.created = true
		r.affs[st.From.Bare()] = affOwner
		s.rooms[r.name] = r
	}
	s.mu.Unlock()
	if r.handle(st) {
		r.flush()
		return
	}
	s.HandleStanza(st)
}

// mayCreate says whether from may create a room (restrict_room_creation).
func (s *Service) mayCreate(from xmpp.JID) bool {
	if s.opts.RestrictRoomCreation == CreateAnyone {
		return true
	}
	return from.Local() != "" && s.locals[from.Domain()]
}

// newSecret returns a new occupant-id key (XEP-0421 §4: a random secret
// per room).
func newSecret() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24)
	return b
}

// forget removes r from the service when it is still the room of its
// name (a temporary room whose last occupant left, or a destroyed one).
func (s *Service) forget(r *room) {
	s.mu.Lock()
	if s.rooms[r.name] == r {
		delete(s.rooms, r.name)
	}
	delete(s.dirty, r.name)
	s.mu.Unlock()
	s.dropArchive(r.name) // mam.go
}

// toService answers what is addressed to the service's own domain.
func (s *Service) toService(st *xmpp.Stanza) {
	if st.Kind != xmpp.KindIQ {
		if st.Kind == xmpp.KindMessage {
			s.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, "the service itself takes no messages"))
		}
		return
	}
	if st.Type != "get" && st.Type != "set" {
		return
	}
	p := st.Payload()
	switch {
	case st.Type == "get" && p.Tag == "query" && xmpp.NS(p) == xmpp.NSDiscoInfo && p.SelectAttr("node") == nil:
		q := xmpp.NewElementNS(xmpp.NSDiscoInfo, "query")
		id := q.CreateElement("identity")
		id.CreateAttr("category", "conference")
		id.CreateAttr("type", "text")
		id.CreateAttr("name", "Chatrooms")
		feats := []string{xmpp.NSDiscoInfo, xmpp.NSDiscoItems, NSMUC, NSOccupantID, NSSelfPing, xmpp.NSPing}
		if s.opts.AvatarMaxBytes > 0 {
			feats = append(feats, NSVCard) // XEP-0486 §3.1
		}
		for _, f := range feats {
			q.CreateElement("feature").CreateAttr("var", f)
		}
		sortFeatures(q)
		s.router.Route(st.Result(q))
	case st.Type == "get" && p.Tag == "query" && xmpp.NS(p) == xmpp.NSDiscoItems && p.SelectAttr("node") == nil:
		s.router.Route(st.Result(s.publicRooms()))
	case st.Type == "get" && p.Tag == "ping" && xmpp.NS(p) == xmpp.NSPing:
		s.router.Route(st.Result(nil))
	default:
		s.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, ""))
	}
}

// publicRooms is the service's disco#items: its public, unlocked rooms.
func (s *Service) publicRooms() *etree.Element {
	s.mu.Lock()
	rooms := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, r)
	}
	s.mu.Unlock()
	sort.Slice(rooms, func(i, j int) bool { return rooms[i].name < rooms[j].name })
	q := xmpp.NewElementNS(xmpp.NSDiscoItems, "query")
	for _, r := range rooms {
		r.mu.Lock()
		public, name := r.cfg.Public && !r.locked && !r.gone, r.cfg.Name
		r.mu.Unlock()
		if !public {
			continue
		}
		it := q.CreateElement("item")
		it.CreateAttr("jid", r.jid.String())
		if name == "" {
			name = r.name
		}
		it.CreateAttr("name", name)
	}
	return q
}

// sortFeatures sorts the <feature/>s of a disco#info query by var, after
// its identities and before its forms.
func sortFeatures(q *etree.Element) {
	var feats []*etree.Element
	for _, c := range q.SelectElements("feature") {
		feats = append(feats, c)
		q.RemoveChild(c)
	}
	sort.Slice(feats, func(i, j int) bool {
		return feats[i].SelectAttrValue("var", "") < feats[j].SelectAttrValue("var", "")
	})
	forms := q.SelectElements("x")
	for _, f := range forms {
		q.RemoveChild(f)
	}
	for _, f := range feats {
		q.AddChild(f)
	}
	for _, f := range forms {
		q.AddChild(f)
	}
}

// load builds the stored rooms.
func (s *Service) load(ctx context.Context) error {
	if s.store == nil {
		return nil
	}
	stored, err := s.store.MUCRooms(ctx, s.domain.String())
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sr := range stored {
		cfg, err := decodeConfig(sr.Config)
		if err != nil {
			s.log.Error("muc: stored room unreadable, skipped", "room", sr.Name, "err", err)
			continue
		}
		r := s.newRoom(sr.Name, cfg, sr.Secret)
		r.subject, r.subjectFrom, r.subjectAt = sr.Subject, sr.SubjectFrom, sr.SubjectAt
		for j, a := range sr.Affiliations {
			bare, err := xmpp.Parse(j)
			if err != nil {
				s.log.Warn("muc: stored affiliation unreadable, skipped", "room", sr.Name, "jid", j, "err", err)
				continue
			}
			r.affs[bare] = a
			if n := sr.Nicks[j]; n != "" {
				r.setNick(bare, n)
			}
		}
		if sr.VCard != nil {
			r.loadVCard(sr.VCard)
		}
		s.rooms[sr.Name] = r
	}
	return nil
}

// save writes r as it is now, when it is persistent; a room that stopped
// being persistent is deleted from the store.
func (s *Service) save(ctx context.Context, r *room) error {
	if s.store == nil {
		return nil
	}
	r.mu.Lock()
	persistent := r.cfg.Persistent && !r.gone && !r.locked
	var rec storage.MUCRoom
	if persistent {
		rec = r.record()
	}
	r.mu.Unlock()
	if !persistent {
		return s.store.DeleteMUCRoom(ctx, s.domain.String(), r.name)
	}
	return s.store.PutMUCRoom(ctx, s.domain.String(), rec)
}

// markDirty asks saveLoop to save r.
func (s *Service) markDirty(r *room) {
	s.mu.Lock()
	s.dirty[r.name] = r
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// saveLoop saves the rooms markDirty names, in the background, so that a
// subject change never waits for a commit; at shutdown it saves what is
// left.
func (s *Service) saveLoop(ctx context.Context) {
	for {
		select {
		case <-s.wake:
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = s.saveDirty(sctx)
			cancel()
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = s.saveDirty(sctx)
			cancel()
			return
		}
	}
}

// saveDirty saves the rooms marked dirty.
func (s *Service) saveDirty(ctx context.Context) error {
	s.mu.Lock()
	dirty := s.dirty
	s.dirty = map[string]*room{}
	s.mu.Unlock()
	var first error
	for _, r := range dirty {
		if err := s.save(ctx, r); err != nil {
			s.log.Error("muc: save room", "room", r.name, "err", err)
			if first == nil {
				first = err
			}
		}
	}
	return first
}

package local

import (
	"context"
	"errors"
	"fmt"
	"github.com/beevik/etree"
	"github.com/parley-im/parley/server"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-im/parley/c2s"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// userStore is what a local host needs of storage.
type userStore interface {
	Account(ctx context.Context, host, username string) (storage.Account, error)
	SetCredentials(ctx context.Context, host, username string, sha1, sha256 storage.SCRAMKey) error
	DeleteAccount(ctx context.Context, host, username string) error
	Roster(ctx context.Context, host, user string) ([]storage.RosterItem, int64, error)
	PutRosterItem(ctx context.Context, host, user string, item storage.RosterItem) (int64, error)
	DeleteRosterItem(ctx context.Context, host, user, jid string) (int64, error)
	RosterSince(ctx context.Context, host, user string, since int64) ([]storage.RosterItem, []string, int64, bool, error)
	StoreOffline(ctx context.Context, host, user string, stanza []byte, q storage.OfflineQuota) error
	TakeOffline(ctx context.Context, host, user string, maxMessages int, maxBytes int64) ([]storage.OfflineMessage, error)
	RestoreOffline(ctx context.Context, host, user string, ms []storage.OfflineMessage) error
	PutXML(ctx context.Context, host, user, kind, key string, xml []byte) error
	PutXMLDocs(ctx context.Context, host, user, kind string, docs []storage.XMLDoc, quota int64) error
	XML(ctx context.Context, host, user, kind, key string) ([]byte, error)
	XMLDocs(ctx context.Context, host, user, kind string) (map[string][]byte, error)
	DeleteXML(ctx context.Context, host, user, kind, key string) error
	BlockList(ctx context.Context, host, user string) ([]string, error)
	Block(ctx context.Context, host, user string, jids []string) error
	Unblock(ctx context.Context, host, user string, jids []string) error
	SetLastActivities(ctx context.Context, host string, at map[string]storage.Activity) error
	LastActivity(ctx context.Context, host, user string) (time.Time, string, error)
}

// localHost is a domain with users: it keeps the bound sessions and the
// in-memory state of its online users, applies the delivery rules of RFC
// 6121 §8.5 to stanzas addressed to them, and answers the iqs addressed to
// the server itself and, on the users' behalf, to their bare JIDs.
type localHost struct {
	name   string
	domain xmpp.JID
	router *server.Router
	store  userStore
	log    *slog.Logger
	limits hostLimits
	// cfg and opts are the server's config and the host's options, as
	// checked, for modules (Host.Config, Host.Options).
	cfg  *conf.Config
	opts *LocalOptions
	// stored bound what is parsed back from the store (storedLimits).
	stored xmpp.Limits
	// values are the modules' HostValues: key → value.
	values sync.Map
	// caps is the <c/> stream feature of the server's disco#info.
	caps *etree.Element

	// counters count what the per-account limits refused (LimitStats).
	counters limitCounters
	// inFlight are the offline messages that sessions took and may hand
	// back (offlineHandedBack).
	inFlight *offlineFlight

	server  *iqMux // iqs to the domain
	account *iqMux // iqs to a user's bare JID, answered by the server
	// pipe are the modules' stanza handlers (pipeline.go).
	pipe pipeline
	// slots counts the modules' per-session values (SessionValue); set
	// while modules start, read-only after. slotSet counts, per slot, the
	// bound sessions that have a value in it, so that a module asking
	// every delivery (CSI, push) costs no lock while nobody set one.
	slots   int
	slotSet []atomic.Int64
	// nonzas are the modules' handlers of top-level elements that are not
	// stanzas, by namespace and name; features are the modules' stream
	// features after login. Both are set while modules start.
	nonzas   map[[2]string]func(Session, *etree.Element)
	features []*etree.Element
	// beforeAck are the modules' work before a session's stanzas are
	// acknowledged (Host.BeforeAck); set while modules start.
	beforeAck []func(Session)
	// inlineFeatures are the namespaces a Bind2 request may enable
	// inline (XEP-0386), and inlines the handlers of elements valid
	// only there (carbons' <enable/>); set while modules start.
	inlineFeatures []string
	inlines        map[[2]string]func(Session, *etree.Element)
	// detached are the modules' handlers of a session's detach
	// (Host.OnDetach), set while modules start.
	detached []func(Session, []*xmpp.Stanza)
	// offline are the modules' handlers of a message stored for a user
	// with no available resource (Host.OnOffline), set while modules
	// start.
	offline []func(*xmpp.Stanza)
	// services are the domains of the server's service hosts, for
	// disco#items; started is when the server was built.
	services []string
	started  time.Time

	// seenMu guards seen: the users' last logouts, not yet written
	// (XEP-0012).
	seenMu sync.Mutex
	seen   map[string]storage.Activity

	// mu guards users. Lock order: a user's lock (userLock; if at all,
	// and never two of them), then h.mu, then that user's account's mu;
	// none of them is held while routing. locksMu is taken alone.
	mu    sync.RWMutex
	users map[string]*account // online users, by localpart

	// locksMu guards locks: the users' locks that someone holds or
	// waits for (userLock). It is held only to find or drop a lock.
	locksMu sync.Mutex
	locks   map[string]*userMutex
}

// hostLimits bound what one user may keep and do.
type hostLimits struct {
	roster       int
	offline      int
	offlineBytes int64
	sessions     int // bound at once per account
	rosterRate   int // roster changes per minute per account
}

// hostLimitsOf returns the per-user limits of l.
func hostLimitsOf(l conf.Limits) hostLimits {
	return hostLimits{
		roster:       l.RosterSize,
		offline:      l.OfflineMessages,
		offlineBytes: int64(l.OfflineBytes),
		sessions:     l.SessionsPerAccount,
		rosterRate:   l.RosterChangesPerMinute,
	}
}

func newLocalHost(name string, r *server.Router, store userStore, limits hostLimits, log *slog.Logger) *localHost {
	h := &localHost{
		name:     name,
		domain:   xmpp.MustParse(name),
		router:   r,
		store:    store,
		log:      log.With("host", name),
		limits:   limits,
		users:    make(map[string]*account),
		seen:     make(map[string]storage.Activity),
		locks:    make(map[string]*userMutex),
		inFlight: newOfflineFlight(),
		stored:   storedLimits(conf.Limits{}),
	}
	h.server = newIQMux("server", "im", "Parley")
	h.account = h.accountServices()
	// The server's disco#info lists what it does for accounts too.
	h.server.also = h.account
	return h
}

// deliver queues st on s: the ToClient handlers, then the router's
// slow-consumer policy. A stanza for several sessions (a message to the
// bare JID, a presence broadcast) is one element queued on each: when
// ToClient handlers may change it, each session gets its own copy, so
// that no handler changes what another session's writer is writing.
func (h *localHost) deliver(s Session, st *xmpp.Stanza) {
	if len(h.pipe.hooks[ToClient][st.Kind]) > 0 {
		if h.pipe.changes[ToClient][st.Kind] {
			st = st.Copy()
		}
		if h.pipe.run(ToClient, s, st) {
			return
		}
	}
	h.router.Deliver(s, st)
}

// serverInfo is the server's disco#info query, as a client would get it.
func (h *localHost) serverInfo() *etree.Element {
	q := xmpp.NewElementNS(xmpp.NSDiscoInfo, "query")
	st := xmpp.NewIQ("get", "caps", h.domain, h.domain, q)
	payload, _ := h.server.handlers[iqKey{"get", xmpp.NSDiscoInfo, "query"}](context.Background(), st)
	return payload
}

// Bind registers s; a session already bound to the same full JID is
// closed with <conflict/> (RFC 6120 §7.7.2.2, the newest login wins).
func (h *localHost) Bind(s *c2s.Session) error { return h.bind(s) }

// bind is Bind for any Session, so that tests can bind sessions of their
// own.
func (h *localHost) bind(s Session) error {
	j := s.JID()
	// The session joins its account under h.mu, so that it can never
	// join an account that the unbind of the user's last other session
	// is removing at the same moment.
	h.mu.Lock()
	a := h.users[j.Local()]
	if a == nil {
		a = newAccount(j.Local(), h.name)
		h.users[j.Local()] = a
	}
	a.mu.Lock()
	old, _ := a.sessionOf(j)
	if old == nil && h.limits.sessions > 0 && a.liveSessions() >= h.limits.sessions {
		// Prosody and ejabberd (max_user_sessions) set no limit by
		// default. This one protects the other users' share of the
		// server from one account: a leaked password or a client in a
		// reconnect loop with a new resource each time held 1,000
		// sessions, each with its memory and its presence broadcasts.
		// A new login with the resource of a bound session replaces it,
		// so it is always let in; closing sessions are on their way out.
		a.mu.Unlock()
		h.mu.Unlock()
		h.counters.sessionsRefused.Add(1)
		h.logLimit("sessions_per_account", "user", j.Local())
		return fmt.Errorf("%s has %d sessions, the most one account may have at once; log out of one and try again", j.Bare(), h.limits.sessions)
	}
	a.sessions = append(a.sessions, sessEntry{s, &sessState{}})
	a.mu.Unlock()
	h.mu.Unlock()
	// The user's data is read once, outside the host's lock; whoever
	// needs it meanwhile waits in load.
	if err := a.load(h); err != nil {
		h.unbind(s)
		return fmt.Errorf("reading the account: %w", err)
	}
	if old != nil {
		h.unbind(old)
		old.Close(xmpp.NewStreamError(xmpp.StreamConflict, "replaced by a new login with the same resource"))
	}
	return nil
}

// Unbind removes s if it is still registered, and tells whoever saw it
// available that it is gone (RFC 6121 §4.5.2: also when the connection
// just dropped).
func (h *localHost) Unbind(s *c2s.Session) { h.unbind(s) }

func (h *localHost) unbind(s Session) {
	j := s.JID()
	h.mu.Lock()
	a := h.users[j.Local()]
	if a == nil {
		h.mu.Unlock()
		return
	}
	a.mu.Lock()
	ss := a.removeSession(s)
	last := len(a.sessions) == 0
	if last {
		delete(h.users, j.Local())
	}
	a.mu.Unlock()
	h.mu.Unlock()
	if ss == nil {
		return
	}
	for _, sv := range ss.vals {
		if sv.slot < len(h.slotSet) {
			h.slotSet[sv.slot].Add(-1)
		}
	}
	if ss.presence != nil || len(ss.directed) > 0 {
		// A session that ends available logs the user out here when it
		// is the last available one (broadcastPresence records it).
		unavailable := xmpp.NewPresence("unavailable", j, xmpp.JID{})
		h.broadcastPresence(a, s, ss, unavailable)
	}
	if last {
		a.mu.Lock()
		recorded := a.loggedOut
		a.mu.Unlock()
		if !recorded {
			// The user was never available in these sessions: the end
			// of the last one is the last activity.
			h.setSeen(j.Local(), time.Now(), "")
		}
	}
}

// setSeen records the user's last logout and the status text of its
// unavailable presence. Acknowledged to nobody, it is written in batches
// (flushSeen): a thousand sessions that end together cost one commit.
func (h *localHost) setSeen(local string, at time.Time, status string) {
	h.seenMu.Lock()
	h.seen[local] = storage.Activity{At: at, Status: status}
	h.seenMu.Unlock()
}

// lastSeen returns the user's last logout, if it is not written yet.
func (h *localHost) lastSeen(local string) (storage.Activity, bool) {
	h.seenMu.Lock()
	defer h.seenMu.Unlock()
	t, ok := h.seen[local]
	return t, ok
}

// lastActivity returns the user's last logout and its status: the one not
// written yet, else the stored one; ok is false when there is none (or
// the store cannot be read, which is logged).
func (h *localHost) lastActivity(local string) (at time.Time, status string, ok bool) {
	if a, ok := h.lastSeen(local); ok {
		return a.At, a.Status, true
	}
	ctx, cancel := h.router.StoreContext()
	defer cancel()
	at, status, err := h.store.LastActivity(ctx, h.name, local)
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			h.log.Error("local: last activity lookup", "user", local, "err", err)
		}
		return time.Time{}, "", false
	}
	return at, status, true
}

// flushSeen writes the last activity of the users whose sessions ended
// since the last flush.
func (h *localHost) flushSeen(ctx context.Context) {
	h.seenMu.Lock()
	batch := h.seen
	h.seen = make(map[string]storage.Activity)
	h.seenMu.Unlock()
	if len(batch) == 0 {
		return
	}
	if err := h.store.SetLastActivities(ctx, h.name, batch); err != nil {
		h.log.Warn("local: last activity not recorded", "users", len(batch), "err", err)
	}
}

// loaded returns the account of a user with a session, its data read, or
// nil.
func (h *localHost) loaded(local string) *account {
	if a := h.online(local); a != nil && a.load(h) == nil {
		return a
	}
	return nil
}

// errNotLoaded answers a request whose account state could not be read.
var errNotLoaded = xmpp.NewStanzaError(xmpp.InternalServerError, "")

// online returns the account of a user with a session, or nil.
func (h *localHost) online(local string) *account {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.users[local]
}

// sessions returns the sessions of a user; the slice is a copy.
func (h *localHost) sessions(local string) []Session { return h.online(local).sessionList() }

// sessionList returns the sessions of a, none when a is nil; the slice is
// a copy.
func (a *account) sessionList() []Session {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Session, 0, len(a.sessions))
	for _, e := range a.sessions {
		out = append(out, e.s)
	}
	return out
}

// session returns the session bound to full, or nil.
func (h *localHost) session(full xmpp.JID) Session {
	a := h.online(full.Local())
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s, _ := a.sessionOf(full)
	return s
}

// recipient returns the session of a bound to full that can still take
// stanzas, or nil (also when a is nil). A closing session counts as gone:
// what it would refuse goes where it would go without it, and looking past
// it here keeps undelivered from handing a stanza back to the session that
// gave it up.
func (a *account) recipient(full xmpp.JID) Session {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.sessions {
		if e.s.JID() == full && !e.s.Closing() {
			return e.s
		}
	}
	return nil
}

// blocks reports whether the user blocks j. a is the user's account as
// the caller looked it up (h.online), so that a stanza's trip looks it up
// once; for a user with none the list is read from the store.
func (h *localHost) blocks(local string, a *account, j xmpp.JID) bool {
	if a != nil && a.load(h) == nil {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.isBlocked(j)
	}
	if j.Domain() == h.name && j.Local() == local {
		return false
	}
	ctx, cancel := h.router.StoreContext()
	defer cancel()
	list, err := h.store.BlockList(ctx, h.name, local)
	if err != nil {
		// Open rather than closed: a store that cannot be read should not
		// silence the user's contacts, and it is logged.
		h.log.Error("local: blocklist lookup", "user", local, "err", err)
		return false
	}
	if len(list) == 0 {
		return false
	}
	stored := &account{blocked: parseBlockList(list)}
	return stored.isBlocked(j)
}

// exists reports whether the user has an account. It reads storage, so it
// is asked only when the user has no session.
func (h *localHost) exists(local string) bool {
	ctx, cancel := h.router.StoreContext()
	defer cancel()
	_, err := h.store.Account(ctx, h.name, local)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		h.log.Error("local: account lookup", "user", local, "err", err)
	}
	return err == nil
}

// HandleStanza applies the delivery rules to a stanza addressed to this
// domain or one of its users.
func (h *localHost) HandleStanza(st *xmpp.Stanza) {
	to := st.To
	if to.IsZero() {
		h.fromOwnAccount(st)
		return
	}
	if to.Local() == "" {
		h.toServer(st)
		return
	}
	// One lookup of the user's account serves the block check and the
	// delivery: a message is on the hot path.
	h.toUser(st, h.online(to.Local()))
}

// toUser is HandleStanza for st to one of this domain's users, a the
// user's account as looked up (nil: no session).
func (h *localHost) toUser(st *xmpp.Stanza, a *account) {
	to := st.To
	switch {
	case st.Kind == xmpp.KindPresence && (st.Type == "" || st.Type == "unavailable") && a == nil:
		// Presence for a user with no session has nowhere to go: dropped
		// before anything is read from the disk (§8.5.2.2.2).
	case st.Kind != xmpp.KindIQ || st.Type == "get" || st.Type == "set":
		// XEP-0191: nothing of a blocked sender reaches the user; its
		// messages and requests are answered as if the user did not
		// exist, its presence is dropped.
		if !st.From.IsZero() && st.From.Bare() != to.Bare() && h.blocks(to.Local(), a, st.From) {
			if st.Kind != xmpp.KindPresence {
				h.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, ""))
			}
			return
		}
		fallthrough
	default:
		if to.Resource() != "" {
			if !h.pipe.run(ToFull, nil, st) {
				h.toFullJID(st, a)
			}
		} else if !h.pipe.run(ToBare, nil, st) {
			h.toBareJID(st, a)
		}
	}
}

// HandleFanOut applies the delivery rules to a room's groupchat messages,
// each to a full JID of this domain (server.FanOutHost), as HandleStanza
// does one by one (toUser), with the recipients' accounts looked up under
// one hold of the host's lock for up to 32 of them instead of one each.
func (h *localHost) HandleFanOut(sts []*xmpp.Stanza) {
	var accts [32]*account
	for len(sts) > 0 {
		n := min(len(sts), len(accts))
		h.mu.RLock()
		for i, st := range sts[:n] {
			accts[i] = h.users[st.To.Local()]
		}
		h.mu.RUnlock()
		for i, st := range sts[:n] {
			h.toUser(st, accts[i])
			accts[i] = nil
		}
		sts = sts[n:]
	}
}

// fromOwnAccount handles a stanza a user sent without to (RFC 6120 §10.3):
// an iq is for the account, a message is to the user's own bare JID.
// Presence without to never gets here: the c2s entry handles it.
func (h *localHost) fromOwnAccount(st *xmpp.Stanza) {
	if st.Kind == xmpp.KindMessage {
		st.SetTo(st.From.Bare())
	}
	if h.pipe.run(ToBare, nil, st) {
		return
	}
	switch st.Kind {
	case xmpp.KindIQ:
		h.accountIQ(st, st.From.Bare())
	case xmpp.KindMessage:
		h.toBareJID(st, h.online(st.From.Local()))
	}
}

// presencePriority reads <priority/>: -128..127, default 0 (RFC 6121 §4.7.2.3).
func presencePriority(st *xmpp.Stanza) int {
	p := xmpp.Child(st.El, "", "priority")
	if p == nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(p.Text()))
	if err != nil || n < -128 || n > 127 {
		return 0
	}
	return n
}

// toFullJID follows RFC 6121 §8.5.3. a is the account of the user st is
// addressed to, as the caller looked it up; nil when the user has no
// session.
func (h *localHost) toFullJID(st *xmpp.Stanza, a *account) {
	if st.Kind == xmpp.KindPresence && st.Type != "" && st.Type != "unavailable" && st.Type != "error" {
		// Subscription stanzas and probes are for the account (§3, §4.3).
		h.inboundPresence(st)
		return
	}
	if s := a.recipient(st.To); s != nil {
		h.deliver(s, st)
		return
	}
	switch st.Kind {
	case xmpp.KindMessage:
		switch st.Type {
		case "", "normal", "chat":
			// §8.5.3.2.1: as if it were sent to the bare JID.
			h.toBareJID(st, a)
		case "groupchat":
			h.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, ""))
		}
		// headline and error: silently ignored.
	case xmpp.KindIQ:
		h.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, ""))
	}
	// Presence to a resource that is not there is ignored (§8.5.3.2.3).
}

// toBareJID follows RFC 6121 §8.5.2. a is the account of the user st is
// addressed to, as the caller looked it up; nil when the user has no
// session.
func (h *localHost) toBareJID(st *xmpp.Stanza, a *account) {
	local := st.To.Local()
	switch st.Kind {
	case xmpp.KindIQ:
		h.accountIQ(st, st.To.Bare())
		return
	case xmpp.KindPresence:
		h.inboundPresence(st)
		return
	}
	// A message. Closing sessions count as gone (see recipient).
	all := a.sessionList()
	switch st.Type {
	case "error":
		return
	case "groupchat":
		h.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, ""))
		return
	case "headline":
		for _, s := range all {
			if s.Available() && s.Priority() >= 0 && !s.Closing() {
				h.deliver(s, st)
			}
		}
		return
	}
	// normal and chat: every available resource of the highest
	// non-negative priority (§8.5.2.1.1).
	best := -1
	for _, s := range all {
		if s.Available() && s.Priority() > best && !s.Closing() {
			best = s.Priority()
		}
	}
	if best >= 0 {
		for _, s := range all {
			if s.Available() && s.Priority() == best && !s.Closing() {
				h.deliver(s, st)
			}
		}
		return
	}
	if len(all) == 0 && !h.exists(local) {
		// §8.5.2.2.1 / §8.5.1: no such user.
		h.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, ""))
		return
	}
	h.storeOffline(st)
}

// undelivered routes st, which the closing session s refused or queued
// but will never write, as if s had already gone:
//   - a message or an iq to the full JID of s takes the rules for a
//     resource that is not there (§8.5.3.2): a chat or normal message goes
//     to the bare JID (the user's other resources, or offline storage), a
//     headline is dropped, an iq get or set is answered with
//     <service-unavailable/>; a session bound to that JID since (a new
//     login with the same resource) gets it instead;
//   - a message to the bare JID went to every resource of the highest
//     priority at once (§8.5.2.1.1): when another of them is still there,
//     it has the message; otherwise the message goes to the resources
//     left, or to offline storage;
//   - presence is dropped: the unavailable presence broadcast when s is
//     unbound tells its contacts, and pending requests wait in the store;
//   - iq results and error stanzas are dropped, as for any resource that
//     is gone.
//
// It never gives st back to s: the lookups skip closing sessions.
func (h *localHost) undelivered(s Session, st *xmpp.Stanza) {
	if r, ok := h.inFlight.take(st.El); ok {
		// An offline message goes back to the store in its place: it was
		// given to s alone, whatever other resources there are.
		h.offlineHandedBack(s, st, r)
		return
	}
	if st.To.IsZero() || st.To.Bare() != s.JID().Bare() {
		// Stream-level answers of the session itself (the bind result)
		// and anything not addressed to its user have nowhere to go.
		return
	}
	switch {
	case st.Kind == xmpp.KindPresence:
	case st.To.Resource() != "":
		h.toFullJID(st, h.online(st.To.Local()))
	case st.Kind == xmpp.KindMessage:
		h.undeliveredToBare(s, st)
	case st.Type == "get" || st.Type == "set":
		h.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, ""))
	}
}

// undeliveredToBare handles a message to the bare JID of the user of s
// that s will never write. Resources other than the highest-priority ones
// never had it, and a headline went to all of them.
func (h *localHost) undeliveredToBare(s Session, st *xmpp.Stanza) {
	if st.Type != "" && st.Type != "normal" && st.Type != "chat" {
		return
	}
	prio := s.Priority()
	a := h.online(st.To.Local())
	for _, o := range a.sessionList() {
		if o != s && !o.Closing() && o.Available() && o.Priority() >= 0 && o.Priority() >= prio {
			// Of the highest priority too: it got the message with s.
			return
		}
	}
	h.toBareJID(st, a)
}

// toServer handles stanzas addressed to the domain itself.
func (h *localHost) toServer(st *xmpp.Stanza) {
	if h.pipe.run(ToHost, nil, st) {
		return
	}
	switch st.Kind {
	case xmpp.KindIQ:
		h.answer(st, h.server)
	case xmpp.KindMessage:
		if st.Type != "headline" && st.Type != "error" {
			h.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, "the server does not take messages"))
		}
	}
}

// accountIQ answers an iq addressed to a user's bare JID (or sent without
// to): the server answers for the account (RFC 6121 §8.5.2.1.3).
func (h *localHost) accountIQ(st *xmpp.Stanza, account xmpp.JID) {
	if st.Type != "get" && st.Type != "set" {
		return
	}
	if account != st.From.Bare() && len(h.sessions(account.Local())) == 0 && !h.exists(account.Local()) {
		h.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, ""))
		return
	}
	h.answer(st, h.account)
}

func (h *localHost) String() string { return fmt.Sprintf("local host %s", h.name) }

// The server's side of a local host (server.SessionHost, AccountHost).

// FromClient takes a stanza a user's session sent: a stanza to a contact
// the user blocks is refused (XEP-0191 §3.5), then the FromClient
// handlers run, then presence goes through RFC 6121's outbound rules and
// anything else is routed.
func (h *localHost) FromClient(st *xmpp.Stanza) {
	// A delay from this server's domains is the server's word alone
	// (see xmpp.StripForeignDelays): a client's copy could backdate it.
	xmpp.StripForeignDelays(st, h.router.Serves)
	// One lookup of the sender's account serves the block check and the
	// session's: a message is on the hot path.
	a := h.online(st.From.Local())
	if !st.To.IsZero() && st.To.Bare() != st.From.Bare() && !st.IsError() && h.blocks(st.From.Local(), a, st.To) {
		if st.Kind != xmpp.KindPresence {
			reply := st.ErrorReply(blockedError())
			reply.El.FindElement("error").AddChild(xmpp.NewElementNS(NSBlockingErr, "blocked"))
			// Straight to the sender: routed, it would come from the
			// blocked contact and be filtered by the very block.
			if s := h.session(st.From); s != nil {
				h.deliver(s, reply)
			}
		}
		return
	}
	hooked := len(h.pipe.hooks[FromClient][st.Kind]) > 0
	if !hooked && st.Kind != xmpp.KindPresence {
		h.router.Route(st) // the hot path: a message or iq, no handler
		return
	}
	var s Session
	if a != nil {
		a.mu.Lock()
		s, _ = a.sessionOf(st.From)
		a.mu.Unlock()
	}
	if hooked && h.pipe.run(FromClient, s, st) {
		return
	}
	if st.Kind == xmpp.KindPresence {
		if s != nil {
			h.outboundPresence(s, st)
		}
		return
	}
	h.router.Route(st)
}

// Undelivered routes st, which the closing session s will never write, as
// if s had already gone (see undelivered).
func (h *localHost) Undelivered(s Session, st *xmpp.Stanza) { h.undelivered(s, st) }

// StreamFeatures are the features c2s only announces: the server's
// entity capabilities, and after login roster versioning and
// subscription pre-approval (RFC 6121 §2.6, §3.4).
func (h *localHost) StreamFeatures(authenticated bool) []*etree.Element {
	out := []*etree.Element{h.caps}
	if authenticated {
		out = append(out, xmpp.NewElementNS(NSRosterVer, "ver"), xmpp.NewElementNS(NSPreApproval, "sub"))
		out = append(out, h.features...)
	}
	return out
}

// BeforeAck runs the modules' work that must be done before what s sent
// is acknowledged (Host.BeforeAck).
func (h *localHost) BeforeAck(s *c2s.Session) {
	for _, fn := range h.beforeAck {
		fn(s)
	}
}

// Nonza hands a top-level element that is not a stanza to the module that
// registered its name (Host.HandleNonza).
func (h *localHost) Nonza(s *c2s.Session, el *etree.Element) bool {
	fn := h.nonzas[[2]string{xmpp.NS(el), el.Tag}]
	if fn == nil {
		return false
	}
	fn(s, el)
	return true
}

// InlineFeatures lists the features a Bind2 request may enable inline
// (Host.InlineFeature), for c2s's stream features.
func (h *localHost) InlineFeatures() []string { return h.inlineFeatures }

// Inline hands one child of a Bind2 request of the bound session s to the
// module that takes it: an element of a namespace offered inline, to its
// inline handler (Host.HandleInline) or else its nonza handler
// (Host.HandleNonza). It reports whether one took it.
func (h *localHost) Inline(s *c2s.Session, el *etree.Element) bool {
	ns := xmpp.NS(el)
	if !slices.Contains(h.inlineFeatures, ns) {
		return false
	}
	k := [2]string{ns, el.Tag}
	fn := h.inlines[k]
	if fn == nil {
		fn = h.nonzas[k]
	}
	if fn == nil {
		return false
	}
	fn(s, el)
	return true
}

// Detached runs the modules' handlers of a session that detached
// (XEP-0198), with the stanzas it holds for its client (server.DetachHost).
func (h *localHost) Detached(s *c2s.Session, pending []*etree.Element) {
	if len(h.detached) == 0 {
		return
	}
	sts := make([]*xmpp.Stanza, 0, len(pending))
	for _, el := range pending {
		if st, err := xmpp.NewStanza(el); err == nil {
			sts = append(sts, st)
		}
	}
	for _, fn := range h.detached {
		fn(s, sts)
	}
}

// RegistrationMode says who may register in-band on the host.
func (h *localHost) RegistrationMode() string {
	if h.opts == nil { // a host built by a test, without options
		return RegistrationClosed
	}
	return h.opts.Registration
}

// Flush writes the last activity of the users whose sessions ended since
// the last flush.
func (h *localHost) Flush(ctx context.Context) { h.flushSeen(ctx) }

// MayExist reports whether the user may have an account: one with a
// session has one; else the store says.
func (h *localHost) MayExist(local string) bool {
	return h.online(local) != nil || h.exists(local)
}

// A local host hears of its sessions' detaches, for its modules, and
// takes a room's messages several at once.
var (
	_ server.DetachHost = (*localHost)(nil)
	_ server.FanOutHost = (*localHost)(nil)
)

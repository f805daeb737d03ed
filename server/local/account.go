package local

import (
	"context"
	"github.com/parley-im/parley/internal/tokenbucket"
	"slices"
	"sort"
	"sync"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/server/subscription"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// kindSubRequest is the per-user XML document kind that keeps inbound
// subscription requests waiting for an answer, keyed by the contact's bare
// JID: they are not roster items (RFC 6121 §3.1.3) and are redelivered at
// each login until answered.
const kindSubRequest = "subreq"

// account is the state of a user with at least one bound session, kept in
// memory so that routing reads no disk: read from the store at the first
// bind, written back on every change.
//
// Routing never waits for a disk commit. A change of the user's roster,
// pending requests or blocklist holds the user's lock (localHost.userLock)
// from the moment it reads the state it changes until its new state is in
// memory, and holds mu only for the moments it reads that state and
// publishes the committed result. So two changes of one user commit one
// after the other, in the order they took the lock, and memory shows only
// what the store holds: a commit that fails leaves memory as it was, and
// of a change that commits in two steps, memory gets the step that
// succeeded. Readers (block checks, presence broadcast, probe answers,
// session lists) take mu alone and so never wait for the store; while a
// commit is under way they see the state before it.
//
// The lock belongs to the user, not to the account, because an account is
// not the only copy a change may work on: a change of a user with no
// session changes a copy read from the store, and an account whose last
// session ends while one of its changes commits is replaced by a new one
// at the next login. load reads the store holding the same lock, so a new
// account reads what every change that took the lock before it committed.
type account struct {
	local string
	bare  xmpp.JID

	// loadOnce loads roster, pending requests and blocklist; loadErr is
	// what it met.
	loadOnce sync.Once
	loadErr  error

	// loaded is set when the data has been read. For an account in the
	// host it is written and read holding the user's lock: a change that
	// finds the account without it knows that the account's load waits
	// for the lock the change holds.
	loaded bool

	// mu guards sessions, and roster, ver, pending and blocked with the
	// user's lock: those four are written holding both locks, so either
	// lock is enough to read them. mu is never held while routing (a
	// route may lock another account) nor across a store call, and is
	// taken after the user's lock and the host's mu, never before them.
	//
	// The roster items are never changed in place: a change publishes a
	// new item, so that a reader may keep an item after releasing mu.
	mu       sync.Mutex
	roster   map[xmpp.JID]*storage.RosterItem
	ver      int64
	pending  map[xmpp.JID][]byte // inbound subscribe stanzas waiting for an answer
	blocked  map[xmpp.JID]bool
	sessions []sessEntry

	// loggedOut is set, under mu, once the last available resource of
	// the account went unavailable and that logout was recorded for
	// XEP-0012; the end of the last session then records nothing more.
	loggedOut bool

	// rosterChanges bounds the account's roster sets and removals
	// (roster_changes_per_minute); guarded by mu. It lives as long as
	// the account has a session: logging in again to empty it costs a
	// full login.
	rosterChanges tokenbucket.Bucket

	// redelivering is set, under mu, while a goroutine delivers the
	// offline messages that a closing session handed back to another
	// session (redeliverOffline); redeliverAgain asks it to run again.
	redelivering, redeliverAgain bool
}

// liveSessions counts the sessions of a that are not closing; a.mu must
// be held.
func (a *account) liveSessions() int {
	n := 0
	for _, e := range a.sessions {
		if !e.s.Closing() {
			n++
		}
	}
	return n
}

// sessEntry is one bound session of an account and what the IM core keeps
// of it. An account has a session or a few, so a slice in bind order costs
// less than a map (a map of one session is 200 bytes) and is as fast to
// search.
type sessEntry struct {
	s  Session
	ss *sessState
}

// stateOf returns what is kept of s, or nil when s is not bound to a;
// a.mu must be held.
func (a *account) stateOf(s Session) *sessState {
	for _, e := range a.sessions {
		if e.s == s {
			return e.ss
		}
	}
	return nil
}

// removeSession removes s and returns its state, or nil when s was not
// bound to a; a.mu must be held.
func (a *account) removeSession(s Session) *sessState {
	for i, e := range a.sessions {
		if e.s == s {
			a.sessions = slices.Delete(a.sessions, i, i+1)
			return e.ss
		}
	}
	return nil
}

// sessState is what the IM core keeps of one session.
type sessState struct {
	presence *etree.Element              // the last available broadcast presence; nil while unavailable
	directed map[xmpp.JID]*etree.Element // who got directed available presence, and which (RFC 6121 §4.6)
	roster   bool                        // asked for the roster: gets roster pushes
	vals     []slotValue                 // the modules' values that were set (SessionValue)
}

// slotValue is one module's value kept with a session. A session has the
// few that its modules set, so a short list costs less than a slot for
// every module (an idle session is 10 KiB in all).
type slotValue struct {
	slot int
	v    any
}

func newAccount(local, host string) *account {
	bare, _ := xmpp.New(local, host, "")
	return &account{local: local, bare: bare}
}

// load reads the user's data once, holding the user's lock: a change that
// is committing (made while the user had no session, or on the account of
// a session that has ended since) finishes first, and the read sees it.
func (a *account) load(h *localHost) error {
	a.loadOnce.Do(func() {
		unlock := h.userLock(a.local)
		defer unlock()
		a.loadErr = a.read(h)
	})
	return a.loadErr
}

// read reads the user's data from the store into a. A copy that a change
// will commit to must be read holding the user's lock.
func (a *account) read(h *localHost) error {
	ctx, cancel := h.router.StoreContext()
	defer cancel()
	roster, ver, pending, blocked, err := h.readUser(ctx, a.local)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.roster, a.ver, a.pending, a.blocked = roster, ver, pending, blocked
	a.loaded = true
	a.mu.Unlock()
	return nil
}

// readUser reads what the IM core keeps of a user from the store.
func (h *localHost) readUser(ctx context.Context, local string) (map[xmpp.JID]*storage.RosterItem, int64, map[xmpp.JID][]byte, map[xmpp.JID]bool, error) {
	items, ver, err := h.store.Roster(ctx, h.name, local)
	if err != nil {
		return nil, 0, nil, nil, err
	}
	// An empty roster, request list or blocklist stays a nil map (most
	// users of a small server have none of some of them): writes go
	// through setIn.
	var roster map[xmpp.JID]*storage.RosterItem
	for i := range items {
		if j, err := xmpp.Parse(items[i].JID); err == nil {
			setIn(&roster, j, &items[i])
		}
	}
	docs, err := h.store.XMLDocs(ctx, h.name, local, kindSubRequest)
	if err != nil {
		return nil, 0, nil, nil, err
	}
	var pending map[xmpp.JID][]byte
	for k, v := range docs {
		if j, err := xmpp.Parse(k); err == nil {
			setIn(&pending, j, v)
		}
	}
	list, err := h.store.BlockList(ctx, h.name, local)
	if err != nil {
		return nil, 0, nil, nil, err
	}
	return roster, ver, pending, parseBlockList(list), nil
}

// parseBlockList turns a stored blocklist into the set isBlocked reads. An
// entry that no longer parses is left out: it can match no sender.
func parseBlockList(list []string) map[xmpp.JID]bool {
	var blocked map[xmpp.JID]bool
	for _, s := range list {
		if j, err := xmpp.Parse(s); err == nil {
			setIn(&blocked, j, true)
		}
	}
	return blocked
}

// setIn sets (*m)[k] to v, making *m first when it is nil.
func setIn[K comparable, V any](m *map[K]V, k K, v V) {
	if *m == nil {
		*m = make(map[K]V)
	}
	(*m)[k] = v
}

// state returns the subscription state of contact; a.mu or the user's
// lock must be held.
func (a *account) state(contact xmpp.JID) (subscription.State, bool) {
	it, ok := a.roster[contact]
	_, pending := a.pending[contact]
	if !ok {
		return subscription.State{PendingIn: pending}, false
	}
	sub, _ := subscription.ParseSub(it.Subscription)
	return subscription.State{Sub: sub, PendingOut: it.Ask, PendingIn: pending || it.PendingIn, Approved: it.Approved}, true
}

// sessionOf returns the session bound to full and its state, or nils;
// a.mu must be held.
func (a *account) sessionOf(full xmpp.JID) (Session, *sessState) {
	for _, e := range a.sessions {
		if e.s.JID() == full {
			return e.s, e.ss
		}
	}
	return nil, nil
}

// isBlocked reports whether a blocks j: its full JID, bare JID, domain or
// domain/resource is on the list (XEP-0191 with XEP-0016's matching). a.mu
// or the user's lock must be held.
func (a *account) isBlocked(j xmpp.JID) bool {
	if len(a.blocked) == 0 || j.IsZero() {
		return false
	}
	if a.blocked[j] || a.blocked[j.Bare()] || a.blocked[j.DomainJID()] {
		return true
	}
	if j.Resource() != "" {
		if dr, err := j.DomainJID().WithResource(j.Resource()); err == nil && a.blocked[dr] {
			return true
		}
	}
	return false
}

// subscribedFrom lists the contacts that receive the user's presence;
// a.mu must be held.
func (a *account) subscribedFrom() []xmpp.JID { return a.contacts("from") }

// subscribedTo lists the contacts whose presence the user receives;
// a.mu must be held.
func (a *account) subscribedTo() []xmpp.JID { return a.contacts("to") }

// contacts lists, sorted, the contacts whose subscription is sub or both.
func (a *account) contacts(sub string) []xmpp.JID {
	var out []xmpp.JID
	for j, it := range a.roster {
		if it.Subscription == sub || it.Subscription == "both" {
			out = append(out, j)
		}
	}
	sort.Slice(out, func(i, k int) bool { return out[i].String() < out[k].String() })
	return out
}

// available returns the sessions with available presence and that
// presence; a.mu must be held.
func (a *account) available() []sessPresence {
	var out []sessPresence
	for _, e := range a.sessions {
		if e.ss.presence != nil {
			out = append(out, sessPresence{e.s, e.ss.presence})
		}
	}
	sort.Slice(out, func(i, k int) bool { return out[i].s.JID().String() < out[k].s.JID().String() })
	return out
}

// interested returns the sessions that asked for the roster (the
// interested resources of RFC 6121 §2.2) and the available ones, in bind
// order; a.mu must be held. The inbound subscription stanzas other than
// subscribe go to them: the RFC asks for the interested resources, and an
// available resource that never asked for the roster has always had them
// too.
func (a *account) interested() []Session {
	var out []Session
	for _, e := range a.sessions {
		if e.ss.roster || e.ss.presence != nil {
			out = append(out, e.s)
		}
	}
	return out
}

// directedTo returns, for each session that sent directed available
// presence to prober's account (its bare JID or any of its resources),
// the last presence it sent there; only the session bound to probed when
// probed is a full JID. a.mu must be held.
func (a *account) directedTo(prober, probed xmpp.JID) []sessPresence {
	var out []sessPresence
	for _, e := range a.sessions {
		if probed.Resource() != "" && e.s.JID() != probed {
			continue
		}
		// The presence sent to the prober itself, else to its bare JID,
		// else to the first of its resources.
		var last *etree.Element
		var lastJ xmpp.JID
		for j, p := range e.ss.directed {
			if j.Bare() == prober.Bare() && (last == nil || closer(j, lastJ, prober)) {
				last, lastJ = p, j
			}
		}
		if last != nil {
			out = append(out, sessPresence{e.s, last})
		}
	}
	return out
}

// closer reports whether j names prober more closely than k does: the
// same JID, then its bare JID, then the first in JID order.
func closer(j, k, prober xmpp.JID) bool {
	rank := func(x xmpp.JID) int {
		switch x {
		case prober:
			return 0
		case prober.Bare():
			return 1
		}
		return 2
	}
	if rj, rk := rank(j), rank(k); rj != rk {
		return rj < rk
	}
	return j.String() < k.String()
}

type sessPresence struct {
	s        Session
	presence *etree.Element
}

// userData returns, for reading, the account of an online user, loaded,
// or, for a user with no session, a fresh copy read from the store (nil
// when the user has no account). An offline copy is not kept, and it is
// read without the user's lock: a reader must not wait for a commit, and
// sees the store as it was before it or after it. A change uses lockUser.
func (h *localHost) userData(local string) *account {
	if a := h.online(local); a != nil {
		if err := a.load(h); err != nil {
			h.log.Error("local: load user", "user", local, "err", err)
			return nil
		}
		return a
	}
	if !h.exists(local) {
		return nil
	}
	a := newAccount(local, h.name)
	if err := a.read(h); err != nil {
		h.log.Error("local: load user", "user", local, "err", err)
		return nil
	}
	return a
}

// userMutex is the lock of one user's data, in the host's table while
// anyone holds it or waits for it.
type userMutex struct {
	sync.Mutex
	refs int // holders and waiters; guarded by the host's locksMu
}

// userLock takes the lock that serialises the changes of the user's
// roster, pending requests and blocklist with each other and with the
// load of the user's account, and returns the function that releases it.
// Each user has a lock of their own, made when first wanted and dropped
// when nobody wants it, so that nobody waits for another user's commit;
// and no holder takes a second one, so these locks cannot deadlock each
// other.
func (h *localHost) userLock(local string) (unlock func()) {
	h.locksMu.Lock()
	l := h.locks[local]
	if l == nil {
		l = &userMutex{}
		h.locks[local] = l
	}
	l.refs++
	h.locksMu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		h.locksMu.Lock()
		if l.refs--; l.refs == 0 {
			delete(h.locks, local)
		}
		h.locksMu.Unlock()
	}
}

// lockUser takes the user's lock and returns what a change of the user's
// roster, pending requests or blocklist reads and publishes to: the
// account of the online user, or, for a user with no session, a copy read
// from the store, which the change commits to and which is then dropped.
// unlock releases the lock; it must be called before routing anything,
// since routing may change another user, whose change may route back to
// this one and want this lock. It returns nil, holding nothing, when the
// user has no account or the store cannot be read.
//
// An account not loaded yet is that of a user who is logging in, and its
// load waits for this lock: the change works on a copy too, and the load
// then reads what the change committed. The account's sessions miss
// nothing: their binds have not returned, so they cannot have asked for
// the roster nor sent presence.
func (h *localHost) lockUser(local string) (a *account, unlock func()) {
	unlock = h.userLock(local)
	if a := h.online(local); a != nil && a.loaded {
		return a, unlock
	}
	if !h.exists(local) {
		unlock()
		return nil, nil
	}
	a = newAccount(local, h.name)
	if err := a.read(h); err != nil {
		unlock()
		h.log.Error("local: load user", "user", local, "err", err)
		return nil, nil
	}
	return a, unlock
}

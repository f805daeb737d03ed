package local

import (
	"context"
	"fmt"
	"github.com/parley-im/parley/conf"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// Module is a feature of local hosts (Prosody's modules, ejabberd's
// gen_mod): a package of its own registers it from its init function with
// RegisterModule, and the binary imports the package (cmd/parley and
// parleytest import the standard list, package server/std). The core
// names no module. docs/ARCHITECTURE.md has a worked example.
type Module struct {
	// Name is the module's name, unique among modules: "ping", "carbons".
	Name string
	// Start registers the module's handlers on one local host. It runs
	// once per local host, in New, before the server listens; an error
	// stops New.
	Start func(h *Host) error
}

var modules struct {
	sync.Mutex
	byName map[string]Module
}

// RegisterModule makes m start on every local host of every server built
// after it. It is meant for init functions: an empty name, a nil Start or
// a second module of the same name is a mistake in the code, and panics,
// as database/sql.Register does.
func RegisterModule(m Module) {
	modules.Lock()
	defer modules.Unlock()
	switch {
	case m.Name == "":
		panic("server: RegisterModule: a module without a name")
	case m.Start == nil:
		panic("server: RegisterModule: module " + m.Name + " has no Start")
	case modules.byName[m.Name].Start != nil:
		panic("server: RegisterModule: a second module named " + m.Name)
	}
	if modules.byName == nil {
		modules.byName = make(map[string]Module)
	}
	modules.byName[m.Name] = m
}

// Modules returns the names of the registered modules, sorted.
func Modules() []string {
	modules.Lock()
	defer modules.Unlock()
	names := make([]string, 0, len(modules.byName))
	for n := range modules.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// startModules starts every registered module on h, in the order of their
// names (so that handlers of equal priority run in an order that does not
// depend on the order of imports).
func (h *localHost) startModules() error {
	modules.Lock()
	list := make([]Module, 0, len(modules.byName))
	for _, m := range modules.byName {
		list = append(list, m)
	}
	modules.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	for _, m := range list {
		if err := m.Start(&Host{lh: h, module: m.Name}); err != nil {
			return fmt.Errorf("module %s on %s: %w", m.Name, h.name, err)
		}
	}
	h.slotSet = make([]atomic.Int64, h.slots)
	return nil
}

// Host is what a module gets of one local host: where to register its
// handlers, and the few things of the host it may use. A module keeps it
// for its handlers; its methods are safe for concurrent use once the
// server runs, except the registering ones (Hook, HandleIQ, Feature),
// which are for Start alone.
type Host struct {
	lh     *localHost
	module string
}

// Name is the host's domain.
func (h *Host) Name() string { return h.lh.name }

// Logger returns the host's logger, with the module named.
func (h *Host) Logger() *slog.Logger { return h.lh.log.With("module", h.module) }

// Hook registers fn at point p for stanzas of kind (message, presence or
// iq). Higher priorities run first; the core's own rule for the point
// runs after every handler (see Point).
func (h *Host) Hook(p Point, kind xmpp.Kind, priority int, fn StanzaHandler) {
	h.lh.pipe.add(p, kind, priority, h.module, fn, true)
}

// Observe is Hook for a handler that never changes the stanza it gets
// (it may keep it, and queue it later with Queue). At ToClient a stanza
// for several sessions is one element: with a Hook there, each session
// gets a copy; with observers alone, none is made.
func (h *Host) Observe(p Point, kind xmpp.Kind, priority int, fn StanzaHandler) {
	h.lh.pipe.add(p, kind, priority, h.module, fn, false)
}

// HandleNonza registers fn for what a session of the host sends at the
// top level that is not a stanza, named local in namespace ns
// (XEP-0352's <inactive xmlns='urn:xmpp:csi:0'/>). fn runs on the
// session's goroutine, before it reads on, and must not block. For Start
// alone; a nil handler or a second one for a name panics.
func (h *Host) HandleNonza(ns, local string, fn func(s Session, el *etree.Element)) {
	k := [2]string{ns, local}
	switch {
	case fn == nil:
		panic(fmt.Sprintf("server: module %s: nil nonza handler for {%s}%s", h.module, ns, local))
	case h.lh.nonzas[k] != nil:
		panic(fmt.Sprintf("server: module %s: a second handler for {%s}%s", h.module, ns, local))
	}
	if h.lh.nonzas == nil {
		h.lh.nonzas = make(map[[2]string]func(Session, *etree.Element))
	}
	h.lh.nonzas[k] = fn
}

// BeforeAck registers fn to run before the server acknowledges what the
// session s sent (XEP-0198's <a h/>, <resumed h/>), on the session's
// goroutine: what the module promised to do with those stanzas (commit
// them to the archive) is done when fn returns. fn may wait for the
// disk, not for the network. For Start alone.
func (h *Host) BeforeAck(fn func(s Session)) {
	if fn == nil {
		panic(fmt.Sprintf("server: module %s: nil BeforeAck handler", h.module))
	}
	h.lh.beforeAck = append(h.lh.beforeAck, fn)
}

// InlineFeature offers ns among the features a client may enable inline
// in a Bind2 request (XEP-0386 §2.2): an element of ns there goes to the
// module's HandleInline handler for it, or else its HandleNonza handler,
// once the session is bound and before the client hears of it. For Start
// alone.
func (h *Host) InlineFeature(ns string) {
	h.lh.inlineFeatures = append(h.lh.inlineFeatures, ns)
}

// HandleInline registers fn for an element that is valid only inline in
// a Bind2 request (XEP-0280's <enable/> there, where it has no iq around
// it), named local in namespace ns; InlineFeature offers ns. For Start
// alone; a nil handler or a second one for a name panics.
func (h *Host) HandleInline(ns, local string, fn func(s Session, el *etree.Element)) {
	k := [2]string{ns, local}
	switch {
	case fn == nil:
		panic(fmt.Sprintf("server: module %s: nil inline handler for {%s}%s", h.module, ns, local))
	case h.lh.inlines[k] != nil:
		panic(fmt.Sprintf("server: module %s: a second inline handler for {%s}%s", h.module, ns, local))
	}
	if h.lh.inlines == nil {
		h.lh.inlines = make(map[[2]string]func(Session, *etree.Element))
	}
	h.lh.inlines[k] = fn
}

// OnDetach registers fn for the moment a session of the host detaches
// (XEP-0198: its connection is gone, and it stays bound waiting for a
// resume), with the stanzas it holds that its client has not
// acknowledged, in order; they are shared and must not be changed. fn
// runs on the session's goroutine and must not block. For Start alone.
func (h *Host) OnDetach(fn func(s Session, pending []*xmpp.Stanza)) {
	if fn == nil {
		panic(fmt.Sprintf("server: module %s: nil detach handler", h.module))
	}
	h.lh.detached = append(h.lh.detached, fn)
}

// OnOffline registers fn for each message the core has stored for a user
// with no available resource (RFC 6121 §8.5.2.2.1, and what a closing
// session hands back), once the store took it: what the store refused
// (the offline quota) was bounced instead and never reaches fn. Push
// notifications for an account with no session use it (XEP-0357). The
// stanza is the stored one and must not be changed; fn runs on the
// goroutine that stored it and must not block. For Start alone.
func (h *Host) OnOffline(fn func(st *xmpp.Stanza)) {
	if fn == nil {
		panic(fmt.Sprintf("server: module %s: nil offline handler", h.module))
	}
	h.lh.offline = append(h.lh.offline, fn)
}

// StreamFeature announces el among the stream features a client gets
// after it logged in (XEP-0352's <csi/>). For Start alone.
func (h *Host) StreamFeature(el *etree.Element) {
	h.lh.features = append(h.lh.features, el)
}

// HandleIQ registers fn for iqs of type typ ("get" or "set") whose payload
// is <local xmlns=ns/>, addressed to the host's domain (p is ToHost) or to
// a user's bare JID, the server answering for the account (p is ToBare;
// RFC 6121 §8.5.2.1.3). An iq nobody handles gets <service-unavailable/>.
// feature, when not empty, is listed in the disco#info of what p
// addresses, and, for ToBare, of the host too (clients look for what
// their server does for their account there: XEP-0191 §2, XEP-0054).
// A nil handler, another point, or a second handler for the same iqs is
// a mistake found at start: it panics.
func (h *Host) HandleIQ(p Point, typ, ns, local, feature string, fn IQHandler) {
	switch p {
	case ToHost:
		h.lh.server.handle(typ, ns, local, feature, fn)
	case ToBare:
		h.lh.account.handle(typ, ns, local, feature, fn)
	default:
		panic(fmt.Sprintf("server: module %s: iq handlers are for ToHost or ToBare, not %v", h.module, p))
	}
}

// Feature lists ns in the host's disco#info for a behaviour of the module
// that has no iq of its own (XEP-0160's msgoffline, say). Features of iqs
// come with HandleIQ.
func (h *Host) Feature(ns string) { h.lh.server.feature(ns) }

// AccountFeature lists ns in the disco#info of every user's bare JID (and
// so of the host, which speaks for its accounts) for a behaviour of the
// module there that has no iq of its own (XEP-0163 §6.1's PEP features).
// For Start alone.
func (h *Host) AccountFeature(ns string) { h.lh.account.feature(ns) }

// AccountIdentity adds an identity to the disco#info of every user's bare
// JID, after account/registered (XEP-0163 §6.1: pubsub/pep). For Start
// alone.
func (h *Host) AccountIdentity(category, typ string) {
	h.lh.account.identities = append(h.lh.account.identities, [2]string{category, typ})
}

// Route sends st on its way, as if the server sent it: its from must be
// set (a JID of this host).
func (h *Host) Route(st *xmpp.Stanza) { h.lh.router.Route(st) }

// Bounce answers st with e, unless st is an error or an answer itself.
func (h *Host) Bounce(st *xmpp.Stanza, e *xmpp.StanzaError) { h.lh.router.Bounce(st, e) }

// Go runs fn in a goroutine of its own while the server runs (the
// archive's retention sweep): ctx ends at Shutdown, which waits for fn
// to return before it closes the store. Safe from Start on.
func (h *Host) Go(fn func(ctx context.Context)) { h.lh.router.Go(fn) }

// Deliver queues st on the session s of this host, through ToClient and
// the slow-consumer policy (a full queue bounces st to its sender).
func (h *Host) Deliver(s Session, st *xmpp.Stanza) { h.lh.deliver(s, st) }

// Queue queues st on s past the ToClient handlers, through the
// slow-consumer policy: for a handler at ToClient that held st and lets
// it go now.
func (h *Host) Queue(s Session, st *xmpp.Stanza) { h.lh.router.Deliver(s, st) }

// Sessions returns the bound sessions of the user local, in bind order;
// the slice is the caller's.
func (h *Host) Sessions(local string) []Session { return h.lh.sessions(local) }

// Store returns the host's store: a module declares the small interface
// it needs and asserts it (the store of a running server is a
// *storage.Store).
func (h *Host) Store() any { return h.lh.store }

// Services returns the domains of the server's service hosts (bots,
// components), for disco#items.
func (h *Host) Services() []string { return append([]string(nil), h.lh.services...) }

// Refused counts a refusal by the per-account limit whose [limits] key is
// key (parley_limit_refusals_total), and logs it, once a minute per limit,
// with args as slog attributes.
func (h *Host) Refused(key string, args ...any) {
	n, _ := h.lh.counters.refused.LoadOrStore(key, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
	h.lh.logLimit(key, args...)
}

// StoredLimits bound what a module parses back from the store: at least
// what the config let a client send, with room for what the server adds.
func (h *Host) StoredLimits() xmpp.Limits { return h.lh.stored }

// Config returns the server's config, as checked: a module reads the
// keys it uses (and should say which in its doc comment).
func (h *Host) Config() *conf.Config { return h.lh.cfg }

// Options returns the host's options (its [[host]] table), as checked.
func (h *Host) Options() *LocalOptions { return h.lh.opts }

// Started returns when the server was built, for its uptime (XEP-0012 §6).
func (h *Host) Started() time.Time { return h.lh.started }

// SessionCount returns how many sessions the user local has bound,
// without the copy Sessions makes: a handler on every message asks it
// first.
func (h *Host) SessionCount(local string) int {
	a := h.lh.online(local)
	if a == nil {
		return 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.sessions)
}

// Recipient returns the session bound to the full JID full that can still
// take stanzas (not closing), or nil.
func (h *Host) Recipient(full xmpp.JID) Session {
	return h.lh.online(full.Local()).recipient(full)
}

// SessionValue is a module's value of type T kept with each session bound
// to its host (Prosody's session.want_carbons): the zero T until the
// module sets it, gone when the session unbinds. Make one per module and
// meaning with NewSessionValue in Start; Get and Set are safe for
// concurrent use.
type SessionValue[T any] struct {
	lh   *localHost
	slot int
}

// NewSessionValue makes a per-session value for the module of h. For
// Start alone.
func NewSessionValue[T any](h *Host) SessionValue[T] {
	v := SessionValue[T]{lh: h.lh, slot: h.lh.slots}
	h.lh.slots++
	return v
}

// Any reports whether some bound session of the host may have a value:
// false means none has, and a handler can skip its work without a
// lookup per session (nobody enabled carbons, say).
func (v SessionValue[T]) Any() bool {
	return v.slot >= len(v.lh.slotSet) || v.lh.slotSet[v.slot].Load() > 0
}

// Get returns the value kept with s: the zero T when none was set or s is
// not bound to the host.
func (v SessionValue[T]) Get(s Session) T {
	var zero T
	if v.slot < len(v.lh.slotSet) && v.lh.slotSet[v.slot].Load() == 0 {
		// No bound session has one: no lock on the way of a delivery.
		return zero
	}
	a := v.lh.online(s.JID().Local())
	if a == nil {
		return zero
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	ss := a.stateOf(s)
	if ss == nil {
		return zero
	}
	for _, sv := range ss.vals {
		if sv.slot == v.slot {
			return sv.v.(T)
		}
	}
	return zero
}

// Set keeps val with s, and reports false when s is not bound to the host
// (it ended meanwhile: nothing is kept).
func (v SessionValue[T]) Set(s Session, val T) bool {
	a := v.lh.online(s.JID().Local())
	if a == nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	ss := a.stateOf(s)
	if ss == nil {
		return false
	}
	for i := range ss.vals {
		if ss.vals[i].slot == v.slot {
			ss.vals[i].v = val
			return true
		}
	}
	ss.vals = append(ss.vals, slotValue{v.slot, val})
	if v.slot < len(v.lh.slotSet) {
		v.lh.slotSet[v.slot].Add(1)
	}
	return true
}

// HostValue is a value a module keeps on each local host for the host's
// other modules to find: CSI's per-session state, which push reads;
// private XML's bridges, which PEP sets. It lives and dies with its host,
// so servers in one process (tests) never see each other's, as they would
// in a package-level map. Make one per use at package level with
// NewHostValue.
type HostValue[T any] struct {
	key *byte
}

// NewHostValue makes a key for a value per host. Call it once, at package
// level.
func NewHostValue[T any]() HostValue[T] { return HostValue[T]{key: new(byte)} }

// Set keeps x on the host of h.
func (v HostValue[T]) Set(h *Host, x T) { h.lh.values.Store(v.key, x) }

// Get returns the value kept on the host of h, and whether there is one.
func (v HostValue[T]) Get(h *Host) (T, bool) {
	x, ok := h.lh.values.Load(v.key)
	if !ok {
		var zero T
		return zero, false
	}
	return x.(T), true
}

// GetOrSet returns the value kept on the host of h, keeping x there first
// when there is none: modules start in the order of their names, and the
// first of two to need a shared value makes it.
func (v HostValue[T]) GetOrSet(h *Host, x T) T {
	got, _ := h.lh.values.LoadOrStore(v.key, x)
	return got.(T)
}

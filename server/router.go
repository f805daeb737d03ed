package server

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// Handler serves every stanza addressed to one domain: a local host, or a
// component (an HTTP bot domain, a MUC service, an external component).
// HandleStanza must not block on the network or on a slow peer: it
// queues, answers or drops.
type Handler interface {
	HandleStanza(st *xmpp.Stanza)
}

// Session is what the router needs of a bound client session.
type Session interface {
	JID() xmpp.JID
	// Deliver queues el without blocking; false means the queue is full
	// or the session is closing.
	Deliver(el *etree.Element) bool
	// Closing reports whether the session is ending.
	Closing() bool
	// Close ends the session with a stream error after its queue drains.
	Close(e *xmpp.StreamError)
	Available() bool
	// Priority is the priority of the last available presence; an
	// unavailable one keeps it.
	Priority() int
	SetPresence(available bool, priority int)
}

// Remote takes the stanzas for domains no host of this server serves:
// federation (package s2s). RouteRemote must not block: it queues,
// bounces or drops.
type Remote interface {
	RouteRemote(st *xmpp.Stanza)
}

// Router decides where each stanza goes by the domain of its to: a local
// host, a component, or a remote server (Remote, when federation runs).
// Its host table is built once by New and never changes, so routing takes
// no lock.
type Router struct {
	hosts map[string]Handler
	// remote, when set (before the first stanza, like the hosts), gets
	// what no host serves; nil bounces it.
	remote Remote
	log    *slog.Logger
	// ctx is the server's lifetime: Shutdown cancels it once the
	// sessions are gone, ending what handlers still wait for. Nil in
	// tests that build a Router alone (then it never ends).
	ctx context.Context
	// tasks are the host types' and modules' background work (Go):
	// Shutdown waits for them after cancelling ctx, before the store
	// closes. stopped, under tasksMu, is set before that wait: a task
	// asked for later (a session that ended past Shutdown's deadline
	// hands its queue back, and push wants to notify) is not started,
	// since the store it would use is closing.
	tasksMu sync.Mutex
	stopped bool
	tasks   sync.WaitGroup

	// slowConsumers counts stanzas refused by full session queues.
	slowConsumers atomic.Int64
}

// Go runs fn in a goroutine of its own for as long as the server runs
// (a retention sweep, say): ctx ends at Shutdown, which waits for fn to
// return before it closes the store, so that fn never meets a closed
// store or logs after the server stopped. Once Shutdown waits for the
// tasks, fn is not run at all.
func (r *Router) Go(fn func(ctx context.Context)) {
	ctx := r.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	r.tasksMu.Lock()
	defer r.tasksMu.Unlock()
	if r.stopped {
		return
	}
	r.tasks.Add(1)
	go func() {
		defer r.tasks.Done()
		fn(ctx)
	}()
}

// waitTasks stops Go from starting tasks and waits for those it started.
func (r *Router) waitTasks() {
	r.tasksMu.Lock()
	r.stopped = true
	r.tasksMu.Unlock()
	r.tasks.Wait()
}

// Route delivers st. Its from must already be stamped by whoever accepted
// it (a c2s session, a component). A stanza without to is handled by the
// sender's own host on behalf of the sender's account (RFC 6120 §10.3).
func (r *Router) Route(st *xmpp.Stanza) {
	domain := st.To.Domain()
	if st.To.IsZero() {
		domain = st.From.Domain()
	}
	h, ok := r.hosts[domain]
	if !ok {
		if r.remote != nil {
			r.remote.RouteRemote(st)
			return
		}
		r.Bounce(st, xmpp.NewStanzaError(xmpp.RemoteServerNotFound, "this server does not federate with "+domain))
		return
	}
	h.HandleStanza(st)
}

// FanOutHost is a handler that takes a room's messages to its users
// several at once (the local type): the messages of type groupchat that
// a multi-user chat room sends each to one full JID of the handler's
// domain. HandleFanOut must apply to each what HandleStanza would, in
// order; being handed them together lets it skip what one stanza at a
// time repeats.
type FanOutHost interface {
	Handler
	HandleFanOut(sts []*xmpp.Stanza)
}

// RouteFanOut routes sts, in order, as Route would each. A run of
// messages of type groupchat to full JIDs of one domain whose host is a
// [FanOutHost] goes to that host at once: a room's message to its
// occupants is one call per domain, not one per occupant.
func (r *Router) RouteFanOut(sts []*xmpp.Stanza) {
	for i := 0; i < len(sts); {
		st := sts[i]
		var fh FanOutHost
		ok := roomMessage(st)
		if ok {
			fh, ok = r.hosts[st.To.Domain()].(FanOutHost)
		}
		if !ok {
			r.Route(st)
			i++
			continue
		}
		j := i + 1
		for j < len(sts) && roomMessage(sts[j]) && sts[j].To.Domain() == st.To.Domain() {
			j++
		}
		fh.HandleFanOut(sts[i:j])
		i = j
	}
}

// roomMessage reports whether st is what RouteFanOut hands a FanOutHost:
// a groupchat message to a full JID.
func roomMessage(st *xmpp.Stanza) bool {
	return st.Kind == xmpp.KindMessage && st.Type == "groupchat" && st.To.Local() != "" && st.To.Resource() != ""
}

// Bounce answers st with the error e, unless st is itself an error or an
// answer (RFC 6120 §8.3.1: no error answers an error), or a presence of a
// kind that is never answered.
func (r *Router) Bounce(st *xmpp.Stanza, e *xmpp.StanzaError) {
	if st.IsError() || st.From.IsZero() {
		return
	}
	switch st.Kind {
	case xmpp.KindIQ:
		if st.Type == "result" {
			return
		}
	case xmpp.KindPresence:
		if st.Type == "unavailable" || st.Type == "probe" {
			return
		}
	}
	reply := st.ErrorReply(e)
	if reply.From.IsZero() {
		reply.SetFrom(st.From.DomainJID())
	}
	r.Route(reply)
}

// Deliver is the one slow-consumer policy: a session whose queue is full
// does not get st, and the sender learns it with <resource-constraint/>.
// Nothing blocks and nothing is dropped without the sender knowing,
// except error stanzas, which are never answered. A client that stays
// stuck is closed by its writer's deadline.
//
// A session that is closing is not a slow consumer: st goes where it
// would go had the session gone a moment earlier (undelivered), like
// what the session queued but will never write.
func (r *Router) Deliver(s Session, st *xmpp.Stanza) {
	if s.Deliver(st.El) {
		return
	}
	if s.Closing() {
		r.Undelivered(s, st)
		return
	}
	if n := r.slowConsumers.Add(1); n&(n-1) == 0 {
		// Log at powers of two: visible, but never a flood.
		r.log.Warn("router: session queue full, stanza bounced", "jid", s.JID().String(), "total", n)
	}
	r.Bounce(st, xmpp.NewStanzaError(xmpp.ResourceConstraint, "the recipient is not reading its stream"))
}

// Undelivered hands st, which the closing session s refused or will never
// write, to the host of s ([SessionHost]). The host's lookups skip closing
// sessions, so st cannot come back to s; it can come to another session of
// the user that starts closing meanwhile, and so recurse once per such
// session at most.
func (r *Router) Undelivered(s Session, st *xmpp.Stanza) {
	if h, ok := r.hosts[s.JID().Domain()].(SessionHost); ok {
		h.Undelivered(s, st)
	}
}

// MayExist reports whether j may be an account: false only for a JID of
// a host that has accounts ([AccountHost]) and no such one. It may read
// the store, so it is for subscription requests, not for routing.
func (r *Router) MayExist(j xmpp.JID) bool {
	h, ok := r.hosts[j.Domain()].(AccountHost)
	if !ok || j.Local() == "" {
		return true
	}
	return h.MayExist(j.Local())
}

// AnswersPresence reports whether j is served by a host that answers
// presence for its JIDs itself ([PresenceAnswerer]), like a bot domain.
func (r *Router) AnswersPresence(j xmpp.JID) bool {
	p, ok := r.hosts[j.Domain()].(PresenceAnswerer)
	return ok && p.AnswersPresence()
}

// handlerTimeout bounds what one handler may wait for the store.
const handlerTimeout = 10 * time.Second

// StoreContext returns a context for one handler's or one delivery's work
// with the store: it ends with the server, or after handlerTimeout.
func (r *Router) StoreContext() (context.Context, context.CancelFunc) {
	base := r.ctx
	if base == nil {
		base = context.Background()
	}
	return context.WithTimeout(base, handlerTimeout)
}

// NewRouter returns a router with no hosts; SetHost adds them. A server
// builds its own (New); this is for tests of a host type alone.
func NewRouter(log *slog.Logger) *Router {
	return &Router{hosts: make(map[string]Handler), log: log}
}

// SetHost makes h serve domain. The host table is read without a lock:
// every SetHost comes before the first stanza is routed.
func (r *Router) SetHost(domain string, h Handler) { r.hosts[domain] = h }

// SetRemote makes rem take the stanzas for domains no host serves. Like
// SetHost, it comes before the first stanza is routed.
func (r *Router) SetRemote(rem Remote) { r.remote = rem }

// Serves reports whether domain is served by a host of this server.
func (r *Router) Serves(domain string) bool {
	_, ok := r.hosts[domain]
	return ok
}

// SlowConsumers returns how many stanzas full queues refused so far.
func (r *Router) SlowConsumers() int64 { return r.slowConsumers.Load() }

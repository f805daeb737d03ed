package local

import (
	"fmt"
	"slices"

	"github.com/parley-im/parley/xmpp"
)

// Point names a place in a stanza's way through a local host where
// handlers run. The way, in order (docs/ARCHITECTURE.md draws it):
//
//	a client sends:   block check (XEP-0191 §3.5) → FromClient → the core:
//	                  presence by RFC 6121 §3–4, anything else routed
//	router:           by the domain of to, to a host
//	to the domain:    ToHost → the core: iqs by the host's iq handlers,
//	                  messages refused
//	to a user:        block check (XEP-0191) → ToBare or ToFull → the
//	                  core: RFC 6121 §8.5 (iqs to a bare JID by the
//	                  account's iq handlers)
//	to a session:     ToClient → the session's queue
//
// At each point the handlers run by descending priority, then the core's
// own rule, unless a handler returned true (it dealt with the stanza).
// Handlers of equal priority run in the order they were added.
//
// What the core does at one point does not run the handlers of another
// again: a message to a resource that is gone falls back to the bare
// JID's rule (§8.5.3.2.1) without running ToBare, so a module that acts
// on both (carbons, archive) sees each stanza once. Offline messages sent
// at login do not pass ToClient: they passed ToBare when they arrived.
type Point uint8

// The points of the pipeline, in the order a stanza meets them.
const (
	// FromClient: a stanza a local user's session sent, its from
	// stamped with the session's full JID, before it is routed
	// (ejabberd's user_send_packet). The session is the sender.
	FromClient Point = iota
	// ToHost: a stanza addressed to the domain of a local host itself
	// (Prosody's message/host, iq/host).
	ToHost
	// ToBare: a stanza to a local user's bare JID, or one a user sent
	// without to (RFC 6120 §10.3), that the user's block list let
	// through (Prosody's message/bare, presence/bare).
	ToBare
	// ToFull: a stanza to a local user's full JID that the block list
	// let through (Prosody's message/full).
	ToFull
	// ToClient: a stanza about to be queued on a local session
	// (ejabberd's user_receive_packet). The session is the recipient.
	ToClient

	numPoints
)

var pointNames = [numPoints]string{"FromClient", "ToHost", "ToBare", "ToFull", "ToClient"}

// String names the point as the package does: "ToBare".
func (p Point) String() string {
	if p < numPoints {
		return pointNames[p]
	}
	return fmt.Sprintf("Point(%d)", p)
}

// StanzaHandler acts on a stanza at a point of the pipeline. s is the
// session the stanza comes from (FromClient) or goes to (ToClient); nil
// at the other points. It returns true when it dealt with the stanza:
// then the handlers after it and the core's rule for the point do not
// run. It must not block on the network or on a slow peer (it runs on
// the sender's goroutine): it queues, answers, copies or drops. It may
// change st only by what its point allows: adding a payload (a stanza-id,
// say) before delivery is fine, readdressing is not; to send something
// else, it routes a new stanza.
type StanzaHandler func(s Session, st *xmpp.Stanza) (handled bool)

// hook is one registered StanzaHandler.
type hook struct {
	priority int
	module   string
	fn       StanzaHandler
}

// pipeline holds a host's stanza handlers by point and kind, each list by
// descending priority. It is built before the server starts and read
// without a lock after.
type pipeline struct {
	hooks [numPoints][xmpp.KindIQ + 1][]hook
	// changes is set for a point and kind when a handler there may change
	// the stanza (Hook, not Observe): at ToClient each session then gets
	// its own copy.
	changes [numPoints][xmpp.KindIQ + 1]bool
}

// add registers fn. A nil handler, an unknown point or a stanza kind that
// is not message, presence or iq is a mistake in the module's code, found
// at start: it panics. changes says fn may change the stanza.
func (p *pipeline) add(pt Point, kind xmpp.Kind, priority int, module string, fn StanzaHandler, changes bool) {
	switch {
	case fn == nil:
		panic(fmt.Sprintf("server: module %s: nil handler for %v %v", module, pt, kind))
	case pt >= numPoints:
		panic(fmt.Sprintf("server: module %s: no such point %v", module, pt))
	case kind != xmpp.KindMessage && kind != xmpp.KindPresence && kind != xmpp.KindIQ:
		panic(fmt.Sprintf("server: module %s: a handler at %v for stanza kind %v", module, pt, kind))
	}
	p.changes[pt][kind] = p.changes[pt][kind] || changes
	list := append(p.hooks[pt][kind], hook{priority, module, fn})
	// Stable: equal priorities keep the order they were added in.
	slices.SortStableFunc(list, func(a, b hook) int { return b.priority - a.priority })
	p.hooks[pt][kind] = list
}

// run runs the handlers of pt for st's kind and reports whether one dealt
// with it. With no handlers it costs a length test. (st.Kind is at most
// KindIQ: xmpp.NewStanza makes no other.)
func (p *pipeline) run(pt Point, s Session, st *xmpp.Stanza) bool {
	for _, h := range p.hooks[pt][st.Kind] {
		if h.fn(s, st) {
			return true
		}
	}
	return false
}

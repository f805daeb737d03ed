// Package csi is the module of Client State Indication (XEP-0352): while a
// client says it is inactive (a phone in a pocket), what it need not see
// at once waits on the server, so that the phone's radio wakes for what
// matters only.
//
// What waits: presence updates, chat states and other messages without
// content for the user (receipts, markers, headlines), each stamped with
// the time it arrived (XEP-0203). What goes out at once: a message with a
// body or a subject, an error, an invitation, a call, a carbon of what the
// user sent, and subscription requests; and when one goes, what waited
// goes with it, first, in the order it came (the radio is awake anyway,
// and the client sees the conversation in order). Presence and chat states
// are coalesced: only the latest of each contact's resource waits. What
// waited goes out when the client says it is active, or when 256 wait
// (Prosody's csi_simple queue size).
package csi

import (
	"sync"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/xmpp"
)

// Namespaces of the module.
const (
	// NS is XEP-0352's namespace, of its stream feature and nonzas.
	NS = "urn:xmpp:csi:0"
	// nsChatStates is XEP-0085's.
	nsChatStates = "http://jabber.org/protocol/chatstates"
	nsCarbons    = "urn:xmpp:carbons:2"
	nsForward    = "urn:xmpp:forward:0"
	nsDelay      = "urn:xmpp:delay"
)

// MaxHeld is how many stanzas wait for one inactive session before they
// all go out.
const MaxHeld = 256

// Priority runs the module's ToClient observers after the others': what a
// module adds to a stanza (a stanza-id) is there when it is held.
const Priority = -100

func init() {
	local.RegisterModule(local.Module{Name: "csi", Start: start})
}

type module struct {
	h     *local.Host
	state local.SessionValue[*state]
}

// modules are the module's instances, one per host: Inactive finds a
// host's there.
var modules = local.NewHostValue[*module]()

// state is one session's: whether it is inactive, how many times it
// became so, and what waits.
type state struct {
	mu       sync.Mutex
	inactive bool
	times    uint64
	held     []held
}

// Inactive reports whether the session s of the local host h said it is
// inactive (and not active since), and how many times it became inactive
// so far: a module that acts once per spell of inactivity (a push
// notification, XEP-0357) tells one spell from the next by it. It is
// false, 0 on a host that does not run the module.
func Inactive(h *local.Host, s local.Session) (inactive bool, times uint64) {
	m, ok := modules.Get(h)
	if !ok {
		return false, 0
	}
	st := m.state.Get(s)
	if st == nil {
		return false, 0
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.inactive, st.times
}

// held is a stanza that waits, and the key of what replaces it ("" for
// none).
type held struct {
	key string
	st  *xmpp.Stanza
}

func start(h *local.Host) error {
	m := &module{h: h, state: local.NewSessionValue[*state](h)}
	modules.Set(h, m)
	h.StreamFeature(xmpp.NewElementNS(NS, "csi"))
	h.HandleNonza(NS, "inactive", func(s local.Session, _ *etree.Element) { m.set(s, true) })
	h.HandleNonza(NS, "active", func(s local.Session, _ *etree.Element) { m.set(s, false) })
	// Bind2 (XEP-0386 §2.2): the session may start in either state.
	h.InlineFeature(NS)
	h.Observe(local.ToClient, xmpp.KindMessage, Priority, m.filter)
	h.Observe(local.ToClient, xmpp.KindPresence, Priority, m.filter)
	return nil
}

// set records the client's state; becoming active lets everything that
// waits go.
func (m *module) set(s local.Session, inactive bool) {
	st := m.state.Get(s)
	if st == nil {
		if !inactive {
			return
		}
		st = &state{}
		if !m.state.Set(s, st) {
			return
		}
	}
	st.mu.Lock()
	if inactive && !st.inactive {
		st.times++
	}
	st.inactive = inactive
	var out []held
	if !inactive {
		out = st.take()
	}
	st.mu.Unlock()
	m.release(s, out)
}

// filter holds what an inactive session need not get now, and lets what
// waited go ahead of what it must get.
func (m *module) filter(s local.Session, stanza *xmpp.Stanza) bool {
	st := m.state.Get(s)
	if st == nil {
		return false
	}
	key, hold := classify(stanza)
	st.mu.Lock()
	if !st.inactive {
		st.mu.Unlock()
		return false
	}
	if !hold {
		out := st.take()
		st.mu.Unlock()
		m.release(s, out)
		return false
	}
	// The stanza may be shared with other sessions: what waits is a copy,
	// stamped with when it came.
	c := stanza.Copy()
	d := c.El.CreateElement("delay")
	d.CreateAttr("xmlns", nsDelay)
	d.CreateAttr("from", m.h.Name())
	d.CreateAttr("stamp", time.Now().UTC().Format("2006-01-02T15:04:05.000Z"))
	if key != "" {
		for i, e := range st.held {
			if e.key == key {
				// Only the latest counts; the older one goes.
				st.held = append(st.held[:i], st.held[i+1:]...)
				break
			}
		}
	}
	st.held = append(st.held, held{key, c})
	var out []held
	if len(st.held) >= MaxHeld {
		out = st.take()
	}
	st.mu.Unlock()
	m.release(s, out)
	return true
}

// take empties what waits and returns it; st.mu is held.
func (st *state) take() []held {
	out := st.held
	st.held = nil
	return out
}

// release queues out on s, in order. It holds no lock: a full queue
// bounces a stanza to its sender, who may be this very session.
func (m *module) release(s local.Session, out []held) {
	for _, e := range out {
		m.h.Queue(s, e.st)
	}
}

// classify tells whether st may wait, and the key under which a later
// stanza replaces it.
func classify(st *xmpp.Stanza) (key string, hold bool) {
	if st.Kind == xmpp.KindPresence {
		switch st.Type {
		case "", "unavailable":
			return "p " + st.From.String(), true
		case "error":
			return "", true
		}
		// Subscription requests and their answers: the user acts on them.
		return "", false
	}
	switch st.Type {
	case "error":
		return "", false
	case "headline":
		return "", true
	}
	el, from := st.El, st.From.String()
	if xmpp.Child(el, nsCarbons, "sent") != nil {
		// The user wrote it on another device.
		return "", false
	}
	if r := xmpp.Child(el, nsCarbons, "received"); r != nil {
		if f := xmpp.Child(r, nsForward, "forwarded"); f != nil {
			if inner := f.SelectElement("message"); inner != nil {
				el, from = inner, inner.SelectAttrValue("from", "")
			}
		}
	}
	if el.SelectElement("body") != nil || el.SelectElement("subject") != nil {
		return "", false
	}
	chatState := false
	for _, c := range el.ChildElements() {
		switch ns := xmpp.NS(c); {
		case ns == "urn:xmpp:eme:0", ns == "jabber:x:conference",
			ns == "urn:xmpp:jingle-message:0", ns == "urn:xmpp:jingle-message:1":
			// Encrypted (its content unknown), an invitation, a call.
			return "", false
		case ns == "http://jabber.org/protocol/muc#user" && c.SelectElement("invite") != nil:
			return "", false
		case ns == nsChatStates:
			chatState = true
		}
	}
	if chatState {
		return "cs " + from, true
	}
	return "", true
}

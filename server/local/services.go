package local

import (
	"context"
	"errors"
	"github.com/parley-im/parley/conf"
	"sort"
	"strconv"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// Namespaces of the services a local host answers.
const (
	NSBlocking    = "urn:xmpp:blocking"
	NSBlockingErr = "urn:xmpp:blocking:errors"
	NSLast        = "jabber:iq:last"
	NSOffline     = "msgoffline"
	NSDataForms   = "jabber:x:data"
	NSServerInfo  = "http://jabber.org/network/serverinfo"
	NSRosterVer   = "urn:xmpp:features:rosterver"
	NSPreApproval = "urn:xmpp:features:pre-approval"
)

// own reports whether st comes from the account it addresses.
func own(st *xmpp.Stanza) bool {
	return st.To.IsZero() || st.To.Bare() == st.From.Bare()
}

// OwnOnly wraps an iq handler at ToBare so that only the account itself
// (an iq sent without to, or to the user's own bare JID) reaches f;
// anyone else gets <forbidden/>.
func OwnOnly(f IQHandler) IQHandler {
	return func(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
		if !own(st) {
			return nil, xmpp.NewStanzaError(xmpp.Forbidden, "only the account itself may do this")
		}
		return f(ctx, st)
	}
}

// accountServices are the iqs the server answers for a user's bare JID.
func (h *localHost) accountServices() *iqMux {
	m := newIQMux("account", "registered", "")
	m.handle("get", NSRoster, "query", "", OwnOnly(h.rosterGet))
	m.handle("set", NSRoster, "query", "", OwnOnly(h.rosterSet))
	m.handle("get", NSBlocking, "blocklist", NSBlocking, OwnOnly(h.blocklistGet))
	m.handle("set", NSBlocking, "block", "", OwnOnly(func(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) { return h.blockSet(ctx, st, true) }))
	m.handle("set", NSBlocking, "unblock", "", OwnOnly(func(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) { return h.blockSet(ctx, st, false) }))
	m.handle("get", NSLast, "query", "", h.lastGet)
	return m
}

// blocklistGet answers XEP-0191's blocklist request.
func (h *localHost) blocklistGet(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
	a := h.loaded(st.From.Local())
	if a == nil {
		return nil, errNotLoaded
	}
	q := xmpp.NewElementNS(NSBlocking, "blocklist")
	a.mu.Lock()
	if _, ss := a.sessionOf(st.From); ss != nil {
		ss.blocking = true
	}
	var list []string
	for j := range a.blocked {
		list = append(list, j.String())
	}
	a.mu.Unlock()
	sort.Strings(list)
	for _, j := range list {
		q.CreateElement("item").CreateAttr("jid", j)
	}
	return q, nil
}

// blockSet blocks or unblocks (XEP-0191 §3.3, §3.4): stored, pushed to the
// resources that asked for the list, and presence is withdrawn from newly
// blocked contacts and sent again to unblocked ones.
func (h *localHost) blockSet(ctx context.Context, st *xmpp.Stanza, block bool) (*etree.Element, error) {
	var jids []xmpp.JID
	for _, it := range st.Payload().SelectElements("item") {
		j, err := xmpp.Parse(it.SelectAttrValue("jid", ""))
		if err != nil || j.IsZero() {
			return nil, xmpp.NewStanzaError(xmpp.JIDMalformed, "an item's jid is not valid")
		}
		jids = append(jids, j)
	}
	if block && len(jids) == 0 {
		return nil, xmpp.NewStanzaError(xmpp.BadRequest, "block at least one jid")
	}
	// The user's lock alone while reading and committing: routing to and
	// from the user goes on meanwhile, and is filtered by the list before
	// this change until it is committed.
	a, unlock := h.lockUser(st.From.Local())
	if a == nil {
		return nil, errNotLoaded
	}
	if !block && len(jids) == 0 {
		for j := range a.blocked {
			jids = append(jids, j)
		}
	}
	strs := make([]string, len(jids))
	for i, j := range jids {
		strs[i] = j.String()
	}
	var err error
	if block {
		err = h.store.Block(ctx, h.name, a.local, strs)
	} else {
		err = h.store.Unblock(ctx, h.name, a.local, strs)
	}
	// What follows reads the list as this change left it, so it runs in
	// the same hold of mu that publishes the change, before the user's
	// lock lets the next change in.
	a.mu.Lock()
	if err == nil {
		for _, j := range jids {
			if block {
				setIn(&a.blocked, j, true)
			} else {
				delete(a.blocked, j)
			}
		}
	}
	avail := a.available()
	// Who sees the user appear or vanish: the contacts that receive the
	// user's presence and that an item names, by the rule routing blocks
	// by: the contact, its domain, or one of its resources (then only
	// that resource). On unblock, one still blocked by another item sees
	// nothing.
	seen := map[xmpp.JID]bool{}
	var changed []xmpp.JID
	for _, c := range a.subscribedFrom() {
		for _, j := range jids {
			to := c
			switch {
			case j == c || (j.Local() == "" && j.Resource() == "" && j.Domain() == c.Domain()):
			case j.Resource() != "" && j.Bare() == c:
				to = j
			default:
				continue
			}
			if !seen[to] && (block || !a.isBlocked(to)) {
				seen[to] = true
				changed = append(changed, to)
			}
		}
	}
	var targets []Session
	for _, e := range a.sessions {
		if e.ss.blocking {
			targets = append(targets, e.s)
		}
	}
	a.mu.Unlock()
	unlock()
	if err != nil {
		return nil, err
	}
	for _, c := range changed {
		for _, p := range avail {
			if block {
				h.router.Route(xmpp.NewPresence("unavailable", p.s.JID(), c))
			} else {
				h.router.Route(resend(p.presence, p.s.JID(), c))
			}
		}
	}
	for _, s := range targets {
		push := xmpp.NewElementNS(NSBlocking, st.Payload().Tag)
		if len(st.Payload().SelectElements("item")) > 0 {
			for _, j := range strs {
				push.CreateElement("item").CreateAttr("jid", j)
			}
		}
		h.deliver(s, xmpp.NewIQ("set", "block-"+strconv.FormatUint(pushSeq.Add(1), 36), a.bare, s.JID(), push))
	}
	return nil, nil
}

// blockedError is the error a user gets for writing to a contact they
// block (XEP-0191 §3.5).
func blockedError() *xmpp.StanzaError {
	return xmpp.NewStanzaError(xmpp.NotAcceptable, "you block this contact; unblock it first")
}

// lastGet answers XEP-0012 for a user: 0 while online, else the time since
// the last session ended; only to contacts with a subscription from the
// user, and to the user.
func (h *localHost) lastGet(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
	target := st.To.Bare()
	if st.To.IsZero() {
		target = st.From.Bare()
	}
	if target != st.From.Bare() {
		a := h.userData(target.Local())
		if a == nil {
			return nil, xmpp.NewStanzaError(xmpp.ServiceUnavailable, "")
		}
		a.mu.Lock()
		state, _ := a.state(st.From.Bare())
		a.mu.Unlock()
		if state.Sub.String() != "from" && state.Sub.String() != "both" {
			return nil, xmpp.NewStanzaError(xmpp.Forbidden, "")
		}
	}
	q := xmpp.NewElementNS(NSLast, "query")
	for _, s := range h.sessions(target.Local()) {
		if s.Available() {
			q.CreateAttr("seconds", "0")
			return q, nil
		}
	}
	// XEP-0012 §3: the seconds since the user last logged out, and the
	// status of that unavailable presence.
	var at time.Time
	var status string
	if last, ok := h.lastSeen(target.Local()); ok {
		at, status = last.At, last.Status
	} else {
		var err error
		at, status, err = h.store.LastActivity(ctx, h.name, target.Local())
		if errors.Is(err, storage.ErrNotFound) {
			return nil, xmpp.NewStanzaError(xmpp.ItemNotFound, "")
		}
		if err != nil {
			return nil, err
		}
	}
	q.CreateAttr("seconds", strconv.FormatInt(max(int64(time.Since(at).Seconds()), 0), 10))
	if status != "" {
		q.SetText(status)
	}
	return q, nil
}

// Serialize renders an element for storage, as the server writes
// elements on a stream; StoredLimits-bound parsing reads it back.
func Serialize(el *etree.Element) []byte {
	return serializeStanza(&xmpp.Stanza{El: el})
}

// storedLimits bound what is parsed back from the store: what the
// server wrote itself, each stanza within the stanza limits when it came,
// plus what the server added (a delay, an xmlns). Twice the largest stanza
// a config allows, and at least 1 MiB: a fixed 1 MiB once dropped offline
// messages that a larger stanza_size had let in.
func storedLimits(l conf.Limits) xmpp.Limits {
	return xmpp.Limits{MaxStanza: max(1<<20, 2*int64(max(l.StanzaSize, l.S2SStanzaSize)))}
}

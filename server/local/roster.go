package local

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/server/subscription"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// NSRoster is RFC 6121's roster namespace.
const NSRoster = "jabber:iq:roster"

// maxRosterText bounds names and group names (RFC 6121 §2.1.2: at least
// 1023 bytes must be allowed; that is what we allow).
const maxRosterText = 1023

var errRosterFull = xmpp.NewStanzaError(xmpp.NotAllowed, "the roster is full")

// itemElement renders a roster item.
func itemElement(it *storage.RosterItem) *etree.Element {
	el := etree.NewElement("item")
	el.CreateAttr("jid", it.JID)
	if it.Name != "" {
		el.CreateAttr("name", it.Name)
	}
	sub := it.Subscription
	if sub == "" {
		sub = "none"
	}
	el.CreateAttr("subscription", sub)
	if it.Ask {
		el.CreateAttr("ask", "subscribe")
	}
	if it.Approved {
		el.CreateAttr("approved", "true")
	}
	for _, g := range it.Groups {
		el.CreateElement("group").SetText(g)
	}
	return el
}

// rosterGet answers a roster get (RFC 6121 §2.2), with versioning (§2.6):
// an unchanged roster gets an empty result, a changed one the full roster
// or, when the store can tell, an empty result followed by the changes as
// pushes.
func (h *localHost) rosterGet(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
	a := h.loaded(st.From.Local())
	if a == nil {
		return nil, errNotLoaded
	}
	verAttr := st.Payload().SelectAttr("ver")
	a.mu.Lock()
	s, ss := a.sessionOf(st.From)
	if ss != nil {
		ss.roster = true
	}
	ver := a.ver
	items := make([]*storage.RosterItem, 0, len(a.roster))
	for _, it := range a.roster {
		items = append(items, it)
	}
	a.mu.Unlock()
	if verAttr != nil && verAttr.Value != "" {
		if since, err := strconv.ParseInt(verAttr.Value, 10, 64); err == nil && since == ver {
			return nil, nil
		} else if err == nil && since < ver {
			changed, removed, cur, ok, err := h.store.RosterSince(ctx, h.name, a.local, since)
			if err == nil && ok && cur == ver && len(changed)+len(removed) < len(items) {
				// The result first, then the pushes (§2.6.3).
				h.router.Route(st.Result(nil))
				for i := range changed {
					h.pushTo(s, a.bare, itemElement(&changed[i]), changed[i].Ver)
				}
				for _, j := range removed {
					el := etree.NewElement("item")
					el.CreateAttr("jid", j)
					el.CreateAttr("subscription", "remove")
					h.pushTo(s, a.bare, el, cur)
				}
				return nil, ErrAnswered
			}
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].JID < items[j].JID })
	q := xmpp.NewElementNS(NSRoster, "query")
	if verAttr != nil {
		q.CreateAttr("ver", strconv.FormatInt(ver, 10))
	}
	for _, it := range items {
		q.AddChild(itemElement(it))
	}
	return q, nil
}

// ErrAnswered is what an IQHandler returns when it sent its answer
// itself (a result before pushes, say): the mux sends nothing more.
var ErrAnswered = errors.New("local: the handler answered the iq itself")

// rosterSet changes or removes one item (RFC 6121 §2.3, §2.5).
func (h *localHost) rosterSet(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
	if err := h.rosterChangeAllowed(st.From.Local()); err != nil {
		return nil, err
	}
	items := st.Payload().SelectElements("item")
	if len(items) != 1 {
		return nil, xmpp.NewStanzaError(xmpp.BadRequest, "a roster set has exactly one item")
	}
	el := items[0]
	contact, err := xmpp.Parse(el.SelectAttrValue("jid", ""))
	if err != nil || contact.IsZero() {
		return nil, xmpp.NewStanzaError(xmpp.BadRequest, "the item needs a valid jid")
	}
	contact = contact.Bare()
	if el.SelectAttrValue("subscription", "") == "remove" {
		return nil, h.rosterRemove(st.From.Local(), contact)
	}
	name := el.SelectAttrValue("name", "")
	if len(name) > maxRosterText {
		return nil, xmpp.NewStanzaError(xmpp.NotAcceptable, fmt.Sprintf("the name is longer than %d bytes", maxRosterText))
	}
	var groups []string
	seen := map[string]bool{}
	for _, g := range el.SelectElements("group") {
		t := g.Text()
		switch {
		case t == "":
			return nil, xmpp.NewStanzaError(xmpp.NotAcceptable, "a group needs a name")
		case len(t) > maxRosterText:
			return nil, xmpp.NewStanzaError(xmpp.NotAcceptable, fmt.Sprintf("a group name is longer than %d bytes", maxRosterText))
		case seen[t]:
			return nil, xmpp.NewStanzaError(xmpp.BadRequest, "the same group twice")
		}
		seen[t] = true
		groups = append(groups, t)
	}
	sort.Strings(groups)
	// The user's lock alone while reading and committing: routing to and
	// from the user goes on meanwhile, and sees the roster before this
	// change.
	a, unlock := h.lockUser(st.From.Local())
	if a == nil {
		return nil, errNotLoaded
	}
	item := storage.RosterItem{JID: contact.String(), Subscription: "none"}
	if old := a.roster[contact]; old != nil {
		item = *old
	} else if len(a.roster) >= h.limits.roster {
		unlock()
		return nil, errRosterFull
	}
	// Subscription and ask are the server's to set (§2.1.2): only name and
	// groups come from the client.
	item.Name, item.Groups = name, groups
	if _, pending := a.pending[contact]; pending {
		item.PendingIn = true
	}
	ctx, cancel := h.router.StoreContext()
	ver, err := h.store.PutRosterItem(ctx, h.name, a.local, item)
	cancel()
	if err == nil {
		item.Ver = ver
		a.mu.Lock()
		setIn(&a.roster, contact, &item)
		a.ver = ver
		a.mu.Unlock()
	}
	unlock()
	if err != nil {
		return nil, err
	}
	h.pushItem(a, &item)
	return nil, nil
}

// rosterRemove deletes an item and cancels the subscriptions both ways
// (§2.5.2).
func (h *localHost) rosterRemove(local string, contact xmpp.JID) error {
	a, unlock := h.lockUser(local)
	if a == nil {
		return errNotLoaded
	}
	state, exists := a.state(contact)
	if !exists {
		unlock()
		return xmpp.NewStanzaError(xmpp.ItemNotFound, "no such contact in the roster")
	}
	ctx, cancel := h.router.StoreContext()
	defer cancel()
	ver, err := h.store.DeleteRosterItem(ctx, h.name, a.local, contact.String())
	if err == nil {
		// Published at once: if forgetting the request fails below, the
		// item is gone from the store all the same.
		a.mu.Lock()
		delete(a.roster, contact)
		a.ver = ver
		a.mu.Unlock()
		if state.PendingIn {
			if err = h.store.DeleteXML(ctx, h.name, a.local, kindSubRequest, contact.String()); err == nil {
				a.mu.Lock()
				delete(a.pending, contact)
				a.mu.Unlock()
			}
		}
	}
	a.mu.Lock()
	avail := a.available()
	a.mu.Unlock()
	unlock()
	if err != nil {
		return err
	}
	if state.Sub == subscription.To || state.Sub == subscription.Both || state.PendingOut {
		h.router.Route(xmpp.NewPresence(subscription.Unsubscribe, a.bare, contact))
	}
	if state.Sub.HasTo() {
		h.botGone(contact, avail)
	}
	if state.Sub == subscription.From || state.Sub == subscription.Both || state.PendingIn {
		for _, p := range avail {
			h.router.Route(xmpp.NewPresence("unavailable", p.s.JID(), contact))
		}
		h.router.Route(xmpp.NewPresence(subscription.Unsubscribed, a.bare, contact))
	}
	el := etree.NewElement("item")
	el.CreateAttr("jid", contact.String())
	el.CreateAttr("subscription", "remove")
	h.pushAll(a, el, ver)
	return nil
}

// pushItem sends a changed item to the interested resources.
func (h *localHost) pushItem(a *account, it *storage.RosterItem) {
	if it != nil {
		h.pushAll(a, itemElement(it), it.Ver)
	}
}

// pushAll sends a roster push to every session that asked for the roster
// (§2.1.6).
func (h *localHost) pushAll(a *account, item *etree.Element, ver int64) {
	a.mu.Lock()
	var targets []Session
	for _, e := range a.sessions {
		if e.ss.roster {
			targets = append(targets, e.s)
		}
	}
	a.mu.Unlock()
	for _, s := range targets {
		h.pushTo(s, a.bare, item.Copy(), ver)
	}
}

var pushSeq atomic.Uint64

// pushTo sends one roster push to s.
func (h *localHost) pushTo(s Session, bare xmpp.JID, item *etree.Element, ver int64) {
	if s == nil {
		return
	}
	q := xmpp.NewElementNS(NSRoster, "query")
	q.CreateAttr("ver", strconv.FormatInt(ver, 10))
	q.AddChild(item)
	id := "push-" + strconv.FormatUint(pushSeq.Add(1), 36)
	h.deliver(s, xmpp.NewIQ("set", id, bare, s.JID(), q))
}

// rosterChangeAllowed takes a roster change from the account's budget
// (roster_changes_per_minute), or returns the error that refuses it: a
// flood of roster sets took most of a core and slowed every other user's
// writes twentyfold.
func (h *localHost) rosterChangeAllowed(local string) error {
	a := h.online(local)
	if a == nil || h.limits.rosterRate <= 0 {
		return nil
	}
	a.mu.Lock()
	perMinute := float64(h.limits.rosterRate)
	_, ok := a.rosterChanges.Take(time.Now(), 1, perMinute/60, perMinute)
	a.mu.Unlock()
	if ok {
		return nil
	}
	h.counters.rosterRefused.Add(1)
	h.logLimit("roster_changes_per_minute", "user", local)
	return xmpp.NewStanzaError(xmpp.ResourceConstraint, fmt.Sprintf(
		"more than %d roster changes in a minute; wait a few seconds and try again", h.limits.rosterRate))
}

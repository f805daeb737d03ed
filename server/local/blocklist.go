package local

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/parley-im/parley/xmpp"
)

// The state behind blocking (XEP-0191) and last activity (XEP-0012) is
// the core's: routing reads the block list on every stanza to or from a
// user, and probes answer with the last logout. Their protocols are
// modules (server/mod/blocking, server/mod/last), which use these.

// BlockList returns the JIDs the user local blocks, sorted. The user must
// have a session (a client asks for its own list).
func (h *Host) BlockList(local string) ([]xmpp.JID, error) {
	a := h.lh.loaded(local)
	if a == nil {
		return nil, errNotLoaded
	}
	a.mu.Lock()
	list := make([]xmpp.JID, 0, len(a.blocked))
	for j := range a.blocked {
		list = append(list, j)
	}
	a.mu.Unlock()
	slices.SortFunc(list, func(x, y xmpp.JID) int { return strings.Compare(x.String(), y.String()) })
	return list, nil
}

// SetBlocked blocks (block) or unblocks jids for the user local, who must
// have a session (XEP-0191 §3.3, §3.4): stored, then routing filters by
// the new list, and presence is withdrawn from newly blocked contacts and
// sent again to unblocked ones. Unblocking no jids unblocks every one. It
// returns the jids it changed the list for: jids, or the whole list for
// an unblock of every one.
func (h *Host) SetBlocked(ctx context.Context, local string, jids []xmpp.JID, block bool) ([]xmpp.JID, error) {
	return h.lh.setBlocked(ctx, local, jids, block)
}

func (h *localHost) setBlocked(ctx context.Context, local string, jids []xmpp.JID, block bool) ([]xmpp.JID, error) {
	// The user's lock alone while reading and committing: routing to and
	// from the user goes on meanwhile, and is filtered by the list before
	// this change until it is committed.
	a, unlock := h.lockUser(local)
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
	return jids, nil
}

// LastLogout returns when the user local last logged out and the status
// of that unavailable presence (XEP-0012 §3); the store's ErrNotFound
// when the user never did.
func (h *Host) LastLogout(ctx context.Context, local string) (time.Time, string, error) {
	if last, ok := h.lh.lastSeen(local); ok {
		return last.At, last.Status, nil
	}
	return h.lh.store.LastActivity(ctx, h.lh.name, local)
}

// Subscription returns the state of the user local's subscription with
// contact ("none", "to", "from" or "both"), reading the store for a user
// with no session; ok is false when there is no such user.
func (h *Host) Subscription(local string, contact xmpp.JID) (sub string, ok bool) {
	a := h.lh.userData(local)
	if a == nil {
		return "", false
	}
	a.mu.Lock()
	state, _ := a.state(contact.Bare())
	a.mu.Unlock()
	return state.Sub.String(), true
}

// Package last is the module of Last Activity (XEP-0012): asked of the
// server, its uptime (§6); asked of a user's bare JID, 0 while the user
// has an available resource, else the seconds since the last logout and
// the status of that unavailable presence (§3). The core keeps when each
// user logged out (probes answer with it too); this module answers.
package last

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// NS is XEP-0012's namespace and feature.
const NS = "jabber:iq:last"

func init() {
	local.RegisterModule(local.Module{Name: "last", Start: start})
}

func start(h *local.Host) error {
	started := h.Started()
	h.HandleIQ(local.ToHost, "get", NS, "query", NS, func(context.Context, *xmpp.Stanza) (*etree.Element, error) {
		return seconds(started), nil
	})
	h.HandleIQ(local.ToBare, "get", NS, "query", "", func(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
		return user(ctx, h, st)
	})
	return nil
}

// user answers for the user st asks about (its to, or the asker itself
// without one): only the user and contacts the user shares presence with
// may know (§3: a subscription from the user), since it tells when the
// user was last there.
func user(ctx context.Context, h *local.Host, st *xmpp.Stanza) (*etree.Element, error) {
	target := st.To.Bare()
	if st.To.IsZero() {
		target = st.From.Bare()
	}
	if target != st.From.Bare() {
		sub, ok := h.Subscription(target.Local(), st.From)
		if !ok {
			return nil, xmpp.NewStanzaError(xmpp.ServiceUnavailable, "")
		}
		if sub != "from" && sub != "both" {
			return nil, xmpp.NewStanzaError(xmpp.Forbidden, "")
		}
	}
	for _, s := range h.Sessions(target.Local()) {
		if s.Available() {
			return seconds(time.Now()), nil
		}
	}
	at, status, err := h.LastLogout(ctx, target.Local())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, xmpp.NewStanzaError(xmpp.ItemNotFound, "")
	}
	if err != nil {
		return nil, err
	}
	q := seconds(at)
	if status != "" {
		q.SetText(status)
	}
	return q, nil
}

// seconds is a query with the whole seconds since at (none for a time to
// come: the clock went back).
func seconds(at time.Time) *etree.Element {
	q := xmpp.NewElementNS(NS, "query")
	q.CreateAttr("seconds", strconv.FormatInt(max(int64(time.Since(at).Seconds()), 0), 10))
	return q
}

package server

import (
	"errors"

	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// Namespaces of message processing hints (XEP-0334) and chat states.
const (
	nsHints      = "urn:xmpp:hints"
	nsChatStates = "http://jabber.org/protocol/chatstates"
)

// storeOffline keeps a message for a user with no available resource
// (XEP-0160). It is committed before this returns; a full store is
// bounced. Messages with nothing to keep (only chat states) and messages
// that ask not to be stored are dropped.
func (h *localHost) storeOffline(st *xmpp.Stanza) {
	if !worthStoring(st) {
		return
	}
	ctx, cancel := storeCtx()
	defer cancel()
	err := h.store.StoreOffline(ctx, h.name, st.To.Local(), serializeStanza(st), h.limits.offline)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		// The account went away since it was looked up.
		h.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, ""))
	case errors.Is(err, storage.ErrQuota):
		h.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, "the recipient is offline and has too many messages waiting"))
	case err != nil:
		h.log.Error("local: offline store", "user", st.To.Local(), "err", err)
		h.router.Bounce(st, xmpp.NewStanzaError(xmpp.InternalServerError, ""))
	}
}

func worthStoring(st *xmpp.Stanza) bool {
	keep := false
	for _, c := range st.El.ChildElements() {
		switch ns := xmpp.NS(c); {
		case ns == nsHints && (c.Tag == "no-store" || c.Tag == "no-permanent-store"):
			return false
		case ns == nsChatStates, ns == nsHints:
		default:
			keep = true
		}
	}
	return keep
}

// deliverOffline hands a session the messages kept for its user, oldest
// first, each with a XEP-0203 delay stamp, and forgets the ones it took.
// What does not fit the session's queue stays for the next time.
func (h *localHost) deliverOffline(local string, s Session) {
	ctx, cancel := storeCtx()
	defer cancel()
	msgs, err := h.store.OfflineMessages(ctx, h.name, local)
	if err != nil {
		h.log.Error("local: offline read", "user", local, "err", err)
		return
	}
	var last int64 = -1
	for _, m := range msgs {
		st, err := parseStanza(m.Stanza)
		if err != nil {
			h.log.Error("local: offline message unreadable, dropped", "user", local, "seq", m.Seq, "err", err)
			last = m.Seq
			continue
		}
		d := xmpp.NewElementNS(xmpp.NSDelay, "delay")
		d.CreateAttr("from", h.name)
		d.CreateAttr("stamp", m.Stored.UTC().Format("2006-01-02T15:04:05.000Z"))
		d.SetText("Offline Storage")
		st.El.AddChild(d)
		if !s.Deliver(st.El) {
			break
		}
		last = m.Seq
	}
	if last >= 0 {
		if err := h.store.DeleteOffline(ctx, h.name, local, last); err != nil {
			h.log.Error("local: offline delete", "user", local, "err", err)
		}
	}
}

package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/parley-im/parley/c2s"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// accountStore is what a local host needs of storage.
type accountStore interface {
	Account(ctx context.Context, host, username string) (storage.Account, error)
}

// localHost is a domain with users: it keeps the bound sessions of its
// users and applies the delivery rules of RFC 6121 §8.5 to stanzas
// addressed to them, and answers the iqs addressed to the server itself.
type localHost struct {
	name   string
	domain xmpp.JID
	router *Router
	store  accountStore
	log    *slog.Logger

	server  *iqMux // iqs to the domain
	account *iqMux // iqs to a user's bare JID, answered by the server

	// mu guards users. Lock order: mu is never held while calling a
	// session (Deliver and Close are non-blocking anyway) or the router.
	mu    sync.RWMutex
	users map[string][]Session // by localpart, in bind order
}

func newLocalHost(name string, r *Router, store accountStore, services *iqMux, log *slog.Logger) *localHost {
	h := &localHost{
		name:   name,
		domain: xmpp.MustParse(name),
		router: r,
		store:  store,
		log:    log.With("host", name),
		server: services,
		users:  make(map[string][]Session),
	}
	h.account = accountServices()
	return h
}

// Bind registers s; a session already bound to the same full JID is
// closed with <conflict/> (RFC 6120 §7.7.2.2, the newest login wins).
func (h *localHost) Bind(s *c2s.Session) error {
	j := s.JID()
	var old Session
	h.mu.Lock()
	list := h.users[j.Local()]
	for i, o := range list {
		if o.JID() == j {
			old = o
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	h.users[j.Local()] = append(list, s)
	h.mu.Unlock()
	if old != nil {
		old.Close(xmpp.NewStreamError(xmpp.StreamConflict, "replaced by a new login with the same resource"))
	}
	return nil
}

// Unbind removes s if it is still registered.
func (h *localHost) Unbind(s *c2s.Session) {
	j := s.JID()
	h.mu.Lock()
	defer h.mu.Unlock()
	list := h.users[j.Local()]
	for i, o := range list {
		if o == Session(s) {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(h.users, j.Local())
	} else {
		h.users[j.Local()] = list
	}
}

// sessions returns the sessions of a user; the slice is a copy.
func (h *localHost) sessions(local string) []Session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	list := h.users[local]
	if len(list) == 0 {
		return nil
	}
	return append([]Session(nil), list...)
}

// session returns the session bound to full, or nil.
func (h *localHost) session(full xmpp.JID) Session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, s := range h.users[full.Local()] {
		if s.JID() == full {
			return s
		}
	}
	return nil
}

// exists reports whether the user has an account. It reads storage, so it
// is asked only when the user has no session.
func (h *localHost) exists(local string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := h.store.Account(ctx, h.name, local)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		h.log.Error("local: account lookup", "user", local, "err", err)
	}
	return err == nil
}

// HandleStanza applies the delivery rules.
func (h *localHost) HandleStanza(st *xmpp.Stanza) {
	to := st.To
	switch {
	case to.IsZero():
		h.fromOwnAccount(st)
	case to.Local() == "":
		h.toServer(st)
	case to.Resource() != "":
		h.toFullJID(st)
	default:
		h.toBareJID(st)
	}
}

// fromOwnAccount handles a stanza a user sent without to (RFC 6120 §10.3):
// presence is a broadcast, an iq is for the account, a message is to the
// user's own bare JID.
func (h *localHost) fromOwnAccount(st *xmpp.Stanza) {
	switch st.Kind {
	case xmpp.KindPresence:
		h.broadcastPresence(st)
	case xmpp.KindIQ:
		h.accountIQ(st, st.From.Bare())
	case xmpp.KindMessage:
		st.SetTo(st.From.Bare())
		h.toBareJID(st)
	}
}

// broadcastPresence records the sender's availability and priority.
// Sending it to the roster is the IM core's job (not yet built).
func (h *localHost) broadcastPresence(st *xmpp.Stanza) {
	s := h.session(st.From)
	if s == nil {
		return
	}
	switch st.Type {
	case "":
		s.SetPresence(true, presencePriority(st))
	case "unavailable":
		s.SetPresence(false, 0)
	}
}

// presencePriority reads <priority/>: -128..127, default 0 (RFC 6121 §4.7.2.3).
func presencePriority(st *xmpp.Stanza) int {
	p := xmpp.Child(st.El, "", "priority")
	if p == nil {
		return 0
	}
	n, err := strconv.Atoi(p.Text())
	if err != nil || n < -128 || n > 127 {
		return 0
	}
	return n
}

// toFullJID follows RFC 6121 §8.5.3.
func (h *localHost) toFullJID(st *xmpp.Stanza) {
	if s := h.session(st.To); s != nil {
		h.router.deliver(s, st)
		return
	}
	switch st.Kind {
	case xmpp.KindMessage:
		switch st.Type {
		case "", "normal", "chat":
			// §8.5.3.2.1: as if it were sent to the bare JID.
			h.toBareJID(st)
		case "groupchat":
			h.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, ""))
		}
		// headline and error: silently ignored.
	case xmpp.KindIQ:
		h.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, ""))
	}
	// Presence to a resource that is not there is ignored (§8.5.3.2.3).
}

// toBareJID follows RFC 6121 §8.5.2.
func (h *localHost) toBareJID(st *xmpp.Stanza) {
	local := st.To.Local()
	switch st.Kind {
	case xmpp.KindIQ:
		h.accountIQ(st, st.To.Bare())
		return
	case xmpp.KindPresence:
		switch st.Type {
		case "", "unavailable":
			for _, s := range h.sessions(local) {
				if s.Available() {
					h.router.deliver(s, st)
				}
			}
		}
		// Subscriptions and probes belong to the IM core (not yet built).
		return
	}
	// A message.
	all := h.sessions(local)
	switch st.Type {
	case "error":
		return
	case "groupchat":
		h.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, ""))
		return
	case "headline":
		for _, s := range all {
			if s.Available() && s.Priority() >= 0 {
				h.router.deliver(s, st)
			}
		}
		return
	}
	// normal and chat: every available resource of the highest
	// non-negative priority (§8.5.2.1.1).
	best := -1
	for _, s := range all {
		if s.Available() && s.Priority() > best {
			best = s.Priority()
		}
	}
	delivered := false
	if best >= 0 {
		for _, s := range all {
			if s.Available() && s.Priority() == best {
				h.router.deliver(s, st)
				delivered = true
			}
		}
	}
	if delivered {
		return
	}
	if len(all) == 0 && !h.exists(local) {
		// §8.5.2.2.1 / §8.5.1: no such user.
		h.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, ""))
		return
	}
	// The user exists but has no available resource. Offline storage
	// (XEP-0160) belongs to the IM core; until then the sender is told.
	h.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, "the recipient is offline"))
}

// toServer handles stanzas addressed to the domain itself.
func (h *localHost) toServer(st *xmpp.Stanza) {
	switch st.Kind {
	case xmpp.KindIQ:
		h.router.answer(st, h.server)
	case xmpp.KindMessage:
		if st.Type != "headline" {
			h.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, "the server does not take messages"))
		}
	}
}

// accountIQ answers an iq addressed to a user's bare JID (or sent without
// to): the server answers for the account (RFC 6121 §8.5.2.1.3).
func (h *localHost) accountIQ(st *xmpp.Stanza, account xmpp.JID) {
	if st.Type != "get" && st.Type != "set" {
		return
	}
	if account != st.From.Bare() && len(h.sessions(account.Local())) == 0 && !h.exists(account.Local()) {
		h.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, ""))
		return
	}
	h.router.answer(st, h.account)
}

func (h *localHost) String() string { return fmt.Sprintf("local host %s", h.name) }

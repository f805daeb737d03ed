package local

import (
	"bytes"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/server/subscription"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// readdress returns a copy of st sent to to.
func readdress(st *xmpp.Stanza, from, to xmpp.JID) *xmpp.Stanza {
	c := st.Copy()
	c.SetFrom(from)
	c.SetTo(to)
	return c
}

// resend returns a copy of a session's last available presence (kept as
// its element alone: the stanza's parsed fields are not needed until it
// is sent again) from from to to.
func resend(presence *etree.Element, from, to xmpp.JID) *xmpp.Stanza {
	return readdress(&xmpp.Stanza{El: presence, Kind: xmpp.KindPresence, ID: presence.SelectAttrValue("id", "")}, from, to)
}

// outboundPresence handles a presence a user's session sent (RFC 6121 §3,
// §4): broadcast, directed, or a subscription stanza.
func (h *localHost) outboundPresence(s Session, st *xmpp.Stanza) {
	a := h.loaded(st.From.Local())
	if a == nil {
		return
	}
	switch st.Type {
	case "", "unavailable":
		if st.To.IsZero() {
			a.mu.Lock()
			ss := a.stateOf(s)
			a.mu.Unlock()
			if ss != nil {
				h.broadcastPresence(a, s, ss, st)
			}
			return
		}
		// Directed presence (§4.6): remembered, so that the recipient
		// learns when the user goes offline, and kept as sent, so that a
		// probe from the recipient gets it again (§4.6.6).
		a.mu.Lock()
		if ss := a.stateOf(s); ss != nil {
			if st.Type == "" {
				setIn(&ss.directed, st.To, st.El.Copy())
			} else {
				delete(ss.directed, st.To)
			}
		}
		a.mu.Unlock()
		h.router.Route(st)
	case subscription.Subscribe, subscription.Subscribed, subscription.Unsubscribe, subscription.Unsubscribed:
		h.outboundSubscription(st)
	case "error":
		h.router.Route(st)
	}
	// A probe from a client is not its to send (§4.3): dropped.
}

// broadcastPresence sends the session's presence where it belongs
// (§4.2, §4.4, §4.5) and records it. On the session's first available
// presence it also probes the contacts, shows the new resource the
// presence of the user's others, and delivers what waited: offline
// messages and subscription requests.
func (h *localHost) broadcastPresence(a *account, s Session, ss *sessState, st *xmpp.Stanza) {
	from := s.JID()
	available := st.Type == ""
	a.mu.Lock()
	initial := available && ss.presence == nil
	var targets []xmpp.JID
	for _, c := range a.subscribedFrom() {
		if !a.isBlocked(c) {
			targets = append(targets, c)
		}
	}
	for j := range ss.directed {
		targets = append(targets, j)
	}
	var own, others []sessPresence
	for _, e := range a.sessions {
		if e.ss.presence != nil || e.s == s {
			own = append(own, sessPresence{e.s, e.ss.presence})
		}
		if e.s != s && e.ss.presence != nil {
			others = append(others, sessPresence{e.s, e.ss.presence})
		}
	}
	var probes []xmpp.JID
	var requests [][]byte
	loggedOut := false
	if available {
		ss.presence = st.El.Copy()
		if initial {
			probes = a.subscribedTo()
			for _, req := range a.pending {
				requests = append(requests, req)
			}
		}
	} else {
		// The user logs out when the last available resource goes
		// unavailable (XEP-0012 §3: "the time since the user last logged
		// out" and "the status message of the last unavailable presence").
		loggedOut = ss.presence != nil && len(others) == 0
		if loggedOut {
			a.loggedOut = true
		}
		ss.presence = nil
		ss.directed = nil
	}
	a.mu.Unlock()
	if loggedOut {
		h.setSeen(a.local, time.Now(), presenceStatus(st))
	}

	prio := presencePriority(st)
	s.SetPresence(available, prio)
	seen := make(map[xmpp.JID]bool, len(targets))
	for _, to := range targets {
		if !seen[to] {
			seen[to] = true
			h.router.Route(readdress(st, from, to))
		}
	}
	// The user's own resources see it, the sender included (§4.2.2).
	for _, o := range own {
		h.deliver(o.s, readdress(st, from, o.s.JID()))
	}
	if !initial {
		return
	}
	for _, o := range others {
		h.deliver(s, resend(o.presence, o.s.JID(), from))
	}
	for _, c := range probes {
		h.router.Route(xmpp.NewPresence("probe", a.bare, c))
	}
	for _, req := range requests {
		if r, err := h.parseStored(req); err == nil {
			h.deliver(s, r)
		}
	}
	if prio >= 0 {
		h.deliverOffline(a.local, s)
	}
}

// inboundPresence handles a presence addressed to a local user's bare JID
// (or a subscription stanza or probe to a full JID).
func (h *localHost) inboundPresence(st *xmpp.Stanza) {
	local := st.To.Local()
	switch st.Type {
	case "", "unavailable":
		if st.To.Resource() != "" {
			if s := h.session(st.To); s != nil {
				h.deliver(s, st)
			}
			return
		}
		for _, s := range h.sessions(local) {
			if s.Available() {
				h.deliver(s, st)
			}
		}
	case "probe":
		h.answerProbe(st)
	case subscription.Subscribe, subscription.Subscribed, subscription.Unsubscribe, subscription.Unsubscribed:
		h.inboundSubscription(st)
	}
}

// answerProbe answers a probe (§4.3.2): the presence of each available
// resource to a contact with a subscription from the user, unavailable
// when there is none, and unsubscribed to anyone else, except an entity
// the user sent directed presence to, which gets that presence again
// (§4.6.6). A probe of a full JID is answered for that resource alone.
// The unavailable and unsubscribed answers carry the probe's id, so that
// the prober can tell which probe they answer, as in the RFC's examples.
func (h *localHost) answerProbe(st *xmpp.Stanza) {
	contact := st.From.Bare()
	a := h.userData(st.To.Local())
	if a == nil {
		// §8.5.1 lets the server ignore a probe to no user, and that
		// tells the prober nothing.
		return
	}
	resource := st.To.Resource()
	a.mu.Lock()
	state, _ := a.state(contact)
	blocked := a.isBlocked(st.From)
	subscribed := state.Sub.HasFrom()
	var answers, directed []sessPresence
	anyAvailable := false
	if subscribed {
		for _, p := range a.available() {
			anyAvailable = true
			if resource == "" || p.s.JID() == st.To {
				answers = append(answers, p)
			}
		}
	} else {
		directed = a.directedTo(st.From, st.To)
	}
	a.mu.Unlock()
	switch {
	case blocked:
	case !subscribed && len(directed) > 0:
		// §4.6.6: an entity that got directed presence gets, from the
		// resource that sent it, the last presence sent to it.
		for _, p := range directed {
			h.router.Route(resend(p.presence, p.s.JID(), st.From))
		}
	case !subscribed:
		h.router.Route(withID(xmpp.NewPresence(subscription.Unsubscribed, a.bare, st.From), st.ID))
	case len(answers) == 0:
		h.router.Route(h.unavailableAnswer(a, st, anyAvailable))
	default:
		for _, p := range answers {
			h.router.Route(resend(p.presence, p.s.JID(), st.From))
		}
	}
}

// unavailableAnswer is the answer to a probe from a subscriber that finds
// no available resource to answer for (§4.3.2): unavailable presence with
// the probe's id, from the JID probed, and, when the user has no
// available resource at all, the status of the user's last logout and a
// XEP-0203 <delay/> stamped with its time. The time of a resource that
// went while others stayed is not kept, so that answer has no delay.
func (h *localHost) unavailableAnswer(a *account, probe *xmpp.Stanza, anyAvailable bool) *xmpp.Stanza {
	from := a.bare
	if probe.To.Resource() != "" {
		from = probe.To
	}
	p := withID(xmpp.NewPresence("unavailable", from, probe.From), probe.ID)
	if anyAvailable {
		return p
	}
	at, status, ok := h.lastActivity(a.local)
	if !ok {
		return p
	}
	if status != "" {
		p.El.CreateElement("status").SetText(status)
	}
	p.El.AddChild(xmpp.NewDelay(h.name, at))
	return p
}

// withID sets the id of st, when id is not empty, and returns st.
func withID(st *xmpp.Stanza, id string) *xmpp.Stanza {
	if id != "" {
		st.El.CreateAttr("id", id)
		st.ID = id
	}
	return st
}

// presenceStatus returns the text of the first <status/> of a presence.
func presenceStatus(st *xmpp.Stanza) string {
	if el := xmpp.Child(st.El, "", "status"); el != nil {
		return el.Text()
	}
	return ""
}

// outboundSubscription applies RFC 6121 Appendix A.2 to a subscription
// stanza the user sent.
func (h *localHost) outboundSubscription(st *xmpp.Stanza) {
	contact := st.To.Bare()
	if contact.IsZero() || contact == st.From.Bare() {
		return
	}
	if st.Type == subscription.Subscribe && !h.router.MayExist(contact) {
		// RFC 6121 §3.1.2: "If the presence subscription request cannot
		// be locally delivered or remotely routed (e.g., because the
		// request is malformed, the local contact does not exist, ...),
		// then the user's server MUST return an appropriate error stanza
		// to the user." The roster push comes "after locally delivering
		// or remotely routing" the request, so none is made. The error is
		// the one a message to no user gets (§8.5.1).
		h.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, ""))
		return
	}
	// The user's lock alone while reading and committing: routing to and
	// from the user goes on meanwhile, and sees the state before this
	// change.
	a, unlock := h.lockUser(st.From.Local())
	if a == nil {
		h.router.Bounce(st, xmpp.NewStanzaError(xmpp.InternalServerError, ""))
		return
	}
	state, _ := a.state(contact)
	out := subscription.ApplyOutbound(state, st.Type)
	push, err := h.saveState(a, contact, out.Next, out.Push)
	if err == nil && state.PendingIn && !out.Next.PendingIn {
		// The user answered the request: it is not redelivered again.
		err = h.savePending(a, contact, false, st)
	}
	a.mu.Lock()
	avail := a.available()
	a.mu.Unlock()
	unlock()
	if err != nil {
		h.log.Error("local: roster write", "user", a.local, "err", err)
		h.router.Bounce(st, xmpp.NewStanzaError(xmpp.InternalServerError, ""))
		return
	}
	// The user's own push first: a local contact's answer, routed below,
	// may change the item again, and its push must come after this one.
	h.pushItem(a, push)
	if out.SendUnavailable {
		for _, p := range avail {
			h.router.Route(xmpp.NewPresence("unavailable", p.s.JID(), contact))
		}
	}
	if out.Route {
		// Subscription stanzas travel between bare JIDs (§3.1.2).
		h.router.Route(readdress(st, a.bare, contact))
	}
	if out.SendPresence {
		for _, p := range avail {
			h.router.Route(resend(p.presence, p.s.JID(), contact))
		}
	}
	if state.Sub.HasTo() && !out.Next.Sub.HasTo() {
		h.botGone(contact, avail)
	}
}

// botGone shows the user's available resources as unavailable a bot (a
// JID of an http_component host) whose presence the user no longer
// receives. The bot answers presence for itself and is always available;
// per RFC 6121 §3.3.3 the contact's server, here the bot's host on this
// very server, "MUST ... generate an outbound presence stanza of type
// "unavailable" from each of the contact's available resources to the
// user", which the component does not do, so the user's side does it for
// the bot's. Other contacts' servers send theirs.
func (h *localHost) botGone(contact xmpp.JID, avail []sessPresence) {
	if !h.router.AnswersPresence(contact) {
		return
	}
	for _, p := range avail {
		h.deliver(p.s, xmpp.NewPresence("unavailable", contact, p.s.JID()))
	}
}

// inboundSubscription applies RFC 6121 Appendix A.3 to a subscription
// stanza a contact sent the user.
func (h *localHost) inboundSubscription(st *xmpp.Stanza) {
	contact := st.From.Bare()
	if contact.IsZero() {
		return
	}
	// The user's lock alone while reading and committing, as for the
	// user's own changes; a user with no session gets the change in the
	// store, and the next login reads it.
	a, unlock := h.lockUser(st.To.Local())
	if a == nil {
		// No such user (or the store cannot be read). RFC 6121 §8.5.1:
		// "For a presence stanza of type "subscribe", "subscribed",
		// "unsubscribe", or "unsubscribed", the server MUST silently
		// ignore the stanza." An answer would also tell anyone which
		// accounts exist; a user of this server who asked learns it from
		// the error of §3.1.2 instead (outboundSubscription).
		return
	}
	state, exists := a.state(contact)
	in := subscription.ApplyInbound(state, st.Type, exists)
	push, err := h.saveState(a, contact, in.Next, in.Push)
	if err == nil && in.Next.PendingIn != state.PendingIn {
		err = h.savePending(a, contact, in.Next.PendingIn, st)
	}
	a.mu.Lock()
	avail := a.available()
	var told []Session
	if in.Deliver {
		if st.Type == subscription.Subscribe {
			// §3.1.3: a request goes to the available resources.
			for _, p := range avail {
				told = append(told, p.s)
			}
		} else {
			told = a.interested()
		}
	}
	a.mu.Unlock()
	unlock()
	if err != nil {
		h.log.Error("local: roster write", "user", a.local, "err", err)
		return
	}
	// §3.1.6, §3.2.3, §3.3.3: the stanza goes to the interested
	// resources, and "this MUST occur before sending the roster push".
	for _, s := range told {
		h.deliver(s, readdress(st, contact, a.bare))
	}
	h.pushItem(a, push)
	if in.SendUnavailable {
		// §3.3.3 step 3, before the auto-reply: the contact sees the user
		// go while it still counts as subscribed.
		for _, p := range avail {
			h.router.Route(xmpp.NewPresence("unavailable", p.s.JID(), contact))
		}
	}
	if in.AutoReply != "" {
		h.router.Route(xmpp.NewPresence(in.AutoReply, a.bare, contact))
	}
	if in.SendPresence {
		for _, p := range avail {
			h.router.Route(resend(p.presence, p.s.JID(), contact))
		}
	}
}

// saveState commits a contact's new subscription state, then puts it in
// memory; the user's lock must be held and a.mu not. It returns the item
// to push, nil for none.
//
// The roster item stores the pending inbound request's bit too. A change
// of that bit alone is not written when it is set, because the request's
// own document (savePending) already says so; it is written when it is
// cleared, without a push (nothing visible changed), or the stored item
// would keep a request that was withdrawn or answered and show it again
// after the next load.
func (h *localHost) saveState(a *account, contact xmpp.JID, next subscription.State, changed bool) (*storage.RosterItem, error) {
	old := a.roster[contact]
	if !changed && (old == nil || !old.PendingIn || next.PendingIn) {
		return nil, nil
	}
	item := storage.RosterItem{JID: contact.String()}
	if old != nil {
		item = *old
	} else if len(a.roster) >= h.limits.roster {
		return nil, errRosterFull
	}
	item.Subscription = next.Sub.String()
	item.Ask = next.PendingOut
	item.PendingIn = next.PendingIn
	item.Approved = next.Approved
	ctx, cancel := h.router.StoreContext()
	defer cancel()
	ver, err := h.store.PutRosterItem(ctx, h.name, a.local, item)
	if err != nil {
		return nil, err
	}
	item.Ver = ver
	a.mu.Lock()
	if a.loaded {
		setIn(&a.roster, contact, &item)
		a.ver = ver
	}
	a.mu.Unlock()
	if !changed {
		return nil, nil
	}
	return &item, nil
}

// savePending commits that an inbound subscription request is kept or
// forgotten, then puts that in memory; the user's lock must be held and
// a.mu not.
func (h *localHost) savePending(a *account, contact xmpp.JID, pending bool, st *xmpp.Stanza) error {
	ctx, cancel := h.router.StoreContext()
	defer cancel()
	if !pending {
		if err := h.store.DeleteXML(ctx, h.name, a.local, kindSubRequest, contact.String()); err != nil {
			return err
		}
		a.mu.Lock()
		delete(a.pending, contact)
		a.mu.Unlock()
		return nil
	}
	req := readdress(st, contact, a.bare)
	data := serializeStanza(req)
	if err := h.store.PutXML(ctx, h.name, a.local, kindSubRequest, contact.String(), data); err != nil {
		return err
	}
	a.mu.Lock()
	if a.loaded {
		setIn(&a.pending, contact, data)
	}
	a.mu.Unlock()
	return nil
}

// serializeStanza renders a stanza for storage.
func serializeStanza(st *xmpp.Stanza) []byte {
	var buf bytes.Buffer
	w := xmpp.NewWriter(&buf)
	_ = w.WriteElement(st.El)
	_ = w.Flush()
	return buf.Bytes()
}

// parseStored reads a stored stanza back.
func (h *localHost) parseStored(data []byte) (*xmpp.Stanza, error) {
	el, err := xmpp.ParseElement(string(data), h.stored)
	if err != nil {
		return nil, err
	}
	return xmpp.NewStanza(el)
}

package webhook

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// This file puts a bot host in group chats (XEP-0045) as an ordinary
// occupant: it talks to rooms only through stanzas, so a room of another
// server works as one of this server's. The bots of a host are one
// occupant per room, bot@<host>/rooms, under the host's nick: a JID of
// the bot's own domain (the router sends the room's stanzas back to the
// component, and a reply from it passes checkFrom), with a localpart, so
// that a room that lets only local users create rooms or keeps members
// by bare JID can name it (an owner makes the bot a member as
// bot@bots.example.com).

// NSBot marks the group-chat messages a Parley bot sends: a bot never
// posts a message that carries it, so two bots in a room do not answer
// each other, whichever servers they are on.
const NSBot = "urn:parley:bot:0"

// Namespaces of the room protocols the bot speaks.
const (
	nsMUC        = "http://jabber.org/protocol/muc"
	nsMUCUser    = "http://jabber.org/protocol/muc#user"
	nsConference = "jabber:x:conference" // XEP-0249
	nsReference  = "urn:xmpp:reference:0"
)

// The occupant the bots of a host are in every room.
const (
	roomLocal    = "bot"
	roomResource = "rooms"
)

// Bounds of the join loop.
const (
	// joinTimeout is how long a join may go unanswered before it counts
	// as failed (a remote room behind a dead link).
	joinTimeout = 30 * time.Second
	// maxRejoinWait bounds the wait between joins of a room that keeps
	// failing or kicking the bot.
	maxRejoinWait = 5 * time.Minute
	// stableAfter is how long the bot must have stayed in a room for a
	// kick to start the backoff afresh: a room that kicks it at every
	// join sees it back less and less often.
	stableAfter = time.Minute
	// maxInvitedRooms bounds the rooms joined on invitation.
	maxInvitedRooms = 100
)

// The states of a room.
const (
	roomIdle    = iota // not in it; the next join at due
	roomJoining        // join sent; failed if unanswered at due
	roomJoined
)

// roomState is one room the bot is in or tries to be in.
type roomState struct {
	jid      xmpp.JID // bare
	nick     string   // the bot's nick there (the room may change it)
	password string
	invited  bool // joined on invitation, not from the config
	state    int
	due      time.Time
	failures int // joins failed or kicks in a row
	joinedAt time.Time
	// occupantID is the bot's XEP-0421 id there, from its self-presence.
	occupantID string
	// real are the occupants' real JIDs, by nick, where the room shows
	// them (a non-anonymous room, or the bot a moderator).
	real map[string]xmpp.JID
}

// roomBots are a component's rooms and the loop that joins them.
type roomBots struct {
	c            *Component
	self         xmpp.JID // bot@<host>/rooms
	nick         string
	replyAll     bool
	joinOnInvite bool
	botDomains   map[string]bool
	rejoinAfter  time.Duration

	mu      sync.Mutex
	rooms   map[xmpp.JID]*roomState // by bare JID
	invited int
	started bool
	closed  bool
	wake    chan struct{}
}

// newRoomBots checks the room settings of cfg.
func newRoomBots(c *Component, cfg Config) (*roomBots, error) {
	self, err := xmpp.New(roomLocal, c.domain.Domain(), roomResource)
	if err != nil {
		return nil, fmt.Errorf("the bot's room JID: %w", err)
	}
	nick := cfg.Nick
	if nick == "" {
		nick = defaultNick(c.domain.Domain())
	}
	if _, err := xmpp.NormalizeResource(nick); err != nil || strings.TrimSpace(nick) == "" {
		return nil, fmt.Errorf("nick %q is not a JID resourcepart", nick)
	}
	r := &roomBots{
		c: c, self: self, nick: nick, replyAll: cfg.ReplyAll, joinOnInvite: cfg.JoinOnInvite,
		botDomains: map[string]bool{}, rejoinAfter: cfg.RejoinAfter,
		rooms: map[xmpp.JID]*roomState{}, wake: make(chan struct{}, 1),
	}
	if r.rejoinAfter <= 0 {
		r.rejoinAfter = defaultRejoinAfter
	}
	for _, d := range cfg.BotDomains {
		r.botDomains[strings.ToLower(d)] = true
	}
	for _, s := range cfg.Rooms {
		j, err := xmpp.Parse(s)
		if err != nil || j.Local() == "" || j.Resource() != "" {
			return nil, fmt.Errorf("room %q is not a bare JID room@service", s)
		}
		r.rooms[j] = &roomState{jid: j, nick: nick, real: map[string]xmpp.JID{}}
	}
	return r, nil
}

// JoinRooms starts joining the bot's rooms, once the server routes; the
// host type calls it when the server starts. Until then, and when the
// bot has no rooms, it joins nothing (invitations wait for it too).
// Calling it again does nothing.
func (c *Component) JoinRooms() {
	if c.rooms == nil {
		return
	}
	r := c.rooms
	r.mu.Lock()
	if r.started || r.closed {
		r.mu.Unlock()
		return
	}
	r.started = true
	r.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		r.run(c.ctx)
	}()
}

// RoomsJoined returns the rooms the bot is in, sorted.
func (c *Component) RoomsJoined() []string {
	if c.rooms == nil {
		return nil
	}
	c.rooms.mu.Lock()
	defer c.rooms.mu.Unlock()
	var out []string
	for j, rs := range c.rooms.rooms {
		if rs.state == roomJoined {
			out = append(out, j.String())
		}
	}
	slices.Sort(out)
	return out
}

// run joins the rooms that are due, gives up on joins unanswered for
// joinTimeout, and sleeps until the next of these or a wake.
func (r *roomBots) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		next := now.Add(time.Hour)
		var joins []*xmpp.Stanza
		r.mu.Lock()
		for _, rs := range r.rooms {
			if rs.state == roomJoining && !rs.due.After(now) {
				r.c.log.Warn("webhook: room did not answer the join", "room", rs.jid.String())
				r.failed(rs, now)
			}
			if rs.state == roomIdle && !rs.due.After(now) && !r.closed {
				joins = append(joins, r.joinStanza(rs))
				rs.state, rs.due = roomJoining, now.Add(joinTimeout)
			}
			if rs.state != roomJoined && rs.due.Before(next) {
				next = rs.due
			}
		}
		r.mu.Unlock()
		for _, st := range joins {
			r.c.route(st)
		}
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-timer.C:
		}
	}
}

// poke wakes the join loop.
func (r *roomBots) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// joinStanza is the bot's join of rs (XEP-0045 §7.2), asking for no
// history (§7.2.15): what was said before it came is not posted again.
// r.mu is held.
func (r *roomBots) joinStanza(rs *roomState) *xmpp.Stanza {
	to, _ := rs.jid.WithResource(rs.nick)
	st := xmpp.NewPresence("", r.self, to)
	x := xmpp.NewElementNS(nsMUC, "x")
	x.CreateElement("history").CreateAttr("maxstanzas", "0")
	if rs.password != "" {
		x.CreateElement("password").SetText(rs.password)
	}
	st.El.AddChild(x)
	return st
}

// failed schedules the next join of rs after a failed join or a kick:
// rejoinAfter, doubling with each failure in a row, at most
// maxRejoinWait, ±20 %. r.mu is held.
func (r *roomBots) failed(rs *roomState, now time.Time) {
	rs.failures++
	wait := r.rejoinAfter << min(rs.failures-1, 20)
	if limit := max(maxRejoinWait, r.rejoinAfter); wait > limit || wait <= 0 {
		wait = limit
	}
	var b [1]byte
	_, _ = rand.Read(b[:])
	wait += time.Duration(int64(wait) * (int64(b[0]) - 128) / 640)
	rs.state, rs.due = roomIdle, now.Add(wait)
	rs.occupantID = ""
	clear(rs.real)
}

// tracks reports whether room is a room the bot is in or joins.
func (r *roomBots) tracks(room xmpp.JID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rooms[room] != nil
}

// handle takes what the bot's rooms send it, and invitations: it reports
// whether st was dealt with here. Private messages and iqs from a room's
// occupants go on to the webhook as usual (enqueue marks them inRoom).
func (r *roomBots) handle(st *xmpp.Stanza) bool {
	if r.joinOnInvite && st.Kind == xmpp.KindMessage && st.Type != "error" {
		if room, pw, ok := invitation(st); ok {
			r.invite(room, pw, st)
			return true
		}
	}
	if st.To != r.self {
		return false
	}
	r.mu.Lock()
	rs := r.rooms[st.From.Bare()]
	if rs == nil {
		r.mu.Unlock()
		return false
	}
	switch st.Kind {
	case xmpp.KindPresence:
		r.presence(rs, st)
		r.mu.Unlock()
		if r.c.cfg.PostPresence && st.Type != "error" {
			r.c.enqueue(st, true)
		}
		return true
	case xmpp.KindMessage:
		switch st.Type {
		case "error":
			r.messageError(rs, st)
			r.mu.Unlock()
			return true
		case "groupchat":
			post := r.wants(rs, st)
			r.mu.Unlock()
			if post && r.c.cfg.PostMessages {
				r.c.enqueue(st, true)
			}
			return true
		}
	}
	r.mu.Unlock()
	return false
}

// presence follows the bot's state in rs from the room's presence: its
// self-presence (status 110) says it joined, changed nick or left; the
// others' presence show their real JIDs, when the room shows them. r.mu
// is held.
func (r *roomBots) presence(rs *roomState, st *xmpp.Stanza) {
	now := time.Now()
	nick := st.From.Resource()
	x := xmpp.Child(st.El, nsMUCUser, "x")
	codes := mucStatus(x)
	self := slices.Contains(codes, "110")
	switch {
	case st.Type == "error":
		if rs.state == roomJoining {
			r.c.log.Warn("webhook: room refused the join", "room", rs.jid.String(), "nick", rs.nick,
				"error", errorCondition(st), "failures", rs.failures+1)
			r.failed(rs, now)
			r.poke()
		}
	case self && st.Type == "unavailable" && r.closed:
		// The room's answer to leaveAll's own exit at shutdown: not a
		// loss to log as one, nor a rejoin to schedule.
		return
	case self && st.Type == "unavailable":
		if slices.Contains(codes, "303") {
			if it := x.SelectElement("item"); it != nil && it.SelectAttrValue("nick", "") != "" {
				rs.nick = it.SelectAttrValue("nick", "")
			}
			return
		}
		if rs.state == roomJoined && now.Sub(rs.joinedAt) >= stableAfter {
			rs.failures = 0
		}
		r.c.log.Warn("webhook: out of the room; joining again later", "room", rs.jid.String(), "codes", codes,
			"failures", rs.failures+1)
		r.failed(rs, now)
		r.poke()
	case self && st.Type == "":
		// The room may have given another nick than the one asked
		// for (status 210): the self-presence's is the bot's.
		rs.nick = nick
		if o := xmpp.Child(st.El, nsOccupantID, "occupant-id"); o != nil {
			rs.occupantID = o.SelectAttrValue("id", "")
		}
		if rs.state != roomJoined {
			rs.state, rs.joinedAt = roomJoined, now
			r.c.log.Info("webhook: joined room", "room", rs.jid.String(), "nick", nick)
		}
	case st.Type == "unavailable":
		delete(rs.real, nick)
	case st.Type == "" && x != nil:
		if it := x.SelectElement("item"); it != nil {
			if j, err := xmpp.Parse(it.SelectAttrValue("jid", "")); err == nil {
				rs.real[nick] = j
			}
		}
	}
}

// messageError handles an error message from rs: while joined, one that
// says the bot is not an occupant (the room restarted, or lost it) makes
// it join again. r.mu is held.
func (r *roomBots) messageError(rs *roomState, st *xmpp.Stanza) {
	if rs.state != roomJoined {
		return
	}
	switch errorCondition(st) {
	case xmpp.NotAcceptable, xmpp.ItemNotFound:
		r.c.log.Warn("webhook: the room says the bot is not in it; joining again", "room", rs.jid.String())
		r.failed(rs, time.Now())
		r.poke()
	}
}

// wants decides whether a group-chat message of rs is posted: never the
// room's own (no nick), its history (a delay from the room), a subject or
// a message without a body, the bot's own (its nick or its occupant-id),
// another bot's (the NSBot marker, or a real JID of one of the server's
// bot domains); and with reply_to = "mentions", only one that mentions
// the bot. r.mu is held.
func (r *roomBots) wants(rs *roomState, st *xmpp.Stanza) bool {
	nick := st.From.Resource()
	if rs.state != roomJoined || nick == "" || fromHistory(st, rs.jid) {
		return false
	}
	body := bodyOf(st)
	if body == "" {
		return false
	}
	if nick == rs.nick {
		return false
	}
	if o := xmpp.Child(st.El, nsOccupantID, "occupant-id"); o != nil && rs.occupantID != "" &&
		o.SelectAttrValue("id", "") == rs.occupantID {
		return false
	}
	if xmpp.Child(st.El, NSBot, "bot") != nil {
		return false
	}
	if real, ok := rs.real[nick]; ok && (r.botDomains[real.Domain()] || real.Bare() == r.self.Bare()) {
		return false
	}
	return r.replyAll || mentions(st, body, rs.jid, rs.nick, r.self)
}

// invite joins the room an invitation names, when the bot is not in it
// yet and has room for it (maxInvitedRooms).
func (r *roomBots) invite(room xmpp.JID, password string, st *xmpp.Stanza) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if rs := r.rooms[room]; rs != nil {
		if password != "" {
			rs.password = password
		}
		return
	}
	if r.invited >= maxInvitedRooms {
		r.c.log.Warn("webhook: invitation ignored: the bot joined as many rooms on invitation as it may",
			"room", room.String(), "from", st.From.String(), "limit", maxInvitedRooms)
		return
	}
	r.invited++
	r.rooms[room] = &roomState{jid: room, nick: r.nick, password: password, invited: true,
		real: map[string]xmpp.JID{}, due: time.Now()}
	r.c.log.Info("webhook: joining room on invitation", "room", room.String(), "from", st.From.String())
	r.poke()
}

// leaveAll leaves every room the bot is in or joins (XEP-0045 §7.14), and
// stops joining.
func (r *roomBots) leaveAll() {
	r.mu.Lock()
	r.closed = true
	var out []*xmpp.Stanza
	for _, rs := range r.rooms {
		if rs.state == roomIdle {
			continue
		}
		to, _ := rs.jid.WithResource(rs.nick)
		out = append(out, xmpp.NewPresence("unavailable", r.self, to))
		rs.state = roomIdle
	}
	r.mu.Unlock()
	for _, st := range out {
		r.c.route(st)
	}
}

// invitation reads an invitation to a room: a direct one (XEP-0249 §2:
// <x xmlns='jabber:x:conference' jid='room'/>), or a mediated one
// (XEP-0045 §7.8.2: from the room's bare JID, <x xmlns='...muc#user'>
// with an <invite/>).
func invitation(st *xmpp.Stanza) (room xmpp.JID, password string, ok bool) {
	if x := xmpp.Child(st.El, nsConference, "x"); x != nil {
		j, err := xmpp.Parse(x.SelectAttrValue("jid", ""))
		if err != nil || j.Local() == "" || j.Resource() != "" {
			return xmpp.JID{}, "", false
		}
		return j, x.SelectAttrValue("password", ""), true
	}
	x := xmpp.Child(st.El, nsMUCUser, "x")
	if x == nil || x.SelectElement("invite") == nil || st.From.Local() == "" || st.From.Resource() != "" {
		return xmpp.JID{}, "", false
	}
	if p := x.SelectElement("password"); p != nil {
		password = p.Text()
	}
	return st.From, password, true
}

// mentions reports whether a group-chat message mentions the bot: an
// XEP-0372 reference of type mention to its occupant JID (room/nick) or
// its own JID, or its nick at the start of the body as "nick:", "nick,"
// or "@nick" (case-insensitive).
func mentions(st *xmpp.Stanza, body string, room xmpp.JID, nick string, self xmpp.JID) bool {
	for _, ref := range st.El.ChildElements() {
		if ref.Tag != "reference" || xmpp.NS(ref) != nsReference || ref.SelectAttrValue("type", "") != "mention" {
			continue
		}
		uri, ok := strings.CutPrefix(ref.SelectAttrValue("uri", ""), "xmpp:")
		if !ok {
			continue
		}
		if i := strings.IndexAny(uri, "?#"); i >= 0 {
			uri = uri[:i]
		}
		if u, err := url.PathUnescape(uri); err == nil {
			uri = u
		}
		j, err := xmpp.Parse(uri)
		if err != nil {
			continue
		}
		if (j.Bare() == room && j.Resource() == nick) || j.Bare() == self.Bare() {
			return true
		}
	}
	body = strings.TrimLeftFunc(body, unicode.IsSpace)
	if rest, ok := cutFold(body, "@"+nick); ok {
		r, _ := utf8.DecodeRuneInString(rest)
		return rest == "" || !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-')
	}
	if rest, ok := cutFold(body, nick); ok {
		return strings.HasPrefix(rest, ":") || strings.HasPrefix(rest, ",")
	}
	return false
}

// cutFold cuts prefix from s, compared case-insensitively (Unicode simple
// folding, as strings.EqualFold).
func cutFold(s, prefix string) (string, bool) {
	n := 0
	for range prefix {
		n++
	}
	i := 0
	for j := range s {
		if i == n {
			if strings.EqualFold(s[:j], prefix) {
				return s[j:], true
			}
			return "", false
		}
		i++
	}
	if i == n && strings.EqualFold(s, prefix) {
		return "", true
	}
	return "", false
}

// fromHistory reports whether a room's message is history: it has a
// delay stamped by the room (XEP-0045 §7.2.15) or its service.
func fromHistory(st *xmpp.Stanza, room xmpp.JID) bool {
	for _, d := range st.El.ChildElements() {
		if d.Tag != "delay" || xmpp.NS(d) != xmpp.NSDelay {
			continue
		}
		j, err := xmpp.Parse(d.SelectAttrValue("from", ""))
		if err == nil && (j.Bare() == room || j == room.DomainJID()) {
			return true
		}
	}
	return false
}

// bodyOf returns a message's body text: its first <body/> in the
// stanza's own namespace.
func bodyOf(st *xmpp.Stanza) string {
	if b := xmpp.Child(st.El, xmpp.NS(st.El), "body"); b != nil {
		return b.Text()
	}
	return ""
}

// mucStatus returns the status codes of a muc#user <x/> (nil: none).
func mucStatus(x *etree.Element) []string {
	if x == nil {
		return nil
	}
	var out []string
	for _, s := range x.SelectElements("status") {
		out = append(out, s.SelectAttrValue("code", ""))
	}
	return out
}

// errorCondition returns the condition of an error stanza, "" for none.
func errorCondition(st *xmpp.Stanza) xmpp.StanzaCondition {
	if e := xmpp.ParseStanzaError(st.El); e != nil {
		return e.Condition
	}
	return ""
}

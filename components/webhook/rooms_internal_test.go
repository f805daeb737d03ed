package webhook

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/xmpp"
)

// newRoomComponent is a component in team@muc.example (not joined yet),
// with what edit changes of its config. Its join loop does not run until
// the test calls JoinRooms.
func newRoomComponent(t *testing.T, edit func(*Config)) (*Component, *recorder) {
	t.Helper()
	rec := &recorder{}
	cfg := Config{Domain: "bots.example", PostURL: "http://127.0.0.1:1/", Router: rec, Concurrency: 1, PostMessages: true,
		Rooms: []string{"team@muc.example"}, Nick: "bots", BotDomains: []string{"bots.example", "other.example"},
		RejoinAfter: time.Minute}
	if edit != nil {
		edit(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.cancel(); c.wg.Wait() })
	return c, rec
}

// feed hands the component a stanza from a room, as the router would.
func feed(t *testing.T, c *Component, format string, args ...any) {
	t.Helper()
	c.HandleStanza(mustStanza(t, fmt.Sprintf(format, args...)))
}

// room returns the state of team@muc.example.
func room(c *Component) *roomState { return c.rooms.rooms[xmpp.MustParse("team@muc.example")] }

const selfPresence = `<presence from='team@muc.example/bots' to='bot@bots.example/rooms'>` +
	`<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/><status code='110'/></x>` +
	`<occupant-id xmlns='urn:xmpp:occupant-id:0' id='self-oid'/></presence>`

// TestRoomWants: which group-chat messages are posted, rule by rule.
func TestRoomWants(t *testing.T) {
	const gc = `<message from='team@muc.example/%s' to='bot@bots.example/rooms' type='groupchat'>%s</message>`
	cases := []struct {
		name, nick, children string
		mentions, all        bool
	}{
		{"a mention", "Alice", "<body>bots: hi</body>", true, true},
		{"no mention", "Alice", "<body>hi</body>", false, true},
		{"the bot's own nick", "bots", "<body>bots: hi</body>", false, false},
		{"the bot's own occupant-id under another nick", "Bots2",
			"<body>bots: hi</body><occupant-id xmlns='urn:xmpp:occupant-id:0' id='self-oid'/>", false, false},
		{"another occupant-id", "Alice", "<body>bots: hi</body><occupant-id xmlns='urn:xmpp:occupant-id:0' id='alice-oid'/>", true, true},
		{"a bot's marker", "Alice", "<body>bots: hi</body><bot xmlns='urn:parley:bot:0'/>", false, false},
		{"a real JID of one of the server's bot domains", "Robo", "<body>bots: hi</body>", false, false},
		{"a real JID of a user", "Carol", "<body>bots: hi</body>", true, true},
		{"history: a delay from the room", "Alice",
			"<body>bots: hi</body><delay xmlns='urn:xmpp:delay' from='team@muc.example' stamp='2026-01-01T00:00:00Z'/>", false, false},
		{"a delay from the sender's own server", "Alice",
			"<body>bots: hi</body><delay xmlns='urn:xmpp:delay' from='example' stamp='2026-01-01T00:00:00Z'/>", true, true},
		{"a subject", "Alice", "<subject>bots: hi</subject>", false, false},
		{"no body", "Alice", "<active xmlns='http://jabber.org/protocol/chatstates'/>", false, false},
		{"a reference to the bot's occupant JID", "Alice",
			"<body>hi you</body><reference xmlns='urn:xmpp:reference:0' type='mention' uri='xmpp:team@muc.example/bots'/>", true, true},
		{"a reference to the bot's own JID", "Alice",
			"<body>hi you</body><reference xmlns='urn:xmpp:reference:0' type='mention' uri='xmpp:bot@bots.example'/>", true, true},
		{"a reference of another type", "Alice",
			"<body>hi you</body><reference xmlns='urn:xmpp:reference:0' type='data' uri='xmpp:team@muc.example/bots'/>", false, true},
	}
	for _, all := range []bool{false, true} {
		c, _ := newRoomComponent(t, func(cfg *Config) { cfg.ReplyAll = all })
		rs := room(c)
		rs.state = roomJoining
		feed(t, c, selfPresence)
		feed(t, c, `<presence from='team@muc.example/Robo' to='bot@bots.example/rooms'><x xmlns='http://jabber.org/protocol/muc#user'>`+
			`<item affiliation='none' role='participant' jid='bot@other.example/rooms'/></x></presence>`)
		feed(t, c, `<presence from='team@muc.example/Carol' to='bot@bots.example/rooms'><x xmlns='http://jabber.org/protocol/muc#user'>`+
			`<item affiliation='none' role='participant' jid='carol@example/phone'/></x></presence>`)
		if rs.state != roomJoined || rs.occupantID != "self-oid" {
			t.Fatalf("after the self-presence: state %d, occupant-id %q", rs.state, rs.occupantID)
		}
		for _, tc := range cases {
			st := mustStanza(t, fmt.Sprintf(gc, tc.nick, tc.children))
			c.rooms.mu.Lock()
			got := c.rooms.wants(rs, st)
			c.rooms.mu.Unlock()
			if want := map[bool]bool{false: tc.mentions, true: tc.all}[all]; got != want {
				t.Errorf("reply all %v, %s: posted %v, want %v", all, tc.name, got, want)
			}
		}
	}
}

// TestRoomRejoinBackoff: a refused join, or a kick, schedules the next
// join rejoin_after later, doubling with each failure in a row up to 5
// minutes; a kick after a stable stay starts afresh.
func TestRoomRejoinBackoff(t *testing.T) {
	c, _ := newRoomComponent(t, nil)
	rs := room(c)
	const refused = `<presence from='team@muc.example/bots' to='bot@bots.example/rooms' type='error'>` +
		`<error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`
	const kicked = `<presence from='team@muc.example/bots' to='bot@bots.example/rooms' type='unavailable'>` +
		`<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/><status code='110'/><status code='307'/></x></presence>`
	steps := []struct {
		name   string
		do     func()
		minute float64 // the wait before the next join, in minutes (±20 %)
	}{
		{"refused", func() { rs.state = roomJoining; feed(t, c, refused) }, 1},
		{"refused again", func() { rs.state = roomJoining; feed(t, c, refused) }, 2},
		{"kicked right after joining", func() { rs.state = roomJoining; feed(t, c, selfPresence); feed(t, c, kicked) }, 4},
		{"refused once more: at most 5 minutes", func() { rs.state = roomJoining; feed(t, c, refused) }, 5},
		{"kicked after a stable stay", func() {
			rs.state = roomJoining
			feed(t, c, selfPresence)
			rs.joinedAt = time.Now().Add(-2 * stableAfter)
			feed(t, c, kicked)
		}, 1},
	}
	for _, s := range steps {
		s.do()
		wait := time.Until(rs.due).Minutes()
		if rs.state != roomIdle || wait < 0.79*s.minute || wait > 1.21*s.minute {
			t.Fatalf("%s: state %d, next join in %.2f minutes; want idle, %.0f minutes ±20%%", s.name, rs.state, wait, s.minute)
		}
	}
}

// TestRoomLeaveAtShutdownIsNoLoss: the room's unavailable self-presence
// that answers leaveAll (the bot leaving at shutdown) is not logged as the
// bot being out of the room and schedules no rejoin; the same presence
// before leaveAll is (a kick the room did not explain, say).
func TestRoomLeaveAtShutdownIsNoLoss(t *testing.T) {
	const left = `<presence from='team@muc.example/bots' to='bot@bots.example/rooms' type='unavailable'>` +
		`<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/><status code='110'/></x></presence>`
	for _, shutdown := range []bool{true, false} {
		t.Run(fmt.Sprintf("after_leaveAll=%v", shutdown), func(t *testing.T) {
			var logs bytes.Buffer
			c, _ := newRoomComponent(t, func(cfg *Config) { cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
			rs := room(c)
			rs.state = roomJoining
			feed(t, c, selfPresence)
			if shutdown {
				c.rooms.leaveAll()
			}
			feed(t, c, left)
			logged := strings.Contains(logs.String(), "out of the room")
			if logged == shutdown || (rs.failures > 0) == shutdown {
				t.Errorf("logged %v, failures %d; want the loss logged and counted only before leaveAll:\n%s", logged, rs.failures, logs.String())
			}
		})
	}
}

// nthRouted waits until rec has more than n stanzas and returns the
// (n+1)th.
func nthRouted(t *testing.T, rec *recorder, n int) *xmpp.Stanza {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec.mu.Lock()
		if len(rec.got) > n {
			st := rec.got[n]
			rec.mu.Unlock()
			return st
		}
		rec.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("nothing routed after %d stanzas", n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checkJoin checks that st is the bot's join of room as bots, asking for
// no history, with password when not "".
func checkJoin(t *testing.T, st *xmpp.Stanza, room, password string) {
	t.Helper()
	x := xmpp.Child(st.El, nsMUC, "x")
	if st.Kind != xmpp.KindPresence || st.Type != "" || st.To.String() != room+"/bots" || st.From.String() != "bot@bots.example/rooms" ||
		x == nil || x.SelectElement("history") == nil || x.SelectElement("history").SelectAttrValue("maxstanzas", "") != "0" {
		t.Fatalf("routed %s; want a join of %s/bots from bot@bots.example/rooms with <history maxstanzas='0'/>", st.El.Tag+" to "+st.To.String(), room)
	}
	pw := ""
	if p := x.SelectElement("password"); p != nil {
		pw = p.Text()
	}
	if pw != password {
		t.Fatalf("the join's password is %q, want %q", pw, password)
	}
}

// TestRoomJoinLoop: the loop joins at start, again after a refusal and
// after a kick, each time with no history.
func TestRoomJoinLoop(t *testing.T) {
	c, rec := newRoomComponent(t, func(cfg *Config) { cfg.RejoinAfter = 10 * time.Millisecond })
	c.JoinRooms()
	checkJoin(t, nthRouted(t, rec, 0), "team@muc.example", "")
	feed(t, c, `<presence from='team@muc.example/bots' to='bot@bots.example/rooms' type='error'>`+
		`<error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`)
	checkJoin(t, nthRouted(t, rec, 1), "team@muc.example", "")
	feed(t, c, selfPresence)
	if got := c.RoomsJoined(); strings.Join(got, " ") != "team@muc.example" {
		t.Fatalf("joined %v after the self-presence", got)
	}
	feed(t, c, `<presence from='team@muc.example/bots' to='bot@bots.example/rooms' type='unavailable'>`+
		`<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/><status code='110'/><status code='307'/></x></presence>`)
	checkJoin(t, nthRouted(t, rec, 2), "team@muc.example", "")
}

// TestRoomMediatedInvitation: a mediated invitation (XEP-0045 §7.8.2),
// from the room's bare JID, makes the bot join with the password it
// carries; a muc#user invite from a user's full JID is not one.
func TestRoomMediatedInvitation(t *testing.T) {
	c, rec := newRoomComponent(t, func(cfg *Config) { cfg.Rooms = nil; cfg.JoinOnInvite = true })
	c.JoinRooms()
	feed(t, c, `<message from='ops@muc.example' to='helper@bots.example'><x xmlns='http://jabber.org/protocol/muc#user'>`+
		`<invite from='alice@example/phone'><reason>help</reason></invite><password>pw</password></x></message>`)
	checkJoin(t, nthRouted(t, rec, 0), "ops@muc.example", "pw")
	feed(t, c, `<message from='alice@example/phone' to='bot@bots.example'><x xmlns='http://jabber.org/protocol/muc#user'>`+
		`<invite to='bot@bots.example'/></x></message>`)
	if !c.rooms.tracks(xmpp.MustParse("ops@muc.example")) || c.rooms.tracks(xmpp.MustParse("alice@example")) {
		t.Fatal("the bot tracks the wrong rooms")
	}
}

// TestRoomStanzasNeverGetErrors: what comes from a room the bot is in is
// never answered with an error (the room would take the bot for gone);
// what comes from anyone else is.
func TestRoomStanzasNeverGetErrors(t *testing.T) {
	c, rec := newRoomComponent(t, nil)
	for _, tc := range []struct {
		from, typ string
		bounced   bool
	}{
		{"team@muc.example/Alice", "groupchat", false},
		{"team@muc.example/Alice", "chat", false},
		{"alice@example/phone", "chat", true},
	} {
		rec.mu.Lock()
		rec.got = nil
		rec.mu.Unlock()
		st := mustStanza(t, fmt.Sprintf(`<message from='%s' to='bot@bots.example/rooms' type='%s'><body>x</body></message>`, tc.from, tc.typ))
		c.bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, "down"))
		rec.mu.Lock()
		n := len(rec.got)
		rec.mu.Unlock()
		if (n > 0) != tc.bounced {
			t.Errorf("a %s message from %s: %d errors routed, want bounced=%v", tc.typ, tc.from, n, tc.bounced)
		}
	}
}

package interop

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/parley-im/parley/components/muc"
	"github.com/parley-im/parley/components/webhook"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/parleytest/webhooktest"
	"github.com/parley-im/parley/xmpp"
)

// mucService is the muc host of the group-chat interop tests; team and
// lobby are its rooms.
const (
	mucService = "muc.localhost"
	teamRoom   = "team@" + mucService
	lobbyRoom  = "lobby@" + mucService
)

// withMUCService adds the muc host, with its defaults as a file would
// have them (archives on).
func withMUCService() parleytest.Option {
	return parleytest.WithConfig(func(c *conf.Config) {
		c.Hosts = append(c.Hosts, conf.Host{Name: mucService, Type: muc.HostType,
			Options: &muc.Options{RestrictRoomCreation: muc.CreateLocal, HistoryLength: 20, AvatarMaxBytes: 64 * conf.KiB}})
	})
}

// rawJoin joins room as nick from a raw connection and reads to the
// subject, the last stanza of a join (XEP-0045 §7.2.15); it fails on an
// error presence.
func rawJoin(t *testing.T, c *parleytest.Conn, room, nick string) []*xmpp.Stanza {
	t.Helper()
	c.Send("<presence to='%s/%s'><x xmlns='%s'/></presence>", room, nick, muc.NSMUC)
	last, before := c.WaitFor("the end of the join of "+room, func(st *xmpp.Stanza) bool {
		if st.Kind == xmpp.KindPresence && st.Type == "error" && st.From.Bare().String() == room {
			t.Fatalf("join of %s: %s", room, c.String(st.El))
		}
		return st.Kind == xmpp.KindMessage && st.From.Bare().String() == room &&
			xmpp.Child(st.El, "", "subject") != nil && xmpp.Child(st.El, "", "body") == nil
	})
	return append(before, last)
}

// rawSay sends a groupchat body to room and waits for its echo.
func rawSay(t *testing.T, c *parleytest.Conn, room, body string) {
	t.Helper()
	id := parleytest.NewID("gc")
	c.Send("<message to='%s' type='groupchat' id='%s'><body>%s</body></message>", room, id, escape(body))
	c.WaitFor("the echo of "+id, func(st *xmpp.Stanza) bool { return st.Kind == xmpp.KindMessage && st.ID == id })
}

// mucCodes are the muc#user status codes of st.
func mucCodes(st *xmpp.Stanza) []string {
	x := xmpp.Child(st.El, muc.NSMUCUser, "x")
	if x == nil {
		return nil
	}
	var out []string
	for _, s := range x.SelectElements("status") {
		out = append(out, s.SelectAttrValue("code", ""))
	}
	return out
}

// codes reads a step's list of status codes.
func codes(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, c := range list {
		out = append(out, fmt.Sprint(c))
	}
	return out
}

// detailOf reads a nested object of a step's detail.
func detailOf(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// TestSlixmppMUC runs slixmpp's xep_0045 as an application uses it
// against the muc host, with bob as a raw occupant: joining a room bob made
// (the occupant list, the subject, history bounded by maxstanzas),
// creating one, its config form got and submitted, a message echoed with
// the room's stanza-id and occupant-id, a nick change, a kick and a ban
// through the plugin's set_role and set_affiliation, the room's archive
// (xep_0313 with jid=room) in RSM pages, forwards and backwards, and
// leaving.
func TestSlixmppMUC(t *testing.T) {
	t.Parallel()
	s := parleytest.Start(t, withMUCService())
	s.AddUser(aliceJID, clientPassword)
	s.AddUser(bobJID, bobPassword)
	bob := s.Login(bobJID, bobPassword, "desk")
	defer bob.Close()
	bob.Send("<presence/>")
	bob.Sync()
	rawJoin(t, bob, lobbyRoom, "Bob")
	bob.ExpectResult(bob.IQ("set", lobbyRoom, "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query>"),
		"the lobby's instant config")
	bob.Send("<message to='%s' type='groupchat'><subject>Welcome &lt;&amp;&gt;</subject></message>", lobbyRoom)
	rawSay(t, bob, lobbyRoom, "first")
	rawSay(t, bob, lobbyRoom, "second")

	var echo map[string]any // the message step's detail
	cfg := modernConfig{Case: "muc-room", Peer: bobJID, Room: teamRoom, Lobby: lobbyRoom, Page: 2,
		Accounts: map[string]modernAccount{"alice": {aliceJID, clientPassword, "laptop"}}}
	r := runSlixmpp(t, s, "slixmpp_muc_client.py", cfg, func(st stepResult, next func()) {
		switch st.Step {
		case "message":
			echo = st.Detail
		case "ready":
			rawJoin(t, bob, teamRoom, "Bob")
			next()
		case "kicked":
			// What bob saw before his kick: alice's message with the
			// stanza-id she got, and her nick change.
			kick, before := bob.WaitFor("bob's kick", func(st *xmpp.Stanza) bool {
				return st.Kind == xmpp.KindPresence && st.Type == "unavailable" && st.From.String() == teamRoom+"/Bob"
			})
			if !slices.Contains(mucCodes(kick), "307") || !slices.Contains(mucCodes(kick), "110") {
				t.Errorf("bob's kick is %s; want 307 and 110", bob.String(kick.El))
			}
			var sawMessage, sawNick bool
			for _, b := range before {
				if b.Kind == xmpp.KindMessage && b.Type == "groupchat" && parleytest.Body(b) == "hi <&> ☃" {
					sawMessage = true
					sid := xmpp.Child(b.El, "urn:xmpp:sid:0", "stanza-id")
					if sid == nil || echo == nil || sid.SelectAttrValue("id", "") != echo["stanza_id"] {
						t.Errorf("bob got %s; want the stanza-id alice's echo had (%v)", bob.String(b.El), echo["stanza_id"])
					}
				}
				if b.Kind == xmpp.KindPresence && b.From.String() == teamRoom+"/Alice" && slices.Contains(mucCodes(b), "303") {
					sawNick = true
				}
			}
			if !sawMessage || !sawNick {
				t.Errorf("before his kick bob saw alice's message: %v, her nick change: %v; want both:\n%s", sawMessage, sawNick, bob.Dump(before))
			}
			rawJoin(t, bob, teamRoom, "Bob")
			next()
		}
	})

	join := r.step("join")
	if c := codes(join["codes"]); !slices.Contains(c, "110") || slices.Contains(c, "201") || join["role"] != "participant" ||
		join["affiliation"] != "none" {
		t.Errorf("slixmpp: join: %v; want a participant's self-presence, 110 and no 201", join)
	}
	// slixmpp counts its own self-presence among the occupants.
	if fmt.Sprint(join["occupants"]) != "[Alice Bob]" || join["subject"] != "Welcome <&>" || fmt.Sprint(join["history"]) != "[second]" {
		t.Errorf("slixmpp: join: occupants %v, subject %q, history %v; want [Alice Bob], %q, the last message only (maxstanzas=1)",
			join["occupants"], join["subject"], join["history"], "Welcome <&>")
	}
	create := r.step("create")
	if c := codes(create["codes"]); !slices.Contains(c, "201") || !slices.Contains(c, "110") || create["affiliation"] != "owner" ||
		create["role"] != "moderator" {
		t.Errorf("slixmpp: create: %v; want 110 and 201, owner, moderator", create)
	}
	config := r.step("config")
	if config["roomname"] != "Team <&> room" || config["persistent"] != true {
		t.Errorf("slixmpp: config: the form after the submit has roomname %q, persistent %v; want what was submitted",
			config["roomname"], config["persistent"])
	}
	msg := r.step("message")
	if msg["body"] != "hi <&> ☃" || msg["stanza_id"] == "" || msg["stanza_id_by"] != teamRoom || msg["occupant_id"] == "" ||
		msg["nick"] != "Alice" {
		t.Errorf("slixmpp: the echo %v; want the body from Alice with the room's stanza-id and an occupant-id", msg)
	}
	nick := r.step("nick")
	gone, back := detailOf(nick["unavailable"]), detailOf(nick["available"])
	if c := codes(gone["codes"]); !slices.Contains(c, "303") || !slices.Contains(c, "110") || gone["item_nick"] != "Alicia" {
		t.Errorf("slixmpp: nick change: the unavailable presence %v; want 303, 110 and the new nick", gone)
	}
	if c := codes(back["codes"]); !slices.Contains(c, "110") || back["affiliation"] != "owner" {
		t.Errorf("slixmpp: nick change: the new self-presence %v; want 110, still owner", back)
	}
	if kick := r.step("kick"); !slices.Contains(codes(kick["codes"]), "307") || kick["role"] != "none" {
		t.Errorf("slixmpp: kick: Bob's presence %v; want 307, role none", kick)
	}
	ban := r.step("ban")
	if p := detailOf(ban["presence"]); !slices.Contains(codes(p["codes"]), "301") || p["affiliation"] != "outcast" {
		t.Errorf("slixmpp: ban: Bob's presence %v; want 301, outcast", p)
	}
	if fmt.Sprint(ban["outcasts"]) != "["+bobJID+"]" {
		t.Errorf("slixmpp: ban: the outcast list %v; want [%s]", ban["outcasts"], bobJID)
	}
	archive := r.step("archive")
	var want [][]string
	for i, e := range triples(archive["echoes"], 2) {
		from := "Alicia"
		if i == 0 {
			from = "Alice"
		}
		want = append(want, []string{from, e[0], e[1]})
	}
	if got := triples(archive["messages"], 3); fmt.Sprint(got) != fmt.Sprint(want) || len(want) != 4 {
		t.Errorf("slixmpp: the room's archive:\n got %q\nwant %q (the echoes' stanza-ids as archive ids)", got, want)
	}
	var ids []string
	for _, w := range slices.Backward(want) {
		ids = append(ids, w[2])
	}
	if got := fmt.Sprint(archive["backward"]); got != fmt.Sprint(ids) {
		t.Errorf("slixmpp: the room's archive backwards (reverse=True): %s; want %v", got, ids)
	}
	pages, _ := archive["pages"].([]any)
	full := 0
	for _, p := range pages {
		if fmt.Sprint(p) == "2" {
			full++
		}
	}
	if full != 2 {
		t.Errorf("slixmpp: the archive came in pages %v; want two of 2 (max=2)", pages)
	}
	if left := r.step("leave"); left["type"] != "unavailable" || !slices.Contains(codes(left["codes"]), "110") {
		t.Errorf("slixmpp: leave: %v; want the unavailable self-presence", left)
	}
	r.step("done")

	ban301, _ := bob.WaitFor("bob's ban", func(st *xmpp.Stanza) bool {
		return st.Kind == xmpp.KindPresence && st.Type == "unavailable" && st.From.String() == teamRoom+"/Bob"
	})
	if !slices.Contains(mucCodes(ban301), "301") {
		t.Errorf("bob's ban is %s; want 301", bob.String(ban301.El))
	}
	// Banned: bob cannot come back (XEP-0045 §7.2.8).
	bob.Send("<presence to='%s/Bob'><x xmlns='%s'/></presence>", teamRoom, muc.NSMUC)
	st, _ := bob.WaitFor("the answer to bob's join", func(st *xmpp.Stanza) bool {
		return st.Kind == xmpp.KindPresence && st.From.Bare().String() == teamRoom
	})
	if st.Type != "error" || parleytest.Condition(st) != xmpp.Forbidden {
		t.Errorf("bob's join after his ban got %s; want forbidden", bob.String(st.El))
	}
}

// TestSlixmppMUCInvitesBot: a mediated invitation (XEP-0045 §7.8.2) that
// slixmpp's xep_0045 sends through the room brings an http_component bot
// with join_on_invite into the room; alice mentions it, its webhook (a
// real HTTP server) answers, and the answer comes to alice in the room
// from the bot's nick. With reply_to = "all" the bot's own answers, which
// the room sends it back, are never posted: the webhook gets alice's two
// messages and nothing else.
func TestSlixmppMUCInvitesBot(t *testing.T) {
	t.Parallel()
	const botDomain = "bots.localhost"
	hook := webhooktest.New(t, func(w http.ResponseWriter, p *webhooktest.Post) {
		if p.JSON.Type != "groupchat" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		webhooktest.JSON(w, http.StatusOK, webhook.Reply{Body: "re: " + p.JSON.Body})
	})
	s := hook.Start(t, botDomain, func(h *conf.Host) {
		o := webhook.OptionsOf(h)
		o.JoinOnInvite = true
		o.ReplyTo = "all"
	}, withMUCService())
	s.AddUser(aliceJID, clientPassword)
	cfg := modernConfig{Case: "muc-invite", Room: teamRoom, Invitee: "helper@" + botDomain,
		Accounts: map[string]modernAccount{"alice": {aliceJID, clientPassword, "laptop"}}}
	r := runSlixmpp(t, s, "slixmpp_muc_client.py", cfg, nil)
	r.step("create")
	if inv := r.step("invited"); inv["nick"] != "bots" {
		t.Errorf("slixmpp: the occupant that came after the invitation is %v; want the bot's nick, bots", inv["nick"])
	}
	answers := r.step("answers")
	want := []string{"re: bots: hello <&>", "re: bots: last"}
	if got := fmt.Sprint(answers["bodies"]); got != fmt.Sprint(want) {
		t.Errorf("slixmpp: the bot said %s in the room; want %q", got, want)
	}
	r.step("done")
	var posted []string
	for range 2 {
		p := hook.Next(t)
		if p.JSON.Room != teamRoom || p.JSON.Nick != "Alice" {
			t.Errorf("post %+v; want alice's message in %s", p.JSON, teamRoom)
		}
		posted = append(posted, p.JSON.Body)
	}
	if got := strings.Join(posted, "|"); got != "bots: hello <&>|bots: last" {
		t.Errorf("the webhook got %q; want alice's two messages", got)
	}
	if n := hook.Calls(); n != 2 {
		t.Errorf("the webhook got %d posts; want 2: the bot's own answers are never posted", n)
	}
}

package webhook_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/components/muc"
	"github.com/parley-im/parley/components/webhook"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/parleytest/webhooktest"
	"github.com/parley-im/parley/xmpp"
)

// mucHost is the muc host of the room tests.
const mucHost = "muc.localhost"

// team is the room most room tests use.
const team = "team@" + mucHost

// withMUC adds the muc host.
func withMUC() parleytest.Option {
	return parleytest.WithConfig(func(c *conf.Config) {
		c.Hosts = append(c.Hosts, conf.Host{Name: mucHost, Type: muc.HostType,
			Options: &muc.Options{RestrictRoomCreation: muc.CreateLocal, HistoryLength: 20}})
	})
}

// inRooms gives a bot host rooms, a short rejoin_after (a room created
// after the server started is joined soon), and whatever edit changes.
func inRooms(rooms []string, edit func(*webhook.Options)) func(*conf.Host) {
	return func(h *conf.Host) {
		o := webhook.OptionsOf(h)
		o.Rooms = rooms
		o.RejoinAfter = conf.Duration{Duration: 20 * time.Millisecond}
		if edit != nil {
			edit(o)
		}
	}
}

// mucJoin joins room as nick and reads up to the subject, the end of a
// join.
func mucJoin(t *testing.T, c *parleytest.Conn, room, nick string) {
	t.Helper()
	c.Send("<presence to='%s/%s'><x xmlns='%s'/></presence>", room, nick, muc.NSMUC)
	c.WaitFor("the end of the join of "+room, func(st *xmpp.Stanza) bool {
		if st.Kind == xmpp.KindPresence && st.Type == "error" {
			t.Fatalf("join of %s: %s", room, c.String(st.El))
		}
		return st.Kind == xmpp.KindMessage && st.From.Bare().String() == room && xmpp.Child(st.El, "", "subject") != nil
	})
}

// mucCreate creates room as nick, an instant room, persistent when asked.
func mucCreate(t *testing.T, c *parleytest.Conn, room, nick string, persistent bool) {
	t.Helper()
	mucJoin(t, c, room, nick)
	c.ExpectResult(c.IQ("set", room, "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query>"),
		"the instant room")
	if persistent {
		c.ExpectResult(c.IQ("set", room, "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>"+
			"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"+
			"<field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query>"), "persistent")
	}
}

// waitOccupant waits until c has seen each of nicks available in room.
func waitOccupant(t *testing.T, c *parleytest.Conn, room string, nicks ...string) {
	t.Helper()
	left := map[string]bool{}
	for _, n := range nicks {
		left[room+"/"+n] = true
	}
	c.WaitFor(strings.Join(nicks, " and ")+" in "+room, func(st *xmpp.Stanza) bool {
		if st.Kind == xmpp.KindPresence && st.Type == "" {
			delete(left, st.From.String())
		}
		return len(left) == 0
	})
}

// waitJoined waits until the bots of host are in room. It asks the
// component, not a client: a client that creates the room may read past
// the bot's presence while it waits for its configuration's result.
func waitJoined(t *testing.T, s *parleytest.Server, host, room string) {
	t.Helper()
	c := botComponent(t, s, host)
	deadline := time.Now().Add(parleytest.Timeout)
	for !slices.Contains(c.RoomsJoined(), room) {
		if time.Now().After(deadline) {
			t.Fatalf("the bots of %s did not join %s within %v", host, room, parleytest.Timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// say sends a groupchat message with body (and extra children) to room.
func say(c *parleytest.Conn, room, body, extra string) {
	c.Send("<message to='%s' type='groupchat' id='%s'><body>%s</body>%s</message>", room, parleytest.NewID("gc"), body, extra)
}

// botSays waits until c sees the bot nick say body in room, and returns
// the bodies it said before (in the order they came).
func botSays(t *testing.T, c *parleytest.Conn, room, nick, body string) []string {
	t.Helper()
	var before []string
	c.WaitFor(fmt.Sprintf("%s saying %q in %s", nick, body, room), func(st *xmpp.Stanza) bool {
		if st.Kind != xmpp.KindMessage || st.Type != "groupchat" || st.From.String() != room+"/"+nick {
			return false
		}
		if b := parleytest.Body(st); b != body {
			before = append(before, b)
			return false
		}
		return true
	})
	return before
}

// echoRoom answers every group-chat post with "re: " and its body, in the
// room; other posts get no answer.
func echoRoom(w http.ResponseWriter, p *webhooktest.Post) {
	if p.JSON.Type != "groupchat" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	webhooktest.JSON(w, http.StatusOK, webhook.Reply{Body: "re: " + p.JSON.Body})
}

// expectPost reads the next post and checks it is alice's group-chat
// message body in team, with the room and the nick.
func expectPost(t *testing.T, hook *webhooktest.Hook, body string) {
	t.Helper()
	p := hook.Next(t)
	want := webhook.Request{To: "bot@" + p.Local, From: team + "/Alice", Kind: "message", Type: "groupchat", Body: body,
		Room: team, Nick: "Alice"}
	got := p.JSON
	got.Stanza, got.ID = "", ""
	if j, err := xmpp.Parse(got.To); err == nil && j.Local() == "bot" && j.Resource() == "rooms" {
		want.To = got.To // bot@<its host>/rooms
	}
	if got != want {
		t.Fatalf("post %+v\nwant %+v", got, want)
	}
}

// TestRoomBotPostsMentions: with reply_to = "mentions" only messages that
// mention the bot's nick (an XEP-0372 reference, or "nick:", "nick,",
// "@nick" at the start, any case) are posted; with "all" every message
// is. The answer goes to the room: every occupant sees it from the bot's
// nick.
func TestRoomBotPostsMentions(t *testing.T) {
	cases := []struct {
		name, body, extra string
		mention           bool
	}{
		{"nick and colon", "bots: deploy", "", true},
		{"nick and comma in capitals", "BOTS, deploy", "", true},
		{"at nick", "@bots deploy", "", true},
		{"reference to the bot's occupant JID", "hey you",
			"<reference xmlns='urn:xmpp:reference:0' type='mention' begin='4' end='7' uri='xmpp:" + team + "/bots'/>", true},
		{"reference to someone else", "hey you",
			"<reference xmlns='urn:xmpp:reference:0' type='mention' uri='xmpp:" + team + "/Bob'/>", false},
		{"no mention", "deploy please", "", false},
		{"nick inside a longer word", "botsy: deploy", "", false},
		{"at nick inside a longer word", "@botsy deploy", "", false},
		{"nick later in the body", "hello bots: deploy", "", false},
	}
	for _, replyTo := range []string{"mentions", "all"} {
		t.Run(replyTo, func(t *testing.T) {
			hook := webhooktest.New(t, echoRoom)
			s := hook.Start(t, botHost, inRooms([]string{team}, func(o *webhook.Options) { o.ReplyTo = replyTo }), withMUC())
			botUsers(t, s, "alice", "bob")
			alice, bob := botLogin(t, s, "alice", "a"), botLogin(t, s, "bob", "b")
			mucCreate(t, alice, team, "Alice", false)
			waitJoined(t, s, botHost, team)
			mucJoin(t, bob, team, "Bob")
			for i, tc := range cases {
				say(alice, team, tc.body, tc.extra)
				marker := fmt.Sprintf("bots: marker %d", i)
				say(alice, team, marker, "")
				posted := tc.mention || replyTo == "all"
				if posted {
					expectPost(t, hook, tc.body)
				}
				expectPost(t, hook, marker)
				for _, c := range []*parleytest.Conn{alice, bob} {
					before := botSays(t, c, team, "bots", "re: "+marker)
					want := []string{}
					if posted {
						want = append(want, "re: "+tc.body)
					}
					if strings.Join(before, "|") != strings.Join(want, "|") {
						t.Errorf("%s: %s saw the bot say %q before the marker's answer; want %q", tc.name, c.JID, before, want)
					}
				}
			}
		})
	}
}

// TestRoomBotNeverAnswersItself: with reply_to = "all" and a webhook that
// answers everything, the bot's own answer, which the room sends it back,
// is not posted: the next post is the next message of alice's.
func TestRoomBotNeverAnswersItself(t *testing.T) {
	hook := webhooktest.New(t, echoRoom)
	s := hook.Start(t, botHost, inRooms([]string{team}, func(o *webhook.Options) { o.ReplyTo = "all" }), withMUC())
	botUsers(t, s, "alice")
	alice := botLogin(t, s, "alice", "a")
	mucCreate(t, alice, team, "Alice", false)
	waitJoined(t, s, botHost, team)
	for i := range 3 {
		body := fmt.Sprintf("hello %d", i)
		say(alice, team, body, "")
		expectPost(t, hook, body)
		botSays(t, alice, team, "bots", "re: "+body)
	}
	say(alice, team, "last", "")
	expectPost(t, hook, "last")
	botSays(t, alice, team, "bots", "re: last")
	if n := hook.Calls(); n != 4 {
		t.Errorf("the webhook got %d posts; want 4, alice's messages only", n)
	}
}

// TestRoomBotsDoNotLoop: two bot hosts in one room, each answering every
// message: each posts alice's messages once and never the other's answers.
func TestRoomBotsDoNotLoop(t *testing.T) {
	const other = "helpers.localhost"
	hookA, hookB := webhooktest.New(t, echoRoom), webhooktest.New(t, echoRoom)
	all := func(o *webhook.Options) { o.ReplyTo = "all" }
	s := hookA.Start(t, botHost, inRooms([]string{team}, all), withMUC(),
		parleytest.WithBot(other, hookB.URL, inRooms([]string{team}, all)))
	t.Cleanup(hookB.Release)
	botUsers(t, s, "alice")
	alice := botLogin(t, s, "alice", "a")
	mucCreate(t, alice, team, "Alice", false)
	waitJoined(t, s, botHost, team)
	waitJoined(t, s, other, team)
	for _, body := range []string{"hello", "again"} {
		say(alice, team, body, "")
		expectPost(t, hookA, body)
		expectPost(t, hookB, body)
		left := map[string]bool{"bots": true, "helpers": true}
		alice.WaitFor("both bots' answers to "+body, func(st *xmpp.Stanza) bool {
			if st.Kind == xmpp.KindMessage && st.Type == "groupchat" && parleytest.Body(st) == "re: "+body {
				delete(left, st.From.Resource())
			}
			return len(left) == 0
		})
	}
}

// TestRoomBotInvitations: with join_on_invite a direct invitation
// (XEP-0249) makes the bot join the room, which asks for no history: what
// was said before it came is not posted. Without it, the invitation is an
// ordinary message, posted, and the bot stays out.
func TestRoomBotInvitations(t *testing.T) {
	for _, join := range []bool{true, false} {
		t.Run(fmt.Sprintf("join_on_invite=%v", join), func(t *testing.T) {
			hook := webhooktest.New(t, echoRoom)
			s := hook.Start(t, botHost, inRooms(nil, func(o *webhook.Options) { o.JoinOnInvite = join }), withMUC())
			botUsers(t, s, "alice")
			alice := botLogin(t, s, "alice", "a")
			mucCreate(t, alice, team, "Alice", false)
			say(alice, team, "bots: before the bot came", "")
			alice.Send("<message to='helper@%s'><x xmlns='jabber:x:conference' jid='%s' reason='help'/></message>", botHost, team)
			if !join {
				p := hook.Next(t)
				if p.JSON.Kind != "message" || !strings.Contains(p.JSON.Stanza, "jabber:x:conference") || p.JSON.Room != "" {
					t.Fatalf("the invitation was posted as %+v; want it posted as a message", p.JSON)
				}
				if got := botComponent(t, s, botHost).RoomsJoined(); len(got) != 0 {
					t.Fatalf("the bot is in %v without join_on_invite", got)
				}
				return
			}
			waitJoined(t, s, botHost, team)
			say(alice, team, "bots: now", "")
			expectPost(t, hook, "bots: now")
			botSays(t, alice, team, "bots", "re: bots: now")
			if got := botComponent(t, s, botHost).RoomsJoined(); strings.Join(got, " ") != team {
				t.Errorf("the bot is in %v; want %s", got, team)
			}
		})
	}
}

// TestRoomBotBackAfterRestart: the bot joins its rooms at start; after a
// restart with a file database it is back in its persistent room and
// answers there. rejoin_after is an hour, so only the join at start can
// put it there.
func TestRoomBotBackAfterRestart(t *testing.T) {
	dir := t.TempDir()
	onDisk := parleytest.OnDisk(dir)
	stop := func(s *parleytest.Server) {
		ctx, cancel := context.WithTimeout(context.Background(), parleytest.Timeout)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	s0 := parleytest.Start(t, withMUC(), onDisk)
	botUsers(t, s0, "alice")
	mucCreate(t, botLogin(t, s0, "alice", "a"), team, "Alice", true)
	stop(s0)

	hook := webhooktest.New(t, echoRoom)
	for run := range 2 {
		s := hook.Start(t, botHost, inRooms([]string{team}, func(o *webhook.Options) {
			o.RejoinAfter = conf.Duration{Duration: time.Hour}
		}), withMUC(), onDisk)
		alice := botLogin(t, s, "alice", fmt.Sprintf("a%d", run))
		alice.Send("<presence to='%s/Alice'><x xmlns='%s'/></presence>", team, muc.NSMUC)
		waitOccupant(t, alice, team, "bots")
		body := fmt.Sprintf("bots: run %d", run)
		say(alice, team, body, "")
		expectPost(t, hook, body)
		botSays(t, alice, team, "bots", "re: "+body)
		stop(s)
	}
}

package server_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/parleytest/webhooktest"
	"github.com/parley-im/parley/xmpp"
)

// TestIMInboundSubscriptionStanzaComesBeforeItsPush checks RFC 6121
// §3.1.6, §3.2.3 and §3.3.3 on the user's connections: an inbound
// subscribed, unsubscribed or unsubscribe that changes the user's item is
// delivered to every interested resource (one that asked for the roster,
// §2.2, whether or not it sent presence) and reaches it before the roster
// push it causes ("This MUST occur before sending the roster push").
func TestIMInboundSubscriptionStanzaComesBeforeItsPush(t *testing.T) {
	s := parleytest.Start(t)
	tests := []struct {
		typ string
		// alice and bob are the items the store holds before anyone logs
		// in: alice's for bob, bob's for alice; "" for none.
		alice, bob string
		// ask: alice asks bob to subscribe first, live.
		ask      bool
		wantItem string // alice's item for bob in the push
	}{
		{typ: "subscribed", ask: true, wantItem: "to"},
		{typ: "unsubscribed", alice: "to", bob: "from", wantItem: "none"},
		{typ: "unsubscribe", alice: "from", bob: "to", wantItem: "none"},
	}
	for i, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			alice, bob := "alice-order"+strconv.Itoa(i), "bob-order"+strconv.Itoa(i)
			imUsers(t, s, alice, bob)
			if tt.alice != "" {
				imPutItem(t, s, alice, bob, tt.alice)
				imPutItem(t, s, bob, alice, tt.bob)
			}
			conns := map[string]*parleytest.Conn{
				// Available and interested.
				"available": imOnline(t, s, alice, "available", ""),
				// Interested only: a roster get, no initial presence.
				"interested": imLogin(t, s, alice, "interested"),
				// Available only: no roster get, so no pushes.
				"no-roster": imLogin(t, s, alice, "no-roster"),
			}
			imRoster(t, conns["interested"])
			conns["no-roster"].Send("<presence/>")
			conns["no-roster"].UntilSync()
			for _, c := range conns {
				c.UntilSync() // the other sessions' presence
			}
			b := imOnline(t, s, bob, "r", "")
			if tt.ask {
				conns["available"].Send("<presence to='%s' type='subscribe'/>", imBare(bob))
				conns["available"].UntilSync()
				for _, c := range conns {
					c.UntilSync()
				}
				b.UntilSync()
			}

			b.Send("<presence to='%s' type='%s'/>", imBare(alice), tt.typ)
			b.UntilSync()
			for name, c := range conns {
				got := c.UntilSync()
				presence, push := -1, -1
				for k, st := range got {
					if st.Kind == xmpp.KindPresence && st.Type == tt.typ && st.From == imBare(bob) && presence < 0 {
						presence = k
					}
					if it := imRosterPush(st); it != nil && it.SelectAttrValue("jid", "") == imBare(bob).String() && push < 0 {
						push = k
						if got := imItemState(it); got != tt.wantItem {
							t.Errorf("%s: the push says %s, want %s", name, got, tt.wantItem)
						}
					}
				}
				switch {
				case presence < 0:
					t.Errorf("%s got no %s from %s:%s", name, tt.typ, imBare(bob), c.Dump(got))
				case name != "no-roster" && push < 0:
					t.Errorf("%s got no roster push:%s", name, c.Dump(got))
				case name == "no-roster" && push >= 0:
					t.Errorf("%s never asked for the roster but got a push:%s", name, c.Dump(got))
				case push >= 0 && push < presence:
					t.Errorf("%s got the roster push before the %s:%s", name, tt.typ, c.Dump(got))
				}
			}
		})
	}
}

// TestIMSubscribeToNoAccount: a subscribe to a local account that does not
// exist is not answered unsubscribed from that JID; the sender, a user of
// this server, gets an error instead (RFC 6121 §3.1.2), its roster is left
// as it was, and nothing comes from the JID that would set it apart from an
// account that exists but is offline.
func TestIMSubscribeToNoAccount(t *testing.T) {
	s := parleytest.Start(t)
	imUsers(t, s, "alice", "bob")
	alice := imOnline(t, s, "alice", "phone", "")
	for _, tt := range []struct {
		to      string
		wantErr bool
	}{
		{"nobody@localhost", true},
		{"nobody@localhost/res", true},
		// An account that exists, offline: no error, and the request
		// waits for bob (the control for the row above).
		{"bob@localhost", false},
	} {
		t.Run(tt.to, func(t *testing.T) {
			id := parleytest.NewID("sub")
			alice.Send("<presence to='%s' type='subscribe' id='%s'/>", tt.to, id)
			got := alice.UntilSync()
			to := xmpp.MustParse(tt.to)
			var errs int
			for _, st := range got {
				if st.Kind != xmpp.KindPresence || st.From.Bare() != to.Bare() {
					continue
				}
				switch {
				case st.Type == "error" && st.ID == id && parleytest.Condition(st) == xmpp.ServiceUnavailable:
					errs++
				default:
					t.Errorf("got %s, want no presence from %s but an error", alice.String(st.El), to.Bare())
				}
			}
			if tt.wantErr && errs != 1 {
				t.Errorf("got %d service-unavailable errors, want 1:%s", errs, alice.Dump(got))
			}
			if !tt.wantErr && errs != 0 {
				t.Errorf("got an error for an account that exists:%s", alice.Dump(got))
			}
			_, pushes := imSeen(alice, got, to.Bare())
			if tt.wantErr && len(pushes) > 0 {
				t.Errorf("the roster changed (pushes %q) for a request that went nowhere", pushes)
			}
			if it := imRoster(t, alice)[to.Bare().String()]; tt.wantErr && it != nil {
				t.Errorf("alice's roster has %s: %s", to.Bare(), imItemState(it))
			}
		})
	}
}

// TestIMLastActivityIsTheLogout checks XEP-0012 §3: the seconds count
// from the user's last logout, the unavailable presence that left no
// resource available, and the status of that presence comes with them,
// whether the client then closed its stream or stayed connected.
func TestIMLastActivityIsTheLogout(t *testing.T) {
	s := parleytest.Start(t)
	for _, closeAfter := range []bool{true, false} {
		name := "stays connected"
		if closeAfter {
			name = "closes its stream"
		}
		t.Run("a user who logged out a moment ago and "+name, func(t *testing.T) {
			alice, bob := "alice-last-"+strings.Fields(name)[0], "bob-last-"+strings.Fields(name)[0]
			imUsers(t, s, alice, bob)
			imPutItem(t, s, alice, bob, "from")
			imPutItem(t, s, bob, alice, "to")
			// An older logout, an hour ago: the answer must not be it.
			ctx, cancel := context.WithTimeout(context.Background(), parleytest.Timeout)
			defer cancel()
			if err := s.Store().SetLastActivity(ctx, imDomain, alice, time.Now().Add(-time.Hour), "old"); err != nil {
				t.Fatal(err)
			}
			b := imOnline(t, s, bob, "r", "")
			a := imOnline(t, s, alice, "r", "")
			b.UntilSync()
			a.Send("<presence type='unavailable'><status>Heading Home</status></presence>")
			a.UntilSync()
			if closeAfter {
				a.CloseStream()
			}
			b.WaitFor("alice's unavailable presence", func(st *xmpp.Stanza) bool {
				return st.Kind == xmpp.KindPresence && st.Type == "unavailable" && st.From.Bare() == imBare(alice)
			})

			st := b.IQ("get", imBare(alice).String(), "<query xmlns='jabber:iq:last'/>")
			q := xmpp.Child(st.El, "jabber:iq:last", "query")
			if st.Type != "result" || q == nil {
				t.Fatalf("got %s, want a result", b.String(st.El))
			}
			if n, err := strconv.Atoi(q.SelectAttrValue("seconds", "")); err != nil || n > 1 {
				t.Errorf("got %s, want seconds 0 or 1", b.String(st.El))
			}
			if q.Text() != "Heading Home" {
				t.Errorf("got %s, want the status Heading Home", b.String(st.El))
			}
		})
	}
	t.Run("the record survives the flush to the store", func(t *testing.T) {
		imUsers(t, s, "carol-last")
		c := imOnline(t, s, "carol-last", "r", "")
		c.Send("<presence type='unavailable'><status>gone fishing</status></presence>")
		c.CloseStream()
		deadline := time.Now().Add(parleytest.Timeout)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), parleytest.Timeout)
			at, status, err := s.Store().LastActivity(ctx, imDomain, "carol-last")
			cancel()
			if err == nil && status == "gone fishing" && time.Since(at) < time.Minute {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the store has %v %q (%v), want a moment ago with the status", at, status, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// TestIMUnsubscribingFromABot: a user who unsubscribes from a bot (or
// removes it from the roster) loses the subscription and sees the bot
// unavailable, as RFC 6121 §3.3.3 has the contact's server do; the bot's
// host, which answers presence for its bots, is on this server.
func TestIMUnsubscribingFromABot(t *testing.T) {
	hook := webhooktest.New(t, nil)
	s := hook.Start(t, botHost, nil) // presence is answered by the host
	const bot = "helper@" + botHost
	botJID := xmpp.MustParse(bot)
	for _, tt := range []struct {
		name, send, wantItem string
	}{
		{"unsubscribe", "<presence to='" + bot + "' type='unsubscribe'/>", "none"},
		{"roster remove", "<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='" + bot + "' subscription='remove'/></query></iq>", "absent"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			user := "alice-bot-" + strings.Fields(tt.name)[0]
			imUsers(t, s, user)
			c := imOnline(t, s, user, "phone", "")
			c.Send("<presence to='%s' type='subscribe'/>", bot)
			presence, pushes := imSeen(c, c.UntilSync(), botJID)
			if strings.Join(presence, " ") != "available(from the bare JID) subscribed" || len(pushes) == 0 || pushes[len(pushes)-1] != "to" {
				t.Fatalf("subscribing: got presence %q and pushes %q, want available and subscribed, and the item to", presence, pushes)
			}
			c.Send("%s", tt.send)
			got := c.UntilSync()
			presence, pushes = imSeen(c, got, botJID)
			if strings.Join(presence, " ") != "unavailable(from the bare JID)" {
				t.Errorf("got presence %q from %s, want unavailable:%s", presence, bot, c.Dump(got))
			}
			if len(pushes) != 1 || pushes[0] != tt.wantItem {
				t.Errorf("got pushes %q, want %s", pushes, tt.wantItem)
			}
			if got := imItemState(imRoster(t, c)[bot]); got != tt.wantItem {
				t.Errorf("the roster item is %s, want %s", got, tt.wantItem)
			}
		})
	}
}

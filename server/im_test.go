package server_test

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/xmpp"
)

// imStep is one thing a user does to a subscription: send a presence of
// type typ ("subscribe", "subscribed", "unsubscribe", "unsubscribed") to
// the other user, or "remove" the other user from the roster.
type imStep struct{ who, typ string }

// imMutual makes alice and bob subscribe to each other: Both on each side.
var imMutual = []imStep{{"alice", "subscribe"}, {"bob", "subscribed"}, {"bob", "subscribe"}, {"alice", "subscribed"}}

// TestIMSubscriptionStatesEndToEnd drives RFC 6121's subscription states
// (Appendix A) between two local users with real stanzas. Each row builds
// its from-state with steps, applies one stanza and checks both users'
// roster items (subscription, ask, approved), the presence each one got
// from the other, and that each roster push carries the item's new state.
func TestIMSubscriptionStatesEndToEnd(t *testing.T) {
	s := parleytest.Start(t)
	with := func(steps []imStep, more ...imStep) []imStep {
		return append(append([]imStep(nil), steps...), more...)
	}
	tests := []struct {
		name  string
		setup []imStep
		apply imStep
		// alice and bob are the items after (imItemState): alice's for
		// bob, bob's for alice.
		alice, bob string
		// aliceSees and bobSees are the presence each got from the other,
		// by type, sorted.
		aliceSees, bobSees string
	}{
		{
			name:  "None: alice's subscribe makes None + Pending Out and reaches bob",
			apply: imStep{"alice", "subscribe"},
			alice: "none+ask", bob: "absent",
			bobSees: "subscribe",
		},
		{
			name:  "None + Pending Out: a second subscribe is not delivered again",
			setup: []imStep{{"alice", "subscribe"}},
			apply: imStep{"alice", "subscribe"},
			alice: "none+ask", bob: "absent",
		},
		{
			name:  "None + Pending Out: bob's approval makes To and From and alice gets bob's presence",
			setup: []imStep{{"alice", "subscribe"}},
			apply: imStep{"bob", "subscribed"},
			alice: "to", bob: "from",
			aliceSees: "available subscribed",
		},
		{
			name:  "None + Pending Out: bob's denial makes None and alice learns it",
			setup: []imStep{{"alice", "subscribe"}},
			apply: imStep{"bob", "unsubscribed"},
			alice: "none", bob: "absent",
			aliceSees: "unsubscribed",
		},
		{
			name:  "None + Pending Out: alice withdraws her request and bob learns it",
			setup: []imStep{{"alice", "subscribe"}},
			apply: imStep{"alice", "unsubscribe"},
			alice: "none", bob: "absent",
			bobSees: "unsubscribe",
		},
		{
			name:  "None + Pending Out: removing bob withdraws the request",
			setup: []imStep{{"alice", "subscribe"}},
			apply: imStep{"alice", "remove"},
			alice: "absent", bob: "absent",
			bobSees: "unsubscribe",
		},
		{
			name:  "after a denial a new request is delivered again",
			setup: []imStep{{"alice", "subscribe"}, {"bob", "unsubscribed"}},
			apply: imStep{"alice", "subscribe"},
			alice: "none+ask", bob: "absent",
			bobSees: "subscribe",
		},
		{
			name:  "To: bob's own request reaches alice",
			setup: []imStep{{"alice", "subscribe"}, {"bob", "subscribed"}},
			apply: imStep{"bob", "subscribe"},
			alice: "to", bob: "from+ask",
			aliceSees: "subscribe",
		},
		{
			name:  "From: a subscribed with no request pending is ignored",
			setup: []imStep{{"alice", "subscribe"}, {"bob", "subscribed"}},
			apply: imStep{"bob", "subscribed"},
			alice: "to", bob: "from",
		},
		{
			name:  "To: a subscribe to a contact already subscribed to is answered by its server",
			setup: []imStep{{"alice", "subscribe"}, {"bob", "subscribed"}},
			apply: imStep{"alice", "subscribe"},
			alice: "to", bob: "from",
			aliceSees: "available",
		},
		{
			name:  "To + Pending In: alice's approval makes Both on both sides and bob gets her presence",
			setup: []imStep{{"alice", "subscribe"}, {"bob", "subscribed"}, {"bob", "subscribe"}},
			apply: imStep{"alice", "subscribed"},
			alice: "both", bob: "both",
			bobSees: "available subscribed",
		},
		{
			name:  "Both: alice's unsubscribe makes From, bob To, and bob's presence is withdrawn",
			setup: imMutual,
			apply: imStep{"alice", "unsubscribe"},
			alice: "from", bob: "to",
			aliceSees: "unavailable", bobSees: "unsubscribe",
		},
		{
			name:  "Both: alice's unsubscribed cancels bob's subscription: To and From",
			setup: imMutual,
			apply: imStep{"alice", "unsubscribed"},
			alice: "to", bob: "from",
			bobSees: "unavailable unsubscribed",
		},
		{
			name:  "after alice cancelled bob's subscription, bob's new request reaches her",
			setup: with(imMutual, imStep{"alice", "unsubscribed"}),
			apply: imStep{"bob", "subscribe"},
			alice: "to", bob: "from+ask",
			aliceSees: "subscribe",
		},
		{
			name:  "after alice unsubscribed, her new request reaches bob",
			setup: with(imMutual, imStep{"alice", "unsubscribe"}),
			apply: imStep{"alice", "subscribe"},
			alice: "from+ask", bob: "to",
			bobSees: "subscribe",
		},
		{
			name:  "Both: removing bob from the roster cancels both directions",
			setup: imMutual,
			apply: imStep{"alice", "remove"},
			alice: "absent", bob: "none",
			aliceSees: "unavailable", bobSees: "unavailable unsubscribe unsubscribed",
		},
		{
			name:  "None: a subscribed with no request is a pre-approval, not routed",
			apply: imStep{"alice", "subscribed"},
			alice: "none+approved", bob: "absent",
		},
		{
			name:  "pre-approved: bob's subscribe is answered for alice, who never sees it",
			setup: []imStep{{"alice", "subscribed"}},
			apply: imStep{"bob", "subscribe"},
			alice: "from", bob: "to",
			bobSees: "available subscribed",
		},
		{
			name:  "pre-approved: alice's unsubscribed cancels the pre-approval, not routed",
			setup: []imStep{{"alice", "subscribed"}},
			apply: imStep{"alice", "unsubscribed"},
			alice: "none", bob: "absent",
		},
		{
			name:  "a cancelled pre-approval no longer answers bob's subscribe",
			setup: []imStep{{"alice", "subscribed"}, {"alice", "unsubscribed"}},
			apply: imStep{"bob", "subscribe"},
			alice: "none", bob: "none+ask",
			aliceSees: "subscribe",
		},
		{
			name:  "None + Pending Out, pre-approved: bob's subscribe makes Both at once",
			setup: []imStep{{"alice", "subscribe"}, {"alice", "subscribed"}},
			apply: imStep{"bob", "subscribe"},
			alice: "from+ask", bob: "to",
			bobSees: "available subscribed",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			users := map[string]string{"alice": fmt.Sprintf("alice%d", i), "bob": fmt.Sprintf("bob%d", i)}
			imUsers(t, s, users["alice"], users["bob"])
			conns := map[string]*parleytest.Conn{
				"alice": imOnline(t, s, users["alice"], "r", ""),
				"bob":   imOnline(t, s, users["bob"], "r", ""),
			}
			other := map[string]string{"alice": "bob", "bob": "alice"}
			// do sends one step and returns what each side got from it.
			do := func(step imStep) map[string][]string {
				t.Helper()
				c, peer := conns[step.who], conns[other[step.who]]
				to := imBare(users[other[step.who]])
				if step.typ == "remove" {
					c.Send("<iq type='set' id='%s'><query xmlns='%s'><item jid='%s' subscription='remove'/></query></iq>", parleytest.NewID("im-remove"), imNSRoster, to)
				} else {
					c.Send("<presence to='%s' type='%s'/>", to, step.typ)
				}
				// The sender's session routes everything its stanza causes,
				// auto-replies included, before it answers the ping.
				got := map[string][]*xmpp.Stanza{step.who: c.UntilSync()}
				got[other[step.who]] = peer.UntilSync()
				for who, sts := range got {
					if errs := imErrors(sts); len(errs) > 0 {
						t.Fatalf("%s %s: %s got errors:%s", step.who, step.typ, who, conns[who].Dump(errs))
					}
				}
				seen := map[string][]string{}
				for who, sts := range got {
					presence, pushes := imSeen(conns[who], sts, imBare(users[other[who]]))
					seen[who+" presence"] = presence
					seen[who+" pushes"] = pushes
				}
				return seen
			}
			items := func() map[string]string {
				t.Helper()
				out := map[string]string{}
				for who, c := range conns {
					out[who] = imItemState(imRoster(t, c)[imBare(users[other[who]]).String()])
				}
				return out
			}
			for _, step := range tt.setup {
				do(step)
			}
			before := items()
			seen := do(tt.apply)
			after := items()
			want := map[string]string{"alice": tt.alice, "bob": tt.bob}
			wantSees := map[string]string{"alice": tt.aliceSees, "bob": tt.bobSees}
			for _, who := range []string{"alice", "bob"} {
				if after[who] != want[who] {
					t.Errorf("%s's roster item for %s is %s, want %s", who, other[who], after[who], want[who])
				}
				if got := strings.Join(seen[who+" presence"], " "); got != wantSees[who] {
					t.Errorf("%s got presence %q from %s, want %q", who, got, other[who], wantSees[who])
				}
				// RFC 6121 §2.1.6: a changed item is pushed to the
				// resources that asked for the roster; the push carries
				// the new state.
				pushes := seen[who+" pushes"]
				switch {
				case before[who] != after[who] && (len(pushes) == 0 || pushes[len(pushes)-1] != after[who]):
					t.Errorf("%s's item went from %s to %s, but the pushes were %q", who, before[who], after[who], pushes)
				case before[who] == after[who] && len(pushes) > 0:
					t.Errorf("%s's item stayed %s, but got pushes %q", who, after[who], pushes)
				}
			}
		})
	}
}

func TestIMStreamFeaturesAfterLogin(t *testing.T) {
	s := parleytest.Start(t)
	imUsers(t, s, "alice")
	c := imLogin(t, s, "alice", "phone")
	for _, f := range []struct{ ns, local string }{
		{imNSRosterVer, "ver"},
		{imNSPreApproval, "sub"},
		{imNSCaps, "c"},
	} {
		if xmpp.Child(c.Features, f.ns, f.local) == nil {
			t.Errorf("features after login %s: want <%s xmlns='%s'/>", c.String(c.Features), f.local, f.ns)
		}
	}
}

// TestIMPendingRequestsAreRedeliveredAtLogin: a request to an offline
// user is kept and delivered at each initial presence until it is answered
// (RFC 6121 §3.1.3), and not after.
func TestIMPendingRequestsAreRedeliveredAtLogin(t *testing.T) {
	s := parleytest.Start(t)
	imUsers(t, s, "alice", "bob")
	alice := imOnline(t, s, "alice", "phone", "")
	aliceBare := imBare("alice")
	alice.Send("<presence to='bob@localhost' type='subscribe'><status>it is alice</status></presence>")
	alice.UntilSync()
	isRequest := func(st *xmpp.Stanza) bool {
		return st.Kind == xmpp.KindPresence && st.Type == "subscribe" && st.From == aliceBare
	}

	login := func(resource string) (*parleytest.Conn, []*xmpp.Stanza) {
		t.Helper()
		bob := imLogin(t, s, "bob", resource)
		bob.Send("<presence/>")
		return bob, bob.UntilSync()
	}

	bob, got := login("one")
	var req *xmpp.Stanza
	for _, st := range got {
		if isRequest(st) {
			req = st
		}
	}
	if req == nil {
		t.Fatalf("bob's initial presence brought%s\nwant alice's subscribe", bob.Dump(got))
	}
	if st := xmpp.Child(req.El, "", "status"); st == nil || st.Text() != "it is alice" {
		t.Errorf("the request lost its status: %s", bob.String(req.El))
	}
	bob.CloseStream()

	t.Run("an unanswered request comes again at the next login", func(t *testing.T) {
		bob, got := login("two")
		n := 0
		for _, st := range got {
			if isRequest(st) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("the second login got %d requests from alice:%s", n, bob.Dump(got))
		}
		bob.Send("<presence to='alice@localhost' type='subscribed'/>")
		bob.UntilSync()
		if _, pre := alice.WaitFor("bob's subscribed", func(st *xmpp.Stanza) bool {
			return st.Kind == xmpp.KindPresence && st.Type == "subscribed" && st.From == imBare("bob")
		}); len(imErrors(pre)) > 0 {
			t.Fatalf("alice got errors:%s", alice.Dump(pre))
		}
		bob.CloseStream()
	})

	t.Run("an answered request does not come again", func(t *testing.T) {
		bob, got := login("three")
		for _, st := range got {
			if isRequest(st) {
				t.Fatalf("bob approved alice, and his next login got her request again:%s", bob.Dump(got))
			}
		}
	})
}

// TestIMPresenceFansOut: a resource's presence reaches every available
// resource of every subscriber and the user's other resources (RFC 6121
// §4.2.2, §4.4.2), with what it carries.
func TestIMPresenceFansOut(t *testing.T) {
	s := parleytest.Start(t)
	imUsers(t, s, "alice", "bob", "carol")
	imBoth(t, s, "alice", "bob")
	imBoth(t, s, "alice", "carol")
	a2 := imOnline(t, s, "alice", "two", "")
	others := []*parleytest.Conn{
		a2,
		imOnline(t, s, "bob", "one", ""), imOnline(t, s, "bob", "two", ""),
		imOnline(t, s, "carol", "one", ""), imOnline(t, s, "carol", "two", ""),
	}
	for _, c := range others {
		c.UntilSync()
	}
	a1 := imLogin(t, s, "alice", "one")
	a1.Send("<presence><show>away</show><status>at lunch</status><priority>7</priority></presence>")
	got := a1.UntilSync()

	t.Run("the new resource gets its echo and the presence of the others", func(t *testing.T) {
		for _, c := range append(others, a1) {
			n := 0
			for _, st := range got {
				if imPresenceFrom(st, c.JID) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("alice/one got %d available presences from %s:%s", n, c.JID, a1.Dump(got))
			}
		}
	})

	for _, c := range others {
		t.Run(c.JID.String()+" gets it once with show, status and priority", func(t *testing.T) {
			got := c.UntilSync()
			var ps []*xmpp.Stanza
			for _, st := range got {
				if st.Kind == xmpp.KindPresence && st.From == a1.JID {
					ps = append(ps, st)
				}
			}
			if len(ps) != 1 {
				t.Fatalf("got %d presences from alice/one:%s", len(ps), c.Dump(got))
			}
			p := ps[0]
			text := func(local string) string {
				if el := xmpp.Child(p.El, "", local); el != nil {
					return el.Text()
				}
				return ""
			}
			if p.Type != "" || text("show") != "away" || text("status") != "at lunch" || text("priority") != "7" {
				t.Fatalf("got %s, want available, away, 'at lunch', priority 7", c.String(p.El))
			}
		})
	}
}

// TestIMDroppedConnectionIsSeenAsUnavailable: a session whose TCP
// connection just goes away is unavailable to its subscribers and to whom
// it sent directed presence (RFC 6121 §4.5.2, §4.6.3).
func TestIMDroppedConnectionIsSeenAsUnavailable(t *testing.T) {
	s := parleytest.Start(t)
	imUsers(t, s, "alice", "bob", "carol")
	imBoth(t, s, "alice", "bob")
	bob := imOnline(t, s, "bob", "desk", "")
	carol := imOnline(t, s, "carol", "desk", "")
	alice := imOnline(t, s, "alice", "phone", "")
	bob.WaitFor("alice's presence", func(st *xmpp.Stanza) bool { return imPresenceFrom(st, alice.JID) })
	alice.Send("<presence to='carol@localhost'/>")
	carol.WaitFor("alice's directed presence", func(st *xmpp.Stanza) bool { return imPresenceFrom(st, alice.JID) })

	if err := alice.Conn.Close(); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*parleytest.Conn{"the subscriber": bob, "the directed presence recipient": carol} {
		t.Run(name+" gets unavailable", func(t *testing.T) {
			c.WaitFor("alice's unavailable", func(st *xmpp.Stanza) bool {
				return st.Kind == xmpp.KindPresence && st.Type == "unavailable" && st.From == alice.JID
			})

		})
	}
}

// TestIMProbes: initial presence probes the contacts the user is
// subscribed to, and only subscribers get presence (RFC 6121 §4.3).
func TestIMProbes(t *testing.T) {
	s := parleytest.Start(t)
	imUsers(t, s, "alice", "bob", "carol")
	imPutItem(t, s, "alice", "bob", "from")
	imPutItem(t, s, "bob", "alice", "to")
	// carol thinks she is subscribed; alice's roster does not have her.
	imPutItem(t, s, "carol", "alice", "to")
	a1 := imOnline(t, s, "alice", "one", "<status>first</status>")
	a2 := imOnline(t, s, "alice", "two", "<status>second</status><priority>-1</priority>")
	aliceBare := imBare("alice")

	t.Run("a subscriber's initial presence gets each available resource's presence", func(t *testing.T) {
		bob := imLogin(t, s, "bob", "desk")
		bob.Send("<presence/>")
		got := bob.UntilSync()
		for _, want := range []struct {
			from   xmpp.JID
			status string
		}{{a1.JID, "first"}, {a2.JID, "second"}} {
			var p *xmpp.Stanza
			for _, st := range got {
				if imPresenceFrom(st, want.from) {
					p = st
				}
			}
			if p == nil {
				t.Fatalf("bob's initial presence brought%s\nwant presence from %s", bob.Dump(got), want.from)
			}
			if st := xmpp.Child(p.El, "", "status"); st == nil || st.Text() != want.status {
				t.Errorf("presence from %s: %s, want status %q", want.from, bob.String(p.El), want.status)
			}
		}
	})

	carol := imLogin(t, s, "carol", "desk")
	imRoster(t, carol)
	t.Run("a contact without a subscription gets no presence but unsubscribed", func(t *testing.T) {
		carol.Send("<presence/>")
		got := imFromContact(carol.UntilSync(), aliceBare)
		presence, _ := imSeen(carol, got, aliceBare)
		// §4.3.2: MUST NOT reveal presence; SHOULD answer unsubscribed.
		if strings.Join(presence, " ") != "unsubscribed" {
			t.Fatalf("carol's probe of alice brought%s\nwant only unsubscribed", carol.Dump(got))
		}
		if it := imItemState(imRoster(t, carol)[aliceBare.String()]); it != "none" {
			t.Errorf("after the unsubscribed carol's item for alice is %s, want none", it)
		}
	})

	t.Run("a probe a client sends is not answered", func(t *testing.T) {
		carol.Send("<presence type='probe' to='alice@localhost'/>")
		if got := imFromContact(carol.UntilSync(), aliceBare); len(got) > 0 {
			t.Fatalf("carol's own probe brought%s", carol.Dump(got))
		}
	})
}

// imOfflineDelay checks the XEP-0203 stamp of an offline message.
func imOfflineDelay(t *testing.T, c *parleytest.Conn, st *xmpp.Stanza) {
	t.Helper()
	d := xmpp.Child(st.El, xmpp.NSDelay, "delay")
	if d == nil || d.SelectAttrValue("from", "") != imDomain {
		t.Errorf("%s: want <delay xmlns='urn:xmpp:delay' from='localhost'/>", c.String(st.El))
		return
	}
	if _, err := time.Parse(time.RFC3339Nano, d.SelectAttrValue("stamp", "")); err != nil {
		t.Errorf("%s: the stamp is not a XEP-0082 date-time: %v", c.String(st.El), err)
	}
}

// TestIMOfflineMessagesSurviveARestart: messages for a user with no
// available resource are kept in the database and delivered, in order and
// stamped, at the next initial presence, even on a new server.
func TestIMOfflineMessagesSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	onDisk := parleytest.OnDisk(dir)
	s1 := parleytest.Start(t, onDisk)
	imUsers(t, s1, "alice", "bob")
	alice := imOnline(t, s1, "alice", "phone", "")
	alice.Send("<message to='bob@localhost' type='chat' id='m1'><body>one</body></message>")
	alice.Send("<message to='bob@localhost' type='normal' id='m2'><body>two</body></message>")
	alice.Send("<message to='bob@localhost/gone' type='chat' id='m3'><body>three</body></message>")
	if errs := imErrors(alice.UntilSync()); len(errs) > 0 {
		t.Fatalf("alice got errors:%s", alice.Dump(errs))
	}
	ctx, cancel := context.WithTimeout(context.Background(), parleytest.Timeout)
	defer cancel()
	if err := s1.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	s2 := parleytest.Start(t, onDisk)
	bob := imLogin(t, s2, "bob", "desk")
	bob.Send("<presence/>")
	msgs := imMessages(bob.UntilSync())
	var ids []string
	for _, m := range msgs {
		ids = append(ids, m.ID)
	}
	if strings.Join(ids, " ") != "m1 m2 m3" {
		t.Fatalf("bob got messages %q:%s\nwant m1 m2 m3", ids, bob.Dump(msgs))
	}
	for i, m := range msgs {
		body := xmpp.Child(m.El, "", "body")
		if m.From != alice.JID || body == nil || body.Text() != []string{"one", "two", "three"}[i] {
			t.Errorf("got %s, want it from %s with its body", bob.String(m.El), alice.JID)
		}
		imOfflineDelay(t, bob, m)
	}
	bob.CloseStream()

	again := imLogin(t, s2, "bob", "desk")
	again.Send("<presence/>")
	if msgs := imMessages(again.UntilSync()); len(msgs) > 0 {
		t.Fatalf("the next login got the messages again:%s", again.Dump(msgs))
	}
}

// TestIMOfflineStorageKeepsOnlyWhatIsWorthKeeping: groupchat is bounced,
// headlines and bare chat states are dropped (RFC 6121 §8.5.2.2.1, XEP-0160,
// XEP-0085), and the per-user quota bounces what does not fit.
func TestIMOfflineStorageKeepsOnlyWhatIsWorthKeeping(t *testing.T) {
	s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) { c.Limits.OfflineMessages = 2 }))
	imUsers(t, s, "alice", "bob")
	alice := imOnline(t, s, "alice", "phone", "")
	alice.Send("<message to='bob@localhost' type='groupchat' id='g1'><body>room?</body></message>")
	alice.Send("<message to='bob@localhost' type='headline' id='h1'><body>news</body></message>")
	alice.Send("<message to='bob@localhost' type='chat' id='c1'><composing xmlns='%s'/></message>", imNSChatStates)
	alice.Send("<message to='bob@localhost' type='chat' id='m1'><body>one</body></message>")
	alice.Send("<message to='bob@localhost' type='chat' id='m2'><body>two</body><active xmlns='%s'/></message>", imNSChatStates)
	alice.Send("<message to='bob@localhost' type='chat' id='m3'><body>three</body></message>")
	errs := imErrors(alice.UntilSync())

	t.Run("groupchat and the message over the quota bounce with service-unavailable", func(t *testing.T) {
		var ids []string
		for _, e := range errs {
			ids = append(ids, e.ID)
			if parleytest.Condition(e) != xmpp.ServiceUnavailable {
				t.Errorf("got %s, want service-unavailable", alice.String(e.El))
			}
		}
		if strings.Join(ids, " ") != "g1 m3" {
			t.Fatalf("alice got errors for %q:%s\nwant g1 and m3", ids, alice.Dump(errs))
		}
	})

	t.Run("only the two stored messages arrive", func(t *testing.T) {
		bob := imLogin(t, s, "bob", "desk")
		bob.Send("<presence/>")
		msgs := imMessages(bob.UntilSync())
		var ids []string
		for _, m := range msgs {
			ids = append(ids, m.ID)
			imOfflineDelay(t, bob, m)
		}
		if strings.Join(ids, " ") != "m1 m2" {
			t.Fatalf("bob got %q:%s\nwant m1 m2", ids, bob.Dump(msgs))
		}
	})
}

// imBlockingErrorIs checks the error a user gets for writing to someone it
// blocks (XEP-0191 §3.5).
func imBlockedError(t *testing.T, c *parleytest.Conn, st *xmpp.Stanza) {
	t.Helper()
	c.ExpectError(st, xmpp.NotAcceptable, "a stanza to a blocked contact")
	if e := st.El.SelectElement("error"); e == nil || xmpp.Child(e, imNSBlockingErr, "blocked") == nil {
		t.Fatalf("got %s, want <blocked xmlns='%s'/> in the error", c.String(st.El), imNSBlockingErr)
	}
}

// TestIMBlocking: XEP-0191 in both directions, the list, its pushes, and
// unblocking.
func TestIMBlocking(t *testing.T) {
	s := parleytest.Start(t)
	imUsers(t, s, "alice", "bob")
	imBoth(t, s, "alice", "bob")
	a1 := imOnline(t, s, "alice", "one", "")
	a2 := imOnline(t, s, "alice", "two", "")
	a3 := imOnline(t, s, "alice", "three", "") // never asks for the blocklist
	bob := imOnline(t, s, "bob", "desk", "")
	alices := []*parleytest.Conn{a1, a2, a3}
	bobBare, aliceBare := imBare("bob"), imBare("alice")
	st := a2.IQ("get", "", "<blocklist xmlns='"+imNSBlocking+"'/>")
	if a2.ExpectResult(st, "blocklist get"); len(st.El.FindElements("blocklist/item")) != 0 {
		t.Fatalf("a new blocklist: %s", a2.String(st.El))
	}
	for _, c := range append(alices, bob) {
		c.UntilSync()
	}
	// nothingFromBob fails if any of alice's resources got anything from
	// bob; bob's stanzas must have been routed (he synced) before.
	nothingFromBob := func(t *testing.T) {
		t.Helper()
		for _, c := range alices {
			if got := imFromContact(c.UntilSync(), bobBare); len(got) > 0 {
				t.Errorf("%s got from bob:%s", c.JID, c.Dump(got))
			}
		}
	}

	t.Run("a block is pushed to the resources that asked for the list and bob loses alice's presence", func(t *testing.T) {
		a1.ExpectResult(a1.IQ("set", "", "<block xmlns='"+imNSBlocking+"'><item jid='bob@localhost'/></block>"), "block")
		got := a2.UntilSync()
		var push *xmpp.Stanza
		for _, st := range got {
			if st.Kind == xmpp.KindIQ && st.Type == "set" && st.El.FindElement("block[@xmlns='"+imNSBlocking+"']/item[@jid='bob@localhost']") != nil {
				push = st
			}
		}
		if push == nil {
			t.Errorf("alice/two asked for the blocklist and got no push:%s", a2.Dump(got))
		}
		for _, st := range a3.UntilSync() {
			if st.Kind == xmpp.KindIQ && st.El.FindElement("block") != nil {
				t.Errorf("alice/three never asked for the blocklist and got %s", a3.String(st.El))
			}
		}
		gone := map[xmpp.JID]bool{}
		for _, st := range bob.UntilSync() {
			if st.Kind == xmpp.KindPresence && st.Type == "unavailable" {
				gone[st.From] = true
			}
		}
		for _, c := range alices {
			if !gone[c.JID] {
				t.Errorf("bob got no unavailable from %s (XEP-0191 §3.3)", c.JID)
			}
		}
	})

	t.Run("the blocklist lists bob", func(t *testing.T) {
		st := a1.IQ("get", "", "<blocklist xmlns='"+imNSBlocking+"'/>")
		var jids []string
		for _, it := range st.El.FindElements("blocklist/item") {
			jids = append(jids, it.SelectAttrValue("jid", ""))
		}
		if st.Type != "result" || strings.Join(jids, " ") != "bob@localhost" {
			t.Fatalf("got %s, want bob@localhost", a1.String(st.El))
		}
	})

	t.Run("bob's messages and iqs get service-unavailable and never reach alice", func(t *testing.T) {
		bob.Send("<message to='alice@localhost' type='chat' id='b1'><body>hi</body></message>")
		bob.Send("<message to='%s' type='chat' id='b2'><body>hi one</body></message>", a1.JID)
		bob.Send("<iq to='%s' type='get' id='b3'><ping xmlns='urn:xmpp:ping'/></iq>", a1.JID)
		got := bob.UntilSync()
		for _, id := range []string{"b1", "b2", "b3"} {
			st := imByID(got, id)
			if st == nil || parleytest.Condition(st) != xmpp.ServiceUnavailable {
				t.Errorf("bob's %s: got%s\nwant service-unavailable", id, bob.Dump(got))
			}
		}
		nothingFromBob(t)
	})

	t.Run("bob's presence does not reach alice", func(t *testing.T) {
		bob.Send("<presence><status>still here</status></presence>")
		bob.Send("<presence to='%s'><status>directed</status></presence>", a1.JID)
		bob.UntilSync()
		nothingFromBob(t)
	})

	t.Run("alice's messages to bob get not-acceptable with blocked", func(t *testing.T) {
		a1.Send("<message to='bob@localhost' type='chat' id='a1'><body>psst</body></message>")
		got := a1.UntilSync()
		st := imByID(got, "a1")
		if st == nil {
			t.Fatalf("alice got no error:%s", a1.Dump(got))
		}
		imBlockedError(t, a1, st)
		if got := imFromContact(bob.UntilSync(), aliceBare); len(got) > 0 {
			t.Errorf("bob got from alice:%s", bob.Dump(got))
		}
	})

	t.Run("unblocking is pushed and restores presence and messages", func(t *testing.T) {
		a1.ExpectResult(a1.IQ("set", "", "<unblock xmlns='"+imNSBlocking+"'><item jid='bob@localhost'/></unblock>"), "unblock")
		a2.WaitFor("the unblock push", func(st *xmpp.Stanza) bool {
			return st.Kind == xmpp.KindIQ && st.Type == "set" && st.El.FindElement("unblock/item[@jid='bob@localhost']") != nil
		})

		back := map[xmpp.JID]bool{}
		for _, st := range bob.UntilSync() {
			if st.Kind == xmpp.KindPresence && st.Type == "" {
				back[st.From] = true
			}
		}
		for _, c := range alices {
			if !back[c.JID] {
				t.Errorf("bob did not get %s's presence back", c.JID)
			}
		}
		bob.Send("<message to='%s' type='chat' id='b4'><body>back?</body></message>", a1.JID)
		a1.WaitFor("bob's message", func(st *xmpp.Stanza) bool { return st.ID == "b4" && st.Type == "chat" })
		a1.Send("<message to='bob@localhost' type='chat' id='a2'><body>yes</body></message>")
		bob.WaitFor("alice's message", func(st *xmpp.Stanza) bool { return st.ID == "a2" && st.Type == "chat" })
	})
}

func TestIMBlockingADomain(t *testing.T) {
	const other = "other.localhost"
	s := parleytest.Start(t, parleytest.WithHost(imDomain, ""), parleytest.WithHost(other, ""))
	imUsers(t, s, "alice", "dave")
	s.AddUser("mallory@"+other, imPassword("mallory"))
	alice := imOnline(t, s, "alice", "phone", "")
	dave := imOnline(t, s, "dave", "desk", "")
	mallory := s.Login("mallory@"+other, imPassword("mallory"), "desk")
	mallory.Send("<presence/>")
	mallory.UntilSync()
	alice.ExpectResult(alice.IQ("set", "", "<block xmlns='"+imNSBlocking+"'><item jid='"+other+"'/></block>"), "block a domain")

	t.Run("a user of the blocked domain gets service-unavailable", func(t *testing.T) {
		mallory.Send("<message to='alice@localhost' type='chat' id='x1'><body>hello</body></message>")
		st := imByID(mallory.UntilSync(), "x1")
		if st == nil || parleytest.Condition(st) != xmpp.ServiceUnavailable {
			t.Fatalf("mallory's message: want service-unavailable")
		}
		if got := imFromContact(alice.UntilSync(), mallory.JID); len(got) > 0 {
			t.Fatalf("alice got from mallory:%s", alice.Dump(got))
		}
	})
	t.Run("alice's messages to the domain get not-acceptable with blocked", func(t *testing.T) {
		alice.Send("<message to='%s' type='chat' id='x2'><body>hi</body></message>", mallory.JID.Bare())
		st := imByID(alice.UntilSync(), "x2")
		if st == nil {
			t.Fatal("alice got no error")
		}
		imBlockedError(t, alice, st)
	})
	t.Run("users of other domains still get through", func(t *testing.T) {
		dave.Send("<message to='alice@localhost' type='chat' id='x3'><body>hi</body></message>")
		alice.WaitFor("dave's message", func(st *xmpp.Stanza) bool { return st.ID == "x3" && st.Type == "chat" })
	})
}

// TestIMRegistration: in-band registration (XEP-0077) in each mode, with
// invitations (XEP-0401), and the password change of a logged-in user.
func TestIMRegistration(t *testing.T) {
	regGet := "<query xmlns='" + imNSRegister + "'/>"
	withMode := func(mode string) *parleytest.Server {
		return parleytest.Start(t, parleytest.WithHost(imDomain, ""), parleytest.WithConfig(func(c *conf.Config) {
			local.LocalOptionsOf(&c.Hosts[0]).Registration = mode
		}))
	}

	t.Run("closed", func(t *testing.T) {
		s := parleytest.Start(t)
		c := s.DialSecure(imDomain)
		if el := xmpp.Child(c.Features, imNSRegFeature, "register"); el != nil {
			t.Errorf("features %s offer registration", c.String(c.Features))
		}
		c.ExpectError(c.IQNext("get", "", regGet), xmpp.NotAllowed, "a registration get")
		c.ExpectError(imRegister(t, c, "eve", "pw-eve", ""), xmpp.NotAllowed, "a registration")
		if imCanLogin(t, s, imDomain, "eve", "pw-eve") {
			t.Error("the refused registration made an account")
		}
	})

	t.Run("registrations_per_ip counts one address's attempts", func(t *testing.T) {
		s := parleytest.Start(t, parleytest.WithHost(imDomain, ""), parleytest.WithConfig(func(c *conf.Config) {
			local.LocalOptionsOf(&c.Hosts[0]).Registration = local.RegistrationOpen
			c.Limits.RegistrationsPerIP = 2
		}))
		for _, u := range []string{"r1", "r2"} {
			if st := imRegister(t, s.DialSecure(imDomain), u, "pw-"+u, ""); st.Type != "result" {
				t.Fatalf("registration of %s: %s", u, st.El.Tag)
			}
		}
		c := s.DialSecure(imDomain)
		c.ExpectError(imRegister(t, c, "r3", "pw-r3", ""), xmpp.ResourceConstraint, "a third registration from 127.0.0.1")
		if imCanLogin(t, s, imDomain, "r3", "pw-r3") {
			t.Error("the refused registration made an account")
		}
	})

	t.Run("open", func(t *testing.T) {
		s := withMode(local.RegistrationOpen)
		imUsers(t, s, "alice")
		t.Run("registration is offered after STARTTLS only", func(t *testing.T) {
			c := s.DialRaw()
			c.Open(imDomain)
			if xmpp.Child(c.Features, imNSRegFeature, "register") != nil {
				t.Errorf("features before TLS %s offer registration", c.String(c.Features))
			}
			c.StartTLS(s.TLSConfig(imDomain))
			if xmpp.Child(c.Features, imNSRegFeature, "register") == nil {
				t.Errorf("features after TLS %s: want <register xmlns='%s'/>", c.String(c.Features), imNSRegFeature)
			}
		})
		t.Run("a get returns the username and password fields", func(t *testing.T) {
			c := s.DialSecure(imDomain)
			st := c.IQNext("get", "", regGet)
			q := xmpp.Child(st.El, imNSRegister, "query")
			if st.Type != "result" || q == nil || q.SelectElement("username") == nil || q.SelectElement("password") == nil {
				t.Fatalf("got %s, want a query with username and password", c.String(st.El))
			}
		})
		t.Run("a set creates the account and the stream can log in with it", func(t *testing.T) {
			c := s.DialSecure(imDomain)
			c.ExpectResult(imRegister(t, c, "dora", "pw-dora", ""), "registering dora")
			if el := c.AuthPlain("dora", "pw-dora"); el.Tag != "success" {
				t.Fatalf("auth after registering: %s", c.String(el))
			}
			c.Open(imDomain)
			c.Bind("new")
			imLogin(t, s, "dora", "other")
		})
		t.Run("a taken username is conflict", func(t *testing.T) {
			c := s.DialSecure(imDomain)
			c.ExpectError(imRegister(t, c, "alice", "stolen", ""), xmpp.Conflict, "registering alice again")
			if imCanLogin(t, s, imDomain, "alice", "stolen") {
				t.Fatal("the conflicting registration changed alice's password")
			}
		})
	})

	t.Run("invite", func(t *testing.T) {
		s := withMode(local.RegistrationInvite)
		imInvite(t, s, "good-token")
		imInvite(t, s, "preauth-token")
		tests := []struct {
			name, user, key string
			want            xmpp.StanzaCondition // "" for success
		}{
			{"without a token is not-allowed", "nokey", "", xmpp.NotAllowed},
			{"with an unknown token is not-allowed", "badkey", "no-such-token", xmpp.NotAllowed},
			{"with a good token in key creates the account", "invited", "good-token", ""},
			{"with the same token again is not-allowed", "second", "good-token", xmpp.NotAllowed},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := s.DialSecure(imDomain)
				st := imRegister(t, c, tt.user, "pw-"+tt.user, tt.key)
				if tt.want == "" {
					c.ExpectResult(st, "registration")
				} else {
					c.ExpectError(st, tt.want, "registration")
				}
				if got := imCanLogin(t, s, imDomain, tt.user, "pw-"+tt.user); got != (tt.want == "") {
					t.Fatalf("%s can log in: %t, want %t", tt.user, got, tt.want == "")
				}
			})
		}
		t.Run("a XEP-0401 preauth with a bad token is not-allowed", func(t *testing.T) {
			c := s.DialSecure(imDomain)
			c.ExpectError(c.IQNext("set", "", "<preauth xmlns='urn:xmpp:pars:0' token='no-such-token'/>"), xmpp.NotAllowed, "preauth")
		})
		t.Run("a XEP-0401 preauth lets the stream register without a key", func(t *testing.T) {
			c := s.DialSecure(imDomain)
			c.ExpectResult(c.IQNext("set", "", "<preauth xmlns='urn:xmpp:pars:0' token='preauth-token'/>"), "preauth")
			c.ExpectResult(imRegister(t, c, "preauthed", "pw-preauthed", ""), "registration after preauth")
			if !imCanLogin(t, s, imDomain, "preauthed", "pw-preauthed") {
				t.Fatal("the account made after preauth cannot log in")
			}
			other := s.DialSecure(imDomain)
			other.ExpectError(imRegister(t, other, "again", "pw-again", "preauth-token"), xmpp.NotAllowed, "reusing the preauth token")
		})
	})

	t.Run("a logged-in user changes the password", func(t *testing.T) {
		s := parleytest.Start(t)
		imUsers(t, s, "alice", "bob")
		for _, u := range []struct{ local, to string }{{"alice", ""}, {"bob", imDomain}} {
			c := imLogin(t, s, u.local, "phone")
			st := c.IQ("set", u.to, fmt.Sprintf("<query xmlns='%s'><username>%s</username><password>new-%s</password></query>", imNSRegister, u.local, u.local))
			c.ExpectResult(st, "password change to '"+u.to+"'")
			if imCanLogin(t, s, imDomain, u.local, imPassword(u.local)) {
				t.Errorf("%s's old password still works", u.local)
			}
			if !imCanLogin(t, s, imDomain, u.local, "new-"+u.local) {
				t.Errorf("%s's new password does not work", u.local)
			}
		}
	})
}

// TestIMRosterVersioning: RFC 6121 §2.6.
func TestIMRosterVersioning(t *testing.T) {
	s := parleytest.Start(t)
	imUsers(t, s, "alice")
	a1 := imLogin(t, s, "alice", "one")
	if xmpp.Child(a1.Features, imNSRosterVer, "ver") == nil {
		t.Fatalf("features after login %s: want <ver xmlns='%s'/>", a1.String(a1.Features), imNSRosterVer)
	}
	for _, c := range []string{"c1", "c2", "c3", "c4", "c5"} {
		a1.ExpectResult(a1.IQ("set", "", fmt.Sprintf("<query xmlns='%s'><item jid='%s@localhost'/></query>", imNSRoster, c)), "adding "+c)
	}
	// full asks with ver and returns the roster's version and its items.
	full := func(t *testing.T, c *parleytest.Conn, ver string) (string, []string) {
		t.Helper()
		st, _ := imRosterQuery(t, c, &ver)
		c.ExpectResult(st, "roster get ver='"+ver+"'")
		q := xmpp.Child(st.El, imNSRoster, "query")
		if q == nil || q.SelectAttr("ver") == nil {
			t.Fatalf("roster get ver='%s': got %s, want the full roster with a ver", ver, c.String(st.El))
		}
		var jids []string
		for _, it := range q.SelectElements("item") {
			jids = append(jids, it.SelectAttrValue("jid", ""))
		}
		return q.SelectAttrValue("ver", ""), jids
	}
	v1, jids := full(t, a1, "")
	if len(jids) != 5 {
		t.Fatalf("ver='': got items %q, want 5", jids)
	}

	t.Run("the current ver gets an empty result", func(t *testing.T) {
		st, _ := imRosterQuery(t, a1, &v1)
		a1.ExpectResult(st, "roster get with the current ver")
		if len(st.El.ChildElements()) != 0 {
			t.Fatalf("got %s, want an empty result", a1.String(st.El))
		}
	})

	a1.ExpectResult(a1.IQ("set", "", "<query xmlns='"+imNSRoster+"'><item jid='c1@localhost' name='One'/></query>"), "renaming c1")
	a1.ExpectResult(a1.IQ("set", "", "<query xmlns='"+imNSRoster+"'><item jid='c2@localhost' subscription='remove'/></query>"), "removing c2")
	v3, _ := full(t, a1, "")

	t.Run("an old ver gets an empty result then exactly the changes as pushes", func(t *testing.T) {
		a2 := imLogin(t, s, "alice", "two")
		st, _ := imRosterQuery(t, a2, &v1)
		a2.ExpectResult(st, "roster get with an old ver")
		if len(st.El.ChildElements()) != 0 {
			t.Fatalf("got %s, want an empty result before the pushes", a2.String(st.El))
		}
		var pushes []string
		maxVer := int64(-1)
		got := a2.UntilSync()
		for _, st := range got {
			it := imRosterPush(st)
			if it == nil {
				continue
			}
			pushes = append(pushes, it.SelectAttrValue("jid", "")+" "+it.SelectAttrValue("name", "")+" "+imItemState(it))
			if v, err := strconv.ParseInt(xmpp.Child(st.El, imNSRoster, "query").SelectAttrValue("ver", ""), 10, 64); err == nil && v > maxVer {
				maxVer = v
			}
		}
		sort.Strings(pushes)
		if want := "c1@localhost One none|c2@localhost  absent"; strings.Join(pushes, "|") != want {
			t.Fatalf("pushes %q:%s\nwant %q", pushes, a2.Dump(got), want)
		}
		if strconv.FormatInt(maxVer, 10) != v3 {
			t.Errorf("the last push has ver %d, want the roster's %s", maxVer, v3)
		}
	})

	for _, ver := range []string{strconv.Itoa(1 << 30), "not-a-version"} {
		t.Run("an unknown ver '"+ver+"' gets the full roster", func(t *testing.T) {
			v, jids := full(t, a1, ver)
			if v != v3 || len(jids) != 4 {
				t.Fatalf("got ver %s and %q, want ver %s and 4 items", v, jids, v3)
			}
		})
	}
}

// TestIMRosterSetAndRemove: RFC 6121 §2.3, §2.5 and the pushes of §2.1.6.
func TestIMRosterSetAndRemove(t *testing.T) {
	s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) { c.Limits.RosterSize = 3 }))
	imUsers(t, s, "alice")
	a1 := imLogin(t, s, "alice", "one")
	imRoster(t, a1)
	a2 := imLogin(t, s, "alice", "two")
	imRoster(t, a2)
	a3 := imLogin(t, s, "alice", "three") // never asks for the roster
	set := func(t *testing.T, item string) (*xmpp.Stanza, []*xmpp.Stanza) {
		t.Helper()
		st, before := a1.IQAll("set", "", "<query xmlns='"+imNSRoster+"'>"+item+"</query>")
		return st, append(before, a1.UntilSync()...)
	}
	// pushesOf returns the roster pushes among got.
	pushesOf := func(got []*xmpp.Stanza) []*xmpp.Stanza {
		var out []*xmpp.Stanza
		for _, st := range got {
			if imRosterPush(st) != nil {
				out = append(out, st)
			}
		}
		return out
	}
	describe := func(st *xmpp.Stanza) string {
		it := imRosterPush(st)
		var groups []string
		for _, g := range it.SelectElements("group") {
			groups = append(groups, g.Text())
		}
		sort.Strings(groups)
		return fmt.Sprintf("%s name=%q %s groups=%q", it.SelectAttrValue("jid", ""), it.SelectAttrValue("name", ""), imItemState(it), groups)
	}

	t.Run("a set is pushed to the resources that asked for the roster only", func(t *testing.T) {
		st, got := set(t, "<item jid='bob@localhost' name='Bob'><group>Work</group><group>Friends</group></item>")
		a1.ExpectResult(st, "roster set")
		want := `bob@localhost name="Bob" none groups=["Friends" "Work"]`
		for _, r := range []struct {
			c   *parleytest.Conn
			got []*xmpp.Stanza
		}{{a1, got}, {a2, a2.UntilSync()}} {
			ps := pushesOf(r.got)
			if len(ps) != 1 || describe(ps[0]) != want {
				t.Errorf("%s got pushes:%s\nwant one: %s", r.c.JID, r.c.Dump(ps), want)
			}
		}
		if ps := pushesOf(a3.UntilSync()); len(ps) > 0 {
			t.Errorf("alice/three never asked for the roster and got:%s", a3.Dump(ps))
		}
	})

	bad := []struct {
		name, item string
		want       xmpp.StanzaCondition
	}{
		{"the same group twice is bad-request", "<item jid='carol@localhost'><group>A</group><group>A</group></item>", xmpp.BadRequest},
		{"an empty group name is not-acceptable", "<item jid='carol@localhost'><group></group></item>", xmpp.NotAcceptable},
		{"two items in one set is bad-request", "<item jid='carol@localhost'/><item jid='dave@localhost'/>", xmpp.BadRequest},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			st, got := set(t, tt.item)
			a1.ExpectError(st, tt.want, "roster set")
			if ps := pushesOf(append(got, a2.UntilSync()...)); len(ps) > 0 {
				t.Errorf("a refused set was pushed:%s", a1.Dump(ps))
			}
		})
	}

	t.Run("more items than the limit is not-allowed, and the items there can still change", func(t *testing.T) {
		for _, j := range []string{"carol", "dave"} {
			st, _ := set(t, "<item jid='"+j+"@localhost'/>")
			a1.ExpectResult(st, "adding "+j)
		}
		st, _ := set(t, "<item jid='eve@localhost'/>")
		a1.ExpectError(st, xmpp.NotAllowed, "a fourth item with roster_size 3")
		st, _ = set(t, "<item jid='bob@localhost' name='Robert'/>")
		a1.ExpectResult(st, "renaming an item of a full roster")
		a2.UntilSync()
	})

	t.Run("a remove is pushed to the resources that asked for the roster only", func(t *testing.T) {
		st, got := set(t, "<item jid='bob@localhost' subscription='remove'/>")
		a1.ExpectResult(st, "roster remove")
		for _, r := range []struct {
			c   *parleytest.Conn
			got []*xmpp.Stanza
		}{{a1, got}, {a2, a2.UntilSync()}} {
			ps := pushesOf(r.got)
			if len(ps) != 1 || imItemState(imRosterPush(ps[0])) != "absent" {
				t.Errorf("%s got pushes:%s\nwant one with subscription='remove'", r.c.JID, r.c.Dump(ps))
			}
		}
		if ps := pushesOf(a3.UntilSync()); len(ps) > 0 {
			t.Errorf("alice/three got:%s", a3.Dump(ps))
		}
		if _, ok := imRoster(t, a1)["bob@localhost"]; ok {
			t.Error("bob is still in the roster")
		}
	})

	t.Run("removing an item that is not there is item-not-found", func(t *testing.T) {
		st, _ := set(t, "<item jid='nobody@localhost' subscription='remove'/>")
		a1.ExpectError(st, xmpp.ItemNotFound, "removing nobody")
	})
}

// TestIMServices: vCard (XEP-0054), private XML (XEP-0049), last activity
// (XEP-0012), the server's disco#info and its caps (XEP-0115).
func TestIMServices(t *testing.T) {
	s := parleytest.Start(t)
	imUsers(t, s, "alice", "bob", "carol")
	imPutItem(t, s, "alice", "bob", "from")
	imPutItem(t, s, "bob", "alice", "to")
	alice := imOnline(t, s, "alice", "phone", "")
	bob := imOnline(t, s, "bob", "desk", "")
	carol := imOnline(t, s, "carol", "desk", "")

	t.Run("a vCard set is what the user and others get", func(t *testing.T) {
		alice.ExpectResult(alice.IQ("set", "", "<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><NICKNAME>al</NICKNAME></vCard>"), "vCard set")
		for _, r := range []struct {
			c  *parleytest.Conn
			to string
		}{{alice, ""}, {bob, "alice@localhost"}} {
			st := r.c.IQ("get", r.to, "<vCard xmlns='vcard-temp'/>")
			fn := st.El.FindElement("vCard/FN")
			if st.Type != "result" || fn == nil || fn.Text() != "Alice Liddell" {
				t.Errorf("%s's vCard get: %s", r.c.JID, r.c.String(st.El))
			}
			if r.to != "" && st.From.String() != r.to {
				t.Errorf("the answer comes from %s, want %s", st.From, r.to)
			}
		}
	})

	t.Run("private XML is stored per namespace", func(t *testing.T) {
		alice.ExpectResult(alice.IQ("set", "", "<query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'><color>blue</color></prefs></query>"), "private set")
		st := alice.IQ("get", "", "<query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'/></query>")
		if c := st.El.FindElement("query/prefs/color"); st.Type != "result" || c == nil || c.Text() != "blue" {
			t.Fatalf("private get: %s", alice.String(st.El))
		}
		st = alice.IQ("get", "", "<query xmlns='jabber:iq:private'><other xmlns='urn:example:other'/></query>")
		el := st.El.FindElement("query/other")
		if st.Type != "result" || el == nil || xmpp.NS(el) != "urn:example:other" || len(el.ChildElements()) != 0 {
			t.Fatalf("private get of an unknown namespace: %s, want the empty element", alice.String(st.El))
		}
	})

	t.Run("last activity", func(t *testing.T) {
		st := bob.IQ("get", "alice@localhost", "<query xmlns='jabber:iq:last'/>")
		if st.Type != "result" || st.El.FindElement("query[@seconds='0']") == nil {
			t.Errorf("a subscriber asking for an online user: %s, want seconds='0'", bob.String(st.El))
		}
		carol.ExpectError(carol.IQ("get", "alice@localhost", "<query xmlns='jabber:iq:last'/>"), xmpp.Forbidden, "a non-subscriber asking for last activity")
		st = alice.IQ("get", imDomain, "<query xmlns='jabber:iq:last'/>")
		q := st.El.FindElement("query")
		if st.Type != "result" || q == nil {
			t.Fatalf("the server's last activity: %s", alice.String(st.El))
		}
		if n, err := strconv.Atoi(q.SelectAttrValue("seconds", "")); err != nil || n < 0 {
			t.Errorf("the server's uptime %s is not a number of seconds", alice.String(st.El))
		}
	})

	info := alice.IQ("get", imDomain, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
	t.Run("the server's disco#info lists offline messages and blocking", func(t *testing.T) {
		for _, f := range []string{"msgoffline", imNSBlocking} {
			if info.El.FindElement("query/feature[@var='"+f+"']") == nil {
				t.Errorf("disco#info %s: want feature %s", alice.String(info.El), f)
			}
		}
	})

	t.Run("the stream features carry caps that match disco#info", func(t *testing.T) {
		want := imCapsVer(t, info.El.FindElement("query"))
		c := s.DialRaw()
		c.Open(imDomain)
		for _, f := range []struct {
			when     string
			features *etree.Element
		}{{"before login", c.Features}, {"after login", alice.Features}} {
			caps := xmpp.Child(f.features, imNSCaps, "c")
			if caps == nil || caps.SelectAttrValue("hash", "") != "sha-1" || caps.SelectAttrValue("node", "") == "" || caps.SelectAttrValue("ver", "") != want {
				t.Errorf("features %s: %s, want <c xmlns='%s' hash='sha-1' node=... ver='%s'/>", f.when, c.String(f.features), imNSCaps, want)
			}
		}
	})
}

func TestIMUnblockWhileStillBlockedSendsNoPresence(t *testing.T) {
	s := parleytest.Start(t)
	imUsers(t, s, "alice", "bob")
	imBoth(t, s, "alice", "bob")
	alice := imOnline(t, s, "alice", "phone", "")
	bob := imOnline(t, s, "bob", "desk", "")
	aliceBare := imBare("alice")
	block := func(verb, jid string) {
		t.Helper()
		alice.ExpectResult(alice.IQ("set", "", "<"+verb+" xmlns='"+imNSBlocking+"'><item jid='"+jid+"'/></"+verb+">"), verb+" "+jid)
		alice.UntilSync()
	}
	block("block", "bob@localhost")
	block("block", imDomain)
	bob.UntilSync()
	// Bob is still blocked by the domain item: he must not see alice
	// come back.
	block("unblock", "bob@localhost")
	for _, st := range bob.UntilSync() {
		if st.Kind == xmpp.KindPresence && st.From.Bare() == aliceBare {
			t.Fatalf("bob, still blocked by the domain, got %s", bob.String(st.El))
		}
	}
	// Unblocking the domain too brings her presence back.
	block("unblock", imDomain)
	bob.WaitFor("alice's presence", func(st *xmpp.Stanza) bool {
		return st.Kind == xmpp.KindPresence && st.Type == "" && st.From.Bare() == aliceBare
	})

}

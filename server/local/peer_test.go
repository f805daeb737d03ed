package local

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// These tests put a peer domain, remote.example, in the router: what a
// server to server link will hand over, and what it is handed. Probes and
// subscription stanzas come from other servers, which the black-box tests
// cannot stand in for (a client's probe is dropped), so they are sent
// here as such a server sends them.

// peerDomain is the other server of these tests.
const peerDomain = "remote.example"

// peer records what the local host routes to peerDomain.
type peer struct {
	mu  sync.Mutex
	got []*xmpp.Stanza
}

func (p *peer) HandleStanza(st *xmpp.Stanza) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, st.Copy())
}

// take returns what the peer got since the last take.
func (p *peer) take() []*xmpp.Stanza {
	p.mu.Lock()
	defer p.mu.Unlock()
	got := p.got
	p.got = nil
	return got
}

// newPeerHost is newAcctHost with the peer in the router; items are
// roster items written before anyone logs in, as "user contact sub".
func newPeerHost(t *testing.T, items ...string) (*acctHost, *peer) {
	t.Helper()
	x := newAcctHost(t, "", func(ctx context.Context, st *storage.Store) error {
		for _, it := range items {
			f := strings.Fields(it)
			if _, err := st.PutRosterItem(ctx, acctDomain, f[0], storage.RosterItem{JID: f[1], Subscription: f[2]}); err != nil {
				return err
			}
		}
		return nil
	})
	p := &peer{}
	x.h.router.SetHost(peerDomain, p)
	return x, p
}

// describeAll renders stanzas one a line, for failure messages.
func describeAll(sts []*xmpp.Stanza) string {
	var b strings.Builder
	for _, st := range sts {
		b.WriteString("\n\t")
		b.WriteString(string(serializeStanza(st)))
	}
	if b.Len() == 0 {
		return " nothing"
	}
	return b.String()
}

// brief names a presence as type@from, "available" for no type.
func brief(st *xmpp.Stanza) string {
	typ := st.Type
	if typ == "" {
		typ = "available"
	}
	return typ + "@" + st.From.String()
}

// TestPeerSubscriptionToNoAccountIsIgnored: RFC 6121 §8.5.1, "For a
// presence stanza of type "subscribe", "subscribed", "unsubscribe", or
// "unsubscribed", the server MUST silently ignore the stanza" when the
// account does not exist; in particular a subscribe is not answered
// unsubscribed, which would tell anyone which accounts exist.
func TestPeerSubscriptionToNoAccountIsIgnored(t *testing.T) {
	x, p := newPeerHost(t)
	for _, typ := range []string{"subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe"} {
		for _, to := range []string{"nobody@" + acctDomain, "nobody@" + acctDomain + "/res"} {
			t.Run(typ+" to "+to, func(t *testing.T) {
				awaitDone(t, x.route(t, "<presence from='romeo@%s' to='%s' type='%s' id='s1'/>", peerDomain, to, typ), typ)
				if got := p.take(); len(got) > 0 {
					t.Errorf("the peer got%s\nwant nothing", describeAll(got))
				}
			})
		}
	}
}

// TestPeerUnsubscribeIsAnsweredUnsubscribed: an inbound unsubscribe that
// changes the state is answered unsubscribed on the user's behalf (RFC
// 6121 A.3.2, footnote 1), after the unavailable presence of §3.3.3 step 3
// when the contact was subscribed; one that changes nothing is not.
func TestPeerUnsubscribeIsAnsweredUnsubscribed(t *testing.T) {
	romeo := "romeo@" + peerDomain
	tests := []struct {
		name    string
		item    string // alice's item for romeo; "" for none
		request bool   // romeo asks to subscribe first
		want    string
	}{
		{"From", "from", false, "unavailable@alice@localhost/phone unsubscribed@alice@localhost"},
		{"Both", "both", false, "unavailable@alice@localhost/phone unsubscribed@alice@localhost"},
		{"None + Pending In: the request is withdrawn", "", true, "unsubscribed@alice@localhost"},
		{"To: nothing changes", "to", false, ""},
		{"None: nothing changes", "", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var items []string
			if tt.item != "" {
				items = append(items, "alice "+romeo+" "+tt.item)
			}
			x, p := newPeerHost(t, items...)
			x.login(t, "alice@"+acctDomain+"/phone", true)
			if tt.request {
				awaitDone(t, x.route(t, "<presence from='%s' to='alice@%s' type='subscribe'/>", romeo, acctDomain), "subscribe")
			}
			p.take()
			awaitDone(t, x.route(t, "<presence from='%s' to='alice@%s' type='unsubscribe'/>", romeo, acctDomain), "unsubscribe")
			got := p.take()
			var names []string
			for _, st := range got {
				names = append(names, brief(st))
			}
			if strings.Join(names, " ") != tt.want {
				t.Errorf("the peer got%s\nwant %q", describeAll(got), tt.want)
			}
		})
	}
}

// TestPeerProbes checks the answers to probes (RFC 6121 §4.3.2, §4.6.6).
func TestPeerProbes(t *testing.T) {
	romeo, room := "romeo@"+peerDomain, "room@"+peerDomain
	alice := "alice@" + acctDomain
	type step func(t *testing.T, x *acctHost)
	login := func(res string) step {
		return func(t *testing.T, x *acctHost) { x.login(t, alice+"/"+res, true) }
	}
	send := func(res, stanza string) step {
		return func(t *testing.T, x *acctHost) { awaitDone(t, x.send(t, alice+"/"+res, "%s", stanza), stanza) }
	}
	logout := func(res string) step {
		return func(t *testing.T, x *acctHost) {
			s := x.h.session(xmpp.MustParse(alice + "/" + res))
			awaitDone(t, x.send(t, alice+"/"+res, "<presence type='unavailable'><status>Heading Home</status></presence>"), "logout")
			x.h.unbind(s)
		}
	}
	tests := []struct {
		name     string
		item     string // alice's subscription for romeo
		steps    []step
		from, to string
		// want lists the answers as brief names; check looks closer.
		want  string
		check func(t *testing.T, got []*xmpp.Stanza)
	}{
		{
			name: "no subscription: unsubscribed, with the probe's id",
			from: romeo, to: alice, steps: []step{login("phone")},
			want: "unsubscribed@" + alice,
			check: func(t *testing.T, got []*xmpp.Stanza) {
				if got[0].El.SelectAttrValue("id", "") != "probe-1" {
					t.Errorf("the id is %q, want probe-1", got[0].El.SelectAttrValue("id", ""))
				}
			},
		},
		{
			name: "a user who logged out: unavailable with the id, the status and a delay stamped with the logout",
			item: "from", from: romeo, to: alice, steps: []step{login("phone"), logout("phone")},
			want: "unavailable@" + alice,
			check: func(t *testing.T, got []*xmpp.Stanza) {
				st := got[0]
				if st.El.SelectAttrValue("id", "") != "probe-1" {
					t.Errorf("the id is %q, want probe-1", st.El.SelectAttrValue("id", ""))
				}
				if s := xmpp.Child(st.El, "", "status"); s == nil || s.Text() != "Heading Home" {
					t.Errorf("want the status of the logout")
				}
				d := xmpp.Child(st.El, xmpp.NSDelay, "delay")
				if d == nil {
					t.Fatal("no <delay/>")
				}
				at, err := time.Parse(time.RFC3339, d.SelectAttrValue("stamp", ""))
				if err != nil || time.Since(at) > time.Minute || time.Since(at) < -time.Second {
					t.Errorf("the stamp %q is not the moment of the logout", d.SelectAttrValue("stamp", ""))
				}
			},
		},
		{
			name: "a user never seen: unavailable with the id and no delay",
			item: "from", from: romeo, to: alice,
			want: "unavailable@" + alice,
			check: func(t *testing.T, got []*xmpp.Stanza) {
				if got[0].El.SelectAttrValue("id", "") != "probe-1" || xmpp.Child(got[0].El, xmpp.NSDelay, "delay") != nil {
					t.Errorf("want the id and no delay")
				}
			},
		},
		{
			name: "the bare JID: each available resource",
			item: "both", from: romeo, to: alice, steps: []step{login("desk"), login("phone")},
			want: "available@" + alice + "/desk available@" + alice + "/phone",
		},
		{
			name: "a full JID: that resource alone",
			item: "both", from: romeo, to: alice + "/phone", steps: []step{login("desk"), login("phone")},
			want: "available@" + alice + "/phone",
		},
		{
			name: "a full JID that is not available: unavailable from it, with the id",
			item: "both", from: romeo, to: alice + "/gone", steps: []step{login("desk")},
			want: "unavailable@" + alice + "/gone",
			check: func(t *testing.T, got []*xmpp.Stanza) {
				if got[0].El.SelectAttrValue("id", "") != "probe-1" {
					t.Errorf("want the id")
				}
			},
		},
		{
			name: "an entity that got directed presence: that presence again, from the resource that sent it",
			from: room, to: alice,
			steps: []step{login("desk"), login("phone"), send("phone", "<presence to='"+room+"/al'><show>dnd</show></presence>")},
			want:  "available@" + alice + "/phone",
			check: func(t *testing.T, got []*xmpp.Stanza) {
				if s := xmpp.Child(got[0].El, "", "show"); s == nil || s.Text() != "dnd" {
					t.Errorf("want the presence sent to the room, with its show")
				}
			},
		},
		{
			name: "an entity that got directed presence, to a full JID of the other resource: that resource's unavailable",
			from: room, to: alice + "/desk",
			steps: []step{login("desk"), login("phone"), send("phone", "<presence to='"+room+"/al'/>")},
			want:  "unsubscribed@" + alice,
		},
		{
			name: "an entity whose directed presence was withdrawn: unsubscribed",
			from: room, to: alice,
			steps: []step{login("phone"), send("phone", "<presence to='"+room+"/al'/>"), send("phone", "<presence to='"+room+"/al' type='unavailable'/>")},
			want:  "unsubscribed@" + alice,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var items []string
			if tt.item != "" {
				items = append(items, "alice "+romeo+" "+tt.item)
			}
			x, p := newPeerHost(t, items...)
			for _, s := range tt.steps {
				s(t, x)
			}
			p.take()
			awaitDone(t, x.route(t, "<presence from='%s' to='%s' type='probe' id='probe-1'/>", tt.from, tt.to), "the probe")
			got := p.take()
			var names []string
			for _, st := range got {
				names = append(names, brief(st))
			}
			if strings.Join(names, " ") != tt.want {
				t.Fatalf("the peer got%s\nwant %q", describeAll(got), tt.want)
			}
			if tt.check != nil {
				tt.check(t, got)
			}
		})
	}
}

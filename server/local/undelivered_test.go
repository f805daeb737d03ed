package local

import (
	"context"
	"strings"
	"testing"

	"github.com/parley-im/parley/xmpp"
)

// drained empties what s was delivered and returns it.
func (s *testSession) drained() []*xmpp.Stanza {
	var out []*xmpp.Stanza
	for {
		select {
		case st := <-s.got:
			out = append(out, st)
		default:
			return out
		}
	}
}

// describe lists stanzas as "kind#id" or "kind#id:condition" for errors.
func describe(sts []*xmpp.Stanza) string {
	var parts []string
	for _, st := range sts {
		p := st.Kind.String() + "#" + st.ID
		if st.IsError() {
			if se := xmpp.ParseStanzaError(st.El); se != nil {
				p += ":" + string(se.Condition)
			}
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " ")
}

// TestAClosingSessionsStanzasGoWhereTheyWouldWithoutIt: a stanza for a
// session that is closing is routed as if the session were gone (RFC 6121
// §8.5.3.2, §8.5.2.1.1), not bounced with <recipient-unavailable/>.
// bob/phone starts closing between the lookup that finds it and the
// delivery (closeOnDeliver), or is closing before it (closed).
func TestAClosingSessionsStanzasGoWhereTheyWouldWithoutIt(t *testing.T) {
	tests := []struct {
		name     string
		phone    int  // bob/phone's priority
		desk     int  // bob/desk's priority; -1: bob has no other session
		closed   bool // phone is closing before the stanza is routed
		stanza   string
		wantDesk string // what bob/desk gets
		wantBack string // what alice gets back
		offline  int    // messages stored for bob
	}{
		{name: "chat to the full JID goes to the other resource", phone: 5, desk: 1,
			stanza: "<message to='bob@localhost/phone' type='chat' id='m1'><body>hi</body></message>", wantDesk: "message#m1"},
		{name: "chat to the full JID of a resource already closing", phone: 5, desk: 1, closed: true,
			stanza: "<message to='bob@localhost/phone' type='chat' id='m1'><body>hi</body></message>", wantDesk: "message#m1"},
		{name: "chat to the full JID is stored when no resource is left", phone: 5, desk: -1,
			stanza: "<message to='bob@localhost/phone' type='chat' id='m1'><body>hi</body></message>", offline: 1},
		{name: "normal to the bare JID goes to the next priority", phone: 5, desk: 1,
			stanza: "<message to='bob@localhost' id='m1'><body>hi</body></message>", wantDesk: "message#m1"},
		{name: "chat to the bare JID is not duplicated to another of the best resources", phone: 0, desk: 0,
			stanza: "<message to='bob@localhost' type='chat' id='m1'><body>hi</body></message>", wantDesk: "message#m1"},
		{name: "chat to the bare JID is stored when no resource is left", phone: 0, desk: -1,
			stanza: "<message to='bob@localhost' type='chat' id='m1'><body>hi</body></message>", offline: 1},
		{name: "a headline to the full JID is dropped", phone: 5, desk: 1,
			stanza: "<message to='bob@localhost/phone' type='headline' id='m1'><body>hi</body></message>"},
		{name: "an iq get is answered with service-unavailable", phone: 5, desk: 1,
			stanza: "<iq to='bob@localhost/phone' type='get' id='q1'><query xmlns='jabber:iq:version'/></iq>", wantBack: "iq#q1:service-unavailable"},
		{name: "an iq result is dropped", phone: 5, desk: -1,
			stanza: "<iq to='bob@localhost/phone' type='result' id='q1'/>"},
		{name: "directed presence is dropped", phone: 5, desk: 1,
			stanza: "<presence to='bob@localhost/phone' id='p1'/>"},
		{name: "an error is not answered", phone: 5, desk: 1,
			stanza: "<message to='bob@localhost/phone' type='error' id='m1'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newAcctHost(t, "", nil)
			alice := x.login(t, "alice@localhost/a", true)
			phone := x.login(t, "bob@localhost/phone", false)
			awaitDone(t, x.send(t, "bob@localhost/phone", "<presence><priority>%d</priority></presence>", tt.phone), "phone's presence")
			var desk *testSession
			if tt.desk >= 0 {
				desk = x.login(t, "bob@localhost/desk", false)
				awaitDone(t, x.send(t, "bob@localhost/desk", "<presence><priority>%d</priority></presence>", tt.desk), "desk's presence")
				desk.drained()
			}
			alice.drained()
			phone.drained()
			if tt.closed {
				phone.Close(nil)
			} else {
				phone.closeOnDeliver.Store(true)
			}

			awaitDone(t, x.send(t, "alice@localhost/a", "%s", tt.stanza), "routing the stanza")

			if got := describe(phone.drained()); got != "" {
				t.Errorf("the closing session took %s", got)
			}
			if desk != nil {
				if got := describe(desk.drained()); got != tt.wantDesk {
					t.Errorf("bob/desk got [%s], want [%s]", got, tt.wantDesk)
				}
			}
			if got := describe(alice.drained()); got != tt.wantBack {
				t.Errorf("the sender got [%s], want [%s]", got, tt.wantBack)
			}
			ctx, cancel := context.WithTimeout(context.Background(), acctGuard)
			defer cancel()
			stored, err := x.store.OfflineMessages(ctx, acctDomain, "bob")
			if err != nil {
				t.Fatal(err)
			}
			if len(stored) != tt.offline {
				t.Errorf("%d messages stored for bob, want %d", len(stored), tt.offline)
			}
		})
	}
}

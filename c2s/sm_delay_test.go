package c2s_test

import (
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// delayStamps returns the stamps of the XEP-0203 delays from domain that
// el carries, in order.
func delayStamps(t *testing.T, el *etree.Element, domain string) []time.Time {
	t.Helper()
	var out []time.Time
	for _, d := range el.SelectElements("delay") {
		if xmpp.NS(d) != xmpp.NSDelay || d.SelectAttrValue("from", "") != domain {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, d.SelectAttrValue("stamp", ""))
		if err != nil {
			t.Fatalf("delay stamp: %v", err)
		}
		out = append(out, at)
	}
	return out
}

// within checks that at lies between from and to, at the millisecond
// precision of the stamps: it was made between the two.
func within(at, from, to time.Time) bool {
	return !at.Before(from.Truncate(time.Millisecond)) && !at.After(to)
}

// TestSMResendStampsDelay: what a resumed session sends again, and what
// came for it while detached, carries a XEP-0203 delay from the server's
// domain with when it was first queued (XEP-0198 §4); an iq carries none,
// a stanza that has this server's delay keeps it alone (an offline
// message), and another entity's delay stays beside the server's.
func TestSMResendStampsDelay(t *testing.T) {
	for _, p := range parkings {
		t.Run(p.name, func(t *testing.T) {
			s := smServer(t, p.d, time.Minute)
			bob := s.Login("bob@localhost", "pw", "b")
			start := time.Now()
			bob.Send("<message to='alice@localhost' type='chat' id='offline'><body>stored</body></message>")
			bob.Sync()
			a, enabled := enable(t, s, "alice", "a", "resume='true'")
			id := enabled.SelectAttrValue("id", "")
			before := time.Now()
			a.c.Send("<presence/>")
			bob.Send("<message to='alice@localhost/a' type='chat' id='sent'><body>one</body></message>")
			bob.Send("<message to='alice@localhost/a' type='chat' id='other'><body>two</body><delay xmlns='urn:xmpp:delay' from='elsewhere.example' stamp='2020-01-01T00:00:00Z'/></message>")
			bob.Send("<iq to='alice@localhost/a' type='get' id='iq'><query xmlns='jabber:iq:version'/></iq>")
			bob.Sync()
			want := map[string]bool{"offline": true, "sent": true, "other": true, "iq": true}
			for len(want) > 0 {
				el, err := a.c.NextErr()
				if err != nil {
					t.Fatal(err)
				}
				delete(want, el.SelectAttrValue("id", ""))
			}
			seen := time.Now()
			// Read, never acknowledged; then gone. Bob writes on.
			a.c.Conn.Close()
			bob.Send("<message to='alice@localhost/a' type='chat' id='detached'><body>three</body></message>")
			bob.Sync()
			c := smLogin(t, s, "alice")
			c.Send("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='0'/>", id)
			if el := c.Next(); el.Tag != "resumed" {
				t.Fatalf("resume: %s", c.String(el))
			}
			// The server may have noticed the drop only now (then it
			// detached, and stamped what it held unwritten, at the
			// resume).
			resumed := time.Now()
			got := map[string]*etree.Element{}
			for got["detached"] == nil {
				el := c.Next()
				if xmpp.KindOf(el) == xmpp.KindNone {
					continue
				}
				got[el.SelectAttrValue("id", "")] = el
			}
			tests := []struct {
				id       string
				from, to time.Time // the server's stamp lies between; both zero: no stamp
				others   int       // delays from elsewhere
			}{
				{"offline", start, before, 0}, // stored before alice came
				{"sent", before, seen, 0},
				{"other", before, seen, 1},
				{"iq", time.Time{}, time.Time{}, 0},
				{"detached", seen, resumed, 0},
			}
			for _, tt := range tests {
				el := got[tt.id]
				if el == nil {
					t.Errorf("%s: not sent again; got %v", tt.id, got)
					continue
				}
				stamps := delayStamps(t, el, "localhost")
				switch {
				case tt.from.IsZero() && len(stamps) != 0:
					t.Errorf("%s: %s, want no delay", tt.id, c.String(el))
				case !tt.from.IsZero() && (len(stamps) != 1 || !within(stamps[0], tt.from, tt.to)):
					t.Errorf("%s: %s, want one delay from localhost stamped between %s and %s", tt.id, c.String(el), tt.from, tt.to)
				}
				if n := len(el.SelectElements("delay")) - len(stamps); n != tt.others {
					t.Errorf("%s: %d other delays, want %d: %s", tt.id, n, tt.others, c.String(el))
				}
			}
		})
	}
}

// TestSMTimeoutStampsDelay: a message a detached session never got
// acknowledged goes to offline storage at the timeout with the time it
// was first sent, before the offline store's own stamp.
func TestSMTimeoutStampsDelay(t *testing.T) {
	s := smServer(t, 0, 300*time.Millisecond)
	a, _ := enable(t, s, "alice", "a", "resume='true'")
	a.c.Send("<presence/>")
	b := s.Login("bob@localhost", "pw", "b")
	before := time.Now()
	b.Send("<message to='alice@localhost/a' type='chat' id='m1'><body>one</body></message>")
	for {
		el, err := a.c.NextErr()
		if err != nil {
			t.Fatal(err)
		}
		if el.SelectAttrValue("id", "") == "m1" {
			break
		}
	}
	seen := time.Now()
	a.c.Conn.Close()
	time.Sleep(time.Second)
	c := s.Login("alice@localhost", "pw", "again")
	c.Send("<presence/>")
	for {
		el := c.Next()
		if el.Tag != "message" {
			continue
		}
		stamps := delayStamps(t, el, "localhost")
		if len(stamps) != 2 || !within(stamps[0], before, seen) || !stamps[1].After(stamps[0]) {
			t.Fatalf("after the timeout: %s, want the delay of its first sending, between %s and %s, then the offline store's",
				c.String(el), before, seen)
		}
		return
	}
}

package local

import (
	"context"
	"fmt"
	"github.com/parley-im/parley/server"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// queueSession is a bound session with a bounded queue, like a c2s
// session's: the test plays its writer, taking what is queued (written),
// or failing, which hands what is queued back to the router as a c2s
// session whose connection failed does.
type queueSession struct {
	jid     xmpp.JID
	max     int // stanzas the queue holds
	closing atomic.Bool

	presenceState // its mu guards queue too
	queue         []*etree.Element
}

func (s *queueSession) JID() xmpp.JID { return s.jid }

func (s *queueSession) Deliver(el *etree.Element) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() || len(s.queue) >= s.max {
		return false
	}
	s.queue = append(s.queue, el)
	return true
}

func (s *queueSession) Closing() bool             { return s.closing.Load() }
func (s *queueSession) Close(e *xmpp.StreamError) { s.closing.Store(true) }

// write takes what is queued, at most limit stanzas (all when limit is
// below 0), as the writer does, and returns the ids of the messages.
func (s *queueSession) write(limit int) []string {
	s.mu.Lock()
	if limit < 0 || limit > len(s.queue) {
		limit = len(s.queue)
	}
	batch := slices.Clone(s.queue[:limit])
	s.queue = slices.Delete(s.queue, 0, limit)
	s.mu.Unlock()
	var ids []string
	for _, el := range batch {
		if el.Tag == "message" {
			ids = append(ids, el.SelectAttrValue("id", ""))
		}
	}
	return ids
}

// fail closes s as a failed connection does (c2s writeLoop): closing
// first, then what is queued goes back to the router, unwritten.
func (s *queueSession) fail(r *server.Router) {
	s.closing.Store(true)
	s.mu.Lock()
	batch := s.queue
	s.queue = nil
	s.mu.Unlock()
	for _, el := range batch {
		st, err := xmpp.NewStanza(el)
		if err != nil {
			continue
		}
		r.Undelivered(s, st)
	}
}

// offlineIDs are the ids of n stored messages: m000, m001...
func offlineIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("m%03d", i)
	}
	return ids
}

// TestOfflineDeliveryInPages: messages kept for a user come a page at a
// time, each page taken from the store as the session queues it. A
// session that takes them all gets them in order, once, and the store is
// empty; one whose connection fails part way hands back what it did not
// write, which goes back to the store in its place: the next login gets
// exactly the rest, in order, and nothing is lost; another available
// resource of the user gets it at once.
func TestOfflineDeliveryInPages(t *testing.T) {
	const n, size = 250, 12_000 // about 11 pages of 1 MiB
	tests := []struct {
		name      string
		queue     int // the session's queue
		failAfter int // the session fails once it wrote this many; -1: never
		other     bool
	}{
		{name: "a queue smaller than a page: all, in order, once", queue: 30, failAfter: -1},
		{name: "a queue larger than the store: all, in order, once", queue: 1000, failAfter: -1},
		{name: "a connection that fails mid-delivery: the rest comes next login", queue: 30, failAfter: 120},
		{name: "a connection that fails before it writes anything", queue: 30, failAfter: 0},
		{name: "a connection that fails mid-delivery: the rest goes to the other resource", queue: 30, failAfter: 120, other: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := strings.Repeat("x", size)
			x := newAcctHost(t, "", func(ctx context.Context, st *storage.Store) error {
				for _, id := range offlineIDs(n) {
					m := fmt.Sprintf("<message xmlns='jabber:client' from='alice@localhost/a' to='bob@localhost' type='chat' id='%s'><body>%s</body></message>", id, body)
					if err := st.StoreOffline(ctx, acctDomain, "bob", []byte(m), storage.OfflineQuota{Messages: n}); err != nil {
						return err
					}
				}
				return nil
			})
			x.h.limits.offline = n
			var desk *queueSession
			if tt.other {
				// bob/desk is online, available, and has taken nothing:
				// the messages were stored around it.
				desk = &queueSession{jid: xmpp.MustParse("bob@localhost/desk"), max: n + 10}
				desk.available = true
				if err := x.h.bind(desk); err != nil {
					t.Fatal(err)
				}
			}
			phone := &queueSession{jid: xmpp.MustParse("bob@localhost/phone"), max: tt.queue}
			if err := x.h.bind(phone); err != nil {
				t.Fatal(err)
			}
			done := x.send(t, "bob@localhost/phone", "<presence/>")

			var written []string
			guard := time.Now().Add(acctGuard)
			for len(written) < n && len(written) != tt.failAfter {
				if time.Now().After(guard) {
					t.Fatalf("after %v, the session wrote %d of %d messages", acctGuard, len(written), n)
				}
				limit := -1
				if tt.failAfter >= 0 {
					limit = tt.failAfter - len(written)
				}
				ids := phone.write(limit)
				written = append(written, ids...)
				if len(ids) == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			if tt.failAfter >= 0 {
				phone.fail(x.h.router)
			}
			awaitDone(t, done, "the initial presence and offline delivery")
			x.h.unbind(phone)

			var rest []string
			switch {
			case tt.other:
				for len(written)+len(rest) < n && time.Now().Before(guard) {
					rest = append(rest, desk.write(-1)...)
					time.Sleep(time.Millisecond)
				}
			case tt.failAfter >= 0:
				again := &queueSession{jid: xmpp.MustParse("bob@localhost/phone"), max: n + 10}
				if err := x.h.bind(again); err != nil {
					t.Fatal(err)
				}
				awaitDone(t, x.send(t, "bob@localhost/phone", "<presence/>"), "the second login's offline delivery")
				rest = again.write(-1)
			}
			got := append(written, rest...)
			if tt.other {
				// Another resource gets what comes back as it comes.
				slices.Sort(got)
			}
			if want := offlineIDs(n); !slices.Equal(got, want) {
				t.Fatalf("the user got %d messages %v...%v, want %d in order, each once (first login wrote %d)",
					len(got), got[:min(3, len(got))], got[max(0, len(got)-3):], n, len(written))
			}
			ctx, cancel := context.WithTimeout(context.Background(), acctGuard)
			defer cancel()
			if left, err := x.store.OfflineMessages(ctx, acctDomain, "bob"); err != nil || len(left) != 0 {
				t.Errorf("after delivery the store holds %d messages (%v), want none", len(left), err)
			}
		})
	}
}

// TestOfflineHandedBackKeepsItsStamp: a message handed back goes back to
// the store as it was stored, without the delay stamp of its delivery, and
// with its first time.
func TestOfflineHandedBackKeepsItsStamp(t *testing.T) {
	x := newAcctHost(t, "", func(ctx context.Context, st *storage.Store) error {
		return st.StoreOffline(ctx, acctDomain, "bob",
			[]byte("<message xmlns='jabber:client' from='alice@localhost/a' to='bob@localhost' id='m1'><body>hi</body></message>"),
			storage.OfflineQuota{Messages: 10})
	})
	ctx, cancel := context.WithTimeout(context.Background(), acctGuard)
	defer cancel()
	before, err := x.store.OfflineMessages(ctx, acctDomain, "bob")
	if err != nil || len(before) != 1 {
		t.Fatalf("stored %v, %v", before, err)
	}
	phone := &queueSession{jid: xmpp.MustParse("bob@localhost/phone"), max: 10}
	if err := x.h.bind(phone); err != nil {
		t.Fatal(err)
	}
	awaitDone(t, x.send(t, "bob@localhost/phone", "<presence/>"), "offline delivery")
	phone.fail(x.h.router)
	after, err := x.store.OfflineMessages(ctx, acctDomain, "bob")
	if err != nil || len(after) != 1 {
		t.Fatalf("after the hand back the store holds %v, %v; want the message", after, err)
	}
	if after[0].Seq != before[0].Seq || !after[0].Stored.Equal(before[0].Stored) || strings.Contains(string(after[0].Stanza), xmpp.NSDelay) {
		t.Errorf("handed back as %d %v %s\nwant it as stored: %d %v %s", after[0].Seq, after[0].Stored, after[0].Stanza, before[0].Seq, before[0].Stored, before[0].Stanza)
	}
	if n := x.h.inFlight.len(); n != 0 {
		t.Errorf("%d offline messages still in flight after the hand back", n)
	}
}

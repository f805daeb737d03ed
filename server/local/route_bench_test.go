package local

import (
	"context"
	"fmt"
	"github.com/parley-im/parley/server"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// benchSession is a bound, available session that takes every stanza and
// keeps none, so that what a benchmark measures is the routing.
type benchSession struct {
	jid xmpp.JID
	got atomic.Int64
}

func (s *benchSession) JID() xmpp.JID                            { return s.jid }
func (s *benchSession) Deliver(*etree.Element) bool              { s.got.Add(1); return true }
func (s *benchSession) Closing() bool                            { return false }
func (s *benchSession) Close(*xmpp.StreamError)                  {}
func (s *benchSession) Available() bool                          { return true }
func (s *benchSession) Priority() int                            { return 0 }
func (s *benchSession) SetPresence(available bool, priority int) {}

// BenchmarkRouteChatMessage routes a chat message from alice/phone to bob,
// both online, as c2s hands it over: the sender's and the recipient's
// block checks, the lookups of their accounts and sessions, and the
// delivery to the recipient's queue; no network, XML or TLS.
func BenchmarkRouteChatMessage(b *testing.B) {
	for _, to := range []string{"bob@localhost/desk", "bob@localhost"} {
		b.Run("to="+to, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			store, err := storage.Open(ctx, storage.Memory)
			if err != nil {
				b.Fatalf("opening the store: %v", err)
			}
			defer store.Close()
			log := slog.New(slog.DiscardHandler)
			r := server.NewRouter(log)
			h := newLocalHost("localhost", r, store, hostLimits{roster: 100, offline: 100}, log)
			r.SetHost("localhost", h)
			alice := &benchSession{jid: xmpp.MustParse("alice@localhost/phone")}
			bob := &benchSession{jid: xmpp.MustParse("bob@localhost/desk")}
			for _, s := range []*benchSession{alice, bob} {
				if err := store.CreateAccount(ctx, storage.Account{Host: "localhost", Username: s.jid.Local()}); err != nil {
					b.Fatalf("creating %s: %v", s.jid.Local(), err)
				}
				if err := h.bind(s); err != nil {
					b.Fatalf("binding %s: %v", s.jid, err)
				}
			}
			st, err := parseStanza([]byte("<message to='" + to + "' type='chat' id='m1'><body>hi</body></message>"))
			if err != nil {
				b.Fatal(err)
			}
			st.SetFrom(alice.jid)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h.FromClient(st)
			}
			b.StopTimer()
			if got := bob.got.Load(); got != int64(b.N) {
				b.Fatalf("bob got %d messages of %d", got, b.N)
			}
		})
	}
}

// BenchmarkRoomFanOut routes one room message's copies to 20 occupants
// of this host, each online with one session, as a muc room's flush
// hands them over: one Route each ("one by one", before
// server.FanOutHost) or one RouteFanOut for all ("at once"). The block
// checks, the account and session lookups and the deliveries to the
// queues; no module, network, XML or TLS.
func BenchmarkRoomFanOut(b *testing.B) {
	const occupants = 20
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store, err := storage.Open(ctx, storage.Memory)
	if err != nil {
		b.Fatalf("opening the store: %v", err)
	}
	defer store.Close()
	log := slog.New(slog.DiscardHandler)
	r := server.NewRouter(log)
	h := newLocalHost("localhost", r, store, hostLimits{roster: 100, offline: 100}, log)
	r.SetHost("localhost", h)
	sessions := make([]*benchSession, occupants)
	sts := make([]*xmpp.Stanza, occupants)
	for i := range sessions {
		s := &benchSession{jid: xmpp.MustParse(fmt.Sprintf("u%d@localhost/r", i))}
		if err := store.CreateAccount(ctx, storage.Account{Host: "localhost", Username: s.jid.Local()}); err != nil {
			b.Fatalf("creating %s: %v", s.jid.Local(), err)
		}
		if err := h.bind(s); err != nil {
			b.Fatalf("binding %s: %v", s.jid, err)
		}
		sessions[i] = s
		st, err := parseStanza([]byte("<message from='room@muc.localhost/nick0' to='" + s.jid.String() + "' type='groupchat' id='m1'><body>hi</body></message>"))
		if err != nil {
			b.Fatal(err)
		}
		sts[i] = st
	}
	for _, c := range []struct {
		name  string
		route func([]*xmpp.Stanza)
	}{
		{"one by one", func(sts []*xmpp.Stanza) {
			for _, st := range sts {
				r.Route(st)
			}
		}},
		{"at once", r.RouteFanOut},
	} {
		b.Run(c.name, func(b *testing.B) {
			before := sessions[occupants-1].got.Load()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c.route(sts)
			}
			b.StopTimer()
			if got := sessions[occupants-1].got.Load() - before; got != int64(b.N) {
				b.Fatalf("the last occupant got %d messages of %d", got, b.N)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*occupants), "ns/delivery")
		})
	}
}

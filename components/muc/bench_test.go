package muc

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/parley-im/parley/server"
	"github.com/parley-im/parley/xmpp"
)

// sink is a local domain that counts what it is given: the benchmark
// measures the room, not the sessions.
type sink struct{ n atomic.Int64 }

func (s *sink) HandleStanza(*xmpp.Stanza) { s.n.Add(1) }

// BenchmarkRoomFanout: one groupchat message to a room of 20 occupants,
// from its arrival at the service to the 20 stanzas handed to the
// router, with ns and allocations per delivery.
func BenchmarkRoomFanout(b *testing.B) {
	const occupants = 20
	svc, users, stanza := benchRoom(b, occupants)
	msgs := make([]*xmpp.Stanza, b.N)
	tmpl := stanza("<message from='u0@localhost/r' to='room@muc.localhost' type='groupchat' id='m'><body>hello, room</body></message>")
	for i := range msgs {
		msgs[i] = &xmpp.Stanza{El: tmpl.El.Copy(), Kind: tmpl.Kind, Type: tmpl.Type, ID: tmpl.ID, To: tmpl.To, From: tmpl.From}
	}
	before := users.n.Load()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		svc.HandleStanza(msgs[i])
	}
	b.StopTimer()
	runtime.ReadMemStats(&m1)
	delivered := users.n.Load() - before
	if delivered != int64(b.N*occupants) {
		b.Fatalf("%d deliveries; want %d", delivered, b.N*occupants)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(delivered), "ns/delivery")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(delivered), "allocs/delivery")
}

// BenchmarkVoiceToggle: the owner of a room of 20 occupants revokes and
// grants one occupant's voice by muc#admin iqs, one iq an op: the
// check, the role change and its presence to every occupant (20
// presences and the result handed to the router).
func BenchmarkVoiceToggle(b *testing.B) {
	const occupants = 20
	svc, users, stanza := benchRoom(b, occupants)
	iqs := make([]*xmpp.Stanza, b.N)
	for i := range iqs {
		role := "visitor"
		if i%2 == 1 {
			role = "participant"
		}
		iqs[i] = stanza(fmt.Sprintf("<iq type='set' id='v%d' from='u0@localhost/r' to='room@muc.localhost'>"+
			"<query xmlns='%s'><item nick='nick1' role='%s'/></query></iq>", i, NSMUCAdmin, role))
	}
	before := users.n.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		svc.HandleStanza(iqs[i])
	}
	b.StopTimer()
	if got := users.n.Load() - before; got != int64(b.N*(occupants+1)) {
		b.Fatalf("%d stanzas; want %d", got, b.N*(occupants+1))
	}
}

// benchRoom returns a service whose room "room" has occupants
// occupants (u0, its owner, as nick0, ...), a sink that counts what it
// sends to users, and a parser of stanzas.
func benchRoom(b *testing.B, occupants int) (*Service, *sink, func(string) *xmpp.Stanza) {
	r := server.NewRouter(slog.New(slog.NewTextHandler(io.Discard, nil)))
	users := &sink{}
	r.SetHost("localhost", users)
	svc, err := New(Config{Domain: "muc.localhost", Options: Options{RestrictRoomCreation: CreateLocal, HistoryLength: 20},
		LocalDomains: map[string]bool{"localhost": true}, Router: r})
	if err != nil {
		b.Fatal(err)
	}
	r.SetHost("muc.localhost", svc)
	stanza := func(raw string) *xmpp.Stanza {
		el, err := xmpp.ParseElement(raw, xmpp.Limits{})
		if err != nil {
			b.Fatal(err)
		}
		st, err := xmpp.NewStanza(el)
		if err != nil {
			b.Fatal(err)
		}
		return st
	}
	for i := range occupants {
		r.Route(stanza(fmt.Sprintf("<presence from='u%d@localhost/r' to='room@muc.localhost/nick%d'><x xmlns='%s'/></presence>", i, i, NSMUC)))
		if i == 0 {
			r.Route(stanza(fmt.Sprintf("<iq type='set' id='c' from='u0@localhost/r' to='room@muc.localhost'>%s</iq>",
				"<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query>")))
		}
	}
	return svc, users, stanza
}

// BenchmarkJoinLeave: a user joins a room of 20 occupants with 1000
// registered nicks and leaves it, one join and one leave an op: the
// checks a join passes (a registered nick of another is a conflict),
// the presences both ways, the subject, and the leave's presences.
func BenchmarkJoinLeave(b *testing.B) {
	const occupants, registered = 20, 1000
	svc, users, stanza := benchRoom(b, occupants)
	r := svc.room("room")
	r.mu.Lock()
	for i := range registered {
		bare := xmpp.MustParse(fmt.Sprintf("member%d@localhost", i))
		r.affs[bare] = affMember
		r.setNick(bare, fmt.Sprintf("registered%d", i))
	}
	r.mu.Unlock()
	joins, leaves := make([]*xmpp.Stanza, b.N), make([]*xmpp.Stanza, b.N)
	for i := range joins {
		joins[i] = stanza(fmt.Sprintf("<presence from='guest@localhost/r' to='room@muc.localhost/guest'><x xmlns='%s'/></presence>", NSMUC))
		leaves[i] = stanza("<presence type='unavailable' from='guest@localhost/r' to='room@muc.localhost/guest'/>")
	}
	before := users.n.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		svc.HandleStanza(joins[i])
		svc.HandleStanza(leaves[i])
	}
	b.StopTimer()
	// A join: 20 presences to the others, 20 to the guest, its own and
	// the subject; a leave: 20 and its own.
	if got, want := users.n.Load()-before, int64(b.N*(occupants*3+3)); got != want {
		b.Fatalf("%d stanzas; want %d", got, want)
	}
}

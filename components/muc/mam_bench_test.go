package muc

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/parley-im/parley/server"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// BenchmarkRoomFanoutArchived is BenchmarkRoomFanout in a room that
// archives, on a file database: each message is also queued for the
// archive writer and gets its stanza-id. The writer commits in the
// background; the run ends once it has committed every message, so the
// figure includes the disk when the writer falls behind (its queue full,
// senders wait for room in it).
func BenchmarkRoomFanoutArchived(b *testing.B) {
	const occupants = 20
	st, err := storage.Open(context.Background(), filepath.Join(b.TempDir(), "parley.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	r := server.NewRouter(slog.New(slog.NewTextHandler(io.Discard, nil)))
	users := &sink{}
	r.SetHost("localhost", users)
	opts := Options{RestrictRoomCreation: CreateLocal, HistoryLength: 20}
	opts.SetArchive(true)
	svc, err := New(Config{Domain: "muc.localhost", Options: opts, LocalDomains: map[string]bool{"localhost": true}, Router: r, Store: st})
	if err != nil {
		b.Fatal(err)
	}
	r.SetHost("muc.localhost", svc)
	stanza := func(raw string) *xmpp.Stanza {
		el, err := xmpp.ParseElement(raw, xmpp.Limits{})
		if err != nil {
			b.Fatal(err)
		}
		s, err := xmpp.NewStanza(el)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	for i := range occupants {
		r.Route(stanza(fmt.Sprintf("<presence from='u%d@localhost/r' to='room@muc.localhost/nick%d'><x xmlns='%s'/></presence>", i, i, NSMUC)))
		if i == 0 {
			r.Route(stanza("<iq type='set' id='c' from='u0@localhost/r' to='room@muc.localhost'>" +
				"<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>"))
		}
	}
	tmpl := stanza("<message from='u0@localhost/r' to='room@muc.localhost' type='groupchat' id='m'><body>hello, room</body></message>")
	msgs := make([]*xmpp.Stanza, b.N)
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
	if err := st.SyncArchive(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	runtime.ReadMemStats(&m1)
	delivered := users.n.Load() - before
	if delivered != int64(b.N*occupants) {
		b.Fatalf("%d deliveries; want %d", delivered, b.N*occupants)
	}
	page, err := st.QueryRoomArchive(context.Background(), "muc.localhost", "room", storage.ArchiveQuery{Count: true})
	if err != nil || page.Count != b.N {
		b.Fatalf("%d archived, %v; want %d", page.Count, err, b.N)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(delivered), "ns/delivery")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(delivered), "allocs/delivery")
}

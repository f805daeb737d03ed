package storage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// benchRoomArchiveSize is how many messages the room of
// BenchmarkRoomArchivePage holds; another room holds as many, so that the
// pages are read among others' messages.
const benchRoomArchiveSize = 100_000

// benchRoomArchive opens the archive of BenchmarkRoomArchivePage, building
// it the first time in a file under os.TempDir named by the schema
// version, as benchArchive does.
func benchRoomArchive(b *testing.B) *Store {
	b.Helper()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("parley-room-archive-bench-v%d-%d.db", len(migrations), benchRoomArchiveSize))
	marker := path + ".done"
	if _, err := os.Stat(marker); err != nil {
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			os.Remove(p)
		}
		s, err := Open(context.Background(), path)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for from := 0; from < benchRoomArchiveSize; from += 5000 {
			for _, room := range []string{"team", "other"} {
				var es []ArchiveEntry
				for i := from; i < min(benchRoomArchiveSize, from+5000); i++ {
					e := roomEntry(i)
					e.Stanza = fmt.Appendf(nil, `<message from='team@muc.example.com/n%d' type='groupchat' id='m%d'><body>message number %d in the room</body><occupant-id xmlns='urn:xmpp:occupant-id:0' id='abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG'/><x xmlns='http://jabber.org/protocol/muc#user'><item jid='n%d@example.com'/></x></message>`, i%3, i, i, i%3)
					es = append(es, e)
				}
				if _, err := s.AppendRoomArchiveBatch(context.Background(), "muc.example.com", room, es); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.Logf("built 2 × %d room messages in %v at %s", benchRoomArchiveSize, time.Since(start).Round(time.Millisecond), path)
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(marker, nil, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	s, err := Open(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkRoomArchivePage reads pages of 100 (a muc host's largest)
// from a room's archive of 100,000 messages: the first, one in the middle
// (after an id), the last (backward), each for the whole room and for one
// nick's third of it (a query's with); and the RSM count of the room.
func BenchmarkRoomArchivePage(b *testing.B) {
	s := benchRoomArchive(b)
	ctx := context.Background()
	const host, room = "muc.example.com", "team"
	all, err := s.QueryRoomArchive(ctx, host, room, ArchiveQuery{Max: 0, Count: true})
	if err != nil || all.Count != benchRoomArchiveSize {
		b.Fatalf("the room holds %d messages, %v", all.Count, err)
	}
	page, err := s.QueryRoomArchive(ctx, host, room, ArchiveQuery{Max: 1000})
	if err != nil || len(page.Messages) != 1000 {
		b.Fatalf("a page of 1000: %d, %v", len(page.Messages), err)
	}
	// Not the middle of the room: the 1000th message keeps the setup
	// short; an after-id page reads an index range from any point alike.
	midID := page.Messages[999].ID
	for _, nick := range []string{"", "n1"} {
		name := "room"
		if nick != "" {
			name = "nick"
		}
		for _, c := range []struct {
			name string
			q    ArchiveQuery
		}{
			{"first", ArchiveQuery{}},
			{"after_id", ArchiveQuery{After: midID}},
			{"last_backward", ArchiveQuery{Backward: true}},
			{"first_with_count", ArchiveQuery{Count: true}},
		} {
			b.Run(name+"/"+c.name, func(b *testing.B) {
				q := c.q
				q.Max = 100
				if nick != "" {
					q.With, q.Resource = "team@muc.example.com", nick
				}
				b.ReportAllocs()
				for b.Loop() {
					p, err := s.QueryRoomArchive(ctx, host, room, q)
					if err != nil || len(p.Messages) != 100 {
						b.Fatalf("%d messages, %v", len(p.Messages), err)
					}
				}
			})
		}
	}
}

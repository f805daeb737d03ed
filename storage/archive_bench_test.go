package storage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// benchArchiveSize is how many messages BenchmarkArchivePage's archive
// holds, all alice's: half with bob, half with carol (fillArchive).
const benchArchiveSize = 1_000_000

// benchArchiveLayout is bumped when the archive's schema changes in place
// (its migration is not released yet), so that the cached file is rebuilt.
const benchArchiveLayout = 2

// benchArchive opens the archive of BenchmarkArchivePage, building it the
// first time: a file under os.TempDir named by the schema version, so a
// schema change builds a new one. A marker file says the build finished.
func benchArchive(b *testing.B) *Store {
	b.Helper()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("parley-archive-bench-v%d.%d-%d.db", len(migrations), benchArchiveLayout, benchArchiveSize))
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
		withUsersB(b, s)
		fillArchive(b, s, benchArchiveSize)
		b.Logf("built %d archived messages in %v at %s", benchArchiveSize, time.Since(start).Round(time.Millisecond), path)
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

// withUsersB is withUsers for benchmarks.
func withUsersB(b *testing.B, s *Store) {
	b.Helper()
	for _, a := range []Account{testAccount(testHost, "alice"), testAccount(testHost, "bob"), testAccount(otherHost, "alice")} {
		if err := s.CreateAccount(context.Background(), a); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkArchivePage reads pages of 50 from an archive of 1,000,000
// messages: the first, one in the middle (after an id), the last
// (backwards), each for the whole archive and for one contact's half; and
// the RSM count of each set.
func BenchmarkArchivePage(b *testing.B) {
	s := benchArchive(b)
	ctx := context.Background()
	mid, err := s.QueryArchive(ctx, testHost, "alice", ArchiveQuery{Start: archiveBase.Add(benchArchiveSize / 2 * time.Second), Max: 1})
	if err != nil || len(mid.Messages) != 1 {
		b.Fatalf("the middle message: %v, %v", mid, err)
	}
	midID := mid.Messages[0].ID
	for _, with := range []string{"", "bob@example.com"} {
		name := "all"
		if with != "" {
			name = "with"
		}
		for _, c := range []struct {
			name string
			q    ArchiveQuery
		}{
			{"first", ArchiveQuery{}},
			{"middle_after_id", ArchiveQuery{After: midID}},
			{"last_backward", ArchiveQuery{Backward: true}},
			{"first_with_count", ArchiveQuery{Count: true}},
		} {
			b.Run(name+"/"+c.name, func(b *testing.B) {
				q := c.q
				q.With, q.Max = with, 50
				b.ReportAllocs()
				for b.Loop() {
					p, err := s.QueryArchive(ctx, testHost, "alice", q)
					if err != nil || len(p.Messages) != 50 {
						b.Fatalf("%d messages, %v", len(p.Messages), err)
					}
				}
			})
		}
	}
}

// BenchmarkArchiveAppend measures AppendArchive with 1, 8 and 64 writers
// at once on a file database: each append waits for its commit, and what
// arrives meanwhile shares it. appends/s is the figure to compare.
func BenchmarkArchiveAppend(b *testing.B) {
	for _, writers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s, err := Open(context.Background(), filepath.Join(b.TempDir(), "parley.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			withUsersB(b, s)
			stanza := []byte(`<message xmlns='jabber:client' type='chat' to='bob@example.com' from='alice@example.com/phone' id='x'><body>Hello there, how are you today?</body></message>`)
			start := time.Now()
			var wg sync.WaitGroup
			next := make(chan struct{})
			go func() {
				for b.Loop() {
					next <- struct{}{}
				}
				close(next)
			}()
			for range writers {
				wg.Go(func() {
					for range next {
						if _, err := s.AppendArchive(context.Background(), testHost, "alice", ArchiveEntry{With: "bob@example.com", Outgoing: true, Stanza: stanza}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
		})
	}
}

package storage

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// benchSearchSize is how many messages BenchmarkArchiveSearch's archive
// holds for alice (and as many for bob, with the same words: a search of
// alice's must not walk bob's matches).
const benchSearchSize = 100_000

// benchSearchLayout is bumped when benchBody or the bench archive's
// layout changes, so that the cached file is rebuilt.
const benchSearchLayout = 2

// benchWords is the vocabulary of benchBody: 2,000 made-up words, drawn
// with a Zipf law as words of a language are.
var benchWords = func() []string {
	r := rand.New(rand.NewPCG(1, 2))
	ws := make([]string, 2000)
	for i := range ws {
		var b strings.Builder
		for range 3 + r.IntN(6) {
			b.WriteByte(byte('a' + r.IntN(26)))
		}
		ws[i] = b.String()
	}
	return ws
}()

// benchBody returns message i's body: eight words of benchWords, and the
// marker words whose counts the benchmark knows: "ok" in every 2nd
// message, "lunch" in every 100th, "zebra" in every 10,000th.
func benchBody(r *rand.Rand, z *rand.Zipf, i int) string {
	var b strings.Builder
	for range 8 {
		b.WriteString(benchWords[z.Uint64()])
		b.WriteByte(' ')
	}
	for _, m := range []struct {
		every int
		word  string
	}{{2, "ok"}, {100, "lunch"}, {10000, "zebra"}} {
		if i%m.every == 0 {
			b.WriteString(m.word + " ")
		}
	}
	fmt.Fprintf(&b, "#%d", r.IntN(1000))
	return b.String()
}

// newBenchBodies returns benchBody's generator with a fixed seed.
func newBenchBodies() func(i int) string {
	r := rand.New(rand.NewPCG(3, 4))
	z := rand.NewZipf(r, 1.1, 1, uint64(len(benchWords)-1))
	return func(i int) string { return benchBody(r, z, i) }
}

// benchSearchArchive opens the archive of BenchmarkArchiveSearch, building
// it the first time (about 20 s), cached like benchArchive's.
func benchSearchArchive(b *testing.B) *Store {
	b.Helper()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("parley-archive-search-bench-v%d.%d-%d.db", len(migrations), benchSearchLayout, benchSearchSize))
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
		body := newBenchBodies()
		for from := 0; from < benchSearchSize; from += 5000 {
			for _, user := range []string{"alice", "bob"} {
				var es []ArchiveEntry
				for i := from; i < from+5000; i++ {
					e := testEntry(i)
					e.Body = body(i)
					if user == "bob" {
						e.With, e.Resource = "alice@example.com", ""
					}
					e.Stanza = []byte(`<message xmlns='jabber:client' type='chat'><body>` + e.Body + `</body></message>`)
					es = append(es, e)
				}
				if _, err := s.AppendArchiveBatch(context.Background(), testHost, user, es); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.Logf("built 2 × %d indexed messages in %v at %s", benchSearchSize, time.Since(start).Round(time.Millisecond), path)
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

// BenchmarkArchiveSearch searches alice's 100,000 indexed messages (bob's
// 100,000 have the same words): pages of 50 for a rare word (10 matches),
// a medium one (1,000), a common one (50,000), two words, a miss, a common
// word with one contact and backward; and RSM counts, which read all the
// matches: from the index alone, or with a resource (not in the index)
// from the rows, for the most frequent word of the vocabulary.
func BenchmarkArchiveSearch(b *testing.B) {
	s := benchSearchArchive(b)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		q    ArchiveQuery
		want int // messages in the page
	}{
		{"rare_10", ArchiveQuery{Search: "zebra"}, 10},
		{"medium_1000", ArchiveQuery{Search: "lunch"}, 50},
		{"common_50000", ArchiveQuery{Search: "ok"}, 50},
		{"two_words", ArchiveQuery{Search: "lunch ok"}, 50},
		{"miss", ArchiveQuery{Search: "nowhere"}, 0},
		{"common_with_contact", ArchiveQuery{Search: "ok", With: "bob@example.com"}, 50},
		{"common_last_backward", ArchiveQuery{Search: "ok", Backward: true}, 50},
		{"medium_count", ArchiveQuery{Search: "lunch", Count: true}, 50},
		{"common_count", ArchiveQuery{Search: "ok", Count: true}, 50},
		{"common_with_contact_count", ArchiveQuery{Search: "ok", With: "bob@example.com", Count: true}, 50},
		{"frequent_with_resource_count", ArchiveQuery{Search: benchWords[0], With: "carol@example.net", Resource: "phone", Count: true}, 50},
	} {
		b.Run(c.name, func(b *testing.B) {
			q := c.q
			q.Max = 50
			b.ReportAllocs()
			for b.Loop() {
				p, err := s.QueryArchive(ctx, testHost, "alice", q)
				if err != nil || len(p.Messages) != c.want {
					b.Fatalf("%d messages, %v", len(p.Messages), err)
				}
			}
		})
	}
}

// BenchmarkArchiveWriterSearch archives messages as the module does
// (ArchiveAsync from 64 senders, the writer committing what waits), with
// and without a Body to index, on a file database: the index's cost to
// the writer, in messages/s (the time includes the last commit).
func BenchmarkArchiveWriterSearch(b *testing.B) {
	for _, search := range []bool{false, true} {
		b.Run(fmt.Sprintf("search=%v", search), func(b *testing.B) {
			s, err := Open(context.Background(), filepath.Join(b.TempDir(), "parley.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			withUsersB(b, s)
			// The bodies are made before the clock starts.
			body := newBenchBodies()
			bodies := make([]string, 4096)
			for i := range bodies {
				bodies[i] = body(i)
			}
			const senders = 64
			start := time.Now()
			var wg sync.WaitGroup
			next := make(chan int)
			go func() {
				i := 0
				for b.Loop() {
					next <- i
					i++
				}
				close(next)
			}()
			for range senders {
				wg.Go(func() {
					for i := range next {
						text := bodies[i%len(bodies)]
						e := ArchiveEntry{With: "bob@example.com", Outgoing: true,
							Stanza: []byte(`<message xmlns='jabber:client' type='chat' to='bob@example.com' id='x'><body>` + text + `</body></message>`)}
						if search {
							e.Body = text
						}
						if _, err := s.ArchiveAsync(context.Background(), testHost, "alice", e, nil); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			if err := s.SyncArchive(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

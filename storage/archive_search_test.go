package storage

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// searchBodies are the bodies fillSearchArchive gives message i:
// searchBodies[i%5], after "note <i>". They hold what FTS5 would read as
// syntax, were the user's text not quoted: quotes, *, NEAR, -, a colon.
var searchBodies = []string{
	"apple pie for dessert",
	"Café au lait, s'il vous plaît",
	"send me an e-mail",
	`NEAR the *end*`,
	`she said "hi" -- body:nothing`,
}

// fillSearchArchive archives n messages for alice@example.com as
// fillArchive does (testEntry: with bob when i is even, carol/phone when
// odd, stanza "m<i>"), each with its body indexed, and for bob@example.com
// n/10 messages with the same bodies (stanzas "b<i>"), which no search of
// alice's may find.
func fillSearchArchive(t testing.TB, s *Store, n int) []ArchivedMessage {
	t.Helper()
	var all []ArchivedMessage
	for from := 0; from < n; from += 5000 {
		var es []ArchiveEntry
		for i := from; i < min(n, from+5000); i++ {
			es = append(es, searchEntry(i))
		}
		ms, err := s.AppendArchiveBatch(context.Background(), testHost, "alice", es)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, ms...)
	}
	var bobs []ArchiveEntry
	for i := range n / 10 {
		e := searchEntry(i)
		e.With, e.Resource, e.Stanza = "alice@example.com", "", fmt.Appendf(nil, "b%d", i)
		bobs = append(bobs, e)
	}
	if _, err := s.AppendArchiveBatch(context.Background(), testHost, "bob", bobs); err != nil {
		t.Fatal(err)
	}
	return all
}

// searchEntry is testEntry(i) with its body to index.
func searchEntry(i int) ArchiveEntry {
	e := testEntry(i)
	e.Body = fmt.Sprintf("note %d: %s", i, searchBodies[i%5])
	return e
}

// pageThrough pages through q's result set in q's direction, checking on
// each page the count, the page size and complete, and returns the
// stanzas in archive order and how many pages it took.
func pageThrough(t *testing.T, s *Store, user string, q ArchiveQuery, want int) ([]string, int) {
	t.Helper()
	q.Count = true
	var (
		got   []string
		pages int
	)
	for {
		p, err := s.QueryArchive(t.Context(), testHost, user, q)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		if p.Count != want {
			t.Fatalf("page %d: count = %d, want %d", pages, p.Count, want)
		}
		if len(p.Messages) > q.Max || (!p.Complete && len(p.Messages) != q.Max) {
			t.Fatalf("page %d: %d messages, complete %v, max %d", pages, len(p.Messages), p.Complete, q.Max)
		}
		if !slices.IsSortedFunc(p.Messages, func(a, b ArchivedMessage) int { return a.At.Compare(b.At) }) {
			t.Fatalf("page %d is not oldest first", pages)
		}
		pages++
		if q.Backward {
			got = append(archivedStanzas(p.Messages), got...)
		} else {
			got = append(got, archivedStanzas(p.Messages)...)
		}
		if p.Complete {
			return got, pages
		}
		if pages > want+1 {
			t.Fatalf("%d pages for %d messages", pages, want)
		}
		if q.Backward {
			q.Before = p.Messages[0].ID
		} else {
			q.After = p.Messages[len(p.Messages)-1].ID
		}
	}
}

func TestArchiveSearch(t *testing.T) {
	const n = 2000
	s := withUsers(t, openStore(t, filepath.Join(t.TempDir(), "parley.db")))
	all := fillSearchArchive(t, s, n)
	// Messages archived without a body to index (a host with
	// archive_search off) hold the words too, and never match.
	if _, err := s.AppendArchiveBatch(t.Context(), testHost, "alice", []ArchiveEntry{
		{With: "bob@example.com", Stanza: []byte("apple pie, unindexed")},
	}); err != nil {
		t.Fatal(err)
	}
	mod := func(k int) func(int) bool { return func(i int) bool { return i%5 == k } }
	and := func(fs ...func(int) bool) func(int) bool {
		return func(i int) bool {
			for _, f := range fs {
				if !f(i) {
					return false
				}
			}
			return true
		}
	}
	even := func(i int) bool { return i%2 == 0 }
	tests := []struct {
		name     string
		q        ArchiveQuery
		backward bool
		want     []string
	}{
		{"one word", ArchiveQuery{Search: "apple", Max: 37}, false, wantRange(0, n, mod(0))},
		{"one word backward", ArchiveQuery{Search: "apple", Max: 37}, true, wantRange(0, n, mod(0))},
		{"every word must be there", ArchiveQuery{Search: "pie apple dessert", Max: 50}, false, wantRange(0, n, mod(0))},
		{"words of two messages match none", ArchiveQuery{Search: "apple lait", Max: 50}, false, nil},
		{"a miss", ArchiveQuery{Search: "banana", Max: 50}, false, nil},
		{"case and diacritics", ArchiveQuery{Search: "CAFE PLAIT", Max: 100}, false, wantRange(0, n, mod(1))},
		{"a hyphenated word is a phrase", ArchiveQuery{Search: "e-mail", Max: 100}, false, wantRange(0, n, mod(2))},
		{"the phrase in the other order does not match", ArchiveQuery{Search: "mail-e", Max: 100}, false, nil},
		{"NEAR and stars are words", ArchiveQuery{Search: "NEAR *end*", Max: 100}, false, wantRange(0, n, mod(3))},
		{"quotes, minus and colons are text", ArchiveQuery{Search: `"hi" -- body:nothing -said`, Max: 100}, false, wantRange(0, n, mod(4))},
		{"a unique word", ArchiveQuery{Search: "1234", Max: 10}, false, wantRange(1234, 1235, nil)},
		{"with bob forward", ArchiveQuery{Search: "apple", With: "bob@example.com", Max: 31}, false, wantRange(0, n, and(mod(0), even))},
		{"with carol backward", ArchiveQuery{Search: "lait", With: "carol@example.net", Max: 31}, true, wantRange(0, n, and(mod(1), func(i int) bool { return !even(i) }))},
		{"with carol's phone", ArchiveQuery{Search: "lait", With: "carol@example.net", Resource: "phone", Max: 500}, false, wantRange(0, n, and(mod(1), func(i int) bool { return !even(i) }))},
		{"with carol's other resource", ArchiveQuery{Search: "lait", With: "carol@example.net", Resource: "laptop", Max: 50}, false, nil},
		{"with nobody", ArchiveQuery{Search: "apple", With: "dave@example.net", Max: 50}, false, nil},
		{"start and end", ArchiveQuery{Search: "note", Start: archiveBase.Add(100 * time.Second), End: archiveBase.Add(299 * time.Second), Max: 64}, true, wantRange(100, 300, nil)},
		{"after-id and before-id with bob", ArchiveQuery{Search: "e-mail", AfterID: all[99].ID, BeforeID: all[1500].ID, With: "bob@example.com", Max: 13}, false, wantRange(100, 1500, and(mod(2), even))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := tt.q
			q.Backward = tt.backward
			got, pages := pageThrough(t, s, "alice", q, len(tt.want))
			if !slices.Equal(got, tt.want) {
				t.Fatalf("%d pages gave %d messages (%.40q...), want %d (%.40q...)", pages, len(got), got, len(tt.want), tt.want)
			}
			if want := max(1, (len(tt.want)+q.Max-1)/q.Max); pages != want && pages != want+1 {
				t.Errorf("%d pages, want %d", pages, want)
			}
		})
	}
	// bob's archive has the same bodies: his search finds his own only.
	got, _ := pageThrough(t, s, "bob", ArchiveQuery{Search: "apple", Max: 100}, n/10/5)
	if want := wantRangeOf("b", 0, n/10, mod(0)); !slices.Equal(got, want) {
		t.Errorf("bob's search: %.40q, want %.40q", got, want)
	}
}

func TestArchiveSearchBadInput(t *testing.T) {
	s := withUsers(t, openStore(t, Memory))
	fillSearchArchive(t, s, 50)
	tests := []struct {
		name    string
		search  string
		wantErr error // nil: a page, whatever it holds
	}{
		{"too long", strings.Repeat("a", MaxArchiveSearch+1), ErrArchiveQuery},
		{"too long in runes", strings.Repeat("é", MaxArchiveSearch+1), ErrArchiveQuery},
		{"at the limit", strings.Repeat("é", MaxArchiveSearch), nil},
		{"only syntax", `" * - ( ) : ^ {} + ""`, ErrArchiveQuery},
		{"only spaces", "   \t ", ErrArchiveQuery},
		{"an unbalanced quote", `"apple`, nil},
		{"FTS5 operators", `apple OR pie NOT NEAR(a b, 3) AND ^x {tags}: "o1"`, nil},
		{"a column filter", `tags:o1`, nil},
		{"a NUL", "apple\x00\"", nil},
		{"SQL", `'); DROP TABLE archive; --`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.QueryArchive(t.Context(), testHost, "alice", ArchiveQuery{Search: tt.search, Max: 10, Count: true})
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("QueryArchive(%q) = %v, want %v", tt.search, err, tt.wantErr)
			}
		})
	}
	// The tags are not searchable as text: "o1" is no word of a body.
	p, err := s.QueryArchive(t.Context(), testHost, "alice", ArchiveQuery{Search: "o1", Max: 10, Count: true})
	if err != nil || p.Count != 0 {
		t.Errorf("a search for a tag: %d, %v; want none", p.Count, err)
	}
}

func TestSearchTerms(t *testing.T) {
	tests := []struct {
		text string
		want []string
	}{
		{"", nil},
		{"Hello  world hello", []string{"Hello", "hello", "world"}},
		{`"quoted" e-mail`, []string{"e mail", "quoted"}},
		{`* - NEAR( ) ""`, []string{"NEAR"}},
		{"café ½ 42", []string{"42", "café", "½"}},
	}
	for _, tt := range tests {
		if got := SearchTerms(tt.text); !slices.Equal(got, tt.want) {
			t.Errorf("SearchTerms(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}

// indexRows counts the full-text index's entries.
func indexRows(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.db.QueryRowContext(t.Context(), `SELECT count(*) FROM archive_fts_docsize`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestArchiveSearchIndexGoesWithMessages(t *testing.T) {
	tests := []struct {
		name     string
		remove   func(t *testing.T, s *Store)
		wantRows int // index entries left of the 300 + 30 + 1 (bob's 30 are newer than alice's: times only grow)
		wantHits int // alice's messages that "note" still finds
	}{
		{"retention of one host", func(t *testing.T, s *Store) {
			if _, err := s.ExpireArchive(t.Context(), testHost, archiveBase.Add(100*time.Second), 7); err != nil {
				t.Fatal(err)
			}
		}, 200 + 30 + 1, 200},
		{"retention of every host", func(t *testing.T, s *Store) {
			if _, err := s.ExpireArchive(t.Context(), "", archiveBase.Add(250*time.Second), 64); err != nil {
				t.Fatal(err)
			}
		}, 50 + 30 + 1, 50},
		{"account removal", func(t *testing.T, s *Store) {
			if err := s.DeleteAccount(t.Context(), testHost, "alice"); err != nil {
				t.Fatal(err)
			}
		}, 30 + 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := withUsers(t, openStore(t, filepath.Join(t.TempDir(), "parley.db")))
			fillSearchArchive(t, s, 300) // and bob's 30
			// otherHost's alice: one message, newer than every cutoff.
			e := searchEntry(0)
			e.At = archiveBase.Add(time.Hour)
			if _, err := s.AppendArchiveBatch(t.Context(), otherHost, "alice", []ArchiveEntry{e}); err != nil {
				t.Fatal(err)
			}
			if got := indexRows(t, s); got != 331 {
				t.Fatalf("%d index entries before, want 331", got)
			}
			tt.remove(t, s)
			if got := indexRows(t, s); got != tt.wantRows {
				t.Errorf("%d index entries left, want %d", got, tt.wantRows)
			}
			p, err := s.QueryArchive(t.Context(), testHost, "alice", ArchiveQuery{Search: "note", Max: 0, Count: true})
			if err != nil || p.Count != tt.wantHits {
				t.Errorf("alice's search: count %d, %v; want %d", p.Count, err, tt.wantHits)
			}
		})
	}
}

func TestArchiveSearchThroughTheWriter(t *testing.T) {
	runOnBackends(t, []storeTest{{"async appends are indexed in their commit", func(t *testing.T, s *Store) {
		withUsers(t, s)
		ids := map[string]bool{}
		for i := range 20 {
			e := ArchiveEntry{With: "bob@example.com", Stanza: fmt.Appendf(nil, "w%d", i)}
			if i%4 == 0 {
				e.Body = fmt.Sprintf("ping number %d", i)
			}
			id, err := s.ArchiveAsync(t.Context(), testHost, "alice", e, nil)
			if err != nil {
				t.Fatal(err)
			}
			if e.Body != "" {
				ids[id] = true
			}
		}
		if _, err := s.AppendArchive(t.Context(), testHost, "alice", ArchiveEntry{With: "bob@example.com", Stanza: []byte("sync"), Body: "ping sync"}); err != nil {
			t.Fatal(err)
		}
		p, err := s.QueryArchive(t.Context(), testHost, "alice", ArchiveQuery{Search: "PING", Max: 100, Count: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := archivedStanzas(p.Messages); !slices.Equal(got, []string{"w0", "w4", "w8", "w12", "w16", "sync"}) || p.Count != 6 || !p.Complete {
			t.Fatalf("search: %q, count %d, complete %v", got, p.Count, p.Complete)
		}
		for _, m := range p.Messages[:5] {
			if !ids[m.ID] {
				t.Errorf("%s: not an id ArchiveAsync gave", m.ID)
			}
		}
	}}})
}

// TestArchiveSearchIndexAlone: the index's tags alone select the owner's
// matches and the conversation's, so a search walks those doclists and not
// every archive's; and the page's query reads the index in rowid order,
// joined by rowid, with no sort.
func TestArchiveSearchIndexAlone(t *testing.T) {
	const n = 500
	s := withUsers(t, openStore(t, filepath.Join(t.TempDir(), "parley.db")))
	fillSearchArchive(t, s, n) // bob's 50 have the same words
	var alice, bob int64
	for _, o := range []struct {
		user string
		id   *int64
	}{{"alice", &alice}, {"bob", &bob}} {
		if err := s.db.QueryRowContext(t.Context(), `SELECT id FROM archive_owners WHERE host = ? AND username = ?`, testHost, o.user).Scan(o.id); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		owner int64
		with  string
		terms []string
		want  int
	}{
		{"alice's", alice, "", []string{"apple"}, n / 5},
		{"bob's", bob, "", []string{"apple"}, n / 10 / 5},
		{"alice's with bob", alice, "bob@example.com", []string{"apple"}, n / 10},
		{"alice's with carol", alice, "carol@example.net", []string{"note"}, n / 2},
		{"alice's with bob, in a phrase", alice, "bob@example.com", []string{"e mail"}, n / 10},
		{"alice's with nobody", alice, "dave@example.net", []string{"note"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got int
			if err := s.db.QueryRowContext(t.Context(), `SELECT count(*) FROM archive_fts WHERE archive_fts MATCH ?`,
				searchMatch(tt.owner, tt.with, tt.terms)).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("the index alone: %d matches, want %d", got, tt.want)
			}
		})
	}
	for _, backward := range []bool{false, true} {
		for _, with := range []bool{false, true} {
			args := []any{searchMatch(alice, "", []string{"apple"}), alice}
			if with {
				args = append(args, "bob@example.com")
			}
			args = append(args, 5, 100000, 50)
			rows, err := s.db.QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+archiveSearchSQL("archive", with, false, false, backward), args...)
			if err != nil {
				t.Fatal(err)
			}
			var details []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				details = append(details, detail)
			}
			rows.Close()
			joined := strings.Join(details, "; ")
			if !strings.HasPrefix(joined, "SCAN archive_fts VIRTUAL TABLE") || !strings.Contains(joined, "SEARCH a USING INTEGER PRIMARY KEY (rowid=?)") ||
				strings.Contains(joined, "TEMP B-TREE") {
				t.Errorf("with %v, backward %v: plan %q, want the index in rowid order, then the row by rowid", with, backward, joined)
			}
		}
	}
}

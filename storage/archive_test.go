package storage

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// archiveBase is the time of the first message fillArchive archives; each
// next one is a second later.
var archiveBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fillArchive archives n messages for alice@example.com: message i is with
// bob@example.com when i is even, with carol@example.net/phone otherwise,
// outgoing when i%3 == 0, at archiveBase + i seconds, its stanza "m<i>".
// It returns them in order.
func fillArchive(t testing.TB, s *Store, n int) []ArchivedMessage {
	t.Helper()
	var all []ArchivedMessage
	for from := 0; from < n; from += 5000 {
		var es []ArchiveEntry
		for i := from; i < min(n, from+5000); i++ {
			es = append(es, testEntry(i))
		}
		ms, err := s.AppendArchiveBatch(context.Background(), testHost, "alice", es)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, ms...)
	}
	return all
}

func testEntry(i int) ArchiveEntry {
	e := ArchiveEntry{With: "bob@example.com", Outgoing: i%3 == 0, Stanza: fmt.Appendf(nil, "m%d", i),
		At: archiveBase.Add(time.Duration(i) * time.Second)}
	if i%2 == 1 {
		e.With, e.Resource = "carol@example.net", "phone"
	}
	return e
}

// archivedStanzas returns the stanzas of ms as strings.
func archivedStanzas(ms []ArchivedMessage) []string {
	var out []string
	for _, m := range ms {
		out = append(out, string(m.Stanza))
	}
	return out
}

// wantRange returns the stanzas "m<i>" for the i in [from, to) that keep
// returns true for.
func wantRange(from, to int, keep func(i int) bool) []string {
	var out []string
	for i := from; i < to; i++ {
		if keep == nil || keep(i) {
			out = append(out, fmt.Sprintf("m%d", i))
		}
	}
	return out
}

func TestArchivePagingCoversEverythingOnce(t *testing.T) {
	const n = 10000
	s := withUsers(t, openStore(t, filepath.Join(t.TempDir(), "parley.db")))
	all := fillArchive(t, s, n)
	// bob must not see alice's archive.
	if _, err := s.AppendArchiveBatch(t.Context(), testHost, "bob", []ArchiveEntry{testEntry(0)}); err != nil {
		t.Fatal(err)
	}
	even := func(i int) bool { return i%2 == 0 }
	tests := []struct {
		name     string
		q        ArchiveQuery
		backward bool
		want     []string
	}{
		{"all forward", ArchiveQuery{Max: 333}, false, wantRange(0, n, nil)},
		{"all backward", ArchiveQuery{Max: 333}, true, wantRange(0, n, nil)},
		{"with bob forward", ArchiveQuery{With: "bob@example.com", Max: 250}, false, wantRange(0, n, even)},
		{"with carol backward", ArchiveQuery{With: "carol@example.net", Max: 250}, true, wantRange(0, n, func(i int) bool { return !even(i) })},
		{"with carol's other resource", ArchiveQuery{With: "carol@example.net", Resource: "laptop", Max: 100}, false, nil},
		{"start and end inclusive", ArchiveQuery{Start: archiveBase.Add(1000 * time.Second), End: archiveBase.Add(2999 * time.Second), Max: 77}, false, wantRange(1000, 3000, nil)},
		{"end, backward", ArchiveQuery{End: archiveBase.Add(1500*time.Second + time.Millisecond), Max: 100}, true, wantRange(0, 1501, nil)},
		{"start after the last", ArchiveQuery{Start: archiveBase.Add(n * time.Second), Max: 10}, false, nil},
		{"after-id and before-id", ArchiveQuery{AfterID: all[99].ID, BeforeID: all[400].ID, With: "bob@example.com", Max: 30}, true, wantRange(100, 400, even)},
		{"one per page", ArchiveQuery{AfterID: all[n-6].ID, Max: 1}, false, wantRange(n-5, n, nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := tt.q
			q.Count = true
			q.Backward = tt.backward
			var (
				got   []string
				pages int
			)
			for {
				p, err := s.QueryArchive(t.Context(), testHost, "alice", q)
				if err != nil {
					t.Fatal(err)
				}
				if p.Count != len(tt.want) {
					t.Fatalf("page %d: count = %d, want %d", pages, p.Count, len(tt.want))
				}
				if len(p.Messages) > q.Max || (!p.Complete && len(p.Messages) != q.Max) {
					t.Fatalf("page %d: %d messages, complete %v, max %d", pages, len(p.Messages), p.Complete, q.Max)
				}
				if !slices.IsSortedFunc(p.Messages, func(a, b ArchivedMessage) int { return a.At.Compare(b.At) }) {
					t.Fatalf("page %d is not oldest first", pages)
				}
				pages++
				if tt.backward {
					got = append(archivedStanzas(p.Messages), got...)
				} else {
					got = append(got, archivedStanzas(p.Messages)...)
				}
				if p.Complete {
					break
				}
				if tt.backward {
					q.Before = p.Messages[0].ID
				} else {
					q.After = p.Messages[len(p.Messages)-1].ID
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("%d pages gave %d messages (%.40q...), want %d (%.40q...)", pages, len(got), got, len(tt.want), tt.want)
			}
			if want := max(1, (len(tt.want)+q.Max-1)/q.Max); pages != want && pages != want+1 {
				t.Errorf("%d pages, want %d", pages, want)
			}
		})
	}
}

func TestArchiveQueryErrors(t *testing.T) {
	s := withUsers(t, openStore(t, filepath.Join(t.TempDir(), "parley.db")))
	all := fillArchive(t, s, 20)
	bobs, err := s.AppendArchiveBatch(t.Context(), testHost, "bob", []ArchiveEntry{testEntry(0)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		q    ArchiveQuery
		want error
	}{
		{"unknown after", ArchiveQuery{After: "nope", Max: 5}, ErrNotFound},
		{"unknown before", ArchiveQuery{Before: "nope", Max: 5, Backward: true}, ErrNotFound},
		{"unknown after-id", ArchiveQuery{AfterID: "nope", Max: 5}, ErrNotFound},
		{"unknown before-id", ArchiveQuery{BeforeID: "nope", Max: 5}, ErrNotFound},
		{"another user's id", ArchiveQuery{After: bobs[0].ID, Max: 5}, ErrNotFound},
		{"one unknown of ids", ArchiveQuery{IDs: []string{all[3].ID, "nope"}}, ErrNotFound},
		{"too many ids", ArchiveQuery{IDs: slices.Repeat([]string{all[3].ID}, MaxArchivePage+1)}, ErrArchiveQuery},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.QueryArchive(t.Context(), testHost, "alice", tt.q)
			if !errors.Is(err, tt.want) {
				t.Fatalf("QueryArchive = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestArchiveIDsAndClamp(t *testing.T) {
	s := withUsers(t, openStore(t, filepath.Join(t.TempDir(), "parley.db")))
	all := fillArchive(t, s, MaxArchivePage+10)
	p, err := s.QueryArchive(t.Context(), testHost, "alice", ArchiveQuery{IDs: []string{all[7].ID, all[2].ID, all[7].ID}})
	if err != nil {
		t.Fatal(err)
	}
	if got := archivedStanzas(p.Messages); !slices.Equal(got, []string{"m2", "m7"}) || !p.Complete {
		t.Errorf("ids: %q complete %v, want [m2 m7] oldest first, complete", got, p.Complete)
	}
	if p.Messages[0].ID != all[2].ID || !p.Messages[0].At.Equal(all[2].At) || p.Messages[0].With != "bob@example.com" {
		t.Errorf("ids: %+v, want %+v", p.Messages[0], all[2])
	}
	p, err = s.QueryArchive(t.Context(), testHost, "alice", ArchiveQuery{Max: MaxArchivePage * 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Messages) != MaxArchivePage || p.Complete {
		t.Errorf("max over the limit: %d messages, complete %v; want %d, not complete", len(p.Messages), p.Complete, MaxArchivePage)
	}
	p, err = s.QueryArchive(t.Context(), testHost, "alice", ArchiveQuery{Max: 0, Count: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Messages) != 0 || p.Count != len(all) || p.Complete {
		t.Errorf("max 0: %d messages, count %d, complete %v; want 0, %d, false", len(p.Messages), p.Count, p.Complete, len(all))
	}
	first, last, ok, err := s.ArchiveBounds(t.Context(), testHost, "alice")
	if err != nil || !ok || first.ID != all[0].ID || last.ID != all[len(all)-1].ID {
		t.Errorf("ArchiveBounds = %s, %s, %v, %v; want %s, %s", first.ID, last.ID, ok, err, all[0].ID, all[len(all)-1].ID)
	}
	if _, _, ok, err := s.ArchiveBounds(t.Context(), testHost, "bob"); ok || err != nil {
		t.Errorf("ArchiveBounds of an empty archive: ok %v, %v", ok, err)
	}
}

// TestArchivePageUsesIndexes checks the plans of the queries a page runs:
// an index range, never the table nor a sort.
func TestArchivePageUsesIndexes(t *testing.T) {
	s := withUsers(t, openStore(t, filepath.Join(t.TempDir(), "parley.db")))
	type plan struct {
		query string
		args  []any
		want  string
	}
	var plans []plan
	for _, backward := range []bool{false, true} {
		for _, count := range []bool{false, true} {
			tail := []any{5, 100000}
			if !count {
				tail = append(tail, 50)
			}
			plans = append(plans,
				plan{archivePageSQL("archive", false, false, count, backward), append([]any{1}, tail...), "archive_by_time (owner=? AND at>? AND at<?)"},
				plan{archivePageSQL("archive", true, false, count, backward), append([]any{1, "w"}, tail...), "archive_by_with (owner=? AND with_jid=? AND rowid>? AND rowid<?)"},
				plan{archivePageSQL("archive", true, true, count, backward), append([]any{1, "w", "r"}, tail...), "archive_by_with (owner=? AND with_jid=? AND rowid>? AND rowid<?)"},
				// A room's archive: by time, and by nick (with_res) in its index.
				plan{archivePageSQL("room_archive", false, false, count, backward), append([]any{1}, tail...), "room_archive_by_time (owner=? AND at>? AND at<?)"},
				plan{archivePageSQL("room_archive", true, true, count, backward), append([]any{1, "w", "r"}, tail...), "room_archive_by_with (owner=? AND with_jid=? AND with_res=? AND rowid>? AND rowid<?)"})
		}
	}
	for _, p := range plans {
		rows, err := s.db.QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+p.query, p.args...)
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
		if !strings.Contains(joined, p.want) || strings.Contains(joined, "TEMP B-TREE") {
			t.Errorf("%s: plan %q, want a range of %s in order", p.query, joined, p.want)
		}
	}
}

func TestArchiveAppendGroupsConcurrentWriters(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := withUsers(t, openStore(t, b.path(t)))
			const writers, each = 16, 25
			var (
				wg   sync.WaitGroup
				mu   sync.Mutex
				ids  = map[string]bool{}
				errs []error
			)
			for w := range writers {
				wg.Go(func() {
					for i := range each {
						m, err := s.AppendArchive(t.Context(), testHost, "alice", ArchiveEntry{With: "bob@example.com", Stanza: fmt.Appendf(nil, "%d/%d", w, i)})
						mu.Lock()
						if err != nil {
							errs = append(errs, err)
						} else {
							ids[m.ID] = true
						}
						mu.Unlock()
					}
				})
			}
			// An append for nobody fails alone, whatever batch it joins.
			wg.Go(func() {
				_, err := s.AppendArchive(t.Context(), testHost, "nobody", ArchiveEntry{With: "bob@example.com", Stanza: []byte("x")})
				if !errors.Is(err, ErrNotFound) {
					mu.Lock()
					errs = append(errs, fmt.Errorf("append for nobody: %v, want ErrNotFound", err))
					mu.Unlock()
				}
			})
			wg.Wait()
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			p, err := s.QueryArchive(t.Context(), testHost, "alice", ArchiveQuery{Max: MaxArchivePage, Count: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(ids) != writers*each || p.Count != writers*each || len(p.Messages) != writers*each {
				t.Fatalf("%d distinct ids, count %d, %d read; want %d", len(ids), p.Count, len(p.Messages), writers*each)
			}
			for i, m := range p.Messages {
				if !ids[m.ID] {
					t.Fatalf("message %d has id %q, which no append returned", i, m.ID)
				}
				if i > 0 && m.At.Before(p.Messages[i-1].At) {
					t.Fatalf("message %d archived at %v, before message %d (%v)", i, m.At, i-1, p.Messages[i-1].At)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := s.AppendArchive(t.Context(), testHost, "alice", ArchiveEntry{With: "bob@example.com", Stanza: []byte("late")}); !errors.Is(err, errStoreClosed) {
				t.Errorf("append after Close: %v, want errStoreClosed", err)
			}
		})
	}
}

func TestArchiveClockBackwards(t *testing.T) {
	s := withUsers(t, openStore(t, Memory))
	later := archiveBase.Add(time.Hour)
	ms, err := s.AppendArchiveBatch(t.Context(), testHost, "alice", []ArchiveEntry{
		{With: "bob@example.com", Stanza: []byte("a"), At: later},
		{With: "bob@example.com", Stanza: []byte("b"), At: archiveBase}, // the clock stepped back
	})
	if err != nil {
		t.Fatal(err)
	}
	if !ms[1].At.After(later) {
		t.Errorf("second message at %v, want after %v (never before the first)", ms[1].At, later)
	}
	p, err := s.QueryArchive(t.Context(), testHost, "alice", ArchiveQuery{Start: later, Max: 10})
	if err != nil {
		t.Fatal(err)
	}
	if got := archivedStanzas(p.Messages); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("start %v: %q, want [a b]", later, got)
	}
}

func TestArchiveExpire(t *testing.T) {
	tests := []struct {
		name   string
		host   string // "" expires every archive
		cutoff int    // seconds after archiveBase
		batch  int
		want   int64 // of alice's on testHost; otherHost's alice's go only with host ""
	}{
		{"nothing older", "", 0, 7, 0},
		{"in batches", "", 100, 7, 100},
		{"exact batches", "", 98, 7, 98},
		{"batch of one", "", 5, 0, 5},
		{"everything", "", 1000, 64, 300},
		{"one host, nothing older", testHost, 0, 7, 0},
		{"one host, in batches", testHost, 100, 7, 100},
		{"one host, everything", testHost, 1000, 64, 300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := withUsers(t, openStore(t, filepath.Join(t.TempDir(), "parley.db")))
			fillArchive(t, s, 300)
			// otherHost's alice archives 50 messages at the start of the
			// same days: seqs after testHost's, times before the cutoff.
			var es []ArchiveEntry
			for i := range 50 {
				es = append(es, ArchiveEntry{With: "bob@example.com", Stanza: fmt.Appendf(nil, "o%d", i), At: archiveBase.Add(time.Duration(300+i) * time.Second)})
			}
			if _, err := s.AppendArchiveBatch(t.Context(), otherHost, "alice", es); err != nil {
				t.Fatal(err)
			}
			cutoff := archiveBase.Add(time.Duration(tt.cutoff) * time.Second)
			wantOther := 50
			if tt.host == "" {
				wantOther = len(wantRangeOf("o", 0, 50, func(i int) bool { return 300+i >= tt.cutoff }))
			}
			n, err := s.ExpireArchive(t.Context(), tt.host, cutoff, tt.batch)
			if wantN := tt.want + int64(50-wantOther); err != nil || n != wantN {
				t.Fatalf("ExpireArchive = %d, %v; want %d", n, err, wantN)
			}
			p, err := s.QueryArchive(t.Context(), testHost, "alice", ArchiveQuery{Max: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := archivedStanzas(p.Messages), wantRange(int(tt.want), 300, nil); !slices.Equal(got, want) {
				t.Errorf("left %d messages (%.30q), want %d", len(got), got, len(want))
			}
			p, err = s.QueryArchive(t.Context(), otherHost, "alice", ArchiveQuery{Max: 1000, Count: true})
			if err != nil || p.Count != wantOther {
				t.Errorf("%s's archive: count %d, %v; want %d", otherHost, p.Count, err, wantOther)
			}
		})
	}
}

// wantRangeOf is wantRange with another prefix than "m".
func wantRangeOf(prefix string, from, to int, keep func(i int) bool) []string {
	var out []string
	for _, m := range wantRange(from, to, keep) {
		out = append(out, prefix+strings.TrimPrefix(m, "m"))
	}
	return out
}

func TestArchivePrefs(t *testing.T) {
	runOnBackends(t, []storeTest{
		{"none set", func(t *testing.T, s *Store) {
			withUsers(t, s)
			if _, err := s.ArchivePrefs(t.Context(), testHost, "alice"); !errors.Is(err, ErrNotFound) {
				t.Errorf("ArchivePrefs = %v, want ErrNotFound", err)
			}
		}},
		{"set, replaced, per user", func(t *testing.T, s *Store) {
			withUsers(t, s)
			steps := []struct{ set, want ArchivePrefs }{
				{ArchivePrefs{Default: "roster", Always: []string{"b@x", "a@x", "b@x"}, Never: []string{"c@x"}},
					ArchivePrefs{Default: "roster", Always: []string{"a@x", "b@x"}, Never: []string{"c@x"}}},
				{ArchivePrefs{Default: "never", Always: []string{"a@x"}, Never: []string{"a@x"}},
					ArchivePrefs{Default: "never", Always: []string{}, Never: []string{"a@x"}}},
				{ArchivePrefs{Default: "always"}, ArchivePrefs{Default: "always", Always: []string{}, Never: []string{}}},
			}
			for i, st := range steps {
				if err := s.SetArchivePrefs(t.Context(), testHost, "alice", st.set); err != nil {
					t.Fatal(err)
				}
				got, err := s.ArchivePrefs(t.Context(), testHost, "alice")
				if err != nil || got.Default != st.want.Default || !slices.Equal(got.Always, st.want.Always) || !slices.Equal(got.Never, st.want.Never) {
					t.Errorf("step %d: %+v, %v; want %+v", i, got, err, st.want)
				}
			}
			if _, err := s.ArchivePrefs(t.Context(), testHost, "bob"); !errors.Is(err, ErrNotFound) {
				t.Errorf("bob's prefs: %v, want ErrNotFound", err)
			}
		}},
		{"refused", func(t *testing.T, s *Store) {
			withUsers(t, s)
			if err := s.SetArchivePrefs(t.Context(), testHost, "nobody", ArchivePrefs{Default: "always"}); !errors.Is(err, ErrNotFound) {
				t.Errorf("prefs for nobody: %v, want ErrNotFound", err)
			}
			if err := s.SetArchivePrefs(t.Context(), testHost, "alice", ArchivePrefs{Default: "sometimes"}); err == nil {
				t.Error("default sometimes accepted")
			}
		}},
		{"gone with the account", func(t *testing.T, s *Store) {
			withUsers(t, s)
			if err := s.SetArchivePrefs(t.Context(), testHost, "alice", ArchivePrefs{Default: "never"}); err != nil {
				t.Fatal(err)
			}
			fillArchive(t, s, 3)
			if err := s.DeleteAccount(t.Context(), testHost, "alice"); err != nil {
				t.Fatal(err)
			}
			mustCreate(t, s, testAccount(testHost, "alice"))
			if _, err := s.ArchivePrefs(t.Context(), testHost, "alice"); !errors.Is(err, ErrNotFound) {
				t.Errorf("prefs after re-creation: %v, want ErrNotFound", err)
			}
			if _, _, ok, _ := s.ArchiveBounds(t.Context(), testHost, "alice"); ok {
				t.Error("the archive outlived the account")
			}
		}},
	})
}

// TestArchiveIDsCannotBeForged checks that a stanza-id names a message of
// its archive only: not one of another database (another key), nor a
// changed id, nor one made from a seq without the key.
func TestArchiveIDsCannotBeForged(t *testing.T) {
	s := withUsers(t, openStore(t, filepath.Join(t.TempDir(), "parley.db")))
	other := withUsers(t, openStore(t, filepath.Join(t.TempDir(), "other.db")))
	all := fillArchive(t, s, 5)
	theirs := fillArchive(t, other, 5)
	flipped := []byte(all[2].ID)
	flipped[3] ^= 1
	// The base64 of seq 3 and zeros, as an id without encryption would be.
	plain := []byte{0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0}
	for _, tt := range []struct{ name, id string }{
		{"another database's id", theirs[2].ID},
		{"one character changed", string(flipped)},
		{"a seq without the key", base64.RawURLEncoding.EncodeToString(plain)},
		{"too long", all[2].ID + "A"},
		{"empty-ish", "AAAAAAAAAAAAAAAAAAAAAA"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.id == all[2].ID {
				t.Fatal("the forged id is the real one")
			}
			for _, q := range []ArchiveQuery{{After: tt.id, Max: 5}, {IDs: []string{tt.id}}} {
				if _, err := s.QueryArchive(t.Context(), testHost, "alice", q); !errors.Is(err, ErrNotFound) {
					t.Errorf("%+v: %v, want ErrNotFound", q, err)
				}
			}
		})
	}
	if len(all[2].ID) != 22 {
		t.Errorf("id %q has %d characters, want 22", all[2].ID, len(all[2].ID))
	}
}

// TestArchiveAccountRecreated checks that the writer's cached owner id
// does not outlive the account: a re-created account archives anew, and
// the ids of the old one, even its newest after a restart, never name a
// message of the new one.
func TestArchiveAccountRecreated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	s := withUsers(t, openStore(t, path))
	e := ArchiveEntry{With: "bob@example.com", Stanza: []byte("old")}
	old, err := s.AppendArchive(t.Context(), testHost, "alice", e)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAccount(t.Context(), testHost, "alice"); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, testAccount(testHost, "alice"))
	e.Stanza = []byte("new")
	if _, err := s.AppendArchive(t.Context(), testHost, "alice", e); err != nil {
		t.Fatalf("append after the account was re-created: %v", err)
	}
	if err := s.DeleteAccount(t.Context(), testHost, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path)
	mustCreate(t, s, testAccount(testHost, "alice"))
	for range 3 {
		if _, err := s.AppendArchive(t.Context(), testHost, "alice", e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.QueryArchive(t.Context(), testHost, "alice", ArchiveQuery{IDs: []string{old.ID}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("an id of the deleted account: %v, want ErrNotFound", err)
	}
}

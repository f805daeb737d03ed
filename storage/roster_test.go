package storage

import (
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
)

// mustPut puts item on the roster of alice@example.com and returns the new
// version, or fails the test.
func mustPut(t *testing.T, s *Store, item RosterItem) int64 {
	t.Helper()
	ver, err := s.PutRosterItem(t.Context(), testHost, "alice", item)
	if err != nil {
		t.Fatalf("PutRosterItem(%s): %v", item.JID, err)
	}
	return ver
}

// mustDelete removes jid from the roster of alice@example.com and returns
// the new version, or fails the test.
func mustDelete(t *testing.T, s *Store, jid string) int64 {
	t.Helper()
	ver, err := s.DeleteRosterItem(t.Context(), testHost, "alice", jid)
	if err != nil {
		t.Fatalf("DeleteRosterItem(%s): %v", jid, err)
	}
	return ver
}

// mustRoster returns the roster of user@host and its version, or fails the
// test.
func mustRoster(t *testing.T, s *Store, host, user string) ([]RosterItem, int64) {
	t.Helper()
	items, ver, err := s.Roster(t.Context(), host, user)
	if err != nil {
		t.Fatalf("Roster(%s@%s): %v", user, host, err)
	}
	return items, ver
}

// jids returns the JIDs of items.
func jids(items []RosterItem) []string {
	var js []string
	for _, it := range items {
		js = append(js, it.JID)
	}
	return js
}

func TestRoster(t *testing.T) {
	full := RosterItem{
		JID:          "romeo@example.net",
		Name:         "Romeo",
		Subscription: "both",
		Ask:          true,
		PendingIn:    true,
		PendingInXML: `<presence from="romeo@example.net" type="subscribe"/>`,
		Approved:     true,
		Groups:       []string{"Friends", "Verona"},
	}
	runOnBackends(t, []storeTest{
		{"a roster never written is empty at version 0", func(t *testing.T, s *Store) {
			withUsers(t, s)
			items, ver := mustRoster(t, s, testHost, "alice")
			if items != nil || ver != 0 {
				t.Errorf("Roster() = %v, %d, want nil, 0", items, ver)
			}
		}},
		{"a put item reads back with every field and the new version", func(t *testing.T, s *Store) {
			withUsers(t, s)
			ver := mustPut(t, s, full)
			want := full
			want.Ver = 1
			if ver != 1 {
				t.Errorf("PutRosterItem() = %d, want 1", ver)
			}
			got, err := s.RosterItem(t.Context(), testHost, "alice", full.JID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("RosterItem() = %+v, want %+v", got, want)
			}
			items, rver := mustRoster(t, s, testHost, "alice")
			if !reflect.DeepEqual(items, []RosterItem{want}) || rver != 1 {
				t.Errorf("Roster() = %+v, %d, want [%+v], 1", items, rver, want)
			}
		}},
		{"groups are stored sorted and without duplicates", func(t *testing.T, s *Store) {
			withUsers(t, s)
			in := []string{"b", "a", "b", "c", "a"}
			mustPut(t, s, RosterItem{JID: "x@example.net", Groups: in})
			got, err := s.RosterItem(t.Context(), testHost, "alice", "x@example.net")
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"a", "b", "c"}; !reflect.DeepEqual(got.Groups, want) {
				t.Errorf("Groups = %q, want %q", got.Groups, want)
			}
			if want := []string{"b", "a", "b", "c", "a"}; !reflect.DeepEqual(in, want) {
				t.Errorf("PutRosterItem changed the caller's groups to %q", in)
			}
		}},
		{"an item without groups or subscription reads back with nil groups and none", func(t *testing.T, s *Store) {
			withUsers(t, s)
			mustPut(t, s, RosterItem{JID: "x@example.net", Groups: []string{}})
			got, err := s.RosterItem(t.Context(), testHost, "alice", "x@example.net")
			if err != nil {
				t.Fatal(err)
			}
			if want := (RosterItem{JID: "x@example.net", Subscription: "none", Ver: 1}); !reflect.DeepEqual(got, want) {
				t.Errorf("RosterItem() = %+v, want %+v", got, want)
			}
		}},
		{"putting an item again replaces every field", func(t *testing.T, s *Store) {
			withUsers(t, s)
			mustPut(t, s, full)
			second := RosterItem{JID: full.JID, Name: "R.", Subscription: "to", Groups: []string{"Mantua"}}
			mustPut(t, s, second)
			second.Ver = 2
			got, err := s.RosterItem(t.Context(), testHost, "alice", full.JID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, second) {
				t.Errorf("RosterItem() = %+v, want %+v", got, second)
			}
		}},
		{"each put and delete bumps the version by one and stamps the item", func(t *testing.T, s *Store) {
			withUsers(t, s)
			var vers []int64
			vers = append(vers,
				mustPut(t, s, RosterItem{JID: "a@example.net"}),
				mustPut(t, s, RosterItem{JID: "b@example.net"}),
				mustPut(t, s, RosterItem{JID: "a@example.net", Name: "A"}),
				mustDelete(t, s, "b@example.net"),
				mustPut(t, s, RosterItem{JID: "c@example.net", Ver: 99}),
			)
			if want := []int64{1, 2, 3, 4, 5}; !reflect.DeepEqual(vers, want) {
				t.Errorf("versions = %v, want %v", vers, want)
			}
			items, ver := mustRoster(t, s, testHost, "alice")
			want := []RosterItem{
				{JID: "a@example.net", Name: "A", Subscription: "none", Ver: 3},
				{JID: "c@example.net", Subscription: "none", Ver: 5},
			}
			if !reflect.DeepEqual(items, want) || ver != 5 {
				t.Errorf("Roster() = %+v, %d, want %+v, 5", items, ver, want)
			}
		}},
		{"the roster is sorted by JID", func(t *testing.T, s *Store) {
			withUsers(t, s)
			for _, j := range []string{"zoe@example.net", "example.net", "Bob@example.net", "adam@example.net"} {
				mustPut(t, s, RosterItem{JID: j})
			}
			items, _ := mustRoster(t, s, testHost, "alice")
			got := jids(items)
			if !slices.IsSorted(got) || len(got) != 4 {
				t.Errorf("Roster() JIDs = %q, want the 4 sorted", got)
			}
		}},
		{"a deleted item is gone and a missing one is ErrNotFound without a version bump", func(t *testing.T, s *Store) {
			withUsers(t, s)
			mustPut(t, s, full)
			mustDelete(t, s, full.JID)
			if _, err := s.RosterItem(t.Context(), testHost, "alice", full.JID); !errors.Is(err, ErrNotFound) {
				t.Errorf("RosterItem() after delete = %v, want ErrNotFound", err)
			}
			_, err := s.DeleteRosterItem(t.Context(), testHost, "alice", full.JID)
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("second DeleteRosterItem() = %v, want ErrNotFound", err)
			}
			if want := "storage: delete roster item romeo@example.net of alice@example.com: not found"; err.Error() != want {
				t.Errorf("error = %q, want %q", err, want)
			}
			if _, ver := mustRoster(t, s, testHost, "alice"); ver != 2 {
				t.Errorf("version = %d, want 2", ver)
			}
		}},
		{"an invalid item is refused and leaves the version", func(t *testing.T, s *Store) {
			withUsers(t, s)
			for _, item := range []RosterItem{
				{JID: "x@example.net", Subscription: "remove"},
				{JID: "x@example.net", Subscription: "Both"},
				{JID: ""},
			} {
				if _, err := s.PutRosterItem(t.Context(), testHost, "alice", item); err == nil {
					t.Errorf("PutRosterItem(%+v) succeeded", item)
				}
			}
			if items, ver := mustRoster(t, s, testHost, "alice"); items != nil || ver != 0 {
				t.Errorf("Roster() = %v, %d, want nil, 0", items, ver)
			}
		}},
		{"rosters of other users and hosts are separate", func(t *testing.T, s *Store) {
			withUsers(t, s)
			mustPut(t, s, RosterItem{JID: "a@example.net"})
			mustPut(t, s, RosterItem{JID: "b@example.net"})
			if _, err := s.PutRosterItem(t.Context(), otherHost, "alice", RosterItem{JID: "c@example.net"}); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				host, user string
				jids       []string
				ver        int64
			}{
				{testHost, "alice", []string{"a@example.net", "b@example.net"}, 2},
				{otherHost, "alice", []string{"c@example.net"}, 1},
				{testHost, "bob", nil, 0},
			} {
				items, ver := mustRoster(t, s, c.host, c.user)
				if got := jids(items); !reflect.DeepEqual(got, c.jids) || ver != c.ver {
					t.Errorf("Roster(%s@%s) = %q, %d, want %q, %d", c.user, c.host, got, ver, c.jids, c.ver)
				}
			}
			if _, err := s.RosterItem(t.Context(), testHost, "bob", "a@example.net"); !errors.Is(err, ErrNotFound) {
				t.Errorf("bob sees alice's item: %v", err)
			}
		}},
	})
}

func TestRosterSince(t *testing.T) {
	// history writes the roster of alice@example.com at versions 1 to 8.
	history := func(t *testing.T, s *Store) {
		withUsers(t, s)
		mustPut(t, s, RosterItem{JID: "a@example.net"})            // 1
		mustPut(t, s, RosterItem{JID: "b@example.net"})            // 2
		mustPut(t, s, RosterItem{JID: "c@example.net"})            // 3
		mustDelete(t, s, "b@example.net")                          // 4
		mustPut(t, s, RosterItem{JID: "a@example.net", Name: "A"}) // 5
		mustDelete(t, s, "c@example.net")                          // 6
		mustPut(t, s, RosterItem{JID: "c@example.net", Name: "C"}) // 7: back after its removal
		mustPut(t, s, RosterItem{JID: "d@example.net"})            // 8
	}
	tests := []struct {
		name    string
		since   int64
		ok      bool
		changed []string
		removed []string
	}{
		{"from version 0 every item is changed and every kept removal is removed", 0, true,
			[]string{"a@example.net", "c@example.net", "d@example.net"}, []string{"b@example.net"}},
		{"a removal after the version is reported", 3, true,
			[]string{"a@example.net", "c@example.net", "d@example.net"}, []string{"b@example.net"}},
		{"a removal at the version is not reported", 4, true,
			[]string{"a@example.net", "c@example.net", "d@example.net"}, nil},
		{"an item removed and added again after the version is changed, not removed", 5, true,
			[]string{"c@example.net", "d@example.net"}, nil},
		{"only later changes are reported", 7, true,
			[]string{"d@example.net"}, nil},
		{"the current version has no changes", 8, true, nil, nil},
		{"a future version cannot be answered", 9, false, nil, nil},
		{"a negative version cannot be answered", -1, false, nil, nil},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := openStore(t, b.path(t))
			history(t, s)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					changed, removed, ver, ok, err := s.RosterSince(t.Context(), testHost, "alice", tt.since)
					if err != nil {
						t.Fatal(err)
					}
					if ok != tt.ok || ver != 8 {
						t.Fatalf("RosterSince(%d) ok, ver = %v, %d, want %v, 8", tt.since, ok, ver, tt.ok)
					}
					if got := jids(changed); !reflect.DeepEqual(got, tt.changed) {
						t.Errorf("changed = %q, want %q", got, tt.changed)
					}
					if !reflect.DeepEqual(removed, tt.removed) {
						t.Errorf("removed = %q, want %q", removed, tt.removed)
					}
					for _, it := range changed {
						if it.Ver <= tt.since {
							t.Errorf("changed item %s has version %d, not after %d", it.JID, it.Ver, tt.since)
						}
						want, err := s.RosterItem(t.Context(), testHost, "alice", it.JID)
						if err != nil {
							t.Fatal(err)
						}
						if !reflect.DeepEqual(it, want) {
							t.Errorf("changed item = %+v, RosterItem() = %+v", it, want)
						}
					}
				})
			}
		})
	}

	runOnBackends(t, []storeTest{
		{"a roster never written answers version 0 with nothing", func(t *testing.T, s *Store) {
			withUsers(t, s)
			changed, removed, ver, ok, err := s.RosterSince(t.Context(), testHost, "alice", 0)
			if err != nil || !ok || ver != 0 || changed != nil || removed != nil {
				t.Errorf("RosterSince(0) = %v, %v, %d, %v, %v, want nothing, version 0, ok", changed, removed, ver, ok, err)
			}
		}},
		{"versions older than a pruned tombstone cannot be answered", func(t *testing.T, s *Store) {
			withUsers(t, s)
			s.tombstonesKept = 3
			for i := range 5 {
				mustPut(t, s, RosterItem{JID: fmt.Sprintf("j%d@example.net", i)}) // 1-5
			}
			for i := range 5 {
				mustDelete(t, s, fmt.Sprintf("j%d@example.net", i)) // 6-10
			}
			// j0 (6) and j1 (7) are pruned; j2 (8), j3 (9), j4 (10) kept.
			for _, c := range []struct {
				since   int64
				ok      bool
				removed []string
			}{
				{0, false, nil},
				{6, false, nil},
				{7, true, []string{"j2@example.net", "j3@example.net", "j4@example.net"}},
				{9, true, []string{"j4@example.net"}},
				{10, true, nil},
			} {
				changed, removed, ver, ok, err := s.RosterSince(t.Context(), testHost, "alice", c.since)
				if err != nil {
					t.Fatal(err)
				}
				if ok != c.ok || ver != 10 || changed != nil || !reflect.DeepEqual(removed, c.removed) {
					t.Errorf("RosterSince(%d) = %v, %q, %d, %v, want nil, %q, 10, %v", c.since, changed, removed, ver, ok, c.removed, c.ok)
				}
			}
			var n int
			if err := s.db.QueryRow(`SELECT count(*) FROM roster_tombstones`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 3 {
				t.Errorf("%d tombstones kept, want 3", n)
			}
		}},
	})
}

func TestRosterTombstonesKept(t *testing.T) {
	runOnBackends(t, []storeTest{{"a roster keeps its last 1000 removals", func(t *testing.T, s *Store) {
		withUsers(t, s)
		if s.tombstonesKept != 1000 {
			t.Fatalf("Open keeps %d tombstones, want 1000", s.tombstonesKept)
		}
		// Seed, in one transaction rather than 2000, the roster that 1000
		// puts and removals and then one put would leave: tombstones at
		// versions 1 to 1000 and an item at 1001.
		err := s.update(t.Context(), func(tx *sql.Tx) error {
			for v := int64(1); v <= 1000; v++ {
				if _, err := tx.Exec(`INSERT INTO roster_tombstones (host, username, jid, ver) VALUES (?, ?, ?, ?)`,
					testHost, "alice", fmt.Sprintf("j%04d@example.net", v), v); err != nil {
					return err
				}
			}
			_, err := tx.Exec(`INSERT INTO roster_version (host, username, ver) VALUES (?, ?, 1000)`, testHost, "alice")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		mustPut(t, s, RosterItem{JID: "last@example.net"}) // 1001
		if _, _, _, ok, _ := s.RosterSince(t.Context(), testHost, "alice", 0); !ok {
			t.Fatal("RosterSince(0) is not ok with 1000 tombstones")
		}
		mustDelete(t, s, "last@example.net") // 1002: the 1001st tombstone prunes the one at 1
		_, removed, _, ok, err := s.RosterSince(t.Context(), testHost, "alice", 1)
		if err != nil || !ok || len(removed) != 1000 || removed[0] != "j0002@example.net" {
			t.Errorf("RosterSince(1) = %d removed from %q, ok %v, %v; want 1000 from j0002, ok", len(removed), removed[:min(1, len(removed))], ok, err)
		}
		if _, _, _, ok, _ := s.RosterSince(t.Context(), testHost, "alice", 0); ok {
			t.Error("RosterSince(0) is ok, but the removal at 1 was pruned")
		}
	}}})
}

func TestRosterConcurrentWrites(t *testing.T) {
	const (
		workers = 16
		each    = 25
	)
	for _, b := range backends {
		t.Run(b.name+" versions stay strictly increasing without duplicates", func(t *testing.T) {
			s := withUsers(t, openStore(t, b.path(t)))
			ctx := t.Context()
			var (
				wg   sync.WaitGroup
				mu   sync.Mutex
				seen = map[int64]string{}
				errs []error
			)
			for w := range workers {
				wg.Go(func() {
					var last int64
					for i := range each {
						jid := fmt.Sprintf("w%d-%d@example.net", w, i%10)
						op := "put " + jid
						var (
							ver int64
							err error
						)
						if i%10 < 5 || i < 10 {
							ver, err = s.PutRosterItem(ctx, testHost, "alice", RosterItem{JID: jid, Name: fmt.Sprint(i)})
						} else {
							op = "delete " + jid
							ver, err = s.DeleteRosterItem(ctx, testHost, "alice", jid)
						}
						mu.Lock()
						switch {
						case err != nil:
							errs = append(errs, fmt.Errorf("%s: %w", op, err))
						case ver <= last:
							errs = append(errs, fmt.Errorf("%s: version %d after %d", op, ver, last))
						case seen[ver] != "":
							errs = append(errs, fmt.Errorf("%s and %s both got version %d", seen[ver], op, ver))
						default:
							seen[ver] = op
							last = ver
						}
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			for _, err := range errs {
				t.Error(err)
			}
			const total = workers * each
			for v := int64(1); v <= total; v++ {
				if seen[v] == "" {
					t.Errorf("no write got version %d", v)
				}
			}
			items, ver := mustRoster(t, s, testHost, "alice")
			if ver != total {
				t.Errorf("roster version = %d, want %d", ver, total)
			}
			// Each worker put 10 JIDs and deleted 5 of them again.
			if len(items) != workers*5 {
				t.Errorf("roster has %d items, want %d", len(items), workers*5)
			}
			_, removed, _, ok, err := s.RosterSince(ctx, testHost, "alice", 0)
			if err != nil || !ok || len(removed) != workers*5 {
				t.Errorf("RosterSince(0) = %d removed, ok %v, %v; want %d, true", len(removed), ok, err, workers*5)
			}
		})
	}
}

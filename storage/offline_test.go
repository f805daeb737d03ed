package storage

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// mustStoreOffline stores stanzas for user@host with a limit of 100, or fails
// the test.
func mustStoreOffline(t *testing.T, s *Store, host, user string, stanzas ...string) {
	t.Helper()
	for _, st := range stanzas {
		if err := s.StoreOffline(t.Context(), host, user, []byte(st), OfflineQuota{Messages: 100}); err != nil {
			t.Fatalf("StoreOffline(%s@%s, %q): %v", user, host, st, err)
		}
	}
}

// mustOffline returns the offline messages of user@host, or fails the test.
func mustOffline(t *testing.T, s *Store, host, user string) []OfflineMessage {
	t.Helper()
	ms, err := s.OfflineMessages(t.Context(), host, user)
	if err != nil {
		t.Fatalf("OfflineMessages(%s@%s): %v", user, host, err)
	}
	return ms
}

// stanzas returns the stanzas of ms as strings.
func stanzas(ms []OfflineMessage) []string {
	var ss []string
	for _, m := range ms {
		ss = append(ss, string(m.Stanza))
	}
	return ss
}

func TestOffline(t *testing.T) {
	runOnBackends(t, []storeTest{
		{"messages list oldest first with increasing seq and their stored time", func(t *testing.T, s *Store) {
			withUsers(t, s)
			before := time.Now()
			mustStoreOffline(t, s, testHost, "alice", "<message>1</message>", "<message>2</message>", "<message>3</message>")
			after := time.Now()
			ms := mustOffline(t, s, testHost, "alice")
			if got, want := stanzas(ms), []string{"<message>1</message>", "<message>2</message>", "<message>3</message>"}; !reflect.DeepEqual(got, want) {
				t.Fatalf("stanzas = %q, want %q", got, want)
			}
			for i, m := range ms {
				if i > 0 && m.Seq <= ms[i-1].Seq {
					t.Errorf("seq %d after %d", m.Seq, ms[i-1].Seq)
				}
				if i > 0 && m.Stored.Before(ms[i-1].Stored) {
					t.Errorf("stored %v before the earlier %v", m.Stored, ms[i-1].Stored)
				}
				if m.Stored.Before(before) || m.Stored.After(after) || m.Stored.Location() != time.UTC {
					t.Errorf("Stored = %v, want between %v and %v in UTC", m.Stored, before, after)
				}
			}
			if len(ms) != 3 {
				t.Errorf("%d messages, want 3", len(ms))
			}
		}},
		{"a user without messages has none", func(t *testing.T, s *Store) {
			withUsers(t, s)
			if ms := mustOffline(t, s, testHost, "alice"); ms != nil {
				t.Errorf("OfflineMessages() = %v, want nil", ms)
			}
		}},
		{"deleting up to a seq keeps the later messages", func(t *testing.T, s *Store) {
			withUsers(t, s)
			mustStoreOffline(t, s, testHost, "alice", "1", "2", "3")
			ms := mustOffline(t, s, testHost, "alice")
			if err := s.DeleteOffline(t.Context(), testHost, "alice", ms[1].Seq); err != nil {
				t.Fatal(err)
			}
			mustStoreOffline(t, s, testHost, "alice", "4")
			if got, want := stanzas(mustOffline(t, s, testHost, "alice")), []string{"3", "4"}; !reflect.DeepEqual(got, want) {
				t.Errorf("after delete, stanzas = %q, want %q", got, want)
			}
			if err := s.DeleteOffline(t.Context(), testHost, "alice", ms[1].Seq); err != nil {
				t.Errorf("deleting again: %v", err)
			}
		}},
		{"a seq is not reused after every message was deleted", func(t *testing.T, s *Store) {
			withUsers(t, s)
			mustStoreOffline(t, s, testHost, "alice", "1", "2")
			old := mustOffline(t, s, testHost, "alice")
			if err := s.DeleteOffline(t.Context(), testHost, "alice", old[1].Seq); err != nil {
				t.Fatal(err)
			}
			mustStoreOffline(t, s, testHost, "alice", "3")
			// A session holding the old upTo must not delete the new message.
			if err := s.DeleteOffline(t.Context(), testHost, "alice", old[1].Seq); err != nil {
				t.Fatal(err)
			}
			ms := mustOffline(t, s, testHost, "alice")
			if len(ms) != 1 || ms[0].Seq <= old[1].Seq {
				t.Errorf("after a full delete, messages = %+v, want one with seq above %d", ms, old[1].Seq)
			}
		}},
		{"a user at the quota gets ErrQuota and keeps the messages", func(t *testing.T, s *Store) {
			withUsers(t, s)
			for i := range 2 {
				if err := s.StoreOffline(t.Context(), testHost, "alice", []byte(fmt.Sprint(i)), OfflineQuota{Messages: 2}); err != nil {
					t.Fatal(err)
				}
			}
			err := s.StoreOffline(t.Context(), testHost, "alice", []byte("over"), OfflineQuota{Messages: 2})
			if !errors.Is(err, ErrQuota) {
				t.Fatalf("third StoreOffline() = %v, want ErrQuota", err)
			}
			if want := "storage: store offline message for alice@example.com: 2 of 2 messages kept: quota exceeded"; err.Error() != want {
				t.Errorf("error = %q, want %q", err, want)
			}
			if got, want := stanzas(mustOffline(t, s, testHost, "alice")), []string{"0", "1"}; !reflect.DeepEqual(got, want) {
				t.Errorf("stanzas = %q, want %q", got, want)
			}
			// The quota is per user.
			if err := s.StoreOffline(t.Context(), testHost, "bob", []byte("b"), OfflineQuota{Messages: 2}); err != nil {
				t.Errorf("bob: %v", err)
			}
			ms := mustOffline(t, s, testHost, "alice")
			if err := s.DeleteOffline(t.Context(), testHost, "alice", ms[0].Seq); err != nil {
				t.Fatal(err)
			}
			if err := s.StoreOffline(t.Context(), testHost, "alice", []byte("room again"), OfflineQuota{Messages: 2}); err != nil {
				t.Errorf("after a delete: %v", err)
			}
		}},
		{"a limit of zero stores nothing", func(t *testing.T, s *Store) {
			withUsers(t, s)
			if err := s.StoreOffline(t.Context(), testHost, "alice", []byte("x"), OfflineQuota{Messages: 0}); !errors.Is(err, ErrQuota) {
				t.Errorf("StoreOffline(limit 0) = %v, want ErrQuota", err)
			}
		}},
		{"messages of other users and hosts are separate", func(t *testing.T, s *Store) {
			withUsers(t, s)
			mustStoreOffline(t, s, testHost, "alice", "a1", "a2")
			mustStoreOffline(t, s, otherHost, "alice", "o1")
			mustStoreOffline(t, s, testHost, "bob", "b1")
			all := mustOffline(t, s, testHost, "bob")
			if err := s.DeleteOffline(t.Context(), testHost, "bob", all[0].Seq); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				host, user string
				want       []string
			}{
				{testHost, "alice", []string{"a1", "a2"}},
				{otherHost, "alice", []string{"o1"}},
				{testHost, "bob", nil},
			} {
				if got := stanzas(mustOffline(t, s, c.host, c.user)); !reflect.DeepEqual(got, c.want) {
					t.Errorf("%s@%s stanzas = %q, want %q", c.user, c.host, got, c.want)
				}
			}
		}},
	})

	t.Run("messages survive a close and reopen in order with their stored time", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "parley.db")
		s, err := Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		withUsers(t, s)
		mustStoreOffline(t, s, testHost, "alice", "1", "2", "3")
		want := mustOffline(t, s, testHost, "alice")
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openStore(t, path)
		got := mustOffline(t, s, testHost, "alice")
		if !reflect.DeepEqual(got, want) {
			t.Errorf("after reopen, OfflineMessages() = %+v, want %+v", got, want)
		}
	})
}

// TestTakeOfflinePages: delivery takes a user's messages a page at a time,
// bounded by count and by bytes, and puts back what it could not deliver.
func TestTakeOfflinePages(t *testing.T) {
	tests := []struct {
		name      string
		sizes     []int // of the stored stanzas
		maxMsgs   int
		maxBytes  int64
		wantPages [][]int // indexes into sizes, per page
	}{
		{"by count", []int{1, 1, 1, 1, 1}, 2, 1 << 20, [][]int{{0, 1}, {2, 3}, {4}}},
		{"by bytes, the page ends once it reaches the bound", []int{40, 40, 40, 40, 40}, 100, 100, [][]int{{0, 1, 2}, {3, 4}}},
		{"a message larger than the bound is a page of its own", []int{500, 10, 10}, 100, 100, [][]int{{0}, {1, 2}}},
		{"none", nil, 10, 100, nil},
	}
	for _, b := range backends {
		for _, tt := range tests {
			t.Run(b.name+"/"+tt.name, func(t *testing.T) {
				s := withUsers(t, openStore(t, b.path(t)))
				var want []string
				for i, n := range tt.sizes {
					st := fmt.Sprintf("%d:%s", i, strings.Repeat("x", n))
					want = append(want, st[:n])
					mustStoreOffline(t, s, testHost, "alice", st[:n])
				}
				mustStoreOffline(t, s, testHost, "bob", "not alice's")
				var pages [][]int
				var last int64
				for {
					ms, err := s.TakeOffline(t.Context(), testHost, "alice", tt.maxMsgs, tt.maxBytes)
					if err != nil {
						t.Fatal(err)
					}
					if len(ms) == 0 {
						break
					}
					var page []int
					for _, m := range ms {
						if m.Seq <= last {
							t.Errorf("seq %d after %d", m.Seq, last)
						}
						last = m.Seq
						i := slices.Index(want, string(m.Stanza))
						if i < 0 {
							t.Fatalf("took %q, which was not stored", m.Stanza)
						}
						page = append(page, i)
					}
					pages = append(pages, page)
					if len(pages) > len(tt.sizes) {
						t.Fatalf("pages %v do not end", pages)
					}
				}
				if !reflect.DeepEqual(pages, tt.wantPages) {
					t.Errorf("pages = %v, want %v", pages, tt.wantPages)
				}
				if ms := mustOffline(t, s, testHost, "alice"); len(ms) != 0 {
					t.Errorf("after taking every page, %d messages are left", len(ms))
				}
				if got := stanzas(mustOffline(t, s, testHost, "bob")); !reflect.DeepEqual(got, []string{"not alice's"}) {
					t.Errorf("bob's messages = %q", got)
				}
			})
		}
	}
}

func TestRestoreOffline(t *testing.T) {
	runOnBackends(t, []storeTest{
		{"restored messages come back in their place with their time", func(t *testing.T, s *Store) {
			withUsers(t, s)
			mustStoreOffline(t, s, testHost, "alice", "1", "2", "3", "4")
			all := mustOffline(t, s, testHost, "alice")
			page, err := s.TakeOffline(t.Context(), testHost, "alice", 2, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			mustStoreOffline(t, s, testHost, "alice", "5")
			// The second of the page was not delivered.
			if err := s.RestoreOffline(t.Context(), testHost, "alice", page[1:]); err != nil {
				t.Fatal(err)
			}
			got := mustOffline(t, s, testHost, "alice")
			if got, want := stanzas(got), []string{"2", "3", "4", "5"}; !reflect.DeepEqual(got, want) {
				t.Fatalf("after restore, stanzas = %q, want %q", got, want)
			}
			if !reflect.DeepEqual(got[0], all[1]) {
				t.Errorf("restored %+v, want %+v", got[0], all[1])
			}
			// Restoring what is there already changes nothing.
			if err := s.RestoreOffline(t.Context(), testHost, "alice", got[:1]); err != nil {
				t.Fatal(err)
			}
			if n := len(mustOffline(t, s, testHost, "alice")); n != 4 {
				t.Errorf("after restoring a message that is there, %d messages, want 4", n)
			}
		}},
		{"restored messages do not count against the quota but count after", func(t *testing.T, s *Store) {
			withUsers(t, s)
			q := OfflineQuota{Messages: 2}
			mustStoreOffline(t, s, testHost, "alice", "1", "2")
			page, err := s.TakeOffline(t.Context(), testHost, "alice", 2, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.StoreOffline(t.Context(), testHost, "alice", []byte("3"), q); err != nil {
				t.Fatal(err)
			}
			if err := s.RestoreOffline(t.Context(), testHost, "alice", page); err != nil {
				t.Fatalf("restore past the quota: %v", err)
			}
			if err := s.StoreOffline(t.Context(), testHost, "alice", []byte("4"), q); !errors.Is(err, ErrQuota) {
				t.Errorf("StoreOffline over the quota after a restore = %v, want ErrQuota", err)
			}
		}},
		{"restoring for a user without an account is ErrNotFound", func(t *testing.T, s *Store) {
			withUsers(t, s)
			err := s.RestoreOffline(t.Context(), testHost, "nobody", []OfflineMessage{{Seq: 99, Stanza: []byte("x"), Stored: time.Now()}})
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("RestoreOffline(nobody) = %v, want ErrNotFound", err)
			}
		}},
	})
}

func TestOfflineByteQuota(t *testing.T) {
	runOnBackends(t, []storeTest{
		{"a message that would pass the byte bound gets a QuotaError in bytes", func(t *testing.T, s *Store) {
			withUsers(t, s)
			q := OfflineQuota{Messages: 100, Bytes: 10}
			for _, st := range []string{"1234", "5678"} {
				if err := s.StoreOffline(t.Context(), testHost, "alice", []byte(st), q); err != nil {
					t.Fatal(err)
				}
			}
			err := s.StoreOffline(t.Context(), testHost, "alice", []byte("abc"), q)
			var qe *QuotaError
			if !errors.As(err, &qe) || !errors.Is(err, ErrQuota) || *qe != (QuotaError{Unit: "bytes", Used: 8, Limit: 10}) {
				t.Fatalf("StoreOffline past the byte bound = %v, want a QuotaError of 8 of 10 bytes", err)
			}
			if want := "storage: store offline message for alice@example.com: 8 of 10 bytes kept: quota exceeded"; err.Error() != want {
				t.Errorf("error = %q, want %q", err, want)
			}
			// What fits still does, and the bound is per user.
			if err := s.StoreOffline(t.Context(), testHost, "alice", []byte("ab"), q); err != nil {
				t.Errorf("a message that fits exactly: %v", err)
			}
			if err := s.StoreOffline(t.Context(), testHost, "bob", []byte("0123456789"), q); err != nil {
				t.Errorf("bob: %v", err)
			}
		}},
	})
}

func TestUpgradeGivesOfflineMessagesTheirSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	db, err := openDB(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(t.Context(), db, migrations[:2]); err != nil {
		db.Close()
		t.Fatal(err)
	}
	a := testAccount(testHost, "alice")
	if _, err := db.Exec(`INSERT INTO accounts (`+accountColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.Host, a.Username, a.SHA1.Salt, a.SHA1.Iterations, a.SHA1.StoredKey, a.SHA1.ServerKey,
		a.SHA256.Salt, a.SHA256.Iterations, a.SHA256.StoredKey, a.SHA256.ServerKey, a.Created.UnixNano()); err != nil {
		db.Close()
		t.Fatal(err)
	}
	for _, st := range []string{"12345", "678"} {
		if _, err := db.Exec(`INSERT INTO offline_messages (host, username, stanza, stored) VALUES (?, ?, ?, 0)`,
			testHost, "alice", []byte(st)); err != nil {
			db.Close()
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, path)
	// 8 bytes kept: one more byte fits under 9, two do not.
	q := OfflineQuota{Messages: 10, Bytes: 9}
	if err := s.StoreOffline(t.Context(), testHost, "alice", []byte("ab"), q); !errors.Is(err, ErrQuota) {
		t.Errorf("after the upgrade, 2 more bytes on 8 under a bound of 9 = %v, want ErrQuota", err)
	}
	if err := s.StoreOffline(t.Context(), testHost, "alice", []byte("a"), q); err != nil {
		t.Errorf("after the upgrade, 1 more byte on 8 under a bound of 9: %v", err)
	}
}

package storage

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// mustStoreOffline stores stanzas for user@host with a limit of 100, or fails
// the test.
func mustStoreOffline(t *testing.T, s *Store, host, user string, stanzas ...string) {
	t.Helper()
	for _, st := range stanzas {
		if err := s.StoreOffline(t.Context(), host, user, []byte(st), 100); err != nil {
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
				if err := s.StoreOffline(t.Context(), testHost, "alice", []byte(fmt.Sprint(i)), 2); err != nil {
					t.Fatal(err)
				}
			}
			err := s.StoreOffline(t.Context(), testHost, "alice", []byte("over"), 2)
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
			if err := s.StoreOffline(t.Context(), testHost, "bob", []byte("b"), 2); err != nil {
				t.Errorf("bob: %v", err)
			}
			ms := mustOffline(t, s, testHost, "alice")
			if err := s.DeleteOffline(t.Context(), testHost, "alice", ms[0].Seq); err != nil {
				t.Fatal(err)
			}
			if err := s.StoreOffline(t.Context(), testHost, "alice", []byte("room again"), 2); err != nil {
				t.Errorf("after a delete: %v", err)
			}
		}},
		{"a limit of zero stores nothing", func(t *testing.T, s *Store) {
			withUsers(t, s)
			if err := s.StoreOffline(t.Context(), testHost, "alice", []byte("x"), 0); !errors.Is(err, ErrQuota) {
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

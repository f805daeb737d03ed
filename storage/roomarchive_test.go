package storage

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// roomEntry is message i of a room: from nick "n<i%3>", stanza "r<i>".
func roomEntry(i int) ArchiveEntry {
	return ArchiveEntry{With: "team@muc.example.com", Resource: fmt.Sprintf("n%d", i%3), Stanza: fmt.Appendf(nil, "r%d", i)}
}

func TestRoomArchive(t *testing.T) {
	const muc = "muc.example.com"
	// archive queues n messages of room through the writer and waits for
	// them; it returns their ids.
	archive := func(t *testing.T, s *Store, room string, from, n int) []string {
		t.Helper()
		var ids []string
		for i := from; i < from+n; i++ {
			id, err := s.ArchiveRoomAsync(t.Context(), muc, room, roomEntry(i), nil)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		if err := s.SyncArchive(t.Context()); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	ids := func(ms []ArchivedMessage) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.ID)
		}
		return out
	}
	runOnBackends(t, []storeTest{
		{"pages forward and backward with the ids the writer gave", func(t *testing.T, s *Store) {
			want := archive(t, s, "team", 0, 25)
			archive(t, s, "other", 100, 5)
			p, err := s.QueryRoomArchive(t.Context(), muc, "team", ArchiveQuery{Max: 10, Count: true})
			if err != nil || !slices.Equal(ids(p.Messages), want[:10]) || p.Complete || p.Count != 25 {
				t.Fatalf("first page = %v, complete %v, count %d, %v; want %v", ids(p.Messages), p.Complete, p.Count, err, want[:10])
			}
			p, err = s.QueryRoomArchive(t.Context(), muc, "team", ArchiveQuery{Max: 10, Backward: true})
			if err != nil || !slices.Equal(ids(p.Messages), want[15:]) || p.Complete {
				t.Fatalf("last page = %v, %v; want %v", ids(p.Messages), err, want[15:])
			}
			p, err = s.QueryRoomArchive(t.Context(), muc, "team", ArchiveQuery{Max: 10, Before: want[5], Backward: true})
			if err != nil || !slices.Equal(ids(p.Messages), want[:5]) || !p.Complete {
				t.Fatalf("page before the 6th = %v, complete %v, %v; want %v", ids(p.Messages), p.Complete, err, want[:5])
			}
			p, err = s.QueryRoomArchive(t.Context(), muc, "team", ArchiveQuery{Max: 100, With: "team@muc.example.com", Resource: "n1"})
			var n1 []string
			for i := 1; i < 25; i += 3 {
				n1 = append(n1, want[i])
			}
			if err != nil || !slices.Equal(ids(p.Messages), n1) {
				t.Fatalf("by nick n1 = %v, %v; want %v", ids(p.Messages), err, n1)
			}
		}},
		{"a user's archive and a room's do not see each other's ids", func(t *testing.T, s *Store) {
			withUsers(t, s)
			roomIDs := archive(t, s, "team", 0, 2)
			ms := fillArchive(t, s, 2)
			if _, err := s.QueryRoomArchive(t.Context(), muc, "team", ArchiveQuery{IDs: []string{ms[0].ID}}); !errors.Is(err, ErrNotFound) {
				t.Errorf("a user's message id in a room: %v; want ErrNotFound", err)
			}
			if _, err := s.QueryArchive(t.Context(), testHost, "alice", ArchiveQuery{IDs: []string{roomIDs[0]}}); !errors.Is(err, ErrNotFound) {
				t.Errorf("a room's message id in a user's archive: %v; want ErrNotFound", err)
			}
		}},
		{"a replaced message keeps its id and place", func(t *testing.T, s *Store) {
			want := archive(t, s, "team", 0, 3)
			if err := s.ReplaceRoomArchived(t.Context(), muc, "team", want[1], []byte("tombstone")); err != nil {
				t.Fatal(err)
			}
			p, err := s.QueryRoomArchive(t.Context(), muc, "team", ArchiveQuery{Max: 10})
			if err != nil || !slices.Equal(ids(p.Messages), want) || string(p.Messages[1].Stanza) != "tombstone" {
				t.Fatalf("after the replace: %v, %v", p.Messages, err)
			}
			for _, c := range []struct{ room, id string }{{"other", want[1]}, {"team", "not-an-id"}} {
				if err := s.ReplaceRoomArchived(t.Context(), muc, c.room, c.id, []byte("x")); !errors.Is(err, ErrNotFound) {
					t.Errorf("replace %s in %s: %v; want ErrNotFound", c.id, c.room, err)
				}
			}
		}},
		{"a deleted archive is empty, and the room archives anew", func(t *testing.T, s *Store) {
			archive(t, s, "team", 0, 3)
			if err := s.DeleteRoomArchive(t.Context(), muc, "team"); err != nil {
				t.Fatal(err)
			}
			p, err := s.QueryRoomArchive(t.Context(), muc, "team", ArchiveQuery{Max: 10})
			if err != nil || len(p.Messages) != 0 {
				t.Fatalf("after the delete: %d messages, %v; want none", len(p.Messages), err)
			}
			// The writer cached the old owner's id: the next append
			// must still land.
			again := archive(t, s, "team", 10, 2)
			p, err = s.QueryRoomArchive(t.Context(), muc, "team", ArchiveQuery{Max: 10})
			if err != nil || !slices.Equal(ids(p.Messages), again) {
				t.Fatalf("after archiving again: %v, %v; want %v", ids(p.Messages), err, again)
			}
		}},
		{"orphan archives go, stored rooms' stay", func(t *testing.T, s *Store) {
			archive(t, s, "team", 0, 2)
			archive(t, s, "temp", 0, 2)
			if err := s.PutMUCRoom(t.Context(), muc, MUCRoom{Name: "team"}); err != nil {
				t.Fatal(err)
			}
			n, err := s.DeleteOrphanRoomArchives(t.Context(), muc)
			if err != nil || n != 1 {
				t.Fatalf("deleted %d, %v; want 1", n, err)
			}
			for room, want := range map[string]int{"team": 2, "temp": 0} {
				p, err := s.QueryRoomArchive(t.Context(), muc, room, ArchiveQuery{Max: 10})
				if err != nil || len(p.Messages) != want {
					t.Errorf("%s: %d messages, %v; want %d", room, len(p.Messages), err, want)
				}
			}
		}},
		{"a search is refused", func(t *testing.T, s *Store) {
			if _, err := s.QueryRoomArchive(t.Context(), muc, "team", ArchiveQuery{Max: 10, Search: "hello"}); !errors.Is(err, ErrArchiveQuery) {
				t.Errorf("search: %v; want ErrArchiveQuery", err)
			}
		}},
	})
}

package storage

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestArchiveGathersAsyncAppends: appends nobody waits for wait in the
// writer for more to share their commit (archiveGather, an hour here), a
// query's barrier or an append someone waits for commits them at once,
// and Close commits what waits.
func TestArchiveGathersAsyncAppends(t *testing.T) {
	const muc = "muc.example.com"
	queue := func(t *testing.T, s *Store, from, n int, committed *atomic.Int32) {
		t.Helper()
		for i := from; i < from+n; i++ {
			_, err := s.ArchiveRoomAsync(t.Context(), muc, "team", roomEntry(i), func(err error) {
				if err != nil {
					t.Errorf("commit: %v", err)
				}
				committed.Add(1)
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	// settle gives a writer that does not gather the time to commit.
	settle := func() { time.Sleep(50 * time.Millisecond) }
	runOnBackends(t, []storeTest{
		{"a barrier commits what gathers", func(t *testing.T, s *Store) {
			s.archive.gatherFor = time.Hour
			var committed atomic.Int32
			queue(t, s, 0, 3, &committed)
			settle()
			if n := committed.Load(); n != 0 {
				t.Fatalf("%d of 3 appends committed before anything asked: the writer does not gather", n)
			}
			// A barrier that waited for the gathering would wait an hour.
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			if err := s.SyncArchive(ctx); err != nil {
				t.Fatalf("SyncArchive: %v", err)
			}
			if n := committed.Load(); n != 3 {
				t.Fatalf("after SyncArchive %d of 3 appends are committed", n)
			}
			p, err := s.QueryRoomArchive(t.Context(), muc, "team", ArchiveQuery{Max: 10})
			if err != nil || len(p.Messages) != 3 {
				t.Fatalf("the room's archive holds %d messages, %v; want 3", len(p.Messages), err)
			}
		}},
		{"an append someone waits for does not wait", func(t *testing.T, s *Store) {
			s = withUsers(t, s)
			s.archive.gatherFor = time.Hour
			var committed atomic.Int32
			queue(t, s, 0, 2, &committed)
			settle()
			done := make(chan error, 1)
			go func() {
				_, err := s.AppendArchive(t.Context(), "example.com", "alice", ArchiveEntry{With: "bob@example.com", Stanza: []byte("<message/>")})
				done <- err
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("AppendArchive waits for the gathering")
			}
			if n := committed.Load(); n != 2 {
				t.Fatalf("%d of the 2 appends queued before it are committed with it", n)
			}
		}},
		{"Close commits what gathers", func(t *testing.T, s *Store) {
			s.archive.gatherFor = time.Hour
			var committed atomic.Int32
			queue(t, s, 0, 2, &committed)
			settle()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if n := committed.Load(); n != 2 {
				t.Fatalf("after Close %d of 2 appends are committed", n)
			}
		}},
	})
}

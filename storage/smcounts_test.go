package storage

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestSMCounts: a shutdown's counts come back once, oldest first, with
// every h (the top of the 32-bit range too), and a second save replaces
// the first.
func TestSMCounts(t *testing.T) {
	ctx := context.Background()
	at := time.UnixMilli(1_800_000_000_123)
	runOnBackends(t, []storeTest{
		{"round trip", func(t *testing.T, s *Store) {
			saved := []SMCount{
				{User: "bob@example.com", ID: "b1", H: 1<<32 - 1, Ended: at.Add(time.Second)},
				{User: "alice@example.com", ID: "a1", H: 0, Ended: at},
				{User: "alice@example.com", ID: "a2", H: 42, Ended: at.Add(2 * time.Second)},
			}
			if err := s.SaveSMCounts(ctx, saved); err != nil {
				t.Fatal(err)
			}
			got, err := s.TakeSMCounts(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := []SMCount{saved[1], saved[0], saved[2]}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("took %v, want %v", got, want)
			}
			if again, err := s.TakeSMCounts(ctx); err != nil || len(again) != 0 {
				t.Errorf("a second take: %v, %v; want none", again, err)
			}
		}},
		{"a save replaces the last", func(t *testing.T, s *Store) {
			if err := s.SaveSMCounts(ctx, []SMCount{{User: "a@x", ID: "1", H: 1, Ended: at}}); err != nil {
				t.Fatal(err)
			}
			if err := s.SaveSMCounts(ctx, []SMCount{{User: "b@x", ID: "2", H: 2, Ended: at}}); err != nil {
				t.Fatal(err)
			}
			got, err := s.TakeSMCounts(ctx)
			if err != nil || len(got) != 1 || got[0].ID != "2" {
				t.Errorf("took %v, %v; want only the second save's", got, err)
			}
		}},
	})
}

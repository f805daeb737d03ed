package storage

import (
	"maps"
	"testing"
)

func TestIterationCounts(t *testing.T) {
	runOnBackends(t, []storeTest{
		{"counts of SHA-256 keys per host", func(t *testing.T, s *Store) {
			old := testAccount(testHost, "old")
			old.SHA256.Iterations = 4096
			mustCreate(t, s, testAccount(testHost, "a"), testAccount(testHost, "b"), old, testAccount(otherHost, "c"))
			got, err := s.IterationCounts(t.Context(), testHost)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[int]int{8192: 2, 4096: 1}; !maps.Equal(got, want) {
				t.Errorf("IterationCounts = %v, want %v", got, want)
			}
		}},
		{"a host without accounts has none", func(t *testing.T, s *Store) {
			got, err := s.IterationCounts(t.Context(), "nobody.example")
			if err != nil || len(got) != 0 {
				t.Errorf("IterationCounts = %v, %v; want none", got, err)
			}
		}},
	})
}

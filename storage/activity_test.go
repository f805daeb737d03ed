package storage

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLastActivity(t *testing.T) {
	cest := time.FixedZone("CEST", 2*3600)
	runOnBackends(t, []storeTest{
		{"a user never seen has no last activity", func(t *testing.T, s *Store) {
			withUsers(t, s)
			_, _, err := s.LastActivity(t.Context(), testHost, "alice")
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("LastActivity() = %v, want ErrNotFound", err)
			}
			if want := "storage: last activity of alice@example.com: not found"; err.Error() != want {
				t.Errorf("error = %q, want %q", err, want)
			}
		}},
		{"the last activity reads back as the same instant in UTC with its status", func(t *testing.T, s *Store) {
			withUsers(t, s)
			at := time.Date(2024, 5, 1, 14, 30, 0, 123456789, cest)
			if err := s.SetLastActivity(t.Context(), testHost, "alice", at, "Gone to bed"); err != nil {
				t.Fatal(err)
			}
			got, status, err := s.LastActivity(t.Context(), testHost, "alice")
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(at) || got.Location() != time.UTC || status != "Gone to bed" {
				t.Errorf("LastActivity() = %v, %q, want %v in UTC, %q", got, status, at, "Gone to bed")
			}
		}},
		{"setting the last activity again replaces it, for that user alone", func(t *testing.T, s *Store) {
			withUsers(t, s)
			first := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
			second := first.Add(time.Hour)
			for _, c := range []struct {
				host, user string
				at         time.Time
				status     string
			}{
				{testHost, "alice", first, "away"},
				{testHost, "bob", first, "bob's"},
				{testHost, "alice", second, ""},
			} {
				if err := s.SetLastActivity(t.Context(), c.host, c.user, c.at, c.status); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range []struct {
				user   string
				at     time.Time
				status string
			}{
				{"alice", second, ""},
				{"bob", first, "bob's"},
			} {
				at, status, err := s.LastActivity(t.Context(), testHost, c.user)
				if err != nil || !at.Equal(c.at) || status != c.status {
					t.Errorf("LastActivity(%s) = %v, %q, %v, want %v, %q", c.user, at, status, err, c.at, c.status)
				}
			}
			if _, _, err := s.LastActivity(t.Context(), otherHost, "alice"); !errors.Is(err, ErrNotFound) {
				t.Errorf("alice@%s has the last activity of alice@%s: %v", otherHost, testHost, err)
			}
		}},
	})
}

func TestSetLastActivitiesInOneBatch(t *testing.T) {
	runOnBackends(t, []storeTest{{"a batch records each user with an account and skips the others", func(t *testing.T, s *Store) {
		ctx := context.Background()
		mustCreate(t, s, testAccount(testHost, "alice"), testAccount(testHost, "bob"))
		at := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
		err := s.SetLastActivities(ctx, testHost, map[string]Activity{
			"alice": {At: at, Status: "Heading home"},
			"bob":   {At: at.Add(time.Minute)},
			"ghost": {At: at},
		})
		if err != nil {
			t.Fatal(err)
		}
		for u, want := range map[string]Activity{"alice": {At: at, Status: "Heading home"}, "bob": {At: at.Add(time.Minute)}} {
			got, status, err := s.LastActivity(ctx, testHost, u)
			if err != nil || !got.Equal(want.At) || status != want.Status {
				t.Errorf("%s: %v %q, %v; want %v %q", u, got, status, err, want.At, want.Status)
			}
		}
		if _, _, err := s.LastActivity(ctx, testHost, "ghost"); !errors.Is(err, ErrNotFound) {
			t.Errorf("a user without an account got a record: %v", err)
		}
	}}})
}

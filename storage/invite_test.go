package storage

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestInvites(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	const token = "s3cret-invite-token"
	// mustInvite creates an invite for token on host expiring at expires, or
	// fails the test.
	mustInvite := func(t *testing.T, s *Store, host, token string, expires time.Time) {
		t.Helper()
		if err := s.CreateInvite(t.Context(), host, token, expires); err != nil {
			t.Fatalf("CreateInvite(%s): %v", host, err)
		}
	}
	// wantUse fails the test unless checking and then using token on host
	// at now both return an error that is want (nil for success) and never
	// shows the token.
	wantUse := func(t *testing.T, s *Store, host, token string, now time.Time, want error) {
		t.Helper()
		for _, op := range []struct {
			name string
			f    func(context.Context, string, string, time.Time) error
		}{{"InviteValid", s.InviteValid}, {"UseInvite", s.UseInvite}} {
			err := op.f(t.Context(), host, token, now)
			if !errors.Is(err, want) || (want == nil) != (err == nil) {
				t.Errorf("%s(%s) = %v, want %v", op.name, host, err, want)
			}
			if err != nil && token != "" && strings.Contains(err.Error(), token) {
				t.Errorf("error %q shows the token", err)
			}
		}
	}
	runOnBackends(t, []storeTest{
		{"an invite is good once", func(t *testing.T, s *Store) {
			mustInvite(t, s, testHost, token, now.Add(time.Hour))
			wantUse(t, s, testHost, token, now, nil)
			wantUse(t, s, testHost, token, now, ErrNotFound)
			wantUse(t, s, testHost, token, now.Add(time.Minute), ErrNotFound)
		}},
		{"checking an invite does not use it", func(t *testing.T, s *Store) {
			mustInvite(t, s, testHost, token, now.Add(time.Hour))
			for range 3 {
				if err := s.InviteValid(t.Context(), testHost, token, now); err != nil {
					t.Fatalf("InviteValid() = %v", err)
				}
			}
			wantUse(t, s, testHost, token, now, nil)
			if err := s.InviteValid(t.Context(), testHost, token, now); !errors.Is(err, ErrNotFound) {
				t.Errorf("InviteValid() of a used invite = %v, want ErrNotFound", err)
			}
		}},
		{"an invite cannot be used at or after it expires", func(t *testing.T, s *Store) {
			mustInvite(t, s, testHost, token, now)
			wantUse(t, s, testHost, token, now, ErrNotFound)
			wantUse(t, s, testHost, token, now.Add(time.Nanosecond), ErrNotFound)
			wantUse(t, s, testHost, token, now.Add(-time.Nanosecond), nil)
		}},
		{"an invite of another host is not found and stays good", func(t *testing.T, s *Store) {
			mustInvite(t, s, testHost, token, now.Add(time.Hour))
			wantUse(t, s, otherHost, token, now, ErrNotFound)
			wantUse(t, s, testHost, token, now, nil)
		}},
		{"an unknown token is not found", func(t *testing.T, s *Store) {
			mustInvite(t, s, testHost, token, now.Add(time.Hour))
			wantUse(t, s, testHost, token+"x", now, ErrNotFound)
			wantUse(t, s, testHost, "", now, ErrNotFound)
		}},
		{"a duplicate token is ErrExists, used or not, but another host may have it", func(t *testing.T, s *Store) {
			mustInvite(t, s, testHost, token, now.Add(time.Hour))
			err := s.CreateInvite(t.Context(), testHost, token, now.Add(2*time.Hour))
			if !errors.Is(err, ErrExists) {
				t.Errorf("second CreateInvite() = %v, want ErrExists", err)
			}
			if want := "storage: create invite on example.com: already exists"; err == nil || err.Error() != want {
				t.Errorf("error = %v, want %q", err, want)
			}
			wantUse(t, s, testHost, token, now, nil)
			if err := s.CreateInvite(t.Context(), testHost, token, now.Add(2*time.Hour)); !errors.Is(err, ErrExists) {
				t.Errorf("CreateInvite() of a used token = %v, want ErrExists", err)
			}
			mustInvite(t, s, otherHost, token, now.Add(time.Hour))
			wantUse(t, s, otherHost, token, now, nil)
		}},
		{"an empty host or token is refused", func(t *testing.T, s *Store) {
			if err := s.CreateInvite(t.Context(), "", token, now); err == nil {
				t.Error("CreateInvite with an empty host succeeded")
			}
			if err := s.CreateInvite(t.Context(), testHost, "", now); err == nil {
				t.Error("CreateInvite with an empty token succeeded")
			}
		}},
		{"the token is not stored in the clear", func(t *testing.T, s *Store) {
			mustInvite(t, s, testHost, token, now.Add(time.Hour))
			var n int
			if err := s.db.QueryRow(`SELECT count(*) FROM invites WHERE instr(token_hash, CAST(? AS BLOB)) > 0`, token).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Error("the invites table holds the token")
			}
		}},
		{"of many uses at once, one succeeds", func(t *testing.T, s *Store) {
			mustInvite(t, s, testHost, token, now.Add(time.Hour))
			var (
				wg   sync.WaitGroup
				mu   sync.Mutex
				ok   int
				errs []error
			)
			for range 16 {
				wg.Go(func() {
					err := s.UseInvite(t.Context(), testHost, token, now)
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						ok++
					case !errors.Is(err, ErrNotFound):
						errs = append(errs, err)
					}
				})
			}
			wg.Wait()
			for _, err := range errs {
				t.Error(err)
			}
			if ok != 1 {
				t.Errorf("%d uses succeeded, want 1", ok)
			}
		}},
	})
}

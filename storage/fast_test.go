package storage

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestFastTokens(t *testing.T) {
	ctx := context.Background()
	exp := time.Unix(2_000_000_000, 0)
	tok := func(id string) FastToken {
		return FastToken{Mechanism: "HT-SHA-256-NONE", ID: []byte(id), Expires: exp}
	}
	ids := func(t *testing.T, s *Store, user, agent string) []string {
		t.Helper()
		got, err := s.FastTokens(ctx, testHost, user, agent)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, g := range got {
			slot := "cur:"
			if g.New {
				slot = "new:"
			}
			if !g.Expires.Equal(exp) || g.Mechanism != "HT-SHA-256-NONE" {
				t.Errorf("token %s: %+v", g.ID, g)
			}
			out = append(out, slot+string(g.ID))
		}
		return out
	}
	same := func(t *testing.T, got []string, want ...string) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("tokens = %q, want %q", got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("tokens = %q, want %q", got, want)
			}
		}
	}
	runOnBackends(t, []storeTest{
		{"issue, replace unused, use, rotate", func(t *testing.T, s *Store) {
			withUsers(t, s)
			must(t, s.AddFastToken(ctx, testHost, "alice", "ua1", tok("a")))
			must(t, s.AddFastToken(ctx, testHost, "alice", "ua1", tok("b"))) // a was never used: gone
			same(t, ids(t, s, "alice", "ua1"), "new:b")
			must(t, s.UseFastToken(ctx, testHost, "alice", "ua1", []byte("b")))
			same(t, ids(t, s, "alice", "ua1"), "cur:b")
			must(t, s.AddFastToken(ctx, testHost, "alice", "ua1", tok("c"))) // rotation: b stays until c is used
			same(t, ids(t, s, "alice", "ua1"), "new:c", "cur:b")
			must(t, s.UseFastToken(ctx, testHost, "alice", "ua1", []byte("b"))) // the old one again: nothing moves
			same(t, ids(t, s, "alice", "ua1"), "new:c", "cur:b")
			must(t, s.UseFastToken(ctx, testHost, "alice", "ua1", []byte("c")))
			same(t, ids(t, s, "alice", "ua1"), "cur:c")
			same(t, ids(t, s, "alice", "ua2"))
			same(t, ids(t, s, "bob", "ua1"))
			must(t, s.DeleteFastToken(ctx, testHost, "alice", "ua1", []byte("c")))
			same(t, ids(t, s, "alice", "ua1"))
		}},
		{"new credentials drop the tokens", func(t *testing.T, s *Store) {
			withUsers(t, s)
			must(t, s.AddFastToken(ctx, testHost, "alice", "ua1", tok("a")))
			must(t, s.AddFastToken(ctx, testHost, "bob", "ua1", tok("b")))
			a := testAccount(testHost, "alice")
			must(t, s.SetCredentials(ctx, testHost, "alice", a.SHA1, a.SHA256))
			same(t, ids(t, s, "alice", "ua1"))
			same(t, ids(t, s, "bob", "ua1"), "new:b")
		}},
		{"account removal drops the tokens", func(t *testing.T, s *Store) {
			withUsers(t, s)
			must(t, s.AddFastToken(ctx, testHost, "alice", "ua1", tok("a")))
			must(t, s.DeleteAccount(ctx, testHost, "alice"))
			mustCreate(t, s, testAccount(testHost, "alice"))
			same(t, ids(t, s, "alice", "ua1"))
		}},
		{"no account", func(t *testing.T, s *Store) {
			err := s.AddFastToken(ctx, testHost, "nobody", "ua1", tok("a"))
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
		}},
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

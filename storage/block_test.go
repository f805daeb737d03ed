package storage

import (
	"reflect"
	"testing"
)

func TestBlockList(t *testing.T) {
	type step struct {
		op   string // "block" or "unblock"
		jids []string
		want []string // the blocklist after the step
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"blocked JIDs list sorted", []step{
			{"block", []string{"romeo@example.net/orchard", "example.org", "juliet@example.net"},
				[]string{"example.org", "juliet@example.net", "romeo@example.net/orchard"}},
		}},
		{"blocking a blocked JID again is no error and no duplicate", []step{
			{"block", []string{"b@example.net", "a@example.net"}, []string{"a@example.net", "b@example.net"}},
			{"block", []string{"a@example.net", "c@example.net", "c@example.net"}, []string{"a@example.net", "b@example.net", "c@example.net"}},
		}},
		{"unblocking removes only the given JIDs and ignores those not blocked", []step{
			{"block", []string{"a@example.net", "b@example.net", "c@example.net"}, []string{"a@example.net", "b@example.net", "c@example.net"}},
			{"unblock", []string{"b@example.net", "x@example.net"}, []string{"a@example.net", "c@example.net"}},
			{"unblock", []string{"b@example.net"}, []string{"a@example.net", "c@example.net"}},
		}},
		{"unblocking no JIDs unblocks all, again and again", []step{
			{"block", []string{"a@example.net", "b@example.net"}, []string{"a@example.net", "b@example.net"}},
			{"unblock", nil, nil},
			{"unblock", []string{}, nil},
		}},
		{"blocking no JIDs changes nothing", []step{
			{"block", nil, nil},
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					s := withUsers(t, openStore(t, b.path(t)))
					// bob's blocklist must not move.
					if err := s.Block(t.Context(), testHost, "bob", []string{"a@example.net"}); err != nil {
						t.Fatal(err)
					}
					for i, st := range tt.steps {
						var err error
						if st.op == "block" {
							err = s.Block(t.Context(), testHost, "alice", st.jids)
						} else {
							err = s.Unblock(t.Context(), testHost, "alice", st.jids)
						}
						if err != nil {
							t.Fatalf("step %d: %s(%q): %v", i, st.op, st.jids, err)
						}
						got, err := s.BlockList(t.Context(), testHost, "alice")
						if err != nil {
							t.Fatal(err)
						}
						if !reflect.DeepEqual(got, st.want) {
							t.Errorf("step %d: after %s(%q), BlockList() = %q, want %q", i, st.op, st.jids, got, st.want)
						}
					}
					for _, u := range []struct{ host, user string }{{testHost, "bob"}, {otherHost, "alice"}} {
						got, err := s.BlockList(t.Context(), u.host, u.user)
						if err != nil {
							t.Fatal(err)
						}
						want := []string(nil)
						if u.user == "bob" {
							want = []string{"a@example.net"}
						}
						if !reflect.DeepEqual(got, want) {
							t.Errorf("BlockList(%s@%s) = %q, want %q", u.user, u.host, got, want)
						}
					}
				})
			}
		})
	}

	runOnBackends(t, []storeTest{
		{"a list holding an empty JID blocks nothing", func(t *testing.T, s *Store) {
			withUsers(t, s)
			if err := s.Block(t.Context(), testHost, "alice", []string{"a@example.net", ""}); err == nil {
				t.Error("Block with an empty JID succeeded")
			}
			if got, err := s.BlockList(t.Context(), testHost, "alice"); err != nil || got != nil {
				t.Errorf("BlockList() = %q, %v, want nothing", got, err)
			}
		}},
	})
}

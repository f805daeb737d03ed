package storage

import (
	"errors"
	"testing"
	"time"
)

func TestPushRegistrations(t *testing.T) {
	type reg struct{ jid, node, opts string }
	type step struct {
		op        string // "put", "delete" or "delete-all"
		jid, node string
		opts      string
		removed   int   // for deletes
		want      []reg // alice's registrations after the step
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"one per JID and node, sorted", []step{
			{op: "put", jid: "push.b.example", node: "n1", want: []reg{{"push.b.example", "n1", ""}}},
			{op: "put", jid: "push.a.example", node: "n2", opts: "<x/>",
				want: []reg{{"push.a.example", "n2", "<x/>"}, {"push.b.example", "n1", ""}}},
			{op: "put", jid: "push.b.example", node: "n0",
				want: []reg{{"push.a.example", "n2", "<x/>"}, {"push.b.example", "n0", ""}, {"push.b.example", "n1", ""}}},
		}},
		{"enabling again replaces the options", []step{
			{op: "put", jid: "push.example", node: "n", opts: "<old/>", want: []reg{{"push.example", "n", "<old/>"}}},
			{op: "put", jid: "push.example", node: "n", opts: "<new/>", want: []reg{{"push.example", "n", "<new/>"}}},
			{op: "put", jid: "push.example", node: "n", want: []reg{{"push.example", "n", ""}}},
		}},
		{"a node's delete leaves the JID's other nodes", []step{
			{op: "put", jid: "push.example", node: "a", want: []reg{{"push.example", "a", ""}}},
			{op: "put", jid: "push.example", node: "b", want: []reg{{"push.example", "a", ""}, {"push.example", "b", ""}}},
			{op: "delete", jid: "push.example", node: "a", removed: 1, want: []reg{{"push.example", "b", ""}}},
			{op: "delete", jid: "push.example", node: "a", removed: 0, want: []reg{{"push.example", "b", ""}}},
		}},
		{"a delete without node removes every node of the JID only", []step{
			{op: "put", jid: "push.example", node: "a", want: []reg{{"push.example", "a", ""}}},
			{op: "put", jid: "push.example", node: "b", want: []reg{{"push.example", "a", ""}, {"push.example", "b", ""}}},
			{op: "put", jid: "other.example", node: "a", want: []reg{{"other.example", "a", ""}, {"push.example", "a", ""}, {"push.example", "b", ""}}},
			{op: "delete-all", jid: "push.example", removed: 2, want: []reg{{"other.example", "a", ""}}},
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					s := withUsers(t, openStore(t, b.path(t)))
					ctx := t.Context()
					// bob's registration must not move.
					if err := s.PutPush(ctx, testHost, "bob", PushRegistration{JID: "push.example", Node: "a", Created: time.Now()}); err != nil {
						t.Fatal(err)
					}
					for i, st := range tt.steps {
						switch st.op {
						case "put":
							var opts []byte
							if st.opts != "" {
								opts = []byte(st.opts)
							}
							if err := s.PutPush(ctx, testHost, "alice", PushRegistration{JID: st.jid, Node: st.node, Options: opts, Created: time.Now()}); err != nil {
								t.Fatalf("step %d: %v", i, err)
							}
						default:
							n, err := s.DeletePush(ctx, testHost, "alice", st.jid, st.node, st.op == "delete-all")
							if err != nil || n != st.removed {
								t.Fatalf("step %d: DeletePush = %d, %v; want %d", i, n, err, st.removed)
							}
						}
						got, err := s.PushRegistrations(ctx, testHost, "alice")
						if err != nil {
							t.Fatalf("step %d: %v", i, err)
						}
						var gotRegs []reg
						for _, r := range got {
							gotRegs = append(gotRegs, reg{r.JID, r.Node, string(r.Options)})
						}
						if len(gotRegs) != len(st.want) {
							t.Fatalf("step %d: got %v, want %v", i, gotRegs, st.want)
						}
						for j := range gotRegs {
							if gotRegs[j] != st.want[j] {
								t.Fatalf("step %d: got %v, want %v", i, gotRegs, st.want)
							}
						}
					}
					if bob, err := s.PushRegistrations(ctx, testHost, "bob"); err != nil || len(bob) != 1 {
						t.Fatalf("bob's registrations = %v, %v; want the one", bob, err)
					}
				})
			}
		})
	}
}

func TestPushRegistrationNeedsAccount(t *testing.T) {
	s := withUsers(t, openStore(t, backends[0].path(t)))
	err := s.PutPush(t.Context(), testHost, "nobody", PushRegistration{JID: "push.example", Node: "n"})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("PutPush for no account = %v, want ErrNotFound", err)
	}
	if err := s.PutPush(t.Context(), testHost, "alice", PushRegistration{}); err == nil {
		t.Fatal("PutPush without JID succeeded")
	}
}

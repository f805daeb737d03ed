package storage

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// pepDefaults is the configuration the PEP module gives a new node.
var pepDefaults = PubsubConfig{AccessModel: "presence", PublishModel: "publishers", MaxItems: 1, PersistItems: true, NotifyRetract: true, SendLast: "on_sub_and_presence"}

// ids returns the ids of items, in order, joined by commas.
func ids(items []PubsubItem) string {
	var out []string
	for _, it := range items {
		out = append(out, it.ID)
	}
	return strings.Join(out, ",")
}

func TestPubsub(t *testing.T) {
	withMax := func(n int) *PubsubConfig { c := pepDefaults; c.MaxItems = n; return &c }
	publish := func(t *testing.T, s *Store, user, node, id string, o PublishOptions) {
		t.Helper()
		if _, err := s.PublishPubsub(t.Context(), testHost, user, node, PubsubItem{ID: id, Publisher: user + "@" + testHost, Payload: []byte("<x>" + id + "</x>")}, o); err != nil {
			t.Fatalf("PublishPubsub(%s, %s, %s): %v", user, node, id, err)
		}
	}
	items := func(t *testing.T, s *Store, node string, want string, ask []string, max int) {
		t.Helper()
		_, got, err := s.PubsubItems(t.Context(), testHost, "alice", node, ask, max)
		if err != nil {
			t.Fatalf("PubsubItems(%s, %q, %d): %v", node, ask, max, err)
		}
		if ids(got) != want {
			t.Errorf("PubsubItems(%s, %q, %d) = %q, want %q", node, ask, max, ids(got), want)
		}
	}
	runOnBackends(t, []storeTest{
		{"publish auto-creates, max_items keeps the newest", func(t *testing.T, s *Store) {
			withUsers(t, s)
			for _, id := range []string{"a", "b", "c", "d"} {
				publish(t, s, "alice", "n", id, PublishOptions{Create: withMax(3)})
			}
			items(t, s, "n", "b,c,d", nil, 0)
			items(t, s, "n", "c,d", nil, 2)
			items(t, s, "n", "b,d", []string{"d", "zz", "b"}, 0)
			// A republished id becomes the newest, and is not counted twice.
			publish(t, s, "alice", "n", "b", PublishOptions{Create: withMax(3)})
			items(t, s, "n", "c,d,b", nil, 0)
		}},
		{"publish without Create to no node is ErrNotFound", func(t *testing.T, s *Store) {
			withUsers(t, s)
			_, err := s.PublishPubsub(t.Context(), testHost, "alice", "n", PubsubItem{ID: "a"}, PublishOptions{})
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("PublishPubsub() = %v, want ErrNotFound", err)
			}
		}},
		{"publish for no account is ErrNotFound", func(t *testing.T, s *Store) {
			withUsers(t, s)
			_, err := s.PublishPubsub(t.Context(), testHost, "carol", "n", PubsubItem{ID: "a"}, PublishOptions{Create: &pepDefaults})
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("PublishPubsub() = %v, want ErrNotFound", err)
			}
		}},
		{"a failed check stores nothing", func(t *testing.T, s *Store) {
			withUsers(t, s)
			publish(t, s, "alice", "n", "a", PublishOptions{Create: &pepDefaults})
			refused := errors.New("precondition")
			_, err := s.PublishPubsub(t.Context(), testHost, "alice", "n", PubsubItem{ID: "b"},
				PublishOptions{Check: func(c PubsubConfig) error {
					if c != pepDefaults {
						t.Errorf("Check got %+v, want %+v", c, pepDefaults)
					}
					return refused
				}})
			if !errors.Is(err, refused) {
				t.Errorf("PublishPubsub() = %v, want the check's error", err)
			}
			items(t, s, "n", "a", nil, 0)
		}},
		{"nodes per account are bounded", func(t *testing.T, s *Store) {
			withUsers(t, s)
			publish(t, s, "alice", "n1", "a", PublishOptions{Create: &pepDefaults, MaxNodes: 2})
			publish(t, s, "alice", "n2", "a", PublishOptions{Create: &pepDefaults, MaxNodes: 2})
			publish(t, s, "alice", "n2", "b", PublishOptions{Create: &pepDefaults, MaxNodes: 2}) // existing node
			_, err := s.PublishPubsub(t.Context(), testHost, "alice", "n3", PubsubItem{ID: "a"}, PublishOptions{Create: &pepDefaults, MaxNodes: 2})
			if !errors.Is(err, ErrQuota) {
				t.Errorf("a third node: %v, want ErrQuota", err)
			}
			// Bob has his own count.
			publish(t, s, "bob", "n3", "a", PublishOptions{Create: &pepDefaults, MaxNodes: 2})
		}},
		{"a node without persist_items stores nothing", func(t *testing.T, s *Store) {
			withUsers(t, s)
			c := pepDefaults
			c.PersistItems = false
			publish(t, s, "alice", "n", "a", PublishOptions{Create: &c})
			items(t, s, "n", "", nil, 0)
		}},
		{"configure trims to the new max_items", func(t *testing.T, s *Store) {
			withUsers(t, s)
			for _, id := range []string{"a", "b", "c"} {
				publish(t, s, "alice", "n", id, PublishOptions{Create: withMax(10)})
			}
			if err := s.ConfigurePubsubNode(t.Context(), testHost, "alice", "n", *withMax(2)); err != nil {
				t.Fatal(err)
			}
			items(t, s, "n", "b,c", nil, 0)
			if c, err := s.PubsubConfigOf(t.Context(), testHost, "alice", "n"); err != nil || c != *withMax(2) {
				t.Errorf("PubsubConfigOf() = %+v, %v, want max_items 2", c, err)
			}
			if err := s.ConfigurePubsubNode(t.Context(), testHost, "alice", "none", pepDefaults); !errors.Is(err, ErrNotFound) {
				t.Errorf("configuring no node: %v, want ErrNotFound", err)
			}
		}},
		{"create twice", func(t *testing.T, s *Store) {
			withUsers(t, s)
			if err := s.CreatePubsubNode(t.Context(), testHost, "alice", "n", pepDefaults, 0); err != nil {
				t.Fatal(err)
			}
			if err := s.CreatePubsubNode(t.Context(), testHost, "alice", "n", pepDefaults, 0); !errors.Is(err, ErrPubsubNodeExists) {
				t.Errorf("second create: %v, want ErrPubsubNodeExists", err)
			}
		}},
		{"retract and delete", func(t *testing.T, s *Store) {
			withUsers(t, s)
			publish(t, s, "alice", "n", "a", PublishOptions{Create: withMax(5)})
			publish(t, s, "alice", "n", "b", PublishOptions{Create: withMax(5)})
			if _, err := s.RetractPubsubItem(t.Context(), testHost, "alice", "n", "a"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.RetractPubsubItem(t.Context(), testHost, "alice", "n", "a"); !errors.Is(err, ErrNotFound) {
				t.Errorf("retracting twice: %v, want ErrNotFound", err)
			}
			items(t, s, "n", "b", nil, 0)
			if _, err := s.DeletePubsubNode(t.Context(), testHost, "alice", "n"); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.PubsubItems(t.Context(), testHost, "alice", "n", nil, 0); !errors.Is(err, ErrNotFound) {
				t.Errorf("items of a deleted node: %v, want ErrNotFound", err)
			}
			// The items went with it: a new node of the name is empty.
			if err := s.CreatePubsubNode(t.Context(), testHost, "alice", "n", pepDefaults, 0); err != nil {
				t.Fatal(err)
			}
			items(t, s, "n", "", nil, 0)
		}},
		{"last items, and all goes with the account", func(t *testing.T, s *Store) {
			withUsers(t, s)
			publish(t, s, "alice", "b", "1", PublishOptions{Create: withMax(5)})
			publish(t, s, "alice", "b", "2", PublishOptions{Create: withMax(5)})
			publish(t, s, "alice", "b", "1", PublishOptions{Create: withMax(5)})
			if err := s.CreatePubsubNode(t.Context(), testHost, "alice", "a", pepDefaults, 0); err != nil {
				t.Fatal(err)
			}
			got, err := s.PubsubLastItems(t.Context(), testHost, "alice")
			if err != nil {
				t.Fatal(err)
			}
			want := []PubsubNode{{Name: "a", Config: pepDefaults},
				{Name: "b", Config: *withMax(5), Last: &PubsubItem{ID: "1", Publisher: "alice@" + testHost, Payload: []byte("<x>1</x>")}}}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("PubsubLastItems() = %+v, want %+v", got, want)
			}
			if err := s.DeleteAccount(t.Context(), testHost, "alice"); err != nil {
				t.Fatal(err)
			}
			if got, err := s.PubsubLastItems(t.Context(), testHost, "alice"); err != nil || len(got) != 0 {
				t.Errorf("after DeleteAccount: %+v, %v, want nothing", got, err)
			}
		}},
	})
}

package storage

import "testing"

func TestHasAccounts(t *testing.T) {
	runOnBackends(t, []storeTest{
		{"a host without accounts has none", func(t *testing.T, s *Store) {
			mustCreate(t, s, testAccount(otherHost, "alice"))
			wantHasAccounts(t, s, testHost, false)
		}},
		{"a host with an account has some", func(t *testing.T, s *Store) {
			withUsers(t, s)
			wantHasAccounts(t, s, testHost, true)
			wantHasAccounts(t, s, otherHost, true)
		}},
		{"a host whose last account was deleted has none", func(t *testing.T, s *Store) {
			withUsers(t, s)
			if err := s.DeleteAccount(t.Context(), otherHost, "alice"); err != nil {
				t.Fatal(err)
			}
			wantHasAccounts(t, s, otherHost, false)
			wantHasAccounts(t, s, testHost, true)
		}},
	})
}

// wantHasAccounts checks what HasAccounts says of host.
func wantHasAccounts(t *testing.T, s *Store, host string, want bool) {
	t.Helper()
	got, err := s.HasAccounts(t.Context(), host)
	if err != nil {
		t.Fatalf("HasAccounts(%q): %v", host, err)
	}
	if got != want {
		t.Errorf("HasAccounts(%q) = %v, want %v", host, got, want)
	}
}

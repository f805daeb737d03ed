package storage

import "testing"

// storeTest is a test that runs on a fresh Store.
type storeTest struct {
	name string
	run  func(t *testing.T, s *Store)
}

// runOnBackends runs each of tests on a fresh Store of each backend.
func runOnBackends(t *testing.T, tests []storeTest) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					tt.run(t, openStore(t, b.path(t)))
				})
			}
		})
	}
}

// The hosts of the users that withUsers creates.
const (
	testHost  = "example.com"
	otherHost = "example.org"
)

// withUsers creates the accounts alice@example.com, bob@example.com and
// alice@example.org in s and returns s.
func withUsers(t *testing.T, s *Store) *Store {
	t.Helper()
	mustCreate(t, s, testAccount(testHost, "alice"), testAccount(testHost, "bob"), testAccount(otherHost, "alice"))
	return s
}

package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// backends are the two kinds of database a Store runs on; account tests run
// on both.
var backends = []struct {
	name string
	path func(t *testing.T) string
}{
	{"file", func(t *testing.T) string { return filepath.Join(t.TempDir(), "parley.db") }},
	{"memory", func(t *testing.T) string { return Memory }},
}

// openStore opens a Store at path and closes it when the test ends.
func openStore(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// testAccount returns an account whose keys are derived from its name, so
// two test accounts never share keys.
func testAccount(host, username string) Account {
	key := func(kind string) []byte { return []byte(kind + ":" + username + "@" + host) }
	return Account{
		Host:     host,
		Username: username,
		SHA1: SCRAMKey{
			Salt: key("sha1-salt"), Iterations: 4096,
			StoredKey: key("sha1-stored"), ServerKey: key("sha1-server"),
		},
		SHA256: SCRAMKey{
			Salt: key("sha256-salt"), Iterations: 8192,
			StoredKey: key("sha256-stored"), ServerKey: key("sha256-server"),
		},
		Created: time.Date(2024, 5, 1, 12, 30, 0, 123456789, time.UTC),
	}
}

// mustCreate creates accounts or fails the test.
func mustCreate(t *testing.T, s *Store, as ...Account) {
	t.Helper()
	for _, a := range as {
		if err := s.CreateAccount(t.Context(), a); err != nil {
			t.Fatalf("CreateAccount(%s@%s): %v", a.Username, a.Host, err)
		}
	}
}

// mustGet reads an account or fails the test.
func mustGet(t *testing.T, s *Store, host, username string) Account {
	t.Helper()
	a, err := s.Account(t.Context(), host, username)
	if err != nil {
		t.Fatalf("Account(%q, %q): %v", host, username, err)
	}
	return a
}

func TestAccounts(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, s *Store)
	}{
		{"a created account reads back unchanged", func(t *testing.T, s *Store) {
			want := testAccount("example.com", "alice")
			mustCreate(t, s, want)
			if got := mustGet(t, s, "example.com", "alice"); !reflect.DeepEqual(got, want) {
				t.Errorf("Account() = %+v, want %+v", got, want)
			}
		}},
		{"a created time in another zone reads back as the same instant in UTC", func(t *testing.T, s *Store) {
			a := testAccount("example.com", "alice")
			a.Created = time.Date(2024, 5, 1, 14, 30, 0, 0, time.FixedZone("CEST", 2*3600))
			mustCreate(t, s, a)
			got := mustGet(t, s, "example.com", "alice").Created
			if !got.Equal(a.Created) || got.Location() != time.UTC {
				t.Errorf("Created = %v, want %v in UTC", got, a.Created)
			}
		}},
		{"a zero created time is set to now", func(t *testing.T, s *Store) {
			a := testAccount("example.com", "alice")
			a.Created = time.Time{}
			before := time.Now()
			mustCreate(t, s, a)
			after := time.Now()
			got := mustGet(t, s, "example.com", "alice").Created
			if got.Before(before) || got.After(after) {
				t.Errorf("Created = %v, want between %v and %v", got, before, after)
			}
		}},
		{"empty keys read back as nil", func(t *testing.T, s *Store) {
			want := Account{Host: "example.com", Username: "nokeys", Created: time.Unix(0, 1).UTC()}
			mustCreate(t, s, want)
			if got := mustGet(t, s, "example.com", "nokeys"); !reflect.DeepEqual(got, want) {
				t.Errorf("Account() = %+v, want %+v", got, want)
			}
		}},
		{"creating a taken username fails with ErrExists and keeps the first account", func(t *testing.T, s *Store) {
			first := testAccount("example.com", "alice")
			mustCreate(t, s, first)
			second := testAccount("example.com", "alice")
			second.SHA256.Iterations = 1
			err := s.CreateAccount(t.Context(), second)
			if !errors.Is(err, ErrExists) {
				t.Fatalf("second CreateAccount() = %v, want ErrExists", err)
			}
			if want := "storage: create account alice@example.com: already exists"; err.Error() != want {
				t.Errorf("error = %q, want %q", err, want)
			}
			if got := mustGet(t, s, "example.com", "alice"); !reflect.DeepEqual(got, first) {
				t.Errorf("after duplicate, Account() = %+v, want the first %+v", got, first)
			}
		}},
		{"the same username on two hosts is two accounts", func(t *testing.T, s *Store) {
			a, b := testAccount("example.com", "alice"), testAccount("example.org", "alice")
			mustCreate(t, s, a, b)
			if got := mustGet(t, s, "example.com", "alice"); !reflect.DeepEqual(got, a) {
				t.Errorf("example.com alice = %+v, want %+v", got, a)
			}
			if got := mustGet(t, s, "example.org", "alice"); !reflect.DeepEqual(got, b) {
				t.Errorf("example.org alice = %+v, want %+v", got, b)
			}
			if err := s.DeleteAccount(t.Context(), "example.com", "alice"); err != nil {
				t.Fatalf("DeleteAccount: %v", err)
			}
			if _, err := s.Account(t.Context(), "example.org", "alice"); err != nil {
				t.Errorf("deleting alice@example.com removed alice@example.org: %v", err)
			}
		}},
		{"new credentials replace the old ones and nothing else", func(t *testing.T, s *Store) {
			a := testAccount("example.com", "alice")
			mustCreate(t, s, a, testAccount("example.com", "bob"))
			fresh := testAccount("example.com", "alice-new")
			if err := s.SetCredentials(t.Context(), "example.com", "alice", fresh.SHA1, fresh.SHA256); err != nil {
				t.Fatalf("SetCredentials: %v", err)
			}
			want := a
			want.SHA1, want.SHA256 = fresh.SHA1, fresh.SHA256
			if got := mustGet(t, s, "example.com", "alice"); !reflect.DeepEqual(got, want) {
				t.Errorf("Account() = %+v, want %+v", got, want)
			}
			if got, want := mustGet(t, s, "example.com", "bob"), testAccount("example.com", "bob"); !reflect.DeepEqual(got, want) {
				t.Errorf("bob changed: %+v, want %+v", got, want)
			}
		}},
		{"a deleted account is gone and can be made again", func(t *testing.T, s *Store) {
			mustCreate(t, s, testAccount("example.com", "alice"))
			if err := s.DeleteAccount(t.Context(), "example.com", "alice"); err != nil {
				t.Fatalf("DeleteAccount: %v", err)
			}
			if _, err := s.Account(t.Context(), "example.com", "alice"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Account() after delete = %v, want ErrNotFound", err)
			}
			mustCreate(t, s, testAccount("example.com", "alice"))
		}},
		{"accounts are listed per host or for all hosts, by host then username", func(t *testing.T, s *Store) {
			mustCreate(t, s,
				testAccount("example.org", "zoe"),
				testAccount("example.com", "bob"),
				testAccount("example.org", "alice"),
				testAccount("example.com", "alice"),
			)
			for _, c := range []struct {
				host string
				want []string
			}{
				{"", []string{"alice@example.com", "bob@example.com", "alice@example.org", "zoe@example.org"}},
				{"example.com", []string{"alice@example.com", "bob@example.com"}},
				{"example.org", []string{"alice@example.org", "zoe@example.org"}},
				{"example.net", nil},
			} {
				as, err := s.Accounts(t.Context(), c.host)
				if err != nil {
					t.Fatalf("Accounts(%q): %v", c.host, err)
				}
				var got []string
				for _, a := range as {
					if !reflect.DeepEqual(a, testAccount(a.Host, a.Username)) {
						t.Errorf("Accounts(%q) holds %+v, want %+v", c.host, a, testAccount(a.Host, a.Username))
					}
					got = append(got, a.Username+"@"+a.Host)
				}
				if !reflect.DeepEqual(got, c.want) {
					t.Errorf("Accounts(%q) = %q, want %q", c.host, got, c.want)
				}
			}
		}},
	}
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

func TestAccountErrors(t *testing.T) {
	ctx := context.Background()
	noKey := SCRAMKey{}
	tests := []struct {
		name    string
		op      func(s *Store) error
		wantIs  error
		wantMsg string
	}{
		{
			"reading a missing account is ErrNotFound",
			func(s *Store) error { _, err := s.Account(ctx, "example.com", "nobody"); return err },
			ErrNotFound, "storage: account nobody@example.com: not found",
		},
		{
			"reading an account of another host is ErrNotFound",
			func(s *Store) error { _, err := s.Account(ctx, "example.org", "alice"); return err },
			ErrNotFound, "storage: account alice@example.org: not found",
		},
		{
			"setting credentials of a missing account is ErrNotFound",
			func(s *Store) error { return s.SetCredentials(ctx, "example.com", "nobody", noKey, noKey) },
			ErrNotFound, "storage: set credentials of nobody@example.com: not found",
		},
		{
			"deleting a missing account is ErrNotFound",
			func(s *Store) error { return s.DeleteAccount(ctx, "example.com", "nobody") },
			ErrNotFound, "storage: delete account nobody@example.com: not found",
		},
		{
			"creating an account without a username is refused",
			func(s *Store) error { return s.CreateAccount(ctx, Account{Host: "example.com"}) },
			nil, "storage: create account @example.com: empty username",
		},
		{
			"creating an account without a host is refused",
			func(s *Store) error { return s.CreateAccount(ctx, Account{Username: "alice"}) },
			nil, "storage: create account alice@: empty host",
		},
		{
			"a cancelled context fails the call",
			func(s *Store) error {
				ctx, cancel := context.WithCancel(ctx)
				cancel()
				_, err := s.Account(ctx, "example.com", "alice")
				return err
			},
			context.Canceled, "",
		},
	}
	s := openStore(t, filepath.Join(t.TempDir(), "parley.db"))
	mustCreate(t, s, testAccount("example.com", "alice"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op(s)
			if err == nil {
				t.Fatal("got no error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q is not %v", err, tt.wantIs)
			}
			if tt.wantIs != ErrNotFound && errors.Is(err, ErrNotFound) {
				t.Errorf("error %q is ErrNotFound", err)
			}
			if tt.wantMsg != "" && err.Error() != tt.wantMsg {
				t.Errorf("error = %q, want %q", err, tt.wantMsg)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"a file database keeps its accounts across a reopen", func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "parley.db")
			s, err := Open(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			mustCreate(t, s, testAccount("example.com", "alice"))
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openStore(t, path)
			if got, want := mustGet(t, s, "example.com", "alice"), testAccount("example.com", "alice"); !reflect.DeepEqual(got, want) {
				t.Errorf("after reopen, Account() = %+v, want %+v", got, want)
			}
			if got := schemaVersion(t, s.db); got != len(migrations) {
				t.Errorf("schema version = %d, want %d", got, len(migrations))
			}
		}},
		{"a missing parent directory is created and the file is private", func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "data", "sub", "parley.db")
			s := openStore(t, path)
			mustCreate(t, s, testAccount("example.com", "alice"))
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm != 0o600 {
				t.Errorf("database file mode = %v, want 0600", perm)
			}
		}},
		{"a file database runs in WAL mode with foreign keys on", func(t *testing.T) {
			s := openStore(t, filepath.Join(t.TempDir(), "parley.db"))
			checkPragmas(t, s.db, map[string]string{"journal_mode": "wal", "foreign_keys": "1", "busy_timeout": "5000"})
		}},
		{"an in-memory database has foreign keys on", func(t *testing.T) {
			s := openStore(t, Memory)
			checkPragmas(t, s.db, map[string]string{"foreign_keys": "1", "busy_timeout": "5000"})
		}},
		{"a path with URI characters in it is a plain file name", func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "odd ?name#%20.db")
			s := openStore(t, path)
			mustCreate(t, s, testAccount("example.com", "alice"))
			if _, err := os.Stat(path); err != nil {
				t.Errorf("database not at %q: %v", path, err)
			}
		}},
		{"two in-memory stores do not share data", func(t *testing.T) {
			a, b := openStore(t, Memory), openStore(t, Memory)
			mustCreate(t, a, testAccount("example.com", "alice"))
			if _, err := b.Account(t.Context(), "example.com", "alice"); !errors.Is(err, ErrNotFound) {
				t.Errorf("second in-memory store sees the first one's account: %v", err)
			}
			mustCreate(t, b, testAccount("example.com", "alice"))
		}},
		{"a database newer than the code is refused", func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "parley.db")
			s := openStore(t, path)
			if _, err := s.db.Exec(fmt.Sprintf("PRAGMA user_version = %d", len(migrations)+1)); err != nil {
				t.Fatal(err)
			}
			s2, err := Open(t.Context(), path)
			if err == nil {
				s2.Close()
				t.Fatal("Open succeeded on a newer schema")
			}
			if !strings.Contains(err.Error(), "newer than this Parley knows") || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file and say the schema is newer", err)
			}
		}},
		{"an empty path is refused", func(t *testing.T) {
			if s, err := Open(t.Context(), ""); err == nil {
				s.Close()
				t.Fatal("Open(\"\") succeeded")
			}
		}},
		{"a file that is not SQLite is refused", func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "parley.db")
			if err := os.WriteFile(path, []byte(strings.Repeat("not a database\n", 100)), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(t.Context(), path)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded on a text file")
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

// schemaVersion returns the PRAGMA user_version of db.
func schemaVersion(t *testing.T, db *sql.DB) int {
	t.Helper()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// checkPragmas fails the test when a PRAGMA of db differs from want.
func checkPragmas(t *testing.T, db *sql.DB, want map[string]string) {
	t.Helper()
	for name, w := range want {
		var got string
		if err := db.QueryRow("PRAGMA " + name).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", name, err)
		}
		if got != w {
			t.Errorf("PRAGMA %s = %q, want %q", name, got, w)
		}
	}
}

func TestMigrate(t *testing.T) {
	// countingSteps returns n steps that each create a table tN and count
	// their runs in runs.
	countingSteps := func(n int, runs []int) []migration {
		var steps []migration
		for i := range n {
			create := execSQL(fmt.Sprintf("CREATE TABLE t%d (x INTEGER)", i))
			steps = append(steps, migration{name: fmt.Sprintf("t%d", i), up: func(ctx context.Context, tx *sql.Tx) error {
				runs[i]++
				return create(ctx, tx)
			}})
		}
		return steps
	}
	tests := []struct {
		name string
		run  func(t *testing.T, db *sql.DB)
	}{
		{"each step runs once however often the database is migrated", func(t *testing.T, db *sql.DB) {
			runs := make([]int, 3)
			for range 3 {
				if err := migrate(t.Context(), db, countingSteps(3, runs)); err != nil {
					t.Fatal(err)
				}
			}
			if want := []int{1, 1, 1}; !reflect.DeepEqual(runs, want) {
				t.Errorf("runs per step = %v, want %v", runs, want)
			}
			if v := schemaVersion(t, db); v != 3 {
				t.Errorf("schema version = %d, want 3", v)
			}
		}},
		{"an appended step runs alone on an existing database", func(t *testing.T, db *sql.DB) {
			runs := make([]int, 3)
			if err := migrate(t.Context(), db, countingSteps(2, runs)); err != nil {
				t.Fatal(err)
			}
			if err := migrate(t.Context(), db, countingSteps(3, runs)); err != nil {
				t.Fatal(err)
			}
			if want := []int{1, 1, 1}; !reflect.DeepEqual(runs, want) {
				t.Errorf("runs per step = %v, want %v", runs, want)
			}
		}},
		{"a failing step is rolled back and leaves the earlier steps applied", func(t *testing.T, db *sql.DB) {
			runs := make([]int, 2)
			steps := countingSteps(2, runs)
			steps = append(steps, migration{name: "broken", up: func(ctx context.Context, tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, "CREATE TABLE half (x INTEGER)"); err != nil {
					return err
				}
				_, err := tx.ExecContext(ctx, "THIS IS NOT SQL")
				return err
			}})
			err := migrate(t.Context(), db, steps)
			if err == nil || !strings.Contains(err.Error(), "migrate to version 3 (broken)") {
				t.Fatalf("migrate() = %v, want an error naming step 3 (broken)", err)
			}
			if v := schemaVersion(t, db); v != 2 {
				t.Errorf("schema version = %d, want 2", v)
			}
			var n int
			if err := db.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name = 'half'").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Error("the failed step's table exists: the step was not rolled back")
			}
		}},
		{"the released steps apply to an empty database", func(t *testing.T, db *sql.DB) {
			if err := migrate(t.Context(), db, migrations); err != nil {
				t.Fatal(err)
			}
			if v := schemaVersion(t, db); v != len(migrations) {
				t.Errorf("schema version = %d, want %d", v, len(migrations))
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := openDB(filepath.Join(t.TempDir(), "migrate.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			tt.run(t, db)
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	const (
		workers = 16
		each    = 20
	)
	for _, b := range backends {
		t.Run(b.name+" store serves many goroutines at once", func(t *testing.T) {
			s := openStore(t, b.path(t))
			ctx := t.Context()
			var (
				wg      sync.WaitGroup
				mu      sync.Mutex
				created int // of the account every worker races to create
				errs    []error
			)
			fail := func(err error) {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			for w := range workers {
				wg.Go(func() {
					switch err := s.CreateAccount(ctx, testAccount("example.com", "contested")); {
					case err == nil:
						mu.Lock()
						created++
						mu.Unlock()
					case !errors.Is(err, ErrExists):
						fail(err)
					}
					for i := range each {
						host := fmt.Sprintf("host%d.example", w%3)
						user := fmt.Sprintf("user-%d-%d", w, i)
						if err := s.CreateAccount(ctx, testAccount(host, user)); err != nil {
							fail(err)
							continue
						}
						got, err := s.Account(ctx, host, user)
						if err != nil {
							fail(err)
						} else if !reflect.DeepEqual(got, testAccount(host, user)) {
							fail(fmt.Errorf("%s@%s read back as %+v", user, host, got))
						}
						if i%5 == 0 {
							if _, err := s.Accounts(ctx, host); err != nil {
								fail(err)
							}
							k := testAccount(host, user+"-new")
							if err := s.SetCredentials(ctx, host, user, k.SHA1, k.SHA256); err != nil {
								fail(err)
							}
						}
					}
				})
			}
			wg.Wait()
			for _, err := range errs {
				t.Error(err)
			}
			if created != 1 {
				t.Errorf("the contested account was created %d times, want 1", created)
			}
			all, err := s.Accounts(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			if want := workers*each + 1; len(all) != want {
				t.Errorf("Accounts(\"\") has %d accounts, want %d", len(all), want)
			}
		})
	}
}

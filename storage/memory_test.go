package storage

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// schemaRows returns the rows of db's sqlite_schema, one string each,
// ordered by type and name.
func schemaRows(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT type || ' ' || name || ' ON ' || tbl_name || ': ' || coalesce(sql, '')
		FROM sqlite_schema ORDER BY type, name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got, err := scanStrings(rows)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// pragmas returns the values of the PRAGMAs names of db.
func pragmas(t *testing.T, db *sql.DB, names ...string) map[string]string {
	t.Helper()
	m := make(map[string]string)
	for _, name := range names {
		var v string
		if err := db.QueryRow("PRAGMA " + name).Scan(&v); err != nil {
			t.Fatalf("PRAGMA %s: %v", name, err)
		}
		m[name] = v
	}
	return m
}

// openMigratedDB opens and migrates path without the snapshot and closes
// the database when the test ends.
func openMigratedDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := openMigrated(t.Context(), path)
	if err != nil {
		t.Fatalf("openMigrated(%q): %v", path, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openSnapshotStore opens an in-memory Store after another one, so that
// it is not the Open that made the snapshot, and fails the test if it was
// not loaded from the snapshot.
func openSnapshotStore(t *testing.T) *Store {
	t.Helper()
	openStore(t, Memory)
	s := openStore(t, Memory)
	if !s.fromSnapshot {
		_, err := migratedSnapshot()
		t.Fatalf("the in-memory store was migrated, not loaded from the snapshot (snapshot error: %v)", err)
	}
	return s
}

func TestMemorySnapshot(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"every in-memory store is loaded from the snapshot", func(t *testing.T) {
			if _, err := migratedSnapshot(); err != nil {
				t.Fatalf("migratedSnapshot: %v", err)
			}
			// The memory backend of the other tests is then a snapshot
			// store, so they run against one too.
			for i := range 3 {
				if s := openStore(t, Memory); !s.fromSnapshot {
					t.Errorf("in-memory store %d was migrated, not loaded from the snapshot", i)
				}
			}
			if s := openStore(t, filepath.Join(t.TempDir(), "parley.db")); s.fromSnapshot {
				t.Error("a file store says it was loaded from the snapshot")
			}
		}},
		{"a store from the snapshot has the schema, version and settings of a migrated one", func(t *testing.T) {
			s := openSnapshotStore(t)
			got := schemaRows(t, s.db)
			for _, want := range []struct {
				name string
				db   *sql.DB
			}{
				{"migrated in-memory database", openMigratedDB(t, Memory)},
				{"migrated file database", openMigratedDB(t, filepath.Join(t.TempDir(), "parley.db"))},
			} {
				if w := schemaRows(t, want.db); !reflect.DeepEqual(got, w) {
					t.Errorf("schema of the snapshot store:\n%s\nschema of a %s:\n%s", strings.Join(got, "\n"), want.name, strings.Join(w, "\n"))
				}
			}
			for _, kind := range []string{"table", "index"} {
				if !strings.Contains(strings.Join(got, "\n"), kind+" ") {
					t.Errorf("the schema has no %s: %q", kind, got)
				}
			}
			if v := schemaVersion(t, s.db); v != len(migrations) {
				t.Errorf("schema version = %d, want %d", v, len(migrations))
			}
			// Settings of the database (stored in it) and of the
			// connection (set when it opens) are those of a plain
			// in-memory database.
			names := []string{"user_version", "page_size", "auto_vacuum", "encoding", "application_id",
				"journal_mode", "foreign_keys", "busy_timeout", "synchronous"}
			if got, want := pragmas(t, s.db, names...), pragmas(t, openMigratedDB(t, Memory), names...); !reflect.DeepEqual(got, want) {
				t.Errorf("PRAGMAs of the snapshot store = %v, of a migrated in-memory database %v", got, want)
			}
			checkPragmas(t, s.db, map[string]string{"journal_mode": "memory", "foreign_keys": "1", "busy_timeout": "5000"})
			var integrity string
			if err := s.db.QueryRow("PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
				t.Errorf("integrity_check = %q, %v", integrity, err)
			}
		}},
		{"two stores from the snapshot do not share data", func(t *testing.T) {
			a := openSnapshotStore(t)
			b := openSnapshotStore(t)
			mustCreate(t, a, testAccount(testHost, "alice"))
			fillUserData(t, a, testHost, "alice")
			if _, err := b.Account(t.Context(), testHost, "alice"); !errors.Is(err, ErrNotFound) {
				t.Errorf("the second store sees the first one's account: %v", err)
			}
			for _, table := range userTables(t, b) {
				var n int
				if err := b.db.QueryRow(fmt.Sprintf(`SELECT count(*) FROM %q`, table)).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != 0 {
					t.Errorf("%s of the second store has %d rows written to the first", table, n)
				}
			}
			mustCreate(t, b, testAccount(testHost, "bob"))
			if _, err := a.Account(t.Context(), testHost, "bob"); !errors.Is(err, ErrNotFound) {
				t.Errorf("the first store sees the second one's account: %v", err)
			}
		}},
		{"stores opened in parallel from the snapshot each get their own database", func(t *testing.T) {
			const n = 8
			stores := make([]*Store, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					s, err := Open(t.Context(), Memory)
					if err != nil {
						errs[i] = err
						return
					}
					stores[i] = s
					// The same account in each: none may see another's.
					if err := s.CreateAccount(t.Context(), testAccount(testHost, "alice")); err != nil {
						errs[i] = err
						return
					}
					errs[i] = s.CreateAccount(t.Context(), testAccount(testHost, fmt.Sprintf("user%d", i)))
				})
			}
			wg.Wait()
			for i, s := range stores {
				if s != nil {
					t.Cleanup(func() { s.Close() })
				}
				if errs[i] != nil {
					t.Fatalf("store %d: %v", i, errs[i])
				}
			}
			for i, s := range stores {
				as, err := s.Accounts(t.Context(), "")
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, a := range as {
					got = append(got, a.Username)
				}
				if want := []string{"alice", fmt.Sprintf("user%d", i)}; !reflect.DeepEqual(got, want) {
					t.Errorf("store %d has accounts %q, want %q", i, got, want)
				}
				if !s.fromSnapshot {
					t.Errorf("store %d was migrated, not loaded from the snapshot", i)
				}
			}
		}},
		{"a store from the snapshot enforces foreign keys", func(t *testing.T) {
			s := openSnapshotStore(t)
			_, err := s.db.Exec(`INSERT INTO roster_version (host, username, ver) VALUES (?, ?, 1)`, testHost, "nobody")
			if err == nil || !strings.Contains(err.Error(), "FOREIGN KEY") {
				t.Errorf("a roster version of no account: error %v, want a FOREIGN KEY constraint failure", err)
			}
			withUsers(t, s)
			fillUserData(t, s, testHost, "alice")
			fillUserData(t, s, testHost, "bob")
			if err := s.DeleteAccount(t.Context(), testHost, "alice"); err != nil {
				t.Fatal(err)
			}
			for _, table := range userTables(t, s) {
				var alice, bob int
				if err := s.db.QueryRow(fmt.Sprintf(`SELECT count(*) FILTER (WHERE username = 'alice'), count(*) FILTER (WHERE username = 'bob')
					FROM %q WHERE host = ?`, table), testHost).Scan(&alice, &bob); err != nil {
					t.Fatal(err)
				}
				if alice != 0 {
					t.Errorf("%s keeps %d rows of the deleted alice: the delete did not cascade", table, alice)
				}
				if bob == 0 {
					t.Errorf("%s lost bob's rows", table)
				}
			}
		}},
		{"loading a copy leaves the snapshot unchanged", func(t *testing.T) {
			snap, err := migratedSnapshot()
			if err != nil {
				t.Fatal(err)
			}
			before := bytes.Clone(snap)
			s := openSnapshotStore(t)
			withUsers(t, s)
			fillUserData(t, s, testHost, "alice")
			if !bytes.Equal(snap, before) {
				t.Error("writing to a store changed the snapshot it was loaded from")
			}
		}},
		{"a snapshot that is not a database falls back to the migrations", func(t *testing.T) {
			garbage := func() ([]byte, error) { return bytes.Repeat([]byte("not a database "), 300), nil }
			db, fromSnapshot, err := openMemory(t.Context(), garbage)
			if err != nil {
				t.Fatalf("openMemory: %v", err)
			}
			defer db.Close()
			if fromSnapshot {
				t.Error("openMemory says it loaded a snapshot that is not a database")
			}
			if got, want := schemaRows(t, db), schemaRows(t, openMigratedDB(t, Memory)); !reflect.DeepEqual(got, want) {
				t.Errorf("schema after the fallback = %q, want %q", got, want)
			}
			checkPragmas(t, db, map[string]string{"user_version": fmt.Sprint(len(migrations)), "foreign_keys": "1"})
		}},
		{"no snapshot falls back to the migrations", func(t *testing.T) {
			none := func() ([]byte, error) { return nil, errors.New("no snapshot for this test") }
			db, fromSnapshot, err := openMemory(t.Context(), none)
			if err != nil {
				t.Fatalf("openMemory: %v", err)
			}
			defer db.Close()
			if fromSnapshot {
				t.Error("openMemory says it loaded a snapshot it did not have")
			}
			checkPragmas(t, db, map[string]string{"user_version": fmt.Sprint(len(migrations)), "foreign_keys": "1"})
		}},
		{"a cancelled context fails the open", func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			s, err := Open(ctx, Memory)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded with a cancelled context")
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("error %q is not context.Canceled", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

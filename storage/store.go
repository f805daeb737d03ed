package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// ErrNotFound is wrapped by the errors of lookups, updates and deletions
// whose record does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is wrapped by the errors of creations whose record already
// exists.
var ErrExists = errors.New("already exists")

// Memory is the path that [Open] takes to mean an ephemeral database that
// lives in memory and is gone when the Store is closed.
const Memory = ":memory:"

// busyTimeoutMillis is how long a connection waits for another connection's
// write lock before it gives up with SQLITE_BUSY.
const busyTimeoutMillis = 5000

// Store is an open Parley database. It is safe for concurrent use by many
// goroutines.
type Store struct {
	db   *sql.DB
	path string
	// fromSnapshot says that the database of an in-memory Store was
	// loaded from the snapshot of the migrated schema (see openMemory).
	fromSnapshot bool

	// tombstonesKept is how many roster tombstones a user keeps for
	// RosterSince; Open sets it to rosterTombstonesKept, tests lower it.
	tombstonesKept int

	// archive groups AppendArchive's commits (archive.go).
	archive archiveWriter
}

// Open opens the SQLite database at path, creating the file and its parent
// directory (mode 0700, the file 0600: it holds SCRAM keys) when they are
// missing, and brings its schema up to date. The path [Memory] (":memory:")
// opens an ephemeral database private to the returned Store. It starts as
// a copy of an empty database that the first such Open of the process
// migrates, which is much cheaper than migrating each one, and it can grow
// to 1 GiB.
//
// A file database runs in WAL mode, so readers do not wait for the writer,
// with foreign keys enforced and a busy timeout of five seconds. Opening a
// database whose schema is newer than this code knows is an error: the data
// was written by a newer Parley.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("storage: open: empty path (use a file name, or \":memory:\" for an ephemeral database)")
	}
	var (
		db           *sql.DB
		fromSnapshot bool
		err          error
	)
	if path == Memory {
		db, fromSnapshot, err = openMemory(ctx, migratedSnapshot)
	} else {
		db, err = openMigrated(ctx, path)
	}
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	return &Store{db: db, path: path, fromSnapshot: fromSnapshot, tombstonesKept: rosterTombstonesKept}, nil
}

// openMigrated opens path with openDB, connects and brings the schema up
// to date by running the migrations.
func openMigrated(ctx context.Context, path string) (*sql.DB, error) {
	db, err := openDB(path)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := migrate(ctx, db, migrations); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// openDB returns a pool for path with the connection settings of Open.
func openDB(path string) (*sql.DB, error) {
	// Every connection runs these; _txlock=immediate makes a read-write
	// transaction take the write lock when it begins, so two transactions
	// that both read and then write wait for each other under the busy
	// timeout instead of one failing with SQLITE_BUSY on its first write.
	q := []string{
		fmt.Sprintf("_busy_timeout=%d", busyTimeoutMillis),
		"_foreign_keys=1",
		"_txlock=immediate",
		"_dqs=0",
		// Statement journals (SQLite's undo of one statement inside a
		// transaction, for every insert under a foreign key or a unique
		// index) and temporary indexes in memory, not in files: an
		// archive batch of 1,000 inserts wrote its statement journal
		// with a syscall per page, 80 % of the archive writer's CPU.
		"_pragma=temp_store(memory)",
		"_pragma=cache_size(-16384)",
	}
	if path == Memory {
		db, err := sql.Open("sqlite", Memory+"?"+strings.Join(q, "&"))
		if err != nil {
			return nil, err
		}
		// Each connection to ":memory:" is its own empty database: keep
		// exactly one, forever. Shared-cache memory databases would allow
		// more, but they lock per table and fail with SQLITE_LOCKED
		// instead of waiting, which the busy timeout does not cover.
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
		return db, nil
	}

	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("create directory: %w", err)
	}
	// SQLite creates the file with the process umask and gives the -wal
	// and -shm files the mode of the database file, so creating it first
	// keeps all three private.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}

	q = append(q, "_journal_mode=WAL", "_synchronous=FULL")
	// A file: URI, so a path holding '?' or '#' is escaped, not cut.
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: strings.Join(q, "&")}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, err
	}
	// WAL lets readers run beside the one writer; writers queue on the
	// database lock. A few connections per CPU is enough for both.
	n := max(4, 2*runtime.GOMAXPROCS(0))
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	return db, nil
}

// Close closes the database. Calls made after Close return errors.
func (s *Store) Close() error {
	s.archive.stop()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("storage: close %s: %w", s.path, err)
	}
	return nil
}

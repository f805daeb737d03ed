package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// An in-memory Store does not run the migrations: parsing and executing
// their CREATE statements is most of the cost of opening one, which test
// servers do hundreds of times per run (and many times slower under the
// race detector, since the SQLite driver is Go transpiled from C). Instead
// the first in-memory Open of the process migrates a throwaway in-memory
// database and keeps its serialization, and every in-memory Open loads a
// copy of those bytes into its own connection with sqlite3_deserialize.
//
// The copy is private to the connection that loads it: stores stay as
// independent as when each ran the migrations. Settings of the connection
// (foreign keys, busy timeout, double-quoted strings) are kept, since
// deserializing replaces the database, not the connection; the journal mode
// of a deserialized database is "memory", as for ":memory:". One difference
// remains: SQLite keeps a deserialized database in one buffer that may grow
// to 1 GiB (SQLITE_MEMDB_DEFAULT_MAXSIZE), past which writes fail with
// SQLITE_FULL, where a plain ":memory:" database has no such limit.

// snapshotOnce guards the building of the snapshot of an empty migrated
// database; snapshot and snapshotErr are its result.
var (
	snapshotOnce sync.Once
	snapshot     []byte
	snapshotErr  error
)

// migratedSnapshot returns the serialization of an empty in-memory
// database with every migration applied, building it on the first call.
// The bytes are shared: callers must not modify them. A failure is kept
// too, so a process whose driver cannot serialize tries once.
func migratedSnapshot() ([]byte, error) {
	snapshotOnce.Do(func() {
		// Not the caller's context: the result is kept for the whole
		// process, and a cancelled first Open must not spoil it.
		snapshot, snapshotErr = buildSnapshot(context.Background())
		if snapshotErr != nil {
			slog.Warn("storage: no snapshot of the in-memory schema; each in-memory store runs the migrations", "err", snapshotErr)
		}
	})
	return snapshot, snapshotErr
}

// buildSnapshot migrates a throwaway in-memory database and returns its
// serialization.
func buildSnapshot(ctx context.Context) ([]byte, error) {
	db, err := openMigrated(ctx, Memory)
	if err != nil {
		return nil, fmt.Errorf("snapshot of the in-memory schema: %w", err)
	}
	defer db.Close()
	var data []byte
	err = rawConn(ctx, db, func(dc any) error {
		s, ok := dc.(interface{ Serialize() ([]byte, error) })
		if !ok {
			return fmt.Errorf("driver connection %T cannot serialize", dc)
		}
		var err error
		data, err = s.Serialize()
		return err
	})
	if err == nil && len(data) == 0 {
		err = errors.New("empty serialization")
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot of the in-memory schema: serialize: %w", err)
	}
	return data, nil
}

// openMemory returns the pool of a new in-memory database whose schema is
// up to date, loaded from the serialization that snapshot returns. When
// there is none or it cannot be loaded, the new database is migrated like
// a file instead, and the error is logged, not returned, if that works.
// fromSnapshot reports which way it went.
func openMemory(ctx context.Context, snapshot func() ([]byte, error)) (db *sql.DB, fromSnapshot bool, err error) {
	data, err := snapshot()
	if err == nil {
		db, err = openFromSnapshot(ctx, data)
		if err == nil {
			return db, true, nil
		}
		if ctx.Err() != nil {
			return nil, false, err
		}
		slog.Warn("storage: cannot load the snapshot of the in-memory schema; running the migrations", "err", err)
	}
	db, err = openMigrated(ctx, Memory)
	return db, false, err
}

// openFromSnapshot opens an in-memory database, replaces it with a copy of
// data and checks its schema version, applying any migration it lacks.
func openFromSnapshot(ctx context.Context, data []byte) (*sql.DB, error) {
	db, err := openDB(Memory)
	if err != nil {
		return nil, err
	}
	// openDB keeps exactly one connection to a memory database for the
	// life of the pool, so the one loaded here is the one every later
	// query of the Store runs on.
	err = rawConn(ctx, db, func(dc any) error {
		d, ok := dc.(interface{ Deserialize([]byte) error })
		if !ok {
			return fmt.Errorf("driver connection %T cannot deserialize", dc)
		}
		// Deserialize copies data into memory of SQLite's own.
		return d.Deserialize(data)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("load snapshot: %w", err)
	}
	// Reading the version is also the first read of the copy, which
	// finds out whether it is a database at all.
	if err := migrate(ctx, db, migrations); err != nil {
		db.Close()
		return nil, fmt.Errorf("load snapshot: %w", err)
	}
	return db, nil
}

// rawConn runs f on the driver connection of a connection taken from db
// and then returns the connection to the pool.
func rawConn(ctx context.Context, db *sql.DB, f func(driverConn any) error) error {
	c, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	err = c.Raw(f)
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	return err
}

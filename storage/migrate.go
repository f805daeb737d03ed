package storage

import (
	"context"
	"database/sql"
	"fmt"
)

// A migration is one step of the schema. Step i (from 0) brings the schema
// from version i to version i+1; the version is kept in PRAGMA user_version.
// Each step runs in its own transaction together with the version bump, so
// it is applied completely or not at all.
type migration struct {
	name string
	up   func(ctx context.Context, tx *sql.Tx) error
}

// migrations is the schema, oldest step first. To change the schema append
// a step; never edit or reorder one that has been released, since databases
// in the field have already applied it.
var migrations = []migration{
	{name: "accounts", up: execSQL(`
CREATE TABLE accounts (
	host             TEXT    NOT NULL CHECK (host <> ''),
	username         TEXT    NOT NULL CHECK (username <> ''),
	sha1_salt        BLOB    NOT NULL,
	sha1_iterations  INTEGER NOT NULL CHECK (sha1_iterations >= 0),
	sha1_stored_key  BLOB    NOT NULL,
	sha1_server_key  BLOB    NOT NULL,
	sha256_salt       BLOB    NOT NULL,
	sha256_iterations INTEGER NOT NULL CHECK (sha256_iterations >= 0),
	sha256_stored_key BLOB    NOT NULL,
	sha256_server_key BLOB    NOT NULL,
	created          INTEGER NOT NULL, -- Unix time in nanoseconds
	PRIMARY KEY (host, username)
) WITHOUT ROWID;
`)},
}

// execSQL returns a migration step that executes stmts, which may hold
// several statements separated by semicolons.
func execSQL(stmts string) func(context.Context, *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, stmts)
		return err
	}
}

// migrate applies the steps of steps that db has not applied yet, one
// transaction per step. Each transaction takes the write lock before it
// reads the version, so two processes opening the same file at once apply
// each step once.
func migrate(ctx context.Context, db *sql.DB, steps []migration) error {
	for {
		done, err := migrateOne(ctx, db, steps)
		if err != nil || done {
			return err
		}
	}
}

// migrateOne applies the next step that db lacks and reports whether the
// schema was already up to date.
func migrateOne(ctx context.Context, db *sql.DB, steps []migration) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("migrate: %w", err)
	}
	defer func() {
		if err != nil || done {
			tx.Rollback()
		}
	}()

	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return false, fmt.Errorf("migrate: read schema version: %w", err)
	}
	switch {
	case version > len(steps):
		return false, fmt.Errorf("migrate: schema version %d is newer than this Parley knows (%d): the database was written by a newer release; upgrade Parley or restore an older backup", version, len(steps))
	case version < 0:
		return false, fmt.Errorf("migrate: schema version %d is negative: this is not a Parley database", version)
	case version == len(steps):
		return true, nil
	}

	step := steps[version]
	if err := step.up(ctx, tx); err != nil {
		return false, fmt.Errorf("migrate to version %d (%s): %w", version+1, step.name, err)
	}
	// PRAGMA takes no bound parameters; version is an int we computed.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", version+1)); err != nil {
		return false, fmt.Errorf("migrate to version %d (%s): set schema version: %w", version+1, step.name, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migrate to version %d (%s): commit: %w", version+1, step.name, err)
	}
	return false, nil
}

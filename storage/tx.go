package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// errNoAccount is what a write of per-user data returns when the user has
// no account: the data would outlive nobody, and a later account of the same
// name would inherit it.
var errNoAccount = fmt.Errorf("no such account: %w", ErrNotFound)

// update runs fn in a read-write transaction and commits it when fn returns
// nil. The transaction takes the write lock when it begins
// (_txlock=immediate), so what fn reads stays true until it commits.
func (s *Store) update(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return noAccount(err)
	}
	return tx.Commit()
}

// view runs fn in a read-only transaction, so the queries fn makes see one
// snapshot of the database. It does not wait for the writer in WAL mode.
func (s *Store) view(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(tx)
}

// noAccount turns the foreign key violation of a write for a user without
// an account into [errNoAccount], and returns other errors unchanged. Every
// table of per-user data refers to accounts (host, username).
func noAccount(err error) error {
	var e *sqlite.Error
	if errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
		return errNoAccount
	}
	return err
}

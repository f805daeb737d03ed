package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrQuota is wrapped by the errors of writes that would take a user beyond
// a limit, such as [Store.StoreOffline] for a user whose offline storage is
// full. The error is a [*QuotaError] when the write tells which limit.
var ErrQuota = errors.New("quota exceeded")

// QuotaError is the error of a write refused by a per-user limit. It
// wraps [ErrQuota].
type QuotaError struct {
	Unit  string // what is counted: "messages" or "bytes"
	Used  int64  // how much the user had
	Limit int64  // the limit the write would pass
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("%d of %d %s kept: %v", e.Used, e.Limit, e.Unit, ErrQuota)
}

// Unwrap returns [ErrQuota].
func (e *QuotaError) Unwrap() error { return ErrQuota }

// OfflineMessage is a stanza kept for a user who was offline when it came
// (XEP-0160).
type OfflineMessage struct {
	Seq    int64     // increases with every message stored for the user; not dense
	Stanza []byte    // the stanza as it was given to StoreOffline
	Stored time.Time // when it was stored, in UTC
}

// OfflineQuota bounds what one user may have waiting in offline storage.
type OfflineQuota struct {
	Messages int   // how many messages; 0 or less stores nothing
	Bytes    int64 // how many bytes of stanzas; 0 or less means no bound in bytes
}

// StoreOffline keeps stanza for user on host until it is delivered, stamped
// with the time now. The error wraps [ErrQuota] (as a [*QuotaError]) when
// the user already has q.Messages messages or more, or when stanza would
// take the user's stanzas beyond q.Bytes; it wraps [ErrNotFound] when user
// has no account on host.
func (s *Store) StoreOffline(ctx context.Context, host, user string, stanza []byte, q OfflineQuota) error {
	err := s.update(ctx, func(tx *sql.Tx) error {
		var n, size int64
		// Both from the index (host, username, seq, size).
		if err := tx.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(size), 0) FROM offline_messages
			WHERE host = ? AND username = ?`, host, user).Scan(&n, &size); err != nil {
			return err
		}
		if n >= int64(q.Messages) {
			return &QuotaError{Unit: "messages", Used: n, Limit: int64(q.Messages)}
		}
		if q.Bytes > 0 && size+int64(len(stanza)) > q.Bytes {
			return &QuotaError{Unit: "bytes", Used: size, Limit: q.Bytes}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO offline_messages (host, username, stanza, stored, size) VALUES (?, ?, ?, ?, ?)`,
			host, user, blob(stanza), time.Now().UnixNano(), len(stanza))
		return err
	})
	if err != nil {
		return fmt.Errorf("storage: store offline message for %s@%s: %w", user, host, err)
	}
	return nil
}

// OfflineMessages returns the offline messages of user on host, oldest
// first. It reads them all at once: delivery takes them a page at a time
// with [Store.TakeOffline].
func (s *Store) OfflineMessages(ctx context.Context, host, user string) ([]OfflineMessage, error) {
	ms, err := queryOffline(ctx, s.db, `SELECT seq, stanza, stored FROM offline_messages
		WHERE host = ? AND username = ? ORDER BY seq`, host, user)
	if err != nil {
		return nil, fmt.Errorf("storage: offline messages of %s@%s: %w", user, host, err)
	}
	return ms, nil
}

// querier is what queryOffline needs: a *sql.DB or a *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryOffline runs a query of (seq, stanza, stored) rows.
func queryOffline(ctx context.Context, q querier, query string, args ...any) ([]OfflineMessage, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ms []OfflineMessage
	for rows.Next() {
		var (
			m      OfflineMessage
			stored int64
		)
		if err := rows.Scan(&m.Seq, &m.Stanza, &stored); err != nil {
			return nil, err
		}
		m.Stored = time.Unix(0, stored).UTC()
		ms = append(ms, m)
	}
	return ms, rows.Err()
}

// TakeOffline removes and returns the oldest offline messages of user on
// host, oldest first: at most maxMessages of them, and no more once their
// stanzas add up to maxBytes, but at least one, however large. It is one
// transaction: two callers never get the same message, and a failed call
// removes nothing. Nil means there are none.
func (s *Store) TakeOffline(ctx context.Context, host, user string, maxMessages int, maxBytes int64) ([]OfflineMessage, error) {
	// Most logins find nothing: a look through the readers first spares
	// them the one writer (every login took its lock for nothing).
	var any bool
	if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM offline_messages WHERE host = ? AND username = ?)`,
		host, user).Scan(&any); err != nil {
		return nil, fmt.Errorf("storage: look for offline messages of %s@%s: %w", user, host, err)
	}
	if !any {
		return nil, nil
	}
	var ms []OfflineMessage
	err := s.update(ctx, func(tx *sql.Tx) error {
		// The page's end, from the index alone.
		rows, err := tx.QueryContext(ctx, `SELECT seq, size FROM offline_messages
			WHERE host = ? AND username = ? ORDER BY seq LIMIT ?`, host, user, max(maxMessages, 1))
		if err != nil {
			return err
		}
		last, total := int64(-1), int64(0)
		for rows.Next() && (last < 0 || total < maxBytes) {
			var size int64
			if err := rows.Scan(&last, &size); err != nil {
				rows.Close()
				return err
			}
			total += size
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if last < 0 {
			return nil
		}
		ms, err = queryOffline(ctx, tx, `SELECT seq, stanza, stored FROM offline_messages
			WHERE host = ? AND username = ? AND seq <= ? ORDER BY seq`, host, user, last)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM offline_messages WHERE host = ? AND username = ? AND seq <= ?`,
			host, user, last)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("storage: take offline messages of %s@%s: %w", user, host, err)
	}
	return ms, nil
}

// RestoreOffline puts back messages that [Store.TakeOffline] returned but
// that were not delivered, with their Seq and Stored time, so that they
// come again in their place among the user's messages. They do not count
// against the quota: they were counted when they came. A message that is
// still there is left as it is. The error wraps [ErrNotFound] when the
// user no longer has an account.
func (s *Store) RestoreOffline(ctx context.Context, host, user string, ms []OfflineMessage) error {
	if len(ms) == 0 {
		return nil
	}
	err := s.update(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO offline_messages (seq, host, username, stanza, stored, size)
			VALUES (?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, m := range ms {
			if _, err := stmt.ExecContext(ctx, m.Seq, host, user, blob(m.Stanza), m.Stored.UnixNano(), len(m.Stanza)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: restore %d offline messages of %s@%s: %w", len(ms), user, host, err)
	}
	return nil
}

// DeleteOffline deletes the offline messages of user on host whose Seq is
// upTo or less, as once they are delivered. Messages stored after the
// caller read them have a greater Seq and stay.
func (s *Store) DeleteOffline(ctx context.Context, host, user string, upTo int64) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM offline_messages WHERE host = ? AND username = ? AND seq <= ?`,
		host, user, upTo); err != nil {
		return fmt.Errorf("storage: delete offline messages of %s@%s up to %d: %w", user, host, upTo, err)
	}
	return nil
}

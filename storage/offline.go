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
// full.
var ErrQuota = errors.New("quota exceeded")

// OfflineMessage is a stanza kept for a user who was offline when it came
// (XEP-0160).
type OfflineMessage struct {
	Seq    int64     // increases with every message stored for the user; not dense
	Stanza []byte    // the stanza as it was given to StoreOffline
	Stored time.Time // when it was stored, in UTC
}

// StoreOffline keeps stanza for user on host until it is delivered, stamped
// with the time now. The error wraps [ErrQuota] when the user already has
// limit messages or more (so a limit of 0 or less stores nothing), and
// [ErrNotFound] when user has no account on host.
func (s *Store) StoreOffline(ctx context.Context, host, user string, stanza []byte, limit int) error {
	err := s.update(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM offline_messages WHERE host = ? AND username = ?`,
			host, user).Scan(&n); err != nil {
			return err
		}
		if n >= limit {
			return fmt.Errorf("%d of %d messages kept: %w", n, limit, ErrQuota)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO offline_messages (host, username, stanza, stored) VALUES (?, ?, ?, ?)`,
			host, user, blob(stanza), time.Now().UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("storage: store offline message for %s@%s: %w", user, host, err)
	}
	return nil
}

// OfflineMessages returns the offline messages of user on host, oldest
// first.
func (s *Store) OfflineMessages(ctx context.Context, host, user string) ([]OfflineMessage, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT seq, stanza, stored FROM offline_messages
		WHERE host = ? AND username = ? ORDER BY seq`, host, user)
	if err != nil {
		return nil, fmt.Errorf("storage: offline messages of %s@%s: %w", user, host, err)
	}
	defer rows.Close()
	var ms []OfflineMessage
	for rows.Next() {
		var (
			m      OfflineMessage
			stored int64
		)
		if err := rows.Scan(&m.Seq, &m.Stanza, &stored); err != nil {
			return nil, fmt.Errorf("storage: offline messages of %s@%s: %w", user, host, err)
		}
		m.Stored = time.Unix(0, stored).UTC()
		ms = append(ms, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: offline messages of %s@%s: %w", user, host, err)
	}
	return ms, nil
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

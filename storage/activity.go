package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SetLastActivity records that the last session of user on host ended at
// at, with the status text status (XEP-0012), replacing the earlier record.
// The error wraps [ErrNotFound] when user has no account on host.
func (s *Store) SetLastActivity(ctx context.Context, host, user string, at time.Time, status string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO last_activity (host, username, at, status) VALUES (?, ?, ?, ?)
		ON CONFLICT (host, username) DO UPDATE SET at = excluded.at, status = excluded.status`,
		host, user, at.UnixNano(), status)
	if err != nil {
		return fmt.Errorf("storage: set last activity of %s@%s: %w", user, host, noAccount(err))
	}
	return nil
}

// LastActivity returns when the last session of user on host ended, in UTC,
// and its status text. The error wraps [ErrNotFound] when none was recorded.
func (s *Store) LastActivity(ctx context.Context, host, user string) (at time.Time, status string, err error) {
	var ns int64
	err = s.db.QueryRowContext(ctx, `SELECT at, status FROM last_activity WHERE host = ? AND username = ?`,
		host, user).Scan(&ns, &status)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return time.Time{}, "", fmt.Errorf("storage: last activity of %s@%s: %w", user, host, err)
	}
	return time.Unix(0, ns).UTC(), status, nil
}

// Activity is a user's last activity (XEP-0012): when the user logged
// out, and the status text of the unavailable presence that said so.
type Activity struct {
	At     time.Time
	Status string
}

// SetLastActivities records, in one transaction, the last activity of
// each user of host (at[user]). Users that have no account (any more) are
// skipped. It is for batches: a thousand sessions that end together cost
// one commit, not a thousand.
func (s *Store) SetLastActivities(ctx context.Context, host string, at map[string]Activity) error {
	if len(at) == 0 {
		return nil
	}
	err := s.update(ctx, func(tx *sql.Tx) error {
		for user, a := range at {
			_, err := tx.ExecContext(ctx, `INSERT INTO last_activity (host, username, at, status)
				SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM accounts WHERE host = ? AND username = ?)
				ON CONFLICT (host, username) DO UPDATE SET at = excluded.at, status = excluded.status`,
				host, user, a.At.UnixNano(), a.Status, host, user)
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: set last activity of %d users of %s: %w", len(at), host, err)
	}
	return nil
}

package storage

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
)

// BlockList returns the JIDs that user on host blocks (XEP-0191), sorted.
func (s *Store) BlockList(ctx context.Context, host, user string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT jid FROM blocklist WHERE host = ? AND username = ? ORDER BY jid`,
		host, user)
	if err != nil {
		return nil, fmt.Errorf("storage: blocklist of %s@%s: %w", user, host, err)
	}
	defer rows.Close()
	jids, err := scanStrings(rows)
	if err != nil {
		return nil, fmt.Errorf("storage: blocklist of %s@%s: %w", user, host, err)
	}
	return jids, nil
}

// Block adds jids (bare, full or domain JIDs, normalized by the caller) to
// the blocklist of user on host, all or none of them. Blocking a JID that is
// blocked already is not an error. The error wraps [ErrNotFound] when user
// has no account on host.
func (s *Store) Block(ctx context.Context, host, user string, jids []string) error {
	if slices.Contains(jids, "") {
		return fmt.Errorf("storage: block for %s@%s: empty JID", user, host)
	}
	err := s.update(ctx, func(tx *sql.Tx) error {
		for _, jid := range jids {
			if _, err := tx.ExecContext(ctx, `INSERT INTO blocklist (host, username, jid) VALUES (?, ?, ?)
				ON CONFLICT (host, username, jid) DO NOTHING`, host, user, jid); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: block for %s@%s: %w", user, host, err)
	}
	return nil
}

// Unblock removes jids from the blocklist of user on host, or empties it
// when jids is empty. Unblocking a JID that is not blocked is not an error.
func (s *Store) Unblock(ctx context.Context, host, user string, jids []string) error {
	err := s.update(ctx, func(tx *sql.Tx) error {
		if len(jids) == 0 {
			_, err := tx.ExecContext(ctx, `DELETE FROM blocklist WHERE host = ? AND username = ?`, host, user)
			return err
		}
		for _, jid := range jids {
			if _, err := tx.ExecContext(ctx, `DELETE FROM blocklist WHERE host = ? AND username = ? AND jid = ?`,
				host, user, jid); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: unblock for %s@%s: %w", user, host, err)
	}
	return nil
}

package storage

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// SMCount is the inbound count of a resumable stream-management session
// (XEP-0198) that ended: what a client that tries to resume it later is
// told reached the server.
type SMCount struct {
	// User is the session's account, user@host.
	User string
	// ID is the session's resumption id.
	ID string
	// H is how many stanzas the server had from the client, mod 2^32.
	H uint32
	// Ended is when the session ended.
	Ended time.Time
}

// SaveSMCounts stores counts in place of any stored before (a shutdown's
// snapshot replaces the last one).
func (s *Store) SaveSMCounts(ctx context.Context, counts []SMCount) error {
	err := s.update(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM sm_counts`); err != nil {
			return err
		}
		ins, err := tx.PrepareContext(ctx, `INSERT OR REPLACE INTO sm_counts (user, id, h, ended) VALUES (?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, c := range counts {
			if _, err := ins.ExecContext(ctx, c.User, c.ID, int64(c.H), c.Ended.UnixMilli()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: save %d stream management counts: %w", len(counts), err)
	}
	return nil
}

// TakeSMCounts returns the stored counts, oldest first, and removes them:
// they are read once, at a start.
func (s *Store) TakeSMCounts(ctx context.Context) ([]SMCount, error) {
	var out []SMCount
	err := s.update(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, `SELECT user, id, h, ended FROM sm_counts ORDER BY ended, user, id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c SMCount
			var h, ended int64
			if err := rows.Scan(&c.User, &c.ID, &h, &ended); err != nil {
				return err
			}
			c.H, c.Ended = uint32(h), time.UnixMilli(ended)
			out = append(out, c)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM sm_counts`)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("storage: take stream management counts: %w", err)
	}
	return out, nil
}

package storage

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"time"
)

// FastToken is a FAST token (XEP-0484) of one account and client, without
// its secret: ID is what the secret is derived from, by a key the
// database does not hold.
type FastToken struct {
	// Mechanism is the one the token was issued for (HT-SHA-256-NONE); it
	// is good for no other (XEP-0484 §2.4).
	Mechanism string
	// ID names the token; random, at least 16 bytes.
	ID []byte
	// Expires is when the token stops being accepted.
	Expires time.Time
	// New is true for a token issued and not used yet.
	New bool
}

// FastTokens returns the tokens of username's client agent on host, the
// new one (if any) first. None is no error.
func (s *Store) FastTokens(ctx context.Context, host, username, agent string) ([]FastToken, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT slot, mechanism, token_id, expires FROM fast_tokens
		WHERE host = ? AND username = ? AND agent = ? ORDER BY slot DESC`, host, username, agent)
	if err != nil {
		return nil, fmt.Errorf("storage: fast tokens of %s@%s: %w", username, host, err)
	}
	defer rows.Close()
	var out []FastToken
	for rows.Next() {
		var t FastToken
		var slot string
		var exp int64
		if err := rows.Scan(&slot, &t.Mechanism, &t.ID, &exp); err != nil {
			return nil, fmt.Errorf("storage: fast tokens of %s@%s: %w", username, host, err)
		}
		t.New = slot == "new"
		t.Expires = time.Unix(exp, 0)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: fast tokens of %s@%s: %w", username, host, err)
	}
	return out, nil
}

// AddFastToken stores t as the client's new token, in place of a new one
// that was never used (XEP-0484 §2.5: issuing a token invalidates the
// unused ones); the token in use stays until t is used. The error wraps
// ErrNotFound when there is no such account.
func (s *Store) AddFastToken(ctx context.Context, host, username, agent string, t FastToken) error {
	_, err := s.db.ExecContext(ctx, `INSERT OR REPLACE INTO fast_tokens
		(host, username, agent, slot, mechanism, token_id, expires) VALUES (?, ?, ?, 'new', ?, ?, ?)`,
		host, username, agent, t.Mechanism, t.ID, t.Expires.Unix())
	if err != nil {
		return fmt.Errorf("storage: add fast token of %s@%s: %w", username, host, noAccount(err))
	}
	return nil
}

// UseFastToken records that the client logged in with the token id: a
// new token becomes the one in use, and the one it replaces (which
// expires earlier) is gone (XEP-0484 §2.5). Using the token in use
// changes nothing.
func (s *Store) UseFastToken(ctx context.Context, host, username, agent string, id []byte) error {
	err := s.update(ctx, func(tx *sql.Tx) error {
		var got []byte
		err := tx.QueryRowContext(ctx, `SELECT token_id FROM fast_tokens
			WHERE host = ? AND username = ? AND agent = ? AND slot = 'new'`, host, username, agent).Scan(&got)
		if err == sql.ErrNoRows || err == nil && !bytes.Equal(got, id) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM fast_tokens
			WHERE host = ? AND username = ? AND agent = ? AND slot = 'cur'`, host, username, agent); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE fast_tokens SET slot = 'cur'
			WHERE host = ? AND username = ? AND agent = ? AND slot = 'new'`, host, username, agent)
		return err
	})
	if err != nil {
		return fmt.Errorf("storage: use fast token of %s@%s: %w", username, host, err)
	}
	return nil
}

// DeleteFastToken removes the client's token id (XEP-0484 §2.6, or an
// expired one); an unknown id is no error.
func (s *Store) DeleteFastToken(ctx context.Context, host, username, agent string, id []byte) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM fast_tokens
		WHERE host = ? AND username = ? AND agent = ? AND token_id = ?`, host, username, agent, id)
	if err != nil {
		return fmt.Errorf("storage: delete fast token of %s@%s: %w", username, host, err)
	}
	return nil
}

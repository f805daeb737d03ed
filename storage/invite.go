package storage

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// CreateInvite records an invitation to register an account on host
// (XEP-0077 with registration = "invite"), good once until expires. Only a
// hash of token is stored, and errors never show the token. The error wraps
// [ErrExists] when host already has an invite with this token, used or not.
func (s *Store) CreateInvite(ctx context.Context, host, token string, expires time.Time) error {
	switch {
	case host == "":
		return fmt.Errorf("storage: create invite on %s: empty host", host)
	case token == "":
		return fmt.Errorf("storage: create invite on %s: empty token", host)
	}
	h := sha256.Sum256([]byte(token))
	res, err := s.db.ExecContext(ctx, `INSERT INTO invites (host, token_hash, expires) VALUES (?, ?, ?)
		ON CONFLICT (host, token_hash) DO NOTHING`, host, h[:], expires.UnixNano())
	if err == nil {
		if n, nerr := res.RowsAffected(); nerr != nil {
			err = nerr
		} else if n == 0 {
			err = ErrExists
		}
	}
	if err != nil {
		return fmt.Errorf("storage: create invite on %s: %w", host, err)
	}
	return nil
}

// InviteValid reports whether host has an invite with token that is unused
// and does not expire at or before now, without using it: a registration
// form can check the token before it asks for a username. The error wraps
// [ErrNotFound] when it has not; only [Store.UseInvite] decides, since the
// invite may be used between the two calls.
func (s *Store) InviteValid(ctx context.Context, host, token string, now time.Time) error {
	h := sha256.Sum256([]byte(token))
	var one int
	err := s.db.QueryRowContext(ctx, `SELECT 1 FROM invites
		WHERE host = ? AND token_hash = ? AND used IS NULL AND expires > ?`,
		host, h[:], now.UnixNano()).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("storage: check invite on %s: %w", host, err)
	}
	return nil
}

// UseInvite marks the invite of host with token as used at now, so it
// cannot be used again: of two calls at once, one succeeds. The error wraps
// [ErrNotFound] when host has no such invite, or it was used already, or it
// expired at or before now.
func (s *Store) UseInvite(ctx context.Context, host, token string, now time.Time) error {
	h := sha256.Sum256([]byte(token))
	res, err := s.db.ExecContext(ctx, `UPDATE invites SET used = ?
		WHERE host = ? AND token_hash = ? AND used IS NULL AND expires > ?`,
		now.UnixNano(), host, h[:], now.UnixNano())
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("storage: use invite on %s: %w", host, err)
	}
	return nil
}

package storage

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// PushRegistration is an app server a user enabled for push notifications
// (XEP-0357): its service JID and node, and the publish options to send
// with each notification (a serialized jabber:x:data form, or nil).
type PushRegistration struct {
	JID     string
	Node    string
	Options []byte
	Created time.Time
}

// PutPush records r for user on host, replacing the registration of the
// same JID and node (XEP-0357 §5: the last request's publish options
// win). The error wraps [ErrNotFound] when user has no account on host.
func (s *Store) PutPush(ctx context.Context, host, user string, r PushRegistration) error {
	if r.JID == "" {
		return fmt.Errorf("storage: push registration for %s@%s: empty JID", user, host)
	}
	opts := r.Options
	if opts == nil {
		opts = []byte{}
	}
	err := s.update(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM accounts WHERE host = ? AND username = ?`, host, user).Scan(&one)
		if err == sql.ErrNoRows {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO push_registrations (host, username, jid, node, options, created)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (host, username, jid, node) DO UPDATE SET options = excluded.options, created = excluded.created`,
			host, user, r.JID, r.Node, opts, r.Created.Unix())
		return err
	})
	if err != nil {
		return fmt.Errorf("storage: push registration for %s@%s: %w", user, host, err)
	}
	return nil
}

// DeletePush removes the registrations of user on host for the service
// jid: the one of node, or, when all is true, every node of it (XEP-0357
// §6). It returns how many it removed; none is not an error.
func (s *Store) DeletePush(ctx context.Context, host, user, jid, node string, all bool) (int, error) {
	var res sql.Result
	var err error
	if all {
		res, err = s.db.ExecContext(ctx, `DELETE FROM push_registrations WHERE host = ? AND username = ? AND jid = ?`,
			host, user, jid)
	} else {
		res, err = s.db.ExecContext(ctx, `DELETE FROM push_registrations WHERE host = ? AND username = ? AND jid = ? AND node = ?`,
			host, user, jid, node)
	}
	if err != nil {
		return 0, fmt.Errorf("storage: delete push registration of %s@%s: %w", user, host, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("storage: delete push registration of %s@%s: %w", user, host, err)
	}
	return int(n), nil
}

// PushRegistrations returns the registrations of user on host, by JID and
// node.
func (s *Store) PushRegistrations(ctx context.Context, host, user string) ([]PushRegistration, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT jid, node, options, created FROM push_registrations
		WHERE host = ? AND username = ? ORDER BY jid, node`, host, user)
	if err != nil {
		return nil, fmt.Errorf("storage: push registrations of %s@%s: %w", user, host, err)
	}
	defer rows.Close()
	var out []PushRegistration
	for rows.Next() {
		var r PushRegistration
		var created int64
		if err := rows.Scan(&r.JID, &r.Node, &r.Options, &created); err != nil {
			return nil, fmt.Errorf("storage: push registrations of %s@%s: %w", user, host, err)
		}
		if len(r.Options) == 0 {
			r.Options = nil
		}
		r.Created = time.Unix(created, 0)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: push registrations of %s@%s: %w", user, host, err)
	}
	return out, nil
}

package storage

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"time"
)

// MUCRoom is a persistent multi-user chat room (XEP-0045) of a muc host,
// as package components/muc keeps it.
type MUCRoom struct {
	// Name is the room's localpart.
	Name string
	// Config is the room's configuration, serialized by the muc package
	// (which alone reads it), so that new fields need no migration.
	Config []byte
	// Secret is the key of the room's occupant-ids (XEP-0421).
	Secret []byte
	// Subject is the room's subject, SubjectFrom the nick that set it
	// ("" for the room itself) and SubjectAt when (zero: never set).
	Subject, SubjectFrom string
	SubjectAt            time.Time
	// Affiliations are the room's affiliations by bare JID: owner,
	// admin, member or outcast.
	Affiliations map[string]string
	// Nicks are the registered nicks (XEP-0045 §7.10) by bare JID; each
	// belongs to an affiliation of Affiliations and goes with it.
	Nicks map[string]string
	// VCard is the room's vCard (XEP-0054) as serialized by the muc
	// package, nil for none.
	VCard []byte
}

// PutMUCRoom stores r on host, replacing the room of the same name with
// its affiliations, in one transaction.
func (s *Store) PutMUCRoom(ctx context.Context, host string, r MUCRoom) error {
	var subjectAt int64
	if !r.SubjectAt.IsZero() {
		subjectAt = r.SubjectAt.UnixNano()
	}
	err := s.update(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO muc_rooms (host, room, config, secret, subject, subject_from, subject_at, vcard)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (host, room) DO UPDATE SET config = excluded.config, secret = excluded.secret,
				subject = excluded.subject, subject_from = excluded.subject_from, subject_at = excluded.subject_at,
				vcard = excluded.vcard`,
			host, r.Name, nonNil(r.Config), nonNil(r.Secret), r.Subject, r.SubjectFrom, subjectAt, nonNil(r.VCard))
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM muc_affiliations WHERE host = ? AND room = ?`, host, r.Name); err != nil {
			return err
		}
		// In JID order, so that a room's rows are written the same way
		// each time.
		jids := make([]string, 0, len(r.Affiliations))
		for j := range r.Affiliations {
			jids = append(jids, j)
		}
		sort.Strings(jids)
		for _, j := range jids {
			if _, err := tx.ExecContext(ctx, `INSERT INTO muc_affiliations (host, room, jid, affiliation, nick) VALUES (?, ?, ?, ?, ?)`,
				host, r.Name, j, r.Affiliations[j], r.Nicks[j]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: put muc room %s@%s: %w", r.Name, host, err)
	}
	return nil
}

// DeleteMUCRoom removes the room name of host with its affiliations; a
// room that is not stored is not an error.
func (s *Store) DeleteMUCRoom(ctx context.Context, host, name string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM muc_rooms WHERE host = ? AND room = ?`, host, name); err != nil {
		return fmt.Errorf("storage: delete muc room %s@%s: %w", name, host, err)
	}
	return nil
}

// MUCRooms returns the stored rooms of host, by name.
func (s *Store) MUCRooms(ctx context.Context, host string) ([]MUCRoom, error) {
	var out []MUCRoom
	err := s.view(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT room, config, secret, subject, subject_from, subject_at, vcard
			FROM muc_rooms WHERE host = ? ORDER BY room`, host)
		if err != nil {
			return err
		}
		defer rows.Close()
		byName := map[string]int{}
		for rows.Next() {
			var r MUCRoom
			var at int64
			if err := rows.Scan(&r.Name, &r.Config, &r.Secret, &r.Subject, &r.SubjectFrom, &at, &r.VCard); err != nil {
				return err
			}
			if len(r.VCard) == 0 {
				r.VCard = nil
			}
			if at != 0 {
				r.SubjectAt = time.Unix(0, at)
			}
			r.Affiliations, r.Nicks = map[string]string{}, map[string]string{}
			byName[r.Name] = len(out)
			out = append(out, r)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		arows, err := tx.QueryContext(ctx, `SELECT room, jid, affiliation, nick FROM muc_affiliations WHERE host = ?`, host)
		if err != nil {
			return err
		}
		defer arows.Close()
		for arows.Next() {
			var room, jid, aff, nick string
			if err := arows.Scan(&room, &jid, &aff, &nick); err != nil {
				return err
			}
			if i, ok := byName[room]; ok {
				out[i].Affiliations[jid] = aff
				if nick != "" {
					out[i].Nicks[jid] = nick
				}
			}
		}
		return arows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("storage: muc rooms of %s: %w", host, err)
	}
	return out, nil
}

// nonNil returns b, or an empty slice for nil: the columns are NOT NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

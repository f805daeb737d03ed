package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// rosterTombstonesKept is how many removed JIDs (tombstones) a user's roster
// keeps so that [Store.RosterSince] can report removals. Older tombstones
// are pruned when a removal adds one, and a client whose roster version is
// older than the newest pruned one gets the whole roster.
const rosterTombstonesKept = 1000

// RosterItem is one contact on a user's roster (RFC 6121 §2.1.2) together
// with the subscription state the server keeps for it.
type RosterItem struct {
	JID          string   // the contact's bare JID
	Name         string   // the name the user gave the contact, or ""
	Subscription string   // "none", "to", "from" or "both"; a Store reads "" back as "none"
	Ask          bool     // an outbound subscribe is pending (the contact has not answered)
	PendingIn    bool     // an inbound subscribe waits for the user's answer
	PendingInXML string   // the inbound subscribe stanza as received (for redelivery at login); "" when none
	Approved     bool     // the user pre-approved the contact's subscription (RFC 6121 §3.4)
	Groups       []string // sorted, no duplicates; nil when none
	Ver          int64    // the roster version at which this item last changed; set by the Store
}

// rosterItemColumns are the columns of roster_items in the order that
// scanRosterItem reads them.
const rosterItemColumns = `jid, name, subscription, ask, pending_in, pending_in_xml, approved, groups_json, ver`

// Roster returns the roster of user on host, sorted by JID, and its current
// version: 0 for a roster that was never written.
func (s *Store) Roster(ctx context.Context, host, user string) (items []RosterItem, ver int64, err error) {
	err = s.view(ctx, func(tx *sql.Tx) error {
		if ver, _, err = rosterVersion(ctx, tx, host, user); err != nil {
			return err
		}
		items, err = queryRoster(ctx, tx, `WHERE host = ? AND username = ? ORDER BY jid`, host, user)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("storage: roster of %s@%s: %w", user, host, err)
	}
	return items, ver, nil
}

// RosterItem returns the item for the bare JID jid on the roster of user on
// host. The error wraps [ErrNotFound] when there is none.
func (s *Store) RosterItem(ctx context.Context, host, user, jid string) (RosterItem, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+rosterItemColumns+` FROM roster_items
		WHERE host = ? AND username = ? AND jid = ?`, host, user, jid)
	item, err := scanRosterItem(row)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return RosterItem{}, fmt.Errorf("storage: roster item %s of %s@%s: %w", jid, user, host, err)
	}
	return item, nil
}

// PutRosterItem adds item to the roster of user on host, or replaces the
// item with the same JID, and bumps the roster version by one. It returns
// the new version, which is also the stored item's Ver; item.Ver is ignored.
// Groups are stored sorted and without duplicates. The error wraps
// [ErrNotFound] when user has no account on host.
func (s *Store) PutRosterItem(ctx context.Context, host, user string, item RosterItem) (ver int64, err error) {
	fail := func(err error) (int64, error) {
		return 0, fmt.Errorf("storage: put roster item %s of %s@%s: %w", item.JID, user, host, err)
	}
	if err := checkName(host, user); err != nil {
		return fail(err)
	}
	if item.JID == "" {
		return fail(errors.New("empty JID"))
	}
	switch item.Subscription {
	case "":
		item.Subscription = "none"
	case "none", "to", "from", "both":
	default:
		return fail(fmt.Errorf("subscription %q is not none, to, from or both", item.Subscription))
	}
	set := sortedSet(item.Groups)
	if set == nil {
		set = []string{} // stored as [], not null
	}
	groups, err := json.Marshal(set)
	if err != nil {
		return fail(err)
	}
	err = s.update(ctx, func(tx *sql.Tx) error {
		if ver, err = bumpRosterVersion(ctx, tx, host, user); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO roster_items (host, username, `+rosterItemColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (host, username, jid) DO UPDATE SET
				name = excluded.name, subscription = excluded.subscription, ask = excluded.ask,
				pending_in = excluded.pending_in, pending_in_xml = excluded.pending_in_xml,
				approved = excluded.approved, groups_json = excluded.groups_json, ver = excluded.ver`,
			host, user, item.JID, item.Name, item.Subscription, item.Ask, item.PendingIn,
			item.PendingInXML, item.Approved, string(groups), ver); err != nil {
			return err
		}
		// A JID back on the roster is a change, not a removal.
		_, err := tx.ExecContext(ctx, `DELETE FROM roster_tombstones WHERE host = ? AND username = ? AND jid = ?`,
			host, user, item.JID)
		return err
	})
	if err != nil {
		return fail(err)
	}
	return ver, nil
}

// DeleteRosterItem removes jid from the roster of user on host, bumps the
// roster version by one and records the removal at that version for
// [Store.RosterSince]. It returns the new version. The error wraps
// [ErrNotFound] when jid is not on the roster; the version is then
// unchanged.
func (s *Store) DeleteRosterItem(ctx context.Context, host, user, jid string) (ver int64, err error) {
	err = s.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM roster_items WHERE host = ? AND username = ? AND jid = ?`,
			host, user, jid)
		if err := oneRow(res, err); err != nil {
			return err
		}
		if ver, err = bumpRosterVersion(ctx, tx, host, user); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO roster_tombstones (host, username, jid, ver)
			VALUES (?, ?, ?, ?)
			ON CONFLICT (host, username, jid) DO UPDATE SET ver = excluded.ver`,
			host, user, jid, ver); err != nil {
			return err
		}
		return s.pruneTombstones(ctx, tx, host, user)
	})
	if err != nil {
		return 0, fmt.Errorf("storage: delete roster item %s of %s@%s: %w", jid, user, host, err)
	}
	return ver, nil
}

// RosterSince returns what changed on the roster of user on host after
// version since, for roster versioning (RFC 6121 §2.6): the items changed
// after since, sorted by JID, the JIDs removed after since and not back on
// the roster, sorted, and the current version. An item removed and added
// again after since is in changed, not in removed.
//
// ok is false, and the caller sends the whole roster, when since is not a
// version the store can answer from: negative, newer than the current
// version, or older than a removal whose tombstone was pruned (a user keeps
// the last 1000).
func (s *Store) RosterSince(ctx context.Context, host, user string, since int64) (changed []RosterItem, removed []string, ver int64, ok bool, err error) {
	err = s.view(ctx, func(tx *sql.Tx) error {
		var pruned int64
		if ver, pruned, err = rosterVersion(ctx, tx, host, user); err != nil {
			return err
		}
		if since < 0 || since > ver || since < pruned {
			return nil
		}
		ok = true
		if changed, err = queryRoster(ctx, tx, `WHERE host = ? AND username = ? AND ver > ? ORDER BY jid`,
			host, user, since); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT jid FROM roster_tombstones
			WHERE host = ? AND username = ? AND ver > ? ORDER BY jid`, host, user, since)
		if err != nil {
			return err
		}
		defer rows.Close()
		removed, err = scanStrings(rows)
		return err
	})
	if err != nil {
		return nil, nil, 0, false, fmt.Errorf("storage: roster of %s@%s since version %d: %w", user, host, since, err)
	}
	return changed, removed, ver, ok, nil
}

// rosterVersion returns the current roster version of user on host and the
// newest version whose tombstone was pruned, both 0 when the roster was
// never written.
func rosterVersion(ctx context.Context, tx *sql.Tx, host, user string) (ver, pruned int64, err error) {
	err = tx.QueryRowContext(ctx, `SELECT ver, pruned FROM roster_version WHERE host = ? AND username = ?`,
		host, user).Scan(&ver, &pruned)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, nil
	}
	return ver, pruned, err
}

// bumpRosterVersion adds one to the roster version of user on host and
// returns the new version. It fails with a foreign key violation when the
// user has no account.
func bumpRosterVersion(ctx context.Context, tx *sql.Tx, host, user string) (ver int64, err error) {
	err = tx.QueryRowContext(ctx, `INSERT INTO roster_version (host, username, ver) VALUES (?, ?, 1)
		ON CONFLICT (host, username) DO UPDATE SET ver = ver + 1
		RETURNING ver`, host, user).Scan(&ver)
	return ver, err
}

// pruneTombstones deletes the tombstones of user on host beyond the newest
// s.tombstonesKept and remembers the newest version it deleted, older than
// which RosterSince no longer answers.
func (s *Store) pruneTombstones(ctx context.Context, tx *sql.Tx, host, user string) error {
	var cut int64
	err := tx.QueryRowContext(ctx, `SELECT ver FROM roster_tombstones WHERE host = ? AND username = ?
		ORDER BY ver DESC LIMIT 1 OFFSET ?`, host, user, s.tombstonesKept).Scan(&cut)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM roster_tombstones WHERE host = ? AND username = ? AND ver <= ?`,
		host, user, cut); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE roster_version SET pruned = max(pruned, ?) WHERE host = ? AND username = ?`,
		cut, host, user)
	return err
}

// queryRoster returns the roster items that the SQL clause where selects,
// with its arguments args.
func queryRoster(ctx context.Context, tx *sql.Tx, where string, args ...any) ([]RosterItem, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+rosterItemColumns+` FROM roster_items `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var items []RosterItem
	for rows.Next() {
		item, err := scanRosterItem(rows)
		if err != nil {
			return nil, err
		}
		items = append(items, item)
	}
	return items, rows.Err()
}

// scanRosterItem reads one row of rosterItemColumns.
func scanRosterItem(row interface{ Scan(...any) error }) (RosterItem, error) {
	var (
		item   RosterItem
		groups string
	)
	if err := row.Scan(&item.JID, &item.Name, &item.Subscription, &item.Ask, &item.PendingIn,
		&item.PendingInXML, &item.Approved, &groups, &item.Ver); err != nil {
		return RosterItem{}, err
	}
	if err := json.Unmarshal([]byte(groups), &item.Groups); err != nil {
		return RosterItem{}, fmt.Errorf("groups of %s: %w", item.JID, err)
	}
	if len(item.Groups) == 0 {
		item.Groups = nil
	}
	return item, nil
}

// scanStrings returns the one string column of rows.
func scanStrings(rows *sql.Rows) ([]string, error) {
	var ss []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		ss = append(ss, s)
	}
	return ss, rows.Err()
}

// sortedSet returns the strings of ss sorted and without duplicates in a new
// slice, or nil when ss is empty.
func sortedSet(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	return slices.Compact(slices.Sorted(slices.Values(ss)))
}

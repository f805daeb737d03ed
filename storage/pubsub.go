package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// PubsubConfig is the configuration of one PEP node (XEP-0060 §16.4's
// pubsub#node_config fields that PEP uses).
type PubsubConfig struct {
	// AccessModel is who may see the node's items: "presence" (contacts
	// with a subscription from the owner), "open", "whitelist" (the
	// owner alone, until affiliations are kept) or "roster".
	AccessModel string
	// PublishModel is who may publish: "publishers" (the owner).
	PublishModel string
	// MaxItems is how many items the node keeps, newest first; at
	// least 1.
	MaxItems int
	// PersistItems is whether items are stored at all: a node without
	// it only notifies.
	PersistItems bool
	// NotifyRetract and NotifyDelete are whether subscribers hear of a
	// retracted item or of the node's deletion.
	NotifyRetract, NotifyDelete bool
	// SendLast is when the newest item is sent unasked
	// (pubsub#send_last_published_item): "never", "on_sub" or
	// "on_sub_and_presence" (PEP's default, XEP-0163 §4.3.4).
	SendLast string
}

// PubsubItem is one item of a node.
type PubsubItem struct {
	ID        string
	Publisher string // the full or bare JID that published it
	Payload   []byte // the item's payload as the client sent it, serialized
}

// PubsubNode is a node's name, its configuration and, for
// [Store.PubsubLastItems], its newest item (nil when it has none).
type PubsubNode struct {
	Name   string
	Config PubsubConfig
	Last   *PubsubItem
}

// PublishOptions say what [Store.PublishPubsub] does beside storing the
// item.
type PublishOptions struct {
	// Create is the configuration of the node when it does not exist
	// yet (auto-create, XEP-0060 §7.1.4); nil when it must exist.
	Create *PubsubConfig
	// Check, when not nil, decides on an existing node's configuration
	// (publish-options' preconditions, XEP-0060 §7.1.5): its error stops
	// the publish and is returned as is.
	Check func(PubsubConfig) error
	// MaxNodes bounds the nodes of the account that auto-create may make
	// (0: no bound): the error then wraps [ErrQuota].
	MaxNodes int
}

// ErrPubsubNodeExists is what [Store.CreatePubsubNode] returns for a node
// that exists.
var ErrPubsubNodeExists = errors.New("pubsub node exists")

const pubsubConfigColumns = `access_model, publish_model, max_items, persist_items, notify_retract, notify_delete, send_last`

// scanPubsubConfig reads pubsubConfigColumns.
func scanPubsubConfig(sc interface{ Scan(...any) error }, extra ...any) (PubsubConfig, error) {
	var c PubsubConfig
	err := sc.Scan(append([]any{&c.AccessModel, &c.PublishModel, &c.MaxItems, &c.PersistItems, &c.NotifyRetract, &c.NotifyDelete, &c.SendLast}, extra...)...)
	return c, err
}

// pubsubConfigIn reads the configuration of a node in tx; ErrNotFound
// when there is no such node.
func pubsubConfigIn(ctx context.Context, tx *sql.Tx, host, user, node string) (PubsubConfig, error) {
	c, err := scanPubsubConfig(tx.QueryRowContext(ctx, `SELECT `+pubsubConfigColumns+` FROM pubsub_nodes
		WHERE host = ? AND username = ? AND node = ?`, host, user, node))
	if errors.Is(err, sql.ErrNoRows) {
		return c, ErrNotFound
	}
	return c, err
}

// createPubsubNode inserts a node into tx, within maxNodes (0: no bound).
func createPubsubNode(ctx context.Context, tx *sql.Tx, host, user, node string, c PubsubConfig, maxNodes int) error {
	if maxNodes > 0 {
		var n int64
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pubsub_nodes WHERE host = ? AND username = ?`,
			host, user).Scan(&n); err != nil {
			return err
		}
		if n >= int64(maxNodes) {
			return &QuotaError{Unit: "nodes", Used: n, Limit: int64(maxNodes)}
		}
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO pubsub_nodes (host, username, node, `+pubsubConfigColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, host, user, node,
		c.AccessModel, c.PublishModel, c.MaxItems, c.PersistItems, c.NotifyRetract, c.NotifyDelete, c.SendLast)
	return err
}

// trimPubsubItems deletes the oldest items of a node beyond max.
func trimPubsubItems(ctx context.Context, tx *sql.Tx, host, user, node string, max int) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM pubsub_items WHERE host = ? AND username = ? AND node = ?
		AND seq <= (SELECT seq FROM pubsub_items WHERE host = ? AND username = ? AND node = ?
			ORDER BY seq DESC LIMIT 1 OFFSET ?)`, host, user, node, host, user, node, max)
	return err
}

// CreatePubsubNode creates the node of user on host with config c, within
// maxNodes nodes for the account (0: no bound; over it the error wraps
// [ErrQuota]). The error wraps [ErrPubsubNodeExists] for a node that
// exists, and [ErrNotFound] when user has no account on host.
func (s *Store) CreatePubsubNode(ctx context.Context, host, user, node string, c PubsubConfig, maxNodes int) error {
	err := s.update(ctx, func(tx *sql.Tx) error {
		if _, err := pubsubConfigIn(ctx, tx, host, user, node); err == nil {
			return ErrPubsubNodeExists
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		return createPubsubNode(ctx, tx, host, user, node, c, maxNodes)
	})
	if err != nil {
		return fmt.Errorf("storage: create pubsub node %q of %s@%s: %w", node, user, host, err)
	}
	return nil
}

// PublishPubsub stores item in the node of user on host, as its newest
// (an item of the same id is replaced and becomes the newest), and
// deletes the oldest items beyond the node's max_items, in one
// transaction. A node that does not exist is created with o.Create, or
// the error wraps [ErrNotFound]. It returns the node's configuration; a
// node without persist_items stores nothing. The error wraps
// [ErrNotFound] as well when user has no account on host.
func (s *Store) PublishPubsub(ctx context.Context, host, user, node string, item PubsubItem, o PublishOptions) (PubsubConfig, error) {
	var c PubsubConfig
	err := s.update(ctx, func(tx *sql.Tx) error {
		var err error
		c, err = pubsubConfigIn(ctx, tx, host, user, node)
		switch {
		case errors.Is(err, ErrNotFound) && o.Create != nil:
			c = *o.Create
			if err := createPubsubNode(ctx, tx, host, user, node, c, o.MaxNodes); err != nil {
				return err
			}
		case err != nil:
			return err
		case o.Check != nil:
			if err := o.Check(c); err != nil {
				return err
			}
		}
		if !c.PersistItems {
			return nil
		}
		var seq int64
		if err := tx.QueryRowContext(ctx, `UPDATE pubsub_nodes SET last_seq = last_seq + 1
			WHERE host = ? AND username = ? AND node = ? RETURNING last_seq`, host, user, node).Scan(&seq); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO pubsub_items (host, username, node, item_id, seq, publisher, payload)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (host, username, node, item_id) DO UPDATE SET
				seq = excluded.seq, publisher = excluded.publisher, payload = excluded.payload`,
			host, user, node, item.ID, seq, item.Publisher, blob(item.Payload)); err != nil {
			return err
		}
		return trimPubsubItems(ctx, tx, host, user, node, c.MaxItems)
	})
	if err != nil {
		return c, fmt.Errorf("storage: publish to pubsub node %q of %s@%s: %w", node, user, host, err)
	}
	return c, nil
}

// PubsubConfigOf returns the configuration of the node of user on host;
// the error wraps [ErrNotFound] when there is no such node.
func (s *Store) PubsubConfigOf(ctx context.Context, host, user, node string) (PubsubConfig, error) {
	var c PubsubConfig
	err := s.view(ctx, func(tx *sql.Tx) error {
		var err error
		c, err = pubsubConfigIn(ctx, tx, host, user, node)
		return err
	})
	if err != nil {
		return c, fmt.Errorf("storage: pubsub node %q of %s@%s: %w", node, user, host, err)
	}
	return c, nil
}

// ConfigurePubsubNode replaces the configuration of the node of user on
// host, and deletes the oldest items beyond its new max_items (and every
// item when it no longer persists them), in one transaction. The error
// wraps [ErrNotFound] when there is no such node.
func (s *Store) ConfigurePubsubNode(ctx context.Context, host, user, node string, c PubsubConfig) error {
	err := s.update(ctx, func(tx *sql.Tx) error {
		if err := oneRow(tx.ExecContext(ctx, `UPDATE pubsub_nodes SET access_model = ?, publish_model = ?,
			max_items = ?, persist_items = ?, notify_retract = ?, notify_delete = ?, send_last = ?
			WHERE host = ? AND username = ? AND node = ?`,
			c.AccessModel, c.PublishModel, c.MaxItems, c.PersistItems, c.NotifyRetract, c.NotifyDelete, c.SendLast,
			host, user, node)); err != nil {
			return err
		}
		keep := c.MaxItems
		if !c.PersistItems {
			keep = 0
		}
		return trimPubsubItems(ctx, tx, host, user, node, keep)
	})
	if err != nil {
		return fmt.Errorf("storage: configure pubsub node %q of %s@%s: %w", node, user, host, err)
	}
	return nil
}

// PubsubItems returns the node's configuration and items of user on host,
// oldest first: those of ids when ids is not empty (in the node's order;
// ids it lacks are left out), else the newest max (every item when max is
// 0). The error wraps [ErrNotFound] when there is no such node.
func (s *Store) PubsubItems(ctx context.Context, host, user, node string, ids []string, max int) (PubsubConfig, []PubsubItem, error) {
	var (
		c     PubsubConfig
		items []PubsubItem
	)
	err := s.view(ctx, func(tx *sql.Tx) error {
		var err error
		if c, err = pubsubConfigIn(ctx, tx, host, user, node); err != nil {
			return err
		}
		q := `SELECT item_id, publisher, payload FROM pubsub_items WHERE host = ? AND username = ? AND node = ?`
		args := []any{host, user, node}
		switch {
		case len(ids) > 0:
			q += ` AND item_id IN (?` + strings.Repeat(", ?", len(ids)-1) + `) ORDER BY seq`
			for _, id := range ids {
				args = append(args, id)
			}
		case max > 0:
			q = `SELECT item_id, publisher, payload FROM (SELECT item_id, publisher, payload, seq FROM pubsub_items
				WHERE host = ? AND username = ? AND node = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq`
			args = append(args, max)
		default:
			q += ` ORDER BY seq`
		}
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var it PubsubItem
			if err := rows.Scan(&it.ID, &it.Publisher, &it.Payload); err != nil {
				return err
			}
			items = append(items, it)
		}
		return rows.Err()
	})
	if err != nil {
		return c, nil, fmt.Errorf("storage: items of pubsub node %q of %s@%s: %w", node, user, host, err)
	}
	return c, items, nil
}

// RetractPubsubItem deletes the item id of the node of user on host and
// returns the node's configuration. The error wraps [ErrNotFound] when
// there is no such node or item.
func (s *Store) RetractPubsubItem(ctx context.Context, host, user, node, id string) (PubsubConfig, error) {
	var c PubsubConfig
	err := s.update(ctx, func(tx *sql.Tx) error {
		var err error
		if c, err = pubsubConfigIn(ctx, tx, host, user, node); err != nil {
			return err
		}
		return oneRow(tx.ExecContext(ctx, `DELETE FROM pubsub_items
			WHERE host = ? AND username = ? AND node = ? AND item_id = ?`, host, user, node, id))
	})
	if err != nil {
		return c, fmt.Errorf("storage: retract item %q of pubsub node %q of %s@%s: %w", id, node, user, host, err)
	}
	return c, nil
}

// DeletePubsubNode deletes the node of user on host with its items, and
// returns its configuration. The error wraps [ErrNotFound] when there is
// no such node.
func (s *Store) DeletePubsubNode(ctx context.Context, host, user, node string) (PubsubConfig, error) {
	var c PubsubConfig
	err := s.update(ctx, func(tx *sql.Tx) error {
		var err error
		if c, err = pubsubConfigIn(ctx, tx, host, user, node); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM pubsub_nodes WHERE host = ? AND username = ? AND node = ?`,
			host, user, node)
		return err
	})
	if err != nil {
		return c, fmt.Errorf("storage: delete pubsub node %q of %s@%s: %w", node, user, host, err)
	}
	return c, nil
}

// PubsubLastItems returns every node of user on host, by name, each with
// its newest item (Last is nil for a node with none): what a contact
// coming online is sent (XEP-0163 §4.3.3).
func (s *Store) PubsubLastItems(ctx context.Context, host, user string) ([]PubsubNode, error) {
	var nodes []PubsubNode
	err := s.view(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT n.node, `+pubsubConfigColumnsOf("n")+`,
				i.item_id, i.publisher, i.payload
			FROM pubsub_nodes n LEFT JOIN pubsub_items i
				ON i.host = n.host AND i.username = n.username AND i.node = n.node
				AND i.seq = (SELECT max(seq) FROM pubsub_items
					WHERE host = n.host AND username = n.username AND node = n.node)
			WHERE n.host = ? AND n.username = ? ORDER BY n.node`, host, user)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				n         PubsubNode
				id, pub   sql.NullString
				payload   []byte
				scanFirst = func(dest ...any) error { return rows.Scan(append([]any{&n.Name}, dest...)...) }
			)
			c, err := scanPubsubConfig(scanner(scanFirst), &id, &pub, &payload)
			if err != nil {
				return err
			}
			n.Config = c
			if id.Valid {
				n.Last = &PubsubItem{ID: id.String, Publisher: pub.String, Payload: payload}
			}
			nodes = append(nodes, n)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("storage: pubsub nodes of %s@%s: %w", user, host, err)
	}
	return nodes, nil
}

// scanner adapts a function to scanPubsubConfig's argument.
type scanner func(dest ...any) error

// Scan calls f.
func (f scanner) Scan(dest ...any) error { return f(dest...) }

// pubsubConfigColumnsOf is pubsubConfigColumns of the table alias t.
func pubsubConfigColumnsOf(t string) string {
	cols := strings.Split(pubsubConfigColumns, ", ")
	for i, c := range cols {
		cols[i] = t + "." + c
	}
	return strings.Join(cols, ", ")
}

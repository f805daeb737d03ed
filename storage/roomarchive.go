package storage

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Rooms' archives (XEP-0313 on a MUC room) share the users' archive
// writer, sequence and stanza-ids (archive.go), in tables of their own
// (room_archive, room_archives): a room is not an account. Each room is
// named by its host and localpart. The ArchiveEntry of a room message
// has With the room's bare JID, Resource the sender's nick ("" for the
// room itself), and no Body: rooms have no full-text index.

// ArchiveRoomAsync archives e in the archive of room on host without
// waiting for the commit, and returns its stanza-id, as
// [Store.ArchiveAsync] does for a user; notify, when not nil, gets the
// commit's outcome on the writer's goroutine and must not block.
func (s *Store) ArchiveRoomAsync(ctx context.Context, host, room string, e ArchiveEntry, notify func(error)) (string, error) {
	e.Body = ""
	r := &appendReq{kind: roomArchives, host: host, user: room, e: e, notify: notify}
	if err := s.enqueue(ctx, r); err != nil {
		return "", fmt.Errorf("storage: archive a message of room %s@%s: %w", room, host, err)
	}
	return s.archiveID(r.seq), nil
}

// AppendRoomArchiveBatch archives es in room's archive on host in one
// transaction, in order, and returns them as kept: for imports and
// benchmarks (a room archives with [Store.ArchiveRoomAsync]).
func (s *Store) AppendRoomArchiveBatch(ctx context.Context, host, room string, es []ArchiveEntry) ([]ArchivedMessage, error) {
	if err := s.archiveInit(); err != nil {
		return nil, fmt.Errorf("storage: archive %d messages of room %s@%s: %w", len(es), room, host, err)
	}
	w := &s.archive
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, fmt.Errorf("storage: archive %d messages of room %s@%s: %w", len(es), room, host, errStoreClosed)
	}
	seq0, at0 := w.lastSeq, w.lastAt
	ms := make([]ArchivedMessage, 0, len(es))
	err := s.update(ctx, func(tx *sql.Tx) error {
		owner, err := roomArchives.resolveOwner(ctx, tx, host, room)
		if err != nil {
			return err
		}
		ins, err := tx.PrepareContext(ctx, roomArchives.insert)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, e := range es {
			r := &appendReq{e: e}
			w.assign(r)
			if _, err := ins.ExecContext(ctx, r.seq, owner, r.at, e.With, e.Resource, e.Outgoing, blob(e.Stanza)); err != nil {
				return err
			}
			ms = append(ms, ArchivedMessage{ID: s.archiveID(r.seq), At: time.Unix(0, r.at).UTC(),
				With: e.With, Resource: e.Resource, Outgoing: e.Outgoing, Stanza: e.Stanza})
		}
		_, err = tx.ExecContext(ctx, updateArchiveState, w.lastSeq, w.lastAt)
		return err
	})
	if err != nil {
		w.lastSeq, w.lastAt = seq0, at0
		return nil, fmt.Errorf("storage: archive %d messages of room %s@%s: %w", len(es), room, host, err)
	}
	return ms, nil
}

// QueryRoomArchive returns a page of room's archive on host, as
// [Store.QueryArchive] does for a user's: With is the room's bare JID and
// Resource a nick. Search is refused (wraps [ErrArchiveQuery]): rooms'
// messages are not indexed. It does not wait for queued appends: call
// [Store.SyncArchive] first to see them.
func (s *Store) QueryRoomArchive(ctx context.Context, host, room string, q ArchiveQuery) (ArchivePage, error) {
	return s.queryArchive(ctx, roomArchives, host, room, q)
}

// ReplaceRoomArchived replaces the stanza of the message id of room's
// archive on host (a moderated message's tombstone, XEP-0425), keeping
// its id and time. The error wraps [ErrNotFound] when the room has no
// such message. Call [Store.SyncArchive] first when the message may
// still be queued.
func (s *Store) ReplaceRoomArchived(ctx context.Context, host, room, id string, stanza []byte) error {
	if err := s.archiveInit(); err != nil {
		return fmt.Errorf("storage: replace message %q of room %s@%s: %w", id, room, host, err)
	}
	seq, valid := s.archiveSeq(id)
	if !valid {
		return fmt.Errorf("storage: replace message %q of room %s@%s: %w", id, room, host, ErrNotFound)
	}
	var n int64
	err := s.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE room_archive SET stanza = ?
			WHERE seq = ? AND owner = (SELECT id FROM room_archives WHERE host = ? AND room = ?)`, blob(stanza), seq, host, room)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("storage: replace message %q of room %s@%s: %w", id, room, host, err)
	}
	return nil
}

// DeleteRoomArchive deletes the archive of room on host, with what was
// queued for it before the call: a destroyed room's messages go with it,
// and a new room of the same name starts with none.
func (s *Store) DeleteRoomArchive(ctx context.Context, host, room string) error {
	if err := s.SyncArchive(ctx); err != nil {
		return fmt.Errorf("storage: delete the archive of room %s@%s: %w", room, host, err)
	}
	// The owner row goes, its messages with it (ON DELETE CASCADE). The
	// writer's cached id of it fails the foreign key at the next append,
	// which then makes a new owner (writeOne).
	if _, err := s.db.ExecContext(ctx, `DELETE FROM room_archives WHERE host = ? AND room = ?`, host, room); err != nil {
		return fmt.Errorf("storage: delete the archive of room %s@%s: %w", room, host, err)
	}
	return nil
}

// DeleteOrphanRoomArchives deletes the archives of host's rooms that are
// not stored (muc_rooms): those of temporary rooms, which a restart ends.
// Left, a new room of the same name, made by anyone, would show them.
// It returns how many archives it deleted.
func (s *Store) DeleteOrphanRoomArchives(ctx context.Context, host string) (int64, error) {
	if err := s.SyncArchive(ctx); err != nil {
		return 0, fmt.Errorf("storage: delete orphan room archives of %s: %w", host, err)
	}
	res, err := s.db.ExecContext(ctx, `DELETE FROM room_archives WHERE host = ?
		AND room NOT IN (SELECT room FROM muc_rooms WHERE host = ?)`, host, host)
	if err != nil {
		return 0, fmt.Errorf("storage: delete orphan room archives of %s: %w", host, err)
	}
	n, err := res.RowsAffected()
	return n, err
}

// ExpireRoomArchive deletes the messages of host's room archives archived
// before cutoff, batch of them per transaction, as [Store.ExpireArchive]
// does for users' archives.
func (s *Store) ExpireRoomArchive(ctx context.Context, host string, cutoff time.Time, batch int) (int64, error) {
	n, err := s.expireHost(ctx, roomArchives, host, cutoff.UnixNano(), max(batch, 1))
	if err != nil {
		return n, fmt.Errorf("storage: expire room archives of %s before %v: %w", host, cutoff, err)
	}
	return n, nil
}

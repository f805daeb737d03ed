package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// UploadSlot is a slot an HTTP upload host (XEP-0363) gave out: where its
// owner may PUT one file, and what the file must be.
type UploadSlot struct {
	// ID names the slot and the file on disk: random, unguessable.
	ID string
	// Host is the upload host that gave it out.
	Host string
	// Owner is the bare JID that requested it.
	Owner       string
	Filename    string
	Size        int64
	ContentType string
	// Created is when the slot was given out; Uploaded when its PUT
	// completed, zero while it has not.
	Created, Uploaded time.Time
}

// UploadUsage is what the slots of one owner on one upload host count
// against the owner's quota.
type UploadUsage struct {
	// Bytes is the size of the uploaded files and of the pending slots
	// created since the time the caller gave.
	Bytes int64
	// OldestUploaded is when the oldest counted file was uploaded, and
	// OldestPending when the oldest counted pending slot was created;
	// zero when there is none. Each says when room will come back.
	OldestUploaded, OldestPending time.Time
}

// ErrUploadQuota is wrapped by the error of [Store.CreateUploadSlot] when
// the slot would take its owner past the quota.
var ErrUploadQuota = errors.New("upload quota reached")

// CreateUploadSlot records slot unless it would take its owner's usage on
// its host past quota bytes (no quota when quota <= 0): the files uploaded
// and not yet deleted, and the slots still pending that were created at
// or after pendingSince. The check and the insert are one transaction, so
// requests at once cannot pass the quota together. It returns the usage
// before the slot, and an error wrapping [ErrUploadQuota] when the slot
// does not fit, or [ErrExists] when its ID is taken.
func (s *Store) CreateUploadSlot(ctx context.Context, slot UploadSlot, quota int64, pendingSince time.Time) (UploadUsage, error) {
	var u UploadUsage
	err := s.update(ctx, func(tx *sql.Tx) error {
		var oldestUp, oldestPending sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(size), 0),
				MIN(CASE WHEN uploaded > 0 THEN uploaded END),
				MIN(CASE WHEN uploaded = 0 THEN created END)
			FROM upload_slots WHERE host = ? AND owner = ? AND (uploaded > 0 OR created >= ?)`,
			slot.Host, slot.Owner, pendingSince.Unix()).Scan(&u.Bytes, &oldestUp, &oldestPending)
		if err != nil {
			return err
		}
		if oldestUp.Valid {
			u.OldestUploaded = time.Unix(oldestUp.Int64, 0)
		}
		if oldestPending.Valid {
			u.OldestPending = time.Unix(oldestPending.Int64, 0)
		}
		if quota > 0 && u.Bytes+slot.Size > quota {
			return ErrUploadQuota
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO upload_slots (id, host, owner, filename, size, content_type, created)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			slot.ID, slot.Host, slot.Owner, slot.Filename, slot.Size, slot.ContentType, slot.Created.Unix())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrExists
		}
		return nil
	})
	if err != nil {
		return u, fmt.Errorf("storage: upload slot for %s on %s: %w", slot.Owner, slot.Host, err)
	}
	return u, nil
}

// UploadSlotByID returns the slot id. The error wraps [ErrNotFound] when
// there is none.
func (s *Store) UploadSlotByID(ctx context.Context, id string) (UploadSlot, error) {
	row := s.db.QueryRowContext(ctx, `SELECT id, host, owner, filename, size, content_type, created, uploaded
		FROM upload_slots WHERE id = ?`, id)
	slot, err := scanUploadSlot(row.Scan)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return UploadSlot{}, fmt.Errorf("storage: upload slot %s: %w", id, err)
	}
	return slot, nil
}

// MarkUploaded records that the PUT of slot id completed at at. The error
// wraps [ErrExists] when it had already, and [ErrNotFound] when the slot
// is gone.
func (s *Store) MarkUploaded(ctx context.Context, id string, at time.Time) error {
	err := s.update(ctx, func(tx *sql.Tx) error {
		var uploaded int64
		err := tx.QueryRowContext(ctx, `SELECT uploaded FROM upload_slots WHERE id = ?`, id).Scan(&uploaded)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return ErrNotFound
		case err != nil:
			return err
		case uploaded != 0:
			return ErrExists
		}
		// At least 1: 0 means pending.
		_, err = tx.ExecContext(ctx, `UPDATE upload_slots SET uploaded = ? WHERE id = ?`, max(at.Unix(), 1), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("storage: mark upload slot %s uploaded: %w", id, err)
	}
	return nil
}

// ExpiredUploadSlots returns up to limit slots of host whose files were
// uploaded before uploadedBefore, or which are still pending and were
// created before pendingBefore, oldest first.
func (s *Store) ExpiredUploadSlots(ctx context.Context, host string, uploadedBefore, pendingBefore time.Time, limit int) ([]UploadSlot, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, host, owner, filename, size, content_type, created, uploaded
		FROM upload_slots WHERE host = ? AND ((uploaded > 0 AND uploaded < ?) OR (uploaded = 0 AND created < ?))
		ORDER BY created LIMIT ?`, host, uploadedBefore.Unix(), pendingBefore.Unix(), limit)
	if err != nil {
		return nil, fmt.Errorf("storage: expired upload slots of %s: %w", host, err)
	}
	defer rows.Close()
	var out []UploadSlot
	for rows.Next() {
		slot, err := scanUploadSlot(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("storage: expired upload slots of %s: %w", host, err)
		}
		out = append(out, slot)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: expired upload slots of %s: %w", host, err)
	}
	return out, nil
}

// DeleteUploadSlots deletes the slots ids; those already gone are no
// error.
func (s *Store) DeleteUploadSlots(ctx context.Context, ids []string) error {
	err := s.update(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `DELETE FROM upload_slots WHERE id = ?`, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: delete %d upload slots: %w", len(ids), err)
	}
	return nil
}

// scanUploadSlot reads a row of the columns id, host, owner, filename,
// size, content_type, created, uploaded.
func scanUploadSlot(scan func(dest ...any) error) (UploadSlot, error) {
	var slot UploadSlot
	var created, uploaded int64
	if err := scan(&slot.ID, &slot.Host, &slot.Owner, &slot.Filename, &slot.Size, &slot.ContentType, &created, &uploaded); err != nil {
		return UploadSlot{}, err
	}
	slot.Created = time.Unix(created, 0)
	if uploaded != 0 {
		slot.Uploaded = time.Unix(uploaded, 0)
	}
	return slot, nil
}

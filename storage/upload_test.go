package storage

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestUploadSlots(t *testing.T) {
	ctx := context.Background()
	t0 := time.Unix(1_800_000_000, 0)
	slot := func(id, owner string, size int64, created time.Time) UploadSlot {
		return UploadSlot{ID: id, Host: "upload.example.com", Owner: owner, Filename: id + ".jpg", Size: size,
			ContentType: "image/jpeg", Created: created}
	}
	runOnBackends(t, []storeTest{
		{"a slot reads back, pending then uploaded once", func(t *testing.T, s *Store) {
			want := slot("a", "alice@example.com", 10, t0)
			if _, err := s.CreateUploadSlot(ctx, want, 0, t0); err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreateUploadSlot(ctx, want, 0, t0); !errors.Is(err, ErrExists) {
				t.Errorf("second create: %v; want ErrExists", err)
			}
			got, err := s.UploadSlotByID(ctx, "a")
			if err != nil || got != want {
				t.Fatalf("UploadSlotByID = %+v, %v; want %+v", got, err, want)
			}
			if err := s.MarkUploaded(ctx, "a", t0.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			if err := s.MarkUploaded(ctx, "a", t0.Add(time.Minute)); !errors.Is(err, ErrExists) {
				t.Errorf("second MarkUploaded: %v; want ErrExists", err)
			}
			if err := s.MarkUploaded(ctx, "nope", t0); !errors.Is(err, ErrNotFound) {
				t.Errorf("MarkUploaded of no slot: %v; want ErrNotFound", err)
			}
			if _, err := s.UploadSlotByID(ctx, "nope"); !errors.Is(err, ErrNotFound) {
				t.Errorf("UploadSlotByID of no slot: %v; want ErrNotFound", err)
			}
		}},
		{"the quota counts uploads and recent pending slots of the owner", func(t *testing.T, s *Store) {
			mustSlot := func(sl UploadSlot, quota int64, since time.Time) UploadUsage {
				t.Helper()
				u, err := s.CreateUploadSlot(ctx, sl, quota, since)
				if err != nil {
					t.Fatal(err)
				}
				return u
			}
			mustSlot(slot("old-pending", "alice@example.com", 50, t0), 100, t0)
			mustSlot(slot("up", "alice@example.com", 30, t0.Add(time.Second)), 100, t0)
			if err := s.MarkUploaded(ctx, "up", t0.Add(2*time.Second)); err != nil {
				t.Fatal(err)
			}
			mustSlot(slot("bob", "bob@example.com", 90, t0), 100, t0)
			// At t0+1m pending slots from before t0+30s no longer count:
			// 30 bytes used.
			since := t0.Add(30 * time.Second)
			u := mustSlot(slot("p2", "alice@example.com", 60, t0.Add(time.Minute)), 100, since)
			if u.Bytes != 30 || !u.OldestUploaded.Equal(t0.Add(2*time.Second)) || !u.OldestPending.IsZero() {
				t.Errorf("usage before p2 = %+v; want 30 bytes, oldest upload at t0+2s, no pending", u)
			}
			u, err := s.CreateUploadSlot(ctx, slot("p3", "alice@example.com", 11, t0.Add(time.Minute)), 100, since)
			if !errors.Is(err, ErrUploadQuota) || u.Bytes != 90 || !u.OldestPending.Equal(t0.Add(time.Minute)) {
				t.Errorf("p3 past the quota: %+v, %v; want ErrUploadQuota with 90 bytes used", u, err)
			}
			if _, err := s.UploadSlotByID(ctx, "p3"); !errors.Is(err, ErrNotFound) {
				t.Errorf("the refused slot was stored: %v", err)
			}
			mustSlot(slot("p4", "alice@example.com", 10, t0.Add(time.Minute)), 100, since)
		}},
		{"expired slots are listed and deleted", func(t *testing.T, s *Store) {
			for _, sl := range []UploadSlot{slot("up-old", "a@x", 1, t0), slot("up-new", "a@x", 1, t0),
				slot("pending-old", "a@x", 1, t0), slot("pending-new", "a@x", 1, t0.Add(time.Hour))} {
				if _, err := s.CreateUploadSlot(ctx, sl, 0, t0); err != nil {
					t.Fatal(err)
				}
			}
			_ = s.MarkUploaded(ctx, "up-old", t0.Add(time.Minute))
			_ = s.MarkUploaded(ctx, "up-new", t0.Add(2*time.Hour))
			got, err := s.ExpiredUploadSlots(ctx, "upload.example.com", t0.Add(time.Hour), t0.Add(30*time.Minute), 10)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, sl := range got {
				ids = append(ids, sl.ID)
			}
			if len(ids) != 2 || !(ids[0] == "up-old" && ids[1] == "pending-old" || ids[0] == "pending-old" && ids[1] == "up-old") {
				t.Errorf("expired = %v; want up-old and pending-old", ids)
			}
			if err := s.DeleteUploadSlots(ctx, append(ids, "never-was")); err != nil {
				t.Fatal(err)
			}
			if _, err := s.UploadSlotByID(ctx, "up-old"); !errors.Is(err, ErrNotFound) {
				t.Errorf("up-old after delete: %v", err)
			}
			if _, err := s.UploadSlotByID(ctx, "up-new"); err != nil {
				t.Errorf("up-new after delete: %v", err)
			}
		}},
	})
}

package upload

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"
)

// expireBatch is how many slots one step of a sweep removes.
const expireBatch = 500

// pendingGrace is how long a slot that was never filled is kept past its
// lifetime: a PUT that started just in time may still be running.
const pendingGrace = time.Hour

// expireLoop sweeps now and then at an interval of a tenth of
// expires_after, between a minute and an hour.
func (s *Service) expireLoop(ctx context.Context) {
	every := min(max(s.opts.ExpiresAfter.Duration/10, time.Minute), time.Hour)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := s.Sweep(ctx, s.now()); err != nil && ctx.Err() == nil {
			s.log.Warn("upload: expiry sweep failed; trying again later", "host", s.domain, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep removes, as of now, the files uploaded more than expires_after
// ago and the slots never filled within their lifetime (and an hour's
// grace), file first, then the record; it returns how many slots it
// removed. A file that cannot be removed keeps its record, so the next
// sweep tries again. The background task calls it; tests call it with a
// later now.
func (s *Service) Sweep(ctx context.Context, now time.Time) (int, error) {
	removed := 0
	for {
		slots, err := s.store.ExpiredUploadSlots(ctx, s.domain, now.Add(-s.opts.ExpiresAfter.Duration),
			now.Add(-s.opts.SlotLifetime.Duration-pendingGrace), expireBatch)
		if err != nil || len(slots) == 0 {
			return removed, err
		}
		ids := make([]string, 0, len(slots))
		for _, slot := range slots {
			err := os.Remove(filepath.Join(s.dir, slot.ID))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				s.log.Error("upload: expired file not removed", "host", s.domain, "slot", slot.ID, "err", err)
				continue
			}
			ids = append(ids, slot.ID)
		}
		if len(ids) == 0 {
			return removed, errors.New("upload: no expired file could be removed")
		}
		if err := s.store.DeleteUploadSlots(ctx, ids); err != nil {
			return removed, err
		}
		removed += len(ids)
		s.metrics.expired.Add(int64(len(ids)))
		if len(slots) < expireBatch {
			return removed, nil
		}
	}
}

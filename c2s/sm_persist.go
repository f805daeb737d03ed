package c2s

import (
	"context"
	"log/slog"
	"time"

	"github.com/parley-im/parley/storage"
)

// SMCounts stores the counts of ended resumable sessions (XEP-0198 §5)
// across a restart: a client whose server restarted under it learns, on
// its resume, what reached the server, and sends again only the rest
// (Prosody's mod_smacks keeps them in its store the same way). One
// snapshot is written at shutdown, not one row per ended session: a
// crash loses them, and the client then sends again what it is unsure
// of, as it would after item-not-found.
type SMCounts interface {
	SaveSMCounts(ctx context.Context, counts []storage.SMCount) error
	TakeSMCounts(ctx context.Context) ([]storage.SMCount, error)
}

// smSaveTimeout bounds the write of the counts at shutdown, when the
// shutdown's own deadline has passed already.
const smSaveTimeout = 2 * time.Second

// RestoreSMCounts reads back the counts that the last Shutdown saved;
// call it before serving. Without Config.SMCounts it does nothing.
func (s *Server) RestoreSMCounts(ctx context.Context) error {
	if s.cfg.SMCounts == nil {
		return nil
	}
	counts, err := s.cfg.SMCounts.TakeSMCounts(ctx)
	if err != nil {
		return err
	}
	for _, c := range counts {
		s.gone.put(c.User, c.ID, c.H, c.Ended)
	}
	return nil
}

// saveSMCounts writes the counts of ended sessions, sessions among them
// (they must have ended: their goroutines count): those Shutdown closed
// were resumable, and their clients will try to resume them.
func (s *Server) saveSMCounts(ctx context.Context, sessions []*Session) {
	if s.cfg.SMCounts == nil {
		return
	}
	now := time.Now()
	for _, sess := range sessions {
		sess.qmu.Lock()
		if sm := sess.sm; sm != nil && sm.id != "" {
			s.gone.put(sess.username+"@"+sess.host, sm.id, sm.inH, now)
		}
		sess.qmu.Unlock()
	}
	counts := s.gone.snapshot(now)
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), smSaveTimeout)
		defer cancel()
	}
	if err := s.cfg.SMCounts.SaveSMCounts(ctx, counts); err != nil {
		s.cfg.Logger.Warn("c2s: stream management counts not saved: resumes after the restart get no h", "err", err)
		return
	}
	s.cfg.Logger.Log(ctx, slog.LevelDebug, "c2s: stream management counts saved", "sessions", len(counts))
}

// snapshot returns the counts still good at now.
func (g *smGone) snapshot(now time.Time) []storage.SMCount {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []storage.SMCount
	for u, l := range g.byUser {
		for _, e := range l {
			if now.Sub(e.at) < smGoneFor {
				out = append(out, storage.SMCount{User: u, ID: e.id, H: e.h, Ended: e.at})
			}
		}
	}
	return out
}

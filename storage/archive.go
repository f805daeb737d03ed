package storage

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// MaxArchivePage is the most messages one [Store.QueryArchive] returns, and
// the most ids it fetches at once: a larger Max is clamped to it (XEP-0313
// §4.3.1 lets the server return fewer than asked), more IDs are refused.
// The module's own page limit is lower.
const MaxArchivePage = 1000

// maxAppendBatch is the most appends one transaction of the archive writer
// commits: enough to share one fsync among many senders, small enough that
// no transaction holds the write lock for long.
const maxAppendBatch = 1024

// archiveQueue is how many appends wait for the writer before the next
// sender waits for room: a bound on memory when the disk falls behind.
const archiveQueue = 4096

// ErrArchiveQuery is wrapped by the errors of archive queries that ask for
// more than the store answers at once.
var ErrArchiveQuery = errors.New("archive query refused")

// errStoreClosed is what an append gets once the Store is closed.
var errStoreClosed = errors.New("store closed")

// ArchiveEntry is a message to keep in a user's archive (XEP-0313).
type ArchiveEntry struct {
	With     string    // the other party's bare JID
	Resource string    // the other party's resource, "" if none
	Outgoing bool      // the owner sent it
	Stanza   []byte    // the message as it is kept
	At       time.Time // when it was received; zero means now
}

// ArchivedMessage is a message in a user's archive.
type ArchivedMessage struct {
	ID       string    // its stanza-id (XEP-0359): random, unique in the archive
	At       time.Time // when it was archived, in UTC; never before an older message's
	With     string    // the other party's bare JID
	Resource string    // the other party's resource, "" if none
	Outgoing bool      // the owner sent it
	Stanza   []byte
}

// ArchiveQuery selects messages of a user's archive. The result set is
// what matches With, Resource, Start, End, AfterID and BeforeID (the
// XEP-0313 form); After and Before page through it (XEP-0059), and IDs
// instead fetches the given messages.
type ArchiveQuery struct {
	With     string    // the other party's bare JID; "" matches all
	Resource string    // with With: only that resource of it
	Start    time.Time // the oldest time to match, inclusive; zero for none
	End      time.Time // the newest time to match, inclusive; zero for none

	AfterID  string // only messages after this one (XEP-0313 after-id)
	BeforeID string // only messages before this one (before-id)

	After    string // RSM <after/>: the page starts after this message
	Before   string // RSM <before/>: the page ends before this message
	Backward bool   // the page is the last one before Before (or the end), not the first after After

	IDs []string // fetch exactly these messages; the filters and paging above are ignored

	Max   int  // the most messages in the page, clamped to MaxArchivePage
	Count bool // count the result set (RSM <count/>): a read of its index range
}

// ArchivePage is one page of an archive query, oldest message first
// whichever direction it was read in.
type ArchivePage struct {
	Messages []ArchivedMessage
	// Complete says that no message of the set lies beyond this page in
	// the direction of paging (XEP-0313 §4.3.2's complete).
	Complete bool
	// Count is the size of the result set when the query asked for it,
	// else -1.
	Count int
}

// ArchivePrefs are a user's archiving preferences (XEP-0313 §6).
type ArchivePrefs struct {
	Default string   // "always", "never" or "roster"
	Always  []string // bare JIDs whose messages are always archived
	Never   []string // bare JIDs whose messages are never archived
}

// appendReq is one append waiting for the archive writer, or a barrier
// (SyncArchive) when barrier is set.
type appendReq struct {
	host, user string
	e          ArchiveEntry
	id         string            // the stanza-id chosen by ArchiveAsync; "" draws one
	done       chan appendResult // buffered: the writer never waits on it; nil for notify
	notify     func(error)       // ArchiveAsync's, called by the writer after the commit
	barrier    bool
}

type appendResult struct {
	m   ArchivedMessage
	err error
}

// archiveWriter groups concurrent appends into one transaction: a sender
// waits for the commit of its message, but a hundred senders share one.
type archiveWriter struct {
	once     sync.Once
	stopOnce sync.Once
	reqs     chan *appendReq
	quit     chan struct{} // closed by Close
	done     chan struct{} // closed when the writer goroutine has ended
}

// start starts the writer of s once.
func (w *archiveWriter) start(s *Store) {
	w.once.Do(func() {
		w.reqs = make(chan *appendReq, archiveQueue)
		w.quit = make(chan struct{})
		w.done = make(chan struct{})
		go s.writeArchive()
	})
}

// stop ends the writer, if it ran, after the batch it is committing.
func (w *archiveWriter) stop() {
	w.stopOnce.Do(func() {
		// A writer that never started never will: appends after Close
		// find quit closed.
		w.once.Do(func() {
			w.quit = make(chan struct{})
			w.done = make(chan struct{})
			close(w.done)
		})
		close(w.quit)
		<-w.done
	})
}

// AppendArchive archives e for user on host and returns the message as
// kept, with its new stanza-id. It returns once the message is committed;
// appends made meanwhile by other goroutines are committed in the same
// transaction, so they share one sync to disk. The error wraps
// [ErrNotFound] when user has no account on host.
func (s *Store) AppendArchive(ctx context.Context, host, user string, e ArchiveEntry) (ArchivedMessage, error) {
	w := &s.archive
	w.start(s)
	r := &appendReq{host: host, user: user, e: e, done: make(chan appendResult, 1)}
	select {
	case w.reqs <- r:
	case <-w.quit:
		return ArchivedMessage{}, fmt.Errorf("storage: archive a message of %s@%s: %w", user, host, errStoreClosed)
	case <-ctx.Done():
		return ArchivedMessage{}, fmt.Errorf("storage: archive a message of %s@%s: %w", user, host, ctx.Err())
	}
	select {
	case res := <-r.done:
		if res.err != nil {
			return ArchivedMessage{}, fmt.Errorf("storage: archive a message of %s@%s: %w", user, host, res.err)
		}
		return res.m, nil
	case <-w.done:
		// The writer took no more requests after quit; one still queued
		// was not written.
		select {
		case res := <-r.done:
			if res.err == nil {
				return res.m, nil
			}
		default:
		}
		return ArchivedMessage{}, fmt.Errorf("storage: archive a message of %s@%s: %w", user, host, errStoreClosed)
	case <-ctx.Done():
		// It may still be committed: the caller treats it as not acknowledged.
		return ArchivedMessage{}, fmt.Errorf("storage: archive a message of %s@%s: %w", user, host, ctx.Err())
	}
}

// ArchiveAsync archives e for user on host without waiting for the
// commit, and returns the stanza-id the message will have (drawn now, so
// that it can go on the delivered copy at once). The writer commits what
// waits in one transaction, and then calls notify, when not nil, with
// the commit's outcome (an error wrapping [ErrNotFound] when user has no
// account); notify runs on the writer's goroutine and must not block.
// ArchiveAsync waits only when archiveQueue appends already wait, or
// returns ctx's error.
func (s *Store) ArchiveAsync(ctx context.Context, host, user string, e ArchiveEntry, notify func(error)) (string, error) {
	w := &s.archive
	w.start(s)
	r := &appendReq{host: host, user: user, e: e, id: newStanzaID(), notify: notify}
	if r.e.At.IsZero() {
		r.e.At = time.Now()
	}
	select {
	case w.reqs <- r:
		return r.id, nil
	case <-w.quit:
		return "", fmt.Errorf("storage: archive a message of %s@%s: %w", user, host, errStoreClosed)
	case <-ctx.Done():
		return "", fmt.Errorf("storage: archive a message of %s@%s: %w", user, host, ctx.Err())
	}
}

// SyncArchive returns once every append queued before it is committed (or
// failed), so that a query sees them.
func (s *Store) SyncArchive(ctx context.Context) error {
	w := &s.archive
	w.start(s)
	r := &appendReq{barrier: true, done: make(chan appendResult, 1)}
	select {
	case w.reqs <- r:
	case <-w.quit:
		return errStoreClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-r.done:
		return nil
	case <-w.done:
		return errStoreClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// writeArchive is the archive writer's goroutine: it takes what requests
// are waiting, up to maxAppendBatch, and commits them in one transaction.
func (s *Store) writeArchive() {
	w := &s.archive
	defer close(w.done)
	batch := make([]*appendReq, 0, maxAppendBatch)
	for {
		batch = batch[:0]
		select {
		case r := <-w.reqs:
			batch = append(batch, r)
		case <-w.quit:
			return
		}
	more:
		for len(batch) < maxAppendBatch {
			select {
			case r := <-w.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		s.commitAppends(batch)
	}
}

// commitAppends inserts batch in one transaction and answers each request.
// A row that fails (no account) fails alone: SQLite undoes only the
// statement, and the others commit.
func (s *Store) commitAppends(batch []*appendReq) {
	// Not a request's context: the batch is shared, and a caller that
	// stops waiting does not take the others' messages with it.
	ctx := context.Background()
	results := make([]appendResult, len(batch))
	err := s.update(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, insertArchive)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i, r := range batch {
			if r.barrier {
				continue
			}
			m, err := insertArchived(ctx, stmt, r.host, r.user, r.e, r.id)
			results[i] = appendResult{m, noAccount(err)}
		}
		return nil
	})
	for i, r := range batch {
		if err != nil {
			results[i] = appendResult{err: err}
		}
		if r.notify != nil {
			r.notify(results[i].err)
		}
		if r.done != nil {
			r.done <- results[i]
		}
	}
}

// AppendArchiveBatch archives es for user on host in one transaction, in
// order, and returns them as kept. It is for imports and tests: a server
// archives with [Store.AppendArchive].
func (s *Store) AppendArchiveBatch(ctx context.Context, host, user string, es []ArchiveEntry) ([]ArchivedMessage, error) {
	ms := make([]ArchivedMessage, 0, len(es))
	err := s.update(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, insertArchive)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, e := range es {
			m, err := insertArchived(ctx, stmt, host, user, e, "")
			if err != nil {
				return err
			}
			ms = append(ms, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: archive %d messages of %s@%s: %w", len(es), user, host, err)
	}
	return ms, nil
}

// insertArchive keeps at from going back in time within a user's archive:
// a clock stepped back still sorts after what was archived, so start and
// end can be turned into seq bounds (the max is one index probe).
const insertArchive = `INSERT INTO archive (host, username, stanza_id, at, with_jid, with_res, outgoing, stanza)
	VALUES (?1, ?2, ?3, max(?4, coalesce((SELECT max(at) FROM archive WHERE host = ?1 AND username = ?2), 0)), ?5, ?6, ?7, ?8)
	RETURNING at`

// insertArchived inserts e with the stanza-id id, or a new one when id
// is "". A chosen id that met an old one (one chance in 2^128) fails.
func insertArchived(ctx context.Context, stmt *sql.Stmt, host, user string, e ArchiveEntry, id string) (ArchivedMessage, error) {
	at := e.At
	if at.IsZero() {
		at = time.Now()
	}
	m := ArchivedMessage{With: e.With, Resource: e.Resource, Outgoing: e.Outgoing, Stanza: e.Stanza}
	for try := 0; ; try++ {
		m.ID = id
		if id == "" {
			m.ID = newStanzaID()
		} else {
			try = 1
		}
		var ns int64
		err := stmt.QueryRowContext(ctx, host, user, m.ID, at.UnixNano(), e.With, e.Resource, e.Outgoing, blob(e.Stanza)).Scan(&ns)
		var se *sqlite.Error
		if try == 0 && errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE {
			continue // 128 random bits met an old id: draw again
		}
		if err != nil {
			return ArchivedMessage{}, err
		}
		m.At = time.Unix(0, ns).UTC()
		return m, nil
	}
}

// newStanzaID returns a stanza-id: 128 random bits, so ids are unique and
// cannot be guessed (XEP-0359 §4), in 22 URL-safe characters.
func newStanzaID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// archiveColumns are what scanArchived reads, in its order.
const archiveColumns = `seq, stanza_id, at, with_jid, with_res, outgoing, stanza`

// scanArchived reads rows of archiveColumns.
func scanArchived(rows *sql.Rows) ([]ArchivedMessage, []int64, error) {
	defer rows.Close()
	var (
		ms   []ArchivedMessage
		seqs []int64
	)
	for rows.Next() {
		var (
			m       ArchivedMessage
			seq, at int64
		)
		if err := rows.Scan(&seq, &m.ID, &at, &m.With, &m.Resource, &m.Outgoing, &m.Stanza); err != nil {
			return nil, nil, err
		}
		m.At = time.Unix(0, at).UTC()
		ms = append(ms, m)
		seqs = append(seqs, seq)
	}
	return ms, seqs, rows.Err()
}

// QueryArchive returns a page of user's archive on host. Every query reads
// index ranges of the page's size (and, with Count, the set's index range):
// never the whole archive. An After, Before, AfterID, BeforeID or one of
// IDs that is not in the archive is an error wrapping [ErrNotFound]
// (XEP-0313 says item-not-found); more IDs than [MaxArchivePage] wraps
// [ErrArchiveQuery].
func (s *Store) QueryArchive(ctx context.Context, host, user string, q ArchiveQuery) (ArchivePage, error) {
	var page ArchivePage
	err := s.view(ctx, func(tx *sql.Tx) error {
		var err error
		if len(q.IDs) > 0 {
			page, err = archiveByIDs(ctx, tx, host, user, q.IDs)
		} else {
			page, err = archivePage(ctx, tx, host, user, q)
		}
		return err
	})
	if err != nil {
		return ArchivePage{}, fmt.Errorf("storage: query the archive of %s@%s: %w", user, host, err)
	}
	return page, nil
}

// archiveByIDs fetches the messages ids, oldest first.
func archiveByIDs(ctx context.Context, tx *sql.Tx, host, user string, ids []string) (ArchivePage, error) {
	if len(ids) > MaxArchivePage {
		return ArchivePage{}, fmt.Errorf("%d ids, at most %d at once: %w", len(ids), MaxArchivePage, ErrArchiveQuery)
	}
	uniq := slices.Clone(ids)
	slices.Sort(uniq)
	uniq = slices.Compact(uniq)
	args := []any{host, user}
	for _, id := range uniq {
		args = append(args, id)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+archiveColumns+` FROM archive
		WHERE host = ? AND username = ? AND stanza_id IN (?`+strings.Repeat(", ?", len(uniq)-1)+`) ORDER BY seq`, args...)
	if err != nil {
		return ArchivePage{}, err
	}
	ms, _, err := scanArchived(rows)
	if err != nil {
		return ArchivePage{}, err
	}
	if len(ms) != len(uniq) {
		found := make(map[string]bool, len(ms))
		for _, m := range ms {
			found[m.ID] = true
		}
		for _, id := range uniq {
			if !found[id] {
				return ArchivePage{}, fmt.Errorf("message %q: %w", id, ErrNotFound)
			}
		}
	}
	return ArchivePage{Messages: ms, Complete: true, Count: len(ms)}, nil
}

// archivePage answers a query without IDs. Each filter becomes an
// exclusive seq bound (lo, hi), so the page is one index range read.
func archivePage(ctx context.Context, tx *sql.Tx, host, user string, q ArchiveQuery) (ArchivePage, error) {
	empty := ArchivePage{Complete: true, Count: -1}
	if q.Count {
		empty.Count = 0
	}
	lo, hi := int64(0), int64(math.MaxInt64)
	seqOf := func(id string) (int64, error) {
		var seq int64
		err := tx.QueryRowContext(ctx, `SELECT seq FROM archive WHERE host = ? AND username = ? AND stanza_id = ?`,
			host, user, id).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("message %q: %w", id, ErrNotFound)
		}
		return seq, err
	}
	if q.AfterID != "" {
		seq, err := seqOf(q.AfterID)
		if err != nil {
			return ArchivePage{}, err
		}
		lo = max(lo, seq)
	}
	if q.BeforeID != "" {
		seq, err := seqOf(q.BeforeID)
		if err != nil {
			return ArchivePage{}, err
		}
		hi = min(hi, seq)
	}
	if !q.Start.IsZero() {
		var seq int64
		err := tx.QueryRowContext(ctx, `SELECT seq FROM archive WHERE host = ? AND username = ? AND at >= ?
			ORDER BY at, seq LIMIT 1`, host, user, q.Start.UnixNano()).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			return empty, nil
		}
		if err != nil {
			return ArchivePage{}, err
		}
		lo = max(lo, seq-1)
	}
	if !q.End.IsZero() {
		var seq int64
		err := tx.QueryRowContext(ctx, `SELECT seq FROM archive WHERE host = ? AND username = ? AND at <= ?
			ORDER BY at DESC, seq DESC LIMIT 1`, host, user, q.End.UnixNano()).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			return empty, nil
		}
		if err != nil {
			return ArchivePage{}, err
		}
		hi = min(hi, seq+1)
	}

	filter := `host = ? AND username = ?`
	args := []any{host, user}
	if q.With != "" {
		filter += ` AND with_jid = ?`
		args = append(args, q.With)
		if q.Resource != "" {
			filter += ` AND with_res = ?`
			args = append(args, q.Resource)
		}
	}

	page := ArchivePage{Count: -1}
	if q.Count {
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM archive WHERE `+filter+` AND seq > ? AND seq < ?`,
			append(args, lo, hi)...).Scan(&page.Count); err != nil {
			return ArchivePage{}, err
		}
	}

	// The RSM cursor narrows the set to the page's side of it.
	if q.After != "" {
		seq, err := seqOf(q.After)
		if err != nil {
			return ArchivePage{}, err
		}
		lo = max(lo, seq)
	}
	if q.Before != "" {
		seq, err := seqOf(q.Before)
		if err != nil {
			return ArchivePage{}, err
		}
		hi = min(hi, seq)
	}
	n := min(max(q.Max, 0), MaxArchivePage)
	order := "ASC"
	if q.Backward {
		order = "DESC"
	}
	// One more than the page, to tell whether the page is the last.
	rows, err := tx.QueryContext(ctx, `SELECT `+archiveColumns+` FROM archive WHERE `+filter+
		` AND seq > ? AND seq < ? ORDER BY seq `+order+` LIMIT ?`, append(args, lo, hi, n+1)...)
	if err != nil {
		return ArchivePage{}, err
	}
	ms, _, err := scanArchived(rows)
	if err != nil {
		return ArchivePage{}, err
	}
	page.Complete = len(ms) <= n
	if len(ms) > n {
		ms = ms[:n]
	}
	if q.Backward {
		slices.Reverse(ms)
	}
	page.Messages = ms
	return page, nil
}

// ArchiveBounds returns the oldest and the newest message of user's
// archive on host (XEP-0313 §5's metadata); ok is false when it is empty.
func (s *Store) ArchiveBounds(ctx context.Context, host, user string) (first, last ArchivedMessage, ok bool, err error) {
	err = s.view(ctx, func(tx *sql.Tx) error {
		for i, order := range []string{"ASC", "DESC"} {
			rows, err := tx.QueryContext(ctx, `SELECT `+archiveColumns+` FROM archive
				WHERE host = ? AND username = ? ORDER BY seq `+order+` LIMIT 1`, host, user)
			if err != nil {
				return err
			}
			ms, _, err := scanArchived(rows)
			if err != nil || len(ms) == 0 {
				return err
			}
			ok = true
			if i == 0 {
				first = ms[0]
			} else {
				last = ms[0]
			}
		}
		return nil
	})
	if err != nil {
		return ArchivedMessage{}, ArchivedMessage{}, false, fmt.Errorf("storage: archive bounds of %s@%s: %w", user, host, err)
	}
	return first, last, ok, nil
}

// ExpireArchive deletes the messages of every archive archived before
// cutoff, batch of them per transaction (at least 1), so that the writer's
// lock is never held for long and appends go on between batches. It
// returns how many it deleted; on an error or a done ctx, those deleted so
// far stay deleted.
func (s *Store) ExpireArchive(ctx context.Context, cutoff time.Time, batch int) (int64, error) {
	batch = max(batch, 1)
	var total int64
	for {
		var n int64
		err := s.update(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `DELETE FROM archive WHERE seq IN
				(SELECT seq FROM archive WHERE at < ? ORDER BY at LIMIT ?)`, cutoff.UnixNano(), batch)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("storage: expire archived messages before %v: %w", cutoff, err)
		}
		total += n
		if n < int64(batch) {
			return total, nil
		}
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("storage: expire archived messages before %v: %w", cutoff, err)
		}
	}
}

// ArchivePrefs returns user's archiving preferences on host; the error
// wraps [ErrNotFound] when the user never set any (the server's default
// applies).
func (s *Store) ArchivePrefs(ctx context.Context, host, user string) (ArchivePrefs, error) {
	var (
		p                 ArchivePrefs
		always, neverJSON string
	)
	err := s.db.QueryRowContext(ctx, `SELECT policy, always_json, never_json FROM archive_prefs
		WHERE host = ? AND username = ?`, host, user).Scan(&p.Default, &always, &neverJSON)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err == nil {
		err = json.Unmarshal([]byte(always), &p.Always)
	}
	if err == nil {
		err = json.Unmarshal([]byte(neverJSON), &p.Never)
	}
	if err != nil {
		return ArchivePrefs{}, fmt.Errorf("storage: archive preferences of %s@%s: %w", user, host, err)
	}
	return p, nil
}

// SetArchivePrefs replaces user's archiving preferences on host. The lists
// are kept sorted without duplicates; a JID in both is kept in Never only
// (not archiving is the safer reading). The error wraps [ErrNotFound]
// when user has no account on host.
func (s *Store) SetArchivePrefs(ctx context.Context, host, user string, p ArchivePrefs) error {
	norm := func(l []string) []string {
		l = slices.Clone(l)
		slices.Sort(l)
		return slices.Compact(l)
	}
	never := norm(p.Never)
	always := slices.DeleteFunc(norm(p.Always), func(j string) bool {
		_, found := slices.BinarySearch(never, j)
		return found
	})
	enc := func(l []string) string {
		if l == nil {
			l = []string{}
		}
		b, _ := json.Marshal(l) // strings always marshal
		return string(b)
	}
	if p.Default != "always" && p.Default != "never" && p.Default != "roster" {
		return fmt.Errorf("storage: archive preferences of %s@%s: default %q is not always, never or roster", user, host, p.Default)
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO archive_prefs (host, username, policy, always_json, never_json)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (host, username) DO UPDATE
		SET policy = excluded.policy, always_json = excluded.always_json, never_json = excluded.never_json`,
		host, user, p.Default, enc(always), enc(never))
	if err != nil {
		return fmt.Errorf("storage: set archive preferences of %s@%s: %w", user, host, noAccount(err))
	}
	return nil
}

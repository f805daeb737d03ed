package storage

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
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

// archiveGather is how long the archive writer waits, after the first of
// a run of appends that nobody waits for (ArchiveAsync, ArchiveRoomAsync),
// for others to join its transaction. At a room's rate, 200 messages a
// second spread evenly, each commit held one message and its WAL sync;
// messages are delivered before they are committed either way, so the
// wait costs no one latency, only widens by this much what a crash could
// take from the archive. An append someone waits for (AppendArchive) or
// a query's barrier (SyncArchive) ends the wait at once; so does stream
// management's acknowledgement of a message the user's archive keeps
// (the mam module's BeforeAck). 50 ms: the rooms' fan-out with archives
// on took 22 % less CPU than at 10 ms (BENCHMARKS.md), each commit's
// system calls also waking the runtime's sysmon.
const archiveGather = 50 * time.Millisecond

// archiveQueue is how many appends wait for the writer before the next
// sender waits for room: a bound on memory when the disk falls behind.
const archiveQueue = 4096

// MaxArchiveSearch is the most characters (runes) of an
// [ArchiveQuery.Search]: enough for any phrase a person looks for, and a
// bound on the terms one query intersects.
const MaxArchiveSearch = 256

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
	At       time.Time // when it was received; zero means now; raised to just after the newest message of any archive
	// Body is the text the full-text index keeps for the message (its
	// bodies); "" keeps none. The archive module sets it only on hosts
	// with archive_search on, so that the index costs nothing elsewhere.
	Body string
}

// ArchivedMessage is a message in a user's archive.
type ArchivedMessage struct {
	ID       string    // its stanza-id (XEP-0359): unique, unguessable without the key
	At       time.Time // when it was archived, in UTC; after every older message of every archive
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

	// Search keeps only the messages whose indexed Body has every term
	// of it (XEP-0431; [SearchTerms] says what a term is); "" keeps all.
	// Messages archived without a Body never match.
	Search string

	IDs []string // fetch exactly these messages; the filters, Search and paging above are ignored

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
	kind       *archiveKind // users' archives or rooms'
	host, user string       // the owner: a user, or a room's localpart
	e          ArchiveEntry
	seq, at    int64             // assigned by enqueue: increasing together
	done       chan appendResult // buffered: the writer never waits on it; nil for notify
	notify     func(error)       // ArchiveAsync's, called by the writer after the commit
	barrier    bool
}

type appendResult struct {
	m   ArchivedMessage
	err error
}

// archiveWriter assigns each archived message its seq and time, and
// commits what waits in one transaction: a hundred senders share one.
//
// seq and at are assigned together under mu, at = max(the entry's time,
// the last at + 1 ns), so at strictly increases with seq across every
// archive: a time bound is a seq bound, and ordering by (owner, at) is
// ordering by seq. The queue is a slice under the same mutex, so the
// writer commits in seq order and a reader never sees a message without
// the older ones queued before it.
type archiveWriter struct {
	once     sync.Once
	stopOnce sync.Once
	initErr  error        // set by init: the writer cannot run
	ids      cipher.Block // AES-128 under the database's archive key: seq ↔ stanza-id

	room chan struct{} // a token per queued request: a bound on memory
	wake chan struct{} // one buffered signal: the queue is not empty
	quit chan struct{} // closed by stop
	done chan struct{} // closed when the writer goroutine has ended

	mu      sync.Mutex
	queue   []*appendReq
	urgent  bool // someone waits for a queued request (its done is set)
	lastSeq int64
	lastAt  int64
	closed  bool

	// owners maps an owner to its id in its kind's owners table; only
	// the writer goroutine uses it.
	owners map[ownerKey]int64
	// stmts are the writer's statements by their SQL, prepared once on
	// the database and bound to each commit's transaction (stmt): in a
	// room's fan-out at one message a second per occupant most commits
	// hold one message, and preparing the insert and the state's update
	// in each was 12 % of the server's CPU. Only the writer goroutine
	// uses the map; Close closes them.
	stmts map[string]*sql.Stmt

	// gatherFor is archiveGather, but for tests; set by init.
	gatherFor time.Duration
}

// prepare prepares queries on the database, those not prepared yet. It
// is called outside a transaction: an in-memory store has one
// connection, which a transaction holds. A query that fails to prepare
// here is prepared in the transaction by stmt, whose error is reported.
func (s *Store) prepare(ctx context.Context, queries ...string) {
	w := &s.archive
	for _, q := range queries {
		if _, ok := w.stmts[q]; ok {
			continue
		}
		ps, err := s.db.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		if w.stmts == nil {
			w.stmts = make(map[string]*sql.Stmt)
		}
		w.stmts[q] = ps
	}
}

// stmt returns query, prepared by prepare, for tx: the database's
// statement bound to the transaction's connection, which database/sql
// prepares on that connection once and reuses after.
func (s *Store) stmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	ps, ok := s.archive.stmts[query]
	if !ok {
		return tx.PrepareContext(ctx, query)
	}
	return tx.StmtContext(ctx, ps), nil
}

// closeStmts closes the writer's statements once it has stopped.
func (w *archiveWriter) closeStmts() {
	for q, st := range w.stmts {
		st.Close()
		delete(w.stmts, q)
	}
}

// init prepares the archive of s once, before any append is taken or any
// id decoded: the key, and the last seq and time, from the database. An
// in-memory database, copied from one snapshot, first gets a key of its
// own.
func (s *Store) archiveInit() error {
	w := &s.archive
	w.once.Do(func() {
		w.room = make(chan struct{}, archiveQueue)
		w.wake = make(chan struct{}, 1)
		w.quit = make(chan struct{})
		w.done = make(chan struct{})
		w.owners = make(map[ownerKey]int64)
		if w.gatherFor == 0 {
			w.gatherFor = archiveGather
		}
		w.initErr = s.loadArchiveState()
		if w.initErr != nil {
			w.closed = true
			close(w.done)
			return
		}
		go s.writeArchive()
	})
	return w.initErr
}

// loadArchiveState reads the archive key and the newest seq and time.
func (s *Store) loadArchiveState() error {
	ctx := context.Background()
	w := &s.archive
	if s.path == Memory {
		if _, err := s.db.ExecContext(ctx, `UPDATE archive_state SET id_key = ?`, randomKey()); err != nil {
			return fmt.Errorf("storage: new archive key: %w", err)
		}
	}
	var (
		key             []byte
		lastSeq, lastAt int64
	)
	err := s.db.QueryRowContext(ctx, `SELECT id_key, max(last_seq, coalesce((SELECT max(seq) FROM archive), 0), coalesce((SELECT max(seq) FROM room_archive), 0)),
		max(last_at, coalesce((SELECT at FROM archive ORDER BY seq DESC LIMIT 1), 0), coalesce((SELECT at FROM room_archive ORDER BY seq DESC LIMIT 1), 0)) FROM archive_state`).Scan(&key, &lastSeq, &lastAt)
	if err != nil {
		return fmt.Errorf("storage: read the archive state: %w", err)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return fmt.Errorf("storage: the archive key: %w", err)
	}
	w.ids, w.lastSeq, w.lastAt = b, lastSeq, lastAt
	return nil
}

// randomKey returns 16 random bytes: an AES-128 key.
func randomKey() []byte {
	k := make([]byte, 16)
	rand.Read(k) // never fails (crypto/rand)
	return k
}

// stop ends the writer, if it ran, after it has committed what was queued.
func (w *archiveWriter) stop() {
	w.stopOnce.Do(func() {
		// A writer that never started never will: appends after Close
		// find it closed.
		w.once.Do(func() {
			w.initErr = errStoreClosed
			w.quit = make(chan struct{})
			w.done = make(chan struct{})
			close(w.done)
		})
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		close(w.quit)
		<-w.done
		w.closeStmts()
	})
}

// enqueue assigns r its seq and time and queues it for the writer. It
// waits only while archiveQueue requests already wait.
func (s *Store) enqueue(ctx context.Context, r *appendReq) error {
	if err := s.archiveInit(); err != nil {
		return err
	}
	w := &s.archive
	select {
	case w.room <- struct{}{}:
	case <-w.quit:
		return errStoreClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.room
		return errStoreClosed
	}
	if !r.barrier {
		w.assign(r)
	}
	w.queue = append(w.queue, r)
	if r.done != nil {
		w.urgent = true
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return nil
}

// assign gives r the next seq and its time; w.mu is held.
func (w *archiveWriter) assign(r *appendReq) {
	if r.e.At.IsZero() {
		r.e.At = time.Now()
	}
	w.lastSeq++
	w.lastAt = max(r.e.At.UnixNano(), w.lastAt+1)
	r.seq, r.at = w.lastSeq, w.lastAt
}

// AppendArchive archives e for user on host and returns the message as
// kept, with its stanza-id. It returns once the message is committed;
// appends made meanwhile by other goroutines are committed in the same
// transaction, so they share one sync to disk. The error wraps
// [ErrNotFound] when user has no account on host.
func (s *Store) AppendArchive(ctx context.Context, host, user string, e ArchiveEntry) (ArchivedMessage, error) {
	r := &appendReq{kind: userArchives, host: host, user: user, e: e, done: make(chan appendResult, 1)}
	if err := s.enqueue(ctx, r); err != nil {
		return ArchivedMessage{}, fmt.Errorf("storage: archive a message of %s@%s: %w", user, host, err)
	}
	select {
	case res := <-r.done:
		if res.err != nil {
			return ArchivedMessage{}, fmt.Errorf("storage: archive a message of %s@%s: %w", user, host, res.err)
		}
		return res.m, nil
	case <-ctx.Done():
		// It may still be committed: the caller treats it as not acknowledged.
		return ArchivedMessage{}, fmt.Errorf("storage: archive a message of %s@%s: %w", user, host, ctx.Err())
	}
}

// ArchiveAsync archives e for user on host without waiting for the
// commit, and returns the stanza-id the message will have (assigned now,
// so that it can go on the delivered copy at once). The writer commits
// what waits in one transaction, and then calls notify, when not nil,
// with the commit's outcome (an error wrapping [ErrNotFound] when user has
// no account); notify runs on the writer's goroutine and must not block.
// ArchiveAsync waits only when archiveQueue appends already wait, or
// returns ctx's error.
func (s *Store) ArchiveAsync(ctx context.Context, host, user string, e ArchiveEntry, notify func(error)) (string, error) {
	r := &appendReq{kind: userArchives, host: host, user: user, e: e, notify: notify}
	if err := s.enqueue(ctx, r); err != nil {
		return "", fmt.Errorf("storage: archive a message of %s@%s: %w", user, host, err)
	}
	return s.archiveID(r.seq), nil
}

// SyncArchive returns once every append queued before it is committed (or
// failed), so that a query sees them.
func (s *Store) SyncArchive(ctx context.Context) error {
	r := &appendReq{barrier: true, done: make(chan appendResult, 1)}
	if err := s.enqueue(ctx, r); err != nil {
		return err
	}
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// writeArchive is the archive writer's goroutine: it takes what requests
// are waiting and commits them, up to maxAppendBatch per transaction.
// Once stopped, it commits what is still queued, then ends.
func (s *Store) writeArchive() {
	w := &s.archive
	defer close(w.done)
	for {
		stopping := false
		select {
		case <-w.wake:
		case <-w.quit:
			stopping = true
		}
		if !stopping {
			stopping = w.gather()
		}
		w.mu.Lock()
		q := w.queue
		w.queue = nil
		w.urgent = false
		w.mu.Unlock()
		for len(q) > 0 {
			n := min(len(q), maxAppendBatch)
			s.commitAppends(q[:n])
			q = q[n:]
			for range n {
				<-w.room
			}
		}
		if stopping {
			return
		}
	}
}

// gather waits up to archiveGather for more appends to join the queued
// ones (see archiveGather), and reports whether the writer was stopped
// meanwhile. It does not wait when someone waits for a queued request,
// or when the queue is full or empty.
func (w *archiveWriter) gather() (stopping bool) {
	var t *time.Timer
	for {
		w.mu.Lock()
		now := len(w.queue) == 0 || len(w.queue) >= maxAppendBatch || w.urgent
		w.mu.Unlock()
		if now {
			return false
		}
		if t == nil {
			t = time.NewTimer(w.gatherFor)
			defer t.Stop()
		}
		select {
		case <-t.C:
			return false
		case <-w.wake:
		case <-w.quit:
			return true
		}
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
	var resolved []ownerKey
	queries := []string{updateArchiveState}
	for _, r := range batch {
		if !r.barrier && !slices.Contains(queries, r.kind.insert) {
			queries = append(queries, r.kind.insert)
		}
		if r.e.Body != "" && !slices.Contains(queries, insertArchiveIndex) {
			queries = append(queries, insertArchiveIndex)
		}
	}
	s.prepare(ctx, queries...)
	err := s.update(ctx, func(tx *sql.Tx) error {
		// Each kind's insert is prepared when the batch has one of its
		// messages.
		var ins [2]*sql.Stmt
		defer func() {
			for _, st := range ins {
				if st != nil {
					st.Close()
				}
			}
		}()
		var err error
		// Prepared only when a message of the batch is to be indexed:
		// hosts without archive_search pay nothing for the index.
		var idx *sql.Stmt
		for _, r := range batch {
			if r.e.Body != "" {
				if idx, err = s.stmt(ctx, tx, insertArchiveIndex); err != nil {
					return err
				}
				defer idx.Close()
				break
			}
		}
		var lastSeq, lastAt int64
		for i, r := range batch {
			if r.barrier {
				continue
			}
			k := r.kind.index
			if ins[k] == nil {
				if ins[k], err = s.stmt(ctx, tx, r.kind.insert); err != nil {
					return err
				}
			}
			results[i] = s.writeOne(ctx, tx, ins[k], idx, r, &resolved)
			lastSeq, lastAt = r.seq, r.at
		}
		if lastSeq == 0 {
			return nil
		}
		// The high-water mark outlives the rows: seqs are never reused,
		// even after the newest messages went with their account.
		up, err := s.stmt(ctx, tx, updateArchiveState)
		if err != nil {
			return err
		}
		defer up.Close()
		_, err = up.ExecContext(ctx, lastSeq, lastAt)
		return err
	})
	if err != nil {
		// Owner ids read in a transaction that did not commit may not exist.
		for _, k := range resolved {
			delete(s.archive.owners, k)
		}
	}
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

// writeOne inserts r in tx, and its Body in the full-text index with idx
// (nil when no message of the batch has one). An owner id from the cache
// that fails the foreign key (the account was deleted, maybe created
// again) is resolved once more.
func (s *Store) writeOne(ctx context.Context, tx *sql.Tx, ins, idx *sql.Stmt, r *appendReq, resolved *[]ownerKey) appendResult {
	w := &s.archive
	k := ownerKey{r.kind, r.host, r.user}
	for try := 0; ; try++ {
		owner, cached := w.owners[k]
		if !cached {
			var err error
			if owner, err = r.kind.resolveOwner(ctx, tx, r.host, r.user); err != nil {
				return appendResult{err: noAccount(err)}
			}
			w.owners[k] = owner
			*resolved = append(*resolved, k)
		}
		_, err := ins.ExecContext(ctx, r.seq, owner, r.at, r.e.With, r.e.Resource, r.e.Outgoing, blob(r.e.Stanza))
		if err != nil && cached && try == 0 && errors.Is(noAccount(err), errNoAccount) {
			delete(w.owners, k)
			continue
		}
		if err != nil {
			return appendResult{err: noAccount(err)}
		}
		if err := indexOne(ctx, tx, idx, r.seq, owner, r.e); err != nil {
			return appendResult{err: err}
		}
		return appendResult{m: ArchivedMessage{ID: s.archiveID(r.seq), At: time.Unix(0, r.at).UTC(),
			With: r.e.With, Resource: r.e.Resource, Outgoing: r.e.Outgoing, Stanza: r.e.Stanza}}
	}
}

// resolveOwner returns the owners table's id of name on host, creating
// it; for users' archives, a user without an account fails the foreign
// key.
func (k *archiveKind) resolveOwner(ctx context.Context, tx *sql.Tx, host, name string) (int64, error) {
	if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO `+k.owners+` (host, `+k.name+`) VALUES (?, ?)`, host, name); err != nil {
		return 0, err
	}
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT id FROM `+k.owners+` WHERE host = ? AND `+k.name+` = ?`, host, name).Scan(&id)
	return id, err
}

// ownerOf returns the owners table's id of name on host for a query; ok
// is false when name never had anything archived.
func (k *archiveKind) ownerOf(ctx context.Context, tx *sql.Tx, host, name string) (id int64, ok bool, err error) {
	err = tx.QueryRowContext(ctx, `SELECT id FROM `+k.owners+` WHERE host = ? AND `+k.name+` = ?`, host, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return id, err == nil, err
}

// AppendArchiveBatch archives es for user on host in one transaction, in
// order, and returns them as kept. It is for imports and tests: a server
// archives with [Store.AppendArchive]. It holds back other appends until
// it has committed, so that seqs are committed in order.
func (s *Store) AppendArchiveBatch(ctx context.Context, host, user string, es []ArchiveEntry) ([]ArchivedMessage, error) {
	if err := s.archiveInit(); err != nil {
		return nil, fmt.Errorf("storage: archive %d messages of %s@%s: %w", len(es), user, host, err)
	}
	w := &s.archive
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, fmt.Errorf("storage: archive %d messages of %s@%s: %w", len(es), user, host, errStoreClosed)
	}
	seq0, at0 := w.lastSeq, w.lastAt
	ms := make([]ArchivedMessage, 0, len(es))
	err := s.update(ctx, func(tx *sql.Tx) error {
		owner, err := userArchives.resolveOwner(ctx, tx, host, user)
		if err != nil {
			return noAccount(err)
		}
		ins, err := tx.PrepareContext(ctx, userArchives.insert)
		if err != nil {
			return err
		}
		defer ins.Close()
		var idx *sql.Stmt
		for _, e := range es {
			r := &appendReq{e: e}
			w.assign(r)
			if _, err := ins.ExecContext(ctx, r.seq, owner, r.at, e.With, e.Resource, e.Outgoing, blob(e.Stanza)); err != nil {
				return noAccount(err)
			}
			if e.Body != "" && idx == nil {
				if idx, err = tx.PrepareContext(ctx, insertArchiveIndex); err != nil {
					return err
				}
				defer idx.Close()
			}
			if err := indexOne(ctx, tx, idx, r.seq, owner, e); err != nil {
				return err
			}
			ms = append(ms, ArchivedMessage{ID: s.archiveID(r.seq), At: time.Unix(0, r.at).UTC(),
				With: e.With, Resource: e.Resource, Outgoing: e.Outgoing, Stanza: e.Stanza})
		}
		_, err = tx.ExecContext(ctx, updateArchiveState, w.lastSeq, w.lastAt)
		return err
	})
	if err != nil {
		// Nothing was committed: the seqs drawn may be drawn again.
		w.lastSeq, w.lastAt = seq0, at0
		return nil, fmt.Errorf("storage: archive %d messages of %s@%s: %w", len(es), user, host, err)
	}
	return ms, nil
}

// archiveKind names the tables of one kind of archive: users' (XEP-0313
// on an account) or rooms' (XEP-0313 on a MUC room). Both have the same
// columns and indexes, the same writer, seqs and stanza-ids; a room is
// not an account, so its owners table has no foreign key to accounts.
type archiveKind struct {
	index  int    // 0 or 1: the kind's slot in a batch's statements
	table  string // the messages
	owners string // the owners: id, host and name
	name   string // the owners table's column of the name
	insert string // inserts one message with the seq and time enqueue gave it
}

var (
	userArchives = newArchiveKind(0, "archive", "archive_owners", "username")
	roomArchives = newArchiveKind(1, "room_archive", "room_archives", "room")
)

// newArchiveKind makes a kind with its insert written once: the writer
// looks it up for each message it commits.
func newArchiveKind(index int, table, owners, name string) *archiveKind {
	return &archiveKind{index: index, table: table, owners: owners, name: name,
		insert: `INSERT INTO ` + table + ` (seq, owner, at, with_jid, with_res, outgoing, stanza) VALUES (?, ?, ?, ?, ?, ?, ?)`}
}

// ownerKey is an archive's owner in the writer's cache of owner ids.
type ownerKey struct {
	kind       *archiveKind
	host, name string
}

// updateArchiveState raises the high-water mark of seqs and times.
const updateArchiveState = `UPDATE archive_state SET last_seq = max(last_seq, ?), last_at = max(last_at, ?)`

// insertArchiveIndex indexes one message's body for full-text search,
// with the tags searchMatch looks for.
const insertArchiveIndex = `INSERT INTO archive_fts (rowid, tags, body) VALUES (?, ?, ?)`

// indexOne puts e's Body, if any, in the full-text index under seq. Should
// that fail, the message is taken out again: an archived message that a
// search would never find is worse than one that is reported lost.
func indexOne(ctx context.Context, tx *sql.Tx, idx *sql.Stmt, seq, owner int64, e ArchiveEntry) error {
	if e.Body == "" {
		return nil
	}
	_, err := idx.ExecContext(ctx, seq, ownerTag(owner)+" "+withTag(owner, e.With), e.Body)
	if err != nil {
		if _, derr := tx.ExecContext(ctx, `DELETE FROM archive WHERE seq = ?`, seq); derr != nil {
			return fmt.Errorf("index message %d: %w (and taking it out: %w)", seq, err, derr)
		}
		return fmt.Errorf("index message %d: %w", seq, err)
	}
	return nil
}

// ownerTag is the token of the index's tags that every indexed message of
// owner carries.
func ownerTag(owner int64) string { return "o" + strconv.FormatInt(owner, 10) }

// withTag is the token of the index's tags that the indexed messages of
// owner with the bare JID with carry: a hash, since a JID is not one
// token; 128 bits of SHA-256, so that no JID can be made to share
// another's tag and a count can trust the tags alone (a page checks
// with_jid on the row too).
func withTag(owner int64, with string) string {
	h := sha256.Sum256([]byte(with))
	return ownerTag(owner) + "w" + hex.EncodeToString(h[:16])
}

// SearchTerms returns the terms of a full-text search (XEP-0431): each
// whitespace-separated word of text, with every character but letters
// and digits read as a space, so that "e-mail" is the phrase "e mail" as
// the index's tokenizer (unicode61) splits it; words with neither are
// dropped, so are repeats. None of FTS5's syntax survives (quotes, *,
// NEAR, AND, -, parentheses are text or spaces): the user's text is only
// ever terms. Matching ignores case and diacritics, and is by whole
// words, not prefixes.
func SearchTerms(text string) []string {
	var terms []string
	for _, w := range strings.Fields(text) {
		w = strings.Join(strings.FieldsFunc(w, func(r rune) bool {
			return !unicode.IsLetter(r) && !unicode.IsNumber(r) && !unicode.Is(unicode.Co, r)
		}), " ")
		if w != "" {
			terms = append(terms, w)
		}
	}
	slices.Sort(terms)
	return slices.Compact(terms)
}

// searchMatch returns the FTS5 query of terms in owner's archive, or in
// its conversation with the bare JID with when with is not "". Each term
// is a quoted phrase; SearchTerms left only letters, digits and spaces in
// them, so no quote needs escaping.
func searchMatch(owner int64, with string, terms []string) string {
	tag := ownerTag(owner)
	if with != "" {
		tag = withTag(owner, with)
	}
	var b strings.Builder
	b.WriteString(`tags : "` + tag + `" AND body : (`)
	for i, t := range terms {
		if i > 0 {
			b.WriteString(" AND ")
		}
		b.WriteString(`"` + t + `"`)
	}
	b.WriteString(")")
	return b.String()
}

// archiveID returns the stanza-id of seq: AES-128 of seq (8 bytes, big
// endian) and 8 zero bytes, in 22 URL-safe characters. Ids are unique
// (a permutation of the seqs), and without the key cannot be guessed nor
// made (XEP-0359 §4), yet no column or index keeps them.
func (s *Store) archiveID(seq int64) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(seq))
	s.archive.ids.Encrypt(b[:], b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// archiveSeq decodes a stanza-id of archiveID; ok is false for anything
// this database did not make.
func (s *Store) archiveSeq(id string) (seq int64, ok bool) {
	var b [16]byte
	if base64.RawURLEncoding.DecodedLen(len(id)) != len(b) {
		return 0, false
	}
	if n, err := base64.RawURLEncoding.Decode(b[:], []byte(id)); err != nil || n != len(b) {
		return 0, false
	}
	s.archive.ids.Decrypt(b[:], b[:])
	if binary.BigEndian.Uint64(b[8:]) != 0 {
		return 0, false
	}
	seq = int64(binary.BigEndian.Uint64(b[:8]))
	return seq, seq > 0
}

// archiveColumns are what scanArchived reads, in its order.
const archiveColumns = `seq, at, with_jid, with_res, outgoing, stanza`

// scanArchived reads rows of archiveColumns.
func (s *Store) scanArchived(rows *sql.Rows) ([]ArchivedMessage, error) {
	defer rows.Close()
	var ms []ArchivedMessage
	for rows.Next() {
		var (
			m       ArchivedMessage
			seq, at int64
		)
		if err := rows.Scan(&seq, &at, &m.With, &m.Resource, &m.Outgoing, &m.Stanza); err != nil {
			return nil, err
		}
		m.ID = s.archiveID(seq)
		m.At = time.Unix(0, at).UTC()
		ms = append(ms, m)
	}
	return ms, rows.Err()
}

// QueryArchive returns a page of user's archive on host. Every query reads
// index ranges of the page's size (and, with Count, the set's index range):
// never the whole archive. A Search reads the full-text index's matches of
// user (or of the conversation, with With) from the page's bound on, until
// the page is full: its cost grows with the matches it passes over (a
// Resource the index does not know), not with the archive. A Search over
// [MaxArchiveSearch] characters, or with no letter or digit, wraps
// [ErrArchiveQuery]. An After, Before, AfterID, BeforeID or one of
// IDs that is not in the archive is an error wrapping [ErrNotFound]
// (XEP-0313 says item-not-found); more IDs than [MaxArchivePage] wraps
// [ErrArchiveQuery].
func (s *Store) QueryArchive(ctx context.Context, host, user string, q ArchiveQuery) (ArchivePage, error) {
	return s.queryArchive(ctx, userArchives, host, user, q)
}

// queryArchive is QueryArchive and QueryRoomArchive: a page of the
// archive of kind k owned by name on host.
func (s *Store) queryArchive(ctx context.Context, k *archiveKind, host, name string, q ArchiveQuery) (ArchivePage, error) {
	what := name + "@" + host
	if k == roomArchives {
		what = "room " + what
	}
	if err := s.archiveInit(); err != nil {
		return ArchivePage{}, fmt.Errorf("storage: query the archive of %s: %w", what, err)
	}
	var page ArchivePage
	err := s.view(ctx, func(tx *sql.Tx) error {
		if len(q.IDs) > MaxArchivePage {
			return fmt.Errorf("%d ids, at most %d at once: %w", len(q.IDs), MaxArchivePage, ErrArchiveQuery)
		}
		owner, ok, err := k.ownerOf(ctx, tx, host, name)
		if err != nil {
			return err
		}
		if len(q.IDs) > 0 {
			page, err = s.archiveByIDs(ctx, tx, k, owner, ok, q.IDs)
		} else {
			page, err = s.archivePage(ctx, tx, k, owner, ok, q)
		}
		return err
	})
	if err != nil {
		return ArchivePage{}, fmt.Errorf("storage: query the archive of %s: %w", what, err)
	}
	return page, nil
}

// archiveByIDs fetches the messages ids of owner, oldest first: rowid
// lookups, each checked to be owner's.
func (s *Store) archiveByIDs(ctx context.Context, tx *sql.Tx, k *archiveKind, owner int64, ok bool, ids []string) (ArchivePage, error) {
	uniq := slices.Clone(ids)
	slices.Sort(uniq)
	uniq = slices.Compact(uniq)
	args := []any{owner}
	for _, id := range uniq {
		seq, valid := s.archiveSeq(id)
		if !valid || !ok {
			return ArchivePage{}, fmt.Errorf("message %q: %w", id, ErrNotFound)
		}
		args = append(args, seq)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+archiveColumns+` FROM `+k.table+`
		WHERE owner = ? AND seq IN (?`+strings.Repeat(", ?", len(uniq)-1)+`) ORDER BY seq`, args...)
	if err != nil {
		return ArchivePage{}, err
	}
	ms, err := s.scanArchived(rows)
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

// archivePageSQL returns the query of a page (and its count): without a
// contact, a range of archive_by_time, (owner, at) bounded by at; with
// one, a range of archive_by_with, (owner, with_jid, seq) bounded by seq.
// The parameters are owner, [with_jid, [with_res,]] lower, upper bound,
// and for a page the limit.
func archivePageSQL(table string, with, res, count, backward bool) string {
	filter, key := `owner = ?`, `at`
	if with {
		filter, key = filter+` AND with_jid = ?`, `seq`
		if res {
			filter += ` AND with_res = ?`
		}
	}
	filter += ` AND ` + key + ` > ? AND ` + key + ` < ?`
	if count {
		return `SELECT count(*) FROM ` + table + ` WHERE ` + filter
	}
	order := "ASC"
	if backward {
		order = "DESC"
	}
	return `SELECT ` + archiveColumns + ` FROM ` + table + ` WHERE ` + filter + ` ORDER BY ` + key + ` ` + order + ` LIMIT ?`
}

// archiveSearchSQL returns the query of a page (and its count) of a
// full-text search: the index's matches in rowid (seq) order, bounded by
// seq, each joined to its archive row by rowid. The match has the owner's
// tag (or the conversation's), so the index walks that doclist only; the
// owner and with_jid are checked on the row all the same. The parameters
// are the match, owner, [with_jid, [with_res,]] lower, upper bound, and
// for a page the limit.
func archiveSearchSQL(_ string, with, res, count, backward bool) string {
	filter := `archive_fts MATCH ? AND a.owner = ?`
	if with {
		filter += ` AND a.with_jid = ?`
		if res {
			filter += ` AND a.with_res = ?`
		}
	}
	filter += ` AND archive_fts.rowid > ? AND archive_fts.rowid < ?`
	// CROSS JOIN keeps the index as the outer loop: its rowid order is the
	// page's order, and its rowid bounds are the page's bounds.
	from := ` FROM archive_fts CROSS JOIN archive AS a ON a.seq = archive_fts.rowid WHERE `
	if count {
		return `SELECT count(*)` + from + filter
	}
	order := "ASC"
	if backward {
		order = "DESC"
	}
	return `SELECT a.seq, a.at, a.with_jid, a.with_res, a.outgoing, a.stanza` + from + filter +
		` ORDER BY archive_fts.rowid ` + order + ` LIMIT ?`
}

// searchCountSQL counts a search's matches from the index alone; the
// parameters are the match (whose tags select the owner's, or the
// conversation's, entries), the lower and the upper bound.
const searchCountSQL = `SELECT count(*) FROM archive_fts WHERE archive_fts MATCH ? AND rowid > ? AND rowid < ?`

// archivePage answers a query without IDs. Each filter becomes exclusive
// bounds on both seq and at (they grow together), so the page is one
// index range read.
func (s *Store) archivePage(ctx context.Context, tx *sql.Tx, k *archiveKind, owner int64, ok bool, q ArchiveQuery) (ArchivePage, error) {
	if q.Search != "" && k != userArchives {
		// The full-text index (archive_fts) holds users' messages only.
		return ArchivePage{}, fmt.Errorf("rooms' archives have no full-text index: %w", ErrArchiveQuery)
	}
	empty := ArchivePage{Complete: true, Count: -1}
	if q.Count {
		empty.Count = 0
	}
	// rowOf returns the seq and time of id, a message of owner.
	rowOf := func(id string) (seq, at int64, err error) {
		seq, valid := s.archiveSeq(id)
		if !valid || !ok {
			return 0, 0, fmt.Errorf("message %q: %w", id, ErrNotFound)
		}
		err = tx.QueryRowContext(ctx, `SELECT at FROM `+k.table+` WHERE seq = ? AND owner = ?`, seq, owner).Scan(&at)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, 0, fmt.Errorf("message %q: %w", id, ErrNotFound)
		}
		return seq, at, err
	}
	// Exclusive bounds: lo < seq < hi, atLo < at < atHi.
	lo, hi := int64(0), int64(math.MaxInt64)
	atLo, atHi := int64(math.MinInt64), int64(math.MaxInt64)
	lower := func(seq, at int64) { lo, atLo = max(lo, seq), max(atLo, at) }
	upper := func(seq, at int64) { hi, atHi = min(hi, seq), min(atHi, at) }
	// narrow bounds the set by the messages after and before ("" for
	// none): the form's after-id and before-id, then the RSM cursor.
	narrow := func(after, before string) error {
		for _, c := range []struct {
			id    string
			bound func(seq, at int64)
		}{{after, lower}, {before, upper}} {
			if c.id == "" {
				continue
			}
			seq, at, err := rowOf(c.id)
			if err != nil {
				return err
			}
			c.bound(seq, at)
		}
		return nil
	}
	if err := narrow(q.AfterID, q.BeforeID); err != nil {
		return ArchivePage{}, err
	}
	var terms []string
	if q.Search != "" {
		if n := utf8.RuneCountInString(q.Search); n > MaxArchiveSearch {
			return ArchivePage{}, fmt.Errorf("a search of %d characters, at most %d: %w", n, MaxArchiveSearch, ErrArchiveQuery)
		}
		if terms = SearchTerms(q.Search); len(terms) == 0 {
			return ArchivePage{}, fmt.Errorf("a search with no letter or digit: %w", ErrArchiveQuery)
		}
	}
	if !ok {
		return empty, nil
	}
	// Start and end: the first and last message of owner inside them, by
	// archive_by_time, bound seq (for a contact's range) and at alike.
	if !q.Start.IsZero() {
		var seq, at int64
		err := tx.QueryRowContext(ctx, `SELECT seq, at FROM `+k.table+` WHERE owner = ? AND at >= ? ORDER BY at LIMIT 1`,
			owner, q.Start.UnixNano()).Scan(&seq, &at)
		if errors.Is(err, sql.ErrNoRows) {
			return empty, nil
		}
		if err != nil {
			return ArchivePage{}, err
		}
		lower(seq-1, at-1)
	}
	if !q.End.IsZero() {
		var seq, at int64
		err := tx.QueryRowContext(ctx, `SELECT seq, at FROM `+k.table+` WHERE owner = ? AND at <= ? ORDER BY at DESC LIMIT 1`,
			owner, q.End.UnixNano()).Scan(&seq, &at)
		if errors.Is(err, sql.ErrNoRows) {
			return empty, nil
		}
		if err != nil {
			return ArchivePage{}, err
		}
		upper(seq+1, at+1)
	}

	with, res := q.With != "", q.With != "" && q.Resource != ""
	search := terms != nil
	var args []any
	if search {
		args = append(args, searchMatch(owner, q.With, terms))
	}
	args = append(args, owner)
	if with {
		args = append(args, q.With)
		if res {
			args = append(args, q.Resource)
		}
	}
	pageSQL := archivePageSQL
	if search {
		pageSQL = archiveSearchSQL
	}
	// The set's bounds, for the count; the cursor narrows them below.
	bounds := func() []any {
		if with || search {
			return append(slices.Clip(args), lo, hi)
		}
		return append(slices.Clip(args), atLo, atHi)
	}
	page := ArchivePage{Count: -1}
	if q.Count {
		query, qargs := pageSQL(k.table, with, res, true, false), bounds()
		if search && !res {
			// The tags are exact (the owner's id, the contact's hash): the
			// index alone counts, without reading a row per match: 16 ms
			// instead of 254 at 50,000 matches (BENCHMARKS.md). A
			// resource is not in the index: that count reads the rows.
			query, qargs = searchCountSQL, []any{args[0], lo, hi}
		}
		if err := tx.QueryRowContext(ctx, query, qargs...).Scan(&page.Count); err != nil {
			return ArchivePage{}, err
		}
	}

	// The RSM cursor narrows the set to the page's side of it.
	if err := narrow(q.After, q.Before); err != nil {
		return ArchivePage{}, err
	}
	n := min(max(q.Max, 0), MaxArchivePage)
	// One more than the page, to tell whether the page is the last.
	rows, err := tx.QueryContext(ctx, pageSQL(k.table, with, res, false, q.Backward), append(bounds(), n+1)...)
	if err != nil {
		return ArchivePage{}, err
	}
	ms, err := s.scanArchived(rows)
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
	if err := s.archiveInit(); err != nil {
		return ArchivedMessage{}, ArchivedMessage{}, false, fmt.Errorf("storage: archive bounds of %s@%s: %w", user, host, err)
	}
	err = s.view(ctx, func(tx *sql.Tx) error {
		owner, found, err := userArchives.ownerOf(ctx, tx, host, user)
		if err != nil || !found {
			return err
		}
		for i, order := range []string{"ASC", "DESC"} {
			rows, err := tx.QueryContext(ctx, `SELECT `+archiveColumns+` FROM archive
				WHERE owner = ? ORDER BY at `+order+` LIMIT 1`, owner)
			if err != nil {
				return err
			}
			ms, err := s.scanArchived(rows)
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

// ExpireArchive deletes the messages archived before cutoff, of every
// archive on host, or of every archive when host is "": batch of them per
// transaction (at least 1), so that the writer's lock is never held for
// long and appends go on between batches. It returns how many it deleted;
// on an error or a done ctx, those deleted so far stay deleted.
//
// For every archive, since at grows with seq, what is older than cutoff
// is every seq below a bound that a binary search over the rowids finds
// (no index on at alone), and each batch is a rowid range. For one host,
// each of its archives is a range of archive_by_time.
func (s *Store) ExpireArchive(ctx context.Context, host string, cutoff time.Time, batch int) (int64, error) {
	batch = max(batch, 1)
	var (
		total int64
		err   error
	)
	if host == "" {
		total, err = s.expireAll(ctx, cutoff.UnixNano(), batch)
	} else {
		total, err = s.expireHost(ctx, userArchives, host, cutoff.UnixNano(), batch)
	}
	if err != nil {
		return total, fmt.Errorf("storage: expire archived messages of %q before %v: %w", host, cutoff, err)
	}
	return total, nil
}

// deleteBatches runs del, which deletes at most batch rows, until it
// deletes fewer, and adds what it deleted to *total.
func (s *Store) deleteBatches(ctx context.Context, batch int, total *int64, del string, args ...any) error {
	for {
		var n int64
		err := s.update(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, del, append(args, batch)...)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return err
		}
		*total += n
		if n < int64(batch) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// expireAll deletes the messages of every archive older than cutoff.
func (s *Store) expireAll(ctx context.Context, cutoff int64, batch int) (int64, error) {
	bound, err := s.expiryBound(ctx, cutoff)
	if err != nil {
		return 0, err
	}
	var total int64
	err = s.deleteBatches(ctx, batch, &total, `DELETE FROM archive WHERE seq IN
		(SELECT seq FROM archive WHERE seq < ? ORDER BY seq LIMIT ?)`, bound)
	return total, err
}

// expireHost deletes the messages of host's archives older than cutoff,
// one archive after the other.
func (s *Store) expireHost(ctx context.Context, k *archiveKind, host string, cutoff int64, batch int) (int64, error) {
	var total int64
	for after := int64(0); ; {
		var owners []int64
		rows, err := s.db.QueryContext(ctx, `SELECT id FROM `+k.owners+` WHERE host = ? AND id > ? ORDER BY id LIMIT 256`, host, after)
		if err != nil {
			return total, err
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return total, err
			}
			owners = append(owners, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return total, err
		}
		if len(owners) == 0 {
			return total, nil
		}
		for _, owner := range owners {
			if err := s.deleteBatches(ctx, batch, &total, `DELETE FROM `+k.table+` WHERE seq IN
				(SELECT seq FROM `+k.table+` WHERE owner = ? AND at < ? ORDER BY at LIMIT ?)`, owner, cutoff); err != nil {
				return total, err
			}
		}
		after = owners[len(owners)-1]
	}
}

// expiryBound returns the least seq x such that the first message at or
// after x is not older than cutoff (or there is none): every message
// below x is older, every one from x on is not.
func (s *Store) expiryBound(ctx context.Context, cutoff int64) (int64, error) {
	var lo, hi int64
	err := s.db.QueryRowContext(ctx, `SELECT coalesce(min(seq), 0), coalesce(max(seq), 0) + 1 FROM archive`).Scan(&lo, &hi)
	if err != nil {
		return 0, err
	}
	// young(x): the first message from x on is not older than cutoff.
	young := func(x int64) (bool, error) {
		var at int64
		err := s.db.QueryRowContext(ctx, `SELECT at FROM archive WHERE seq >= ? ORDER BY seq LIMIT 1`, x).Scan(&at)
		if errors.Is(err, sql.ErrNoRows) {
			return true, nil
		}
		return at >= cutoff, err
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		y, err := young(mid)
		if err != nil {
			return 0, err
		}
		if y {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, nil
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

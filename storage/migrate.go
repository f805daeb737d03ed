package storage

import (
	"context"
	"database/sql"
	"fmt"
)

// A migration is one step of the schema. Step i (from 0) brings the schema
// from version i to version i+1; the version is kept in PRAGMA user_version.
// Each step runs in its own transaction together with the version bump, so
// it is applied completely or not at all.
type migration struct {
	name string
	up   func(ctx context.Context, tx *sql.Tx) error
}

// migrations is the schema, oldest step first. To change the schema append
// a step; never edit or reorder one that has been released, since databases
// in the field have already applied it.
var migrations = []migration{
	{name: "accounts", up: execSQL(`
CREATE TABLE accounts (
	host             TEXT    NOT NULL CHECK (host <> ''),
	username         TEXT    NOT NULL CHECK (username <> ''),
	sha1_salt        BLOB    NOT NULL,
	sha1_iterations  INTEGER NOT NULL CHECK (sha1_iterations >= 0),
	sha1_stored_key  BLOB    NOT NULL,
	sha1_server_key  BLOB    NOT NULL,
	sha256_salt       BLOB    NOT NULL,
	sha256_iterations INTEGER NOT NULL CHECK (sha256_iterations >= 0),
	sha256_stored_key BLOB    NOT NULL,
	sha256_server_key BLOB    NOT NULL,
	created          INTEGER NOT NULL, -- Unix time in nanoseconds
	PRIMARY KEY (host, username)
) WITHOUT ROWID;
`)},
	// Each user's data refers to the account and goes with it
	// (DeleteAccount); a write for a user without an account fails with
	// ErrNotFound instead of leaving data for a later account of that name.
	{name: "roster, offline messages, xml documents, blocklist, last activity, invites", up: execSQL(`
CREATE TABLE roster_version (
	host     TEXT    NOT NULL,
	username TEXT    NOT NULL,
	ver      INTEGER NOT NULL CHECK (ver >= 0), -- bumped by every roster change
	pruned   INTEGER NOT NULL DEFAULT 0,        -- the newest version of a pruned tombstone
	PRIMARY KEY (host, username),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE roster_items (
	host           TEXT    NOT NULL,
	username       TEXT    NOT NULL,
	jid            TEXT    NOT NULL CHECK (jid <> ''),
	name           TEXT    NOT NULL,
	subscription   TEXT    NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
	ask            INTEGER NOT NULL CHECK (ask IN (0, 1)),
	pending_in     INTEGER NOT NULL CHECK (pending_in IN (0, 1)),
	pending_in_xml TEXT    NOT NULL,
	approved       INTEGER NOT NULL CHECK (approved IN (0, 1)),
	groups_json    TEXT    NOT NULL, -- a JSON array of strings, sorted, no duplicates
	ver            INTEGER NOT NULL, -- the roster version of the item's last change
	PRIMARY KEY (host, username, jid),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);
CREATE INDEX roster_items_by_ver ON roster_items (host, username, ver);

CREATE TABLE roster_tombstones (
	host     TEXT    NOT NULL,
	username TEXT    NOT NULL,
	jid      TEXT    NOT NULL,
	ver      INTEGER NOT NULL, -- the roster version that removed jid
	PRIMARY KEY (host, username, jid),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX roster_tombstones_by_ver ON roster_tombstones (host, username, ver);

CREATE TABLE offline_messages (
	seq      INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused, so increasing per user
	host     TEXT    NOT NULL,
	username TEXT    NOT NULL,
	stanza   BLOB    NOT NULL,
	stored   INTEGER NOT NULL, -- Unix time in nanoseconds
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);
CREATE INDEX offline_messages_by_user ON offline_messages (host, username, seq);

CREATE TABLE xml_documents (
	host     TEXT NOT NULL,
	username TEXT NOT NULL,
	kind     TEXT NOT NULL CHECK (kind <> ''), -- "vcard", "private"
	doc_key  TEXT NOT NULL,                    -- "" for a vCard, the namespace for private XML
	xml      BLOB NOT NULL,
	PRIMARY KEY (host, username, kind, doc_key),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);

CREATE TABLE blocklist (
	host     TEXT NOT NULL,
	username TEXT NOT NULL,
	jid      TEXT NOT NULL CHECK (jid <> ''),
	PRIMARY KEY (host, username, jid),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE last_activity (
	host     TEXT    NOT NULL,
	username TEXT    NOT NULL,
	at       INTEGER NOT NULL, -- Unix time in nanoseconds
	status   TEXT    NOT NULL,
	PRIMARY KEY (host, username),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE invites (
	host       TEXT    NOT NULL CHECK (host <> ''),
	token_hash BLOB    NOT NULL, -- SHA-256 of the token: the token itself is a secret
	expires    INTEGER NOT NULL, -- Unix time in nanoseconds
	used       INTEGER,          -- Unix time in nanoseconds; NULL while unused
	PRIMARY KEY (host, token_hash)
) WITHOUT ROWID;
`)},
	// The size of each offline message, covered by the per-user index, so
	// that the byte quota (StoreOffline) and the pages of TakeOffline are
	// summed from the index without reading the stanzas.
	{name: "offline message sizes", up: execSQL(`
ALTER TABLE offline_messages ADD COLUMN size INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0);
UPDATE offline_messages SET size = length(stanza);
DROP INDEX offline_messages_by_user;
CREATE INDEX offline_messages_by_user ON offline_messages (host, username, seq, size);
`)},
	// The message archive (XEP-0313) and its preferences. seq is the rowid,
	// assigned by the store together with at, so that at strictly grows
	// with seq across all archives (archive.go): ordering by (owner, at) is
	// ordering by seq, a time bound is a seq bound, and retention deletes
	// a seq range. Each index ends in seq, so a page is an index range
	// read: O(page) however large the archive. The owner is a small
	// integer, not (host, username) text in every row and index entry.
	// Stanza-ids are seqs encrypted under id_key (no column, no index);
	// last_seq and last_at keep seqs from being reused after the newest
	// rows are deleted. archive_owners ids are AUTOINCREMENT: a cached id
	// of a deleted account never names another.
	{name: "message archive", up: func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `
CREATE TABLE archive_owners (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	host     TEXT    NOT NULL,
	username TEXT    NOT NULL,
	UNIQUE (host, username),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);

CREATE TABLE archive (
	seq      INTEGER PRIMARY KEY, -- assigned by the store: increasing, never reused
	owner    INTEGER NOT NULL REFERENCES archive_owners (id) ON DELETE CASCADE,
	at       INTEGER NOT NULL, -- Unix time in nanoseconds; strictly increasing with seq
	with_jid TEXT    NOT NULL, -- the other party's bare JID
	with_res TEXT    NOT NULL, -- and its resource, "" if none
	outgoing INTEGER NOT NULL CHECK (outgoing IN (0, 1)),
	stanza   BLOB    NOT NULL
);
CREATE INDEX archive_by_time ON archive (owner, at);       -- + seq (rowid)
CREATE INDEX archive_by_with ON archive (owner, with_jid); -- + seq (rowid)

CREATE TABLE archive_state (
	one      INTEGER PRIMARY KEY CHECK (one = 1),
	id_key   BLOB    NOT NULL CHECK (length(id_key) = 16), -- AES-128 key of the stanza-ids
	last_seq INTEGER NOT NULL, -- the highest seq ever assigned
	last_at  INTEGER NOT NULL  -- and its at
);

CREATE TABLE archive_prefs (
	host        TEXT NOT NULL,
	username    TEXT NOT NULL,
	policy      TEXT NOT NULL CHECK (policy IN ('always', 'never', 'roster')),
	always_json TEXT NOT NULL, -- a JSON array of bare JIDs, sorted, no duplicates
	never_json  TEXT NOT NULL, -- likewise
	PRIMARY KEY (host, username),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) WITHOUT ROWID;
`); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO archive_state (one, id_key, last_seq, last_at) VALUES (1, ?, 0, 0)`, randomKey())
		return err
	}},
	// PEP (XEP-0163): each account's nodes with their configuration, and
	// their items in publish order (seq, per node). An item refers to its
	// node and goes with it; a node goes with its account.
	{name: "pubsub nodes and items", up: execSQL(`
CREATE TABLE pubsub_nodes (
	host           TEXT    NOT NULL,
	username       TEXT    NOT NULL,
	node           TEXT    NOT NULL CHECK (node <> ''),
	access_model   TEXT    NOT NULL CHECK (access_model IN ('presence', 'open', 'whitelist', 'roster')),
	publish_model  TEXT    NOT NULL CHECK (publish_model IN ('publishers')),
	max_items      INTEGER NOT NULL CHECK (max_items >= 1),
	persist_items  INTEGER NOT NULL CHECK (persist_items IN (0, 1)),
	notify_retract INTEGER NOT NULL CHECK (notify_retract IN (0, 1)),
	notify_delete  INTEGER NOT NULL CHECK (notify_delete IN (0, 1)),
	send_last      TEXT    NOT NULL CHECK (send_last IN ('never', 'on_sub', 'on_sub_and_presence')),
	last_seq       INTEGER NOT NULL DEFAULT 0, -- the seq of the newest item ever published
	PRIMARY KEY (host, username, node),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE pubsub_items (
	host      TEXT    NOT NULL,
	username  TEXT    NOT NULL,
	node      TEXT    NOT NULL,
	item_id   TEXT    NOT NULL CHECK (item_id <> ''),
	seq       INTEGER NOT NULL, -- publish order within the node
	publisher TEXT    NOT NULL,
	payload   BLOB    NOT NULL,
	PRIMARY KEY (host, username, node, item_id),
	FOREIGN KEY (host, username, node) REFERENCES pubsub_nodes (host, username, node) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE UNIQUE INDEX pubsub_items_by_seq ON pubsub_items (host, username, node, seq);
`)},
	// FAST tokens (XEP-0484): per account and client (the SASL2
	// user-agent id), the token in use ('cur') and one issued and not
	// used yet ('new'). A token's secret is never stored: it is derived
	// from token_id with a key kept outside the database (c2s). New
	// credentials (a password change) drop the account's tokens, and so
	// does removing the account.
	{name: "fast tokens", up: execSQL(`
CREATE TABLE fast_tokens (
	host      TEXT    NOT NULL,
	username  TEXT    NOT NULL,
	agent     TEXT    NOT NULL CHECK (agent <> ''),
	slot      TEXT    NOT NULL CHECK (slot IN ('cur', 'new')),
	mechanism TEXT    NOT NULL,
	token_id  BLOB    NOT NULL,
	expires   INTEGER NOT NULL, -- Unix seconds
	PRIMARY KEY (host, username, agent, slot),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE TRIGGER fast_tokens_on_credentials
AFTER UPDATE OF sha1_salt, sha1_stored_key, sha256_salt, sha256_stored_key ON accounts
BEGIN
	DELETE FROM fast_tokens WHERE host = NEW.host AND username = NEW.username;
END;
`)},
	// Push (XEP-0357): the app servers each account enabled, one row per
	// service JID and node (a device), with the publish options the
	// client gave (an XML data form, or empty).
	{name: "push registrations", up: execSQL(`
CREATE TABLE push_registrations (
	host      TEXT    NOT NULL,
	username  TEXT    NOT NULL,
	jid       TEXT    NOT NULL CHECK (jid <> ''),
	node      TEXT    NOT NULL,
	options   BLOB    NOT NULL,
	created   INTEGER NOT NULL, -- Unix seconds
	PRIMARY KEY (host, username, jid, node),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) WITHOUT ROWID;
`)},
	// HTTP file upload (XEP-0363): one row per slot an upload host gave
	// out, uploaded or not; the file is <data_dir>/uploads/<id>. The
	// owner is a bare JID, not a foreign key: an upload host may serve
	// users of hosts whose accounts are not in this store.
	{name: "upload slots", up: execSQL(`
CREATE TABLE upload_slots (
	id           TEXT    NOT NULL PRIMARY KEY CHECK (id <> ''),
	host         TEXT    NOT NULL,
	owner        TEXT    NOT NULL CHECK (owner <> ''),
	filename     TEXT    NOT NULL,
	size         INTEGER NOT NULL CHECK (size >= 0),
	content_type TEXT    NOT NULL,
	created      INTEGER NOT NULL, -- Unix seconds
	uploaded     INTEGER NOT NULL DEFAULT 0 -- Unix seconds; 0 while the PUT has not completed
) WITHOUT ROWID;
CREATE INDEX upload_slots_owner ON upload_slots (host, owner);
CREATE INDEX upload_slots_created ON upload_slots (host, uploaded, created);
`)},
	// Full-text search of the archive (XEP-0431): an FTS5 index of the
	// bodies of the messages archived on hosts with archive_search on,
	// keyed by the archive's seq (its rowid). Contentless: the text is
	// in the stanza already, the index keeps only tokens; contentless_delete
	// lets a row go by rowid. tags holds "o<owner>" and
	// "o<owner>w<hash of with_jid>", so that a search reads one owner's
	// (or one conversation's) doclist, not every archive's (archive.go).
	// A trigger removes a message's entry with it: retention, and an
	// account's removal through the foreign keys' cascade (which fires
	// triggers); for a message never indexed it is one docsize lookup.
	{name: "archive full-text index", up: execSQL(`
CREATE VIRTUAL TABLE archive_fts USING fts5(
	tags, body,
	content = '', contentless_delete = 1,
	tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER archive_fts_on_delete AFTER DELETE ON archive
BEGIN
	DELETE FROM archive_fts WHERE rowid = OLD.seq;
END;
`)},
	// Multi-user chat (XEP-0045): the persistent rooms of each muc host,
	// their configuration (JSON that package components/muc reads), the
	// key of their occupant-ids (XEP-0421), subject and affiliations.
	{name: "muc rooms", up: execSQL(`
CREATE TABLE muc_rooms (
	host         TEXT    NOT NULL CHECK (host <> ''),
	room         TEXT    NOT NULL CHECK (room <> ''),
	config       BLOB    NOT NULL,
	secret       BLOB    NOT NULL,
	subject      TEXT    NOT NULL,
	subject_from TEXT    NOT NULL, -- the nick that set it, '' for the room
	subject_at   INTEGER NOT NULL, -- Unix nanoseconds, 0 when never set
	PRIMARY KEY (host, room)
) WITHOUT ROWID;

CREATE TABLE muc_affiliations (
	host        TEXT NOT NULL,
	room        TEXT NOT NULL,
	jid         TEXT NOT NULL CHECK (jid <> ''),
	affiliation TEXT NOT NULL CHECK (affiliation IN ('owner', 'admin', 'member', 'outcast')),
	PRIMARY KEY (host, room, jid),
	FOREIGN KEY (host, room) REFERENCES muc_rooms (host, room) ON DELETE CASCADE
) WITHOUT ROWID;
`)},
	// Stream management (XEP-0198 §5): the inbound count (h) of the
	// resumable sessions that ended lately, by user (user@host) and
	// resumption id, written at shutdown and read back (and removed) at
	// the next start, so that a client resuming across a restart learns
	// what reached the server. Not a foreign key: entries live a day.
	{name: "stream management counts", up: execSQL(`
CREATE TABLE sm_counts (
	user  TEXT    NOT NULL,
	id    TEXT    NOT NULL,
	h     INTEGER NOT NULL CHECK (h >= 0 AND h < 4294967296),
	ended INTEGER NOT NULL, -- Unix milliseconds
	PRIMARY KEY (user, id)
) WITHOUT ROWID;
`)},
	// A room's registered nicks (XEP-0045 §7.10), on the affiliation they
	// come with ('' for none), and its vCard (XEP-0054, the room's avatar
	// of XEP-0486) as its owner set it ('' for none).
	{name: "muc nicks and vcards", up: execSQL(`
ALTER TABLE muc_affiliations ADD COLUMN nick TEXT NOT NULL DEFAULT '';
ALTER TABLE muc_rooms ADD COLUMN vcard BLOB NOT NULL DEFAULT x'';
`)},
	// Rooms' archives (XEP-0313 on a MUC room, package components/muc):
	// the same columns and indexes as the users' archive, the same seqs
	// (one writer, one sequence, so a stanza-id names one message of
	// either), but owned by a room, which is no account: the owners have
	// no foreign key, and the muc host deletes a room's archive with the
	// room. with_jid is the room's bare JID, with_res the sender's nick,
	// so that a query by occupant JID is one range of room_archive_by_with.
	{name: "room archives", up: execSQL(`
CREATE TABLE room_archives (
	id   INTEGER PRIMARY KEY AUTOINCREMENT,
	host TEXT    NOT NULL CHECK (host <> ''),
	room TEXT    NOT NULL CHECK (room <> ''),
	UNIQUE (host, room)
);

CREATE TABLE room_archive (
	seq      INTEGER PRIMARY KEY, -- from the archive's sequence (archive_state)
	owner    INTEGER NOT NULL REFERENCES room_archives (id) ON DELETE CASCADE,
	at       INTEGER NOT NULL, -- Unix time in nanoseconds; strictly increasing with seq
	with_jid TEXT    NOT NULL, -- the room's bare JID
	with_res TEXT    NOT NULL, -- the sender's nick, '' for the room itself
	outgoing INTEGER NOT NULL CHECK (outgoing IN (0, 1)),
	stanza   BLOB    NOT NULL
);
CREATE INDEX room_archive_by_time ON room_archive (owner, at);                 -- + seq (rowid)
CREATE INDEX room_archive_by_with ON room_archive (owner, with_jid, with_res); -- + seq (rowid)
`)},
}

// execSQL returns a migration step that executes stmts, which may hold
// several statements separated by semicolons.
func execSQL(stmts string) func(context.Context, *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, stmts)
		return err
	}
}

// migrate applies the steps of steps that db has not applied yet, one
// transaction per step. Each transaction takes the write lock before it
// reads the version, so two processes opening the same file at once apply
// each step once.
func migrate(ctx context.Context, db *sql.DB, steps []migration) error {
	for {
		done, err := migrateOne(ctx, db, steps)
		if err != nil || done {
			return err
		}
	}
}

// migrateOne applies the next step that db lacks and reports whether the
// schema was already up to date.
func migrateOne(ctx context.Context, db *sql.DB, steps []migration) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("migrate: %w", err)
	}
	defer func() {
		if err != nil || done {
			tx.Rollback()
		}
	}()

	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return false, fmt.Errorf("migrate: read schema version: %w", err)
	}
	switch {
	case version > len(steps):
		return false, fmt.Errorf("migrate: schema version %d is newer than this Parley knows (%d): the database was written by a newer release; upgrade Parley or restore an older backup", version, len(steps))
	case version < 0:
		return false, fmt.Errorf("migrate: schema version %d is negative: this is not a Parley database", version)
	case version == len(steps):
		return true, nil
	}

	step := steps[version]
	if err := step.up(ctx, tx); err != nil {
		return false, fmt.Errorf("migrate to version %d (%s): %w", version+1, step.name, err)
	}
	// PRAGMA takes no bound parameters; version is an int we computed.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", version+1)); err != nil {
		return false, fmt.Errorf("migrate to version %d (%s): set schema version: %w", version+1, step.name, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migrate to version %d (%s): commit: %w", version+1, step.name, err)
	}
	return false, nil
}

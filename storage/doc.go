// Package storage is Parley's SQLite store: the one place where accounts,
// their rosters, offline messages, vCards and private XML, blocklists and
// last activity, and registration invites, and later the message archive,
// PEP nodes and rooms, are kept, together with the schema migrations that
// create them.
//
// Everything a user has is scoped to (host, username) and belongs to the
// account: writing it for a user without an account fails with
// [ErrNotFound], and [Store.DeleteAccount] deletes it with the account.
//
// A [Store] is opened on one SQLite file (WAL mode, foreign keys on, a busy
// timeout) or on ":memory:" for an ephemeral server, and is safe for use by
// many goroutines. Every method commits before it returns, so a write the
// protocol acknowledges is on disk when the acknowledgement is sent.
//
// Errors wrap [ErrNotFound] and [ErrExists] where the caller has to tell
// those cases apart; test them with [errors.Is].
//
// This package is not a cache and not a router: it does no PRECIS
// normalization (callers pass normalized host and user names), knows nothing
// of sessions or stanzas, and should not be called on every routed stanza.
// Consumers declare the small interfaces they need from a Store in their own
// package, so each can be tested with a fake. Passwords never reach it: an
// [Account] holds only SCRAM keys.
package storage

package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SCRAMKey is what the server keeps of a password for one SCRAM hash
// (RFC 5802 §3): never the password itself, only the salt, the iteration
// count and the two keys derived from the salted password.
type SCRAMKey struct {
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// Account is one user of one local host. The same username on two hosts is
// two accounts. A Store returns Created in UTC.
type Account struct {
	Host     string // the host's domain, lower case
	Username string // the PRECIS-normalized localpart
	SHA1     SCRAMKey
	SHA256   SCRAMKey
	Created  time.Time
}

// accountColumns are the columns of the accounts table in the order that
// scanAccount reads them.
const accountColumns = `host, username,
	sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key,
	sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key,
	created`

// CreateAccount adds a, setting its creation time to now when a.Created is
// zero. The error wraps [ErrExists] when host a.Host already has a user
// a.Username.
func (s *Store) CreateAccount(ctx context.Context, a Account) error {
	if err := checkName(a.Host, a.Username); err != nil {
		return fmt.Errorf("storage: create account %s@%s: %w", a.Username, a.Host, err)
	}
	if a.Created.IsZero() {
		a.Created = time.Now()
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO accounts (`+accountColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (host, username) DO NOTHING`,
		a.Host, a.Username,
		blob(a.SHA1.Salt), a.SHA1.Iterations, blob(a.SHA1.StoredKey), blob(a.SHA1.ServerKey),
		blob(a.SHA256.Salt), a.SHA256.Iterations, blob(a.SHA256.StoredKey), blob(a.SHA256.ServerKey),
		a.Created.UnixNano())
	if err != nil {
		return fmt.Errorf("storage: create account %s@%s: %w", a.Username, a.Host, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("storage: create account %s@%s: %w", a.Username, a.Host, err)
	} else if n == 0 {
		return fmt.Errorf("storage: create account %s@%s: %w", a.Username, a.Host, ErrExists)
	}
	return nil
}

// Account returns the account of username on host. The error wraps
// [ErrNotFound] when there is none.
func (s *Store) Account(ctx context.Context, host, username string) (Account, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+accountColumns+` FROM accounts
		WHERE host = ? AND username = ?`, host, username)
	a, err := scanAccount(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, fmt.Errorf("storage: account %s@%s: %w", username, host, ErrNotFound)
	}
	if err != nil {
		return Account{}, fmt.Errorf("storage: account %s@%s: %w", username, host, err)
	}
	return a, nil
}

// SetCredentials replaces the SCRAM keys of username on host, as when the
// user changes the password. The error wraps [ErrNotFound] when there is no
// such account.
func (s *Store) SetCredentials(ctx context.Context, host, username string, sha1, sha256 SCRAMKey) error {
	res, err := s.db.ExecContext(ctx, `UPDATE accounts SET
		sha1_salt = ?, sha1_iterations = ?, sha1_stored_key = ?, sha1_server_key = ?,
		sha256_salt = ?, sha256_iterations = ?, sha256_stored_key = ?, sha256_server_key = ?
		WHERE host = ? AND username = ?`,
		blob(sha1.Salt), sha1.Iterations, blob(sha1.StoredKey), blob(sha1.ServerKey),
		blob(sha256.Salt), sha256.Iterations, blob(sha256.StoredKey), blob(sha256.ServerKey),
		host, username)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("storage: set credentials of %s@%s: %w", username, host, err)
	}
	return nil
}

// DeleteAccount removes username from host, with everything that belongs to
// the account: its roster and roster tombstones, offline messages, XML
// documents, blocklist and last activity, in one transaction (the tables
// of per-user data refer to accounts with ON DELETE CASCADE). The error
// wraps [ErrNotFound] when there is no such account.
func (s *Store) DeleteAccount(ctx context.Context, host, username string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM accounts WHERE host = ? AND username = ?`, host, username)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("storage: delete account %s@%s: %w", username, host, err)
	}
	return nil
}

// Accounts returns the accounts of host, or of every host when host is "",
// ordered by host and then username.
func (s *Store) Accounts(ctx context.Context, host string) ([]Account, error) {
	what := "all hosts"
	if host != "" {
		what = host
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+accountColumns+` FROM accounts
		WHERE ? = '' OR host = ?
		ORDER BY host, username`, host, host)
	if err != nil {
		return nil, fmt.Errorf("storage: list accounts of %s: %w", what, err)
	}
	defer rows.Close()
	var as []Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, fmt.Errorf("storage: list accounts of %s: %w", what, err)
		}
		as = append(as, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: list accounts of %s: %w", what, err)
	}
	return as, nil
}

// HasAccounts reports whether host has at least one account. Unlike
// [Store.Accounts] it reads no rows, so it costs the same on any host.
func (s *Store) HasAccounts(ctx context.Context, host string) (bool, error) {
	var has bool
	err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM accounts WHERE host = ?)`, host).Scan(&has)
	if err != nil {
		return false, fmt.Errorf("storage: look for accounts of %s: %w", host, err)
	}
	return has, nil
}

// checkName reports an error when host or username is empty.
func checkName(host, username string) error {
	switch {
	case host == "":
		return errors.New("empty host")
	case username == "":
		return errors.New("empty username")
	}
	return nil
}

// scanAccount reads one row of accountColumns.
func scanAccount(row interface{ Scan(...any) error }) (Account, error) {
	var (
		a       Account
		created int64
	)
	err := row.Scan(&a.Host, &a.Username,
		&a.SHA1.Salt, &a.SHA1.Iterations, &a.SHA1.StoredKey, &a.SHA1.ServerKey,
		&a.SHA256.Salt, &a.SHA256.Iterations, &a.SHA256.StoredKey, &a.SHA256.ServerKey,
		&created)
	if err != nil {
		return Account{}, err
	}
	a.Created = time.Unix(0, created).UTC()
	for _, b := range []*[]byte{
		&a.SHA1.Salt, &a.SHA1.StoredKey, &a.SHA1.ServerKey,
		&a.SHA256.Salt, &a.SHA256.StoredKey, &a.SHA256.ServerKey,
	} {
		if len(*b) == 0 {
			*b = nil // what went in as nil comes out as nil
		}
	}
	return a, nil
}

// blob returns b, or an empty slice for nil: the driver would store nil as
// NULL, which the NOT NULL key columns refuse.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// oneRow turns the result of an UPDATE or DELETE by primary key into an
// error that wraps [ErrNotFound] when no row matched.
func oneRow(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"hash"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-im/parley/storage"
)

// threeHosts are two local hosts and a MUC service.
const threeHosts = `[[host]]
name = "example.com"

[[host]]
name = "example.net"

[[host]]
name = "rooms.example.com"
type = "muc"
`

func TestUserLifecycle(t *testing.T) {
	cfg, dataDir := testConfig{hosts: threeHosts}.write(t)
	steps := []struct {
		name       string
		args       []string // after "user"
		stdin      string
		wantCode   int
		wantStdout string // all of stdout
		wantStderr string // a substring of stderr
		// password, when set, is what the keys of alice@example.com must
		// derive from after the step.
		password string
	}{
		{name: "add creates an account with the password on stdin",
			args: []string{"add", "-c", cfg, "alice@example.com"}, stdin: "first secret\n",
			wantStdout: "added alice@example.com\n", password: "first secret"},
		{name: "add takes -c after the JID and normalizes the JID",
			args: []string{"add", "Bob@Example.NET", "-c", cfg}, stdin: "bob's secret\n",
			wantStdout: "added bob@example.net\n"},
		{name: "list prints every account sorted",
			args:       []string{"list", "-c", cfg},
			wantStdout: "alice@example.com\nbob@example.net\n"},
		{name: "list of a host prints its accounts",
			args:       []string{"list", "-c", cfg, "example.net"},
			wantStdout: "bob@example.net\n"},
		{name: "add of an existing account says to use passwd",
			args: []string{"add", "-c", cfg, "alice@example.com"}, stdin: "other secret\n",
			wantCode: 1, wantStderr: "alice@example.com already exists; use `parley user passwd`",
			password: "first secret"},
		{name: "passwd changes the password",
			args: []string{"passwd", "-c", cfg, "alice@example.com"}, stdin: "second secret\n",
			wantStdout: "changed the password of alice@example.com\n", password: "second secret"},
		{name: "passwd refuses an empty password and keeps the old one",
			args: []string{"passwd", "-c", cfg, "alice@example.com"}, stdin: "\n",
			wantCode: 1, wantStderr: "the password is empty", password: "second secret"},
		{name: "del deletes the account",
			args:       []string{"del", "-c", cfg, "alice@example.com"},
			wantStdout: "deleted alice@example.com\n"},
		{name: "del of a missing account fails",
			args:     []string{"del", "-c", cfg, "alice@example.com"},
			wantCode: 1, wantStderr: "alice@example.com: no such account"},
		{name: "passwd of a missing account fails without asking for a password",
			args:     []string{"passwd", "-c", cfg, "alice@example.com"},
			wantCode: 1, wantStderr: "alice@example.com: no such account"},
		{name: "del deletes the other account",
			args:       []string{"del", "-c", cfg, "bob@example.net"},
			wantStdout: "deleted bob@example.net\n"},
		{name: "list prints nothing when there are no accounts",
			args: []string{"list", "-c", cfg}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			code, stdout, stderr := runParley(t, st.stdin, append([]string{"user"}, st.args...)...)
			if code != st.wantCode {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", code, st.wantCode, stderr)
			}
			if stdout != st.wantStdout {
				t.Errorf("stdout %q, want %q", stdout, st.wantStdout)
			}
			if !strings.Contains(stderr, st.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr, st.wantStderr)
			}
			if st.password != "" {
				a := account(t, dataDir, "example.com", "alice")
				if !keyMatches(sha1.New, st.password, a.SHA1) || !keyMatches(sha256.New, st.password, a.SHA256) {
					t.Errorf("the stored keys are not those of the password %q", st.password)
				}
			}
		})
	}
}

func TestUserErrors(t *testing.T) {
	memory, _ := testConfig{top: `database = ":memory:"`, hosts: threeHosts}.write(t)
	tests := []struct {
		name       string
		memory     bool     // use the config with an in-memory database
		args       []string // after "user"; the config's -c is added
		stdin      string
		wantCode   int
		wantStderr string
	}{
		{name: "add of a host that is not configured names the local hosts",
			args: []string{"add", "alice@example.org"}, stdin: "secret\n", wantCode: 1,
			wantStderr: "example.org is not a host of "},
		{name: "add of a muc host says it has no accounts",
			args: []string{"add", "alice@rooms.example.com"}, stdin: "secret\n", wantCode: 1,
			wantStderr: "rooms.example.com is a muc host in "},
		{name: "add of a JID with a resource is refused",
			args: []string{"add", "alice@example.com/phone"}, stdin: "secret\n", wantCode: 1,
			wantStderr: `"alice@example.com/phone" has a resource: an account is a bare JID; write alice@example.com`},
		{name: "add of a domain without a user is refused",
			args: []string{"add", "example.com"}, stdin: "secret\n", wantCode: 1,
			wantStderr: `"example.com" has no user part`},
		{name: "add of an invalid JID is refused",
			args: []string{"add", "@example.com"}, stdin: "secret\n", wantCode: 1,
			wantStderr: `jid "@example.com"`},
		{name: "add refuses an empty password",
			args: []string{"add", "alice@example.com"}, stdin: "\n", wantCode: 1,
			wantStderr: "the password is empty"},
		{name: "add refuses empty input",
			args: []string{"add", "alice@example.com"}, stdin: "", wantCode: 1,
			wantStderr: "no password"},
		{name: "add refuses the password as an argument",
			args: []string{"add", "alice@example.com", "secret"}, wantCode: 2,
			wantStderr: "never taken as an argument"},
		{name: "add without a JID is a usage error",
			args: []string{"add"}, wantCode: 2,
			wantStderr: "missing the account"},
		{name: "list of a host that is not configured fails",
			args: []string{"list", "example.org"}, wantCode: 1,
			wantStderr: "example.org is not a host of "},
		{name: "list of a JID instead of a host fails",
			args: []string{"list", "alice@example.com"}, wantCode: 1,
			wantStderr: `"alice@example.com" is not a host name; write example.com`},
		{name: "a config with an in-memory database is refused",
			memory: true, args: []string{"add", "alice@example.com"}, stdin: "secret\n", wantCode: 1,
			wantStderr: "the config keeps accounts in memory; user commands need a database file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, dataDir := testConfig{hosts: threeHosts}.write(t)
			if tt.memory {
				cfg = memory
			}
			args := append([]string{"user"}, tt.args...)
			args = append(args, "-c", cfg)
			code, stdout, stderr := runParley(t, tt.stdin, args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.wantStderr)
			}
			if strings.Contains(stderr, "is not a host of ") && !strings.Contains(stderr, "its local hosts are example.com, example.net") {
				t.Errorf("stderr %q does not name the local hosts", stderr)
			}
			if _, err := os.Stat(filepath.Join(dataDir, "parley.db")); err == nil {
				if accounts := allAccounts(t, dataDir); len(accounts) > 0 {
					t.Errorf("a failed command left accounts: %v", accounts)
				}
			}
		})
	}
}

func TestUserAddStoresOnlySCRAMKeys(t *testing.T) {
	const password = "Tr0ub4dor&3 correct horse"
	cfg, dataDir := testConfig{}.write(t)
	code, stdout, stderr := runParley(t, password+"\n", "user", "add", "-c", cfg, "alice@example.com")
	if code != 0 {
		t.Fatalf("user add: exit code %d; stderr:\n%s", code, stderr)
	}
	if strings.Contains(stdout+stderr, password) {
		t.Errorf("user add printed the password: stdout %q, stderr %q", stdout, stderr)
	}

	a := account(t, dataDir, "example.com", "alice")
	keys := []struct {
		name    string
		newHash func() hash.Hash
		key     storage.SCRAMKey
	}{
		{"SCRAM-SHA-1", sha1.New, a.SHA1},
		{"SCRAM-SHA-256", sha256.New, a.SHA256},
	}
	for _, k := range keys {
		size := k.newHash().Size()
		switch {
		case k.key.Iterations != 4096:
			t.Errorf("%s: %d iterations, want the config's 4096", k.name, k.key.Iterations)
		case len(k.key.Salt) < 16:
			t.Errorf("%s: salt of %d bytes, want at least 16", k.name, len(k.key.Salt))
		case len(k.key.StoredKey) != size || len(k.key.ServerKey) != size:
			t.Errorf("%s: StoredKey of %d bytes and ServerKey of %d, want %d", k.name, len(k.key.StoredKey), len(k.key.ServerKey), size)
		case !keyMatches(k.newHash, password, k.key):
			t.Errorf("%s: the stored key is not that of the password", k.name)
		}
	}

	// Whatever SQLite keeps (the database, a WAL, a journal), none of it
	// holds the password.
	err := filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte(password)) {
			t.Errorf("%s holds the password", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestReadPassword(t *testing.T) {
	long := strings.Repeat("x", maxPasswordLine) + "\n"
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr string
	}{
		{name: "a line is the password", in: "s3cret\n", want: "s3cret"},
		{name: "a line ending in CRLF loses the CR", in: "s3cret\r\n", want: "s3cret"},
		{name: "a last line without a newline counts", in: "s3cret", want: "s3cret"},
		{name: "only the first line is read", in: "one\ntwo\n", want: "one"},
		{name: "spaces are part of the password", in: "  pass word  \n", want: "  pass word  "},
		{name: "an empty line is refused", in: "\n", wantErr: errEmptyPassword.Error()},
		{name: "no input is refused", in: "", wantErr: errNoPassword.Error()},
		{name: "a line longer than the limit is refused", in: long, wantErr: "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var prompt bytes.Buffer
			got, err := readPassword(strings.NewReader(tt.in), &prompt, "alice@example.com")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("password %q, want %q", got, tt.want)
			}
			if prompt.Len() > 0 {
				t.Errorf("prompted %q on input that is not a terminal", prompt.String())
			}
		})
	}
}

// account returns an account from the database in dataDir.
func account(t *testing.T, dataDir, host, username string) storage.Account {
	t.Helper()
	st := openStore(t, dataDir)
	a, err := st.Account(context.Background(), host, username)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// allAccounts returns the JIDs of all the accounts in the database in
// dataDir.
func allAccounts(t *testing.T, dataDir string) []string {
	t.Helper()
	st := openStore(t, dataDir)
	as, err := st.Accounts(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	var jids []string
	for _, a := range as {
		jids = append(jids, a.Username+"@"+a.Host)
	}
	return jids
}

// openStore opens the database in dataDir until the test ends.
func openStore(t *testing.T, dataDir string) *storage.Store {
	t.Helper()
	st, err := storage.Open(context.Background(), filepath.Join(dataDir, "parley.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			t.Error(err)
		}
	})
	return st
}

// keyMatches reports whether key is the SCRAM key of password (RFC 5802
// §3), computed here from the RFC rather than with the sasl package.
// password must be ASCII, which the OpaqueString profile leaves as it is.
func keyMatches(newHash func() hash.Hash, password string, key storage.SCRAMKey) bool {
	salted, err := pbkdf2.Key(newHash, password, key.Salt, key.Iterations, newHash().Size())
	if err != nil {
		return false
	}
	mac := func(k []byte, msg string) []byte {
		m := hmac.New(newHash, k)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	h := newHash()
	h.Write(mac(salted, "Client Key"))
	return hmac.Equal(h.Sum(nil), key.StoredKey) && hmac.Equal(mac(salted, "Server Key"), key.ServerKey)
}

package storage

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// fillUserData gives user@host something in every per-user table: a roster
// with two items and a tombstone, two offline messages, a vCard and a
// private XML document, a blocklist and a last activity.
func fillUserData(t *testing.T, s *Store, host, user string) {
	t.Helper()
	ctx := t.Context()
	for _, jid := range []string{"a@example.net", "b@example.net", "c@example.net"} {
		if _, err := s.PutRosterItem(ctx, host, user, RosterItem{JID: jid, Groups: []string{"g"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.DeleteRosterItem(ctx, host, user, "c@example.net"); err != nil {
		t.Fatal(err)
	}
	mustStoreOffline(t, s, host, user, "<message>1</message>", "<message>2</message>")
	if err := s.PutXML(ctx, host, user, "vcard", "", []byte("<vCard/>")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutXML(ctx, host, user, "private", "storage:bookmarks", []byte("<storage/>")); err != nil {
		t.Fatal(err)
	}
	if err := s.Block(ctx, host, user, []string{"spam@example.net"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLastActivity(ctx, host, user, time.Unix(1700000000, 0), "bye"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendArchive(ctx, host, user, ArchiveEntry{With: "a@example.net", Stanza: []byte("<message/>")}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetArchivePrefs(ctx, host, user, ArchivePrefs{Default: "roster", Never: []string{"spam@example.net"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PublishPubsub(ctx, host, user, "urn:xmpp:avatar:metadata", PubsubItem{ID: "1", Payload: []byte("<metadata/>")},
		PublishOptions{Create: &PubsubConfig{AccessModel: "presence", PublishModel: "publishers", MaxItems: 1, PersistItems: true, SendLast: "never"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddFastToken(ctx, host, user, "agent-1", FastToken{Mechanism: "HT-SHA-256-NONE", ID: []byte("id"), Expires: time.Unix(2000000000, 0)}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPush(ctx, host, user, PushRegistration{JID: "push.example.net", Node: "n", Options: []byte("<x/>")}); err != nil {
		t.Fatal(err)
	}
}

// userData is what the API shows of one user's data.
type userData struct {
	Roster     []string
	RosterVer  int64
	Removed    []string
	Offline    []string
	VCard      string
	Bookmarks  string
	BlockList  []string
	LastStatus string
}

// readUserData returns what the API shows of user@host's data, with ""
// for a document or last activity that is not found.
func readUserData(t *testing.T, s *Store, host, user string) userData {
	t.Helper()
	ctx := t.Context()
	var (
		d   userData
		err error
	)
	items, ver, err := s.Roster(ctx, host, user)
	if err != nil {
		t.Fatal(err)
	}
	d.Roster, d.RosterVer = jids(items), ver
	if _, d.Removed, _, _, err = s.RosterSince(ctx, host, user, 0); err != nil {
		t.Fatal(err)
	}
	d.Offline = stanzas(mustOffline(t, s, host, user))
	doc := func(kind, key string) string {
		b, err := s.XML(ctx, host, user, kind, key)
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
		return string(b)
	}
	d.VCard, d.Bookmarks = doc("vcard", ""), doc("private", "storage:bookmarks")
	if d.BlockList, err = s.BlockList(ctx, host, user); err != nil {
		t.Fatal(err)
	}
	if _, d.LastStatus, err = s.LastActivity(ctx, host, user); err != nil && !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	return d
}

func TestDeleteAccountDeletesUserData(t *testing.T) {
	full := userData{
		Roster:     []string{"a@example.net", "b@example.net"},
		RosterVer:  4,
		Removed:    []string{"c@example.net"},
		Offline:    []string{"<message>1</message>", "<message>2</message>"},
		VCard:      "<vCard/>",
		Bookmarks:  "<storage/>",
		BlockList:  []string{"spam@example.net"},
		LastStatus: "bye",
	}
	runOnBackends(t, []storeTest{
		{"deleting an account deletes its data and no one else's", func(t *testing.T, s *Store) {
			withUsers(t, s)
			for _, u := range []struct{ host, user string }{{testHost, "alice"}, {testHost, "bob"}, {otherHost, "alice"}} {
				fillUserData(t, s, u.host, u.user)
			}
			if got := readUserData(t, s, testHost, "alice"); !reflect.DeepEqual(got, full) {
				t.Fatalf("before the delete, alice has %+v, want %+v", got, full)
			}
			if err := s.DeleteAccount(t.Context(), testHost, "alice"); err != nil {
				t.Fatal(err)
			}
			// Every table with a username column, including ones added
			// later, must have nothing left of alice@example.com.
			for _, table := range userTables(t, s) {
				var n int
				if err := s.db.QueryRow(fmt.Sprintf(`SELECT count(*) FROM %q WHERE host = ? AND username = ?`, table),
					testHost, "alice").Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != 0 {
					t.Errorf("%s keeps %d rows of the deleted alice@example.com", table, n)
				}
			}
			for _, u := range []struct{ host, user string }{{testHost, "bob"}, {otherHost, "alice"}} {
				if got := readUserData(t, s, u.host, u.user); !reflect.DeepEqual(got, full) {
					t.Errorf("after deleting alice@example.com, %s@%s has %+v, want %+v", u.user, u.host, got, full)
				}
			}
			// A new account of the same name starts empty, and a roster
			// version the old account's client cached is not answered.
			mustCreate(t, s, testAccount(testHost, "alice"))
			if got := readUserData(t, s, testHost, "alice"); !reflect.DeepEqual(got, userData{}) {
				t.Errorf("the new alice@example.com has %+v, want nothing", got)
			}
			if _, _, _, ok, err := s.RosterSince(t.Context(), testHost, "alice", full.RosterVer); err != nil || ok {
				t.Errorf("RosterSince(%d) of the new account = ok %v, %v; want not ok", full.RosterVer, ok, err)
			}
		}},
		{"deleting an account leaves the invites of its host", func(t *testing.T, s *Store) {
			withUsers(t, s)
			now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
			if err := s.CreateInvite(t.Context(), testHost, "tok", now.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteAccount(t.Context(), testHost, "alice"); err != nil {
				t.Fatal(err)
			}
			if err := s.UseInvite(t.Context(), testHost, "tok", now); err != nil {
				t.Errorf("UseInvite after DeleteAccount: %v", err)
			}
		}},
	})
}

// userTables returns the tables of s's schema, other than accounts, that
// have a username column.
func userTables(t *testing.T, s *Store) []string {
	t.Helper()
	rows, err := s.db.Query(`SELECT m.name FROM sqlite_schema AS m, pragma_table_info(m.name) AS c
		WHERE m.type = 'table' AND m.name <> 'accounts' AND c.name = 'username' ORDER BY m.name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	tables, err := scanStrings(rows)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"blocklist", "last_activity", "offline_messages", "roster_items", "roster_tombstones", "roster_version", "xml_documents"}; len(tables) < len(want) {
		t.Fatalf("tables with a username column = %q, want at least %q", tables, want)
	}
	return tables
}

func TestUserDataWithoutAccount(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		op      func(s *Store) error
		wantMsg string
	}{
		{
			"putting a roster item is ErrNotFound",
			func(s *Store) error {
				_, err := s.PutRosterItem(ctx, testHost, "nobody", RosterItem{JID: "a@example.net"})
				return err
			},
			"storage: put roster item a@example.net of nobody@example.com: no such account: not found",
		},
		{
			"deleting a roster item is ErrNotFound",
			func(s *Store) error {
				_, err := s.DeleteRosterItem(ctx, testHost, "nobody", "a@example.net")
				return err
			},
			"storage: delete roster item a@example.net of nobody@example.com: not found",
		},
		{
			"storing an offline message is ErrNotFound",
			func(s *Store) error {
				return s.StoreOffline(ctx, testHost, "nobody", []byte("<message/>"), OfflineQuota{Messages: 10})
			},
			"storage: store offline message for nobody@example.com: no such account: not found",
		},
		{
			"putting xml is ErrNotFound",
			func(s *Store) error { return s.PutXML(ctx, testHost, "nobody", "vcard", "", []byte("<vCard/>")) },
			`storage: put vcard xml "" of nobody@example.com: no such account: not found`,
		},
		{
			"blocking is ErrNotFound",
			func(s *Store) error { return s.Block(ctx, testHost, "nobody", []string{"a@example.net"}) },
			"storage: block for nobody@example.com: no such account: not found",
		},
		{
			"setting the last activity is ErrNotFound",
			func(s *Store) error { return s.SetLastActivity(ctx, testHost, "nobody", time.Now(), "") },
			"storage: set last activity of nobody@example.com: no such account: not found",
		},
		{
			"the user of another host is no account",
			func(s *Store) error {
				return s.StoreOffline(ctx, otherHost, "bob", []byte("<message/>"), OfflineQuota{Messages: 10})
			},
			"storage: store offline message for bob@example.org: no such account: not found",
		},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := withUsers(t, openStore(t, b.path(t)))
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					err := tt.op(s)
					if !errors.Is(err, ErrNotFound) {
						t.Fatalf("error = %v, want ErrNotFound", err)
					}
					if err.Error() != tt.wantMsg {
						t.Errorf("error = %q, want %q", err, tt.wantMsg)
					}
				})
			}
			for _, table := range userTables(t, s) {
				var n int
				if err := s.db.QueryRow(fmt.Sprintf(`SELECT count(*) FROM %q`, table)).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != 0 {
					t.Errorf("%s has %d rows after writes that all failed", table, n)
				}
			}
		})
	}
}

func TestUpgradeFromAccountsOnly(t *testing.T) {
	t.Run("a database of accounts alone gains the per-user tables and keeps its accounts", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "parley.db")
		db, err := openDB(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := migrate(t.Context(), db, migrations[:1]); err != nil {
			db.Close()
			t.Fatal(err)
		}
		a := testAccount(testHost, "alice")
		if _, err := db.Exec(`INSERT INTO accounts (`+accountColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.Host, a.Username, a.SHA1.Salt, a.SHA1.Iterations, a.SHA1.StoredKey, a.SHA1.ServerKey,
			a.SHA256.Salt, a.SHA256.Iterations, a.SHA256.StoredKey, a.SHA256.ServerKey, a.Created.UnixNano()); err != nil {
			db.Close()
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		s := openStore(t, path)
		if got := mustGet(t, s, testHost, "alice"); !reflect.DeepEqual(got, a) {
			t.Errorf("after the upgrade, Account() = %+v, want %+v", got, a)
		}
		fillUserData(t, s, testHost, "alice")
		if err := s.DeleteAccount(t.Context(), testHost, "alice"); err != nil {
			t.Fatal(err)
		}
		if got := readUserData(t, s, testHost, "alice"); !reflect.DeepEqual(got, userData{}) {
			t.Errorf("after deleting the upgraded account, its data is %+v", got)
		}
	})
}

package mam_test

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/server/mod/mam"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// withLocal starts a server whose host localhost has the options edit
// makes, with alice and bob.
func withLocal(t *testing.T, edit func(o *local.LocalOptions)) *parleytest.Server {
	t.Helper()
	s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) {
		h := conf.Host{Name: "localhost"}
		edit(local.LocalOptionsOf(&h))
		c.Hosts = append(c.Hosts, h)
	}))
	s.AddUser("alice@localhost", "alice")
	s.AddUser("bob@localhost", "bob")
	return s
}

// TestArchiveOff: with archive = false the host advertises no archive,
// stamps no stanza-id, answers no query and archives nothing.
func TestArchiveOff(t *testing.T) {
	s := withLocal(t, func(o *local.LocalOptions) { o.SetArchive(false) })
	alice, bob := online(t, s, "alice", "phone"), online(t, s, "bob", "desk")
	alice.Send("<message to='bob@localhost' type='chat'><body>not kept</body></message>")
	if ids := stanzaIDs(bob.NextStanzaFor("alice's message")); len(ids) != 0 {
		t.Errorf("a stanza-id without an archive: %q", ids)
	}
	for _, to := range []string{"alice@localhost", "localhost"} {
		info := alice.IQ("get", to, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
		alice.ExpectResult(info, "disco#info")
		for _, f := range info.El.FindElements("query/feature") {
			if v := f.SelectAttrValue("var", ""); strings.HasPrefix(v, mam.NS) || v == mam.NSSID {
				t.Errorf("disco#info of %s lists %s", to, v)
			}
		}
	}
	alice.ExpectError(alice.IQ("set", "", "<query xmlns='"+mam.NS+"'/>"), xmpp.ServiceUnavailable, "an archive query")
	if err := s.Store().SyncArchive(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"alice", "bob"} {
		if _, _, ok, err := s.Store().ArchiveBounds(context.Background(), "localhost", user); ok || err != nil {
			t.Errorf("%s's archive is not empty (%v)", user, err)
		}
	}
}

// TestArchiveExpires: the retention loop deletes what is older than
// archive_expires_after and keeps the rest; "never" keeps everything.
func TestArchiveExpires(t *testing.T) {
	defer mam.SetExpireEvery(20 * time.Millisecond)()
	tests := []struct {
		keep string
		want []string
	}{
		{"2h", []string{"1h ago", "now"}},
		{"30d", []string{"40d ago", "3h ago", "1h ago", "now"}[1:]},
		{"never", []string{"40d ago", "3h ago", "1h ago", "now"}},
	}
	for _, tt := range tests {
		t.Run(tt.keep, func(t *testing.T) {
			s := withLocal(t, func(o *local.LocalOptions) { o.ArchiveExpiresAfter = tt.keep })
			now := time.Now()
			var es []storage.ArchiveEntry
			for _, m := range []struct {
				body string
				ago  time.Duration
			}{{"40d ago", 40 * 24 * time.Hour}, {"3h ago", 3 * time.Hour}, {"1h ago", time.Hour}, {"now", 0}} {
				es = append(es, storage.ArchiveEntry{With: "bob@localhost", At: now.Add(-m.ago),
					Stanza: []byte("<message xmlns='jabber:client' type='chat'><body>" + m.body + "</body></message>")})
			}
			if _, err := s.Store().AppendArchiveBatch(context.Background(), "localhost", "alice", es); err != nil {
				t.Fatal(err)
			}
			alice := online(t, s, "alice", "phone")
			// The loop runs every 20 ms: a few rounds, then the archive
			// must hold exactly what is wanted, and keep holding it.
			var got []string
			for deadline := time.Now().Add(10 * time.Second); ; {
				rs, answer := queryArchive(t, alice, "q", "", "")
				fin(t, alice, answer)
				got = bodies(rs)
				if slices.Equal(got, tt.want) || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond)
			rs, answer := queryArchive(t, alice, "q", "", "")
			fin(t, alice, answer)
			if got = bodies(rs); !slices.Equal(got, tt.want) {
				t.Errorf("archive_expires_after %s: left %q, want %q", tt.keep, got, tt.want)
			}
		})
	}
}

// TestArchiveOptions: archive_default and archive_max_page apply.
func TestArchiveOptions(t *testing.T) {
	s := withLocal(t, func(o *local.LocalOptions) { o.ArchiveDefault = "never"; o.ArchiveMaxPage = 3 })
	alice, bob := online(t, s, "alice", "phone"), online(t, s, "bob", "desk")
	prefs := alice.IQ("get", "", "<prefs xmlns='"+mam.NS+"'/>")
	alice.ExpectResult(prefs, "prefs")
	if d := prefs.El.FindElement("prefs").SelectAttrValue("default", ""); d != "never" {
		t.Errorf("default prefs %q, want never", d)
	}
	alice.Send("<message to='bob@localhost' type='chat'><body>unkept</body></message>")
	if ids := stanzaIDs(bob.NextStanzaFor("alice's message")); len(ids) != 0 {
		t.Errorf("archived under archive_default never: %q", ids)
	}
	var es []storage.ArchiveEntry
	for range 5 {
		es = append(es, storage.ArchiveEntry{With: "bob@localhost", Stanza: []byte("<message xmlns='jabber:client'><body>x</body></message>")})
	}
	if _, err := s.Store().AppendArchiveBatch(context.Background(), "localhost", "alice", es); err != nil {
		t.Fatal(err)
	}
	rs, answer := queryArchive(t, alice, "q", "", "<set xmlns='http://jabber.org/protocol/rsm'><max>50</max></set>")
	if f := fin(t, alice, answer); len(rs) != 3 || f.SelectAttrValue("complete", "") == "true" {
		t.Errorf("max 50 under archive_max_page 3: %d results, complete=%q", len(rs), f.SelectAttrValue("complete", ""))
	}
}

// TestArchiveConfig checks the archive's keys of a [[host]]: defaults,
// accepted forms and the mistakes, each reported on its line.
func TestArchiveConfig(t *testing.T) {
	tests := []struct {
		name, keys string
		retention  time.Duration
		wantErr    string
	}{
		{"defaults", "", 7 * 24 * time.Hour, ""},
		{"days", "archive_expires_after = \"30d\"\n", 30 * 24 * time.Hour, ""},
		{"hours", "archive_expires_after = \"36h\"\n", 36 * time.Hour, ""},
		{"never", "archive_expires_after = \"never\"\n", 0, ""},
		{"off", "archive = false\narchive_default = \"roster\"\narchive_max_page = 1000\n", 7 * 24 * time.Hour, ""},
		{"zero", "archive_expires_after = \"0s\"\n", 0, "parley.toml:3: host[0].archive_expires_after: \"0s\" is less than an hour"},
		{"no unit", "archive_expires_after = \"7\"\n", 0, "parley.toml:3: host[0].archive_expires_after: \"7\" is not a duration"},
		{"empty", "archive_expires_after = \"\"\n", 0, "host[0].archive_expires_after: \"\" is not a duration"},
		{"policy", "archive_default = \"sometimes\"\n", 0, "parley.toml:3: host[0].archive_default: \"sometimes\" is not an archiving policy"},
		{"page 0", "archive_max_page = 0\n", 0, "parley.toml:3: host[0].archive_max_page: 0 is not a page size"},
		{"page too big", "archive_max_page = 1001\n", 0, "parley.toml:3: host[0].archive_max_page: 1001 is not a page size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := conf.Parse("parley.toml", []byte("[[host]]\nname = \"example.com\"\n"+tt.keys))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o := local.LocalOptionsOf(&c.Hosts[0])
			if got := o.ArchiveRetention(); got != tt.retention {
				t.Errorf("retention %v, want %v", got, tt.retention)
			}
			if off := strings.Contains(tt.keys, "archive = false"); o.Archive == off {
				t.Errorf("archive = %v", o.Archive)
			}
			// A second check (of a config built in Go) keeps every choice.
			before := *o
			if err := c.Validate(); err != nil || !reflect.DeepEqual(*o, before) {
				t.Errorf("validated again: %v, %+v; was %+v", err, *o, before)
			}
		})
	}
}

package mam_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/server/mod/mam"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// online logs user@localhost in with resource and sends initial presence.
func online(t *testing.T, s *parleytest.Server, user, resource string) *parleytest.Conn {
	t.Helper()
	c := s.Login(user+"@localhost", user, resource)
	c.Send("<presence/>")
	c.UntilSync()
	return c
}

// twoUsers starts a server with alice and bob online.
func twoUsers(t *testing.T) (*parleytest.Server, *parleytest.Conn, *parleytest.Conn) {
	t.Helper()
	s := parleytest.Start(t)
	s.AddUser("alice@localhost", "alice")
	s.AddUser("bob@localhost", "bob")
	return s, online(t, s, "alice", "phone"), online(t, s, "bob", "desk")
}

// result is one archived message as a query returned it.
type result struct {
	id, queryID, body, from, to string
}

// queryArchive sends a query with the form fields and RSM set given as
// XML, and returns the results, the answer and the fin.
func queryArchive(t *testing.T, c *parleytest.Conn, queryID, fields, rsm string) ([]result, *xmpp.Stanza) {
	t.Helper()
	form := ""
	if fields != "" {
		form = "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>" + mam.NS + "</value></field>" + fields + "</x>"
	}
	answer, before := c.IQAll("set", "", fmt.Sprintf("<query xmlns='%s' queryid='%s'>%s%s</query>", mam.NS, queryID, form, rsm))
	var rs []result
	for _, st := range before {
		res := xmpp.Child(st.El, mam.NS, "result")
		if st.Kind != xmpp.KindMessage || res == nil {
			continue
		}
		fwd := res.FindElement("forwarded/message")
		if fwd == nil || res.FindElement("forwarded/delay") == nil {
			t.Fatalf("result without a forwarded message and its delay: %s", c.String(st.El))
		}
		rs = append(rs, result{id: res.SelectAttrValue("id", ""), queryID: res.SelectAttrValue("queryid", ""),
			body: fwd.FindElement("body").Text(), from: fwd.SelectAttrValue("from", ""), to: fwd.SelectAttrValue("to", "")})
	}
	return rs, answer
}

// fin returns the answer's <fin/>, failing unless it is a result with one.
func fin(t *testing.T, c *parleytest.Conn, answer *xmpp.Stanza) *etree.Element {
	t.Helper()
	c.ExpectResult(answer, "the archive query")
	f := xmpp.Child(answer.El, mam.NS, "fin")
	if f == nil {
		t.Fatalf("a result without fin: %s", c.String(answer.El))
	}
	return f
}

func bodies(rs []result) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.body)
	}
	return out
}

// stanzaIDs returns the by and id of each stanza-id of st.
func stanzaIDs(st *xmpp.Stanza) [][2]string {
	var out [][2]string
	for _, c := range st.El.ChildElements() {
		if c.Tag == "stanza-id" && xmpp.NS(c) == mam.NSSID {
			out = append(out, [2]string{c.SelectAttrValue("by", ""), c.SelectAttrValue("id", "")})
		}
	}
	return out
}

// TestArchiveBothWays: each side archives the conversation once, the
// recipient's copy carries its archive's stanza-id (and no forged one),
// and what should not be archived is not.
func TestArchiveBothWays(t *testing.T) {
	_, alice, bob := twoUsers(t)
	alice.Send("<message to='bob@localhost' type='chat' id='m1'><body>hi bob</body><stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='forged'/></message>")
	got := bob.NextStanzaFor("alice's message")
	ids := stanzaIDs(got)
	if len(ids) != 1 || ids[0][0] != "bob@localhost" || ids[0][1] == "forged" || ids[0][1] == "" {
		t.Fatalf("bob's copy has stanza-ids %q, want one by bob@localhost, not the forged one", ids)
	}
	bobsID := ids[0][1]
	bob.Send("<message to='alice@localhost/phone' type='chat'><body>hi alice</body></message>")
	if ids := stanzaIDs(alice.NextStanzaFor("bob's answer")); len(ids) != 1 || ids[0][0] != "alice@localhost" {
		t.Fatalf("alice's copy has stanza-ids %q", ids)
	}
	// Not archived: hints, headlines, no body, errors.
	for _, m := range []string{
		"<message to='bob@localhost' type='chat'><body>secret</body><no-store xmlns='urn:xmpp:hints'/></message>",
		"<message to='bob@localhost' type='chat'><body>secret</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>",
		"<message to='bob@localhost' type='headline'><body>news</body></message>",
		"<message to='bob@localhost' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
	} {
		alice.Send("%s", m)
		if ids := stanzaIDs(bob.NextStanzaFor("an unarchived message")); len(ids) != 0 {
			t.Errorf("%s was delivered with a stanza-id %q", m, ids)
		}
	}
	// A message to oneself is archived once.
	alice.Send("<message to='alice@localhost' type='chat'><body>note to self</body></message>")
	alice.UntilSync()

	rs, answer := queryArchive(t, alice, "q1", "", "")
	f := fin(t, alice, answer)
	if want := []string{"hi bob", "hi alice", "note to self"}; !slices.Equal(bodies(rs), want) || f.SelectAttrValue("complete", "") != "true" {
		t.Fatalf("alice's archive: %q complete=%q, want %q, complete", bodies(rs), f.SelectAttrValue("complete", ""), want)
	}
	if rs[0].queryID != "q1" || rs[0].to != "bob@localhost" || !strings.HasPrefix(rs[1].from, "bob@localhost") {
		t.Errorf("alice's results: %+v", rs)
	}
	if first := f.FindElement("set/first"); first == nil || first.Text() != rs[0].id {
		t.Errorf("fin's first is not the first result's id %s", rs[0].id)
	}
	rs, answer = queryArchive(t, bob, "q2", "", "")
	fin(t, bob, answer)
	if want := []string{"hi bob", "hi alice"}; !slices.Equal(bodies(rs), want) {
		t.Fatalf("bob's archive: %q, want %q", bodies(rs), want)
	}
	if rs[0].id != bobsID {
		t.Errorf("bob's archive id %s, but his copy said %s", rs[0].id, bobsID)
	}
	// ids and metadata.
	rs, answer = queryArchive(t, bob, "q3", "<field var='ids'><value>"+bobsID+"</value></field>", "")
	fin(t, bob, answer)
	if len(rs) != 1 || rs[0].body != "hi bob" {
		t.Errorf("ids %s: %q", bobsID, bodies(rs))
	}
	md := bob.IQ("get", "", "<metadata xmlns='"+mam.NS+"'/>")
	bob.ExpectResult(md, "metadata")
	if s := md.El.FindElement("metadata/start"); s == nil || s.SelectAttrValue("id", "") != bobsID {
		t.Errorf("metadata: %s, want start %s", bob.String(md.El), bobsID)
	}
}

// TestArchivePaging10000 pages through 10,000 stored and 5 sent messages
// forward and backward, 100 at a time, with exact counts, no gap and no
// duplicate.
func TestArchivePaging10000(t *testing.T) {
	s, alice, bob := twoUsers(t)
	const stored, sent = 10000, 5
	var es []storage.ArchiveEntry
	base := time.Now().Add(-time.Hour)
	for i := range stored {
		es = append(es, storage.ArchiveEntry{With: "bob@localhost", Outgoing: true, At: base.Add(time.Duration(i) * time.Millisecond),
			Stanza: fmt.Appendf(nil, "<message xmlns='jabber:client' type='chat' to='bob@localhost'><body>%d</body></message>", i)})
	}
	if _, err := s.Store().AppendArchiveBatch(context.Background(), "localhost", "alice", es); err != nil {
		t.Fatal(err)
	}
	for i := stored; i < stored+sent; i++ {
		alice.Send("<message to='bob@localhost' type='chat'><body>%d</body></message>", i)
		bob.NextStanzaFor("a message")
	}
	var want []string
	for i := range stored + sent {
		want = append(want, fmt.Sprint(i))
	}

	// The count, asked for with max 0.
	rs, answer := queryArchive(t, alice, "count", "", "<set xmlns='http://jabber.org/protocol/rsm'><max>0</max></set>")
	if c := fin(t, alice, answer).FindElement("set/count"); len(rs) != 0 || c == nil || c.Text() != fmt.Sprint(stored+sent) {
		t.Fatalf("count: %d results, %s", len(rs), alice.String(answer.El))
	}
	for _, backward := range []bool{false, true} {
		t.Run(fmt.Sprintf("backward=%v", backward), func(t *testing.T) {
			var (
				got    []string
				cursor string
				pages  int
			)
			for {
				rsm := "<set xmlns='http://jabber.org/protocol/rsm'><max>100</max>"
				switch {
				case backward:
					rsm += "<before>" + cursor + "</before>"
				case cursor != "":
					rsm += "<after>" + cursor + "</after>"
				}
				rs, answer := queryArchive(t, alice, "p", "<field var='with'><value>bob@localhost</value></field>", rsm+"</set>")
				f := fin(t, alice, answer)
				pages++
				if backward {
					got = append(bodies(rs), got...)
				} else {
					got = append(got, bodies(rs)...)
				}
				complete := f.SelectAttrValue("complete", "") == "true"
				if complete {
					break
				}
				if len(rs) != 100 || pages > 200 {
					t.Fatalf("page %d: %d results, not complete", pages, len(rs))
				}
				if backward {
					cursor = f.FindElement("set/first").Text()
				} else {
					cursor = f.FindElement("set/last").Text()
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%d pages gave %d messages, want %d in order", pages, len(got), len(want))
			}
			if pages != 101 {
				t.Errorf("%d pages, want 101", pages)
			}
		})
	}
}

// TestArchiveQueryRefused: XEP-0313's errors, and pages over the limit
// clamped.
func TestArchiveQueryRefused(t *testing.T) {
	s, alice, bob := twoUsers(t)
	var es []storage.ArchiveEntry
	for i := range 150 {
		es = append(es, storage.ArchiveEntry{With: "bob@localhost", Stanza: fmt.Appendf(nil, "<message type='chat'><body>%d</body></message>", i)})
	}
	if _, err := s.Store().AppendArchiveBatch(context.Background(), "localhost", "alice", es); err != nil {
		t.Fatal(err)
	}
	manyIDs := "<field var='ids'>" + strings.Repeat("<value>x</value>", 101) + "</field>"
	tests := []struct {
		name, fields, rsm string
		want              xmpp.StanzaCondition
	}{
		{"unknown RSM after", "", "<set xmlns='http://jabber.org/protocol/rsm'><after>nope</after></set>", xmpp.ItemNotFound},
		{"unknown RSM before", "", "<set xmlns='http://jabber.org/protocol/rsm'><before>nope</before></set>", xmpp.ItemNotFound},
		{"unknown after-id", "<field var='after-id'><value>nope</value></field>", "", xmpp.ItemNotFound},
		{"unknown of ids", "<field var='ids'><value>nope</value></field>", "", xmpp.ItemNotFound},
		{"unknown field", "<field var='include-groupchat'><value>true</value></field>", "", xmpp.FeatureNotImplemented},
		{"bad start", "<field var='start'><value>yesterday</value></field>", "", xmpp.BadRequest},
		{"two values of with", "<field var='with'><value>a@b</value><value>c@d</value></field>", "", xmpp.BadRequest},
		{"with not a JID", "<field var='with'><value>@@</value></field>", "", xmpp.JIDMalformed},
		{"bad max", "", "<set xmlns='http://jabber.org/protocol/rsm'><max>-1</max></set>", xmpp.BadRequest},
		{"after and before", "", "<set xmlns='http://jabber.org/protocol/rsm'><after>a</after><before>b</before></set>", xmpp.BadRequest},
		{"too many ids", manyIDs, "", xmpp.PolicyViolation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, answer := queryArchive(t, alice, "e", tt.fields, tt.rsm)
			alice.ExpectError(answer, tt.want, tt.name)
			if len(rs) != 0 {
				t.Errorf("%d results before the error", len(rs))
			}
		})
	}
	t.Run("wrong FORM_TYPE", func(t *testing.T) {
		answer := alice.IQ("set", "", "<query xmlns='"+mam.NS+"'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:1</value></field></x></query>")
		alice.ExpectError(answer, xmpp.BadRequest, "FORM_TYPE mam:1")
	})
	t.Run("max over the limit is clamped", func(t *testing.T) {
		rs, answer := queryArchive(t, alice, "big", "", "<set xmlns='http://jabber.org/protocol/rsm'><max>100000</max></set>")
		if f := fin(t, alice, answer); len(rs) != 100 || f.SelectAttrValue("complete", "") == "true" {
			t.Errorf("%d results, complete=%q; want 100, not complete", len(rs), f.SelectAttrValue("complete", ""))
		}
	})
	t.Run("another's archive", func(t *testing.T) {
		bob.ExpectError(bob.IQ("set", "alice@localhost", "<query xmlns='"+mam.NS+"'/>"), xmpp.Forbidden, "bob reading alice's archive")
	})
}

// TestArchivePrefs: never, always and the default, as set by the user.
func TestArchivePrefs(t *testing.T) {
	s, alice, bob := twoUsers(t)
	s.AddUser("carol@localhost", "carol")
	carol := online(t, s, "carol", "x")
	got := alice.IQ("get", "", "<prefs xmlns='"+mam.NS+"'/>")
	alice.ExpectResult(got, "prefs get")
	if d := got.El.FindElement("prefs").SelectAttrValue("default", ""); d != "always" {
		t.Errorf("default prefs: %s", alice.String(got.El))
	}
	set := alice.IQ("set", "", "<prefs xmlns='"+mam.NS+"' default='never'><always><jid>carol@localhost</jid></always><never/></prefs>")
	alice.ExpectResult(set, "prefs set")
	if j := set.El.FindElement("prefs/always/jid"); j == nil || j.Text() != "carol@localhost" {
		t.Errorf("prefs set answered %s", alice.String(set.El))
	}
	alice.ExpectError(alice.IQ("set", "", "<prefs xmlns='"+mam.NS+"' default='sometimes'/>"), xmpp.BadRequest, "default sometimes")
	bob.Send("<message to='alice@localhost' type='chat'><body>from bob</body></message>")
	if ids := stanzaIDs(alice.NextStanzaFor("bob's message")); len(ids) != 0 {
		t.Errorf("bob's message archived under default never: %q", ids)
	}
	carol.Send("<message to='alice@localhost' type='chat'><body>from carol</body></message>")
	if ids := stanzaIDs(alice.NextStanzaFor("carol's message")); len(ids) != 1 {
		t.Errorf("carol's message not archived though always: %q", ids)
	}
	alice.Send("<message to='bob@localhost' type='chat'><body>to bob</body></message>")
	bob.NextStanzaFor("alice's message")
	rs, answer := queryArchive(t, alice, "q", "", "")
	fin(t, alice, answer)
	if want := []string{"from carol"}; !slices.Equal(bodies(rs), want) {
		t.Errorf("alice's archive %q, want %q", bodies(rs), want)
	}
	// bob's default is still always.
	rs, answer = queryArchive(t, bob, "q", "", "")
	fin(t, bob, answer)
	if want := []string{"from bob", "to bob"}; !slices.Equal(bodies(rs), want) {
		t.Errorf("bob's archive %q, want %q", bodies(rs), want)
	}
}

// TestArchiveDisco: the account lists the three features.
func TestArchiveDisco(t *testing.T) {
	_, alice, _ := twoUsers(t)
	info := alice.IQ("get", "alice@localhost", "<query xmlns='http://jabber.org/protocol/disco#info'/>")
	alice.ExpectResult(info, "disco#info")
	var got []string
	for _, f := range info.El.FindElements("query/feature") {
		got = append(got, f.SelectAttrValue("var", ""))
	}
	for _, want := range []string{mam.NS, mam.NSExtended, mam.NSSID} {
		if !slices.Contains(got, want) {
			t.Errorf("disco#info of the account lacks %s: %q", want, got)
		}
	}
	form := alice.IQ("get", "", "<query xmlns='"+mam.NS+"'/>")
	alice.ExpectResult(form, "the query form")
	if form.El.FindElement("query/x/field[@var='after-id']") == nil {
		t.Errorf("the form lacks after-id: %s", alice.String(form.El))
	}
}

// TestAckAfterCommit: with stream management, the server acknowledges an
// archived message only once it is committed. Another connection holds
// the database's write lock, so the archive cannot commit: the answer to
// <r/> waits; once the lock goes, it comes, and the message is in the
// archive.
func TestAckAfterCommit(t *testing.T) {
	db := filepath.Join(t.TempDir(), "parley.db")
	s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) { c.Database = db }))
	s.AddUser("alice@localhost", "alice")
	s.AddUser("bob@localhost", "bob")
	alice := online(t, s, "alice", "phone")
	online(t, s, "bob", "desk")
	alice.Send("<enable xmlns='urn:xmpp:sm:3'/>")
	for el := alice.Next(); el.Tag != "enabled"; el = alice.Next() {
	}

	ctx := context.Background()
	lock, err := sql.Open("sqlite", "file:"+db+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	conn, err := lock.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatalf("taking the write lock: %v", err)
	}
	alice.Send("<message to='bob@localhost' type='chat'><body>kept</body></message><r xmlns='urn:xmpp:sm:3'/>")
	// While the lock is held nothing may acknowledge the message. The
	// wait only bounds how long the test looks: an ack that comes early
	// fails it whenever it comes.
	acked := make(chan string, 1)
	go func() {
		for {
			el, err := alice.NextErr()
			if err != nil {
				acked <- "error: " + err.Error()
				return
			}
			if el.Tag == "a" {
				acked <- el.SelectAttrValue("h", "")
				return
			}
		}
	}()
	select {
	case h := <-acked:
		t.Fatalf("acknowledged (h=%s) while the archive could not commit", h)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if h := <-acked; h == "" || strings.HasPrefix(h, "error") {
		t.Fatalf("after the lock went: %s", h)
	}
	page, err := s.Store().QueryArchive(ctx, "localhost", "alice", storage.ArchiveQuery{Max: 10})
	if err != nil || len(page.Messages) != 1 || !strings.Contains(string(page.Messages[0].Stanza), "kept") {
		t.Fatalf("alice's archive after the ack: %+v, %v", page.Messages, err)
	}
}

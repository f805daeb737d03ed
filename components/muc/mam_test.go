package muc_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/parley-im/parley/components/muc"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

const (
	nsMAM      = "urn:xmpp:mam:2"
	nsSID      = "urn:xmpp:sid:0"
	nsRSM      = "http://jabber.org/protocol/rsm"
	nsForward  = "urn:xmpp:forward:0"
	nsRetract  = "urn:xmpp:message-retract:1"
	nsModerate = "urn:xmpp:message-moderate:1"
)

// archiving starts a server whose muc host archives rooms (the
// default), with the users named.
func archiving(t *testing.T, users []string, opts ...parleytest.Option) *parleytest.Server {
	t.Helper()
	return startMUC(t, users, opts...)
}

// roomStanzaIDs returns the ids of st's stanza-ids by the room.
func roomStanzaIDs(st *xmpp.Stanza, room string) []string {
	var out []string
	for _, c := range st.El.ChildElements() {
		if c.Tag == "stanza-id" && xmpp.NS(c) == nsSID && c.SelectAttrValue("by", "") == roomJID(room, "") {
			out = append(out, c.SelectAttrValue("id", ""))
		}
	}
	return out
}

// mamPage is what one archive query returned.
type mamPage struct {
	answer   *xmpp.Stanza
	ids      []string       // the results' ids, in the order they came
	msgs     []*xmpp.Stanza // the forwarded messages, likewise
	first    string
	last     string
	complete bool
}

// queryRoom sends an archive query to room with the form fields and RSM
// set given (raw XML), and returns the page.
func queryRoom(t *testing.T, c *parleytest.Conn, room, form, rsm string) mamPage {
	t.Helper()
	qid := parleytest.NewID("q")
	answer, before := c.IQAll("set", roomJID(room, ""), fmt.Sprintf("<query xmlns='%s' queryid='%s'>%s%s</query>", nsMAM, qid, form, rsm))
	p := mamPage{answer: answer}
	for _, st := range before {
		res := xmpp.Child(st.El, nsMAM, "result")
		if st.Kind != xmpp.KindMessage || res == nil || res.SelectAttrValue("queryid", "") != qid {
			continue
		}
		if st.From.String() != roomJID(room, "") {
			t.Errorf("a result from %s; want the room", st.From)
		}
		fwd := xmpp.Child(res, nsForward, "forwarded")
		if fwd == nil || fwd.FindElement("./delay") == nil || fwd.SelectElement("message") == nil {
			t.Fatalf("a result without forwarded, delay and message: %s", c.String(st.El))
		}
		el := fwd.SelectElement("message").Copy()
		el.RemoveAttr("xmlns") // jabber:client, the stream's
		m, err := xmpp.NewStanza(el)
		if err != nil {
			t.Fatal(err)
		}
		p.ids = append(p.ids, res.SelectAttrValue("id", ""))
		p.msgs = append(p.msgs, m)
	}
	if answer.Type != "result" {
		return p
	}
	fin := xmpp.Child(answer.El, nsMAM, "fin")
	if fin == nil {
		t.Fatalf("a result without fin: %s", c.String(answer.El))
	}
	p.complete = fin.SelectAttrValue("complete", "") == "true"
	if set := xmpp.Child(fin, nsRSM, "set"); set != nil {
		if f := set.SelectElement("first"); f != nil {
			p.first = f.Text()
		}
		if l := set.SelectElement("last"); l != nil {
			p.last = l.Text()
		}
	}
	return p
}

// rsm is an RSM set with max and, when not "", after or before (before
// may be "<before/>"-empty: pass "last" for it).
func rsm(max int, after, before string) string {
	s := fmt.Sprintf("<set xmlns='%s'><max>%d</max>", nsRSM, max)
	switch {
	case after != "":
		s += "<after>" + after + "</after>"
	case before == "last":
		s += "<before/>"
	case before != "":
		s += "<before>" + before + "</before>"
	}
	return s + "</set>"
}

// withField is a MAM form with one field.
func withField(name, value string) string {
	return fmt.Sprintf("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>%s</value></field>"+
		"<field var='%s'><value>%s</value></field></x>", nsMAM, name, value)
}

// TestRoomArchivePaging is "MAM on a room with paging": 250 messages,
// each with one stanza-id by the room, the same in every occupant's copy;
// pages of 100 forward and backward return exactly those ids in order,
// with complete on the last page only; with, after-id and ids select.
func TestRoomArchivePaging(t *testing.T) {
	const n = 250
	s := archiving(t, []string{"alice", "bob"})
	alice, bob := login(t, s, "alice", "a"), login(t, s, "bob", "b")
	create(t, alice, "team", "Alice")
	join(t, bob, "team", "Bob", "")
	alice.UntilSync()

	var live []string
	for i := range n {
		say(alice, "team", fmt.Sprint("m", i), fmt.Sprint("message ", i))
		got := nextGroupchat(t, bob)
		ids := roomStanzaIDs(got, "team")
		if len(ids) != 1 || ids[0] == "" {
			t.Fatalf("message %d has stanza-ids %q: %s", i, ids, bob.String(got.El))
		}
		if echo := roomStanzaIDs(nextGroupchat(t, alice), "team"); !slices.Equal(echo, ids) {
			t.Fatalf("message %d: alice's copy has %q, bob's %q", i, echo, ids)
		}
		live = append(live, ids[0])
	}

	// Forward: 100, 100, 50.
	var fwd []string
	after := ""
	for page := 0; ; page++ {
		p := queryRoom(t, bob, "team", "", rsm(100, after, ""))
		bob.ExpectResult(p.answer, "a forward page")
		fwd = append(fwd, p.ids...)
		wantLen := min(100, n-page*100)
		if len(p.ids) != wantLen || p.complete != (page == 2) || p.first != p.ids[0] || p.last != p.ids[len(p.ids)-1] {
			t.Fatalf("forward page %d: %d results, complete %v, first %q last %q", page, len(p.ids), p.complete, p.first, p.last)
		}
		if page == 0 {
			m := p.msgs[0]
			if m.From.String() != roomJID("team", "Alice") || parleytest.Body(m) != "message 0" || m.Type != "groupchat" {
				t.Errorf("the first archived message: %s", bob.String(m.El))
			}
		}
		if p.complete {
			break
		}
		after = p.last
	}
	if !slices.Equal(fwd, live) {
		t.Fatalf("forward pages' ids differ from the live stanza-ids")
	}

	// Backward: the last 100, then 100 before them, then 50.
	var back []string
	before := "last"
	for page := 0; ; page++ {
		p := queryRoom(t, bob, "team", "", rsm(100, "", before))
		bob.ExpectResult(p.answer, "a backward page")
		back = append(p.ids, back...)
		if wantLen := min(100, n-page*100); len(p.ids) != wantLen || p.complete != (page == 2) {
			t.Fatalf("backward page %d: %d results, complete %v", page, len(p.ids), p.complete)
		}
		if p.complete {
			break
		}
		before = p.first
	}
	if !slices.Equal(back, live) {
		t.Fatalf("backward pages' ids differ from the live stanza-ids")
	}

	// with: bob's messages alone; after-id; ids.
	for i := range 3 {
		say(bob, "team", fmt.Sprint("b", i), fmt.Sprint("bob ", i))
		nextGroupchat(t, alice)
	}
	bob.UntilSync()
	tests := []struct {
		name, form string
		want       int
	}{
		{"with the occupant JID", withField("with", roomJID("team", "Bob")), 3},
		{"with another nick", withField("with", roomJID("team", "Nobody")), 0},
		{"after-id", withField("after-id", live[n-5]), 4 + 3},
		{"ids", withField("ids", live[7]), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := queryRoom(t, alice, "team", tt.form, rsm(100, "", ""))
			alice.ExpectResult(p.answer, tt.name)
			if len(p.ids) != tt.want || !p.complete {
				t.Errorf("%d results (complete %v); want %d", len(p.ids), p.complete, tt.want)
			}
		})
	}
	unknown := queryRoom(t, alice, "team", "", rsm(10, "not-an-id", ""))
	alice.ExpectError(unknown.answer, xmpp.ItemNotFound, "after an unknown id")
}

// TestRoomStanzaIDs: a stanza-id by the room in what an occupant sends is
// dropped (only the room makes them), one by another entity is passed
// on; the history given on join carries the live stanza-id; a subject
// change gets none and is not archived.
func TestRoomStanzaIDs(t *testing.T) {
	s := archiving(t, []string{"alice", "bob", "carol"})
	alice, bob, carol := login(t, s, "alice", "a"), login(t, s, "bob", "b"), login(t, s, "carol", "c")
	create(t, alice, "team", "Alice")
	join(t, bob, "team", "Bob", "")
	alice.UntilSync()
	alice.Send("<message to='%s' type='groupchat' id='f'><body>forged</body>"+
		"<stanza-id xmlns='%s' by='%s' id='forged-id'/><stanza-id xmlns='%s' by='elsewhere.example' id='theirs'/></message>",
		roomJID("team", ""), nsSID, roomJID("team", ""), nsSID)
	got := nextGroupchat(t, bob)
	ids := roomStanzaIDs(got, "team")
	if len(ids) != 1 || ids[0] == "forged-id" {
		t.Fatalf("room stanza-ids %q: %s", ids, bob.String(got.El))
	}
	var others int
	for _, c := range got.El.ChildElements() {
		if c.Tag == "stanza-id" && c.SelectAttrValue("by", "") == "elsewhere.example" {
			others++
		}
	}
	if others != 1 {
		t.Errorf("the stanza-id by elsewhere.example was not passed on: %s", bob.String(got.El))
	}
	// A private message through the room: the room archives none, so a
	// stanza-id by the room on one is always forged.
	alice.Send("<message to='%s' type='chat' id='pm'><body>psst</body><stanza-id xmlns='%s' by='%s' id='forged-pm'/></message>",
		roomJID("team", "Bob"), nsSID, roomJID("team", ""))
	pm, _ := bob.WaitFor("the private message", func(st *xmpp.Stanza) bool { return st.ID == "pm" })
	if ids := roomStanzaIDs(pm, "team"); len(ids) != 0 {
		t.Errorf("a private message kept the stanza-id %q its sender forged for the room: %s", ids, bob.String(pm.El))
	}
	alice.Send("<message to='%s' type='groupchat'><subject>topic</subject></message>", roomJID("team", ""))
	subj, _ := bob.WaitFor("the subject", func(st *xmpp.Stanza) bool { return xmpp.Child(st.El, "", "subject") != nil })
	if len(roomStanzaIDs(subj, "team")) != 0 {
		t.Errorf("a subject change has a stanza-id: %s", bob.String(subj.El))
	}
	hist := join(t, carol, "team", "Carol", "")
	var histIDs []string
	for _, st := range hist {
		if parleytest.Body(st) == "forged" {
			histIDs = roomStanzaIDs(st, "team")
		}
	}
	if !slices.Equal(histIDs, ids) {
		t.Errorf("the history's stanza-ids %q; want the live %q", histIDs, ids)
	}
	p := queryRoom(t, carol, "team", "", "")
	carol.ExpectResult(p.answer, "carol's query")
	if !slices.Equal(p.ids, ids) {
		t.Errorf("the archive holds %q; want only the message %q", p.ids, ids)
	}
}

// TestRoomArchiveAccess: who may read a room's archive, and who is shown
// occupants' real JIDs in it; a room that does not archive answers no
// query, stamps no stanza-id and advertises no archive.
func TestRoomArchiveAccess(t *testing.T) {
	s := archiving(t, []string{"alice", "bob", "carol", "dave", "erin"})
	alice, bob, carol, dave, erin := login(t, s, "alice", "a"), login(t, s, "bob", "b"), login(t, s, "carol", "c"),
		login(t, s, "dave", "d"), login(t, s, "erin", "e")
	admin := "<query xmlns='" + muc.NSMUCAdmin + "'><item affiliation='%s' jid='%s@localhost'/></query>"
	// open: semi-anonymous, bob in it, carol banned.
	create(t, alice, "open", "Alice")
	join(t, bob, "open", "Bob", "")
	alice.ExpectResult(alice.IQ("set", roomJID("open", ""), fmt.Sprintf(admin, "outcast", "carol")), "carol's ban")
	say(bob, "open", "o1", "hello")
	nextGroupchat(t, alice)
	// members: members-only, dave a member who is not in it.
	create(t, alice, "members", "Alice")
	alice.ExpectResult(configure(alice, "members", map[string]string{"muc#roomconfig_membersonly": "1"}), "members-only")
	alice.ExpectResult(alice.IQ("set", roomJID("members", ""), fmt.Sprintf(admin, "member", "dave")), "dave's membership")
	// public: non-anonymous, bob in it.
	create(t, alice, "public", "Alice")
	alice.ExpectResult(configure(alice, "public", map[string]string{"muc#roomconfig_whois": "anyone"}), "non-anonymous")
	join(t, bob, "public", "Bob", "")
	say(bob, "public", "p1", "hello")
	nextGroupchat(t, alice)
	bob.UntilSync()

	tests := []struct {
		name string
		c    *parleytest.Conn
		room string
		want xmpp.StanzaCondition // "" for a result
		jids bool                 // real JIDs shown
	}{
		{"an occupant of an open room", bob, "open", "", false},
		{"its owner, who moderates", alice, "open", "", true},
		{"one not in the open room", erin, "open", xmpp.Forbidden, false},
		{"a banned user", carol, "open", xmpp.Forbidden, false},
		{"a member outside the members-only room", dave, "members", "", false},
		{"a non-member", erin, "members", xmpp.Forbidden, false},
		{"an occupant of a non-anonymous room", bob, "public", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := queryRoom(t, tt.c, tt.room, "", "")
			if tt.want != "" {
				tt.c.ExpectError(p.answer, tt.want, tt.name)
				if len(p.ids) != 0 {
					t.Errorf("%d results before the error", len(p.ids))
				}
				return
			}
			tt.c.ExpectResult(p.answer, tt.name)
			for _, m := range p.msgs {
				it := item(m)
				if shown := it != nil && it.SelectAttrValue("jid", "") == "bob@localhost"; shown != tt.jids {
					t.Errorf("real JID shown %v, want %v: %s", shown, tt.jids, tt.c.String(m.El))
				}
			}
			if tt.room != "members" && len(p.ids) != 1 {
				t.Errorf("%d results; want bob's message", len(p.ids))
			}
		})
	}

	t.Run("archiving off", func(t *testing.T) {
		create(t, alice, "quiet", "Alice")
		alice.ExpectResult(configure(alice, "quiet", map[string]string{"muc#roomconfig_enablearchiving": "0"}), "archiving off")
		say(alice, "quiet", "q1", "unrecorded")
		if ids := roomStanzaIDs(nextGroupchat(t, alice), "quiet"); len(ids) != 0 {
			t.Errorf("stanza-ids %q in a room that does not archive", ids)
		}
		alice.ExpectError(queryRoom(t, alice, "quiet", "", "").answer, xmpp.FeatureNotImplemented, "a query")
		for room, want := range map[string]bool{"quiet": false, "open": true} {
			f := features(alice.IQ("get", roomJID(room, ""), "<query xmlns='http://jabber.org/protocol/disco#info'/>"))
			for _, feat := range []string{nsMAM, nsSID, nsModerate} {
				if slices.Contains(f, feat) != want {
					t.Errorf("%s lists %s: %v; want %v", room, feat, !want, want)
				}
			}
		}
	})
}

// TestRoomArchiveOffByHost: archive = false makes new rooms keep none,
// and an owner may turn it on.
func TestRoomArchiveOffByHost(t *testing.T) {
	s := parleytest.Start(t, withMUC(func(o *muc.Options) { o.SetArchive(false) }))
	s.AddUser("alice@localhost", "pw")
	alice := login(t, s, "alice", "a")
	create(t, alice, "team", "Alice")
	form := alice.IQ("get", roomJID("team", ""), "<query xmlns='"+muc.NSMUCOwner+"'/>")
	if v, ok := formValue(form, "muc#roomconfig_enablearchiving"); !ok || v != "0" {
		t.Errorf("enablearchiving is %q (%v); want 0", v, ok)
	}
	say(alice, "team", "1", "before")
	if ids := roomStanzaIDs(nextGroupchat(t, alice), "team"); len(ids) != 0 {
		t.Errorf("stanza-ids %q with archive off", ids)
	}
	on := "<query xmlns='" + muc.NSMUCOwner + "'><x xmlns='jabber:x:data' type='submit'>" +
		"<field var='muc#roomconfig_enablearchiving'><value>1</value></field></x></query>"
	answer, before := alice.IQAll("set", roomJID("team", ""), on)
	alice.ExpectResult(answer, "archiving on")
	var codes []string
	for _, st := range before {
		if slices.Contains(statusCodes(st), "104") {
			codes = statusCodes(st)
		}
	}
	if !slices.Equal(codes, []string{"104", "170"}) {
		t.Errorf("the config change's codes %q; want 104 and 170 (archiving on)", codes)
	}
	say(alice, "team", "2", "after")
	if ids := roomStanzaIDs(nextGroupchat(t, alice), "team"); len(ids) != 1 {
		t.Errorf("stanza-ids %q once archiving is on", ids)
	}
	p := queryRoom(t, alice, "team", "", "")
	alice.ExpectResult(p.answer, "the query")
	if len(p.msgs) != 1 || parleytest.Body(p.msgs[0]) != "after" {
		t.Errorf("the archive holds %d messages; want the one after", len(p.msgs))
	}
}

// TestModeration: XEP-0425: a participant may not retract; a moderator's
// retraction of an unknown id is item-not-found; of a message, every
// occupant is told, the archive keeps a tombstone without the body, and
// those who join later do not get it in the history. The older form
// (apply-to, :0) works too.
func TestModeration(t *testing.T) {
	s := archiving(t, []string{"alice", "bob", "carol"})
	alice, bob, carol := login(t, s, "alice", "a"), login(t, s, "bob", "b"), login(t, s, "carol", "c")
	create(t, alice, "team", "Alice")
	join(t, bob, "team", "Bob", "")
	alice.UntilSync()
	spam := func(body string) string {
		say(bob, "team", body, body)
		got := nextGroupchat(t, alice)
		nextGroupchat(t, bob)
		return roomStanzaIDs(got, "team")[0]
	}
	id := spam("buy potions")
	moderate := func(id, reason string) string {
		return fmt.Sprintf("<moderate xmlns='%s' id='%s'><retract xmlns='%s'/><reason>%s</reason></moderate>", nsModerate, id, nsRetract, reason)
	}
	bob.ExpectError(bob.IQ("set", roomJID("team", ""), moderate(id, "mine")), xmpp.Forbidden, "a participant's moderation")
	alice.ExpectError(alice.IQ("set", roomJID("team", ""), moderate("no-such-id", "x")), xmpp.ItemNotFound, "an unknown id")
	alice.ExpectResult(alice.IQ("set", roomJID("team", ""), moderate(id, "spam")), "the moderation")
	ann, _ := bob.WaitFor("the retraction", func(st *xmpp.Stanza) bool { return xmpp.Child(st.El, nsRetract, "retract") != nil })
	r := xmpp.Child(ann.El, nsRetract, "retract")
	m := xmpp.Child(r, nsModerate, "moderated")
	if ann.From.String() != roomJID("team", "") || ann.Type != "groupchat" || r.SelectAttrValue("id", "") != id ||
		m == nil || m.SelectAttrValue("by", "") != roomJID("team", "Alice") || r.SelectElement("reason").Text() != "spam" {
		t.Errorf("the retraction bob got: %s", bob.String(ann.El))
	}
	if xmpp.Child(ann.El, "urn:xmpp:fasten:0", "apply-to") == nil {
		t.Errorf("the retraction lacks the older form: %s", bob.String(ann.El))
	}

	p := queryRoom(t, bob, "team", "", "")
	bob.ExpectResult(p.answer, "the query after the moderation")
	if len(p.msgs) != 2 || p.ids[0] != id {
		t.Fatalf("the archive: %q; want the tombstone and the retraction", p.ids)
	}
	ts := p.msgs[0]
	if parleytest.Body(ts) != "" || xmpp.Child(ts.El, nsRetract, "retracted") == nil || ts.From.String() != roomJID("team", "Bob") {
		t.Errorf("the tombstone: %s", bob.String(ts.El))
	}
	if xmpp.Child(p.msgs[1].El, nsRetract, "retract") == nil {
		t.Errorf("the archived retraction: %s", bob.String(p.msgs[1].El))
	}
	for _, st := range join(t, carol, "team", "Carol", "") {
		if parleytest.Body(st) == "buy potions" {
			t.Errorf("carol got the retracted message in the history")
		}
	}

	// The older form.
	id2 := spam("more potions")
	old := fmt.Sprintf("<apply-to xmlns='urn:xmpp:fasten:0' id='%s'><moderate xmlns='urn:xmpp:message-moderate:0'>"+
		"<retract xmlns='urn:xmpp:message-retract:0'/></moderate></apply-to>", id2)
	alice.ExpectResult(alice.IQ("set", roomJID("team", ""), old), "the older form's moderation")
	p = queryRoom(t, alice, "team", withField("ids", id2), "")
	alice.ExpectResult(p.answer, "the tombstone by id")
	if len(p.msgs) != 1 || parleytest.Body(p.msgs[0]) != "" {
		t.Errorf("the second message was not replaced: %q", p.ids)
	}
}

// TestRoomArchiveRestart: with a file database, a persistent room's
// archive survives a restart with its ids; a temporary room's does not,
// nor a destroyed room's (a new room of the same name starts empty).
func TestRoomArchiveRestart(t *testing.T) {
	dir := t.TempDir()
	onDisk := parleytest.WithConfig(func(c *conf.Config) {
		c.Database = filepath.Join(dir, "parley.db")
		c.DataDir = dir
	})
	s1 := archiving(t, []string{"alice", "bob"}, onDisk)
	alice := login(t, s1, "alice", "a")
	create(t, alice, "kept", "Alice")
	alice.ExpectResult(configure(alice, "kept", map[string]string{"muc#roomconfig_persistentroom": "1"}), "persistent")
	create(t, alice, "gone", "Alice")
	alice.ExpectResult(configure(alice, "gone", map[string]string{"muc#roomconfig_persistentroom": "1"}), "persistent")
	create(t, alice, "temp", "Alice")
	var kept []string
	for i := range 5 {
		say(alice, "kept", fmt.Sprint(i), fmt.Sprint("kept ", i))
		kept = append(kept, roomStanzaIDs(nextGroupchat(t, alice), "kept")...)
	}
	for _, room := range []string{"gone", "temp"} {
		say(alice, room, "x", "lost")
		nextGroupchat(t, alice)
	}
	destroy := "<query xmlns='" + muc.NSMUCOwner + "'><destroy/></query>"
	alice.ExpectResult(alice.IQ("set", roomJID("gone", ""), destroy), "the destroy")
	ctx, cancel := context.WithTimeout(context.Background(), parleytest.Timeout)
	defer cancel()
	if err := s1.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	s2 := parleytest.Start(t, withMUC(nil), onDisk)
	alice, bob := login(t, s2, "alice", "a2"), login(t, s2, "bob", "b")
	join(t, bob, "kept", "Bob", "")
	p := queryRoom(t, bob, "kept", "", "")
	bob.ExpectResult(p.answer, "the kept room's archive")
	if !slices.Equal(p.ids, kept) {
		t.Errorf("after the restart the archive has %q; want %q", p.ids, kept)
	}
	for _, room := range []string{"gone", "temp"} {
		create(t, alice, room, "Alice")
		p := queryRoom(t, alice, room, "", "")
		alice.ExpectResult(p.answer, "the new "+room)
		if len(p.ids) != 0 {
			t.Errorf("a new room %s shows %d messages of the old one", room, len(p.ids))
		}
	}
}

// roomMetadata asks room for its archive's metadata (XEP-0313 §5) and
// returns the answer, with the start's and end's ids and times ("" when
// absent).
func roomMetadata(t *testing.T, c *parleytest.Conn, room string) (answer *xmpp.Stanza, start, end [2]string) {
	t.Helper()
	answer = c.IQ("get", roomJID(room, ""), "<metadata xmlns='"+nsMAM+"'/>")
	if answer.Type != "result" {
		return answer, start, end
	}
	md := xmpp.Child(answer.El, nsMAM, "metadata")
	if md == nil {
		t.Fatalf("metadata answered %s; want a <metadata/>", c.String(answer.El))
	}
	for _, b := range []struct {
		name string
		out  *[2]string
	}{{"start", &start}, {"end", &end}} {
		if el := md.SelectElement(b.name); el != nil {
			*b.out = [2]string{el.SelectAttrValue("id", ""), el.SelectAttrValue("timestamp", "")}
		}
	}
	return answer, start, end
}

// TestRoomArchiveMetadata: a room's archive answers its metadata
// (XEP-0313 §5): an empty <metadata/> while it holds nothing, then the
// first and last messages, whose ids are the stanza-ids the occupants
// got live and whose times are those the archive's results carry; who
// may not query the archive may not ask either, with the same error.
func TestRoomArchiveMetadata(t *testing.T) {
	s := archiving(t, []string{"alice", "bob", "dave", "erin"})
	alice, bob, dave, erin := login(t, s, "alice", "a"), login(t, s, "bob", "b"), login(t, s, "dave", "d"), login(t, s, "erin", "e")
	create(t, alice, "team", "Alice")
	join(t, bob, "team", "Bob", "")
	alice.UntilSync()

	answer, start, end := roomMetadata(t, bob, "team")
	bob.ExpectResult(answer, "the metadata of an empty archive")
	if md := xmpp.Child(answer.El, nsMAM, "metadata"); start != [2]string{} || end != [2]string{} || len(md.ChildElements()) != 0 {
		t.Errorf("the metadata of an empty archive: %s; want an empty <metadata/>", bob.String(answer.El))
	}

	var live []string
	for i := range 3 {
		say(alice, "team", fmt.Sprint("m", i), fmt.Sprint("message ", i))
		ids := roomStanzaIDs(nextGroupchat(t, bob), "team")
		if len(ids) != 1 {
			t.Fatalf("message %d has stanza-ids %q", i, ids)
		}
		live = append(live, ids[0])
	}
	answer, start, end = roomMetadata(t, bob, "team")
	bob.ExpectResult(answer, "the metadata")
	if start[0] != live[0] || end[0] != live[2] {
		t.Fatalf("the metadata: %s; want start %s and end %s", bob.String(answer.El), live[0], live[2])
	}
	// The times are the archive's: those of the first and last results.
	qid := parleytest.NewID("q")
	_, results := bob.IQAll("set", roomJID("team", ""), fmt.Sprintf("<query xmlns='%s' queryid='%s'/>", nsMAM, qid))
	stamps := map[string]time.Time{}
	for _, st := range results {
		if res := xmpp.Child(st.El, nsMAM, "result"); res != nil && res.SelectAttrValue("queryid", "") == qid {
			at, err := time.Parse(time.RFC3339, res.FindElement("./forwarded/delay").SelectAttrValue("stamp", ""))
			if err != nil {
				t.Fatal(err)
			}
			stamps[res.SelectAttrValue("id", "")] = at
		}
	}
	for _, b := range [][2]string{start, end} {
		at, err := time.Parse(time.RFC3339, b[1])
		if err != nil || !at.Equal(stamps[b[0]].Truncate(time.Millisecond)) && !at.Equal(stamps[b[0]]) {
			t.Errorf("the metadata's time of %s is %q (%v); its result's delay says %v", b[0], b[1], err, stamps[b[0]])
		}
	}

	// Access: as a query's. A members-only room with dave a member who
	// is not in it; erin is in neither room.
	admin := "<query xmlns='" + muc.NSMUCAdmin + "'><item affiliation='member' jid='dave@localhost'/></query>"
	create(t, alice, "members", "Alice")
	alice.ExpectResult(configure(alice, "members", map[string]string{"muc#roomconfig_membersonly": "1"}), "members-only")
	alice.ExpectResult(alice.IQ("set", roomJID("members", ""), admin), "dave's membership")
	create(t, alice, "quiet", "Alice")
	alice.ExpectResult(configure(alice, "quiet", map[string]string{"muc#roomconfig_enablearchiving": "0"}), "archiving off")
	tests := []struct {
		name string
		c    *parleytest.Conn
		room string
		want xmpp.StanzaCondition // "" for a result
	}{
		{"a member outside the members-only room", dave, "members", ""},
		{"a non-member of the members-only room", erin, "members", xmpp.Forbidden},
		{"one not in the open room", erin, "team", xmpp.Forbidden},
		{"a room that keeps no archive", alice, "quiet", xmpp.FeatureNotImplemented},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			query := queryRoom(t, tt.c, tt.room, "", "").answer
			answer, start, _ := roomMetadata(t, tt.c, tt.room)
			if tt.want == "" {
				tt.c.ExpectResult(query, "the query")
				tt.c.ExpectResult(answer, "the metadata")
				if start != [2]string{} {
					t.Errorf("the metadata of an empty archive has a start: %s", tt.c.String(answer.El))
				}
				return
			}
			tt.c.ExpectError(query, tt.want, "the query")
			tt.c.ExpectError(answer, tt.want, "the metadata")
			if got, want := xmpp.ParseStanzaError(answer.El), xmpp.ParseStanzaError(query.El); got.Type != want.Type {
				t.Errorf("the metadata's error is of type %s, the query's %s", got.Type, want.Type)
			}
		})
	}
}

package pep_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/server/mod/pep"
	"github.com/parley-im/parley/xmpp"
)

// legacy is a private XML iq payload of XEP-0048 bookmarks.
func legacy(conferences ...string) string {
	return "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>" + strings.Join(conferences, "") + "</storage></query>"
}

// legacyList renders the <storage/> of a private get as
// "jid|name|autojoin|nick" entries, sorted.
func legacyList(st *xmpp.Stanza) string {
	var out []string
	for _, c := range st.El.FindElements("query/storage/conference") {
		nick := ""
		if n := c.SelectElement("nick"); n != nil {
			nick = n.Text()
		}
		out = append(out, c.SelectAttrValue("jid", "")+"|"+c.SelectAttrValue("name", "")+"|"+c.SelectAttrValue("autojoin", "")+"|"+nick)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// bookmarkItems renders the items of an XEP-0402 items result as
// "id|name|autojoin|nick", with "+ext" for an item that kept its
// <extensions/>, sorted.
func bookmarkItems(st *xmpp.Stanza) string {
	var out []string
	for _, it := range st.El.FindElements("pubsub/items/item") {
		c := xmpp.Child(it, pep.NSBookmarks, "conference")
		if c == nil {
			out = append(out, it.SelectAttrValue("id", "")+"|?")
			continue
		}
		nick := ""
		if n := c.SelectElement("nick"); n != nil {
			nick = n.Text()
		}
		e := it.SelectAttrValue("id", "") + "|" + c.SelectAttrValue("name", "") + "|" + c.SelectAttrValue("autojoin", "") + "|" + nick
		if c.SelectElement("extensions") != nil {
			e += "+ext"
		}
		out = append(out, e)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// bookmarkPublish is XEP-0402 §4's publish of a conference with the
// publish-options it asks for.
func bookmarkPublish(room, name, extra string) string {
	return publish(pep.NSBookmarks, room, fmt.Sprintf("<conference xmlns='%s' name='%s' autojoin='true'><nick>JC</nick>%s</conference>", pep.NSBookmarks, name, extra),
		"pubsub#persist_items", "true", "pubsub#max_items", "max", "pubsub#send_last_published_item", "never", "pubsub#access_model", "whitelist")
}

// TestBookmarksCompat is issue #13's "a bookmark written as XEP-0402
// read as XEP-0049 and back": Conversations (XEP-0402, with +notify) and
// an old client (XEP-0048 in private XML) of one account see one list,
// and Conversations hears of each change the old client makes, and of
// no unchanged bookmark.
func TestBookmarksCompat(t *testing.T) {
	s := setup(t)
	conv := login(s, "alice@localhost", "conversations", features(pep.NSBookmarks), false)
	conv.available(t, true)
	old := login(s, "alice@localhost", "old", features(), false)
	old.available(t, true)
	bob := login(s, "bob@localhost", "x", features(pep.NSBookmarks), false)
	bob.available(t, false) // the same features as Conversations
	conv.UntilSync()
	old.UntilSync()

	const play, orchard, hall = "play@conference.localhost", "orchard@conference.localhost", "hall@conference.localhost"
	steps := []struct {
		name string
		c    *client
		typ  string
		to   string
		// payload is sent; want is "result" or the error condition.
		payload, want string
		// list is what a private get (legacy) or an items get (items)
		// shows, when not "-".
		legacy, items string
		// events is what Conversations hears, as events() gives them.
		events string
	}{
		{name: "0402 publish", c: conv, typ: "set", payload: bookmarkPublish(play, "The Play", "<extensions><x xmlns='urn:example:ext'/></extensions>"),
			want: "result", legacy: play + "|The Play|true|JC", items: play + "|The Play|true|JC+ext", events: pep.NSBookmarks + ":item:" + play + "="},
		{name: "0049 set adds one, keeps one", c: old, typ: "set", payload: legacy(
			"<conference jid='"+play+"' name='The Play' autojoin='true'><nick>JC</nick></conference>",
			"<conference jid='"+orchard+"' name='The Orchard' autojoin='1'><nick>R</nick></conference><url name='x' url='http://example.net'/>"),
			want:   "result",
			legacy: orchard + "|The Orchard|true|R " + play + "|The Play|true|JC", items: orchard + "|The Orchard|true|R " + play + "|The Play|true|JC+ext",
			events: pep.NSBookmarks + ":item:" + orchard + "="},
		{name: "0049 set changes one, drops one", c: old, typ: "set", payload: legacy(
			"<conference jid='" + orchard + "' name='The Orchard, renamed'><nick>R</nick></conference>"),
			want:   "result",
			legacy: orchard + "|The Orchard, renamed||R", items: orchard + "|The Orchard, renamed||R",
			events: pep.NSBookmarks + ":item:" + orchard + "= " + pep.NSBookmarks + ":retract:" + play},
		{name: "0402 publish after the bridge", c: conv, typ: "set", payload: bookmarkPublish(hall, "Hall", ""),
			want: "result", legacy: hall + "|Hall|true|JC " + orchard + "|The Orchard, renamed||R", items: hall + "|Hall|true|JC " + orchard + "|The Orchard, renamed||R",
			events: pep.NSBookmarks + ":item:" + hall + "="},
		{name: "0402 retract", c: conv, typ: "set", payload: fmt.Sprintf("<pubsub xmlns='%s'><retract node='%s'><item id='%s'/></retract></pubsub>", pep.NS, pep.NSBookmarks, hall),
			want: "result", legacy: orchard + "|The Orchard, renamed||R", items: orchard + "|The Orchard, renamed||R",
			events: pep.NSBookmarks + ":retract:" + hall},
		{name: "a contact may not read the bookmarks", c: bob, typ: "get", to: "alice@localhost", payload: items(pep.NSBookmarks, ""),
			want: "not-allowed", legacy: "-", items: "-"},
		{name: "a conference without a jid", c: old, typ: "set", payload: legacy("<conference name='nowhere'/>"),
			want: "bad-request", legacy: orchard + "|The Orchard, renamed||R", items: orchard + "|The Orchard, renamed||R"},
		{name: "more bookmarks than a node keeps", c: old, typ: "set", payload: legacy(func() string {
			var b strings.Builder
			for i := 0; i <= pep.MaxItems; i++ {
				fmt.Fprintf(&b, "<conference jid='r%d@conference.localhost'/>", i)
			}
			return b.String()
		}()),
			want: "policy-violation", legacy: orchard + "|The Orchard, renamed||R", items: orchard + "|The Orchard, renamed||R"},
		{name: "0049 set of none", c: old, typ: "set", payload: legacy(),
			want: "result", legacy: "", items: "", events: pep.NSBookmarks + ":retract:" + orchard},
	}
	for _, tt := range steps {
		t.Run(tt.name, func(t *testing.T) {
			st, before := tt.c.IQAll(tt.typ, tt.to, tt.payload)
			got := "result"
			if st.Type == "error" {
				got = string(parleytest.Condition(st))
			}
			if got != tt.want {
				t.Fatalf("got %s, want %s: %s", got, tt.want, tt.c.String(st.El))
			}
			var heard []*xmpp.Stanza
			if tt.c == conv {
				heard = before
			}
			heard = append(heard, conv.UntilSync()...)
			if e := strings.Join(events(heard), " "); e != tt.events {
				t.Errorf("Conversations heard %q, want %q", e, tt.events)
			}
			// The old client is told nothing: it has no +notify.
			if e := events(old.UntilSync()); len(e) > 0 {
				t.Errorf("the old client heard %q", e)
			}
			if tt.legacy != "-" {
				st := old.IQ("get", "", legacy())
				old.ExpectResult(st, "private get")
				if l := legacyList(st); l != tt.legacy {
					t.Errorf("XEP-0049 reads %q, want %q", l, tt.legacy)
				}
			}
			if tt.items != "-" {
				st := conv.IQ("get", "", items(pep.NSBookmarks, ""))
				conv.ExpectResult(st, "items get")
				if l := bookmarkItems(st); l != tt.items {
					t.Errorf("XEP-0402 reads %q, want %q", l, tt.items)
				}
			}
		})
	}
}

// TestBookmarksMoved: bookmarks a user kept in private XML before the
// bridge are moved to the XEP-0402 node at the first private get or
// XEP-0402 items get, whichever comes first, and the stored copy emptied.
func TestBookmarksMoved(t *testing.T) {
	const doc = "<storage xmlns='storage:bookmarks'><conference jid='old@conference.localhost' name='Old' autojoin='true'><nick>C</nick></conference></storage>"
	const want = "old@conference.localhost|Old|true|C"
	for _, first := range []string{"XEP-0049", "XEP-0402"} {
		t.Run(first+" first", func(t *testing.T) {
			s := setup(t)
			if err := s.Store().PutXML(t.Context(), "localhost", "carol", "private", pep.NSLegacyBookmarks, []byte(doc)); err != nil {
				t.Fatal(err)
			}
			carol := login(s, "carol@localhost", "x", features(), false)
			reads := []func() string{
				func() string { return legacyList(carol.IQ("get", "", legacy())) },
				func() string { return bookmarkItems(carol.IQ("get", "", items(pep.NSBookmarks, ""))) },
			}
			if first == "XEP-0402" {
				reads[0], reads[1] = reads[1], reads[0]
			}
			for i, read := range reads {
				if l := read(); l != want {
					t.Errorf("read %d reads %q, want %q", i+1, l, want)
				}
			}
			stored, err := s.Store().XML(t.Context(), "localhost", "carol", "private", pep.NSLegacyBookmarks)
			if err != nil || strings.Contains(string(stored), "conference") {
				t.Errorf("the stored copy is %q (%v), want it emptied", stored, err)
			}
		})
	}
}

// TestBookmarksCompatPEP: a client of XEP-0048 over PEP (the
// storage:bookmarks node, #compat-pep) reads and writes the same list,
// and hears of each change a client of XEP-0402 makes.
func TestBookmarksCompatPEP(t *testing.T) {
	s := setup(t)
	conv := login(s, "alice@localhost", "conversations", features(pep.NSBookmarks), false)
	conv.available(t, true)
	oldPEP := login(s, "alice@localhost", "oldpep", features(pep.NSLegacyBookmarks), false)
	oldPEP.available(t, true)
	bob := login(s, "bob@localhost", "x", features(), false)
	conv.UntilSync()
	oldPEP.UntilSync()

	// legacyPEP renders the <storage/> in an items result or event.
	legacyPEP := func(st *xmpp.Stanza) string {
		var out []string
		for _, c := range st.El.FindElements("//item[@id='current']/storage/conference") {
			out = append(out, c.SelectAttrValue("jid", "")+"|"+c.SelectAttrValue("name", ""))
		}
		sort.Strings(out)
		return strings.Join(out, " ")
	}
	const play, hall = "play@conference.localhost", "hall@conference.localhost"

	conv.ExpectResult(conv.IQ("set", "", bookmarkPublish(play, "The Play", "")), "0402 publish")
	var heard []string
	for _, st := range oldPEP.UntilSync() {
		if ev := st.El.FindElement("event/items[@node='storage:bookmarks']"); ev != nil {
			heard = append(heard, legacyPEP(st))
		}
	}
	if strings.Join(heard, ";") != play+"|The Play" {
		t.Errorf("the old PEP client heard %q, want the list with the play", heard)
	}

	pub := fmt.Sprintf("<pubsub xmlns='%s'><publish node='storage:bookmarks'><item id='current'><storage xmlns='storage:bookmarks'>"+
		"<conference jid='%s' name='The Play'><nick>JC</nick></conference><conference jid='%s' name='Hall'/></storage></item></publish></pubsub>", pep.NS, play, hall)
	st, _ := oldPEP.IQAll("set", "", pub)
	oldPEP.ExpectResult(st, "legacy PEP publish")
	// The play changed (autojoin dropped, a nick): both are published.
	if e := strings.Join(events(conv.UntilSync()), " "); e != pep.NSBookmarks+":item:"+play+"= "+pep.NSBookmarks+":item:"+hall+"=" {
		t.Errorf("Conversations heard %q", e)
	}
	got := oldPEP.IQ("get", "", items(pep.NSLegacyBookmarks, ""))
	if l := legacyPEP(got); l != hall+"|Hall "+play+"|The Play" {
		t.Errorf("the legacy node reads %q: %s", l, oldPEP.String(got.El))
	}
	if l := bookmarkItems(conv.IQ("get", "", items(pep.NSBookmarks, ""))); l != hall+"|Hall|| "+play+"|The Play||JC" {
		t.Errorf("XEP-0402 reads %q", l)
	}
	st = bob.IQ("get", "alice@localhost", items(pep.NSLegacyBookmarks, ""))
	if c := string(parleytest.Condition(st)); c != "not-allowed" {
		t.Errorf("bob reading alice's legacy bookmarks got %q, want not-allowed", c)
	}
	st = oldPEP.IQ("set", "", publish(pep.NSLegacyBookmarks, "current", "<x xmlns='urn:example'/>"))
	if c := string(parleytest.Condition(st)); c != "bad-request" {
		t.Errorf("a legacy publish of something else got %q, want bad-request", c)
	}
}

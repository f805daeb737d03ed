package mam_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/server/mod/mam"
	"github.com/parley-im/parley/xmpp"
)

// fulltext is the XEP-0431 field with value v.
func fulltext(v string) string {
	esc := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(v)
	return "<field var='" + mam.FieldFulltext + "'><value>" + esc + "</value></field>"
}

// TestArchiveSearchAdvertised: the feature and the form's field are there
// only with archive_search on; off, a query with the field is refused
// with feature-not-implemented (XEP-0313 §4.1.5: a field the server does
// not recognise), and nothing is indexed.
func TestArchiveSearchAdvertised(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprintf("archive_search=%v", on), func(t *testing.T) {
			s := withLocal(t, func(o *local.LocalOptions) { o.ArchiveSearch = on })
			alice, bob := online(t, s, "alice", "phone"), online(t, s, "bob", "desk")
			for _, to := range []string{"alice@localhost", "localhost"} {
				info := alice.IQ("get", to, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
				alice.ExpectResult(info, "disco#info")
				var got []string
				for _, f := range info.El.FindElements("query/feature") {
					got = append(got, f.SelectAttrValue("var", ""))
				}
				if slices.Contains(got, mam.NSFulltext) != on {
					t.Errorf("disco#info of %s: %s listed = %v, want %v", to, mam.NSFulltext, !on, on)
				}
			}
			form := alice.IQ("get", "", "<query xmlns='"+mam.NS+"'/>")
			alice.ExpectResult(form, "the query form")
			field := form.El.FindElement("query/x/field[@var='" + mam.FieldFulltext + "']")
			if (field != nil) != on || on && field.SelectAttrValue("type", "") != "text-single" {
				t.Errorf("the form's fulltext field: %s", alice.String(form.El))
			}

			alice.Send("<message to='bob@localhost' type='chat'><body>lunch?</body></message>")
			alice.Send("<message to='bob@localhost' type='chat'><body>dinner?</body></message>")
			bob.NextStanzaFor("lunch")
			bob.NextStanzaFor("dinner")
			rs, answer := queryArchive(t, alice, "s", fulltext("lunch"), "")
			if !on {
				alice.ExpectError(answer, xmpp.FeatureNotImplemented, "a search with archive_search off")
				if len(rs) != 0 {
					t.Errorf("%d results before the error", len(rs))
				}
				return
			}
			fin(t, alice, answer)
			if got := bodies(rs); !slices.Equal(got, []string{"lunch?"}) {
				t.Errorf("search: %q, want [lunch?]", got)
			}
		})
	}
}

// TestArchiveSearch: with archive_search on, the messages users send and
// receive are searched by their bodies, alone or with with and RSM paging
// both ways, with exact counts; bad input gets an error, never a
// database's.
func TestArchiveSearch(t *testing.T) {
	s := withLocal(t, func(o *local.LocalOptions) { o.ArchiveSearch = true })
	s.AddUser("carol@localhost", "carol")
	alice, bob, carol := online(t, s, "alice", "phone"), online(t, s, "bob", "desk"), online(t, s, "carol", "pad")
	msgs := []struct {
		from, to string
		payload  string
	}{
		{"alice", "bob", "<body>lunch at noon?</body>"},
		{"alice", "bob", "<body>LUNCH is ready</body>"},
		{"alice", "bob", "<body>see you at the café</body>"},
		{"alice", "carol", "<body>lunch with carol</body>"},
		{"bob", "alice", "<body>no lunch for me</body>"},
		{"alice", "bob", `<body>she said "NEAR" * -x</body>`},
		{"alice", "bob", "<body>hello</body><body xml:lang='de'>Mittagessen</body>"},
		{"alice", "bob", "<subject>lunch</subject><body>a subject is not searched</body>"},
		{"alice", "bob", "<body>nothing here</body>"},
	}
	conns := map[string]*parleytest.Conn{"alice": alice, "bob": bob, "carol": carol}
	for _, m := range msgs {
		conns[m.from].Send("<message to='"+m.to+"@localhost' type='chat'>%s</message>", m.payload)
		conns[m.to].NextStanzaFor("a message from " + m.from)
	}
	lunch := []string{"lunch at noon?", "LUNCH is ready", "lunch with carol", "no lunch for me"}
	tests := []struct {
		name   string
		fields string
		want   []string
	}{
		{"a word, any case", fulltext("lunch"), lunch},
		{"every word", fulltext("lunch noon"), lunch[:1]},
		{"with bob", fulltext("Lunch") + "<field var='with'><value>bob@localhost</value></field>", []string{"lunch at noon?", "LUNCH is ready", "no lunch for me"}},
		{"with carol", fulltext("lunch") + "<field var='with'><value>carol@localhost</value></field>", lunch[2:3]},
		{"accents", fulltext("CAFE"), []string{"see you at the café"}},
		{"another language's body", fulltext("mittagessen"), []string{"hello"}},
		{"FTS syntax is text", fulltext(`"near" * -X (`), []string{`she said "NEAR" * -x`}},
		{"a miss", fulltext("breakfast"), nil},
		{"empty is no search", fulltext(""), nil /* all: checked by count below */},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, answer := queryArchive(t, alice, "s", tt.fields, "")
			f := fin(t, alice, answer)
			if tt.name == "empty is no search" {
				if len(rs) != len(msgs) {
					t.Errorf("an empty search: %d results, want all %d", len(rs), len(msgs))
				}
				return
			}
			if got := bodies(rs); !slices.Equal(got, tt.want) || f.SelectAttrValue("complete", "") != "true" {
				t.Errorf("got %q (complete %q), want %q", got, f.SelectAttrValue("complete", ""), tt.want)
			}
		})
	}
	t.Run("an empty field", func(t *testing.T) {
		rs, answer := queryArchive(t, alice, "s", "<field var='"+mam.FieldFulltext+"'/>", "")
		if fin(t, alice, answer); len(rs) != len(msgs) {
			t.Errorf("%d results, want all %d", len(rs), len(msgs))
		}
	})
	t.Run("only the owner's archive", func(t *testing.T) {
		rs, answer := queryArchive(t, bob, "s", fulltext("carol"), "")
		if fin(t, bob, answer); len(rs) != 0 {
			t.Errorf("bob found %q in his archive", bodies(rs))
		}
	})
	t.Run("count", func(t *testing.T) {
		rs, answer := queryArchive(t, alice, "c", fulltext("lunch"), "<set xmlns='http://jabber.org/protocol/rsm'><max>0</max></set>")
		if c := fin(t, alice, answer).FindElement("set/count"); len(rs) != 0 || c == nil || c.Text() != fmt.Sprint(len(lunch)) {
			t.Errorf("count: %d results, %s", len(rs), alice.String(answer.El))
		}
	})
	for _, backward := range []bool{false, true} {
		t.Run(fmt.Sprintf("pages of one, backward=%v", backward), func(t *testing.T) {
			var (
				got    []string
				cursor string
			)
			for pages := 1; ; pages++ {
				rsm := "<set xmlns='http://jabber.org/protocol/rsm'><max>1</max>"
				switch {
				case backward:
					rsm += "<before>" + cursor + "</before>"
				case cursor != "":
					rsm += "<after>" + cursor + "</after>"
				}
				rs, answer := queryArchive(t, alice, "p", fulltext("lunch"), rsm+"</set>")
				f := fin(t, alice, answer)
				if backward {
					got = append(bodies(rs), got...)
				} else {
					got = append(got, bodies(rs)...)
				}
				if f.SelectAttrValue("complete", "") == "true" {
					break
				}
				if len(rs) != 1 || pages > len(lunch) {
					t.Fatalf("page %d: %d results, not complete", pages, len(rs))
				}
				if backward {
					cursor = f.FindElement("set/first").Text()
				} else {
					cursor = f.FindElement("set/last").Text()
				}
			}
			if !slices.Equal(got, lunch) {
				t.Errorf("paged %q, want %q", got, lunch)
			}
		})
	}
	refused := []struct {
		name, fields string
		want         xmpp.StanzaCondition
	}{
		{"too long", fulltext(strings.Repeat("lunch ", 43)), xmpp.NotAcceptable},
		{"no word", fulltext(`"*" - ( ) :`), xmpp.BadRequest},
		{"two values", "<field var='" + mam.FieldFulltext + "'><value>a</value><value>b</value></field>", xmpp.BadRequest},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			rs, answer := queryArchive(t, alice, "e", tt.fields, "")
			alice.ExpectError(answer, tt.want, tt.name)
			if len(rs) != 0 {
				t.Errorf("%d results before the error", len(rs))
			}
		})
	}
}

package pep_test

import (
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/server/mod/pep"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

const (
	nsCaps  = "http://jabber.org/protocol/caps"
	tune    = "http://jabber.org/protocol/tune"
	mood    = "http://jabber.org/protocol/mood"
	ident   = "client/pc//parleytest"
	ourNode = "https://example.net/parleytest"
)

// capsVer is XEP-0115 §5.1's verification string of a client with one
// identity and features, and no forms (§5.2's simple example).
func capsVer(features []string) string {
	fs := append([]string(nil), features...)
	sort.Strings(fs)
	sum := sha1.Sum([]byte(ident + "<" + strings.Join(fs, "<") + "<"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// client is a logged-in resource with its disco#info features.
type client struct {
	*parleytest.Conn
	features []string
	ver      string // what its <c/> says
}

// features returns a client's features: disco#info, caps, and +notify
// for each node.
func features(notify ...string) []string {
	fs := []string{xmpp.NSDiscoInfo, nsCaps}
	for _, n := range notify {
		fs = append(fs, n+"+notify")
	}
	return fs
}

// login logs jid in as resource with the given features; a client whose
// ver is not its features' (lie) claims it anyway.
func login(s *parleytest.Server, jid, resource string, fs []string, lie bool) *client {
	c := &client{Conn: s.Login(jid, "pw", resource), features: fs, ver: capsVer(fs)}
	if lie {
		c.ver = capsVer(append(fs, "urn:example:lie"))
	}
	return c
}

// available sends available presence with caps, answers the server's
// disco#info query when one comes (wantQuery: when the server does not
// know the ver yet), and syncs.
func (c *client) available(t *testing.T, wantQuery bool) []*xmpp.Stanza {
	t.Helper()
	c.Send("<presence><c xmlns='%s' hash='sha-1' node='%s' ver='%s'/></presence>", nsCaps, ourNode, c.ver)
	got := c.UntilSync()
	var query *xmpp.Stanza
	var rest []*xmpp.Stanza
	for _, st := range got {
		if st.Kind == xmpp.KindIQ && st.Type == "get" && xmpp.Child(st.El, xmpp.NSDiscoInfo, "query") != nil {
			query = st
			continue
		}
		rest = append(rest, st)
	}
	if (query != nil) != wantQuery {
		t.Fatalf("%s: disco#info query %v, want %v (got %s)", c.JID, query != nil, wantQuery, c.Dump(got))
	}
	if query == nil {
		return rest
	}
	if query.From.String() != "localhost" || query.To != c.JID {
		t.Errorf("the caps query is from %s to %s, want from localhost to %s", query.From, query.To, c.JID)
	}
	var b strings.Builder
	cat, typ, _ := strings.Cut(ident, "/")
	typ, _, _ = strings.Cut(typ, "/")
	fmt.Fprintf(&b, "<identity category='%s' type='%s' name='parleytest'/>", cat, typ)
	for _, f := range c.features {
		fmt.Fprintf(&b, "<feature var='%s'/>", f)
	}
	c.Send("<iq type='result' id='%s' to='localhost'><query xmlns='%s'>%s</query></iq>", query.ID, xmpp.NSDiscoInfo, b.String())
	return append(rest, c.UntilSync()...)
}

// events returns the PEP events among got, as "node:kind:id" (kind item
// or retract), with the payload's text after = for items.
func events(got []*xmpp.Stanza) []string {
	var out []string
	for _, st := range got {
		ev := xmpp.Child(st.El, pep.NSEvent, "event")
		if st.Kind != xmpp.KindMessage || ev == nil {
			continue
		}
		for _, items := range ev.SelectElements("items") {
			node := items.SelectAttrValue("node", "")
			for _, it := range items.ChildElements() {
				e := node + ":" + it.Tag + ":" + it.SelectAttrValue("id", "")
				if p := it.ChildElements(); len(p) == 1 {
					e += "=" + p[0].Text()
				}
				out = append(out, e)
			}
		}
	}
	return out
}

// item is a payload of node's namespace with text.
func item(node, text string) string { return fmt.Sprintf("<x xmlns='%s'>%s</x>", node, text) }

// publish is the <pubsub/> of a publish of payload as id to node, with
// publish-options fields (var, value pairs) when given.
func publish(node, id, payload string, options ...string) string {
	var po string
	if len(options) > 0 {
		po = "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>" + pep.NSPubOptions + "</value></field>"
		for i := 0; i+1 < len(options); i += 2 {
			po += fmt.Sprintf("<field var='%s'><value>%s</value></field>", options[i], options[i+1])
		}
		po += "</x></publish-options>"
	}
	return fmt.Sprintf("<pubsub xmlns='%s'><publish node='%s'><item id='%s'>%s</item></publish>%s</pubsub>", pep.NS, node, id, payload, po)
}

// items is the <pubsub/> of an items request.
func items(node, attrs string) string {
	return fmt.Sprintf("<pubsub xmlns='%s'><items node='%s'%s/></pubsub>", pep.NS, node, attrs)
}

// itemIDs returns the ids of the items of an items result.
func itemIDs(st *xmpp.Stanza) string {
	var ids []string
	for _, it := range st.El.FindElements("pubsub/items/item") {
		ids = append(ids, it.SelectAttrValue("id", ""))
	}
	return strings.Join(ids, ",")
}

// appCondition is the pubsub#errors condition of an error stanza.
func appCondition(st *xmpp.Stanza) string {
	if e := st.El.SelectElement("error"); e != nil {
		for _, c := range e.ChildElements() {
			if xmpp.NS(c) == pep.NSErrors {
				return c.Tag
			}
		}
	}
	return ""
}

// setup starts a server where alice has bob, carol and erin as contacts
// (both ways) and dave is a stranger.
func setup(t *testing.T) *parleytest.Server {
	s := parleytest.Start(t)
	for _, u := range []string{"alice", "bob", "carol", "dave", "erin"} {
		s.AddUser(u+"@localhost", "pw")
	}
	for _, c := range []string{"bob", "carol", "erin"} {
		for _, pair := range [][2]string{{"alice", c}, {c, "alice"}} {
			if _, err := s.Store().PutRosterItem(t.Context(), "localhost", pair[0],
				storage.RosterItem{JID: pair[1] + "@localhost", Subscription: "both"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s
}

func TestPEP(t *testing.T) {
	s := setup(t)
	alice := login(s, "alice@localhost", "phone", features(tune), false)
	alice.available(t, true)
	bob := login(s, "bob@localhost", "desk", features(tune, mood), false)
	bob.available(t, true)
	// carol's client asks for no node; erin's claims a ver its features
	// do not hash to (XEP-0115 §5.4): neither is sent anything.
	carol := login(s, "carol@localhost", "x", features(mood), false)
	carol.available(t, true)
	erin := login(s, "erin@localhost", "x", features(tune), true)
	erin.available(t, true)
	// dave sends alice directed presence: no subscription, no events.
	dave := login(s, "dave@localhost", "x", features(tune), false)
	dave.Send("<presence to='alice@localhost'><c xmlns='%s' hash='sha-1' node='%s' ver='%s'/></presence>", nsCaps, ourNode, dave.ver)
	dave.UntilSync()
	alice.UntilSync()
	all := map[string]*client{"alice": alice, "bob": bob, "carol": carol, "dave": dave, "erin": erin}

	// expect checks what events each client got since the last check;
	// sent holds what came to the sender of the last iq before its answer.
	expect := func(t *testing.T, sender string, sent []*xmpp.Stanza, want map[string]string) {
		t.Helper()
		for name, c := range all {
			got := c.UntilSync()
			if name == sender {
				got = append(sent, got...)
			}
			e := strings.Join(events(got), " ")
			if e != want[name] {
				t.Errorf("%s got events %q, want %q", name, e, want[name])
			}
		}
	}

	steps := []struct {
		name string
		// who sends an iq set or get of payload to to.
		who, typ, to, payload string
		// want is "result", or "error <condition> <pubsub condition>".
		want string
		// ids are the item ids a result lists, when checked.
		ids    string
		events map[string]string
	}{
		{name: "publish notifies those with +notify", who: "alice", typ: "set", payload: publish(tune, "t1", item(tune, "one")),
			want: "result", events: map[string]string{"alice": tune + ":item:t1=one", "bob": tune + ":item:t1=one"}},
		{name: "a contact reads a presence node", who: "bob", typ: "get", to: "alice@localhost", payload: items(tune, ""),
			want: "result", ids: "t1"},
		{name: "a stranger may not read a presence node", who: "dave", typ: "get", to: "alice@localhost", payload: items(tune, ""),
			want: "error not-authorized presence-subscription-required"},
		{name: "an open node is published", who: "alice", typ: "set", payload: publish("urn:example:open", "o1", item("urn:example:open", "o"), "pubsub#access_model", "open"),
			want: "result"},
		{name: "a stranger reads an open node", who: "dave", typ: "get", to: "alice@localhost", payload: items("urn:example:open", ""),
			want: "result", ids: "o1"},
		{name: "the precondition of a publish is checked", who: "alice", typ: "set", payload: publish("urn:example:open", "o2", item("urn:example:open", "o"), "pubsub#access_model", "presence"),
			want: "error conflict precondition-not-met"},
		{name: "the refused publish stored nothing", who: "alice", typ: "get", payload: items("urn:example:open", ""),
			want: "result", ids: "o1"},
		{name: "an unknown publish-option is refused", who: "alice", typ: "set", payload: publish("urn:example:open", "o3", item("urn:example:open", "o"), "pubsub#color", "blue"),
			want: "error bad-request invalid-options"},
		{name: "a whitelist node is published", who: "alice", typ: "set", payload: publish("urn:example:secret", "s1", item("urn:example:secret", "s"), "pubsub#access_model", "whitelist"),
			want: "result"},
		{name: "a contact may not read a whitelist node", who: "bob", typ: "get", to: "alice@localhost", payload: items("urn:example:secret", ""),
			want: "error not-allowed closed-node"},
		{name: "the owner reads her whitelist node", who: "alice", typ: "get", payload: items("urn:example:secret", ""),
			want: "result", ids: "s1"},
		{name: "max_items 2, first", who: "alice", typ: "set", payload: publish("urn:example:list", "l1", item("urn:example:list", "1"), "pubsub#max_items", "2"), want: "result"},
		{name: "max_items 2, second", who: "alice", typ: "set", payload: publish("urn:example:list", "l2", item("urn:example:list", "2"), "pubsub#max_items", "2"), want: "result"},
		{name: "max_items 2, third", who: "alice", typ: "set", payload: publish("urn:example:list", "l3", item("urn:example:list", "3"), "pubsub#max_items", "2"), want: "result"},
		{name: "max_items keeps the newest", who: "bob", typ: "get", to: "alice@localhost", payload: items("urn:example:list", ""),
			want: "result", ids: "l2,l3"},
		{name: "the newest one", who: "bob", typ: "get", to: "alice@localhost", payload: items("urn:example:list", " max_items='1'"),
			want: "result", ids: "l3"},
		{name: "no such node", who: "bob", typ: "get", to: "alice@localhost", payload: items("urn:example:none", ""),
			want: "error item-not-found "},
		{name: "only the owner publishes", who: "bob", typ: "set", to: "alice@localhost", payload: publish(tune, "b1", item(tune, "bob's")),
			want: "error forbidden "},
		{name: "an item over the size limit", who: "alice", typ: "set", payload: publish(tune, "big", item(tune, strings.Repeat("x", pep.MaxItemSize))),
			want: "error policy-violation payload-too-big"},
		{name: "retract notifies", who: "alice", typ: "set", payload: fmt.Sprintf("<pubsub xmlns='%s'><retract node='%s'><item id='t1'/></retract></pubsub>", pep.NS, tune),
			want: "result", events: map[string]string{"alice": tune + ":retract:t1", "bob": tune + ":retract:t1"}},
		{name: "retracted", who: "bob", typ: "get", to: "alice@localhost", payload: items(tune, ""),
			want: "result", ids: ""},
		{name: "subscribe is not answered", who: "bob", typ: "set", to: "alice@localhost",
			payload: fmt.Sprintf("<pubsub xmlns='%s'><subscribe node='%s' jid='bob@localhost'/></pubsub>", pep.NS, tune),
			want:    "error feature-not-implemented unsupported"},
	}
	for _, tt := range steps {
		t.Run(tt.name, func(t *testing.T) {
			c := all[tt.who]
			st, before := c.IQAll(tt.typ, tt.to, tt.payload)
			got := "result"
			if st.Type == "error" {
				got = "error " + string(parleytest.Condition(st)) + " " + appCondition(st)
			}
			if got != tt.want {
				t.Fatalf("got %s, want %s: %s", got, tt.want, c.String(st.El))
			}
			if tt.want == "result" && tt.typ == "get" {
				if ids := itemIDs(st); ids != tt.ids {
					t.Errorf("items %q, want %q", ids, tt.ids)
				}
			}
			expect(t, tt.who, before, tt.events)
		})
	}

	t.Run("last item on presence", func(t *testing.T) {
		st, before := alice.IQAll("set", "", publish(tune, "t2", item(tune, "two")))
		alice.ExpectResult(st, "publish t2")
		expect(t, "alice", before, map[string]string{"alice": tune + ":item:t2=two", "bob": tune + ":item:t2=two"})
		// A resource whose ver the server knows gets the last item with
		// its presence; one whose ver is new, once it answered the query.
		for _, r := range []struct {
			c         *client
			wantQuery bool
			want      string
		}{
			{login(s, "bob@localhost", "laptop", features(tune, mood), false), false, tune + ":item:t2=two"},
			{login(s, "bob@localhost", "tab", features(tune, "urn:example:other"), false), true, tune + ":item:t2=two"},
			{login(s, "alice@localhost", "desk", features(tune), false), false, tune + ":item:t2=two"},
			{login(s, "carol@localhost", "y", features(mood), false), false, ""},
			{login(s, "dave@localhost", "y", features(tune), false), false, ""},
		} {
			got := r.c.available(t, r.wantQuery)
			if r.want != "" && len(events(got)) == 0 {
				// Sent from the store's read, after the presence.
				st, before := r.c.WaitFor("the last item", func(st *xmpp.Stanza) bool { return len(events([]*xmpp.Stanza{st})) > 0 })
				got = append(append(got, before...), st)
			}
			if e := strings.Join(events(got), " "); e != r.want {
				t.Errorf("%s got %q, want %q", r.c.JID, e, r.want)
			}
		}
	})
}

// TestConfigureAndDelete: the owner's configuration form, its refusals,
// max_items lowered trims, and the deletion told to subscribers.
func TestConfigureAndDelete(t *testing.T) {
	s := setup(t)
	alice := login(s, "alice@localhost", "phone", features(tune), false)
	alice.available(t, true)
	bob := login(s, "bob@localhost", "desk", features(tune), false)
	bob.available(t, false) // alice's client's ver: known
	alice.ExpectResult(alice.IQ("set", "", publish(tune, "a", item(tune, "a"), "pubsub#max_items", "5")), "publish a")
	alice.ExpectResult(alice.IQ("set", "", publish(tune, "b", item(tune, "b"))), "publish b")
	bob.UntilSync()
	st := alice.IQ("get", "", fmt.Sprintf("<pubsub xmlns='%s'><configure node='%s'/></pubsub>", pep.NSOwner, tune))
	alice.ExpectResult(st, "configure get")
	if v := st.El.FindElement("pubsub/configure/x/field[@var='pubsub#max_items']/value"); v == nil || v.Text() != "5" {
		t.Errorf("the form says max_items %v, want 5: %s", v, alice.String(st.El))
	}
	form := func(fields string) string {
		return fmt.Sprintf("<pubsub xmlns='%s'><configure node='%s'><x xmlns='jabber:x:data' type='submit'>"+
			"<field var='FORM_TYPE' type='hidden'><value>%s</value></field>%s</x></configure></pubsub>", pep.NSOwner, tune, pep.NSNodeConfig, fields)
	}
	tests := []struct {
		name, who, payload, want string
	}{
		{"max_items over the bound", "alice", form("<field var='pubsub#max_items'><value>100000</value></field>"), "not-acceptable"},
		{"an unknown access model", "alice", form("<field var='pubsub#access_model'><value>authorize</value></field>"), "not-acceptable"},
		{"another user", "bob", form(""), "forbidden"},
		{"max_items 1 trims", "alice", form("<field var='pubsub#max_items'><value>1</value></field>"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			to := ""
			if tt.who != "alice" {
				to = "alice@localhost"
			}
			st := map[string]*client{"alice": alice, "bob": bob}[tt.who].IQ("set", to, tt.payload)
			if got := string(parleytest.Condition(st)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	if ids := itemIDs(bob.IQ("get", "alice@localhost", items(tune, ""))); ids != "b" {
		t.Errorf("after max_items 1: items %q, want b", ids)
	}
	alice.ExpectResult(alice.IQ("set", "", fmt.Sprintf("<pubsub xmlns='%s'><delete node='%s'/></pubsub>", pep.NSOwner, tune)), "delete")
	var deleted bool
	for _, st := range bob.UntilSync() {
		if d := st.El.FindElement("event/delete"); d != nil && d.SelectAttrValue("node", "") == tune {
			deleted = true
		}
	}
	if !deleted {
		t.Error("bob was not told of the deletion")
	}
	alice.ExpectError(bob.IQ("get", "alice@localhost", items(tune, "")), xmpp.ItemNotFound, "items of a deleted node")
}

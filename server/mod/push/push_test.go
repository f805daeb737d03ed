package push_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/components/webhook"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/parleytest/webhooktest"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/server/mod/push"
	"github.com/parley-im/parley/xmpp"
)

// The app server of these tests is an http_component host, push.localhost:
// a real webhook (httptest) gets each pubsub publish as JSON with the
// stanza's XML, and answers it with a result, or with the error that
// appServer.refuse says.

const appServer = "push.localhost"

// app is a test's app server.
type app struct {
	hook *webhooktest.Hook
	// refuse is the raw <error/> the webhook answers publishes with;
	// "" answers a result.
	refuse atomic.Value // string
}

// notification is what the app server got of one publish.
type notification struct {
	from, to, node string
	fields         map[string]string
	options        map[string]string // the publish-options form; nil for none
}

// start runs a server with alice, bob and the app server; edit changes
// the local host's options (nil for the defaults).
func start(t *testing.T, edit func(*local.LocalOptions), refuse string, opts ...parleytest.Option) (*parleytest.Server, *app) {
	t.Helper()
	a := &app{}
	a.refuse.Store(refuse)
	a.hook = webhooktest.New(t, func(w http.ResponseWriter, p *webhooktest.Post) {
		if p.JSON.Kind != "iq" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if refuse := a.refuse.Load().(string); refuse != "" {
			webhooktest.JSON(w, 200, webhook.Reply{Stanza: "<iq type='error' id='" + p.JSON.ID + "' to='" + p.JSON.From + "'>" + refuse + "</iq>"})
			return
		}
		webhooktest.JSON(w, 200, webhook.Reply{Type: "result"})
	})
	s := a.hook.Start(t, appServer, func(h *conf.Host) { webhook.OptionsOf(h).PostStanzas = []string{"iq"} },
		append([]parleytest.Option{parleytest.WithConfig(func(c *conf.Config) {
			h := conf.Host{Name: "localhost"}
			o := local.LocalOptionsOf(&h)
			if edit != nil {
				edit(o)
			}
			c.Hosts = append([]conf.Host{h}, c.Hosts...)
		})}, opts...)...)
	for _, u := range []string{"alice", "bob"} {
		s.AddUser(u+"@localhost", u)
	}
	return s, a
}

// next returns the next publish the app server got.
func (a *app) next(t *testing.T) notification {
	t.Helper()
	p := a.hook.Next(t)
	el, err := xmpp.ParseElement(p.JSON.Stanza, xmpp.Limits{})
	if err != nil {
		t.Fatalf("the app server got %q: %v", p.JSON.Stanza, err)
	}
	n := notification{from: el.SelectAttrValue("from", ""), to: el.SelectAttrValue("to", ""), fields: map[string]string{}}
	if el.Tag != "iq" || el.SelectAttrValue("type", "") != "set" {
		t.Fatalf("the app server got %s, want an iq set", p.JSON.Stanza)
	}
	pub := el.FindElement("pubsub/publish")
	if pub == nil || xmpp.NS(el.SelectElement("pubsub")) != "http://jabber.org/protocol/pubsub" {
		t.Fatalf("the app server got %s, want a pubsub publish", p.JSON.Stanza)
	}
	n.node = pub.SelectAttrValue("node", "")
	x := pub.FindElement("item/notification/x")
	if x == nil || xmpp.NS(x.Parent()) != "urn:xmpp:push:0" || xmpp.NS(x) != "jabber:x:data" {
		t.Fatalf("the app server got %s, want a notification with a form", p.JSON.Stanza)
	}
	n.fields = fields(x)
	if x := el.FindElement("pubsub/publish-options/x"); x != nil {
		n.options = fields(x)
	}
	return n
}

func fields(x *etree.Element) map[string]string {
	out := map[string]string{}
	for _, f := range x.SelectElements("field") {
		v := ""
		if e := f.SelectElement("value"); e != nil {
			v = e.Text()
		}
		out[f.SelectAttrValue("var", "")] = v
	}
	return out
}

// enableSM enables stream management with resumption, reads up to
// <enabled/> and returns its resumption id.
func enableSM(t *testing.T, c *parleytest.Conn) string {
	t.Helper()
	c.Send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	for {
		el := c.Next()
		if el.Tag == "enabled" {
			return el.SelectAttrValue("id", "")
		}
	}
}

// enable enables push on c's session for node, with a publish option
// secret when secret is not empty.
func enable(t *testing.T, c *parleytest.Conn, node, secret string) {
	t.Helper()
	form := ""
	if secret != "" {
		form = "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>" +
			"<field var='secret'><value>" + secret + "</value></field></x>"
	}
	c.ExpectResult(c.IQ("set", "", "<enable xmlns='urn:xmpp:push:0' jid='"+appServer+"' node='"+node+"'>"+form+"</enable>"), "enable push")
}

// TestPushWhenDetached: a session that enabled push and lost its
// connection (stream management keeps it) gets its app server woken by a
// message: one notification with message-count, and the sender and body
// only when push_include_body says so; the publish options go along.
func TestPushWhenDetached(t *testing.T) {
	tests := []struct {
		name        string
		includeBody bool
	}{
		{"no body leaves the server by default", false},
		{"push_include_body sends the sender and the body", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, a := start(t, func(o *local.LocalOptions) { o.PushIncludeBody = tt.includeBody }, "")
			alice := s.Login("alice@localhost", "alice", "phone")
			enable(t, alice, "node-1", "s3cret")
			enableSM(t, alice)
			alice.Conn.Close()
			bob := s.Login("bob@localhost", "bob", "pc")
			bob.Send("<message to='alice@localhost/phone' type='chat'><body>wherefore art thou</body></message>")
			bob.Sync()
			n := a.next(t)
			if n.from != "alice@localhost" || n.to != appServer || n.node != "node-1" {
				t.Errorf("publish from %q to %q node %q, want from alice@localhost to %s node node-1", n.from, n.to, n.node, appServer)
			}
			want := map[string]string{"FORM_TYPE": "urn:xmpp:push:summary", "message-count": "1"}
			if tt.includeBody {
				want["last-message-sender"] = "bob@localhost/pc"
				want["last-message-body"] = "wherefore art thou"
			}
			if !equal(n.fields, want) {
				t.Errorf("summary %v, want %v", n.fields, want)
			}
			if wantOpts := map[string]string{"FORM_TYPE": "http://jabber.org/protocol/pubsub#publish-options", "secret": "s3cret"}; !equal(n.options, wantOpts) {
				t.Errorf("publish options %v, want %v", n.options, wantOpts)
			}
		})
	}
}

// TestPushOnDetach: what a session holds unacknowledged when its
// connection drops wakes the device at once (Host.OnDetach): the message
// came while the client was there, so only the detach can push it.
func TestPushOnDetach(t *testing.T) {
	s, a := start(t, nil, "")
	alice := s.Login("alice@localhost", "alice", "phone")
	enable(t, alice, "node-1", "")
	enableSM(t, alice)
	bob := s.Login("bob@localhost", "bob", "pc")
	for _, b := range []string{"one", "two"} {
		bob.Send("<message to='alice@localhost/phone' type='chat'><body>%s</body></message>", b)
	}
	// A chat state alone wakes nobody, and is not counted.
	bob.Send("<message to='alice@localhost/phone' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
	bob.Sync()
	// Alice reads both and never acknowledges them.
	for got := 0; got < 2; {
		if el := alice.Next(); el.Tag == "message" && el.SelectElement("body") != nil {
			got++
		}
	}
	alice.Conn.Close()
	n := a.next(t)
	if want := map[string]string{"FORM_TYPE": "urn:xmpp:push:summary", "message-count": "2"}; !equal(n.fields, want) {
		t.Errorf("summary %v, want %v", n.fields, want)
	}
	if n.options != nil {
		t.Errorf("publish options %v, none given", n.options)
	}
}

// TestPushAfterAFailedResume: a resume that takes a session's open
// connection and then fails (its h acknowledges stanzas never sent,
// XEP-0198 §4) leaves the session detached: what it holds unacknowledged
// wakes the device, as at any detach.
func TestPushAfterAFailedResume(t *testing.T) {
	s, a := start(t, nil, "")
	alice := s.Login("alice@localhost", "alice", "phone")
	enable(t, alice, "node-1", "")
	id := enableSM(t, alice)
	bob := s.Login("bob@localhost", "bob", "pc")
	bob.Send("<message to='alice@localhost/phone' type='chat'><body>one</body></message>")
	bob.Sync()
	for {
		if el := alice.Next(); el.Tag == "message" {
			break
		}
	}
	// The old connection stays open; a new one resumes with an h of
	// five, and alice got one stanza.
	c := s.DialSecure("localhost")
	if el := c.AuthPlain("alice", "alice"); el.Tag != "success" {
		t.Fatalf("login: %s", c.String(el))
	}
	c.Open("localhost")
	c.Send("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='5'/>", id)
	c.ExpectStreamError(xmpp.StreamUndefined)
	n := a.next(t)
	if want := map[string]string{"FORM_TYPE": "urn:xmpp:push:summary", "message-count": "1"}; n.node != "node-1" || !equal(n.fields, want) {
		t.Errorf("push to node %q: %v, want node-1: %v", n.node, n.fields, want)
	}
}

// TestPushOncePerWakeUp: while alice's client is inactive (XEP-0352) a
// message wakes it once; the next message of the same spell does not;
// after active and inactive again, the next one does. The app server's
// posts come in order (one conversation), so the second post is the
// second spell's.
func TestPushOncePerWakeUp(t *testing.T) {
	s, a := start(t, func(o *local.LocalOptions) { o.PushIncludeBody = true }, "")
	alice := s.Login("alice@localhost", "alice", "phone")
	enable(t, alice, "node-1", "")
	bob := s.Login("bob@localhost", "bob", "pc")
	send := func(bodies ...string) {
		for _, b := range bodies {
			bob.Send("<message to='alice@localhost/phone' type='chat'><body>%s</body></message>", b)
		}
		bob.Sync()
	}
	// Active: no push.
	send("active")
	alice.Send("<inactive xmlns='urn:xmpp:csi:0'/>")
	alice.Sync()
	send("first", "second", "third")
	alice.Send("<active xmlns='urn:xmpp:csi:0'/>")
	alice.Send("<inactive xmlns='urn:xmpp:csi:0'/>")
	alice.Sync()
	send("fourth")
	var got []string
	for range 2 {
		n := a.next(t)
		got = append(got, n.fields["last-message-body"]+"/"+n.fields["message-count"])
	}
	if want := "first/1 fourth/1"; strings.Join(got, " ") != want {
		t.Errorf("the app server got %q, want %q", strings.Join(got, " "), want)
	}
}

// TestPushDisable: after <disable/> the session pushes no more; a
// registration enabled after it does.
func TestPushDisable(t *testing.T) {
	tests := []struct {
		name    string
		disable string
	}{
		{"the JID and node", "<disable xmlns='urn:xmpp:push:0' jid='" + appServer + "' node='old'/>"},
		{"every node of the JID", "<disable xmlns='urn:xmpp:push:0' jid='" + appServer + "'/>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, a := start(t, func(o *local.LocalOptions) { o.PushIncludeBody = true }, "")
			alice := s.Login("alice@localhost", "alice", "phone")
			enable(t, alice, "old", "")
			alice.ExpectResult(alice.IQ("set", "", tt.disable), "disable")
			regs, err := s.Store().PushRegistrations(context.Background(), "localhost", "alice")
			if err != nil || len(regs) != 0 {
				t.Fatalf("after disable the store has %v, %v; want none", regs, err)
			}
			bob := s.Login("bob@localhost", "bob", "pc")
			alice.Send("<inactive xmlns='urn:xmpp:csi:0'/>")
			alice.Sync()
			bob.Send("<message to='alice@localhost/phone' type='chat'><body>disabled</body></message>")
			bob.Sync()
			enable(t, alice, "new", "")
			alice.Send("<active xmlns='urn:xmpp:csi:0'/><inactive xmlns='urn:xmpp:csi:0'/>")
			alice.Sync()
			bob.Send("<message to='alice@localhost/phone' type='chat'><body>enabled</body></message>")
			bob.Sync()
			if n := a.next(t); n.node != "new" || n.fields["last-message-body"] != "enabled" {
				t.Errorf("first push to node %q for %q, want node new for \"enabled\"", n.node, n.fields["last-message-body"])
			}
		})
	}
}

// TestPushAppServerError: an app server that answers a publish with an
// error disables the registration (XEP-0357 §7.1): it leaves the store,
// and the session pushes no more to it; one that answers wait keeps it.
func TestPushAppServerError(t *testing.T) {
	tests := []struct {
		name   string
		refuse string
		kept   bool
	}{
		{"item-not-found disables", "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>", false},
		{"a wait error keeps it", "<error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, a := start(t, func(o *local.LocalOptions) { o.PushIncludeBody = true }, tt.refuse)
			alice := s.Login("alice@localhost", "alice", "phone")
			enable(t, alice, "node-1", "")
			bob := s.Login("bob@localhost", "bob", "pc")
			alice.Send("<inactive xmlns='urn:xmpp:csi:0'/>")
			alice.Sync()
			bob.Send("<message to='alice@localhost/phone' type='chat'><body>refused</body></message>")
			bob.Sync()
			a.next(t)
			// The answer comes back on its own time: wait for the store
			// to lose the registration, for a bounded number of checks
			// (all of them when it is kept).
			var regs int
			for range 50 {
				rs, err := s.Store().PushRegistrations(context.Background(), "localhost", "alice")
				if err != nil {
					t.Fatal(err)
				}
				if regs = len(rs); regs == 0 {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if kept := regs == 1; kept != tt.kept {
				t.Fatalf("registrations after the error: %d, want kept %v", regs, tt.kept)
			}
			// A second spell: the registration pushes again only if kept.
			// A second registration on another session tells when.
			tablet := s.Login("alice@localhost", "alice", "tablet")
			a.refuse.Store("")
			enable(t, tablet, "node-2", "")
			alice.Send("<active xmlns='urn:xmpp:csi:0'/><inactive xmlns='urn:xmpp:csi:0'/>")
			alice.Sync()
			tablet.Send("<inactive xmlns='urn:xmpp:csi:0'/>")
			tablet.Sync()
			bob.Send("<message to='alice@localhost/phone' type='chat'><body>to the phone</body></message>")
			bob.Send("<message to='alice@localhost/tablet' type='chat'><body>to the tablet</body></message>")
			bob.Sync()
			n := a.next(t)
			if got := n.node + ": " + n.fields["last-message-body"]; tt.kept != (got == "node-1: to the phone") {
				t.Errorf("the next push is %q; kept %v", got, tt.kept)
			}
		})
	}
}

// TestPushEnableRefused: what <enable/> refuses.
func TestPushEnableRefused(t *testing.T) {
	tests := []struct {
		name, to, payload string
		want              xmpp.StanzaCondition
	}{
		{"no jid", "", "<enable xmlns='urn:xmpp:push:0' node='n'/>", xmpp.BadRequest},
		{"own account", "", "<enable xmlns='urn:xmpp:push:0' jid='alice@localhost' node='n'/>", xmpp.BadRequest},
		{"a form that is not publish options", "",
			"<enable xmlns='urn:xmpp:push:0' jid='" + appServer + "' node='n'><x xmlns='jabber:x:data' type='submit'>" +
				"<field var='FORM_TYPE'><value>urn:example</value></field></x></enable>", xmpp.BadRequest},
		{"another account", "bob@localhost", "<enable xmlns='urn:xmpp:push:0' jid='" + appServer + "' node='n'/>", xmpp.Forbidden},
		{"disable without jid", "", "<disable xmlns='urn:xmpp:push:0'/>", xmpp.BadRequest},
	}
	s, _ := start(t, nil, "")
	alice := s.Login("alice@localhost", "alice", "phone")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alice.ExpectError(alice.IQ("set", tt.to, tt.payload), tt.want, tt.name)
		})
	}
	if regs, err := s.Store().PushRegistrations(context.Background(), "localhost", "alice"); err != nil || len(regs) != 0 {
		t.Errorf("refused enables stored %v, %v", regs, err)
	}
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestPushRate: push_max_per_minute bounds one registration's pushes: with
// 1, the second spell of inactivity within the minute pushes nothing, and
// the next push the app server gets is another registration's.
func TestPushRate(t *testing.T) {
	s, a := start(t, func(o *local.LocalOptions) { o.PushIncludeBody, o.PushMaxPerMinute = true, 1 }, "")
	alice := s.Login("alice@localhost", "alice", "phone")
	enable(t, alice, "phone", "")
	tablet := s.Login("alice@localhost", "alice", "tablet")
	enable(t, tablet, "tablet", "")
	bob := s.Login("bob@localhost", "bob", "pc")
	alice.Send("<inactive xmlns='urn:xmpp:csi:0'/>")
	alice.Sync()
	bob.Send("<message to='alice@localhost/phone' type='chat'><body>1</body></message>")
	bob.Sync()
	alice.Send("<active xmlns='urn:xmpp:csi:0'/><inactive xmlns='urn:xmpp:csi:0'/>")
	alice.Sync()
	tablet.Send("<inactive xmlns='urn:xmpp:csi:0'/>")
	tablet.Sync()
	bob.Send("<message to='alice@localhost/phone' type='chat'><body>2</body></message>")
	bob.Send("<message to='alice@localhost/tablet' type='chat'><body>3</body></message>")
	bob.Sync()
	var got []string
	for range 2 {
		n := a.next(t)
		got = append(got, n.node+":"+n.fields["last-message-body"])
	}
	if want := "phone:1 tablet:3"; strings.Join(got, " ") != want {
		t.Errorf("the app server got %q, want %q", strings.Join(got, " "), want)
	}
}

// TestPushOffline: a user whose sessions are all gone (the app was
// killed, the detached session expired) still has her device woken by a
// message with a body that goes to offline storage, as Prosody's
// mod_cloud_notify does: to the bare JID, or to the full JID of the
// resource that is gone. A chat state alone wakes nobody; each message
// that needs waking pushes, counted since the registration was enabled.
func TestPushOffline(t *testing.T) {
	tests := []struct {
		name string
		to   string
	}{
		{"to the bare JID", "alice@localhost"},
		{"to the resource that is gone", "alice@localhost/phone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, a := start(t, func(o *local.LocalOptions) { o.PushIncludeBody = true }, "")
			alice := s.Login("alice@localhost", "alice", "phone")
			enable(t, alice, "node-1", "s3cret")
			alice.CloseStream()
			bob := s.Login("bob@localhost", "bob", "pc")
			// Wait until alice's session is gone: a ping to it fails.
			for range 100 {
				if bob.IQ("get", "alice@localhost/phone", "<ping xmlns='urn:xmpp:ping'/>").Type == "error" {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			bob.Send("<message to='%s' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>", tt.to)
			bob.Send("<message to='%s' type='chat'><body>one</body></message>", tt.to)
			bob.Send("<message to='%s' type='chat'><body>two</body></message>", tt.to)
			bob.Sync()
			for i, body := range []string{"one", "two"} {
				n := a.next(t)
				want := map[string]string{"FORM_TYPE": "urn:xmpp:push:summary", "message-count": strconv.Itoa(i + 1),
					"last-message-sender": "bob@localhost/pc", "last-message-body": body}
				if n.from != "alice@localhost" || n.node != "node-1" || !equal(n.fields, want) {
					t.Errorf("push %d from %q to node %q: %v, want from alice@localhost to node-1: %v", i, n.from, n.node, n.fields, want)
				}
				if n.options["secret"] != "s3cret" {
					t.Errorf("push %d: publish options %v, want the secret", i, n.options)
				}
			}
			// And alice gets them at her next login.
			again := s.Login("alice@localhost", "alice", "phone")
			again.Send("<presence/>")
			for got := 0; got < 2; {
				if el := again.Next(); el.Tag == "message" && el.SelectElement("body") != nil {
					got++
				}
			}
		})
	}
}

// TestPushOfflineQuota: a message the offline quota refused (bounced to
// its sender) pushes nothing: the core tells push what it stored, not
// what it meant to store.
func TestPushOfflineQuota(t *testing.T) {
	s, a := start(t, func(o *local.LocalOptions) { o.PushIncludeBody = true }, "",
		parleytest.WithConfig(func(c *conf.Config) { c.Limits.OfflineMessages = 1 }))
	alice := s.Login("alice@localhost", "alice", "phone")
	enable(t, alice, "node-1", "")
	alice.CloseStream()
	bob := s.Login("bob@localhost", "bob", "pc")
	for range 100 {
		if bob.IQ("get", "alice@localhost/phone", "<ping xmlns='urn:xmpp:ping'/>").Type == "error" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	bob.Send("<message to='alice@localhost' type='chat'><body>one</body></message>")
	bob.Send("<message to='alice@localhost' type='chat'><body>two</body></message>")
	if el := bob.Next(); el.Tag != "message" || el.SelectAttrValue("type", "") != "error" {
		t.Fatalf("bob got %s, want the bounce of the message past the quota", local.Serialize(el))
	}
	// Alice takes "one" out of the store; the next message is stored.
	again := s.Login("alice@localhost", "alice", "phone")
	again.Send("<presence/>")
	for el := again.Next(); el.Tag != "message"; el = again.Next() {
	}
	again.CloseStream()
	for range 100 {
		if bob.IQ("get", "alice@localhost/phone", "<ping xmlns='urn:xmpp:ping'/>").Type == "error" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	bob.Send("<message to='alice@localhost' type='chat'><body>three</body></message>")
	bob.Sync()
	for i, want := range []string{"one", "three"} {
		if n := a.next(t); n.fields["last-message-body"] != want {
			t.Errorf("push %d says %q, want %q (the refused message pushes nothing)", i, n.fields["last-message-body"], want)
		}
	}
}

// TestPushMaxDevices: push_max_devices bounds an account's
// registrations: enabling one more drops the least recently enabled (one
// enabled again counts as recent); 5 by default.
func TestPushMaxDevices(t *testing.T) {
	tests := []struct {
		name    string
		max     int // 0: the default
		enables []string
		want    []string // the nodes kept, sorted
	}{
		{"under the bound", 3, []string{"a", "b", "c"}, []string{"a", "b", "c"}},
		{"one more drops the oldest", 2, []string{"a", "b", "c"}, []string{"b", "c"}},
		{"enabled again is recent", 2, []string{"a", "b", "a", "c"}, []string{"a", "c"}},
		{"the default is 5", 0, []string{"a", "b", "c", "d", "e", "f", "g"}, []string{"c", "d", "e", "f", "g"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A minute a tick: the store keeps seconds.
			clock := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
			defer push.SetNow(func() time.Time { clock = clock.Add(time.Minute); return clock })()
			s, _ := start(t, func(o *local.LocalOptions) {
				if tt.max > 0 {
					o.PushMaxDevices = tt.max
				}
			}, "")
			alice := s.Login("alice@localhost", "alice", "phone")
			for _, n := range tt.enables {
				enable(t, alice, n, "")
			}
			regs, err := s.Store().PushRegistrations(context.Background(), "localhost", "alice")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range regs {
				got = append(got, r.Node)
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("registrations kept: %v, want %v", got, tt.want)
			}
		})
	}
}

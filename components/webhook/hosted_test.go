package webhook_test

import (
	"bufio"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/components/webhook"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/parleytest/webhooktest"
	"github.com/parley-im/parley/xmpp"
)

func TestBotShutdownAnswersAHeldIQ(t *testing.T) {
	var hook *webhooktest.Hook
	hook = webhooktest.New(t, func(w http.ResponseWriter, r *webhooktest.Post) {
		hook.Hold(r, nil)
		w.WriteHeader(http.StatusNoContent)
	})

	s := hook.Start(t, botHost, func(h *conf.Host) { webhook.OptionsOf(h).PostStanzas = []string{"message", "iq"} })
	botUsers(t, s, "alice")
	alice := botLogin(t, s, "alice", "phone")
	alice.Send("<iq to='slow@bots.localhost' type='get' id='held'><query xmlns='%s'/></iq>", botNS)
	alice.Send("<iq to='slow@bots.localhost' type='get' id='waiting'><query xmlns='%s'/></iq>", botNS)
	hook.Next(t)

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	// Both iqs, the one in flight and the one waiting, end in an error
	// before the stream closes.
	got := map[string]bool{}
	for range 2 {
		st := botNext(t, alice)
		if st.Kind != xmpp.KindIQ || st.Type != "error" || (st.ID != "held" && st.ID != "waiting") || got[st.ID] {
			t.Fatalf("got %s, want an error for each iq", alice.String(st.El))
		}
		got[st.ID] = true
	}
	alice.ExpectStreamError(xmpp.SystemShutdown)
	<-done
}

func TestBotRequestIsTheSeedJSON(t *testing.T) {
	hook := webhooktest.New(t, nil) // 204: no reply
	s := hook.Start(t, botHost, func(h *conf.Host) {
		webhook.OptionsOf(h).PostStanzas = []string{"message", "presence", "iq"}
		webhook.OptionsOf(h).Headers = map[string]string{"Authorization": "Bearer hook-token", "X-Parley-Test": "yes"}
	})
	botUsers(t, s, "alice")
	alice := botLogin(t, s, "alice", "phone")

	t.Run("a message is posted as JSON with to, from, kind, stanza, body, id and type", func(t *testing.T) {
		alice.Send("<message to='echo@bots.localhost' type='chat' id='m1'><body>hello &amp; bye</body><x xmlns='urn:example:x'>kept</x></message>")
		r := hook.Next(t)
		if r.Method != http.MethodPost {
			t.Errorf("method %s, want POST", r.Method)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q, want application/json", ct)
		}
		var fields map[string]any
		if err := json.Unmarshal(r.Body, &fields); err != nil {
			t.Fatalf("the body is not a JSON object: %v\n%s", err, r.Body)
		}
		want := map[string]string{
			"to":   "echo@bots.localhost",
			"from": alice.JID.String(),
			"kind": "message",
			"body": "hello & bye",
			"id":   "m1",
			"type": "chat",
		}
		for k, v := range want {
			if got, ok := fields[k].(string); !ok || got != v {
				t.Errorf("%s = %#v, want %q", k, fields[k], v)
			}
		}
		for k := range fields {
			if _, ok := want[k]; !ok && k != "stanza" {
				t.Errorf("unexpected field %q = %#v", k, fields[k])
			}
		}
		raw, _ := fields["stanza"].(string)
		doc := etree.NewDocument()
		if err := doc.ReadFromString(raw); err != nil || doc.Root() == nil {
			t.Fatalf("stanza %q does not parse: %v", raw, err)
		}
		el := doc.Root()
		if el.Tag != "message" || el.SelectAttrValue("xmlns", "") != xmpp.NSClient {
			t.Errorf("stanza root is <%s xmlns=%q>, want <message xmlns='jabber:client'>", el.Tag, el.SelectAttrValue("xmlns", ""))
		}
		for attr, v := range map[string]string{"from": alice.JID.String(), "to": "echo@bots.localhost", "id": "m1", "type": "chat"} {
			if got := el.SelectAttrValue(attr, ""); got != v {
				t.Errorf("stanza %s = %q, want %q", attr, got, v)
			}
		}
		if b := el.SelectElement("body"); b == nil || b.Text() != "hello & bye" {
			t.Errorf("stanza body missing or wrong: %s", raw)
		}
		if x := xmpp.Child(el, "urn:example:x", "x"); x == nil || x.Text() != "kept" {
			t.Errorf("stanza lost its extension: %s", raw)
		}
		for k, v := range map[string]string{"Authorization": "Bearer hook-token", "X-Parley-Test": "yes"} {
			if got := r.Header.Get(k); got != v {
				t.Errorf("configured header %s = %q, want %q", k, got, v)
			}
		}
	})

	t.Run("a message without a body has no body field", func(t *testing.T) {
		alice.Send("<message to='echo@bots.localhost' type='chat' id='m2'><active xmlns='http://jabber.org/protocol/chatstates'/></message>")
		r := hook.Next(t)
		var fields map[string]any
		if err := json.Unmarshal(r.Body, &fields); err != nil {
			t.Fatalf("not JSON: %v", err)
		}
		if b, ok := fields["body"]; ok {
			t.Errorf("body = %#v, want no body field", b)
		}
		if fields["id"] != "m2" {
			t.Errorf("id = %#v, want m2", fields["id"])
		}
	})

	t.Run("an iq is posted with kind iq, its id and its type", func(t *testing.T) {
		alice.Send("<iq to='echo@bots.localhost' type='get' id='q1'><query xmlns='%s'/></iq>", botNS)
		r := hook.Next(t)
		if r.JSONErr != nil || r.JSON.Kind != "iq" || r.JSON.ID != "q1" || r.JSON.Type != "get" || r.JSON.From != alice.JID.String() || r.JSON.Body != "" {
			t.Errorf("posted %s", r.Body)
		}
		// The webhook answered 204: the iq still gets its one answer.
		botExpectError(t, alice, xmpp.KindIQ, "echo@bots.localhost", "q1", xmpp.ServiceUnavailable)
	})

	t.Run("a presence is posted with kind presence when presence is forwarded", func(t *testing.T) {
		alice.Send("<presence to='echo@bots.localhost' id='p1'/>")
		r := hook.Next(t)
		if r.JSONErr != nil || r.JSON.Kind != "presence" || r.JSON.ID != "p1" || r.JSON.Type != "" || r.JSON.From != alice.JID.String() {
			t.Errorf("posted %s", r.Body)
		}
	})
}

func TestBotSignsRequestsWithStandardWebhooksHeaders(t *testing.T) {
	whsecKey := []byte("a 24-byte key for tests!")
	whsec := "whsec_" + base64.StdEncoding.EncodeToString(whsecKey)
	var mu sync.Mutex
	attempts := map[string]int{}
	hook := webhooktest.New(t, func(w http.ResponseWriter, r *webhooktest.Post) {
		mu.Lock()
		attempts[r.JSON.ID]++
		n := attempts[r.JSON.ID]
		mu.Unlock()
		if strings.HasPrefix(r.JSON.ID, "retry") && n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		webhooktest.JSON(w, http.StatusOK, webhook.Reply{Body: "ok " + r.JSON.ID})
	})

	s := hook.Start(t, botHost, func(h *conf.Host) {
		webhook.OptionsOf(h).Secret = "plain secret"
		webhook.OptionsOf(h).Retries = 2
	},
		parleytest.WithBot("whsec.localhost", hook.URL, func(h *conf.Host) { webhook.OptionsOf(h).Secret = whsec }),
		parleytest.WithBot("unsigned.localhost", hook.URL, nil),
	)
	botUsers(t, s, "alice")
	alice := botLogin(t, s, "alice", "phone")

	verify := func(t *testing.T, r *webhooktest.Post, key []byte) {
		t.Helper()
		id, ts, sig := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature")
		if id == "" || ts == "" || sig == "" {
			t.Fatalf("webhook-id %q, webhook-timestamp %q, webhook-signature %q: want all three", id, ts, sig)
		}
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			t.Fatalf("webhook-timestamp %q is not Unix seconds", ts)
		}
		if d := time.Since(time.Unix(sec, 0)); d < -5*time.Minute || d > 5*time.Minute {
			t.Errorf("webhook-timestamp %q is %v away from now, outside Standard Webhooks' tolerance", ts, d)
		}
		want := webhook.Sign(key, id, sec, r.Body)
		if !slices.Contains(strings.Fields(sig), want) {
			t.Errorf("webhook-signature %q, want %q", sig, want)
		}
	}

	for _, tt := range []struct {
		name, host string
		key        []byte
	}{
		{"a secret signs with its own bytes", botHost, []byte("plain secret")},
		{"a whsec_ secret signs with its base64-decoded key", "whsec.localhost", whsecKey},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := "sig-" + tt.host
			alice.Send("<message to='sig@%s' type='chat' id='%s'><body>sign me</body></message>", tt.host, id)
			r := hook.Next(t)
			verify(t, r, tt.key)
			if tt.host == "whsec.localhost" && slices.Contains(strings.Fields(r.Header.Get("webhook-signature")), webhook.Sign([]byte(whsec), r.Header.Get("webhook-id"), botUnix(r.Header.Get("webhook-timestamp")), r.Body)) {
				t.Errorf("signed with the whsec_ string itself, not its decoded key")
			}
			botExpectMessage(t, alice, "sig@"+tt.host, "ok "+id)
		})
	}

	t.Run("without a secret no webhook headers are sent", func(t *testing.T) {
		alice.Send("<message to='sig@unsigned.localhost' type='chat' id='nosig'><body>x</body></message>")
		r := hook.Next(t)
		for _, h := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
			if v := r.Header.Get(h); v != "" {
				t.Errorf("%s = %q without a secret", h, v)
			}
		}
		botExpectMessage(t, alice, "sig@unsigned.localhost", "ok nosig")
	})

	t.Run("a retry keeps the webhook-id and a new delivery gets a new one", func(t *testing.T) {
		alice.Send("<message to='sig@bots.localhost' type='chat' id='retry-1'><body>again</body></message>")
		first, second := hook.Next(t), hook.Next(t)
		if first.JSON.ID != "retry-1" || second.JSON.ID != "retry-1" {
			t.Fatalf("requests for %q and %q, want retry-1 twice", first.JSON.ID, second.JSON.ID)
		}
		verify(t, first, []byte("plain secret"))
		verify(t, second, []byte("plain secret"))
		if a, b := first.Header.Get("webhook-id"), second.Header.Get("webhook-id"); a != b {
			t.Errorf("webhook-id %q on the retry, %q the first time: want the same", b, a)
		}
		if string(first.Body) != string(second.Body) {
			t.Errorf("the retry posted another body:\n%s\n%s", first.Body, second.Body)
		}
		botExpectMessage(t, alice, "sig@bots.localhost", "ok retry-1")

		alice.Send("<message to='sig@bots.localhost' type='chat' id='fresh-1'><body>again</body></message>")
		third := hook.Next(t)
		verify(t, third, []byte("plain secret"))
		if third.Header.Get("webhook-id") == first.Header.Get("webhook-id") {
			t.Errorf("two deliveries share webhook-id %q", first.Header.Get("webhook-id"))
		}
		botExpectMessage(t, alice, "sig@bots.localhost", "ok fresh-1")
	})
}

// botUnix reads a webhook-timestamp, 0 when it is not a number.
func botUnix(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

func TestBotReplyForms(t *testing.T) {
	var alice, bob *parleytest.Conn // logged in once the server runs
	tests := []struct {
		name   string
		local  string // the bot the message goes to
		typ    string // the message's type attribute, none when empty
		answer func(w http.ResponseWriter, r *webhooktest.Post)
		check  func(t *testing.T) // nil: nothing arrives but the marker
	}{
		{
			name: "a body goes back to the sender's full JID from the bot JID, with the incoming chat type", local: "body", typ: "chat",
			answer: func(w http.ResponseWriter, r *webhooktest.Post) {
				webhooktest.JSON(w, 200, map[string]any{"body": "pong"})
			},
			check: func(t *testing.T) {
				st := botExpectMessage(t, alice, "body@bots.localhost", "pong")
				if st.To != alice.JID || st.Type != "chat" {
					t.Errorf("got %s, want to %s, type chat", alice.String(st.El), alice.JID)
				}
			},
		},
		{
			name: "a body keeps the incoming normal type", local: "normal", typ: "normal",
			answer: func(w http.ResponseWriter, r *webhooktest.Post) {
				webhooktest.JSON(w, 200, map[string]any{"body": "pong"})
			},
			check: func(t *testing.T) {
				if st := botExpectMessage(t, alice, "normal@bots.localhost", "pong"); st.Type != "normal" {
					t.Errorf("type %q, want normal", st.Type)
				}
			},
		},
		{
			name: "a message without a type (normal) is not answered as chat", local: "notype", typ: "",
			answer: func(w http.ResponseWriter, r *webhooktest.Post) {
				webhooktest.JSON(w, 200, map[string]any{"body": "pong"})
			},
			check: func(t *testing.T) {
				if st := botExpectMessage(t, alice, "notype@bots.localhost", "pong"); st.Type != "" && st.Type != "normal" {
					t.Errorf("type %q, want the incoming type: normal (or no type attribute)", st.Type)
				}
			},
		},
		{
			name: "an explicit type is kept", local: "headline", typ: "chat",
			answer: func(w http.ResponseWriter, r *webhooktest.Post) {
				webhooktest.JSON(w, 200, map[string]any{"type": "headline", "body": "news"})
			},
			check: func(t *testing.T) {
				if st := botExpectMessage(t, alice, "headline@bots.localhost", "news"); st.Type != "headline" {
					t.Errorf("type %q, want headline", st.Type)
				}
			},
		},
		{
			name: "an explicit to reaches another local user", local: "to", typ: "chat",
			answer: func(w http.ResponseWriter, r *webhooktest.Post) {
				webhooktest.JSON(w, 200, map[string]any{"to": "bob@localhost", "body": "for bob"})
			},
			check: func(t *testing.T) { botExpectMessage(t, bob, "to@bots.localhost", "for bob") },
		},
		{
			name: "an explicit from of another localpart and resource of the bot domain is allowed", local: "from", typ: "chat",
			answer: func(w http.ResponseWriter, r *webhooktest.Post) {
				webhooktest.JSON(w, 200, map[string]any{"from": "other@bots.localhost/desk", "body": "from other"})
			},
			check: func(t *testing.T) { botExpectMessage(t, alice, "other@bots.localhost/desk", "from other") },
		},
		{
			name: "the bare bot domain may speak", local: "domain", typ: "chat",
			answer: func(w http.ResponseWriter, r *webhooktest.Post) {
				webhooktest.JSON(w, 200, map[string]any{"from": "bots.localhost", "body": "from the domain"})
			},
			check: func(t *testing.T) { botExpectMessage(t, alice, "bots.localhost", "from the domain") },
		},
		{
			name: "kind presence sends a presence", local: "presence", typ: "chat",
			answer: func(w http.ResponseWriter, r *webhooktest.Post) {
				webhooktest.JSON(w, 200, map[string]any{"kind": "presence"})
			},
			check: func(t *testing.T) {
				st := botNext(t, alice)
				if st.Kind != xmpp.KindPresence || st.Type != "" || st.From.String() != "presence@bots.localhost" || st.To != alice.JID {
					t.Errorf("got %s, want an available presence from presence@bots.localhost", alice.String(st.El))
				}
			},
		},
		{
			name: "a stanza field is routed as given", local: "stanza", typ: "chat",
			answer: func(w http.ResponseWriter, r *webhooktest.Post) {
				webhooktest.JSON(w, 200, map[string]any{"stanza": "<message to='bob@localhost/desk' from='raw@bots.localhost/x' type='chat' id='raw1'><body>raw</body><x xmlns='urn:example:x'>kept</x></message>"})
			},
			check: func(t *testing.T) {
				st := botExpectMessage(t, bob, "raw@bots.localhost/x", "raw")
				if st.ID != "raw1" || st.To.String() != "bob@localhost/desk" || xmpp.Child(st.El, "urn:example:x", "x") == nil {
					t.Errorf("got %s, want the stanza as given", bob.String(st.El))
				}
			},
		},
		{
			name: "a stanza field without addresses answers the sender from the bot", local: "rawnoaddr", typ: "chat",
			answer: func(w http.ResponseWriter, r *webhooktest.Post) {
				webhooktest.JSON(w, 200, map[string]any{"stanza": "<message type='chat'><body>no addresses</body></message>"})
			},
			check: func(t *testing.T) {
				if st := botExpectMessage(t, alice, "rawnoaddr@bots.localhost", "no addresses"); st.To != alice.JID {
					t.Errorf("to %s, want %s", st.To, alice.JID)
				}
			},
		},
		{
			name: "an array sends each reply, in order", local: "array", typ: "chat",
			answer: func(w http.ResponseWriter, r *webhooktest.Post) {
				webhooktest.JSON(w, 200, []map[string]any{{"body": "one"}, {"body": "two"}})
			},
			check: func(t *testing.T) {
				botExpectMessage(t, alice, "array@bots.localhost", "one")
				botExpectMessage(t, alice, "array@bots.localhost", "two")
			},
		},
		{
			name: "204 sends nothing", local: "nocontent", typ: "chat",
			answer: func(w http.ResponseWriter, r *webhooktest.Post) { w.WriteHeader(http.StatusNoContent) },
		},
		{
			name: "200 with an empty body sends nothing", local: "empty", typ: "chat",
			answer: func(w http.ResponseWriter, r *webhooktest.Post) { webhooktest.Raw(w, 200, "application/json", "") },
		},
		{
			name: "application/json with a charset is JSON", local: "charset", typ: "chat",
			answer: func(w http.ResponseWriter, r *webhooktest.Post) {
				webhooktest.Raw(w, 200, "application/json; charset=utf-8", `{"body":"charset"}`)
			},
			check: func(t *testing.T) { botExpectMessage(t, alice, "charset@bots.localhost", "charset") },
		},
		{
			name: "a +json media type is JSON", local: "vnd", typ: "chat",
			answer: func(w http.ResponseWriter, r *webhooktest.Post) {
				webhooktest.Raw(w, 200, "application/vnd.x+json", `{"body":"vendor"}`)
			},
			check: func(t *testing.T) { botExpectMessage(t, alice, "vnd@bots.localhost", "vendor") },
		},
		{
			name: "201 is a success", local: "created", typ: "chat",
			answer: func(w http.ResponseWriter, r *webhooktest.Post) {
				webhooktest.JSON(w, 201, map[string]any{"body": "201"})
			},
			check: func(t *testing.T) { botExpectMessage(t, alice, "created@bots.localhost", "201") },
		},
		{
			name: "202 is a success", local: "accepted", typ: "chat",
			answer: func(w http.ResponseWriter, r *webhooktest.Post) {
				webhooktest.JSON(w, 202, map[string]any{"body": "202"})
			},
			check: func(t *testing.T) { botExpectMessage(t, alice, "accepted@bots.localhost", "202") },
		},
	}
	answers := map[string]func(http.ResponseWriter, *webhooktest.Post){}
	for _, tt := range tests {
		answers[tt.local] = tt.answer
	}
	hook := webhooktest.New(t, func(w http.ResponseWriter, r *webhooktest.Post) {
		if botMarkerReply(w, r) {
			return
		}
		if a := answers[r.Local]; a != nil {
			a(w, r)
			return
		}
		w.WriteHeader(http.StatusNotFound)
	})

	s := hook.Start(t, botHost, nil)
	botUsers(t, s, "alice", "bob")
	alice = botLogin(t, s, "alice", "phone")
	bob = botLogin(t, s, "bob", "desk")

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ := ""
			if tt.typ != "" {
				typ = " type='" + tt.typ + "'"
			}
			bot := tt.local + "@bots.localhost"
			alice.Send("<message to='%s'%s id='%s-1'><body>hi</body></message>", bot, typ, tt.local)
			if tt.check != nil {
				tt.check(t)
			}
			botMarker(t, alice, bot, alice)
		})
	}
}

func TestBotRefusesRepliesFromOutsideItsDomain(t *testing.T) {
	tests := []struct {
		name, local string
		reply       any
	}{
		{"a from of a local user", "user", map[string]any{"from": "alice@localhost", "to": "bob@localhost/desk", "body": "spoof"}},
		{"a from of a local user's full JID", "userfull", map[string]any{"from": "alice@localhost/phone", "to": "bob@localhost/desk", "body": "spoof"}},
		{"a from of a foreign domain", "evil", map[string]any{"from": "bots.evil", "to": "bob@localhost/desk", "body": "spoof"}},
		{"a from of a lookalike domain", "lookalike", map[string]any{"from": "x@bots.localhost.evil", "to": "bob@localhost/desk", "body": "spoof"}},
		{"a from of another bot domain of this server", "otherbot", map[string]any{"from": "x@other.localhost", "to": "bob@localhost/desk", "body": "spoof"}},
		{"a from of the local domain", "server", map[string]any{"from": "localhost", "to": "bob@localhost/desk", "body": "spoof"}},
		{"a stanza field whose from is a local user", "stanza", map[string]any{"stanza": "<message from='alice@localhost/phone' to='bob@localhost/desk' type='chat'><body>spoof</body></message>"}},
		{"a stanza field whose from is a foreign domain", "stanzaevil", map[string]any{"stanza": "<message from='bots.evil' to='bob@localhost/desk' type='chat'><body>spoof</body></message>"}},
	}
	replies := map[string]any{}
	for _, tt := range tests {
		replies[tt.local] = tt.reply
	}
	hook := webhooktest.New(t, func(w http.ResponseWriter, r *webhooktest.Post) {
		if botMarkerReply(w, r) {
			return
		}
		webhooktest.JSON(w, 200, replies[r.Local])
	})

	s := hook.Start(t, botHost, nil, parleytest.WithBot("other.localhost", hook.URL, nil))
	botUsers(t, s, "alice", "bob")
	alice := botLogin(t, s, "alice", "phone")
	bob := botLogin(t, s, "bob", "desk")
	m := botComponent(t, s, botHost).Metrics()

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bot := tt.local + "@bots.localhost"
			before := m.Failures("refused_from")
			alice.Send("<message to='%s' type='chat' id='spoof-%s'><body>speak as someone else</body></message>", bot, tt.local)
			botExpectError(t, alice, xmpp.KindMessage, bot, "spoof-"+tt.local, xmpp.InternalServerError)
			if d := m.Failures("refused_from") - before; d != 1 {
				t.Errorf("Failures(refused_from) went up by %d for one refused reply, want 1", d)
			}
			// Bob, the would-be recipient, gets the marker first: the
			// spoofed message never reached him.
			botMarker(t, alice, bot, bob)
			botMarker(t, alice, bot, alice)
		})
	}
}

func TestBotStripsServerOwnedElementsFromStanzaReplies(t *testing.T) {
	hook := webhooktest.New(t, func(w http.ResponseWriter, r *webhooktest.Post) {
		if botMarkerReply(w, r) {
			return
		}
		webhooktest.JSON(w, 200, map[string]any{"stanza": "<message to='bob@localhost/desk' type='chat'><body>clean me</body>" +
			"<stanza-id xmlns='urn:xmpp:sid:0' id='forged' by='bob@localhost'/>" +
			"<occupant-id xmlns='urn:xmpp:occupant-id:0' id='forged'/>" +
			"<delay xmlns='urn:xmpp:delay' from='localhost' stamp='2002-09-10T23:08:25Z'/>" +
			"<x xmlns='urn:example:x'>kept</x></message>"})

	})

	s := hook.Start(t, botHost, nil)
	botUsers(t, s, "alice", "bob")
	alice := botLogin(t, s, "alice", "phone")
	bob := botLogin(t, s, "bob", "desk")

	alice.Send("<message to='strip@bots.localhost' type='chat' id='s1'><body>hi</body></message>")
	st := botExpectMessage(t, bob, "strip@bots.localhost", "clean me")
	for _, tt := range []struct{ ns, local string }{
		{"urn:xmpp:sid:0", "stanza-id"},
		{"urn:xmpp:occupant-id:0", "occupant-id"},
		{xmpp.NSDelay, "delay"},
	} {
		// The server may add its own (the archive's stanza-id): the
		// bot's, with their forged id and stamp, must be gone.
		for _, c := range st.El.ChildElements() {
			if c.Tag == tt.local && xmpp.NS(c) == tt.ns && (c.SelectAttrValue("id", "") == "forged" || strings.HasPrefix(c.SelectAttrValue("stamp", ""), "2002")) {
				t.Errorf("<%s xmlns='%s'/> was not stripped: %s", tt.local, tt.ns, bob.String(st.El))
			}
		}
	}
	if xmpp.Child(st.El, "urn:example:x", "x") == nil {
		t.Errorf("the bot's own extension was stripped: %s", bob.String(st.El))
	}
	botMarker(t, alice, "strip@bots.localhost", alice)
}

func TestBotFailuresAnswerTheSender(t *testing.T) {
	status := func(code int, header ...string) func(http.ResponseWriter, *webhooktest.Post) {
		return func(w http.ResponseWriter, r *webhooktest.Post) {
			for i := 0; i+1 < len(header); i += 2 {
				w.Header().Set(header[i], header[i+1])
			}
			w.WriteHeader(code)
		}
	}
	var hook *webhooktest.Hook
	tests := []struct {
		name   string
		host   string // botHost when empty
		local  string
		answer func(http.ResponseWriter, *webhooktest.Post)
		// typ and want are the error the sender gets: for a status, the
		// seed's (Prosody's mod_component_http) type and condition.
		typ  xmpp.ErrorType
		want xmpp.StanzaCondition
		// attempts is how many requests one stanza makes; 0: not counted.
		attempts int
	}{
		{name: "an unreachable webhook after the retries is cancel/remote-server-timeout", host: "down.localhost", local: "down", typ: xmpp.ErrCancel, want: xmpp.RemoteServerTimeout},
		{name: "a webhook hanging past the timeout is wait/remote-server-timeout", host: "hang.localhost", local: "hang", typ: xmpp.ErrWait, want: xmpp.RemoteServerTimeout, attempts: 1,
			answer: func(w http.ResponseWriter, r *webhooktest.Post) {
				hook.Hold(r, nil)
				w.WriteHeader(http.StatusNoContent)
			}},
		{name: "300 is cancel/service-unavailable", local: "e300", answer: status(300), typ: xmpp.ErrCancel, want: xmpp.ServiceUnavailable, attempts: 1},
		{name: "400 is modify/bad-request", local: "e400", answer: status(400), typ: xmpp.ErrModify, want: xmpp.BadRequest, attempts: 1},
		{name: "401 is auth/not-authorized", local: "e401", answer: status(401), typ: xmpp.ErrAuth, want: xmpp.NotAuthorized, attempts: 1},
		{name: "402 is auth/forbidden", local: "e402", answer: status(402), typ: xmpp.ErrAuth, want: xmpp.Forbidden, attempts: 1},
		{name: "403 is auth/forbidden", local: "e403", answer: status(403), typ: xmpp.ErrAuth, want: xmpp.Forbidden, attempts: 1},
		{name: "404 is cancel/item-not-found", local: "e404", answer: status(404), typ: xmpp.ErrCancel, want: xmpp.ItemNotFound, attempts: 1},
		{name: "405 is cancel/service-unavailable", local: "e405", answer: status(405), typ: xmpp.ErrCancel, want: xmpp.ServiceUnavailable, attempts: 1},
		{name: "410 is cancel/gone", local: "e410", answer: status(410), typ: xmpp.ErrCancel, want: xmpp.Gone, attempts: 1},
		{name: "418 is cancel/service-unavailable", local: "e418", answer: status(418), typ: xmpp.ErrCancel, want: xmpp.ServiceUnavailable, attempts: 1},
		{name: "422 is cancel/service-unavailable", local: "e422", answer: status(422), typ: xmpp.ErrCancel, want: xmpp.ServiceUnavailable, attempts: 1},
		{name: "429 after the retries is cancel/service-unavailable", local: "e429", answer: status(429, "Retry-After", "0"), typ: xmpp.ErrCancel, want: xmpp.ServiceUnavailable, attempts: 3},
		{name: "500 is cancel/internal-server-error", local: "e500", answer: status(500), typ: xmpp.ErrCancel, want: xmpp.InternalServerError, attempts: 1},
		{name: "501 is cancel/feature-not-implemented", local: "e501", answer: status(501), typ: xmpp.ErrCancel, want: xmpp.FeatureNotImplemented, attempts: 1},
		{name: "502 after the retries is cancel/remote-server-timeout", local: "e502", answer: status(502), typ: xmpp.ErrCancel, want: xmpp.RemoteServerTimeout, attempts: 3},
		{name: "503 after the retries is wait/remote-server-timeout", local: "e503", answer: status(503), typ: xmpp.ErrWait, want: xmpp.RemoteServerTimeout, attempts: 3},
		{name: "504 after the retries is wait/remote-server-timeout", local: "e504", answer: status(504), typ: xmpp.ErrWait, want: xmpp.RemoteServerTimeout, attempts: 3},
		{name: "505 is cancel/service-unavailable", local: "e505", answer: status(505), typ: xmpp.ErrCancel, want: xmpp.ServiceUnavailable, attempts: 1},
		{name: "malformed JSON is internal-server-error", local: "badjson", typ: xmpp.ErrCancel, want: xmpp.InternalServerError, attempts: 1,
			answer: func(w http.ResponseWriter, r *webhooktest.Post) {
				webhooktest.Raw(w, 200, "application/json", `{"body": "unfinished`)
			}},
		{name: "a text/plain answer is internal-server-error", local: "text", typ: xmpp.ErrCancel, want: xmpp.InternalServerError, attempts: 1,
			answer: func(w http.ResponseWriter, r *webhooktest.Post) { webhooktest.Raw(w, 200, "text/plain", "hello") }},
		{name: "bad XML in stanza is internal-server-error", local: "badxml", typ: xmpp.ErrCancel, want: xmpp.InternalServerError, attempts: 1,
			answer: func(w http.ResponseWriter, r *webhooktest.Post) {
				webhooktest.JSON(w, 200, map[string]any{"stanza": "<message><body>unclosed</message>"})
			}},
		{name: "a stanza field that is not a stanza is internal-server-error", local: "notstanza", typ: xmpp.ErrCancel, want: xmpp.InternalServerError, attempts: 1,
			answer: func(w http.ResponseWriter, r *webhooktest.Post) {
				webhooktest.JSON(w, 200, map[string]any{"stanza": "<foo xmlns='urn:foo'/>"})
			}},
		{name: "an answer over 1 MiB is internal-server-error", local: "huge", typ: xmpp.ErrCancel, want: xmpp.InternalServerError, attempts: 1,
			answer: func(w http.ResponseWriter, r *webhooktest.Post) {
				webhooktest.Raw(w, 200, "application/json", `{"body":"`+strings.Repeat("a", 1<<20)+`"}`)
			}},
		{name: "JSON that is neither an object nor an array is internal-server-error", local: "scalar", typ: xmpp.ErrCancel, want: xmpp.InternalServerError, attempts: 1,
			answer: func(w http.ResponseWriter, r *webhooktest.Post) {
				webhooktest.Raw(w, 200, "application/json", `"just a string"`)
			}},
	}
	cases := map[string]func(http.ResponseWriter, *webhooktest.Post){}
	for _, tt := range tests {
		cases[tt.local] = tt.answer
	}
	var mu sync.Mutex
	attempts := map[string]int{} // by bot localpart
	hook = webhooktest.New(t, func(w http.ResponseWriter, r *webhooktest.Post) {
		if botMarkerReply(w, r) {
			return
		}
		mu.Lock()
		attempts[r.Local]++
		n := attempts[r.Local]
		mu.Unlock()
		name, _, _ := strings.Cut(r.Local, "-")
		if name == "flaky" {
			if n == 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			if r.JSON.Kind == "iq" {
				webhooktest.JSON(w, 200, map[string]any{"kind": "iq", "type": "result"})
			} else {
				webhooktest.JSON(w, 200, map[string]any{"body": "recovered"})
			}
			return
		}
		if a := cases[name]; a != nil {
			a(w, r)
			return
		}
		w.WriteHeader(http.StatusTeapot)
	})

	closed := httptest.NewServer(http.NotFoundHandler())
	downURL := closed.URL
	closed.Close()
	edit := func(h *conf.Host) {
		webhook.OptionsOf(h).PostStanzas = []string{"message", "iq"}
		webhook.OptionsOf(h).Retries = 2
		// Far above what any answer here takes, even on a loaded
		// machine: only hang.localhost is meant to time out.
		webhook.OptionsOf(h).Timeout = conf.Duration{Duration: 5 * time.Second}
	}
	short := func(h *conf.Host) {
		edit(h)
		webhook.OptionsOf(h).Timeout = conf.Duration{Duration: 300 * time.Millisecond}
	}
	s := hook.Start(t, botHost, edit, parleytest.WithBot("down.localhost", downURL, edit), parleytest.WithBot("hang.localhost", hook.URL, short))
	botUsers(t, s, "alice")

	send := map[xmpp.Kind]string{
		xmpp.KindMessage: "<message to='%s' type='chat' id='%s'><body>hi</body></message>",
		xmpp.KindIQ:      "<iq to='%s' type='get' id='%s'><query xmlns='" + botNS + "'/></iq>",
	}
	t.Run("each failure", func(t *testing.T) {
		for _, tt := range tests {
			for _, kind := range []xmpp.Kind{xmpp.KindMessage, xmpp.KindIQ} {
				t.Run(tt.name+" for a "+kind.String(), func(t *testing.T) {
					t.Parallel()
					host := tt.host
					if host == "" {
						host = botHost
					}
					local := tt.local + "-" + kind.String()
					bot := local + "@" + host
					alice := s.Login("alice@localhost", "pw-alice", local)
					id := "fail-" + local
					alice.Send(send[kind], bot, id)
					st := botExpectError(t, alice, kind, bot, id, tt.want)
					if e := xmpp.ParseStanzaError(st.El); e.Type != tt.typ {
						t.Errorf("error type %q, want %q: %s", e.Type, tt.typ, alice.String(st.El))
					}
					// Exactly one answer: the next stanza answers the marker.
					botMarker(t, alice, bot, alice)
					if tt.attempts > 0 {
						mu.Lock()
						n := attempts[local]
						mu.Unlock()
						if n != tt.attempts {
							t.Errorf("the webhook got %d requests, want %d", n, tt.attempts)
						}
					}
				})
			}
		}
	})

	t.Run("an unreachable webhook is retried and counted as connect", func(t *testing.T) {
		m := botComponent(t, s, "down.localhost").Metrics()
		// Two stanzas (a message and an iq) plus their markers failed.
		if m.Failures("connect") != 4 || m.Requests() != 12 || m.Retries() != 8 {
			t.Errorf("Failures(connect) %d, Requests() %d, Retries() %d; want 4, 12 and 8 (retries+1 attempts each)",
				m.Failures("connect"), m.Requests(), m.Retries())
		}
	})

	t.Run("503 then success is retried and the sender gets the reply", func(t *testing.T) {
		alice := s.Login("alice@localhost", "pw-alice", "flaky")
		alice.Send(send[xmpp.KindMessage], "flaky-message@bots.localhost", "flaky1")
		botExpectMessage(t, alice, "flaky-message@bots.localhost", "recovered")
		alice.Send(send[xmpp.KindIQ], "flaky-iq@bots.localhost", "flaky2")
		if st := botNext(t, alice); st.Kind != xmpp.KindIQ || st.Type != "result" || st.ID != "flaky2" {
			t.Fatalf("got %s, want the iq result", alice.String(st.El))
		}
		botMarker(t, alice, "flaky-iq@bots.localhost", alice)
		mu.Lock()
		defer mu.Unlock()
		if attempts["flaky-message"] != 2 || attempts["flaky-iq"] != 2 {
			t.Errorf("attempts %d and %d, want 2 each", attempts["flaky-message"], attempts["flaky-iq"])
		}
	})
}

func TestBotForwardedIQsGetExactlyOneAnswer(t *testing.T) {
	hook := webhooktest.New(t, func(w http.ResponseWriter, r *webhooktest.Post) {
		if botMarkerReply(w, r) {
			return
		}
		switch r.Local {
		case "result":
			webhooktest.JSON(w, 200, map[string]any{"kind": "iq", "type": "result"})
		case "body":
			webhooktest.JSON(w, 200, map[string]any{"body": "an answer in words"})
		case "nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "two":
			webhooktest.JSON(w, 200, []map[string]any{{"kind": "iq", "type": "result"}, {"kind": "iq", "type": "result"}})
		case "resultanderror":
			webhooktest.JSON(w, 200, []map[string]any{{"kind": "iq", "type": "result"}, {"kind": "iq", "type": "error", "body": "changed my mind"}})
		case "stanza":
			webhooktest.JSON(w, 200, map[string]any{"stanza": "<iq type='result' id='" + r.JSON.ID + "'><query xmlns='" + botNS + "'>raw</query></iq>"})
		case "message":
			webhooktest.JSON(w, 200, map[string]any{"kind": "message", "body": "not an iq"})
		case "emptyarray":
			webhooktest.JSON(w, 200, []any{})
		default:
			w.WriteHeader(http.StatusTeapot)
		}
	})

	s := hook.Start(t, botHost, func(h *conf.Host) { webhook.OptionsOf(h).PostStanzas = []string{"message", "iq"} })
	botUsers(t, s, "alice")
	alice := botLogin(t, s, "alice", "phone")

	iq := func(local, id string) string {
		bot := local + "@bots.localhost"
		alice.Send("<iq to='%s' type='get' id='%s'><query xmlns='%s'/></iq>", bot, id, botNS)
		return bot
	}
	result := func(t *testing.T, bot, id string) *xmpp.Stanza {
		t.Helper()
		st := botNext(t, alice)
		if st.Kind != xmpp.KindIQ || st.Type != "result" || st.ID != id || st.From.String() != bot || st.To != alice.JID {
			t.Fatalf("got %s, want the result of %s from %s", alice.String(st.El), id, bot)
		}
		return st
	}

	tests := []struct {
		name, local, id string
		// wantErr is the condition of the iq error the sender gets;
		// "" for a result.
		wantErr xmpp.StanzaCondition
		// wantQuery: the result carries the webhook's query payload.
		wantQuery bool
	}{
		{name: "a result from the webhook reaches the sender with the iq's id", local: "result", id: "r1"},
		{name: "a body-only answer to an iq is its one result", local: "body", id: "r2"},
		{name: "a stanza field result is the answer", local: "stanza", id: "r3", wantQuery: true},
		{name: "204 to an iq is service-unavailable", local: "nocontent", id: "r4", wantErr: xmpp.ServiceUnavailable},
		{name: "an empty array to an iq is service-unavailable", local: "emptyarray", id: "r5", wantErr: xmpp.ServiceUnavailable},
		{name: "two results from the webhook reach the sender once", local: "two", id: "r6"},
		{name: "a result then an error from the webhook reach the sender once", local: "resultanderror", id: "r7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bot := iq(tt.local, tt.id)
			if tt.wantErr != "" {
				botExpectError(t, alice, xmpp.KindIQ, bot, tt.id, tt.wantErr)
			} else if st := result(t, bot, tt.id); tt.wantQuery && xmpp.Child(st.El, botNS, "query") == nil {
				t.Errorf("the payload is lost: %s", alice.String(st.El))
			}
			// Nothing more comes before the marker: exactly one answer.
			botMarker(t, alice, bot, alice)
		})
	}
	t.Run("a message answer to an iq still ends the iq with an error", func(t *testing.T) {
		bot := iq("message", "r8")
		var sawMessage, sawError bool
		for range 2 {
			st := botNext(t, alice)
			switch {
			case st.Kind == xmpp.KindMessage && parleytest.Body(st) == "not an iq":
				sawMessage = true
			case st.Kind == xmpp.KindIQ && st.Type == "error" && st.ID == "r8" && parleytest.Condition(st) == xmpp.ServiceUnavailable:
				sawError = true
			default:
				t.Fatalf("got %s", alice.String(st.El))
			}
		}
		if !sawMessage || !sawError {
			t.Errorf("message %v, iq error %v: want both", sawMessage, sawError)
		}
		botMarker(t, alice, bot, alice)
	})
}

func TestBotIQsTheServerAnswersForTheBot(t *testing.T) {
	hook := webhooktest.New(t, nil)
	s := hook.Start(t, botHost, nil) // post_stanzas: message only
	botUsers(t, s, "alice")
	alice := botLogin(t, s, "alice", "phone")

	tests := []struct {
		name, to, payload string
		typ               string
		check             func(t *testing.T, st *xmpp.Stanza)
	}{
		{"disco#info of a bot JID is a client/bot identity", "helper@bots.localhost", "<query xmlns='http://jabber.org/protocol/disco#info'/>", "get",
			func(t *testing.T, st *xmpp.Stanza) {
				q := xmpp.Child(st.El, xmpp.NSDiscoInfo, "query")
				if q == nil {
					t.Fatalf("no disco#info query in %s", alice.String(st.El))
				}
				id := q.SelectElement("identity")
				if id == nil || id.SelectAttrValue("category", "") != "client" || id.SelectAttrValue("type", "") != "bot" {
					t.Errorf("identity in %s, want category client, type bot", alice.String(st.El))
				}
			}},
		{"disco#info of a bot's full JID is a client/bot identity", "helper@bots.localhost/res", "<query xmlns='http://jabber.org/protocol/disco#info'/>", "get",
			func(t *testing.T, st *xmpp.Stanza) {
				id := st.El.FindElement("query/identity")
				if id == nil || id.SelectAttrValue("category", "") != "client" || id.SelectAttrValue("type", "") != "bot" {
					t.Errorf("identity in %s, want category client, type bot", alice.String(st.El))
				}
			}},
		{"disco#info of the bot domain answers", "bots.localhost", "<query xmlns='http://jabber.org/protocol/disco#info'/>", "get",
			func(t *testing.T, st *xmpp.Stanza) {
				if st.El.FindElement("query/identity") == nil {
					t.Errorf("no identity in %s", alice.String(st.El))
				}
			}},
		{"disco#items answers", "helper@bots.localhost", "<query xmlns='http://jabber.org/protocol/disco#items'/>", "get", nil},
		{"ping answers", "helper@bots.localhost", "<ping xmlns='urn:xmpp:ping'/>", "get", nil},
		{"version answers with a name", "helper@bots.localhost", "<query xmlns='jabber:iq:version'/>", "get",
			func(t *testing.T, st *xmpp.Stanza) {
				if n := st.El.FindElement("query/name"); n == nil || n.Text() == "" {
					t.Errorf("no name in %s", alice.String(st.El))
				}
			}},
		{"an unknown get is service-unavailable", "helper@bots.localhost", "<query xmlns='urn:example:unknown'/>", "get", nil},
		{"an unknown set is service-unavailable", "helper@bots.localhost", "<query xmlns='urn:example:unknown'/>", "set", nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("own-%d", i)
			alice.Send("<iq to='%s' type='%s' id='%s'>%s</iq>", tt.to, tt.typ, id, tt.payload)
			if strings.HasPrefix(tt.name, "an unknown") {
				botExpectError(t, alice, xmpp.KindIQ, tt.to, id, xmpp.ServiceUnavailable)
			} else {
				st := botNext(t, alice)
				if st.Kind != xmpp.KindIQ || st.Type != "result" || st.ID != id || st.From.String() != tt.to {
					t.Fatalf("got %s, want a result from %s", alice.String(st.El), tt.to)
				}
				if tt.check != nil {
					tt.check(t, st)
				}
			}
			if got := alice.UntilSync(); len(got) > 0 {
				t.Errorf("then %d more stanzas, first %s", len(got), alice.String(got[0].El))
			}
		})
	}
	t.Run("the webhook is never called for them", func(t *testing.T) {
		if n, r := hook.Calls(), botComponent(t, s, botHost).Metrics().Requests(); n != 0 || r != 0 {
			t.Errorf("the webhook got %d requests (Requests() %d), want 0", n, r)
		}
	})
}

func TestBotAnswersPresenceForItself(t *testing.T) {
	hook := webhooktest.New(t, nil)
	s := hook.Start(t, botHost, nil) // presence is not forwarded
	botUsers(t, s, "alice")
	alice := botLogin(t, s, "alice", "phone")

	describe := func(got []*xmpp.Stanza) string {
		var b strings.Builder
		for _, st := range got {
			b.WriteString(alice.String(st.El))
			b.WriteString("\n")
		}
		return b.String()
	}
	// presences returns the presences of got of type typ from from, in
	// the order they came.
	presences := func(got []*xmpp.Stanza, typ, from string) []int {
		var at []int
		for i, st := range got {
			if st.Kind == xmpp.KindPresence && st.Type == typ && st.From.String() == from {
				at = append(at, i)
			}
		}
		return at
	}

	for _, bot := range []string{"helper@bots.localhost", "bots.localhost"} {
		t.Run("a subscribe to "+bot+" is answered subscribed then available", func(t *testing.T) {
			alice.Send("<presence to='%s' type='subscribe'/>", bot)
			got := alice.UntilSync()
			av, sub := presences(got, "", bot), presences(got, "subscribed", bot)
			if len(av) != 1 {
				t.Fatalf("got\n%swant one available presence from %s", describe(got), bot)
			}
			if len(sub) != 1 || sub[0] > av[0] {
				t.Errorf("got\n%swant subscribed before available", describe(got))
			}
			if len(presences(got, "unavailable", bot)) > 0 {
				t.Errorf("got\n%sno unavailable expected", describe(got))
			}
		})
		t.Run("once subscribed, a new session's initial presence probes "+bot+" and it answers available", func(t *testing.T) {
			// Clients do not send probes (RFC 6121 §4.3): the server does,
			// for the contacts the user is subscribed to.
			second := s.Login("alice@localhost", "pw-alice", "probe-"+bot)
			second.Send("<presence/>")
			got := second.UntilSync()
			if av := presences(got, "", bot); len(av) != 1 || got[av[0]].To.Bare() != second.JID.Bare() {
				t.Errorf("got\n%swant one available presence from %s", describe(got), bot)
			}
			second.Close()
			// The second session's unavailable presence reaches alice
			// when the server has ended it: wait for it, or it shows up
			// in the next subtest.
			for {
				st := alice.NextStanza()
				if st.Kind == xmpp.KindPresence && st.Type == "unavailable" && st.From == second.JID {
					break
				}
			}
		})
		t.Run("an unsubscribe from "+bot+" shows it unavailable", func(t *testing.T) {
			// RFC 6121 §3.3.3: the user no longer gets the bot's presence,
			// so the bot is shown gone. Its unsubscribed answer changes
			// nothing on alice's side (A.3.4: None), so she does not get it.
			alice.Send("<presence to='%s' type='unsubscribe'/>", bot)
			got := alice.UntilSync()
			if len(presences(got, "unavailable", bot)) != 1 || len(presences(got, "", bot)) > 0 {
				t.Errorf("got\n%swant one unavailable from %s", describe(got), bot)
			}
		})
		t.Run("an available presence to "+bot+" needs no answer", func(t *testing.T) {
			alice.Send("<presence to='%s'/>", bot)
			if got := alice.UntilSync(); len(got) > 0 {
				t.Errorf("got\n%swant nothing", describe(got))
			}
		})
	}
	t.Run("presence is never posted when it is not forwarded", func(t *testing.T) {
		if n := hook.Calls(); n != 0 {
			t.Errorf("the webhook got %d requests, want 0", n)
		}
	})
}

// TestBotComponentAnswersSubscriptions checks what the component itself
// routes for presence, without the local host (which drops subscription
// presences to bare JIDs until the IM core exists).
func TestBotComponentAnswersSubscriptions(t *testing.T) {
	comp, rec := webhooktest.NewComponent(t, webhook.Config{Domain: "bots.example", PostURL: "http://127.0.0.1:1/", PostMessages: true})
	const alice = "alice@example/phone"
	type out struct{ typ, from, to string }
	for _, bot := range []string{"helper@bots.example", "helper@bots.example/res", "bots.example"} {
		bare := strings.Split(bot, "/")[0]
		for _, tt := range []struct {
			typ  string
			want []out
		}{
			{"probe", []out{{"", bare, alice}}},
			{"subscribe", []out{{"subscribed", bare, "alice@example"}, {"", bare, alice}}},
			{"unsubscribe", []out{{"unsubscribed", bare, "alice@example"}}},
			{"subscribed", nil},
			{"unsubscribed", nil},
			{"unavailable", nil},
			{"", nil},
		} {
			t.Run(fmt.Sprintf("%s to %s", cmp.Or(tt.typ, "available"), bot), func(t *testing.T) {
				el := etree.NewElement("presence")
				if tt.typ != "" {
					el.CreateAttr("type", tt.typ)
				}
				el.CreateAttr("from", alice)
				el.CreateAttr("to", bot)
				st, err := xmpp.NewStanza(el)
				if err != nil {
					t.Fatal(err)
				}
				comp.HandleStanza(st)
				var got []out
				for _, r := range rec.Take() {
					got = append(got, out{r.Type, r.From.String(), r.To.String()})
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("routed %v, want %v", got, tt.want)
				}
			})
		}
	}
}

func TestBotNeverPostsErrors(t *testing.T) {
	hook := webhooktest.New(t, func(w http.ResponseWriter, r *webhooktest.Post) {
		if !botMarkerReply(w, r) {
			w.WriteHeader(http.StatusNoContent)
		}
	})

	s := hook.Start(t, botHost, func(h *conf.Host) { webhook.OptionsOf(h).PostStanzas = []string{"message", "presence", "iq"} })
	botUsers(t, s, "alice")
	alice := botLogin(t, s, "alice", "phone")
	const cond = "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
	alice.Send("<message to='loop@bots.localhost' type='error' id='e1'>%s</message>", cond)
	alice.Send("<presence to='loop@bots.localhost' type='error' id='e2'>%s</presence>", cond)
	alice.Send("<iq to='loop@bots.localhost' type='error' id='e3'>%s</iq>", cond)
	botMarker(t, alice, "loop@bots.localhost", alice)
	if r := hook.Next(t); r.JSON.Body != "marker" {
		t.Errorf("the webhook was posted %s, want only the marker", r.Body)
	}
	if n := botComponent(t, s, botHost).Metrics().Requests(); n != 1 {
		t.Errorf("Requests() %d, want 1 (the marker)", n)
	}
}

// botEcho answers a message with its body after a random delay of up to
// 3ms.
func botEcho(w http.ResponseWriter, r *webhooktest.Post) {
	d := time.Duration(rand.IntN(3000)) * time.Microsecond
	select {
	case <-time.After(d):
	case <-r.Context().Done():
		return
	}
	webhooktest.JSON(w, http.StatusOK, webhook.Reply{Body: r.JSON.Body})
}

func TestBotRepliesKeepTheConversationOrder(t *testing.T) {
	hook := webhooktest.New(t, botEcho)
	s := hook.Start(t, botHost, func(h *conf.Host) { webhook.OptionsOf(h).Concurrency = 4 })
	botUsers(t, s, "alice", "bob", "carol", "dave")
	const n = 50

	t.Run("one conversation of 50 messages is answered in order", func(t *testing.T) {
		alice := botLogin(t, s, "alice", "solo")
		for i := range n {
			alice.Send("<message to='echo@bots.localhost' type='chat' id='o%d'><body>%d</body></message>", i, i)
		}
		for i := range n {
			botExpectMessage(t, alice, "echo@bots.localhost", strconv.Itoa(i))
		}
	})

	t.Run("four senders in parallel each get their replies in order", func(t *testing.T) {
		var conns []*parleytest.Conn
		for _, u := range []string{"alice", "bob", "carol", "dave"} {
			conns = append(conns, botLogin(t, s, u, "multi"))
		}
		for i := range n {
			for j, c := range conns {
				c.Send("<message to='echo@bots.localhost' type='chat' id='p%d-%d'><body>%d-%d</body></message>", j, i, j, i)
			}
		}
		for j, c := range conns {
			for i := range n {
				botExpectMessage(t, c, "echo@bots.localhost", fmt.Sprintf("%d-%d", j, i))
			}
		}
		if m := hook.MaxInFlight(); m > 4 {
			t.Errorf("%d requests in flight at once, with concurrency 4", m)
		}
	})
}

func TestBotConversationsRunInParallelUpToConcurrency(t *testing.T) {
	release := make(chan struct{})
	var hook *webhooktest.Hook
	hook = webhooktest.New(t, func(w http.ResponseWriter, r *webhooktest.Post) {
		if hook.Hold(r, release) {
			webhooktest.JSON(w, http.StatusOK, webhook.Reply{Body: r.JSON.Body})
		}
	})

	s := hook.Start(t, botHost, func(h *conf.Host) { webhook.OptionsOf(h).Concurrency = 4 })
	users := []string{"alice", "bob", "carol", "dave", "eve"}
	botUsers(t, s, users...)
	conns := map[string]*parleytest.Conn{}
	for _, u := range users {
		conns[u] = botLogin(t, s, u, "desk")
	}
	conns["alice"].Send("<message to='echo@bots.localhost' type='chat' id='a1'><body>alice 1</body></message>")
	conns["alice"].Send("<message to='echo@bots.localhost' type='chat' id='a2'><body>alice 2</body></message>")
	for _, u := range users[1:] {
		conns[u].Send("<message to='echo@bots.localhost' type='chat' id='x'><body>%s 1</body></message>", u)
	}
	// Four workers, five conversations: four requests are held at once,
	// and alice's second message is not among them.
	for range 4 {
		if r := hook.Next(t); r.JSON.Body == "alice 2" {
			t.Errorf("alice's second message was posted while her first was still in flight")
		}
	}
	close(release)
	botExpectMessage(t, conns["alice"], "echo@bots.localhost", "alice 1")
	botExpectMessage(t, conns["alice"], "echo@bots.localhost", "alice 2")
	for _, u := range users[1:] {
		botExpectMessage(t, conns[u], "echo@bots.localhost", u+" 1")
	}
	if m := hook.MaxInFlight(); m != 4 {
		t.Errorf("at most %d requests in flight at once, want 4 (the concurrency)", m)
	}
}

func TestBotHungWebhookDoesNotStallTheServer(t *testing.T) {
	hook := webhooktest.New(t, botEcho)
	var hung *webhooktest.Hook
	hung = webhooktest.New(t, func(w http.ResponseWriter, r *webhooktest.Post) {
		hung.Hold(r, nil)
		w.WriteHeader(http.StatusNoContent)
	})

	s := hook.Start(t, botHost, nil, parleytest.WithBot("hung.localhost", hung.URL, func(h *conf.Host) {
		webhook.OptionsOf(h).Timeout = conf.Duration{Duration: 2 * time.Second}
		webhook.OptionsOf(h).Retries = 2
	}))
	t.Cleanup(hung.Release)
	botUsers(t, s, "alice", "bob", "carol")
	alice := botLogin(t, s, "alice", "phone")
	bob := botLogin(t, s, "bob", "desk")
	carol := botLogin(t, s, "carol", "desk")

	const hungSenders = 4
	for i := range hungSenders {
		alice.Send("<message to='h%d@hung.localhost' type='chat' id='hung-%d'><body>anyone?</body></message>", i, i)
	}
	for range hungSenders {
		hung.Next(t)
	}
	start := time.Now()

	// Another bot still answers.
	alice.Send("<message to='echo@bots.localhost' type='chat' id='fine'><body>still there?</body></message>")
	botExpectMessage(t, alice, "echo@bots.localhost", "still there?")

	// Users still chat at full speed.
	const n = 200
	for i := range n {
		bob.Send("<message to='%s' type='chat' id='c%d'><body>%d</body></message>", carol.JID, i, i)
	}
	for i := range n {
		st := carol.NextStanza()
		if st.From != bob.JID || parleytest.Body(st) != strconv.Itoa(i) {
			t.Fatalf("carol got %s, want message %d from bob", carol.String(st.El), i)
		}
	}
	if hung.InFlight() == 0 {
		t.Logf("the chat took %v; the hung webhook's requests had already timed out", time.Since(start))
	}

	// The hung bot's senders are told, not left waiting.
	want := map[string]bool{}
	for i := range hungSenders {
		want[fmt.Sprintf("hung-%d", i)] = true
	}
	for range hungSenders {
		st := botNext(t, alice)
		if st.Type != "error" || !want[st.ID] || parleytest.Condition(st) != xmpp.RemoteServerTimeout || st.From.Domain() != "hung.localhost" {
			t.Fatalf("got %s, want remote-server-timeout for one of %v", alice.String(st.El), want)
		}
		delete(want, st.ID)
	}
}

func TestBotQueueFullIsResourceConstraint(t *testing.T) {
	release := make(chan struct{})
	var hook *webhooktest.Hook
	hook = webhooktest.New(t, func(w http.ResponseWriter, r *webhooktest.Post) {
		if hook.Hold(r, release) && !botMarkerReply(w, r) {
			webhooktest.JSON(w, http.StatusOK, webhook.Reply{Body: r.JSON.Body})
		}
	})

	s := hook.Start(t, botHost, func(h *conf.Host) {
		webhook.OptionsOf(h).Queue = 2
		webhook.OptionsOf(h).Concurrency = 1
	})
	botUsers(t, s, "alice")
	alice := botLogin(t, s, "alice", "phone")
	m := botComponent(t, s, botHost).Metrics()
	const bot = "busy@bots.localhost"

	alice.Send("<message to='%s' type='chat' id='q1'><body>q1</body></message>", bot)
	if r := hook.Next(t); r.JSON.Body != "q1" {
		t.Fatalf("the webhook got %q first, want q1", r.JSON.Body)
	}
	for i := 2; i <= 5; i++ {
		alice.Send("<message to='%s' type='chat' id='q%d'><body>q%d</body></message>", bot, i, i)
	}
	// The webhook holds q1 (in flight, not waiting); q2 and q3 wait, which
	// fills the queue of 2; q4 and q5 are refused at once, while the
	// webhook is still holding.
	for i := 4; i <= 5; i++ {
		botExpectError(t, alice, xmpp.KindMessage, bot, fmt.Sprintf("q%d", i), xmpp.ResourceConstraint)
	}
	if d, f := m.QueueDepth(), m.Failures("queue_full"); d != 2 || f != 2 {
		t.Errorf("QueueDepth() %d, Failures(queue_full) %d; want 2 and 2", d, f)
	}
	close(release)
	botExpectMessage(t, alice, bot, "q1")
	botExpectMessage(t, alice, bot, "q2")
	botExpectMessage(t, alice, bot, "q3")
	botMarker(t, alice, bot, alice)
}

func TestBotTyping(t *testing.T) {
	releases := map[string]chan struct{}{"typist": make(chan struct{}), "typistfails": make(chan struct{})}
	var hook *webhooktest.Hook
	hook = webhooktest.New(t, func(w http.ResponseWriter, r *webhooktest.Post) {
		if botMarkerReply(w, r) {
			return
		}
		if !hook.Hold(r, releases[r.Local]) {
			return
		}
		if r.Local == "typistfails" {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		webhooktest.JSON(w, http.StatusOK, webhook.Reply{Body: "done"})
	})

	s := hook.Start(t, botHost, nil)
	botUsers(t, s, "alice", "amy")

	composing := func(t *testing.T, c *parleytest.Conn, bot string) {
		t.Helper()
		st := c.NextStanza()
		if st.Kind != xmpp.KindMessage || st.Type != "chat" || st.From.String() != bot || st.To != c.JID ||
			xmpp.Child(st.El, webhook.NSChatStates, "composing") == nil || parleytest.Body(st) != "" {
			t.Fatalf("got %s, want <composing/> from %s", c.String(st.El), bot)
		}
	}
	t.Run("a slow webhook shows the bot typing and its reply ends it", func(t *testing.T) {
		t.Parallel()
		alice := botLogin(t, s, "alice", "typing")
		alice.Send("<message to='typist@bots.localhost' type='chat' id='t1'><body>think hard</body></message>")
		composing(t, alice, "typist@bots.localhost")
		close(releases["typist"])
		st := alice.NextStanza()
		if parleytest.Body(st) != "done" || st.From.String() != "typist@bots.localhost" {
			t.Fatalf("got %s, want the reply", alice.String(st.El))
		}
		if xmpp.Child(st.El, webhook.NSChatStates, "active") == nil {
			t.Errorf("the reply does not carry <active/>: %s", alice.String(st.El))
		}
		botMarker(t, alice, "typist@bots.localhost", alice)
	})
	t.Run("a slow webhook that fails ends the typing after the error", func(t *testing.T) {
		t.Parallel()
		alice := botLogin(t, s, "amy", "typingfails")
		alice.Send("<message to='typistfails@bots.localhost' type='chat' id='t2'><body>think hard</body></message>")
		composing(t, alice, "typistfails@bots.localhost")
		close(releases["typistfails"])
		st := alice.NextStanza()
		if st.Type != "error" || st.ID != "t2" || parleytest.Condition(st) != xmpp.InternalServerError {
			t.Fatalf("got %s, want internal-server-error", alice.String(st.El))
		}
		st = alice.NextStanza()
		if st.Type != "chat" || st.From.String() != "typistfails@bots.localhost" || xmpp.Child(st.El, webhook.NSChatStates, "active") == nil {
			t.Fatalf("got %s, want <active/>", alice.String(st.El))
		}
		botMarker(t, alice, "typistfails@bots.localhost", alice)
	})
}

func TestBotSendAPI(t *testing.T) {
	hook := webhooktest.New(t, nil)
	s := hook.Start(t, botHost, func(h *conf.Host) { webhook.OptionsOf(h).APIToken = "s3cret-token" },
		parleytest.WithBot("notoken.localhost", hook.URL, nil))
	botUsers(t, s, "bob")
	bob := botLogin(t, s, "bob", "desk")
	const auth = "Bearer s3cret-token"
	big := `{"to":"bob@localhost","body":"` + strings.Repeat("a", 256<<10) + `"}`

	tests := []struct {
		name, host, auth, body string
		want                   int
		// get are the (from, body) bob gets, in order.
		get [][2]string
	}{
		{"a good token sends from the bot domain", botHost, auth, `{"to":"bob@localhost","body":"alert"}`, 202, [][2]string{{"bots.localhost", "alert"}}},
		{"a from of the bot domain is kept", botHost, auth, `{"to":"bob@localhost","from":"ci@bots.localhost","body":"build ok"}`, 202, [][2]string{{"ci@bots.localhost", "build ok"}}},
		{"an array of two sends both", botHost, auth, `[{"to":"bob@localhost","body":"one"},{"to":"bob@localhost/desk","from":"ci@bots.localhost","body":"two"}]`, 202,
			[][2]string{{"bots.localhost", "one"}, {"ci@bots.localhost", "two"}}},
		{"a stanza field is sent", botHost, auth, `{"stanza":"<message to='bob@localhost/desk' from='ci@bots.localhost' type='chat'><body>raw</body></message>"}`, 202,
			[][2]string{{"ci@bots.localhost", "raw"}}},
		{"a wrong token is 401", botHost, "Bearer wrong", `{"to":"bob@localhost","body":"x"}`, 401, nil},
		{"no token is 401", botHost, "", `{"to":"bob@localhost","body":"x"}`, 401, nil},
		{"another scheme is 401", botHost, "Basic czNjcmV0LXRva2Vu", `{"to":"bob@localhost","body":"x"}`, 401, nil},
		{"a host without api_token is 404", "notoken.localhost", auth, `{"to":"bob@localhost","body":"x"}`, 404, nil},
		{"an unknown host is 404", "nowhere.localhost", auth, `{"to":"bob@localhost","body":"x"}`, 404, nil},
		{"a local host is 404", "localhost", auth, `{"to":"bob@localhost","body":"x"}`, 404, nil},
		{"a from outside the domain is 403", botHost, auth, `{"to":"bob@localhost","from":"alice@localhost","body":"spoof"}`, 403, nil},
		{"a stanza field from outside the domain is 403", botHost, auth, `{"stanza":"<message to='bob@localhost/desk' from='alice@localhost'><body>spoof</body></message>"}`, 403, nil},
		{"one bad from in an array sends nothing", botHost, auth, `[{"to":"bob@localhost","body":"fine"},{"to":"bob@localhost","from":"alice@localhost","body":"spoof"}]`, 403, nil},
		{"malformed JSON is 400", botHost, auth, `{"to":"bob@localhost",`, 400, nil},
		{"a missing to is 400", botHost, auth, `{"body":"to whom?"}`, 400, nil},
		{"an empty body is 400", botHost, auth, ``, 400, nil},
		{"an empty array is 400", botHost, auth, `[]`, 400, nil},
		{"a body over 256 KiB is 413", botHost, auth, big, 413, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := botSendAPI(t, s, tt.host, tt.auth, tt.body)
			if a.Status != tt.want {
				t.Fatalf("status %d (%s), want %d", a.Status, a.Raw, tt.want)
			}
			if a.Status >= 400 {
				if msg, ok := a.Fields["error"].(string); !ok || msg == "" {
					t.Errorf("error answer %q has no \"error\" field", a.Raw)
				}
				if !strings.HasPrefix(a.ContentType, "application/json") {
					t.Errorf("error answer Content-Type %q, want application/json", a.ContentType)
				}
			}
			for _, g := range tt.get {
				botExpectMessage(t, bob, g[0], g[1])
			}
			// Nothing else reached bob: a message sent after it comes next.
			if a := botSendAPI(t, s, botHost, auth, `{"to":"bob@localhost","body":"marker"}`); a.Status != 202 {
				t.Fatalf("marker: status %d (%s)", a.Status, a.Raw)
			}
			botExpectMessage(t, bob, "bots.localhost", "marker")
		})
	}
}

func TestBotMetrics(t *testing.T) {
	hook := webhooktest.New(t, func(w http.ResponseWriter, r *webhooktest.Post) {
		if r.JSON.Body == "fail" {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		webhooktest.JSON(w, http.StatusOK, webhook.Reply{Body: r.JSON.Body})
	})

	s := hook.Start(t, botHost, nil, parleytest.WithBot("quiet.localhost", hook.URL, nil))
	botUsers(t, s, "alice")
	alice := botLogin(t, s, "alice", "phone")
	for i := range 3 {
		alice.Send("<message to='m@bots.localhost' type='chat' id='m%d'><body>%d</body></message>", i, i)
		botExpectMessage(t, alice, "m@bots.localhost", strconv.Itoa(i))
	}
	alice.Send("<message to='m@bots.localhost' type='chat' id='mf'><body>fail</body></message>")
	botExpectError(t, alice, xmpp.KindMessage, "m@bots.localhost", "mf", xmpp.InternalServerError)

	resp, err := http.Get(s.HTTPURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	samples := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	var text strings.Builder
	for sc.Scan() {
		line := sc.Text()
		text.WriteString(line + "\n")
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			samples[line[:i]] = line[i+1:]
		}
	}
	for series, want := range map[string]string{
		`parley_bot_requests_total{host="bots.localhost"}`:                   "4",
		`parley_bot_request_seconds_count{host="bots.localhost"}`:            "4",
		`parley_bot_request_seconds_bucket{host="bots.localhost",le="+Inf"}`: "4",
		`parley_bot_retries_total{host="bots.localhost"}`:                    "0",
		`parley_bot_failures_total{host="bots.localhost",cause="status"}`:    "1",
		`parley_bot_failures_total{host="bots.localhost",cause="connect"}`:   "0",
		`parley_bot_queue_depth{host="bots.localhost"}`:                      "0",
		`parley_bot_requests_total{host="quiet.localhost"}`:                  "0",
		`parley_bot_request_seconds_count{host="quiet.localhost"}`:           "0",
	} {
		if got, ok := samples[series]; !ok || got != want {
			t.Errorf("%s = %q (present %v), want %s", series, got, ok, want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", text.String())
	}
	if got := samples[`parley_bot_request_seconds_sum{host="bots.localhost"}`]; got == "" || got == "0" {
		t.Errorf("parley_bot_request_seconds_sum = %q, want the total latency", got)
	}
}

func TestBotDemoEcho(t *testing.T) {
	// The demo webhook lives on the server's own HTTP listener, whose
	// address is known only once the server runs: a proxy in front of it
	// is the bot's post_url.
	var target atomic.Pointer[string]
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := target.Load()
		if u == nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), r.Method, *u, r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(proxy.Close)
	s := parleytest.Start(t, parleytest.WithBot("echo.localhost", proxy.URL, nil))
	u := s.HTTPURL + "/demo/echo"
	target.Store(&u)
	botUsers(t, s, "alice")
	alice := botLogin(t, s, "alice", "phone")

	alice.Send("<message to='echo@echo.localhost' type='chat' id='d1'><body>hello, echo</body></message>")
	st := botExpectMessage(t, alice, "echo@echo.localhost", "hello, echo")
	if st.To != alice.JID || st.Type != "chat" {
		t.Errorf("got %s", alice.String(st.El))
	}
	// A message without a body gets nothing (204), then the next echo.
	alice.Send("<message to='echo@echo.localhost' type='chat' id='d2'><active xmlns='http://jabber.org/protocol/chatstates'/></message>")
	alice.Send("<message to='echo@echo.localhost' type='chat' id='d3'><body>again</body></message>")
	if st := alice.NextStanza(); parleytest.Body(st) != "again" {
		t.Errorf("got %s, want the echo of again", alice.String(st.El))
	}
}

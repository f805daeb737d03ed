package webhook

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/xmpp"
)

// recorder is a Router that keeps what it is given.
type recorder struct {
	mu  sync.Mutex
	got []*xmpp.Stanza
}

func (r *recorder) Route(st *xmpp.Stanza) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, st)
}

func newTestComponent(t *testing.T) (*Component, *recorder) {
	t.Helper()
	rec := &recorder{}
	c, err := New(Config{Domain: "bots.example", PostURL: "http://127.0.0.1:1/", Router: rec, Concurrency: 1, PostMessages: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.cancel(); c.wg.Wait() })
	return c, rec
}

func mustStanza(t *testing.T, raw string) *xmpp.Stanza {
	t.Helper()
	el, err := xmpp.ParseElement(raw, xmpp.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := xmpp.NewStanza(el)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestSignMatchesTheStandardWebhooksExample(t *testing.T) {
	// The example of the Standard Webhooks specification.
	key := signingKey("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	body := []byte(`{"test": 2432232314}`)
	got := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	if k := signingKey("plain secret"); string(k) != "plain secret" {
		t.Fatalf("a secret without whsec_ is used as is, got %q", k)
	}
}

func TestParseAnswer(t *testing.T) {
	tests := []struct {
		name    string
		a       answer
		want    int
		wantErr string
	}{
		{"an object is one reply", answer{200, "application/json", []byte(`{"body":"hi"}`), 0, ""}, 1, ""},
		{"an array is several", answer{200, "application/json", []byte(`[{"body":"a"},{"body":"b"}]`), 0, ""}, 2, ""},
		{"charset parameters are allowed", answer{200, "application/json; charset=utf-8", []byte(`{"body":"hi"}`), 0, ""}, 1, ""},
		{"a +json type is JSON", answer{201, "application/vnd.bot+json", []byte(`{"body":"hi"}`), 0, ""}, 1, ""},
		{"204 is no reply", answer{204, "", nil, 0, ""}, 0, ""},
		{"an empty 200 is no reply", answer{200, "application/json", []byte("  "), 0, ""}, 0, ""},
		{"text/plain is refused", answer{200, "text/plain", []byte("hi"), 0, ""}, 0, causeJSON},
		{"broken JSON is refused", answer{200, "application/json", []byte(`{"body":`), 0, ""}, 0, causeJSON},
		{"a number where a string goes is refused", answer{200, "application/json", []byte(`{"body":1}`), 0, ""}, 0, causeJSON},
		{"a string is refused", answer{200, "application/json", []byte(`"hi"`), 0, ""}, 0, causeJSON},
		{"trailing data is refused", answer{200, "application/json", []byte(`{}{}`), 0, ""}, 0, causeJSON},
		{"a 500 is a status failure", answer{500, "application/json", []byte(`{}`), 0, ""}, 0, causeStatus},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAnswer(&tt.a)
			var f *failure
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tt.wantErr != "" && (!errors.As(err, &f) || f.cause != tt.wantErr):
				t.Fatalf("err = %v, want cause %s", err, tt.wantErr)
			case len(got) != tt.want:
				t.Fatalf("%d replies, want %d", len(got), tt.want)
			}
		})
	}
}

// TestStatusFailure checks the seed's table (Prosody's mod_component_http):
// every status it names, and a few it does not.
func TestStatusFailure(t *testing.T) {
	tests := []struct {
		status int
		typ    xmpp.ErrorType
		want   xmpp.StanzaCondition
	}{
		{400, xmpp.ErrModify, xmpp.BadRequest},
		{401, xmpp.ErrAuth, xmpp.NotAuthorized},
		{402, xmpp.ErrAuth, xmpp.Forbidden},
		{403, xmpp.ErrAuth, xmpp.Forbidden},
		{404, xmpp.ErrCancel, xmpp.ItemNotFound},
		{410, xmpp.ErrCancel, xmpp.Gone},
		{500, xmpp.ErrCancel, xmpp.InternalServerError},
		{501, xmpp.ErrCancel, xmpp.FeatureNotImplemented},
		{502, xmpp.ErrCancel, xmpp.RemoteServerTimeout},
		{503, xmpp.ErrWait, xmpp.RemoteServerTimeout},
		{504, xmpp.ErrWait, xmpp.RemoteServerTimeout},
		// Any other: cancel/service-unavailable.
		{302, xmpp.ErrCancel, xmpp.ServiceUnavailable},
		{405, xmpp.ErrCancel, xmpp.ServiceUnavailable},
		{418, xmpp.ErrCancel, xmpp.ServiceUnavailable},
		{422, xmpp.ErrCancel, xmpp.ServiceUnavailable},
		{429, xmpp.ErrCancel, xmpp.ServiceUnavailable},
		{505, xmpp.ErrCancel, xmpp.ServiceUnavailable},
		{599, xmpp.ErrCancel, xmpp.ServiceUnavailable},
	}
	for _, tt := range tests {
		f := statusFailure(tt.status)
		if f.cause != causeStatus || f.err.Type != tt.typ || f.err.Condition != tt.want {
			t.Errorf("HTTP %d → %s %s/%s, want %s %s/%s", tt.status, f.cause, f.err.Type, f.err.Condition, causeStatus, tt.typ, tt.want)
		}
	}
	if f := connectFailure("x"); f.cause != causeConnect || f.err.Type != xmpp.ErrCancel || f.err.Condition != xmpp.RemoteServerTimeout {
		t.Errorf("a connection failure → %s %s/%s, want connect cancel/remote-server-timeout", f.cause, f.err.Type, f.err.Condition)
	}
}

func TestRetryAfter(t *testing.T) {
	if d := retryAfter("3"); d != 3*time.Second {
		t.Errorf("seconds: %v", d)
	}
	if d := retryAfter(time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)); d < 59*time.Minute {
		t.Errorf("an HTTP date an hour ahead: %v", d)
	}
	for _, v := range []string{"", "soon", "-1", time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)} {
		if d := retryAfter(v); d != 0 {
			t.Errorf("%q: %v, want 0", v, d)
		}
	}
}

func TestBuild(t *testing.T) {
	c, _ := newTestComponent(t)
	chat := mustStanza(t, `<message from='alice@example/phone' to='echo@bots.example' type='chat' id='m1'><body>hi</body></message>`)
	group := mustStanza(t, `<message from='room@muc.example/alice' to='echo@bots.example' type='groupchat' id='g1'><body>hi</body></message>`)
	iq := mustStanza(t, `<iq from='alice@example/phone' to='echo@bots.example' type='get' id='q1'><query xmlns='urn:x'/></iq>`)
	result := mustStanza(t, `<iq from='alice@example/phone' to='echo@bots.example' type='result' id='q2'/>`)
	tests := []struct {
		name string
		in   *xmpp.Stanza
		r    Reply
		want string // serialized, or "error: <text>"
	}{
		{"a body answers the sender from the bot", chat, Reply{Body: "yo"},
			`<message type="chat" from="echo@bots.example" to="alice@example/phone"><body>yo</body></message>`},
		{"to and from can be chosen within the domain", chat, Reply{To: "bob@example", From: "other@bots.example/x", Body: "b"},
			`<message type="chat" from="other@bots.example/x" to="bob@example"><body>b</body></message>`},
		{"a group chat message is answered in the room, marked as a bot's", group, Reply{Body: "hi all"},
			`<message type="groupchat" from="echo@bots.example" to="room@muc.example"><body>hi all</body><bot xmlns="urn:parley:bot:0"/></message>`},
		{"an iq get is answered with a result by default", iq, Reply{},
			`<iq type="result" id="q1" from="echo@bots.example" to="alice@example/phone"/>`},
		{"an iq result is not answered with another result", result, Reply{Body: "thanks"},
			`<message type="chat" from="echo@bots.example" to="alice@example/phone"><body>thanks</body></message>`},
		{"presence carries the body as status", chat, Reply{Kind: "presence", Type: "unavailable", Body: "gone"},
			`<presence type="unavailable" from="echo@bots.example" to="alice@example/phone"><status>gone</status></presence>`},
		{"from another domain is refused", chat, Reply{From: "alice@example", Body: "x"}, "error: the bot tried to speak as alice@example"},
		{"an unknown kind is refused", chat, Reply{Kind: "shout"}, "error: kind"},
		{"a field-built iq get is refused", chat, Reply{Kind: "iq", Type: "get", ID: "1"}, "error: an iq made from fields"},
		{"a stanza is routed as given", chat, Reply{Stanza: `<message to='bob@example' type='headline'><body>raw</body></message>`},
			`<message to="bob@example" type="headline" from="echo@bots.example"><body>raw</body></message>`},
		{"server-owned elements are stripped from a stanza", chat, Reply{Stanza: `<message to='bob@example'><stanza-id xmlns='urn:xmpp:sid:0' id='x' by='example'/><occupant-id xmlns='urn:xmpp:occupant-id:0' id='y'/><delay xmlns='urn:xmpp:delay' from='example' stamp='2020-01-01T00:00:00Z'/><body>b</body></message>`},
			`<message to="bob@example" from="echo@bots.example"><body>b</body></message>`},
		{"a stanza from another domain is refused", chat, Reply{Stanza: `<message from='admin@example' to='bob@example'/>`}, "error: the bot tried to speak as admin@example"},
		{"two stanzas are refused", chat, Reply{Stanza: `<message/><message/>`}, "error: stanza must be exactly one message, presence or iq: xmpp: more than one element"},
		{"a comment in a stanza is refused", chat, Reply{Stanza: `<message><!-- x --></message>`}, "error: stanza"},
		{"an element that is not a stanza is refused", chat, Reply{Stanza: `<foo/>`}, "error: stanza"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := c.build(tt.in, tt.r)
			if strings.HasPrefix(tt.want, "error: ") {
				if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(tt.want, "error: ")) {
					t.Fatalf("err = %v, want one saying %q", err, strings.TrimPrefix(tt.want, "error: "))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			w := xmpp.NewWriter(&b)
			_ = w.WriteElement(st.El)
			_ = w.Flush()
			if b.String() != tt.want {
				t.Fatalf("got  %s\nwant %s", b.String(), tt.want)
			}
		})
	}
}

func TestQueueKeepsOrderPerConversationAndBounds(t *testing.T) {
	rec := &recorder{}
	c, err := New(Config{Domain: "bots.example", PostURL: "http://127.0.0.1:1/", Router: rec, Concurrency: 1, Queue: 3, PostMessages: true})
	if err != nil {
		t.Fatal(err)
	}
	// Stop the workers so that nothing drains: the queue's bookkeeping
	// alone is under test.
	c.cancel()
	c.wg.Wait()
	for i := range 5 {
		c.HandleStanza(mustStanza(t, `<message from='alice@example/a' to='echo@bots.example' id='`+string(rune('0'+i))+`'><body>x</body></message>`))
	}
	if c.depth() != 3 || len(c.convs) != 1 || len(c.ready) != 1 {
		t.Fatalf("depth %d, conversations %d, ready %d; want 3, 1, 1", c.depth(), len(c.convs), len(c.ready))
	}
	var ids []string
	for _, p := range c.convs[convKey{xmpp.MustParse("alice@example/a"), xmpp.MustParse("echo@bots.example")}].pending {
		ids = append(ids, p.st.ID)
	}
	if strings.Join(ids, ",") != "0,1,2" {
		t.Fatalf("pending %v, want 0,1,2 in order", ids)
	}
	// Another sender finds the queue full.
	c.HandleStanza(mustStanza(t, `<message from='bob@example/b' to='echo@bots.example' id='b'><body>x</body></message>`))
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.got) != 3 || xmpp.ParseStanzaError(rec.got[0].El).Condition != xmpp.ResourceConstraint {
		t.Fatalf("bounced %d, want 3 resource-constraint errors", len(rec.got))
	}
	// With a share as large as the queue, there is no share to be past:
	// the queue is full, for alice as for bob.
	if c.Metrics().Failures(causeSenderShare) != 0 || c.Metrics().Failures(causeQueueFull) != 3 {
		t.Fatalf("sender_share = %d, queue_full = %d; want 0, 3", c.Metrics().Failures(causeSenderShare), c.Metrics().Failures(causeQueueFull))
	}
}

// TestQueueBounds checks which stanza the queue takes and what it tells
// the ones it refuses, with the workers stopped.
func TestQueueBounds(t *testing.T) {
	small := `<message from='%s' to='echo@bots.example' id='m'><body>x</body></message>`
	big := `<message from='%s' to='echo@bots.example' id='m'><body>` + strings.Repeat("x", 5000) + `</body></message>`
	tests := []struct {
		name  string
		cfg   func(*Config)
		send  []string // from, in order; "!" after it: a big stanza
		taken int
		cause map[string]int64
		text  string // in the last refusal
	}{
		{"default share", nil,
			// Queue 1000: a sender's share is 125 stanzas.
			append(repeat("alice@example/a", 125), "alice@example/b", "bob@example/b"),
			126, map[string]int64{causeSenderShare: 1}, "you have too much waiting for the bots of bots.example (125 stanzas"},
		{"share of a small queue is at least 4", func(c *Config) { c.Queue = 10 },
			append(repeat("alice@example/a", 5), "bob@example/b"),
			5, map[string]int64{causeSenderShare: 1}, "the limit is 4 stanzas"},
		{"configured share", func(c *Config) { c.Queue = 10; c.SenderQueue = 2 },
			[]string{"alice@example/a", "alice@example/b", "alice@example/c", "bob@example/a", "bob@example/b"},
			4, map[string]int64{causeSenderShare: 1}, "the limit is 2 stanzas"},
		{"queue full", func(c *Config) { c.Queue = 8; c.SenderQueue = 4 },
			append(append(repeat("alice@example/a", 4), repeat("bob@example/a", 4)...), "carol@example/a"),
			8, map[string]int64{causeQueueFull: 1}, "the bot has too much to do; try again later"},
		{"sender bytes", func(c *Config) { c.SenderQueueBytes = 12000 },
			[]string{"alice@example/a!", "alice@example/a!", "alice@example/a!", "bob@example/a!"},
			3, map[string]int64{causeSenderShare: 1}, "the limit is 125 stanzas, 12 KiB"},
		{"a sender's first stanza is taken, however large", func(c *Config) { c.SenderQueueBytes = 100 },
			[]string{"alice@example/a!", "alice@example/a", "bob@example/a!"},
			2, map[string]int64{causeSenderShare: 1}, "the limit is 125 stanzas, 1 KiB"},
		{"queue bytes", func(c *Config) { c.QueueBytes = 17000; c.SenderQueueBytes = 17000 },
			[]string{"alice@example/a!", "bob@example/a!", "carol@example/a!", "dave@example/a!"},
			3, map[string]int64{causeQueueBytes: 1}, "its queue is full of large stanzas"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			cfg := Config{Domain: "bots.example", PostURL: "http://127.0.0.1:1/", Router: rec, Concurrency: 1, PostMessages: true}
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			c, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			c.cancel()
			c.wg.Wait()
			for _, from := range tt.send {
				raw := small
				if f, ok := strings.CutSuffix(from, "!"); ok {
					from, raw = f, big
				}
				c.HandleStanza(mustStanza(t, fmt.Sprintf(raw, from)))
			}
			if c.depth() != tt.taken {
				t.Errorf("%d taken, want %d", c.depth(), tt.taken)
			}
			for _, cause := range causes {
				if got := c.Metrics().Failures(cause); got != tt.cause[cause] {
					t.Errorf("%s = %d, want %d", cause, got, tt.cause[cause])
				}
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.got) == 0 {
				t.Fatal("nothing refused")
			}
			e := xmpp.ParseStanzaError(rec.got[len(rec.got)-1].El)
			if e.Condition != xmpp.ResourceConstraint || e.Type != xmpp.ErrWait || !strings.Contains(e.Text, tt.text) {
				t.Errorf("refused with %s %s %q, want wait resource-constraint %q", e.Type, e.Condition, e.Text, tt.text)
			}
			var held int64
			for _, cv := range c.convs {
				for _, p := range cv.pending {
					held += stanzaCost(p.st)
				}
			}
			if c.held != held || c.Metrics().QueueBytes() != held {
				t.Errorf("held %d (metric %d), want %d", c.held, c.Metrics().QueueBytes(), held)
			}
		})
	}
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestStanzaCostCountsElementsNotWireBytes(t *testing.T) {
	empty := mustStanza(t, `<message from='a@example/r' to='echo@bots.example'>`+strings.Repeat("<a/>", 1000)+`</message>`)
	text := mustStanza(t, `<message from='a@example/r' to='echo@bots.example'><body>`+strings.Repeat("x", 4000)+`</body></message>`)
	// 4,000 bytes on the wire each; the empty elements hold far more.
	if ce, ct := stanzaCost(empty), stanzaCost(text); ce < 100*1000 || ct < 4000 || ct > 5000 {
		t.Fatalf("cost of 1000 empty children %d, of a 4000-byte body %d", ce, ct)
	}
}

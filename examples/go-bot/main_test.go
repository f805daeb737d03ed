package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/components/webhook"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/parleytest/webhooktest"
	"github.com/parley-im/parley/xmpp"
)

// now is the clock of the verify tests.
var now = time.Unix(1_700_000_000, 0)

// signed returns the headers Parley sends with body, signed with key by
// the server's own webhook.Sign, with timestamp ts.
func signed(key []byte, id string, ts int64, body string) http.Header {
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	h.Set("webhook-signature", webhook.Sign(key, id, ts, []byte(body)))
	return h
}

// with returns a copy of h with key set to value ("" removes it).
func with(h http.Header, key, value string) http.Header {
	h = h.Clone()
	if value == "" {
		h.Del(key)
	} else {
		h.Set(key, value)
	}
	return h
}

func TestVerify(t *testing.T) {
	const body = `{"to":"echo@bots.localhost","from":"alice@localhost/phone","kind":"message","stanza":"<message/>","body":"hi"}`
	plain := "a plain secret"
	keyBytes := []byte("0123456789abcdef0123456789abcdef")
	whsec := "whsec_" + base64.StdEncoding.EncodeToString(keyBytes)
	good := signed([]byte(plain), "msg_1", now.Unix(), body)
	other := webhook.Sign([]byte("another secret"), "msg_1", now.Unix(), []byte(body))

	tests := []struct {
		name   string
		secret string
		header http.Header
		body   string
		ok     bool
	}{
		{"a good signature passes", plain, good, body, true},
		{"a whsec_ secret signs with its decoded bytes", whsec, signed(keyBytes, "msg_1", now.Unix(), body), body, true},
		{"a whsec_ secret does not sign with its text", whsec, signed([]byte(whsec), "msg_1", now.Unix(), body), body, false},
		{"a whsec_ secret that is not base64 signs with its text, as Parley does", "whsec_not base64!", signed([]byte("whsec_not base64!"), "msg_1", now.Unix(), body), body, true},
		{"one good signature among several passes", plain, with(good, "webhook-signature", other+" "+good.Get("webhook-signature")), body, true},
		{"a good signature after an unknown version passes", plain, with(good, "webhook-signature", "v1a,"+strings.TrimPrefix(good.Get("webhook-signature"), "v1,")+" "+good.Get("webhook-signature")), body, true},
		{"a good MAC under another version fails", plain, with(good, "webhook-signature", "v2,"+strings.TrimPrefix(good.Get("webhook-signature"), "v1,")), body, false},
		{"the wrong secret fails", "another secret, not the one", good, body, false},
		{"a tampered body fails", plain, good, strings.Replace(body, "hi", "ho", 1), false},
		{"a tampered id fails", plain, with(good, "webhook-id", "msg_2"), body, false},
		{"a tampered timestamp fails", plain, with(good, "webhook-timestamp", strconv.FormatInt(now.Unix()+1, 10)), body, false},
		{"a signature that is not base64 fails", plain, with(good, "webhook-signature", "v1,!!!"), body, false},
		{"a missing webhook-id fails", plain, with(good, "webhook-id", ""), body, false},
		{"a missing webhook-timestamp fails", plain, with(good, "webhook-timestamp", ""), body, false},
		{"a missing webhook-signature fails", plain, with(good, "webhook-signature", ""), body, false},
		{"no headers at all fail", plain, http.Header{}, body, false},
		{"a timestamp that is not a number fails", plain, with(good, "webhook-timestamp", "yesterday"), body, false},
		{"a timestamp just under 5 minutes old passes", plain, signed([]byte(plain), "msg_1", now.Unix()-299, body), body, true},
		{"a timestamp more than 5 minutes old fails", plain, signed([]byte(plain), "msg_1", now.Unix()-301, body), body, false},
		{"a timestamp more than 5 minutes ahead fails", plain, signed([]byte(plain), "msg_1", now.Unix()+301, body), body, false},
		{"the largest timestamp fails", plain, signed([]byte(plain), "msg_1", math.MaxInt64, body), body, false},
		{"the smallest timestamp fails", plain, signed([]byte(plain), "msg_1", math.MinInt64, body), body, false},
		{"an empty secret verifies nothing", "", signed(nil, "msg_1", now.Unix(), body), body, false},
		{"a whsec_ secret with an empty key verifies nothing", "whsec_", signed(nil, "msg_1", now.Unix(), body), body, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := verify(tt.secret, tt.header, []byte(tt.body), now)
			if tt.ok && err != nil {
				t.Fatalf("verify: %v, want nil", err)
			}
			if !tt.ok && err == nil {
				t.Fatal("verify passed, want an error")
			}
		})
	}
}

func TestHandler(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	msg := func(body string) string {
		b, _ := json.Marshal(webhook.Request{To: "echo@bots.localhost", From: "alice@localhost/phone", Kind: "message", Type: "chat", Stanza: "<message/>", Body: body})
		return string(b)
	}
	tests := []struct {
		name      string
		secret    string // the bot's
		method    string
		body      string
		sign      bool
		status    int
		wantReply string // the reply's body, for a 200
	}{
		{"a signed message is echoed", secret, "POST", msg("hi there"), true, 200, "You said: hi there"},
		{"help gets the help text", secret, "POST", msg(" Help "), true, 200, helpText},
		{"an unsigned request is refused", secret, "POST", msg("hi"), false, 401, ""},
		{"without a secret an unsigned request is answered", "", "POST", msg("hi"), false, 200, "You said: hi"},
		{"a message without a body gets no reply", secret, "POST", msg(""), true, 204, ""},
		{"a presence gets no reply", secret, "POST", `{"to":"echo@bots.localhost","from":"alice@localhost/phone","kind":"presence","stanza":"<presence/>"}`, true, 204, ""},
		{"an iq gets no reply", secret, "POST", `{"to":"echo@bots.localhost","from":"alice@localhost/phone","kind":"iq","type":"get","id":"q1","stanza":"<iq/>"}`, true, 204, ""},
		{"signed JSON that is not a request is a bad request", secret, "POST", `[1,2]`, true, 400, ""},
		{"a GET is not allowed", secret, "GET", "", false, 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "/", strings.NewReader(tt.body))
			r.Header.Set("Content-Type", "application/json")
			if tt.sign {
				for k, v := range signed(key, "msg_1", time.Now().Unix(), tt.body) {
					r.Header[k] = v
				}
			}
			w := httptest.NewRecorder()
			handler(tt.secret).ServeHTTP(w, r)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d (body %q)", w.Code, tt.status, w.Body)
			}
			if tt.status != 200 {
				if tt.status == 204 && w.Body.Len() != 0 {
					t.Errorf("a 204 with a body: %q", w.Body)
				}
				return
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			// The answer must be what Parley's own Reply type reads.
			dec := json.NewDecoder(w.Body)
			dec.DisallowUnknownFields()
			var got webhook.Reply
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("decoding the reply: %v", err)
			}
			if got != (webhook.Reply{Body: tt.wantReply}) {
				t.Errorf("reply %+v, want only body %q", got, tt.wantReply)
			}
		})
	}
}

// TestVerifyAcceptsParleysSignature signs as the server does: with
// webhook.Sign and the key Standard Webhooks derives from the secret.
func TestVerifyAcceptsParleysSignature(t *testing.T) {
	for _, secret := range []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "correct horse battery staple"} {
		key := []byte(secret)
		if rest, ok := strings.CutPrefix(secret, "whsec_"); ok {
			key, _ = base64.StdEncoding.DecodeString(rest)
		}
		body := []byte(`{"to":"echo@bots.localhost","from":"alice@localhost/phone","kind":"message","stanza":"<message/>","body":"hi"}`)
		ts := time.Now().Unix()
		h := http.Header{}
		h.Set("webhook-id", "msg_abc")
		h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
		h.Set("webhook-signature", webhook.Sign(key, "msg_abc", ts, body))
		if err := verify(secret, h, body, time.Now()); err != nil {
			t.Errorf("secret %q: verify refused Parley's signature: %v", secret, err)
		}
	}
}

// TestParleyTalksToTheBot runs the server's real webhook component against
// the bot: Parley's request, headers, signing key and reply parsing.
func TestParleyTalksToTheBot(t *testing.T) {
	tests := []struct {
		name      string
		botSecret string
		secret    string // Parley's
		wantBody  string // of the reply message; "" for an error
	}{
		{"a whsec_ secret on both sides", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "You said: hello"},
		{"a plain secret on both sides", "s3cret", "s3cret", "You said: hello"},
		{"an unsigned Parley gets an error", "s3cret", "", ""},
		{"another secret gets an error", "s3cret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bot := httptest.NewServer(handler(tt.botSecret))
			t.Cleanup(bot.Close) // after the component closes
			c, out := webhooktest.NewComponent(t, webhook.Config{
				Domain: "bots.localhost", PostURL: bot.URL, PostMessages: true, Secret: tt.secret,
				TypingDelay: time.Hour,
			})
			c.HandleStanza(parleytest.ParseStanza(t, "<message from='alice@localhost/phone' to='echo@bots.localhost' type='chat'><body>hello</body></message>"))
			got := out.Next(t)
			if got.To.String() != "alice@localhost/phone" || got.From.String() != "echo@bots.localhost" {
				t.Errorf("reply from %s to %s, want from echo@bots.localhost to alice@localhost/phone", got.From, got.To)
			}
			body := xmpp.Child(got.El, "", "body")
			switch {
			case tt.wantBody == "" && !got.IsError():
				t.Errorf("got %s, want an error message", dump(got))
			case tt.wantBody != "" && (got.IsError() || body == nil || body.Text() != tt.wantBody):
				t.Errorf("got %s, want a message with body %q", dump(got), tt.wantBody)
			}
		})
	}
}

// dump is a stanza's XML, for failure messages.
func dump(st *xmpp.Stanza) string {
	var buf bytes.Buffer
	st.El.WriteTo(&buf, &etree.WriteSettings{})
	return buf.String()
}

package examples_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/components/webhook"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/parleytest/webhooktest"
	"github.com/parley-im/parley/xmpp"
)

// startPythonBot runs python-bot/bot.py on a free port with secret and
// returns its URL. The process is killed when the test ends.
func startPythonBot(t *testing.T, secret string) string {
	t.Helper()
	if os.Getenv("PARLEY_SKIP_PYTHON") == "1" {
		t.Skip("PARLEY_SKIP_PYTHON=1: not running the Python bot")
	}
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is not on PATH (%v): CI installs python3 to test examples/python-bot; install it, or set PARLEY_SKIP_PYTHON=1 to skip this test", err)
	}
	cmd := exec.Command(python, "python-bot/bot.py")
	cmd.Env = append(os.Environ(), "PORT=0", "PARLEY_WEBHOOK_SECRET="+secret, "PYTHONUNBUFFERED=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The first line says where the bot listens; the rest of stdout is
	// drained so the bot never blocks on it.
	first := make(chan string, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			first <- sc.Text()
		}
		close(first)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // fails only if it has already exited
		<-drained
		_ = cmd.Wait() // "signal: killed", expected
		if t.Failed() {
			t.Logf("bot.py stderr:\n%s", stderr.String())
		}
	})
	select {
	case line, ok := <-first:
		addr, found := strings.CutPrefix(line, "listening on ")
		if !ok || !found {
			t.Fatalf("bot.py did not say where it listens (first line %q)", line)
		}
		return "http://" + addr + "/"
	case <-time.After(10 * time.Second):
		t.Fatal("bot.py did not say where it listens within 10s")
	}
	return ""
}

// keyOf is the HMAC key Parley derives from a secret (Standard Webhooks:
// "whsec_" and base64, or the text itself).
func keyOf(secret string) []byte {
	if rest, ok := strings.CutPrefix(secret, "whsec_"); ok {
		if k, err := base64.StdEncoding.DecodeString(rest); err == nil {
			return k
		}
	}
	return []byte(secret)
}

func TestPythonBot(t *testing.T) {
	message := func(body string) string {
		b, _ := json.Marshal(webhook.Request{To: "echo@bots.localhost", From: "alice@localhost/phone", Kind: "message", Type: "chat", Stanza: "<message/>", Body: body})
		return string(b)
	}
	presence := `{"to":"echo@bots.localhost","from":"alice@localhost/phone","kind":"presence","stanza":"<presence/>"}`
	for _, secret := range []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "a plain secret"} {
		t.Run(secret, func(t *testing.T) {
			url := startPythonBot(t, secret)
			now := time.Now().Unix()
			tests := []struct {
				name      string
				body      string
				key       []byte // nil: unsigned
				ts        int64
				status    int
				wantReply string
			}{
				{"a signed message is echoed", message("héllo 👋"), keyOf(secret), now, 200, "You said: héllo 👋"},
				{"help gets the help text", message("help"), keyOf(secret), now, 200, "I am an echo bot: send me any text and I say it back. Send \"help\" for this message."},
				{"a message without a body gets no reply", message(""), keyOf(secret), now, 204, ""},
				{"a presence gets no reply", presence, keyOf(secret), now, 204, ""},
				{"an unsigned request is refused", message("hi"), nil, now, 401, ""},
				{"another key is refused", message("hi"), []byte("not the secret"), now, 401, ""},
				// Ten seconds past the five minutes allowed: the bots
				// compare with clocks of their own, which may read up to a
				// second (and the test's delay) later than now.
				{"an old signature is refused", message("hi"), keyOf(secret), now - 310, 401, ""},
				{"a signature from the future is refused", message("hi"), keyOf(secret), now + 310, 401, ""},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(tt.body))
					if err != nil {
						t.Fatal(err)
					}
					req.Header.Set("Content-Type", "application/json")
					if tt.key != nil {
						req.Header.Set("webhook-id", "msg_test")
						req.Header.Set("webhook-timestamp", strconv.FormatInt(tt.ts, 10))
						// Two entries, as when a secret is being rotated.
						req.Header.Set("webhook-signature", webhook.Sign([]byte("old"), "msg_test", tt.ts, []byte(tt.body))+" "+webhook.Sign(tt.key, "msg_test", tt.ts, []byte(tt.body)))
					}
					client := &http.Client{Timeout: 10 * time.Second}
					resp, err := client.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					data, err := io.ReadAll(resp.Body)
					if err != nil {
						t.Fatal(err)
					}
					if resp.StatusCode != tt.status {
						t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tt.status, data)
					}
					if tt.status == 204 && len(data) != 0 {
						t.Errorf("a 204 with a body: %q", data)
					}
					if tt.status != 200 {
						return
					}
					if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
						t.Errorf("Content-Type %q, want application/json", ct)
					}
					dec := json.NewDecoder(bytes.NewReader(data))
					dec.DisallowUnknownFields()
					var got webhook.Reply
					if err := dec.Decode(&got); err != nil {
						t.Fatalf("the reply %q is not a Parley reply: %v", data, err)
					}
					if got != (webhook.Reply{Body: tt.wantReply}) {
						t.Errorf("reply %+v, want only body %q", got, tt.wantReply)
					}
				})
			}
		})
	}
}

// TestParleyTalksToThePythonBot runs the server's real webhook component
// against the Python bot: Parley's request, headers, signing key and reply
// parsing, end to end.
func TestParleyTalksToThePythonBot(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	url := startPythonBot(t, secret)
	tests := []struct {
		name     string
		secret   string // Parley's
		wantBody string // of the reply message; "" for an error
	}{
		{"the same secret gets the echo", secret, "You said: hello"},
		{"no secret gets an error", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, out := webhooktest.NewComponent(t, webhook.Config{
				Domain: "bots.localhost", PostURL: url, PostMessages: true, Secret: tt.secret,
				TypingDelay: time.Hour,
			})
			c.HandleStanza(parleytest.ParseStanza(t, "<message from='alice@localhost/phone' to='echo@bots.localhost' type='chat'><body>hello</body></message>"))
			got := out.Next(t)
			body := xmpp.Child(got.El, "", "body")
			switch {
			case tt.wantBody == "" && !got.IsError():
				t.Errorf("got a %s of type %q, want an error", got.Kind, got.Type)
			case tt.wantBody != "" && (got.IsError() || body == nil || body.Text() != tt.wantBody):
				t.Errorf("got a %s of type %q, want a message with body %q", got.Kind, got.Type, tt.wantBody)
			}
		})
	}
}

package webhooktest_test

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/components/webhook"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/parleytest/webhooktest"
	"github.com/parley-im/parley/xmpp"
)

func post(t *testing.T, url, body string) (status int, contentType, answer string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

func TestHookRecordsAndAnswers(t *testing.T) {
	tests := []struct {
		name              string
		handle            webhooktest.Handler
		body              string
		wantStatus        int
		wantCT, wantReply string
		wantLocal         string
		wantJSONErr       bool
	}{
		{name: "no handler answers 204", body: `{"to":"echo@bots.example","body":"hi"}`, wantStatus: 204, wantLocal: "echo"},
		{name: "JSON answers a reply",
			handle: func(w http.ResponseWriter, p *webhooktest.Post) {
				webhooktest.JSON(w, http.StatusOK, webhook.Reply{Body: "re: " + p.JSON.Body})
			},
			body: `{"to":"bot@bots.example","body":"hi"}`, wantStatus: 200, wantCT: "application/json", wantReply: `{"body":"re: hi"}` + "\n", wantLocal: "bot"},
		{name: "Raw answers as it is",
			handle: func(w http.ResponseWriter, p *webhooktest.Post) { webhooktest.Raw(w, 418, "text/plain", "teapot") },
			body:   `not json`, wantStatus: 418, wantCT: "text/plain", wantReply: "teapot", wantJSONErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := webhooktest.New(t, tt.handle)
			status, ct, reply := post(t, h.URL+"/path", tt.body)
			if status != tt.wantStatus || ct != tt.wantCT || reply != tt.wantReply {
				t.Errorf("answer %d %q %q, want %d %q %q", status, ct, reply, tt.wantStatus, tt.wantCT, tt.wantReply)
			}
			p := h.Next(t)
			if p.Method != http.MethodPost || string(p.Body) != tt.body || p.Header.Get("Content-Type") != "application/json" || p.Local != tt.wantLocal {
				t.Errorf("recorded %s %q (Content-Type %q, local %q), want POST %q from the client, local %q", p.Method, p.Body, p.Header.Get("Content-Type"), p.Local, tt.body, tt.wantLocal)
			}
			if (p.JSONErr != nil) != tt.wantJSONErr {
				t.Errorf("JSONErr = %v, want an error: %v", p.JSONErr, tt.wantJSONErr)
			}
			if h.Calls() != 1 {
				t.Errorf("Calls() = %d, want 1", h.Calls())
			}
		})
	}
}

func TestHookHolds(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var held []bool
	var h *webhooktest.Hook
	h = webhooktest.New(t, func(w http.ResponseWriter, p *webhooktest.Post) {
		ok := h.Hold(p, release)
		mu.Lock()
		held = append(held, ok)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(h.URL, "application/json", strings.NewReader("{}"))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 204 {
				t.Errorf("status %d", resp.StatusCode)
			}
		}()
	}
	h.Next(t)
	h.Next(t)
	if n := h.InFlight(); n != 2 {
		t.Fatalf("InFlight() = %d with two held, want 2", n)
	}
	close(release)
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(webhooktest.Timeout):
		t.Fatal("closing release did not let the held handlers go")
	}
	if h.MaxInFlight() != 2 || h.InFlight() != 0 {
		t.Fatalf("MaxInFlight() %d InFlight() %d, want 2 and 0", h.MaxInFlight(), h.InFlight())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(held) != 2 || !held[0] || !held[1] {
		t.Fatalf("Hold returned %v, want true twice (released)", held)
	}
}

func TestHookReleaseAndCancelEndAHold(t *testing.T) {
	got := make(chan bool, 2)
	var h *webhooktest.Hook
	h = webhooktest.New(t, func(w http.ResponseWriter, p *webhooktest.Post) {
		got <- h.Hold(p, nil)
	})
	// A client that gives up cancels the request.
	client := &http.Client{Timeout: 50 * time.Millisecond}
	if _, err := client.Post(h.URL, "application/json", strings.NewReader("{}")); err == nil {
		t.Fatal("a held request was answered")
	}
	if ok := recv(t, got, "the client gave up"); ok {
		t.Fatal("Hold after the client gave up = true, want false")
	}
	go func() {
		// Answered on Release; the client's timeout only bounds a broken
		// Release, which would otherwise hold the hook's Close forever.
		c := &http.Client{Timeout: 2 * webhooktest.Timeout}
		if resp, err := c.Post(h.URL, "application/json", strings.NewReader("{}")); err == nil {
			resp.Body.Close()
		}
	}()
	h.Next(t)
	h.Next(t)
	h.Release()
	if ok := recv(t, got, "Release"); ok {
		t.Fatal("Hold after Release = true, want false")
	}
}

// recv waits for what Hold returned after what.
func recv(t *testing.T, got <-chan bool, what string) bool {
	t.Helper()
	select {
	case ok := <-got:
		return ok
	case <-time.After(webhooktest.Timeout):
		t.Fatalf("Hold still holds after %s", what)
		return false
	}
}

// shortTimeout makes webhooktest.Timeout 10ms until the test ends, for
// tests of what happens when nothing comes.
func shortTimeout(t *testing.T) {
	old := webhooktest.Timeout
	webhooktest.Timeout = 10 * time.Millisecond
	t.Cleanup(func() { webhooktest.Timeout = old })
}

func TestNextFailsWhenNothingComes(t *testing.T) {
	h := webhooktest.New(t, nil)
	shortTimeout(t)
	if msg := parleytest.FailureOf(t, func(tb testing.TB) { h.Next(tb) }); !strings.Contains(msg, "no request") {
		t.Fatalf("Next with nothing posted: %q, want a failure", msg)
	}
}

// TestParleyPostsToTheHook is the use the package is for: a bot host
// behind the hook, a message to a bot, the post recorded and the reply
// delivered.
func TestParleyPostsToTheHook(t *testing.T) {
	h := webhooktest.New(t, func(w http.ResponseWriter, p *webhooktest.Post) {
		webhooktest.JSON(w, http.StatusOK, webhook.Reply{Body: "you said " + p.JSON.Body})
	})
	s := h.Start(t, "bots.localhost", nil)
	s.AddUser("alice@localhost", "a")
	alice := s.Login("alice@localhost", "a", "phone")
	alice.Send("<message to='echo@bots.localhost' type='chat' id='m1'><body>hi</body></message>")
	p := h.Next(t)
	if p.JSONErr != nil || p.Local != "echo" || p.JSON.Body != "hi" || p.JSON.From != alice.JID.String() || p.JSON.Kind != "message" {
		t.Fatalf("posted %s (%v), want alice's message to echo", p.Body, p.JSONErr)
	}
	st, _ := alice.WaitFor("the bot's reply", func(st *xmpp.Stanza) bool { return st.Kind == xmpp.KindMessage && st.Type != "error" })
	if parleytest.Body(st) != "you said hi" || st.From.String() != "echo@bots.localhost" {
		t.Fatalf("got %s, want the reply from echo", alice.String(st.El))
	}
}

// TestStartReleasesBeforeShutdown leaves a post held when a test ends:
// the server's shutdown (which waits for its bots) must find it released,
// not wait out the bot's hour-long timeout and fail.
func TestStartReleasesBeforeShutdown(t *testing.T) {
	released := make(chan bool, 1)
	var h *webhooktest.Hook
	h = webhooktest.New(t, func(w http.ResponseWriter, p *webhooktest.Post) {
		h.Hold(p, nil)
		// Release leaves the request alive; Parley giving up cancels it.
		released <- p.Context().Err() == nil
		w.WriteHeader(http.StatusNoContent)
	})
	t.Run("held", func(t *testing.T) {
		s := h.Start(t, "bots.localhost", func(c *conf.Host) {
			webhook.OptionsOf(c).Timeout = conf.Duration{Duration: time.Hour}
			webhook.OptionsOf(c).PostStanzas = []string{"message"}
		})
		s.AddUser("alice@localhost", "a")
		alice := s.Login("alice@localhost", "a", "phone")
		alice.Send("<message to='echo@bots.localhost' type='chat' id='m1'><body>hi</body></message>")
		h.Next(t)
	})
	if ok := recv(t, released, "the test"); !ok {
		t.Fatal("the held post was let go by Parley, not released")
	}
}

func TestRouterKeepsOrderAndWaits(t *testing.T) {
	r := &webhooktest.Router{}
	st := func(id string) *xmpp.Stanza {
		return parleytest.ParseStanza(t, "<message id='"+id+"'/>")
	}
	r.Route(st("1"))
	r.Route(st("2"))
	if got := r.Next(t); got.ID != "1" {
		t.Fatalf("Next = %s, want 1", got.ID)
	}
	r.Route(st("3"))
	if got := r.Take(); len(got) != 2 || got[0].ID != "2" || got[1].ID != "3" {
		t.Fatalf("Take = %d stanzas, want 2 and 3", len(got))
	}
	if got := r.Take(); len(got) != 0 {
		t.Fatalf("Take again = %d stanzas, want none", len(got))
	}
	go func() {
		time.Sleep(10 * time.Millisecond)
		r.Route(st("4"))
	}()
	if got := r.Next(t); got.ID != "4" {
		t.Fatalf("Next = %s, want 4, routed while it waited", got.ID)
	}

	shortTimeout(t)
	if msg := parleytest.FailureOf(t, func(tb testing.TB) { r.Next(tb) }); !strings.Contains(msg, "routed nothing") {
		t.Fatalf("Next with nothing routed: %q, want a failure", msg)
	}
}

func TestNewComponentTalksToTheHook(t *testing.T) {
	h := webhooktest.New(t, func(w http.ResponseWriter, p *webhooktest.Post) {
		webhooktest.JSON(w, http.StatusOK, webhook.Reply{Body: "you said " + p.JSON.Body})
	})
	c, r := webhooktest.NewComponent(t, webhook.Config{Domain: "bots.localhost", PostURL: h.URL, PostMessages: true, TypingDelay: time.Hour})
	c.HandleStanza(parleytest.ParseStanza(t, "<message from='alice@localhost/phone' to='echo@bots.localhost' type='chat' id='m1'><body>hi</body></message>"))
	got := r.Next(t)
	if got.Kind != xmpp.KindMessage || got.IsError() || parleytest.Body(got) != "you said hi" || got.To.String() != "alice@localhost/phone" {
		t.Fatalf("routed %s %q to %s, want the reply to alice", got.Kind, parleytest.Body(got), got.To)
	}
	if p := h.Next(t); p.JSON.Body != "hi" {
		t.Fatalf("posted %s", p.Body)
	}
}

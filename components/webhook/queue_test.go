package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/xmpp"
)

// TestOneSenderCannotFillTheQueueForOthers is issue #17's row 7: one user
// sent 1,100 messages to a slow bot and every other user of the host got
// resource-constraint until the queue drained. The webhook here hangs on
// every request; alice floods from three resources (three conversations,
// enough to hold every worker), and bob's one message must still reach
// the webhook.
func TestOneSenderCannotFillTheQueueForOthers(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	seen := map[string]int{} // requests by sender's bare JID
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req Request
		_ = json.NewDecoder(r.Body).Decode(&req)
		mu.Lock()
		seen[xmpp.MustParse(req.From).Bare().String()]++
		mu.Unlock()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()
	rec := &recorder{}
	var logs bytes.Buffer
	c, err := New(Config{Domain: "bots.example", PostURL: hook.URL, Router: rec, Concurrency: 2, PostMessages: true,
		Timeout: time.Minute, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		close(release)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	}()
	for i := range 1100 {
		c.HandleStanza(mustStanza(t, fmt.Sprintf(`<message from='alice@example/r%d' to='echo@bots.example' type='chat' id='a%d'><body>flood</body></message>`, i%3, i)))
	}
	c.HandleStanza(mustStanza(t, `<message from='bob@example/phone' to='other@bots.example' type='chat' id='b1'><body>hello</body></message>`))

	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		bob, alice := seen["bob@example"], seen["alice@example"]
		mu.Unlock()
		if bob == 1 {
			// Alice holds half the workers, no more.
			if alice != 1 {
				t.Fatalf("alice has %d requests in flight, want 1 of 2", alice)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob's message never reached the webhook (requests seen: %v)", seen)
		}
		time.Sleep(5 * time.Millisecond)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	refused := 0
	for _, st := range rec.got {
		if st.To.Bare().String() == "bob@example" {
			t.Fatalf("bob got %s", xmlOf(st))
		}
		e := xmpp.ParseStanzaError(st.El)
		if e == nil {
			t.Fatalf("alice got %s, want only refusals", xmlOf(st))
		}
		if e.Condition != xmpp.ResourceConstraint || !strings.Contains(e.Text, "you have too much waiting") {
			t.Fatalf("alice got %s %q", e.Condition, e.Text)
		}
		refused++
	}
	// 125 waiting (her share of 1000), and one in flight if a worker
	// took it before the share was reached.
	if refused < 1100-126 || refused > 1100-125 || c.Metrics().Failures(causeSenderShare) != int64(refused) {
		t.Fatalf("alice refused %d times (metric %d), want 974 or 975", refused, c.Metrics().Failures(causeSenderShare))
	}
	// Refusals are logged once a minute per cause, not once each.
	if n := strings.Count(logs.String(), "cause=sender_share"); n != 1 {
		t.Errorf("the sender-share refusals wrote %d log lines, want 1:\n%s", n, logs.String())
	}
}

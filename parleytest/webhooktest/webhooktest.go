// Package webhooktest is a real webhook for tests of Parley's
// http_component hosts: an httptest server that records every request
// Parley posts and answers it the way the test says.
//
// It is a package of its own so that parleytest does not name the webhook
// component's types. Tests inside package webhook cannot import it (that
// would be a cycle); external ones (package webhook_test) can.
package webhooktest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/components/webhook"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// Timeout bounds Next: a test waiting for a post that never comes fails
// instead of hanging.
var Timeout = 10 * time.Second

// Post is one request the webhook received.
type Post struct {
	Method string
	Header http.Header
	Body   []byte
	// JSON is Body decoded; JSONErr says why it could not be.
	JSON    webhook.Request
	JSONErr error
	// Local is the localpart of the bot JID the stanza was sent to.
	Local string

	ctx context.Context
}

// Context is the request's context: it is done when Parley gives up on
// the request (or the webhook closes).
func (p *Post) Context() context.Context { return p.ctx }

// Handler answers a post. A nil Handler answers 204 No Content.
type Handler func(w http.ResponseWriter, p *Post)

// Hook is a running webhook. Its URL is the post_url to give Parley.
type Hook struct {
	*httptest.Server
	posts       chan *Post
	calls       atomic.Int64
	inFlight    atomic.Int64
	maxInFlight atomic.Int64
	released    chan struct{}
	once        sync.Once
	handle      Handler
}

// New starts a webhook that records every post and answers it with
// handle. It closes when the test ends, after releasing held handlers.
func New(t testing.TB, handle Handler) *Hook {
	t.Helper()
	h := &Hook{posts: make(chan *Post, 10000), released: make(chan struct{}), handle: handle}
	h.Server = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(func() {
		h.Release()
		h.Close()
	})
	return h
}

// Start starts a Parley server (parleytest.Start) with an http_component
// host named host whose post_url is h, edited by edit (may be nil), and
// whatever else opts add. Handlers that h holds are released before the
// server shuts down (cleanups run last first), so that its bots drain at
// once instead of waiting for their requests to time out.
func (h *Hook) Start(t testing.TB, host string, edit func(*conf.Host), opts ...parleytest.Option) *parleytest.Server {
	t.Helper()
	s := parleytest.Start(t, append([]parleytest.Option{parleytest.WithBot(host, h.URL, edit)}, opts...)...)
	t.Cleanup(h.Release)
	return s
}

func (h *Hook) serve(w http.ResponseWriter, r *http.Request) {
	n := h.inFlight.Add(1)
	defer h.inFlight.Add(-1)
	for {
		m := h.maxInFlight.Load()
		if n <= m || h.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	body, _ := io.ReadAll(r.Body)
	p := &Post{Method: r.Method, Header: r.Header.Clone(), Body: body, ctx: r.Context()}
	p.JSONErr = json.Unmarshal(body, &p.JSON)
	if j, err := xmpp.Parse(p.JSON.To); err == nil {
		p.Local = j.Local()
	}
	h.calls.Add(1)
	select {
	case h.posts <- p:
	default: // a test that posts more than it reads does not block Parley
	}
	if h.handle == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h.handle(w, p)
}

// Next returns the next post the webhook received, in the order they
// came, and fails the test when none comes within Timeout.
func (h *Hook) Next(t testing.TB) *Post {
	t.Helper()
	select {
	case p := <-h.posts:
		return p
	case <-time.After(Timeout):
		t.Fatalf("webhooktest: the webhook got no request in %v", Timeout)
		return nil
	}
}

// Calls is how many posts the webhook has received.
func (h *Hook) Calls() int64 { return h.calls.Load() }

// InFlight is how many posts are being answered now.
func (h *Hook) InFlight() int64 { return h.inFlight.Load() }

// MaxInFlight is the most posts answered at once so far.
func (h *Hook) MaxInFlight() int64 { return h.maxInFlight.Load() }

// Hold blocks a handler until release is closed (nil: never), Release is
// called or Parley gives up on p. It reports whether release did it, that
// is whether the handler should still answer.
func (h *Hook) Hold(p *Post, release <-chan struct{}) bool {
	select {
	case <-release:
		return true
	case <-h.released:
		return false
	case <-p.ctx.Done():
		return false
	}
}

// Release lets every held handler go, now and later.
func (h *Hook) Release() { h.once.Do(func() { close(h.released) }) }

// JSON answers with status and v as JSON.
func JSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Raw answers with status and body as it is, with contentType when it is
// not empty.
func Raw(w http.ResponseWriter, status int, contentType, body string) {
	if contentType != "" {
		w.Header().Set("Content-Type", contentType)
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

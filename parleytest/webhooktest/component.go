package webhooktest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/components/webhook"
	"github.com/parley-im/parley/xmpp"
)

// Router is a webhook.Router that keeps what a component routes, for
// tests that run a component without a server.
type Router struct {
	mu   sync.Mutex
	got  []*xmpp.Stanza
	wake chan struct{} // closed on the next Route; nil when nobody waits
}

// Route keeps st.
func (r *Router) Route(st *xmpp.Stanza) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, st)
	if r.wake != nil {
		close(r.wake)
		r.wake = nil
	}
}

// Take returns what was routed and not yet taken, in order, and forgets it.
func (r *Router) Take() []*xmpp.Stanza {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

// Next waits for the next stanza routed and not yet taken and takes it; it
// fails the test when none comes within Timeout.
func (r *Router) Next(t testing.TB) *xmpp.Stanza {
	t.Helper()
	deadline := time.NewTimer(Timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		if len(r.got) > 0 {
			st := r.got[0]
			r.got = r.got[1:]
			r.mu.Unlock()
			return st
		}
		if r.wake == nil {
			r.wake = make(chan struct{})
		}
		wake := r.wake
		r.mu.Unlock()
		select {
		case <-wake:
		case <-deadline.C:
			t.Fatalf("webhooktest: the component routed nothing in %v", Timeout)
			return nil
		}
	}
}

// NewComponent starts a webhook component with cfg, routing to a new
// Router (whatever cfg.Router was), and closes it when the test ends; an
// error from Close fails the test.
func NewComponent(t testing.TB, cfg webhook.Config) (*webhook.Component, *Router) {
	t.Helper()
	r := &Router{}
	cfg.Router = r
	c, err := webhook.New(cfg)
	if err != nil {
		t.Fatalf("webhooktest: new component: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("webhooktest: closing the component: %v", err)
		}
	})
	return c, r
}

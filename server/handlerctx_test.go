package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/xmpp"
)

const nsWait = "urn:parley:test:wait"

// entered learns that the handler runs; waited receives what its context
// ended with.
var (
	entered = make(chan struct{}, 1)
	waited  = make(chan error, 1)
)

// A module for this test alone: its iq waits until its context ends. It
// lists no feature, so the other tests' disco#info is unchanged.
func init() {
	local.RegisterModule(local.Module{Name: "test-wait", Start: func(h *local.Host) error {
		h.HandleIQ(local.ToHost, "get", nsWait, "wait", "", func(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
			entered <- struct{}{}
			<-ctx.Done()
			waited <- ctx.Err()
			return nil, ctx.Err()
		})
		return nil
	}})
}

// TestShutdownCancelsWaitingHandlers: a handler that waits (for a store
// that hangs, say) is cancelled when Shutdown stops waiting for the
// sessions, not left to its own timeout.
func TestShutdownCancelsWaitingHandlers(t *testing.T) {
	s := parleytest.Start(t)
	s.AddUser("alice@localhost", "a")
	alice := s.Login("alice@localhost", "a", "x")
	alice.Send("<iq to='localhost' type='get' id='w1'><wait xmlns='%s'/></iq>", nsWait)
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the iq never reached its handler")
	}
	// Shutdown with a context that has already ended: it does not wait.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.Shutdown(ctx)
	select {
	case err := <-waited:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the handler's context ended with %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the handler was never cancelled")
	}
}

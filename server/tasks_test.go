package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/storage"
)

// bgHost is the host on which the module of TestBackgroundTasksEndBeforeTheStore
// watches its task; on other hosts its task only waits for the end.
const bgHost = "bg.localhost"

// lateHost is the host whose local.Host TestNoTaskStartsAfterTheEnd
// keeps, to ask for a task once its server has ended.
const lateHost = "late.localhost"

// lateHosts gets the local.Host of lateHost at its start.
var lateHosts = make(chan *local.Host, 1)

// bgSeen gets what the task met when it used the store after the
// server's end began: nil when the store was still open.
var bgSeen = make(chan error, 1)

func init() {
	local.RegisterModule(local.Module{Name: "test-background-task", Start: func(h *local.Host) error {
		type accounts interface {
			Accounts(ctx context.Context, host string) ([]storage.Account, error)
		}
		st := h.Store().(accounts)
		name := h.Name()
		if name == lateHost {
			lateHosts <- h
		}
		h.Go(func(ctx context.Context) {
			<-ctx.Done()
			if name != bgHost {
				return
			}
			// Late, as a sweep in the middle of a batch would be.
			time.Sleep(50 * time.Millisecond)
			_, err := st.Accounts(context.Background(), name)
			bgSeen <- err
		})
		return nil
	}})
}

// TestBackgroundTasksEndBeforeTheStore: a module's background task
// (Host.Go) sees the server's end through its context, and Shutdown
// waits for it before closing the store: the archive's retention sweep
// once logged after its server and test had ended (a race the detector
// caught), and met a closed store.
func TestBackgroundTasksEndBeforeTheStore(t *testing.T) {
	s := parleytest.Start(t, parleytest.WithHost(bgHost, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-bgSeen:
		if err != nil {
			t.Errorf("the task used the store after the server's end began: %v", err)
		}
	default:
		t.Error("Shutdown returned before the background task ended")
	}
}

// TestNoTaskStartsAfterTheEnd: a task asked for once Shutdown has waited
// for the others (a session that ended past Shutdown's deadline hands
// its queue back to offline storage, and push would look up the
// account's registrations) is not started: the store it would use is
// closed. A full test run under load once logged push meeting the
// closed store.
func TestNoTaskStartsAfterTheEnd(t *testing.T) {
	s := parleytest.Start(t, parleytest.WithHost(lateHost, ""))
	h := <-lateHosts
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	ran := make(chan struct{})
	h.Go(func(context.Context) { close(ran) })
	select {
	case <-ran:
		t.Error("a task started after the server ended")
	case <-time.After(200 * time.Millisecond):
	}
}

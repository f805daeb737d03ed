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

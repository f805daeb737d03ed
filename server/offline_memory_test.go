package server_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/storage"
)

// heapPeak samples the heap in use until stop is called, and returns the
// highest figure seen.
func heapPeak() (stop func() uint64) {
	var (
		peak atomic.Uint64
		wg   sync.WaitGroup
		done = make(chan struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak.Load()
	}
}

// TestOfflineLoginMemory: one login with 1,000 stored messages of 250 KB
// (issue #17 row 4) must not hold them all at once.
func TestOfflineLoginMemory(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("stores 250 MB and measures the heap: run without -short and -race")
	}
	const n, size = 1000, 250_000
	s := parleytest.Start(t)
	s.AddUser("bob@localhost", "pw")
	body := strings.Repeat("x", size)
	ctx := context.Background()
	for i := range n {
		st := fmt.Sprintf("<message xmlns='jabber:client' to='bob@localhost' from='alice@localhost/r' type='chat' id='m%d'><body>%s</body></message>", i, body)
		if err := s.Store().StoreOffline(ctx, "localhost", "bob", []byte(st), storage.OfflineQuota{Messages: n}); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	stop := heapPeak()
	bob := s.Login("bob@localhost", "pw", "r")
	bob.Send("<presence/>")
	got := 0
	for got < n {
		if el := bob.Next(); el.Tag == "message" {
			if id := el.SelectAttrValue("id", ""); id != fmt.Sprintf("m%d", got) {
				t.Fatalf("message %d has id %q", got, id)
			}
			got++
		}
	}
	peak := stop()
	t.Logf("one login with %d x %d B stored: heap in use %d MiB before, peak %d MiB (+%d MiB)", n, size, base>>20, peak>>20, (peak-base)>>20)
	// Before offline delivery went by pages the login held the whole
	// store, parsed: 763 MiB at the peak. Now it holds a page or two and
	// what the session's queue and the test's client hold (about 30 MiB).
	if grew := int64(peak) - int64(base); grew > 128<<20 {
		t.Errorf("the heap grew by %d MiB during the login, want under 128 MiB", grew>>20)
	}
	left, err := s.Store().OfflineMessages(ctx, "localhost", "bob")
	if err != nil || len(left) != 0 {
		t.Errorf("after the login, %d messages are left in the store (%v), want none", len(left), err)
	}
}

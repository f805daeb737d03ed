package upload

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/parley-im/parley/server"
)

// metrics are one upload host's counters.
type metrics struct {
	slots, uploads, bytes, expired atomic.Int64

	mu       sync.Mutex
	refusals map[string]int64 // slot requests refused, by cause
}

func (m *metrics) refused(cause string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.refusals == nil {
		m.refusals = map[string]int64{}
	}
	m.refusals[cause]++
}

// writeMetrics writes the upload hosts' metrics, when there are any.
func writeMetrics(w io.Writer, hosts map[string]server.Handler) {
	if len(hosts) == 0 {
		return
	}
	names := slices.Sorted(maps.Keys(hosts))
	counter := func(name, help string, v func(*metrics) int64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
		for _, n := range names {
			fmt.Fprintf(w, "%s{host=%q} %d\n", name, n, v(&hosts[n].(*Service).metrics))
		}
	}
	counter("parley_upload_slots_total", "Upload slots given out.", func(m *metrics) int64 { return m.slots.Load() })
	counter("parley_upload_files_total", "Files uploaded.", func(m *metrics) int64 { return m.uploads.Load() })
	counter("parley_upload_bytes_total", "Bytes uploaded.", func(m *metrics) int64 { return m.bytes.Load() })
	counter("parley_upload_expired_total", "Slots and files removed by expiry.", func(m *metrics) int64 { return m.expired.Load() })
	fmt.Fprintf(w, "# HELP parley_upload_refused_slots_total Slot requests refused, by cause.\n"+
		"# TYPE parley_upload_refused_slots_total counter\n")
	for _, n := range names {
		m := &hosts[n].(*Service).metrics
		m.mu.Lock()
		for _, c := range []string{"not_allowed", "bad_request", "too_large", "quota"} {
			fmt.Fprintf(w, "parley_upload_refused_slots_total{host=%q,cause=%q} %d\n", n, c, m.refusals[c])
		}
		m.mu.Unlock()
	}
}

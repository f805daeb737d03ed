package local

import (
	"fmt"
	"io"

	"github.com/parley-im/parley/server"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-im/parley/internal/ratelog"
)

// LimitStats counts, since the server started, what the per-account limits
// refused and what offline delivery did. The figures are summed over the
// local hosts; /metrics shows them.
type LimitStats struct {
	// OfflineFull is how many messages were bounced because the
	// recipient's offline storage was full (offline_messages or
	// offline_bytes).
	OfflineFull int64
	// OfflineDelivered is how many offline messages sessions took.
	OfflineDelivered int64
	// OfflineRestored is how many offline messages went back to the store
	// because a session could not take them or would never write them.
	OfflineRestored int64
	// SessionsRefused is how many binds sessions_per_account refused.
	SessionsRefused int64
	// PrivateStorageRefused is how many private XML (XEP-0049) sets
	// private_storage_bytes refused.
	PrivateStorageRefused int64
	// RosterChangesRefused is how many roster sets and removals
	// roster_changes_per_minute refused.
	RosterChangesRefused int64
}

// LimitStatsOf returns what the per-account limits of srv's local hosts
// refused so far.
func LimitStatsOf(srv *server.Server) LimitStats { return limitStats(srv.Hosts()) }

// limitStats sums the figures of the local hosts among hosts.
func limitStats(hosts map[string]server.Handler) LimitStats {
	var st LimitStats
	for _, handler := range hosts {
		h, ok := handler.(*localHost)
		if !ok {
			continue
		}
		c := &h.counters
		st.OfflineFull += c.offlineFull.Load()
		st.OfflineDelivered += c.offlineDelivered.Load()
		st.OfflineRestored += c.offlineRestored.Load()
		st.SessionsRefused += c.sessionsRefused.Load()
		st.PrivateStorageRefused += c.refusedBy("private_storage_bytes")
		st.RosterChangesRefused += c.rosterRefused.Load()
	}
	return st
}

// limitCounters are a local host's figures of LimitStats.
type limitCounters struct {
	offlineFull      atomic.Int64
	offlineDelivered atomic.Int64
	offlineRestored  atomic.Int64
	sessionsRefused  atomic.Int64
	// refused counts the refusals of limits that modules enforce
	// (Host.Refused), by the limit's config key.
	refused       sync.Map // string → *atomic.Int64
	rosterRefused atomic.Int64

	// logged rations the logging of refusals (logLimit): an attack that
	// hits a limit a thousand times a second logs one line a minute, and
	// the counters tell the rest.
	logged ratelog.Limiter
}

// logLimit logs that the limit named key (its config key) refused
// something, once a minute.
func (h *localHost) logLimit(key string, args ...any) {
	ok, skipped := h.counters.logged.Allow(key, time.Now())
	if !ok {
		return
	}
	h.log.Warn("local: per-account limit reached (logged once a minute per limit)",
		append([]any{"limit", "limits." + key, "unlogged_before", skipped}, args...)...)
}

// writeMetrics writes the local hosts' figures at the end of /metrics.
func writeMetrics(w io.Writer, hosts map[string]server.Handler) {
	ls := limitStats(hosts)
	fmt.Fprintf(w, "# HELP parley_limit_refusals_total Stanzas refused by a per-account limit, by limit.\n"+
		"# TYPE parley_limit_refusals_total counter\n"+
		"parley_limit_refusals_total{limit=\"offline\"} %d\n"+
		"parley_limit_refusals_total{limit=\"sessions_per_account\"} %d\n"+
		"parley_limit_refusals_total{limit=\"private_storage_bytes\"} %d\n"+
		"parley_limit_refusals_total{limit=\"roster_changes_per_minute\"} %d\n",
		ls.OfflineFull, ls.SessionsRefused, ls.PrivateStorageRefused, ls.RosterChangesRefused)
	fmt.Fprintf(w, "# HELP parley_offline_messages_total Offline messages taken by sessions, and put back unwritten.\n"+
		"# TYPE parley_offline_messages_total counter\n"+
		"parley_offline_messages_total{event=\"delivered\"} %d\nparley_offline_messages_total{event=\"restored\"} %d\n",
		ls.OfflineDelivered, ls.OfflineRestored)
}

// refusedBy returns how many refusals the limit key counted.
func (c *limitCounters) refusedBy(key string) int64 {
	if n, ok := c.refused.Load(key); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

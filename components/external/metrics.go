package external

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/parley-im/parley/server"
)

// writeMetrics writes the component hosts' metrics, after the s2s ones'
// shape: a gauge of connected components, stanzas by direction,
// handshakes by result, held handshake answers, and what was bounced or
// refused, by cause; every series by host.
func writeMetrics(w io.Writer, hosts map[string]server.Handler) {
	if len(hosts) == 0 {
		return
	}
	names := slices.Sorted(maps.Keys(hosts))
	each := func(f func(name string, h *Host)) {
		for _, n := range names {
			f(n, hosts[n].(*Host))
		}
	}
	fmt.Fprint(w, "# HELP parley_component_connected Whether an external component is connected and authenticated (XEP-0114).\n"+
		"# TYPE parley_component_connected gauge\n")
	each(func(n string, h *Host) {
		v := 0
		if h.Connected() {
			v = 1
		}
		fmt.Fprintf(w, "parley_component_connected{host=%q} %d\n", n, v)
	})
	fmt.Fprint(w, "# HELP parley_component_stanzas_total Stanzas routed from the component (in) and written to it (out).\n"+
		"# TYPE parley_component_stanzas_total counter\n")
	each(func(n string, h *Host) {
		fmt.Fprintf(w, "parley_component_stanzas_total{host=%q,direction=\"in\"} %d\n", n, h.in.Load())
		fmt.Fprintf(w, "parley_component_stanzas_total{host=%q,direction=\"out\"} %d\n", n, h.out.Load())
	})
	fmt.Fprint(w, "# HELP parley_component_handshakes_total Handshakes checked against the secret, by result.\n"+
		"# TYPE parley_component_handshakes_total counter\n")
	each(func(n string, h *Host) {
		fmt.Fprintf(w, "parley_component_handshakes_total{host=%q,result=\"ok\"} %d\n", n, h.guard.ok.Load())
		fmt.Fprintf(w, "parley_component_handshakes_total{host=%q,result=\"wrong\"} %d\n", n, h.guard.wrong.Load())
	})
	fmt.Fprint(w, "# HELP parley_component_handshake_delays_total Handshake answers held after wrong handshakes.\n"+
		"# TYPE parley_component_handshake_delays_total counter\n")
	each(func(n string, h *Host) {
		fmt.Fprintf(w, "parley_component_handshake_delays_total{host=%q} %d\n", n, h.guard.delayed.Load())
	})
	fmt.Fprint(w, "# HELP parley_component_handshake_delay_seconds_total The time handshake answers were held, added up.\n"+
		"# TYPE parley_component_handshake_delay_seconds_total counter\n")
	each(func(n string, h *Host) {
		fmt.Fprintf(w, "parley_component_handshake_delay_seconds_total{host=%q} %g\n", n,
			time.Duration(h.guard.delayNanos.Load()).Seconds())
	})
	fmt.Fprint(w, "# HELP parley_component_bounced_total Stanzas for the component bounced, by cause.\n"+
		"# TYPE parley_component_bounced_total counter\n")
	each(func(n string, h *Host) {
		fmt.Fprintf(w, "parley_component_bounced_total{host=%q,cause=\"not_connected\"} %d\n", n, h.bounced.Load())
		fmt.Fprintf(w, "parley_component_bounced_total{host=%q,cause=\"queue_full\"} %d\n", n, h.full.Load())
	})
	fmt.Fprint(w, "# HELP parley_component_refused_connections_total Authenticated connections refused, by cause.\n"+
		"# TYPE parley_component_refused_connections_total counter\n")
	each(func(n string, h *Host) {
		fmt.Fprintf(w, "parley_component_refused_connections_total{host=%q,cause=\"conflict\"} %d\n", n, h.refused.Load())
	})
}

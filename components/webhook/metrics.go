package webhook

import (
	"fmt"
	"io"
	"sort"
	"sync/atomic"
	"time"
)

// latencyBuckets are the upper bounds, in seconds, of the request latency
// histogram.
var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// causes are the failure causes, in the order they are written.
var causes = []string{causeConnect, causeTimeout, causeStatus, causeJSON, causeReply, causeRefused, causeRedirect, causeQueueFull, causeQueueBytes, causeSenderShare, causeShutdown, causeNoAnswer}

// Metrics counts what a component does. Every field is safe for
// concurrent use; nothing here takes a lock.
type Metrics struct {
	requests atomic.Int64
	retries  atomic.Int64
	queued   atomic.Int64
	held     atomic.Int64
	failures map[string]*atomic.Int64
	buckets  []atomic.Int64 // cumulative counts are computed when written
	count    atomic.Int64
	sumNanos atomic.Int64
}

func newMetrics() *Metrics {
	m := &Metrics{failures: make(map[string]*atomic.Int64), buckets: make([]atomic.Int64, len(latencyBuckets)+1)}
	for _, c := range causes {
		m.failures[c] = new(atomic.Int64)
	}
	return m
}

func (m *Metrics) fail(cause string) { m.failures[cause].Add(1) }

func (m *Metrics) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(latencyBuckets) && s > latencyBuckets[i] {
		i++
	}
	m.buckets[i].Add(1)
	m.count.Add(1)
	m.sumNanos.Add(int64(d))
}

// Requests returns how many HTTP requests were made, retries included.
func (m *Metrics) Requests() int64 { return m.requests.Load() }

// Retries returns how many requests were retries.
func (m *Metrics) Retries() int64 { return m.retries.Load() }

// Failures returns how many deliveries failed for cause.
func (m *Metrics) Failures(cause string) int64 {
	if f, ok := m.failures[cause]; ok {
		return f.Load()
	}
	return 0
}

// QueueDepth returns how many stanzas wait to be posted.
func (m *Metrics) QueueDepth() int64 { return m.queued.Load() }

// QueueBytes returns the estimated memory of the stanzas waiting or being
// posted.
func (m *Metrics) QueueBytes() int64 { return m.held.Load() }

// WritePrometheus writes the metrics of several bot hosts in the
// Prometheus text format: one family at a time, each series labelled with
// its host, hosts in sorted order.
func WritePrometheus(w io.Writer, hosts map[string]*Metrics) {
	names := make([]string, 0, len(hosts))
	for n := range hosts {
		names = append(names, n)
	}
	sort.Strings(names)
	family := func(name, typ, help string, each func(l string, m *Metrics)) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, n := range names {
			each(fmt.Sprintf("host=%q", n), hosts[n])
		}
	}
	family("parley_bot_requests_total", "counter", "Webhook requests made, retries included.", func(l string, m *Metrics) {
		fmt.Fprintf(w, "parley_bot_requests_total{%s} %d\n", l, m.requests.Load())
	})
	family("parley_bot_retries_total", "counter", "Webhook requests that were retries.", func(l string, m *Metrics) {
		fmt.Fprintf(w, "parley_bot_retries_total{%s} %d\n", l, m.retries.Load())
	})
	family("parley_bot_queue_depth", "gauge", "Stanzas waiting to be posted to the webhook.", func(l string, m *Metrics) {
		fmt.Fprintf(w, "parley_bot_queue_depth{%s} %d\n", l, m.queued.Load())
	})
	family("parley_bot_queue_bytes", "gauge", "Estimated memory of the stanzas waiting or being posted.", func(l string, m *Metrics) {
		fmt.Fprintf(w, "parley_bot_queue_bytes{%s} %d\n", l, m.held.Load())
	})
	family("parley_bot_failures_total", "counter", "Deliveries that failed or stanzas the queue refused, by cause.", func(l string, m *Metrics) {
		for _, c := range causes {
			fmt.Fprintf(w, "parley_bot_failures_total{%s,cause=%q} %d\n", l, c, m.failures[c].Load())
		}
	})
	family("parley_bot_request_seconds", "histogram", "Webhook request latency.", func(l string, m *Metrics) {
		var cum int64
		for i, b := range latencyBuckets {
			cum += m.buckets[i].Load()
			fmt.Fprintf(w, "parley_bot_request_seconds_bucket{%s,le=\"%g\"} %d\n", l, b, cum)
		}
		cum += m.buckets[len(latencyBuckets)].Load()
		fmt.Fprintf(w, "parley_bot_request_seconds_bucket{%s,le=\"+Inf\"} %d\n", l, cum)
		fmt.Fprintf(w, "parley_bot_request_seconds_sum{%s} %g\n", l, time.Duration(m.sumNanos.Load()).Seconds())
		fmt.Fprintf(w, "parley_bot_request_seconds_count{%s} %d\n", l, m.count.Load())
	})
}

package server

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-im/parley/internal/ratelog"
	"github.com/parley-im/parley/internal/tokenbucket"
)

// tokenBucket is a bucket with its rates, clock and lock: rate tokens a
// second, up to burst at once. It is safe for concurrent use.
type tokenBucket struct {
	rate, burst float64
	now         func() time.Time

	mu sync.Mutex
	b  tokenbucket.Bucket
}

// newTokenBucket returns a full bucket.
func newTokenBucket(rate, burst float64, now func() time.Time) *tokenBucket {
	return &tokenBucket{rate: rate, burst: burst, now: now}
}

// wait reports whether n tokens are there now, taking none; when they are
// not, it returns how long until they will be.
func (t *tokenBucket) wait(n int) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b.Refill(t.now(), t.rate)
	return t.b.Missing(n, t.rate, t.burst)
}

// take takes n tokens when they are there; when they are not it takes
// none and returns how long until they will be.
func (t *tokenBucket) take(n int) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.b.Take(t.now(), n, t.rate, t.burst)
}

// Causes of the HTTP listener's own refusals, values of the cause label of
// parley_http_refused_total. The routes of host types add theirs
// ([HTTPAPI.Refuse]).
const (
	causeUnauthorized     = "unauthorized"      // 401: wrong or missing token
	causeTokenFailures    = "token_failures"    // 429: too many of those from one address
	causeTooLarge         = "too_large"         // 413: a body or a request too large
	causeReadTimeout      = "read_timeout"      // 408: the body did not arrive in time
	causeMetricsForbidden = "metrics_forbidden" // 403: /metrics from afar without a metrics_token
)

// refusalCauses lists the causes /metrics always shows, in its order;
// the causes of routes follow, in the order they came.
var refusalCauses = [...]string{causeUnauthorized, causeTokenFailures, causeTooLarge,
	causeReadTimeout, causeMetricsForbidden}

// refusals counts the HTTP listener's refusals by cause, and logs each
// cause once a minute (not once per request of a flood), with
// the number of refusals since it was last logged.
type refusals struct {
	log *slog.Logger

	mu     sync.Mutex
	causes []string // in the order /metrics writes them
	counts map[string]*atomic.Uint64

	logged ratelog.Limiter
}

// counter returns the counter of cause, making it if it is new.
func (r *refusals) counter(cause string) *atomic.Uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.counts == nil {
		r.counts = make(map[string]*atomic.Uint64)
		for _, c := range refusalCauses {
			r.causes = append(r.causes, c)
			r.counts[c] = new(atomic.Uint64)
		}
	}
	n, ok := r.counts[cause]
	if !ok {
		n = new(atomic.Uint64)
		r.counts[cause] = n
		r.causes = append(r.causes, cause)
	}
	return n
}

// count counts a refusal of cause, and logs msg with args when the cause
// was not logged in the last minute.
func (r *refusals) count(cause, msg string, args ...any) {
	r.counter(cause).Add(1)
	ok, quiet := r.logged.Allow(cause, time.Now())
	if ok && r.log != nil {
		r.log.Warn("http: "+msg, append(args, "cause", cause, "unlogged_before", quiet)...)
	}
}

// write writes the counts in the Prometheus text format.
func (r *refusals) write(w io.Writer) {
	r.counter(causeUnauthorized) // the fixed causes, on a zero refusals
	r.mu.Lock()
	causes := append([]string(nil), r.causes...)
	r.mu.Unlock()
	fmt.Fprintf(w, "# HELP parley_http_refused_total HTTP requests refused, by cause.\n"+
		"# TYPE parley_http_refused_total counter\n")
	for _, c := range causes {
		fmt.Fprintf(w, "parley_http_refused_total{cause=%q} %d\n", c, r.counter(c).Load())
	}
}

package main

import (
	"context"
	"fmt"
	"io"
	"time"
)

// idleResult is the JSON line of the idle scenario.
type idleResult struct {
	common
	Connections int64 `json:"connections"`
	// RSSBeforeKiB is the server's resident memory before the first
	// connection, RSSAfterKiB at the end of the hold.
	RSSBeforeKiB int64 `json:"rss_before_kib"`
	RSSAfterKiB  int64 `json:"rss_after_kib"`
	// RSSPerConnKiB is (after - before) / connections.
	RSSPerConnKiB float64 `json:"rss_per_conn_kib"`
	LoginS        float64 `json:"login_s"`
	LoginsPerS    float64 `json:"logins_per_s"`
	// ConnectToBound is of the logins that opened the connections.
	ConnectToBound latency `json:"connect_to_bound"`
}

// runIdle logs o.N accounts in and holds the connections for o.Duration:
// the measured window is the hold, in which an idle server should spend
// next to no CPU. The server's RSS is read before the first connection
// (after -create) and at the end of the hold.
func runIdle(ctx context.Context, o *options) report {
	r := &idleResult{}
	if err := prepare(ctx, o, o.N); err != nil {
		r.fail(err)
		return r
	}
	before, err := processRSS(o.PID)
	if err != nil {
		r.fail(fmt.Errorf("the server's memory: %w", err))
		return r
	}
	r.RSSBeforeKiB = before
	o.progressf("logging in %d clients, %d at a time", o.N, o.Concurrency)
	l := loginAll(ctx, o, o.N, o.Presence, false, nil)
	defer closeAll(l.conns)
	r.Mech = l.mech
	r.Connections = int64(len(l.times))
	r.LoginS = seconds(l.took)
	if l.took > 0 {
		r.LoginsPerS = round(float64(r.Connections) / l.took.Seconds())
	}
	r.ConnectToBound = summarize(l.times)
	if l.err != nil {
		r.Errors = l.errs
		r.fail(fmt.Errorf("%d logins failed; the first: %w", l.errs, l.err))
		return r
	}

	o.progressf("holding %d connections for %v", r.Connections, o.Duration)
	m, err := startMeter(o.PID)
	if err != nil {
		r.fail(err)
		return r
	}
	select {
	case <-time.After(o.Duration):
	case <-ctx.Done():
	}
	after, err := processRSS(o.PID)
	r.fail(m.stop(&r.common))
	if ctx.Err() != nil {
		r.fail(context.Cause(ctx))
	}
	if err != nil {
		r.fail(fmt.Errorf("the server's memory: %w", err))
	}
	r.RSSAfterKiB = after
	if r.Connections > 0 {
		r.RSSPerConnKiB = round(float64(after-before) / float64(r.Connections))
	}
	r.countDropped(l.conns)
	r.Errors = r.DroppedStream
	return r
}

func (r *idleResult) summary(w io.Writer) {
	fmt.Fprintf(w, "idle: %d connections, logged in in %.2f s (%.0f logins/s, connect to bound %s)\n",
		r.Connections, r.LoginS, r.LoginsPerS, r.ConnectToBound)
	fmt.Fprintf(w, "  server RSS: %d KiB before, %d KiB after: %.1f KiB per connection\n",
		r.RSSBeforeKiB, r.RSSAfterKiB, r.RSSPerConnKiB)
	fmt.Fprintf(w, "  held %.2f s; ", r.WindowS)
	if r.ServerCPUS != nil {
		fmt.Fprintf(w, "server CPU while idle: %.2f s; ", *r.ServerCPUS)
	}
	fmt.Fprintf(w, "load tool CPU: %.2f s; dropped streams: %d\n", r.LoadCPUS, r.DroppedStream)
}

package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// loginResult is the JSON line of the login scenario.
type loginResult struct {
	common
	Clients     int   `json:"clients"`
	Concurrency int   `json:"concurrency"`
	Logins      int64 `json:"logins"`
	// LoginsPerS counts successful logins per second of the window, from
	// the first dial to the last bind.
	LoginsPerS       float64  `json:"logins_per_s"`
	LoginsPerCPUS    *float64 `json:"logins_per_server_cpu_s,omitempty"`
	ConnectToBound   latency  `json:"connect_to_bound"`
	failureBreakdown string
}

// runLogin logs o.N accounts in, o.Concurrency at a time, and keeps every
// stream open until the last login is done, so that the window holds
// logins only; the streams are closed after it.
func runLogin(ctx context.Context, o *options) report {
	r := &loginResult{Clients: o.N, Concurrency: o.Concurrency}
	if err := prepare(ctx, o, o.N); err != nil {
		r.fail(err)
		return r
	}
	o.progressf("logging in %d clients, %d at a time", o.N, o.Concurrency)
	m, err := startMeter(o.PID)
	if err != nil {
		r.fail(err)
		return r
	}
	l := loginAll(ctx, o, o.N, false, false, nil)
	if ctx.Err() != nil {
		r.fail(context.Cause(ctx))
	}
	r.fail(m.stop(&r.common))
	defer closeAll(l.conns)
	r.Mech = l.mech
	r.Logins = int64(len(l.times))
	r.Errors = l.errs
	r.LoginsPerS = r.rate(r.Logins)
	r.LoginsPerCPUS = r.perCPU(r.Logins)
	r.ConnectToBound = summarize(l.times)
	r.failureBreakdown = breakdown(l.causes)
	if l.err != nil {
		r.fail(fmt.Errorf("%d logins failed; the first: %w", l.errs, l.err))
	}
	return r
}

func (r *loginResult) summary(w io.Writer) {
	fmt.Fprintf(w, "login: %d of %d logins in %.2f s, %d at a time: %.0f logins/s",
		r.Logins, r.Clients, r.WindowS, r.Concurrency, r.LoginsPerS)
	if r.Mech != "" {
		fmt.Fprintf(w, " (%s)", r.Mech)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  connect to bound: %s\n", r.ConnectToBound)
	r.cpuLine(w, r.Logins, "logins")
	if r.failureBreakdown != "" {
		fmt.Fprintf(w, "  failures: %s\n", r.failureBreakdown)
	}
}

// breakdown formats failure counts as "timeout 3, auth not-authorized 1".
func breakdown(causes map[string]int64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(causes)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, causes[k]))
	}
	return strings.Join(parts, ", ")
}

// prepare gets a run ready for n connections, of accounts 0..n-1: it
// raises the open-file limit and, with -create, makes the accounts.
func prepare(ctx context.Context, o *options, n int) error {
	// Each connection is a file; the webhook, the /proc reads and the
	// runtime need a few more.
	if err := raiseNoFile(uint64(n) + 64); err != nil {
		return err
	}
	if o.Create {
		if _, _, err := createAccounts(ctx, o, n); err != nil {
			return err
		}
	}
	return nil
}

package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// common are the fields of every scenario's JSON line.
type common struct {
	Scenario string `json:"scenario"`
	// OK is false when anything failed: then Error or Errors says what.
	OK     bool   `json:"ok"`
	Error  string `json:"error,omitempty"`
	Server string `json:"server"`
	// Transport is tcp or ws (XMPP over WebSocket).
	Transport string `json:"transport"`
	Domain    string `json:"domain"`
	// Mech is the SASL mechanism the clients logged in with.
	Mech string `json:"mech,omitempty"`
	// Errors counts what went wrong one client or message at a time.
	Errors int64 `json:"errors"`
	// WindowS is the measured window, in seconds.
	WindowS float64 `json:"window_s"`
	// ServerCPUS is the server's CPU time over the window, when its PID
	// was given.
	ServerCPUS *float64 `json:"server_cpu_s,omitempty"`
	// LoadCPUS is this tool's own CPU time over the window: on one
	// machine, the share the server did not get.
	LoadCPUS float64 `json:"load_cpu_s"`
	// DroppedStream counts the streams the server ended while the
	// scenario held them (not the login scenario's).
	DroppedStream int64 `json:"dropped_streams,omitempty"`

	window time.Duration
}

func (c *common) base() *common { return c }

// loggedIn records the logins' mechanism and, when a login failed (a
// scenario that needs every client), the failures; it reports whether all
// logged in.
func (c *common) loggedIn(l *logins) bool {
	c.Mech = l.mech
	if l.err != nil {
		c.Errors = l.errs
		c.fail(fmt.Errorf("login: %w", l.err))
		return false
	}
	return true
}

// countDropped counts the connections of conns whose stream the server
// ended, each a failure of the run.
func (c *common) countDropped(conns []*Conn) {
	for _, cn := range conns {
		if cn == nil {
			continue
		}
		if dropped, err := cn.Dropped(); dropped {
			c.DroppedStream++
			c.fail(fmt.Errorf("the server ended the stream of %s: %v", cn.JID, err))
		}
	}
}

// fail records the error that ended the run (the first one).
func (c *common) fail(err error) {
	if err != nil && c.Error == "" {
		c.Error = err.Error()
	}
}

// perCPU returns n per server CPU-second, nil without the server's CPU
// time (or with too little of it to divide by).
func (c *common) perCPU(n int64) *float64 {
	if c.ServerCPUS == nil || *c.ServerCPUS <= 0 {
		return nil
	}
	v := round(float64(n) / *c.ServerCPUS)
	return &v
}

// rate returns n per second of the window.
func (c *common) rate(n int64) float64 {
	if c.window <= 0 {
		return 0
	}
	return round(float64(n) / c.window.Seconds())
}

// cpuLine writes the CPU part of a summary: n things per server
// CPU-second when the server's CPU time is known.
func (c *common) cpuLine(w io.Writer, n int64, what string) {
	if c.ServerCPUS == nil {
		fmt.Fprintf(w, "  server CPU: not measured (give -pid); load tool CPU: %.2f s\n", c.LoadCPUS)
		return
	}
	fmt.Fprintf(w, "  server CPU: %.2f s", *c.ServerCPUS)
	if p := c.perCPU(n); p != nil {
		fmt.Fprintf(w, " (%.0f %s per CPU-second)", *p, what)
	}
	fmt.Fprintf(w, "; load tool CPU: %.2f s\n", c.LoadCPUS)
}

// latency is a distribution of durations, in microseconds in JSON.
type latency struct {
	P50 int64 `json:"p50_us"`
	P99 int64 `json:"p99_us"`
	Max int64 `json:"max_us"`
}

// summarize sorts d and returns its percentiles (nearest rank).
func summarize(d []time.Duration) latency {
	if len(d) == 0 {
		return latency{}
	}
	slices.Sort(d)
	return latency{
		P50: percentile(d, 50).Microseconds(),
		P99: percentile(d, 99).Microseconds(),
		Max: d[len(d)-1].Microseconds(),
	}
}

// percentile returns the p-th percentile of sorted by the nearest-rank
// method: the smallest value that at least p percent of the values do not
// exceed.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

// String formats the distribution for the summary.
func (l latency) String() string {
	return fmt.Sprintf("p50 %s, p99 %s, max %s", us(l.P50), us(l.P99), us(l.Max))
}

// us formats microseconds as µs or ms.
func us(v int64) string {
	if v < 10000 {
		return fmt.Sprintf("%d µs", v)
	}
	return fmt.Sprintf("%.1f ms", float64(v)/1000)
}

func seconds(d time.Duration) float64 { return round(d.Seconds()) }

// round keeps three decimals: enough for rates and seconds, and short.
func round(v float64) float64 { return math.Round(v*1000) / 1000 }

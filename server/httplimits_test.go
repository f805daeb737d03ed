package server

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// fakeClock is a clock that tests move by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestTokenBucket(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	b := newTokenBucket(2, 5, clock.now) // 2 a second, 5 at once
	steps := []struct {
		name    string
		advance time.Duration
		take    int
		ok      bool
		wait    time.Duration // when not ok
	}{
		{"a full bucket gives its burst", 0, 5, true, 0},
		{"an empty one refuses, saying when", 0, 1, false, 500 * time.Millisecond},
		{"a refusal takes nothing", 250 * time.Millisecond, 1, false, 250 * time.Millisecond},
		{"it refills at its rate", 250 * time.Millisecond, 1, true, 0},
		{"a large take waits for all its tokens", 0, 4, false, 2 * time.Second},
		{"it never holds more than its burst", time.Hour, 6, false, 500 * time.Millisecond},
		{"the burst is there after a long wait", 0, 5, true, 0},
	}
	for _, st := range steps {
		clock.t = clock.t.Add(st.advance)
		wait, ok := b.take(st.take)
		if ok != st.ok || (!ok && wait != st.wait) {
			t.Fatalf("%s: take(%d) = %v, %v; want %v, %v", st.name, st.take, wait, ok, st.wait, st.ok)
		}
	}
}

func TestFailureLimiter(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	l := newFailureLimiter(2, time.Minute, clock.now)
	type step struct {
		advance time.Duration
		fail    string // an address that fails, or ""
		check   string // an address whose block is checked
		blocked bool
		left    time.Duration // when blocked
	}
	steps := []struct {
		name string
		step
	}{
		{"an address without failures is free", step{check: "192.0.2.1:1000"}},
		{"one failure is under the limit", step{fail: "192.0.2.1:1000", check: "192.0.2.1:1001"}},
		{"the limit blocks it, whatever its port", step{advance: 10 * time.Second, fail: "192.0.2.1:1002", check: "192.0.2.1:9", blocked: true, left: 50 * time.Second}},
		{"another IPv4 address is free", step{check: "192.0.2.2:1000"}},
		{"an IPv4-mapped IPv6 address is the IPv4 one", step{check: "[::ffff:192.0.2.1]:1000", blocked: true, left: 50 * time.Second}},
		{"the block ends with the window", step{advance: 50 * time.Second, check: "192.0.2.1:1000"}},
		{"IPv6 failures count by /64", step{fail: "[2001:db8::1]:1000"}},
		{"a second address of the /64 reaches the limit", step{fail: "[2001:db8::2]:1000", check: "[2001:db8::ffff:1]:5", blocked: true, left: time.Minute}},
		{"another /64 is free", step{check: "[2001:db8:0:1::1]:5"}},
		{"an address that is not ip:port is never blocked", step{fail: "@unix", check: "@unix"}},
	}
	for _, st := range steps {
		clock.t = clock.t.Add(st.advance)
		if st.fail != "" {
			l.fail(st.fail)
		}
		if st.check == "" {
			continue
		}
		left, blocked := l.blocked(st.check)
		if blocked != st.blocked || (blocked && left != st.left) {
			t.Fatalf("%s: blocked(%s) = %v, %v; want %v, %v", st.name, st.check, left, blocked, st.left, st.blocked)
		}
	}

	t.Run("its memory is bounded, and expired windows are forgotten to make room", func(t *testing.T) {
		clock := &fakeClock{t: time.Unix(1_000_000, 0)}
		l := newFailureLimiter(1, time.Minute, clock.now)
		addr := func(i int) string { return fmt.Sprintf("10.%d.%d.%d:1", i>>16&255, i>>8&255, i&255) }
		for i := range maxFailureAddrs + 10 {
			l.fail(addr(i))
		}
		if n := len(l.byAddr); n != maxFailureAddrs {
			t.Errorf("%d addresses remembered, want the bound %d", n, maxFailureAddrs)
		}
		if _, blocked := l.blocked(addr(maxFailureAddrs + 5)); blocked {
			t.Error("an address past the bound was remembered")
		}
		clock.t = clock.t.Add(time.Minute)
		l.fail("192.0.2.9:1")
		if _, blocked := l.blocked("192.0.2.9:1"); !blocked || len(l.byAddr) != 1 {
			t.Errorf("after the window: blocked %v with %d addresses remembered; want the new one alone", blocked, len(l.byAddr))
		}
	})
}

func TestRefusalsLogOncePerCausePerMinute(t *testing.T) {
	var buf bytes.Buffer
	r := refusals{log: slog.New(slog.NewTextHandler(&buf, nil))}
	for range 1000 {
		r.count(causeUnauthorized, "wrong token")
	}
	r.count(causeAPIRate, "rate")
	if n := strings.Count(buf.String(), "\n"); n != 2 {
		t.Errorf("%d log lines for 1000 refusals of one cause and one of another, want 2:\n%s", n, buf.String())
	}
	var m strings.Builder
	r.write(&m)
	for _, want := range []string{`parley_http_refused_total{cause="unauthorized"} 1000`, `parley_http_refused_total{cause="api_rate"} 1`,
		`parley_http_refused_total{cause="read_timeout"} 0`} {
		if !strings.Contains(m.String(), want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, m.String())
		}
	}
}

// BenchmarkSendChecks measures what the send API's limits add to each
// request: the throttle lookup, the constant-time token check and the
// host's token bucket.
func BenchmarkSendChecks(b *testing.B) {
	l := newFailureLimiter(5, time.Minute, time.Now)
	bucket := newTokenBucket(1e9, 1e9, time.Now)
	r, _ := http.NewRequest(http.MethodPost, "http://x/api/bots/b/send", nil)
	r.RemoteAddr = "192.0.2.1:1234"
	r.Header.Set("Authorization", "Bearer a-long-random-token-of-forty-characters")
	sum := sha256.Sum256([]byte("a-long-random-token-of-forty-characters"))
	b.ReportAllocs()
	for b.Loop() {
		if _, blocked := l.blocked(r.RemoteAddr); blocked || !tokenMatches(r, &sum) {
			b.Fatal("refused")
		}
		if _, ok := bucket.take(1); !ok {
			b.Fatal("limited")
		}
	}
}

package server

import (
	"bytes"
	"crypto/sha256"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/clientaddr"
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

func TestRefusalsLogOncePerCausePerMinute(t *testing.T) {
	var buf bytes.Buffer
	r := refusals{log: slog.New(slog.NewTextHandler(&buf, nil))}
	for range 1000 {
		r.count(causeUnauthorized, "wrong token")
	}
	r.count("api_rate", "rate")
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
	l := clientaddr.NewLimiter(5, time.Minute, time.Now)
	bucket := newTokenBucket(1e9, 1e9, time.Now)
	r, _ := http.NewRequest(http.MethodPost, "http://x/api/bots/b/send", nil)
	r.RemoteAddr = "192.0.2.1:1234"
	r.Header.Set("Authorization", "Bearer a-long-random-token-of-forty-characters")
	sum := sha256.Sum256([]byte("a-long-random-token-of-forty-characters"))
	b.ReportAllocs()
	for b.Loop() {
		if _, blocked := l.Blocked(r.RemoteAddr); blocked || !tokenMatches(r, &sum) {
			b.Fatal("refused")
		}
		if _, ok := bucket.take(1); !ok {
			b.Fatal("limited")
		}
	}
}

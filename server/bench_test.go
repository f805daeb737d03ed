package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/components/webhook"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
)

// BenchmarkBotRoundTrip measures a user's message to an HTTP bot and the
// bot's reply back, through TLS, the server and a real HTTP webhook that
// answers at once. It reports round trips per second and the latency
// Parley adds: the client's round trip minus the time spent inside the
// webhook's handler.
func BenchmarkBotRoundTrip(b *testing.B) {
	for _, convs := range []int{1, 50} {
		b.Run(fmt.Sprintf("conversations=%d", convs), func(b *testing.B) {
			var hookNanos atomic.Int64
			hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				start := time.Now()
				var req webhook.Request
				_ = json.NewDecoder(r.Body).Decode(&req)
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(webhook.Reply{Body: req.Body})
				hookNanos.Add(int64(time.Since(start)))
			}))
			defer hook.Close()
			s := parleytest.Start(b, parleytest.WithBot("bots.localhost", hook.URL, func(h *conf.Host) {
				webhook.OptionsOf(h).Concurrency = 64
			}))
			conns := make([]*parleytest.Conn, convs)
			for i := range conns {
				user := fmt.Sprintf("u%d@localhost", i)
				s.AddUser(user, "pw")
				conns[i] = s.Login(user, "pw", "bench")
			}
			per := make([][]time.Duration, convs)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for i, c := range conns {
				n := b.N / convs
				if i < b.N%convs {
					n++
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := 0; j < n; j++ {
						t0 := time.Now()
						c.Send("<message to='echo@bots.localhost' type='chat' id='%d'><body>ping</body></message>", j)
						st := c.NextStanza()
						per[i] = append(per[i], time.Since(t0))
						if st.Type != "chat" || !strings.Contains(c.String(st.El), "ping") {
							b.Errorf("got %s", c.String(st.El))
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			var all []time.Duration
			var total time.Duration
			for _, p := range per {
				all = append(all, p...)
				for _, d := range p {
					total += d
				}
			}
			if len(all) == 0 {
				return
			}
			sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
			n := float64(len(all))
			b.ReportMetric(n/elapsed.Seconds(), "roundtrips/s")
			b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
			added := (float64(total) - float64(hookNanos.Load())) / n
			b.ReportMetric(added/1e3, "added-µs/roundtrip")
		})
	}
}

// BenchmarkMessageRoundTrip sends a message of each size between two
// clients and waits for it: the c2s hot path (read, parse, route,
// serialize, write) twice over TLS.
func BenchmarkMessageRoundTrip(b *testing.B) {
	for _, size := range []int{100, 1 << 10, 10 << 10} {
		b.Run(fmt.Sprintf("body=%d", size), func(b *testing.B) {
			// No rate limit: it would be what is measured.
			s := parleytest.Start(b, parleytest.WithConfig(func(c *conf.Config) { c.Limits.Rate = 0 }))
			s.AddUser("a@localhost", "pw")
			s.AddUser("b@localhost", "pw")
			a := s.Login("a@localhost", "pw", "x")
			c := s.Login("b@localhost", "pw", "y")
			body := strings.Repeat("x", size)
			msg := fmt.Sprintf("<message to='b@localhost/y' type='chat'><body>%s</body></message>", body)
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				a.Send("%s", msg)
				c.Next()
			}
		})
	}
}

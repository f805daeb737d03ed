package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/parley-im/parley/components/webhook"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
)

// BenchmarkBotSendAPI measures POST /api/bots/<host>/send over loopback
// with keep-alive connections: authentication, the limits, decoding and
// routing of one message to an online user, who reads it.
func BenchmarkBotSendAPI(b *testing.B) {
	s := parleytest.Start(b, parleytest.WithBot("bots.localhost", "http://127.0.0.1:1/", func(h *conf.Host) {
		webhook.OptionsOf(h).APIToken = "bench-token"
		// The bucket never empties: the benchmark measures the work.
		webhook.OptionsOf(h).APIRate, webhook.OptionsOf(h).APIBurst = 1<<30, 1<<30
	}))
	s.AddUser("bob@localhost", "pw")
	bob := s.Login("bob@localhost", "pw", "bench")
	go func() {
		// Bob reads every message until the server shuts down.
		for {
			if _, err := bob.NextErr(); err != nil {
				return
			}
		}
	}()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	url := s.HTTPURL + "/api/bots/bots.localhost/send"
	const body = `{"to":"bob@localhost/bench","from":"ci@bots.localhost","body":"build 42 passed"}`
	b.SetParallelism(4)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer bench-token")
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

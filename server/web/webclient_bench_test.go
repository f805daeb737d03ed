package web_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
)

// BenchmarkWebClientPage measures GET /chat over loopback with keep-alive
// connections: the check for Converse.js, the domain and the WebSocket
// URL, and the page with its config. The files themselves are served by
// net/http's file server and not measured.
func BenchmarkWebClientPage(b *testing.B) {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "converse.min.js"), []byte("/**/"), 0o600); err != nil {
		b.Fatal(err)
	}
	s := parleytest.Start(b, parleytest.WithConfig(func(c *conf.Config) { c.HTTP.WebClientDir = dir }))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	url := s.HTTPURL + "/chat"
	b.SetParallelism(4)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

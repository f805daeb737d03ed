package upload_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/parley-im/parley/components/upload"
	"github.com/parley-im/parley/conf"
)

// benchSize is issue #15's benchmark file: 100 MB.
const benchSize = 100_000_000

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startBench starts a test server whose store and uploads are on disk
// (data_dir), with room for the benchmark's file.
func startBench(b *testing.B) *env {
	e := startEnv(b, func(o *upload.Options) {
		o.MaxFileSize = benchSize
		o.QuotaPerUser = 1000 * conf.GB
	})
	return e
}

// BenchmarkUpload100MB: slot request and PUT of a 100 MB file over
// loopback, fsync and rename included. cpu-ms/op is the whole process's
// CPU (server and the Go client in it) for one upload.
func BenchmarkUpload100MB(b *testing.B) {
	e := startBench(b)
	body := bytes.Repeat([]byte("parley upload benchmark "), benchSize/24+1)[:benchSize]
	b.SetBytes(benchSize)
	b.ReportAllocs()
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		sl := mustSlot(b, e.alice, "bench.bin", benchSize, "application/octet-stream")
		c0 := cpuTime(b)
		b.StartTimer()
		putSlot(b, sl, "application/octet-stream", body)
		b.StopTimer()
		cpu += cpuTime(b) - c0
		// The disk holds one benchmark file at a time.
		_ = os.Remove(filepath.Join(e.svc.Dir(), path.Base(path.Dir(sl.GetURL))))
		b.StartTimer()
	}
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
}

// BenchmarkDownload100MB: GET of a 100 MB file over loopback.
func BenchmarkDownload100MB(b *testing.B) {
	e := startBench(b)
	body := bytes.Repeat([]byte("parley upload benchmark "), benchSize/24+1)[:benchSize]
	sl := mustSlot(b, e.alice, "bench.bin", benchSize, "application/octet-stream")
	putSlot(b, sl, "application/octet-stream", body)
	b.SetBytes(benchSize)
	var cpu time.Duration
	for b.Loop() {
		c0 := cpuTime(b)
		resp, err := http.Get(sl.GetURL)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != benchSize {
			b.Fatalf("GET: %d bytes, %v", n, err)
		}
		cpu += cpuTime(b) - c0
	}
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
}

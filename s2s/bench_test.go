package s2s_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
)

// BenchmarkS2SMessage sends chat messages from a client of a.example to
// a client of b.example: c2s in, across the authenticated s2s stream
// between two in-process servers, c2s out ("s2s"); and, for a baseline
// measured under the same load, between two clients of one server
// ("local"). Both sides run in this process, so besides ns/op it
// reports cpu-ns/op, the process's CPU time per message (both servers
// and both clients), which the machine's other work does not inflate.
func BenchmarkS2SMessage(b *testing.B) {
	b.Run("s2s", func(b *testing.B) {
		srv := parleytest.StartFederated(b, []string{"a.example", "b.example"})
		srv[0].AddUser("alice@a.example", "pw")
		srv[1].AddUser("bob@b.example", "pw")
		benchMessages(b, srv[0].Login("alice@a.example", "pw", "phone"), srv[1].Login("bob@b.example", "pw", "laptop"))
	})
	// The same with [s2s] rate = 0: what pacing each server stream by
	// the default rate (10 MiB/s) costs while under it.
	b.Run("s2s-norate", func(b *testing.B) {
		srv := parleytest.StartFederated(b, []string{"a.example", "b.example"},
			parleytest.WithConfig(func(c *conf.Config) { c.S2S.Rate = 0 }))
		srv[0].AddUser("alice@a.example", "pw")
		srv[1].AddUser("bob@b.example", "pw")
		benchMessages(b, srv[0].Login("alice@a.example", "pw", "phone"), srv[1].Login("bob@b.example", "pw", "laptop"))
	})
	b.Run("local", func(b *testing.B) {
		s := parleytest.Start(b, parleytest.WithHost("b.example", ""))
		s.AddUser("alice@b.example", "pw")
		s.AddUser("bob@b.example", "pw")
		benchMessages(b, s.Login("alice@b.example", "pw", "phone"), s.Login("bob@b.example", "pw", "laptop"))
	})
}

// benchMessages sends b.N messages from one client to bob@b.example's
// laptop, with a window of them in flight, as a busy stream has.
func benchMessages(b *testing.B, from, to *parleytest.Conn) {
	const msg = "<message type='chat' to='bob@b.example/laptop'><body>hello across</body></message>"
	from.Send(msg)
	to.Next() // the route (and the s2s stream) is up
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime()
	const window = 64
	sent := 0
	for i := 0; i < b.N; i++ {
		for sent < b.N && sent-i < window {
			from.Send(msg)
			sent++
		}
		if el := to.Next(); el.Tag != "message" {
			b.Fatalf("got %s", to.String(el))
		}
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

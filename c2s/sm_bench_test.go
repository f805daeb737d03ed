package c2s_test

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/parley-im/parley/parleytest"
)

// BenchmarkResume measures what a client's reconnection costs, through
// real TLS on loopback: a TCP connection, STARTTLS (a full TLS 1.3
// handshake: the client keeps no session tickets), SASL PLAIN (checked
// against the stored SCRAM-SHA-256 keys at parleytest's 4,096 iterations)
// and the stream restart, then
//
//   - auth_only: nothing more (the part every arm shares);
//   - login_bind: a fresh session: bind, and the <iq/> result;
//   - resume/unacked=N: <resume/> of a detached session, and the
//     <resumed/> with the N stanzas the client never acknowledged sent
//     again (the client keeps h at 0 and never answers <r/>, so the same
//     N are unacknowledged at every resume).
//
// Client and server run in this process, so ns/op, cpu-ns/op (the
// process's CPU time) and allocs/op are both sides' together: the server's own cost is what an arm adds over
// auth_only, plus its share of that. Closing the previous connection (and
// the server noticing, detaching or ending the session) is not timed,
// though the server may still be at it when the next iteration starts.
func BenchmarkResume(b *testing.B) {
	b.Run("auth_only", func(b *testing.B) {
		s := smServer(b, 0, time.Hour)
		b.ReportAllocs()
		cpu := startCPU(b)
		for b.Loop() {
			c := smLogin(b, s, "alice")
			b.StopTimer()
			c.Close()
			b.StartTimer()
		}
		cpu.report()
	})
	b.Run("login_bind", func(b *testing.B) {
		s := smServer(b, 0, time.Hour)
		b.ReportAllocs()
		cpu := startCPU(b)
		for b.Loop() {
			c := smLogin(b, s, "alice")
			c.Bind("a")
			b.StopTimer()
			c.Close()
			b.StartTimer()
		}
		cpu.report()
	})
	for _, n := range []int{0, 100} {
		b.Run(fmt.Sprintf("resume/unacked=%d", n), func(b *testing.B) {
			s := smServer(b, 0, time.Hour)
			a, enabled := enable(b, s, "alice", "a", "resume='true'")
			id := enabled.SelectAttrValue("id", "")
			c := a.c
			if n > 0 {
				bob := s.Login("bob@localhost", "pw", "b")
				for i := range n {
					bob.Send("<message to='alice@localhost/a' type='chat' id='m%d'><body>%d</body></message>", i, i)
				}
				readMessages(b, c, n)
			}
			b.ReportAllocs()
			cpu := startCPU(b)
			for b.Loop() {
				b.StopTimer()
				c.Close()
				// Let the server see the connection go and detach
				// the session (a resume of a session still attached
				// takes its connection away first: correct, but not
				// the case measured).
				runtime.Gosched()
				time.Sleep(time.Millisecond)
				b.StartTimer()
				c = smLogin(b, s, "alice")
				c.Send("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='0'/>", id)
				if el := c.Next(); el.Tag != "resumed" {
					b.Fatalf("resume: %s", c.String(el))
				}
				readMessages(b, c, n)
			}
			cpu.report()
		})
	}
}

// cpuMeter reports the process's CPU time (user and system, every
// goroutine: both sides, and the untimed closes too) per iteration as
// cpu-ns/op: wall time alone also counts the waits between the two sides.
type cpuMeter struct {
	b     *testing.B
	start time.Duration
}

func startCPU(b *testing.B) *cpuMeter { return &cpuMeter{b: b, start: cpuTime()} }

func (m *cpuMeter) report() {
	m.b.ReportMetric(float64(cpuTime()-m.start)/float64(m.b.N), "cpu-ns/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// readMessages reads until n messages came, skipping anything else (the
// server's <r/>), and acknowledges nothing.
func readMessages(b *testing.B, c *parleytest.Conn, n int) {
	b.Helper()
	for got := 0; got < n; {
		if el := c.Next(); el.Tag == "message" {
			got++
		}
	}
}

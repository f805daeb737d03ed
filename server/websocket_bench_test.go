package server_test

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
)

// BenchmarkTransportRoundTrip sends a 100-byte chat message from one
// client to another of the same transport and waits for it: TCP with
// STARTTLS, WebSocket over plain HTTP (ws://, loopback) and over HTTPS
// (wss://). Client and server share this process, so cpu-ns/op counts
// both sides (the Go WebSocket client's framing too); msgs/cpu-s is its
// inverse.
func BenchmarkTransportRoundTrip(b *testing.B) {
	for _, transport := range []string{"tcp", "ws", "wss"} {
		b.Run(transport, func(b *testing.B) {
			s := parleytest.Start(b, parleytest.WithConfig(func(c *conf.Config) {
				c.Limits.Rate = 0 // it would be what is measured
				c.HTTP.TLS = transport == "wss"
			}))
			s.AddUser("a@localhost", "pw")
			s.AddUser("b@localhost", "pw")
			var a, c *parleytest.Conn
			switch transport {
			case "tcp":
				a, c = s.Login("a@localhost", "pw", "x"), s.Login("b@localhost", "pw", "y")
			default:
				a, c = loginWS(b, s, "a@localhost", "x"), loginWS(b, s, "b@localhost", "y")
			}
			msg := fmt.Sprintf("<message xmlns='jabber:client' to='b@localhost/y' type='chat'><body>%s</body></message>", strings.Repeat("x", 100))
			b.ReportAllocs()
			b.ResetTimer()
			start := benchCPU()
			for i := 0; i < b.N; i++ {
				a.Send("%s", msg)
				c.Next()
			}
			cpu := benchCPU() - start
			b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(b.N)/cpu.Seconds(), "msgs/cpu-s")
		})
	}
}

// loginWS logs in over ws:// or, when the listener is HTTPS, wss://.
func loginWS(b *testing.B, s *parleytest.Server, jid, resource string) *parleytest.Conn {
	if !strings.HasPrefix(s.HTTPURL, "https") {
		return s.LoginWebSocket(jid, "pw", resource)
	}
	c, _, err := s.DialWebSocketWith(parleytest.WSOptions{TLS: s.TLSConfig("localhost")})
	if err != nil {
		b.Fatal(err)
	}
	c.Open("localhost")
	local, _, _ := strings.Cut(jid, "@")
	if el := c.AuthSCRAM("SCRAM-SHA-256", local, "pw", "n", nil); el.Tag != "success" {
		b.Fatalf("login: %s", c.String(el))
	}
	c.Open("localhost")
	c.Bind(resource)
	return c
}

// benchCPU is the process's user and system CPU time so far.
func benchCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

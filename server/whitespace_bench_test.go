package server_test

import (
	"strings"
	"testing"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
)

// BenchmarkWhitespaceFlood sends white space as fast as a client can write
// it, 64 KiB a write, to a stream before authentication (no TLS) and to a
// bound TLS session: keepalives cost the server little per byte (issue #17
// row 6; the figures are in BENCHMARKS.md).
func BenchmarkWhitespaceFlood(b *testing.B) {
	s := parleytest.Start(b, parleytest.WithConfig(func(c *conf.Config) { c.Limits.Rate = 0 }))
	s.AddUser("alice@localhost", "pw")
	for _, tc := range []string{"preauth", "bound"} {
		b.Run(tc, func(b *testing.B) {
			var c *parleytest.Conn
			if tc == "preauth" {
				c = s.DialRaw()
				c.Open("localhost")
			} else {
				c = s.Login("alice@localhost", "pw", "r")
			}
			sp := []byte(strings.Repeat(" ", 1<<16))
			b.SetBytes(1 << 16)
			b.ResetTimer()
			for range b.N {
				if _, err := c.Conn.Write(sp); err != nil {
					b.Fatal(err)
				}
			}
			if tc == "preauth" {
				c.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>=</auth>")
				c.Next()
			} else {
				c.Sync()
			}
		})
	}
}

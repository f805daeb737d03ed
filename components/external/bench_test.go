package external_test

import (
	"testing"

	"github.com/parley-im/parley/xmpp"
)

// BenchmarkComponentRoundTrip: a client's message to a user of the
// component's domain, and the component's answer back to the client,
// over real loopback streams (the component is raw XML, answering as it
// reads).
func BenchmarkComponentRoundTrip(b *testing.B) {
	s, addr := start(b)
	s.AddUser("alice@localhost", "a")
	alice := s.Login("alice@localhost", "a", "phone")
	c, err := login(b, addr, gw, secret)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		alice.Send("<message to='bob@gw.localhost' type='chat' id='r'><body>ping</body></message>")
		if st := c.Next(); st.Kind != xmpp.KindMessage {
			b.Fatalf("the component got %s", str(st.El))
		}
		c.Send("<message from='bob@gw.localhost' to='alice@localhost/phone' type='chat' id='r'><body>pong</body></message>")
		if st := alice.NextStanza(); st.Kind != xmpp.KindMessage {
			b.Fatalf("alice got %s", alice.String(st.El))
		}
	}
}

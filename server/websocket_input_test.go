package server_test

import (
	"errors"
	"testing"

	"github.com/coder/websocket"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// The c2s stream's refusals over WebSocket: TCP's table (badInputs, in
// c2s_raw_test.go) and what only the WebSocket framing can get wrong. The
// endpoint itself (package server/web) is tested there.

// TestWebSocketBadInput runs the TCP table of bad input over WebSocket,
// and what only WebSocket can get wrong. A stream error comes as a
// <stream:error/> message, then <close/> (RFC 7395 §3.6).
func TestWebSocketBadInput(t *testing.T) {
	s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) {
		c.Limits.StanzaSize = 10000
	}))
	for _, u := range []string{"alice", "bob", "carol"} {
		s.AddUser(u+"@localhost", "secret-"+u)
	}
	bob := s.Login("bob@localhost", "secret-bob", "desk")
	carol := s.LoginWebSocket("carol@localhost", "secret-carol", "desk")
	for _, tt := range badInputs {
		t.Run(tt.name, func(t *testing.T) {
			alice := s.LoginWebSocket("alice@localhost", "secret-alice", "")
			alice.Send("%s", tt.send)
			alice.ExpectStreamError(tt.want)
			stillServing(t, bob, carol)
		})
	}

	before := []struct {
		name string
		send string
		want xmpp.StreamCondition
	}{
		{"a TCP stream header instead of <open/>", "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='" +
			xmpp.NSStream + "' to='localhost' version='1.0'>", xmpp.InvalidNamespace},
		{"a stanza before <open/>", "<message to='bob@localhost'><body>x</body></message>", xmpp.InvalidNamespace},
		{"<open/> in another namespace", "<open xmlns='urn:other' to='localhost' version='1.0'/>", xmpp.InvalidNamespace},
		{"<open/> to a domain not served", "<open xmlns='" + xmpp.NSFraming + "' to='elsewhere.example' version='1.0'/>", xmpp.HostUnknown},
	}
	for _, tt := range before {
		t.Run(tt.name, func(t *testing.T) {
			c := s.DialWebSocket()
			c.Send("%s", tt.send)
			// The server's <open/>, then the error and <close/>.
			var se *xmpp.StreamError
			if err := c.ReadHeaderErr(); !errors.As(err, &se) || se.Condition != tt.want {
				t.Fatalf("got %v, want stream error %q", err, tt.want)
			}
			if _, err := c.NextErr(); !errors.Is(err, xmpp.ErrStreamClosed) {
				t.Fatalf("after the stream error: %v, want <close/>", err)
			}
			stillServing(t, bob, carol)
		})
	}

	t.Run("a second <open/> in an open stream", func(t *testing.T) {
		alice := s.LoginWebSocket("alice@localhost", "secret-alice", "")
		alice.Send("<open xmlns='%s' to='localhost' version='1.0'/>", xmpp.NSFraming)
		alice.ExpectStreamError(xmpp.InvalidXML)
	})
	t.Run("a binary message", func(t *testing.T) {
		alice := s.LoginWebSocket("alice@localhost", "secret-alice", "")
		ws := alice.Conn.(*parleytest.WSConn).WS
		if err := ws.Write(t.Context(), websocket.MessageBinary, []byte("<presence/>")); err != nil {
			t.Fatal(err)
		}
		alice.ExpectStreamError(xmpp.UnsupportedEncoding)
	})
	t.Run("STARTTLS", func(t *testing.T) {
		c := s.DialWebSocket()
		c.Open("localhost")
		c.Send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
		// Not offered, so not expected: the stream ends.
		c.ExpectStreamError(xmpp.UnsupportedStanzaType)
	})
}

package server_test

import (
	"net"
	"testing"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
)

// TestDefaultConfigEchoBotAnswers runs the hosts of the embedded default
// config: the echo bot's webhook is Parley's own HTTP listener.
func TestDefaultConfigEchoBotAnswers(t *testing.T) {
	// The webhook URL names the listener, so the port is picked first.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	def := conf.Default()
	s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) {
		c.Hosts = def.Hosts
		c.HTTP.Listen = []string{addr}
		for i := range c.Hosts {
			if c.Hosts[i].Name == "echo.localhost" {
				c.Hosts[i].PostURL = "http://" + addr + "/demo/echo"
			}
		}
	}))
	s.AddUser("alice@localhost", "a")
	alice := s.Login("alice@localhost", "a", "x")
	alice.Send("<message to='echo.localhost' type='chat' id='e1'><body>is anyone there?</body></message>")
	st := alice.NextStanza()
	if st.From.String() != "echo.localhost" || st.Type != "chat" || st.El.FindElement("body").Text() != "is anyone there?" {
		t.Fatalf("got %s", alice.String(st.El))
	}
}

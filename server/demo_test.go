package server_test

import (
	"testing"

	"github.com/parley-im/parley/components/webhook"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
)

// TestDefaultConfigEchoBotAnswers runs the hosts of the embedded default
// config: the echo bot's webhook is Parley's own HTTP listener.
func TestDefaultConfigEchoBotAnswers(t *testing.T) {
	def := conf.Default()
	s := parleytest.StartSelfAddressed(t, func(c *conf.Config, httpAddr string) {
		c.Hosts = def.Hosts
		for i := range c.Hosts {
			if c.Hosts[i].Name == "echo.localhost" {
				webhook.OptionsOf(&c.Hosts[i]).PostURL = "http://" + httpAddr + "/demo/echo"
			}
		}
	})
	s.AddUser("alice@localhost", "a")
	alice := s.Login("alice@localhost", "a", "x")
	alice.Send("<message to='echo.localhost' type='chat' id='e1'><body>is anyone there?</body></message>")
	st := alice.NextStanza()
	if st.From.String() != "echo.localhost" || st.Type != "chat" || st.El.FindElement("body").Text() != "is anyone there?" {
		t.Fatalf("got %s", alice.String(st.El))
	}
}

package external_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// metrics returns GET /metrics of s.
func metrics(t *testing.T, s *parleytest.Server) string {
	t.Helper()
	resp, err := http.Get(s.HTTPURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// hasMetrics fails t for each line of want that /metrics lacks.
func hasMetrics(t *testing.T, s *parleytest.Server, want ...string) {
	t.Helper()
	body := metrics(t, s)
	for _, w := range want {
		if !strings.Contains(body, w+"\n") {
			t.Errorf("/metrics has no %q", w)
		}
	}
}

// Wrong handshakes from one address hold the answers to the next ones
// from there, right or wrong, and a right secret still gets in: the
// component is slowed while someone guesses, never locked out. Its
// success clears the count, so a wrong handshake after it is answered at
// once. (The waits are counted, not timed.)
func TestWrongHandshakesSlowDownNeverLockOut(t *testing.T) {
	s, addr := start(t, parleytest.WithConfig(func(c *conf.Config) {
		c.Limits.LoginBackoffAfter = 2
	}))
	steps := []struct {
		key     string
		want    xmpp.StreamCondition // "" for <handshake/>
		delays  string               // parley_component_handshake_delays_total after the step
		results [2]string            // handshakes ok, wrong after the step
	}{
		{"guess 1", xmpp.StreamNotAuthorized, "0", [2]string{"0", "1"}},
		{"guess 2", xmpp.StreamNotAuthorized, "0", [2]string{"0", "2"}},
		{"guess 3", xmpp.StreamNotAuthorized, "1", [2]string{"0", "3"}},
		{secret, "", "2", [2]string{"1", "3"}},
		{"guess 4", xmpp.StreamNotAuthorized, "2", [2]string{"1", "4"}},
	}
	for _, st := range steps {
		c, err := login(t, addr, gw, st.key)
		if st.want == "" {
			if err != nil {
				t.Fatalf("%q: the right secret got %v; want <handshake/>", st.key, err)
			}
			c.leave(s)
		} else if se := (*xmpp.StreamError)(nil); !errors.As(err, &se) || se.Condition != st.want {
			t.Fatalf("%q: got %v; want <%s/>", st.key, err, st.want)
		}
		hasMetrics(t, s,
			`parley_component_handshake_delays_total{host="`+gw+`"} `+st.delays,
			`parley_component_handshakes_total{host="`+gw+`",result="ok"} `+st.results[0],
			`parley_component_handshakes_total{host="`+gw+`",result="wrong"} `+st.results[1])
	}
}

// GET /metrics counts the component host's life, in the s2s metrics'
// shape: connected, stanzas each way, and bounces by cause.
func TestComponentMetrics(t *testing.T) {
	s, addr := start(t)
	s.AddUser("alice@localhost", "a")
	alice := s.Login("alice@localhost", "a", "phone")
	alice.Send("<message to='bot@%s' id='early'><body>nobody there</body></message>", gw)
	if el := alice.Next(); el.SelectAttrValue("type", "") != "error" {
		t.Fatalf("a message before the component connected: %s; want a bounce", alice.String(el))
	}
	hasMetrics(t, s, `parley_component_connected{host="`+gw+`"} 0`,
		`parley_component_bounced_total{host="`+gw+`",cause="not_connected"} 1`)
	c, err := login(t, addr, gw, secret)
	if err != nil {
		t.Fatal(err)
	}
	alice.Send("<message to='bot@%s' id='m1'><body>hi</body></message>", gw)
	if st := c.Next(); st.ID != "m1" {
		t.Fatalf("the component got %s; want m1", str(st.El))
	}
	c.Send("<message from='bot@%s' to='alice@localhost/phone' id='r1'><body>hello</body></message>", gw)
	if el := alice.Next(); el.SelectAttrValue("id", "") != "r1" {
		t.Fatalf("alice got %s; want r1", alice.String(el))
	}
	hasMetrics(t, s,
		`parley_component_connected{host="`+gw+`"} 1`,
		`parley_component_stanzas_total{host="`+gw+`",direction="in"} 1`,
		`parley_component_stanzas_total{host="`+gw+`",direction="out"} 1`,
		`parley_component_handshakes_total{host="`+gw+`",result="ok"} 1`,
		`parley_component_bounced_total{host="`+gw+`",cause="queue_full"} 0`,
		`parley_component_refused_connections_total{host="`+gw+`",cause="conflict"} 0`)
	if _, err := login(t, addr, gw, secret); err == nil {
		t.Fatal("a second connection was accepted; want conflict")
	}
	hasMetrics(t, s, `parley_component_refused_connections_total{host="`+gw+`",cause="conflict"} 1`)
}

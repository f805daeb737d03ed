package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/components/external"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
)

// componentConfig is what slixmpp_component.py gets, as JSON in its
// first argument.
type componentConfig struct {
	Host        string  `json:"host"`
	Port        int     `json:"port"`
	Domain      string  `json:"domain"`
	Secret      string  `json:"secret"`
	User        string  `json:"user"`
	Foreign     string  `json:"foreign"`
	StepTimeout float64 `json:"step_timeout"`
}

// TestSlixmppComponent runs slixmpp's ComponentXMPP (XEP-0114) against a
// component host: it connects and passes the handshake, receives a
// user's message for its domain and answers it, and a message it sends
// from outside its domain ends its stream with <invalid-from/> and never
// reaches the user.
func TestSlixmppComponent(t *testing.T) {
	if err := slixmppCheck(); err != nil {
		missing(t, "slixmpp for "+slixmppPython+" ("+err.Error()+")", "apt-get install python3-slixmpp")
	}
	script, err := filepath.Abs("../../testdata/interop/python/slixmpp_component.py")
	if err != nil {
		t.Fatal(err)
	}
	const domain, secret = "gw.localhost", "component secret <&>"
	s := parleytest.Start(t, parleytest.WithHost("localhost", ""), func(c *conf.Config) {
		c.Hosts = append(c.Hosts, conf.Host{Name: domain, Type: external.HostType, Options: &external.Options{Secret: secret}})
	})
	addrs := s.TypeAddrs(external.HostType)
	if len(addrs) != 1 {
		t.Fatalf("component listeners %v; want one", addrs)
	}
	host, port, _ := net.SplitHostPort(addrs[0].String())
	p, _ := strconv.Atoi(port)
	s.AddUser("alice@localhost", "pw")
	alice := s.Login("alice@localhost", "pw", "phone")
	alice.Send("<presence/>")
	alice.Sync()

	b, err := json.Marshal(componentConfig{Host: host, Port: p, Domain: domain, Secret: secret,
		User: "alice@localhost", Foreign: "mallory@localhost", StepTimeout: stepTimeout.Seconds()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, slixmppPython, script, string(b))
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting slixmpp: %v", err)
	}
	steps := make(chan stepResult)
	go func() {
		defer close(steps)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var r stepResult
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				steps <- r
			}
		}
	}()
	defer func() {
		for range steps {
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("slixmpp exited: %v\n%s", err, tail(stderr.String()))
		}
	}()
	step := func(name string) stepResult {
		t.Helper()
		r, ok := <-steps
		if !ok {
			t.Fatalf("slixmpp ended before step %q\n%s", name, tail(stderr.String()))
		}
		if r.Step != name || !r.OK {
			t.Fatalf("slixmpp: step %q: ok=%v %s %v; want %q to pass", r.Step, r.OK, r.Error, r.Detail, name)
		}
		t.Logf("slixmpp: %s: %v", r.Step, r.Detail)
		return r
	}

	step("connect")
	alice.Send("<message type='chat' to='bot@%s' id='c1'><body>hello component</body></message>", domain)
	if r := step("receive"); r.Detail["from"] != "alice@localhost/phone" {
		t.Errorf("the component got the message from %v; want alice's full JID", r.Detail["from"])
	}
	answer := nextMessage(t, alice)
	if from, body := answer.SelectAttrValue("from", ""), answer.FindElement("body"); from != "bot@"+domain ||
		body == nil || body.Text() != "re: hello component" {
		t.Errorf("the answer %s; want re: hello component from bot@%s", alice.String(answer), domain)
	}
	step("foreign")
	// The spoofed message was not routed: the next message alice gets is
	// this marker, sent after the component's stream ended.
	alice.Send("<message type='chat' to='alice@localhost/phone' id='marker'><body>marker</body></message>")
	if el := nextMessage(t, alice); el.SelectAttrValue("id", "") != "marker" {
		t.Errorf("alice got %s before the marker: the foreign from was routed", alice.String(el))
	}
}

// nextMessage reads c until a message with a body.
func nextMessage(t *testing.T, c *parleytest.Conn) *etree.Element {
	t.Helper()
	for {
		el := c.Next()
		if el.Tag == "message" && el.FindElement("body") != nil {
			return el
		}
	}
}

// tail is the end of a client's stderr, for a failure.
func tail(s string) string {
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}

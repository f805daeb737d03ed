package interop

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/parleytest"
	goxmpp "github.com/xmppo/go-xmpp"
)

// goxmppMUCConfig is what the go-xmpp group-chat client gets: the common
// client config and the room.
type goxmppMUCConfig struct {
	clientConfig
	Room string `json:"room"`
	Nick string `json:"nick"`
}

// TestGoXMPPMUC runs go-xmpp's group chat (xmpp_muc.go) against the muc
// host, in a room bob (a raw connection) made and spoke in:
// JoinMUCNoHistory gets the self-presence and the subject and no
// history; a groupchat message sent with Send comes back with the room's
// stanza-id, and bob's answer arrives; LeaveMUC, which sends unavailable
// to the room's bare JID, leaves; JoinMUC with StanzaHistory 2 gets the
// last two messages, delayed, before the subject.
func TestGoXMPPMUC(t *testing.T) {
	t.Parallel()
	s := parleytest.Start(t, withMUCService())
	s.AddUser(aliceJID, clientPassword)
	s.AddUser(bobJID, bobPassword)
	bob := s.Login(bobJID, bobPassword, "desk")
	bob.Send("<presence/>")
	bob.Sync()
	rawJoin(t, bob, teamRoom, "Bob")
	bob.ExpectResult(bob.IQ("set", teamRoom, "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query>"),
		"the instant config")
	bob.Send("<message to='%s' type='groupchat'><subject>go-xmpp &lt;&amp;&gt;</subject></message>", teamRoom)
	rawSay(t, bob, teamRoom, "said before")
	p := startRoomPeer(bob, teamRoom, "Alice")

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(s.DirectTLSAddr)
	pn, _ := strconv.Atoi(port)
	cfg := goxmppMUCConfig{clientConfig: clientConfig{Host: host, Port: pn, TLS: "direct", Domain: s.Domain,
		JID: aliceJID, Password: clientPassword, CAFile: writeCA(t, s), Body: clientBody, Reply: peerReply,
		StepTimeout: stepTimeout.Seconds()}, Room: teamRoom, Nick: "Alice"}
	lib := library{name: "go-xmpp", command: func(clientConfig) (*exec.Cmd, error) {
		b, err := json.Marshal(cfg)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(self, "-test.run=^$")
		cmd.Env = append(os.Environ(), envClient+"=go-xmpp-muc", envConfig+"="+string(b), "HTTP_PROXY=", "http_proxy=")
		return cmd, nil
	}}
	results, runErr, stderr := run(t, lib, cfg.clientConfig)
	p.stop()
	byStep := map[string]stepResult{}
	for _, r := range results {
		byStep[r.Step] = r
	}
	for _, step := range []string{"login", "join", "message", "leave", "history"} {
		if r, ok := byStep[step]; !ok || !r.OK {
			t.Fatalf("go-xmpp: step %q: %+v (client: %v)\n%s", step, r, runErr, stderr)
		}
	}
	if n := byStep["join"].Detail["history"]; fmt.Sprint(n) != "0" {
		t.Errorf("go-xmpp: JoinMUCNoHistory got %v history messages; want none", n)
	}
	m := byStep["message"].Detail
	if m["stanza_id"] == "" || m["by"] != teamRoom {
		t.Errorf("go-xmpp: the echo had stanza-id %v by %v; want one by %s", m["stanza_id"], m["by"], teamRoom)
	}
	if h := byStep["history"].Detail; fmt.Sprint(h["history"]) != fmt.Sprint([]string{clientBody, peerReply}) || h["stamped"] != true {
		t.Errorf("go-xmpp: JoinMUC with 2 stanzas of history got %v (all delayed: %v); want %q, delayed",
			h["history"], h["stamped"], []string{clientBody, peerReply})
	}
	got, sid := p.seen()
	if got != 1 || sid != m["stanza_id"] {
		t.Errorf("bob saw %d messages of alice's (stanza-id %q); want 1 with the echo's stanza-id %v", got, sid, m["stanza_id"])
	}
	if runErr != nil {
		t.Errorf("go-xmpp: every step passed but the client failed: %v\n%s", runErr, stderr)
	}
}

// roomPeer is a raw occupant that answers the client's group-chat
// messages with peerReply. It runs in its own goroutine and never calls
// t.Fatal; the test reads what it saw after the client has ended.
type roomPeer struct {
	c          *parleytest.Conn
	room, nick string // the room, and the client's nick in it
	done       chan struct{}
	stopping   chan struct{}
	wmu        sync.Mutex

	mu       sync.Mutex
	messages int    // the client's group-chat messages with a body
	stanzaID string // the first one's stanza-id
}

func startRoomPeer(c *parleytest.Conn, room, nick string) *roomPeer {
	p := &roomPeer{c: c, room: room, nick: nick, done: make(chan struct{}), stopping: make(chan struct{})}
	go p.loop()
	go p.keepalive()
	return p
}

// keepalive pings while the peer waits for the client, as peer.keepalive.
func (p *roomPeer) keepalive() {
	t := time.NewTicker(parleytest.Timeout / 4)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
			p.write("<iq type='get' id='peer-keepalive'><ping xmlns='urn:xmpp:ping'/></iq>")
		}
	}
}

func (p *roomPeer) loop() {
	defer close(p.done)
	for {
		el, err := p.c.NextErr()
		if err != nil {
			return
		}
		from := el.SelectAttrValue("from", "")
		if el.Tag != "message" || el.SelectAttrValue("type", "") != "groupchat" || from != p.room+"/"+p.nick ||
			el.FindElement("body") == nil {
			continue
		}
		p.mu.Lock()
		p.messages++
		if sid := el.FindElement("stanza-id"); sid != nil && p.messages == 1 {
			p.stanzaID = sid.SelectAttrValue("id", "")
		}
		p.mu.Unlock()
		p.write("<message to='%s' type='groupchat' id='peer-reply'><body>%s</body></message>", p.room, escape(peerReply))
	}
}

func (p *roomPeer) write(format string, args ...any) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_ = p.c.SetWriteDeadline(time.Now().Add(stepTimeout))
	_, _ = fmt.Fprintf(p.c.Conn, format, args...)
}

func (p *roomPeer) stop() {
	p.c.Close()
	<-p.done
}

func (p *roomPeer) seen() (int, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.messages, p.stanzaID
}

// goxmppMUCMain is the go-xmpp group-chat client, in the re-executed test
// binary: steps login, join, message, leave, history.
func goxmppMUCMain(config string) int {
	var cfg goxmppMUCConfig
	if err := json.Unmarshal([]byte(config), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bad config:", err)
		return 2
	}
	out := json.NewEncoder(os.Stdout)
	emit := func(step string, ok bool, errText string, detail map[string]any) {
		_ = out.Encode(stepResult{Step: step, OK: ok, Error: errText, Detail: detail})
	}
	timeout := time.Duration(cfg.StepTimeout * float64(time.Second))
	wire := &parleytest.Buffer{}
	pem, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		emit("login", false, err.Error(), nil)
		return 1
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	opts := goxmpp.Options{
		Host:        net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)),
		User:        cfg.JID,
		Password:    cfg.Password,
		Resource:    "interop",
		TLSConfig:   &tls.Config{ServerName: cfg.Domain, RootCAs: roots, MinVersion: tls.VersionTLS12},
		DialTimeout: timeout,
		Debug:       true,
		DebugWriter: wire,
	}
	type result struct {
		c   *goxmpp.Client
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := opts.NewClient()
		done <- result{c, err}
	}()
	var c *goxmpp.Client
	select {
	case r := <-done:
		c, err = r.c, r.err
	case <-time.After(timeout):
		err = fmt.Errorf("no session within %v", timeout)
	}
	if err != nil {
		emit("login", false, err.Error()+"\nlast on the wire:\n"+wire.Tail(6, 600), nil)
		return 1
	}
	emit("login", true, "", map[string]any{"jid": c.JID()})

	in := make(chan any, 64)
	go func() {
		for {
			v, err := c.Recv()
			if err != nil {
				in <- err
				return
			}
			in <- v
		}
	}()
	// next reads until match accepts a stanza.
	next := func(what string, match func(v any) bool) error {
		deadline := time.After(timeout)
		for {
			select {
			case v := <-in:
				if err, ok := v.(error); ok {
					return fmt.Errorf("waiting for %s: %w\nlast on the wire:\n%s", what, err, wire.Tail(6, 600))
				}
				if match(v) {
					return nil
				}
			case <-deadline:
				return fmt.Errorf("no %s within %v\nlast on the wire:\n%s", what, timeout, wire.Tail(6, 600))
			}
		}
	}
	me := cfg.Room + "/" + cfg.Nick
	// joined waits for the self-presence and then the subject, the end
	// of a join, and returns the group-chat bodies in between (history)
	// and whether each had a delay stamp.
	joined := func() (history []string, stamped bool, err error) {
		stamped = true
		err = next("the self-presence from "+me, func(v any) bool {
			p, ok := v.(goxmpp.Presence)
			return ok && p.From == me && p.Type == ""
		})
		if err == nil {
			err = next("the subject of "+cfg.Room, func(v any) bool {
				m, ok := v.(goxmpp.Chat)
				if !ok || m.Type != "groupchat" {
					return false
				}
				if m.Subject != "" && m.Text == "" {
					return true
				}
				history = append(history, m.Text)
				stamped = stamped && !m.Stamp.IsZero()
				return false
			})
		}
		return history, stamped, err
	}

	if _, err := c.JoinMUCNoHistory(cfg.Room, cfg.Nick); err != nil {
		emit("join", false, err.Error(), nil)
		return 1
	}
	history, _, err := joined()
	if err != nil {
		emit("join", false, err.Error(), nil)
		return 1
	}
	emit("join", true, "", map[string]any{"history": len(history)})

	if _, _, err := c.Send(goxmpp.Chat{Remote: cfg.Room, Type: "groupchat", Text: cfg.Body}); err != nil {
		emit("message", false, err.Error(), nil)
		return 1
	}
	var echo goxmpp.Chat
	err = next("the echo of the message", func(v any) bool {
		m, ok := v.(goxmpp.Chat)
		if ok && m.Remote == me && m.Type == "groupchat" && m.Text == cfg.Body {
			echo = m
			return true
		}
		return false
	})
	if err == nil {
		err = next("bob's answer", func(v any) bool {
			m, ok := v.(goxmpp.Chat)
			return ok && m.Remote == cfg.Room+"/Bob" && m.Type == "groupchat" && m.Text == cfg.Reply
		})
	}
	if err != nil {
		emit("message", false, err.Error(), nil)
		return 1
	}
	emit("message", true, "", map[string]any{"stanza_id": echo.StanzaID.ID, "by": echo.StanzaID.By})

	if _, err := c.LeaveMUC(cfg.Room); err != nil {
		emit("leave", false, err.Error(), nil)
		return 1
	}
	if err := next("the unavailable self-presence", func(v any) bool {
		p, ok := v.(goxmpp.Presence)
		return ok && p.From == me && p.Type == "unavailable"
	}); err != nil {
		emit("leave", false, err.Error(), nil)
		return 1
	}
	emit("leave", true, "", nil)

	if _, err := c.JoinMUC(cfg.Room, cfg.Nick, goxmpp.StanzaHistory, 2, nil); err != nil {
		emit("history", false, err.Error(), nil)
		return 1
	}
	history, stamped, err := joined()
	if err != nil {
		emit("history", false, err.Error(), nil)
		return 1
	}
	emit("history", true, "", map[string]any{"history": history, "stamped": stamped})
	// No c.Close: see goxmppMain.
	return 0
}

package interop

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// The stream management flow: smCount messages each way, one every
// smInterval; the connection is cut once the peer has the client's
// smCount/3rd, after smHold during which everything either side writes is
// lost on the way, as on a link that died before either end noticed.
const (
	smCount    = 60
	smInterval = 25 * time.Millisecond
	smHold     = 300 * time.Millisecond
)

// smClientConfig is what slixmpp_sm_client.py gets.
type smClientConfig struct {
	Host             string  `json:"host"`
	Port             int     `json:"port"`
	JID              string  `json:"jid"`
	Password         string  `json:"password"`
	Peer             string  `json:"peer"`
	CAFile           string  `json:"ca_file"`
	Count            int     `json:"count"`
	Interval         float64 `json:"interval"`     // seconds
	StepTimeout      float64 `json:"step_timeout"` // seconds
	PatchResumeQueue bool    `json:"patch_resume_queue"`
	WireLog          string  `json:"wire_log"` // a file for slixmpp's whole log
}

// TestSlixmppStreamManagement: slixmpp 1.8 with its xep_0198 plugin logs
// in over direct TLS through a proxy of the test, enables stream
// management with resumption, and exchanges a steady flow of messages with
// a peer (a raw parleytest.Conn); the proxy cuts the connection in the
// middle, silently first (what either side writes then is lost), then by
// closing both sides; slixmpp connects again and resumes. Every message in
// both directions must arrive exactly once.
//
// slixmpp 1.8 (Debian's 1.8.3) loses the client's stanzas on a resume,
// whatever the server does, in two ways its wire log shows:
//   - XEP_0198._handle_outgoing empties unacked_queue when it sends
//     <resume/> (as for <enable/>), so after <resumed h/> it has nothing to
//     send again: what it wrote into the dead connection is lost;
//   - a stanza its send loop takes just after the connection is lost is
//     neither counted (the plugin's 'disconnected' handler has turned
//     counting off) nor kept: send_raw raises NotConnectedError and the
//     stanza is dropped.
//
// The "stock" case runs slixmpp as it is and requires the server's side:
// every peer message at the client exactly once, the client's messages at
// the peer at most once, and those lost one run (what went into the dead
// link). The "slixmpp fixed" case replaces the plugin's outgoing filter
// (patch_resume_queue in the script) and requires everything both ways
// exactly once.
func TestSlixmppStreamManagement(t *testing.T) {
	if err := slixmppCheck(); err != nil {
		missing(t, "slixmpp for "+slixmppPython+" ("+err.Error()+")", "apt-get install python3-slixmpp")
	}
	script, err := filepath.Abs("../../testdata/interop/python/slixmpp_sm_client.py")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		patch bool
	}{
		{"stock", false},
		{"slixmpp fixed", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			runSMCase(t, script, c.patch)
		})
	}
}

func runSMCase(t *testing.T, script string, patch bool) {
	s := parleytest.Start(t)
	const client, peerJID = "alice@localhost", "bob@localhost"
	s.AddUser(client, clientPassword)
	s.AddUser(peerJID, "bob-password")
	caFile := writeCA(t, s)
	proxy := startCutter(t, s.DirectTLSAddr)
	p := startSMPeer(t, s, peerJID, "bob-password", client)

	host, port, _ := net.SplitHostPort(proxy.addr)
	portN, _ := strconv.Atoi(port)
	cfg := smClientConfig{
		Host: host, Port: portN, JID: client, Password: clientPassword,
		Peer: peerJID, CAFile: caFile, Count: smCount, Interval: smInterval.Seconds(),
		StepTimeout: stepTimeout.Seconds(), PatchResumeQueue: patch,
		WireLog: filepath.Join(t.TempDir(), "slixmpp.log"),
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(slixmppPython, script, string(b))
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("slixmpp: starting the client: %v", err)
	}
	kill := time.AfterFunc(runTimeout, func() { _ = cmd.Process.Kill() })
	defer kill.Stop()

	failed := func(step, format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf("slixmpp SM: step %q: ", step) + fmt.Sprintf(format, args...)
		if tail := stderr.String(); tail != "" {
			if len(tail) > 3000 {
				tail = "..." + tail[len(tail)-3000:]
			}
			msg += "\n  client stderr (tail):\n" + tail
		}
		t.Error(msg)
	}

	// The client's steps, as it prints them.
	byStep := map[string][]stepResult{}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	cut := false
	for sc.Scan() {
		var r stepResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Logf("slixmpp: stdout line that is not a step: %s", sc.Text())
			continue
		}
		t.Logf("slixmpp: %s ok=%v %s %v", r.Step, r.OK, r.Error, r.Detail)
		byStep[r.Step] = append(byStep[r.Step], r)
		if !r.OK {
			continue
		}
		if r.Step == "enabled" {
			if r.Detail["id"] == "" || r.Detail["resume"] != true {
				failed("enabled", "<enabled/> without resumption: %v", r.Detail)
			}
			go p.flow(client, smCount, smInterval)
			// Cut when the flow is well under way both ways.
			go func() {
				if p.waitFromClient(smCount/3, stepTimeout) {
					proxy.cut(smHold)
				}
			}()
			cut = true
		}
	}
	runErr := cmd.Wait()
	if !cut {
		failed("enabled", "stream management never enabled (client: %v)", runErr)
		return
	}
	p.finish()

	for _, step := range []string{"login", "enabled", "disconnected", "resumed", "flow"} {
		rs := byStep[step]
		switch {
		case len(rs) == 0:
			failed(step, "no result (client: %v)", runErr)
			return
		case !rs[len(rs)-1].OK:
			failed(step, "%s", rs[len(rs)-1].Error)
			return
		}
	}
	if n := len(byStep["disconnected"]); n != 1 {
		failed("disconnected", "%d disconnections, want the one cut", n)
	}
	if n := proxy.accepted.Load(); n != 2 {
		failed("resumed", "%d connections through the proxy, want 2: the first and the resumed one", n)
	}
	cToS, sToC := proxy.dropped[0].Load(), proxy.dropped[1].Load()
	t.Logf("the cut lost %d bytes client to server and %d server to client", cToS, sToC)
	if cToS == 0 || sToC == 0 {
		// Nothing was in flight: the case proves nothing about resending.
		failed("resumed", "the cut lost %d bytes client to server, %d server to client: want both > 0", cToS, sToC)
	}

	// The peer's messages at the client: each exactly once.
	flow := byStep["flow"][0]
	received, _ := flow.Detail["received"].(map[string]any)
	for i := range smCount {
		if n, _ := received["p-"+strconv.Itoa(i)].(float64); n != 1 {
			failed("flow", "the client got p-%d %v times, want 1", i, n)
		}
	}
	// The client's messages at the peer.
	got := p.fromClientCounts()
	var lostAt []int
	for i := range smCount {
		switch n := got["c-"+strconv.Itoa(i)]; {
		case n > 1:
			failed("flow", "the peer got c-%d %d times", i, n)
		case n == 0:
			lostAt = append(lostAt, i)
		}
	}
	lost := len(lostAt)
	defer func() {
		if t.Failed() {
			t.Logf("slixmpp's log around the cut and the lost messages:\n%s", wireExcerpt(cfg.WireLog, lostAt))
		}
	}()
	if lost > 0 && lostAt[lost-1]-lostAt[0] != lost-1 {
		// What slixmpp wrote into the dead link is one run of
		// messages; anything else is lost elsewhere.
		failed("flow", "the peer missed the client's messages %v: not one run", lostAt)
	}
	resent, _ := flow.Detail["resent"].(float64)
	t.Logf("slixmpp sent %v stanzas again after <resumed/>; the peer missed %d of the client's %d messages", resent, lost, smCount)
	switch {
	case patch && lost > 0:
		failed("flow", "the peer missed %d of the client's messages", lost)
	case patch && resent == 0:
		failed("resumed", "slixmpp sent nothing again after <resumed/>, with %d bytes lost client to server", cToS)
	case !patch && lost == 0:
		// slixmpp's resend works now: the patch is no longer needed.
		t.Logf("stock slixmpp lost nothing: its <resume/> may keep its queue now; drop the patch")
	}
}

// cutter relays TCP connections to a target, and can cut those it relays.
type cutter struct {
	addr     string
	target   string
	accepted atomic.Int32
	// dropped counts what the relay read and threw away while a cut was
	// on: [0] from the client, [1] from the server.
	dropped [2]atomic.Int64

	mu    sync.Mutex
	pairs []*relayPair
}

type relayPair struct {
	client, server net.Conn
	dead           atomic.Bool // reading and throwing away
}

func startCutter(t *testing.T, target string) *cutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{addr: ln.Addr().String(), target: target}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		c.mu.Lock()
		for _, p := range c.pairs {
			p.client.Close()
			p.server.Close()
		}
		c.mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			cc, err := ln.Accept()
			if err != nil {
				return
			}
			c.accepted.Add(1)
			sc, err := net.DialTimeout("tcp", target, stepTimeout)
			if err != nil {
				cc.Close()
				continue
			}
			p := &relayPair{client: cc, server: sc}
			c.mu.Lock()
			c.pairs = append(c.pairs, p)
			c.mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); c.relay(p, sc, cc, 0); sc.Close() }()
			go func() { defer wg.Done(); c.relay(p, cc, sc, 1); cc.Close() }()
		}
	}()
	return c
}

func (c *cutter) relay(p *relayPair, dst, src net.Conn, dir int) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if p.dead.Load() {
				c.dropped[dir].Add(int64(n))
			} else if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cut makes every relayed connection a dead link for hold (longer if
// either side wrote nothing meanwhile), then closes both its sides. Connections made later are relayed as usual.
func (c *cutter) cut(hold time.Duration) {
	c.mu.Lock()
	pairs := c.pairs
	c.pairs = nil
	c.mu.Unlock()
	for _, p := range pairs {
		p.dead.Store(true)
	}
	time.Sleep(hold)
	// Under load a side may not have written in hold: wait until both
	// did, so that something is always lost each way.
	for end := time.Now().Add(stepTimeout / 2); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if c.dropped[0].Load() > 0 && c.dropped[1].Load() > 0 {
			break
		}
	}
	for _, p := range pairs {
		p.client.Close()
		p.server.Close()
	}
}

// smPeer is the client's correspondent: a raw parleytest.Conn that sends
// its flow of messages and counts the client's.
type smPeer struct {
	c    *parleytest.Conn
	done chan struct{}
	wmu  sync.Mutex // one writer at a time: the flow and the loop's answers

	mu      sync.Mutex
	from    map[string]int // the client's message bodies, counted
	changed chan struct{}  // closed and replaced on every message
	synced  chan struct{}  // closed when the final ping's answer came
	readErr error
}

func startSMPeer(t *testing.T, s *parleytest.Server, jid, password, client string) *smPeer {
	t.Helper()
	c := s.Login(jid, password, "peer")
	c.Send("<presence/>")
	c.Sync()
	p := &smPeer{c: c, done: make(chan struct{}), from: map[string]int{},
		changed: make(chan struct{}), synced: make(chan struct{})}
	go p.loop(xmpp.MustParse(client).Bare())
	t.Cleanup(func() { c.Close(); <-p.done })
	return p
}

func (p *smPeer) loop(client xmpp.JID) {
	defer close(p.done)
	for {
		el, err := p.c.NextErr()
		if err != nil {
			p.mu.Lock()
			p.readErr = err
			p.mu.Unlock()
			return
		}
		from, _ := xmpp.Parse(el.SelectAttrValue("from", ""))
		switch {
		case el.Tag == "message" && from.Bare() == client:
			if b := el.FindElement("body"); b != nil && strings.HasPrefix(b.Text(), "c-") {
				p.mu.Lock()
				p.from[b.Text()]++
				close(p.changed)
				p.changed = make(chan struct{})
				p.mu.Unlock()
			}
		case el.Tag == "iq" && el.SelectAttrValue("id", "") == "sm-peer-end":
			close(p.synced)
		case el.Tag == "iq" && (el.SelectAttrValue("type", "") == "get" || el.SelectAttrValue("type", "") == "set"):
			p.write("<iq type='result' id='%s' to='%s'/>", escape(el.SelectAttrValue("id", "")), escape(from.String()))
		}
	}
}

func (p *smPeer) write(format string, args ...any) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_ = p.c.SetWriteDeadline(time.Now().Add(stepTimeout))
	_, _ = fmt.Fprintf(p.c.Conn, format, args...)
}

// flow sends n messages to the client's bare JID, one every interval.
func (p *smPeer) flow(client string, n int, interval time.Duration) {
	for i := range n {
		p.write("<message to='%s' type='chat' id='p%d'><body>p-%d</body></message>", client, i, i)
		time.Sleep(interval)
	}
}

// waitFromClient waits until the peer has n of the client's messages.
func (p *smPeer) waitFromClient(n int, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		have, ch := len(p.from), p.changed
		p.mu.Unlock()
		if have >= n {
			return true
		}
		select {
		case <-ch:
		case <-deadline:
			return false
		}
	}
}

// finish waits until everything routed to the peer so far has been read:
// the client's stanzas were routed before the server acknowledged them,
// and a ping's answer comes after them.
func (p *smPeer) finish() {
	p.write("<iq type='get' id='sm-peer-end'><ping xmlns='urn:xmpp:ping'/></iq>")
	select {
	case <-p.synced:
	case <-p.done:
	case <-time.After(stepTimeout):
	}
}

func (p *smPeer) fromClientCounts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.from))
	for k, v := range p.from {
		out[k] = v
	}
	return out
}

// wireExcerpt is what slixmpp logged about stream management, the
// connection, and the client's messages in lost.
func wireExcerpt(path string, lost []int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	keys := []string{"urn:xmpp:sm:3", "connection_lost", "isconnect", "NOT SENT", "xception", "Resum", "resum", "nconsistent"}
	for _, i := range lost {
		keys = append(keys, ">c-"+strconv.Itoa(i)+"<")
	}
	var out strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		for _, k := range keys {
			if strings.Contains(line, k) {
				if len(line) > 300 {
					line = line[:300] + "..."
				}
				out.WriteString("    " + line + "\n")
				break
			}
		}
	}
	return out.String()
}

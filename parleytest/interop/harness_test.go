package interop

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// Every client run is killed after runTimeout; a client gives up on one
// step after stepTimeout, so that a stuck step is reported by name before
// the kill.
const (
	runTimeout  = 40 * time.Second
	stepTimeout = 10 * time.Second
)

// steps are the steps every client reports, in order.
var steps = []string{"login", "message", "roster get", "presence subscribe", "roster after subscribe"}

// The message the client sends and the peer's answer: markup characters
// and a non-ASCII one, so that escaping on either side shows.
const (
	clientBody = `hi <&> 'single' "double" ☃`
	peerReply  = "re: " + clientBody
)

// clientConfig is what a client script gets, as JSON in its first
// argument (go-xmpp: in the environment).
type clientConfig struct {
	Host        string  `json:"host"`
	Port        int     `json:"port"`
	TLS         string  `json:"tls"` // "starttls", "direct", or "none" (see clientCase.tls)
	Domain      string  `json:"domain"`
	JID         string  `json:"jid"`
	Password    string  `json:"password"`
	Mechanism   string  `json:"mechanism"` // "" lets the library choose
	Peer        string  `json:"peer"`
	CAFile      string  `json:"ca_file"`
	Body        string  `json:"body"`
	Reply       string  `json:"reply"`
	StepTimeout float64 `json:"step_timeout"` // seconds
	// SASL is "classic" for a client told to leave SASL2 (XEP-0388) out
	// (xmpp.js), "" for the library's own choice.
	SASL string `json:"sasl"`
}

// stepResult is one line of a client's output.
type stepResult struct {
	Step   string         `json:"step"`
	OK     bool           `json:"ok"`
	Error  string         `json:"error"`
	Detail map[string]any `json:"detail"`
}

// clientCase is one run of one library.
type clientCase struct {
	// binding is the server's [auth] channel_binding: "" for its default
	// (compatible: no -PLUS offered), or conf.ChannelBindingStrict.
	binding string
	// tls is "starttls" or "direct"; "none" is a stream that stays
	// plaintext, on a server with require_tls = false (loopback only:
	// the one way to get go-xmpp onto classic SASL, see TestGoXMPP).
	tls       string
	mechanism string // "" for the library's default
	// classic, when set, requires a login with RFC 6120 SASL (<auth/>),
	// not SASL2's <authenticate/>; for xmpp.js it also tells the client
	// to leave SASL2 out.
	classic bool
	// wantMechanism, when set, is the mechanism a default login must
	// end up with.
	wantMechanism string
	// clientRefuses, when set, is part of the error the library itself
	// gives before it sends any <auth/>: a choice of the library that no
	// server can change except by offering less (see the case's comment).
	clientRefuses string
	// password replaces the client account's password, which is not
	// ASCII, for a client that cannot send that one (see the case).
	password string
}

func (c clientCase) name() string {
	m := c.mechanism
	if m == "" {
		m = "default"
	}
	name := c.tls + "/" + m
	if c.classic {
		name = "classic/" + name
	}
	if c.binding != "" {
		name = c.binding + "/" + name
	}
	return name
}

// library runs one client: command returns the process for cfg.
type library struct {
	name    string
	command func(cfg clientConfig) (*exec.Cmd, error)
}

// ciMode reports whether a missing client is a failure (CI) rather than a
// skip (a developer's machine).
func ciMode() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

// missing skips, or fails under CI, a test whose client is not installed.
func missing(t *testing.T, what, install string) {
	t.Helper()
	if ciMode() {
		t.Fatalf("%s is not installed and CI is set: %s (.ci/run does this)", what, install)
	}
	t.Skipf("%s is not installed: %s", what, install)
}

// fixture is one server with a client account and its peer.
type fixture struct {
	s          *parleytest.Server
	clientJID  string
	clientPass string
	peer       *peer
	caFile     string
}

// clientPassword is not ASCII, and has a space, so that SASLprep and the
// UTF-8 of every mechanism are on the way.
const clientPassword = "alice pässword"

func newFixture(t *testing.T, c clientCase) *fixture {
	t.Helper()
	s := parleytest.Start(t, parleytest.WithConfig(func(cfg *conf.Config) {
		if c.binding != "" {
			cfg.Auth.ChannelBinding = c.binding
		}
		if c.tls == "none" {
			cfg.C2S.RequireTLS = false
		}
	}))
	password := c.password
	if password == "" {
		password = clientPassword
	}
	f := &fixture{s: s, clientJID: "alice@localhost", clientPass: password}
	s.AddUser(f.clientJID, f.clientPass)
	s.AddUser("bob@localhost", "bob-password")
	f.caFile = writeCA(t, s)
	f.peer = startPeer(t, s, "bob@localhost", "bob-password", f.clientJID)
	return f
}

// writeCA writes the server's self-signed certificate, as the server
// presents it, to a PEM file the clients trust.
func writeCA(t *testing.T, s *parleytest.Server) string {
	t.Helper()
	d := &net.Dialer{Timeout: stepTimeout}
	tc, err := tls.DialWithDialer(d, "tcp", s.DirectTLSAddr, s.TLSConfig(s.Domain))
	if err != nil {
		t.Fatalf("reading the server certificate: %v", err)
	}
	defer tc.Close()
	var buf bytes.Buffer
	for _, c := range tc.ConnectionState().PeerCertificates {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	name := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(name, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// config is the client's config for c, connecting to addr.
func (f *fixture) config(t *testing.T, c clientCase, addr string) clientConfig {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	sasl := ""
	if c.classic {
		sasl = "classic"
	}
	return clientConfig{
		SASL: sasl,
		Host: host, Port: p, TLS: c.tls, Domain: f.s.Domain,
		JID: f.clientJID, Password: f.clientPass, Mechanism: c.mechanism,
		Peer: "bob@localhost", CAFile: f.caFile, Body: clientBody, Reply: peerReply,
		StepTimeout: stepTimeout.Seconds(),
	}
}

// runLibrary runs every case of lib, each against its own server.
func runLibrary(t *testing.T, lib library, cases []clientCase) {
	for _, c := range cases {
		t.Run(c.name(), func(t *testing.T) {
			t.Parallel()
			runCase(t, lib, c)
		})
	}
}

func runCase(t *testing.T, lib library, c clientCase) {
	f := newFixture(t, c)
	addr := f.s.DirectTLSAddr
	var obs *observer
	if c.tls == "starttls" || c.tls == "none" {
		// STARTTLS runs go through a relay that records the plaintext
		// part of the stream: how the client wrote <starttls/> and what
		// the server answered.
		obs = observe(t, f.s.Addr)
		addr = obs.addr
	}
	results, runErr, stderr := run(t, lib, f.config(t, c, addr))
	f.peer.stop()
	if obs != nil {
		if w := obs.starttlsWrite(); w != "" {
			t.Logf("%s: wrote STARTTLS as %q", lib.name, w)
		}
	}

	failed := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if obs != nil {
			msg += "\n  plaintext stream before TLS:\n" + obs.transcript()
		}
		if stderr != "" {
			msg += "\n  client stderr (tail):\n" + stderr
		}
		t.Error(msg)
	}

	byStep := map[string]stepResult{}
	for _, r := range results {
		byStep[r.Step] = r
	}
	login, ok := byStep["login"]
	if ok {
		logLogin(t, lib.name, login)
	}
	if c.clientRefuses != "" {
		switch {
		case !ok:
			failed("%s: step %q: no result (client: %v); want the library to refuse with %q", lib.name, "login", runErr, c.clientRefuses)
		case login.OK:
			failed("%s: step %q: logged in with %v; the library used to refuse with %q: "+
				"the server now offers something else, update the case", lib.name, "login", login.Detail["mechanism"], c.clientRefuses)
		case !strings.Contains(login.Error, c.clientRefuses):
			failed("%s: step %q: %s; want the library's own refusal %q", lib.name, "login", login.Error, c.clientRefuses)
		case len(attempts(login)) > 0:
			failed("%s: step %q: the library sent <auth/> (%v) before refusing", lib.name, "login", login.Detail["attempts"])
		}
		return
	}

	for _, step := range steps {
		r, ok := byStep[step]
		if !ok {
			failed("%s: step %q: no result (client: %v)", lib.name, step, runErr)
			return
		}
		if !r.OK {
			failed("%s: step %q: %s", lib.name, step, r.Error)
			return
		}
	}
	if runErr != nil {
		failed("%s: every step passed but the client failed: %v", lib.name, runErr)
	}
	if c.wantMechanism != "" && login.Detail["mechanism"] != c.wantMechanism {
		failed("%s: step %q: logged in with %v, want %s", lib.name, "login", login.Detail["mechanism"], c.wantMechanism)
	}
	if c.classic {
		for _, a := range attempts(login) {
			if el, _ := a.(map[string]any)["element"].(string); el != "auth" {
				failed("%s: step %q: sent <%s/> (%v), want RFC 6120's <auth/>: SASL2 was not left out", lib.name, "login", el, a)
			}
		}
		if len(attempts(login)) == 0 {
			failed("%s: step %q: no <auth/> seen; want classic SASL", lib.name, "login")
		}
	}
	if a := attempts(login); len(a) > 1 {
		// A client that gets in after refusals has spent failed
		// attempts that count towards auth_failures and slow its next
		// logins: a real user meets those.
		failed("%s: step %q: logged in only after refused attempts: %v", lib.name, "login", a)
	}
	for _, err := range f.peer.check(f.clientJID) {
		failed("%s: step %q: %v", lib.name, err.step, err.err)
	}
}

// attempts is the <auth/> elements the client reports it sent.
func attempts(login stepResult) []any {
	a, _ := login.Detail["attempts"].([]any)
	return a
}

// logLogin logs what the library chose: the measurements the SASL policy
// is decided on.
func logLogin(t *testing.T, lib string, r stepResult) {
	t.Helper()
	d := r.Detail
	str := func(k string) string {
		if v, ok := d[k]; ok && v != nil {
			return fmt.Sprint(v)
		}
		return "-"
	}
	t.Logf("%s: login ok=%v mechanism=%s gs2=%q tls=%s attempts=%s",
		lib, r.OK, str("mechanism"), str("gs2"), str("tls"), str("attempts"))
}

// run runs one client process with a hard timeout and parses its lines.
// stderr is the tail of the client's stderr, for failures.
func run(t *testing.T, lib library, cfg clientConfig) (results []stepResult, runErr error, stderr string) {
	t.Helper()
	cmd, err := lib.command(cfg)
	if err != nil {
		t.Fatalf("%s: %v", lib.name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	// exec.CommandContext cannot take an existing Cmd: kill it ourselves.
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: starting the client: %v", lib.name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case runErr = <-done:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		runErr = fmt.Errorf("killed after %v", runTimeout)
	}
	for _, line := range strings.Split(out.String(), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		var r stepResult
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Logf("%s: stdout line that is not a step: %s", lib.name, line)
			continue
		}
		results = append(results, r)
	}
	tail := errb.String()
	if len(tail) > 4000 {
		tail = "..." + tail[len(tail)-4000:]
	}
	return results, runErr, tail
}

// peer is the second account, a raw parleytest.Conn: it answers the
// client's message and approves its subscription request. It runs in its
// own goroutine, so it never calls t.Fatal; what it saw is checked after
// the client has finished.
type peer struct {
	c    *parleytest.Conn
	done chan struct{}
	wmu  sync.Mutex // one write at a time: the loop's answers, keepalive's pings

	mu        sync.Mutex
	messages  []*etree.Element // messages with a body
	subscribe []*etree.Element // presence type='subscribe'
	readErr   error
}

func startPeer(t *testing.T, s *parleytest.Server, jid, password, client string) *peer {
	t.Helper()
	c := s.Login(jid, password, "peer")
	// Available, so that messages to the bare JID reach this resource.
	c.Send("<presence/>")
	c.Sync()
	p := &peer{c: c, done: make(chan struct{})}
	go p.loop(xmpp.MustParse(client).Bare())
	go p.keepalive()
	return p
}

// keepalive pings the server while the peer waits for the client, so
// that the peer's reads, which give up after parleytest.Timeout without
// a byte, never do: a client may take longer than that to start and log
// in (Chromium on a loaded machine took 12 s), and a peer that had
// stopped reading would miss its message, a failure of the test's own.
func (p *peer) keepalive() {
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

func (p *peer) loop(client xmpp.JID) {
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
		case el.Tag == "message" && el.FindElement("body") != nil && from.Bare() == client:
			p.mu.Lock()
			p.messages = append(p.messages, el)
			p.mu.Unlock()
			p.write("<message to='%s' type='chat' id='peer-reply'><body>%s</body></message>",
				escape(from.String()), escape(peerReply))
		case el.Tag == "presence" && el.SelectAttrValue("type", "") == "subscribe" && from.Bare() == client:
			p.mu.Lock()
			p.subscribe = append(p.subscribe, el)
			p.mu.Unlock()
			p.write("<presence to='%s' type='subscribed' id='peer-approve'/>", escape(client.String()))
		case el.Tag == "iq" && (el.SelectAttrValue("type", "") == "get" || el.SelectAttrValue("type", "") == "set"):
			// Roster pushes after approving; pings.
			p.write("<iq type='result' id='%s'/>", escape(el.SelectAttrValue("id", "")))
		}
	}
}

// write sends raw XML; a failure shows up as the client not getting it.
func (p *peer) write(format string, args ...any) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_ = p.c.SetWriteDeadline(time.Now().Add(stepTimeout))
	_, _ = fmt.Fprintf(p.c.Conn, format, args...)
}

func (p *peer) stop() {
	p.c.Close()
	<-p.done
}

type stepError struct {
	step string
	err  error
}

// check returns what is wrong with what the peer got from the client.
func (p *peer) check(client string) []stepError {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []stepError
	switch {
	case len(p.messages) != 1:
		err := fmt.Errorf("the peer got %d messages, want 1", len(p.messages))
		if p.readErr != nil {
			err = fmt.Errorf("%w; it stopped reading: %v", err, p.readErr)
		}
		errs = append(errs, stepError{"message", err})
	default:
		m := p.messages[0]
		from, _ := xmpp.Parse(m.SelectAttrValue("from", ""))
		if body := m.FindElement("body").Text(); body != clientBody {
			errs = append(errs, stepError{"message", fmt.Errorf("the peer got body %q, want %q", body, clientBody)})
		}
		if from.Resource() == "" {
			errs = append(errs, stepError{"message", fmt.Errorf("the peer got from=%q, want the client's full JID", from)})
		}
		if typ := m.SelectAttrValue("type", ""); typ != "chat" {
			errs = append(errs, stepError{"message", fmt.Errorf("the peer got type=%q, want chat", typ)})
		}
	}
	if len(p.subscribe) != 1 {
		errs = append(errs, stepError{"presence subscribe", fmt.Errorf("the peer got %d subscription requests, want 1", len(p.subscribe))})
	} else if from := p.subscribe[0].SelectAttrValue("from", ""); from != client {
		errs = append(errs, stepError{"presence subscribe", fmt.Errorf("the peer got the request from %q, want the bare JID %q", from, client)})
	}
	return errs
}

func escape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// observer relays one STARTTLS connection and records the plaintext that
// goes each way before the TLS handshake.
type observer struct {
	addr string

	mu     sync.Mutex
	chunks []string // "C: ..." and "S: ...", one per read
	tls    bool
}

func observe(t *testing.T, target string) *observer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &observer{addr: ln.Addr().String()}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
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
			sc, err := net.DialTimeout("tcp", target, stepTimeout)
			if err != nil {
				cc.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, cc, sc)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); o.relay(sc, cc, "C"); sc.Close() }()
			go func() { defer wg.Done(); o.relay(cc, sc, "S"); cc.Close() }()
		}
	}()
	return o
}

// relay copies src to dst, recording each read until TLS starts: the
// first byte of a TLS record from the client is 0x16 (handshake).
func (o *observer) relay(dst, src net.Conn, who string) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			o.mu.Lock()
			if who == "C" && buf[0] == 0x16 {
				o.tls = true
			}
			if !o.tls {
				o.chunks = append(o.chunks, who+": "+string(buf[:n]))
			}
			o.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF or closed: the caller closes the other side
		}
	}
}

// starttlsWrite is the client's write that held <starttls, as written.
func (o *observer) starttlsWrite() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, c := range o.chunks {
		if s, ok := strings.CutPrefix(c, "C: "); ok && strings.Contains(s, "<starttls") {
			return s
		}
	}
	return ""
}

func (o *observer) transcript() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var b strings.Builder
	for _, c := range o.chunks {
		fmt.Fprintf(&b, "    %q\n", c)
	}
	return b.String()
}

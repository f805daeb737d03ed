package s2s_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/s2s"
)

// Domains of the Prosody interop tests: both under localhost, neither
// known to DNS; each server reaches the other by a static route (Parley's
// static_routes, Prosody's mod_test_s2s_routes).
const (
	parleyDomain  = "parley.localhost"
	prosodyDomain = "prosody.localhost"
)

// ciMode reports whether a missing Prosody is a failure (CI) rather than
// a skip (a developer's machine), as in parleytest/interop.
func ciMode() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

// prosodyBinary returns Prosody's path, or skips (fails under CI).
func prosodyBinary(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("prosody")
	if err == nil {
		return p
	}
	if ciMode() {
		t.Fatalf("prosody is not installed and CI is set: apt-get install prosody (.ci/run does this)")
	}
	t.Skip("prosody is not installed: apt-get install prosody")
	return ""
}

// prosodyOpts is how one Prosody is run.
type prosodyOpts struct {
	certFile, keyFile, caFile string
	secureAuth                bool   // s2s_secure_auth: only valid certificates
	parleyS2S                 string // Parley's s2s listener, host:port
}

// startProsody runs Prosody from a throwaway directory with
// testdata/prosody/s2s.cfg.lua.in and returns its c2s and s2s addresses
// once both accept connections. It is stopped when the test ends.
func startProsody(t *testing.T, o prosodyOpts) (c2s, s2sAddr string) {
	t.Helper()
	bin := prosodyBinary(t)
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	var err error
	if c2s, err = parleytest.FreeAddr(); err != nil {
		t.Fatal(err)
	}
	if s2sAddr, err = parleytest.FreeAddr(); err != nil {
		t.Fatal(err)
	}
	port := func(addr string) string {
		_, p, _ := net.SplitHostPort(addr)
		return p
	}
	plugins, err := filepath.Abs("../testdata/prosody/plugins")
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile("../testdata/prosody/s2s.cfg.lua.in")
	if err != nil {
		t.Fatal(err)
	}
	secure := "false"
	if o.secureAuth {
		secure = "true"
	}
	cfg := strings.NewReplacer(
		"@DIR@", dir, "@PLUGINS@", plugins, "@C2S_PORT@", port(c2s), "@S2S_PORT@", port(s2sAddr),
		"@PARLEY_DOMAIN@", parleyDomain, "@PARLEY_S2S_PORT@", port(o.parleyS2S),
		"@PROSODY_DOMAIN@", prosodyDomain, "@SECURE_AUTH@", secure,
		"@CERT@", o.certFile, "@KEY@", o.keyFile, "@CAFILE@", o.caFile,
	).Replace(string(tmpl))
	cfgFile := filepath.Join(dir, "prosody.cfg.lua")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfgFile, "-F")
	cmd.Dir = dir
	runServer(t, "prosody", cmd, dir, []string{"out.log", "prosody.log"}, 20*time.Second, c2s, s2sAddr)
	return c2s, s2sAddr
}

// runServer starts cmd, a peer server (Prosody, ejabberd) run from dir
// with its output in dir/out.log, waits until it listens on each of
// addrs (for at most wait), and stops it at the test's end with SIGTERM
// (then SIGKILL after 10 s), logging the tails of logs (in dir) when the
// test failed.
func runServer(t *testing.T, name string, cmd *exec.Cmd, dir string, logs []string, wait time.Duration, addrs ...string) {
	t.Helper()
	out, err := os.Create(filepath.Join(dir, "out.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		// Both stop cleanly on SIGTERM (ejabberd's Erlang runtime through
		// init:stop).
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			for _, f := range logs {
				b, _ := os.ReadFile(filepath.Join(dir, f))
				t.Logf("%s's %s:\n%s", name, f, tail(string(b), 80))
			}
		}
	})
	for _, addr := range addrs {
		for start := time.Now(); ; {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-exited:
				b, _ := os.ReadFile(filepath.Join(dir, "out.log"))
				t.Fatalf("%s exited: %s", name, b)
			default:
			}
			if time.Since(start) > wait {
				t.Fatalf("%s does not listen on %s: %v", name, addr, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// prosodyUser registers user on Prosody (XEP-0077, in band), logs in
// with PLAIN over STARTTLS, binds resource, asks for the roster and sends initial presence.
func prosodyUser(t *testing.T, addr string, roots *x509.CertPool, user, pw, resource string) *parleytest.Conn {
	t.Helper()
	return inBandUser(t, addr, prosodyDomain, roots, user, pw, resource)
}

// inBandUser registers user on the server at addr serving domain (XEP-0077,
// in band), logs in with PLAIN over STARTTLS, binds resource, asks for the
// roster and sends initial presence.
func inBandUser(t *testing.T, addr, domain string, roots *x509.CertPool, user, pw, resource string) *parleytest.Conn {
	t.Helper()
	c := parleytest.Dial(t, addr)
	c.Open(domain)
	c.StartTLS(&tls.Config{ServerName: domain, RootCAs: roots, MinVersion: tls.VersionTLS12})
	c.Send("<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>%s</username><password>%s</password></query></iq>", user, pw)
	if el := c.Next(); el.SelectAttrValue("type", "") != "result" {
		t.Fatalf("registering on %s: %s", domain, c.String(el))
	}
	if el := c.AuthPlain(user, pw); el.Tag != "success" {
		t.Fatalf("logging in to %s: %s", domain, c.String(el))
	}
	c.Open(domain)
	c.Bind(resource)
	// An interested resource (RFC 6121 §2.1.6): Prosody sends roster
	// pushes only to a resource that asked for the roster.
	c.Send("<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>")
	c.Send("<presence/>")
	c.Sync()
	return c
}

// A real Prosody (Debian's) and Parley federate both ways: chat, and
// presence subscriptions with their presence, and pings of the idle
// stream (XEP-0199), by dialback (certificates
// neither side trusts; s2s_secure_auth off) and by SASL EXTERNAL
// (certificates of a CA both trust; s2s_secure_auth on).
func TestProsodyFederation(t *testing.T) {
	tests := []struct {
		name      string
		sharedCA  bool
		wantStats s2s.Stats
	}{
		{"dialback, untrusted certificates", false, s2s.Stats{OutDialback: 1, InDialback: 1}},
		{"SASL EXTERNAL, a shared CA", true, s2s.Stats{OutExternal: 1, InExternal: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prosodyBinary(t)
			ca := newCA(t)
			_, pCert, pKey := ca.issue(prosodyDomain)
			parleyS2S, err := parleytest.FreeAddr()
			if err != nil {
				t.Fatal(err)
			}
			prosodyCA := ca.File
			if !tt.sharedCA {
				// Prosody trusts another CA than its own certificate's,
				// and Parley's certificate is generated (self-signed).
				prosodyCA = newCA(t).File
			}
			c2s, prosodyS2S := startProsody(t, prosodyOpts{
				certFile: pCert, keyFile: pKey, caFile: prosodyCA,
				secureAuth: tt.sharedCA, parleyS2S: parleyS2S,
			})
			p := parleytest.Start(t, parleytest.WithHost(parleyDomain, ""), parleytest.WithConfig(func(c *conf.Config) {
				c.S2S.Listen = []string{parleyS2S}
				c.S2S.StaticRoutes = map[string]string{prosodyDomain: prosodyS2S}
				c.S2S.ConnectTimeout = conf.Duration{Duration: 15 * time.Second}
				// Pings soon after each write: Prosody answers them.
				c.S2S.PingInterval = conf.Duration{Duration: 100 * time.Millisecond}
				if tt.sharedCA {
					h := &c.Hosts[0]
					_, h.TLSCert, h.TLSKey = ca.issue(parleyDomain)
					c.S2S.CAFile = ca.File
				}
			}))
			if tt.sharedCA {
				p.CertPool.AddCert(ca.cert)
			}
			roots := x509.NewCertPool()
			roots.AddCert(ca.cert)

			p.AddUser("alice@"+parleyDomain, "pw")
			alice := p.Login("alice@"+parleyDomain, "pw", "phone")
			alice.Send("<presence/>")
			alice.Sync()
			carol := prosodyUser(t, c2s, roots, "carol", "pw", "desk")

			aliceBare, aliceFull := "alice@"+parleyDomain, "alice@"+parleyDomain+"/phone"
			carolBare, carolFull := "carol@"+prosodyDomain, "carol@"+prosodyDomain+"/desk"
			steps := []struct {
				name string
				run  func(t *testing.T)
			}{
				{"chat parley to prosody", func(t *testing.T) {
					alice.Send("<message type='chat' to='%s'><body>hi carol</body></message>", carolBare)
					el := next(t, carol, "chat", isMessage("hi carol"))
					if f := el.SelectAttrValue("from", ""); f != aliceFull {
						t.Errorf("from = %q; want %q", f, aliceFull)
					}
				}},
				{"chat prosody to parley", func(t *testing.T) {
					carol.Send("<message type='chat' to='%s'><body>hi alice</body></message>", aliceFull)
					el := next(t, alice, "chat", isMessage("hi alice"))
					if f := el.SelectAttrValue("from", ""); f != carolFull {
						t.Errorf("from = %q; want %q", f, carolFull)
					}
				}},
				{"parley user subscribes to prosody user", func(t *testing.T) {
					alice.Send("<presence type='subscribe' to='%s'/>", carolBare)
					next(t, carol, "subscribe", hasPresence("subscribe", aliceBare))
					carol.Send("<presence type='subscribed' to='%s'/>", aliceBare)
					next(t, alice, "subscribed", hasPresence("subscribed", carolBare))
					next(t, alice, "carol's presence", hasPresence("", carolFull))
				}},
				{"prosody user subscribes to parley user", func(t *testing.T) {
					carol.Send("<presence type='subscribe' to='%s'/>", aliceBare)
					next(t, alice, "subscribe", hasPresence("subscribe", carolBare))
					alice.Send("<presence type='subscribed' to='%s'/>", carolBare)
					// Prosody tells its user by a roster push (§3.1.6's
					// <presence type='subscribed'/> it keeps to itself).
					next(t, carol, "roster push", isRosterPush(aliceBare, "both"))
					next(t, carol, "alice's presence", hasPresence("", aliceFull))
				}},
				{"presence change reaches the other side", func(t *testing.T) {
					carol.Send("<presence><show>away</show></presence>")
					el := next(t, alice, "carol away", hasPresence("", carolFull))
					if s := el.SelectElement("show"); s == nil || s.Text() != "away" {
						t.Errorf("presence %s; want <show>away</show>", alice.String(el))
					}
				}},
			}
			steps = append(steps, struct {
				name string
				run  func(t *testing.T)
			}{"prosody answers pings on the idle stream", func(t *testing.T) {
				eventually(t, "two pings answered", func() bool { return p.S2S().Stats().PingsAnswered >= 2 })
				if d := p.S2S().Stats().DeadPeers; d != 0 {
					t.Errorf("%d dead peers; want none", d)
				}
			}})
			for _, s := range steps {
				if !t.Run(s.name, s.run) {
					return
				}
			}
			got := p.S2S().Stats()
			got = s2s.Stats{OutExternal: got.OutExternal, OutDialback: got.OutDialback, InExternal: got.InExternal, InDialback: got.InDialback}
			if got != tt.wantStats {
				t.Errorf("parley's streams authenticated %+v; want %+v", got, tt.wantStats)
			}
		})
	}
}

// isIQ matches the iq with id.
func isIQ(id string) func(*etree.Element) bool {
	return func(el *etree.Element) bool { return el.Tag == "iq" && el.SelectAttrValue("id", "") == id }
}

// isRosterPush matches a roster push of jid with subscription sub.
func isRosterPush(jid, sub string) func(*etree.Element) bool {
	return func(el *etree.Element) bool {
		item := el.FindElement("query/item")
		return el.Tag == "iq" && el.SelectAttrValue("type", "") == "set" && item != nil &&
			item.SelectAttrValue("jid", "") == jid && item.SelectAttrValue("subscription", "") == sub
	}
}

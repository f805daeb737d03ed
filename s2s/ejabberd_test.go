package s2s_test

import (
	"crypto/x509"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/s2s"
	"golang.org/x/net/dns/dnsmessage"
)

// Domains of the ejabberd interop tests. Not under localhost, unlike the
// Prosody tests': the Erlang resolver does not look names under localhost
// up in DNS (enoname), and ejabberd finds Parley by DNS.
const (
	ejabberdDomain = "ejabberd.example"
	parleyEDomain  = "parley.example"
)

// erlBinary returns erl's path and the directory of Debian's ejabberd
// applications (ERL_LIBS: /usr/lib/<triplet> on Debian), or skips (fails
// under CI) when ejabberd is not installed.
func erlBinary(t *testing.T) (erl, libs string) {
	t.Helper()
	erl, err := exec.LookPath("erl")
	if err == nil {
		apps, _ := filepath.Glob("/usr/lib/*/ejabberd-*/ebin/ejabberd.app")
		if len(apps) > 0 {
			return erl, filepath.Dir(filepath.Dir(filepath.Dir(apps[0])))
		}
	}
	if ciMode() {
		t.Fatalf("ejabberd is not installed and CI is set: apt-get install ejabberd (.ci/run does this)")
	}
	t.Skip("ejabberd is not installed: apt-get install ejabberd")
	return "", ""
}

// startEjabberd runs ejabberd from a throwaway directory with
// testdata/ejabberd/ejabberd.yml.in, outside of ejabberdctl (which would
// run it as the ejabberd user and start epmd, a daemon that outlives the
// test), and returns its c2s and s2s addresses once both accept
// connections. It is stopped when the test ends.
func startEjabberd(t *testing.T, certFile, keyFile, caFile, parleyS2S string) (c2s, s2sAddr string) {
	t.Helper()
	erl, libs := erlBinary(t)
	dir := t.TempDir()
	for _, d := range []string{"spool", "log"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
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
	// ejabberd reads one file with its certificate and key.
	certKey := filepath.Join(dir, "certkey.pem")
	var pem []byte
	for _, f := range []string{certFile, keyFile} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		pem = append(pem, b...)
	}
	tmpl, err := os.ReadFile("../testdata/ejabberd/ejabberd.yml.in")
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer(
		"@DIR@", dir, "@C2S_PORT@", port(c2s), "@S2S_PORT@", port(s2sAddr),
		"@EJABBERD_DOMAIN@", ejabberdDomain,
		"@CERTKEY@", certKey, "@CAFILE@", caFile,
	).Replace(string(tmpl))
	files := map[string]string{
		"ejabberd.yml": cfg,
		"certkey.pem":  string(pem),
		// The Erlang resolver asks the test's name server and nothing
		// else (no /etc/hosts, no system resolver).
		"inetrc": "{lookup, [dns]}.\n{resolv_conf, \"\"}.\n{nameserver, {127,0,0,1}, " + dnsForParley(t, parleyS2S) + "}.\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(erl, "-noinput", "-mnesia", "dir", `"`+filepath.Join(dir, "spool")+`"`, "-s", "ejabberd")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"EJABBERD_CONFIG_PATH="+filepath.Join(dir, "ejabberd.yml"),
		"EJABBERD_LOG_PATH="+filepath.Join(dir, "log", "ejabberd.log"),
		"ERL_INETRC="+filepath.Join(dir, "inetrc"),
		"ERL_LIBS="+libs,
		"ERL_CRASH_DUMP_BYTES=0",
	)
	runServer(t, "ejabberd", cmd, dir, []string{"out.log", "log/ejabberd.log"}, 30*time.Second, c2s, s2sAddr)
	return c2s, s2sAddr
}

// dnsForParley serves, on a loopback UDP port it returns, the record
// that sends ejabberd to Parley's s2s listener at parleyS2S: the
// _xmpp-server SRV record of parleyEDomain, whose target is 127.0.0.1
// itself (ejabberd's address lookup, inet:gethostbyname, gets no answer
// from here inside ejabberd, enoname, and takes an address as it is).
// Every other question gets NXDOMAIN, _xmpps-server's too.
func dnsForParley(t *testing.T, parleyS2S string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	_, portStr, _ := net.SplitHostPort(parleyS2S)
	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatal(err)
	}
	srv := dnsmessage.MustNewName("_xmpp-server._tcp." + parleyEDomain + ".")
	go func() {
		buf := make([]byte, 1500)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			name := strings.ToLower(q.Name.String())
			found := q.Type == dnsmessage.TypeSRV && name == srv.String()
			rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true,
				// The Erlang resolver takes no answer that does not echo
				// its recursion-desired flag.
				RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
			if !found {
				rh.RCode = dnsmessage.RCodeNameError
			}
			b := dnsmessage.NewBuilder(nil, rh)
			_ = b.StartQuestions()
			_ = b.Question(q)
			_ = b.StartAnswers()
			if found {
				rr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
				_ = b.SRVResource(rr, dnsmessage.SRVResource{Port: uint16(port), Target: dnsmessage.MustNewName("127.0.0.1.")})
			}
			if out, err := b.Finish(); err == nil {
				_, _ = pc.WriteTo(out, addr)
			}
		}
	}()
	_, p, _ := net.SplitHostPort(pc.LocalAddr().String())
	return p
}

// A real ejabberd (Debian's 23.01) and Parley federate both ways: chat,
// presence subscriptions with their presence, and an iq to each other's
// server, by dialback (certificates neither side trusts) and by SASL
// EXTERNAL (certificates of a CA both trust).
func TestEjabberdFederation(t *testing.T) {
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
			erlBinary(t)
			ca := newCA(t)
			_, eCert, eKey := ca.issue(ejabberdDomain)
			parleyS2S, err := parleytest.FreeAddr()
			if err != nil {
				t.Fatal(err)
			}
			ejabberdCA := ca.File
			if !tt.sharedCA {
				ejabberdCA = newCA(t).File
			}
			c2s, ejabberdS2S := startEjabberd(t, eCert, eKey, ejabberdCA, parleyS2S)
			p := parleytest.Start(t, parleytest.WithHost(parleyEDomain, ""), parleytest.WithConfig(func(c *conf.Config) {
				c.S2S.Listen = []string{parleyS2S}
				c.S2S.StaticRoutes = map[string]string{ejabberdDomain: ejabberdS2S}
				c.S2S.ConnectTimeout = conf.Duration{Duration: 15 * time.Second}
				if tt.sharedCA {
					h := &c.Hosts[0]
					_, h.TLSCert, h.TLSKey = ca.issue(parleyEDomain)
					c.S2S.CAFile = ca.File
				}
			}))
			if tt.sharedCA {
				p.CertPool.AddCert(ca.cert)
			}
			roots := x509.NewCertPool()
			roots.AddCert(ca.cert)

			p.AddUser("alice@"+parleyEDomain, "pw")
			alice := p.Login("alice@"+parleyEDomain, "pw", "phone")
			alice.Send("<presence/>")
			alice.Sync()
			dave := inBandUser(t, c2s, ejabberdDomain, roots, "dave", "pw", "desk")

			aliceBare, aliceFull := "alice@"+parleyEDomain, "alice@"+parleyEDomain+"/phone"
			daveBare, daveFull := "dave@"+ejabberdDomain, "dave@"+ejabberdDomain+"/desk"
			steps := []struct {
				name string
				run  func(t *testing.T)
			}{
				{"chat parley to ejabberd", func(t *testing.T) {
					alice.Send("<message type='chat' to='%s'><body>hi dave</body></message>", daveFull)
					el := next(t, dave, "chat", isMessage("hi dave"))
					if f := el.SelectAttrValue("from", ""); f != aliceFull {
						t.Errorf("from = %q; want %q", f, aliceFull)
					}
				}},
				{"chat ejabberd to parley", func(t *testing.T) {
					dave.Send("<message type='chat' to='%s'><body>hi alice</body></message>", aliceFull)
					el := next(t, alice, "chat", isMessage("hi alice"))
					if f := el.SelectAttrValue("from", ""); f != daveFull {
						t.Errorf("from = %q; want %q", f, daveFull)
					}
				}},
				{"parley user subscribes to ejabberd user", func(t *testing.T) {
					alice.Send("<presence type='subscribe' to='%s'/>", daveBare)
					next(t, dave, "subscribe", hasPresence("subscribe", aliceBare))
					dave.Send("<presence type='subscribed' to='%s'/>", aliceBare)
					next(t, alice, "subscribed", hasPresence("subscribed", daveBare))
					next(t, alice, "dave's presence", hasPresence("", daveFull))
				}},
				{"ejabberd user subscribes to parley user", func(t *testing.T) {
					dave.Send("<presence type='subscribe' to='%s'/>", aliceBare)
					next(t, alice, "subscribe", hasPresence("subscribe", daveBare))
					alice.Send("<presence type='subscribed' to='%s'/>", daveBare)
					next(t, dave, "alice's presence", hasPresence("", aliceFull))
				}},
				{"iq to the other server", func(t *testing.T) {
					alice.Send("<iq type='get' id='v1' to='%s'><query xmlns='jabber:iq:version'/></iq>", ejabberdDomain)
					el := next(t, alice, "version", isIQ("v1"))
					if el.SelectAttrValue("type", "") != "result" || el.FindElement("query/name") == nil {
						t.Errorf("ejabberd's version: %s", alice.String(el))
					}
					dave.Send("<iq type='get' id='p1' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>", parleyEDomain)
					if el := next(t, dave, "ping", isIQ("p1")); el.SelectAttrValue("type", "") != "result" {
						t.Errorf("parley's answer to a ping: %s", dave.String(el))
					}
				}},
			}
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

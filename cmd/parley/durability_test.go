package main

import (
	"bufio"
	"crypto/tls"
	"database/sql"
	"encoding/base64"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// TestDurabilityUnderKill (issue #17, deliver 4): a real parley serve, on
// a file database, is killed with SIGKILL during a steady flow of offline
// messages, roster changes and registrations; after a restart nothing the
// server acknowledged is missing or duplicated, and PRAGMA
// integrity_check is ok.
//
// Acknowledged is what the client got an answer for: a roster set's or a
// registration's result. A message to an offline user has no answer
// without stream management, so the sender pings after each one: a
// session handles its stanzas in order, one at a time (c2s Session.run
// reads the next element only once Router.Route returned, and the route
// of a message to a user without a session commits it in storeOffline
// before returning), so a message sent before an answered ping is
// committed.
func TestDurabilityUnderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a parley process")
	}
	bin := filepath.Join(t.TempDir(), "parley")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cfg, dataDir := testConfig{
		top: "log_level = \"info\"\n[limits]\nregistrations_per_ip = 1000000\nunauthenticated_per_ip = 1000\nroster_changes_per_minute = 1000000\n" +
			"offline_messages = 1000000\noffline_bytes = \"1GiB\"\nroster_size = 1000000\n",
		hosts: "[[host]]\nname = \"example.com\"\nregistration = \"open\"\n",
	}.write(t)
	for _, u := range []string{"alice", "bob", "carol"} {
		if code, _, stderr := runParley(t, "pw-"+u+"\n", "user", "add", "-c", cfg, u+"@example.com"); code != 0 {
			t.Fatalf("user add %s: %s", u, stderr)
		}
	}

	p := startParley(t, bin, cfg)
	var (
		wg                sync.WaitGroup
		mu                sync.Mutex
		sentMsgs, ackMsgs int                   // messages m0..: sent, and acknowledged (a prefix)
		roster            = map[string]string{} // contact -> "in" or "out", as acknowledged
		inFlight          string                // the roster change not acknowledged
		regs, regsSent    []string
		errs              []error
		stop              = make(chan struct{})
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	wg.Add(3)
	go func() { // offline messages from alice to bob, each then a ping
		defer wg.Done()
		c, err := dialLogin(p.addr, "alice", "phone")
		if err != nil {
			fail(err)
			return
		}
		defer c.Close()
		for i := 0; ; i++ {
			mu.Lock()
			sentMsgs = i + 1
			mu.Unlock()
			if _, err := fmt.Fprintf(c, "<message to='bob@example.com' type='chat' id='m%d'><body>%d</body></message><iq type='get' id='p%d'><ping xmlns='urn:xmpp:ping'/></iq>", i, i, i); err != nil {
				return
			}
			for {
				el, err := c.next()
				if err != nil {
					return
				}
				if el.Tag == "message" && el.SelectAttrValue("type", "") == "error" {
					fail(fmt.Errorf("message bounced: %s", serialize(el)))
					return
				}
				if el.Tag == "iq" && el.SelectAttrValue("id", "") == fmt.Sprintf("p%d", i) {
					break
				}
			}
			mu.Lock()
			ackMsgs = i + 1
			mu.Unlock()
		}
	}()
	go func() { // roster changes of carol: add c<i>, and remove every third
		defer wg.Done()
		c, err := dialLogin(p.addr, "carol", "desk")
		if err != nil {
			fail(err)
			return
		}
		defer c.Close()
		for i := 0; ; i++ {
			contact, sub, state := fmt.Sprintf("c%d@example.com", i), "", "in"
			if i%3 == 2 {
				contact, sub, state = fmt.Sprintf("c%d@example.com", i-1), " subscription='remove'", "out"
			}
			mu.Lock()
			inFlight = contact
			mu.Unlock()
			if _, err := fmt.Fprintf(c, "<iq type='set' id='r%d'><query xmlns='jabber:iq:roster'><item jid='%s'%s/></query></iq>", i, contact, sub); err != nil {
				return
			}
			if el, err := c.await(fmt.Sprintf("r%d", i)); err != nil {
				return
			} else if el.SelectAttrValue("type", "") != "result" {
				fail(fmt.Errorf("roster set %d: %s", i, serialize(el)))
				return
			}
			mu.Lock()
			roster[contact], inFlight = state, ""
			mu.Unlock()
		}
	}()
	go func() { // registrations, one stream each
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			user := fmt.Sprintf("reg%d", i)
			mu.Lock()
			regsSent = append(regsSent, user)
			mu.Unlock()
			ok, err := register(p.addr, user)
			if err != nil {
				return
			}
			if !ok {
				fail(fmt.Errorf("registration of %s refused", user))
				return
			}
			mu.Lock()
			regs = append(regs, user)
			mu.Unlock()
		}
	}()

	// Kill once each flow has had a good run.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		enough := ackMsgs >= 200 && len(roster) >= 100 && len(regs) >= 20
		mu.Unlock()
		if enough || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.kill(t)
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		t.Fatalf("during the flow: %v", errs)
	}
	if ackMsgs == 0 || len(roster) == 0 || len(regs) == 0 {
		t.Fatalf("the flow did not get going: %d messages, %d roster changes, %d registrations acknowledged", ackMsgs, len(roster), len(regs))
	}
	t.Logf("killed after %d (%d acknowledged) messages, %d roster items, %d (%d) registrations", sentMsgs, ackMsgs, len(roster), len(regsSent), len(regs))

	p = startParley(t, bin, cfg)

	t.Run("every acknowledged offline message comes once, in order", func(t *testing.T) {
		c, err := dialLogin(p.addr, "bob", "desk")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "<presence/><iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
		var got []string
		for {
			el, err := c.next()
			if err != nil {
				t.Fatal(err)
			}
			if el.Tag == "iq" && el.SelectAttrValue("id", "") == "sync" {
				break
			}
			if el.Tag == "message" {
				got = append(got, el.SelectAttrValue("id", ""))
			}
		}
		if len(got) < ackMsgs || len(got) > sentMsgs {
			t.Fatalf("bob got %d messages; %d were acknowledged, %d sent", len(got), ackMsgs, sentMsgs)
		}
		for i, id := range got {
			if id != fmt.Sprintf("m%d", i) {
				t.Fatalf("message %d is %s, want m%d (missing or duplicated)", i, id, i)
			}
		}
	})
	t.Run("every acknowledged roster change is there", func(t *testing.T) {
		c, err := dialLogin(p.addr, "carol", "desk")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>")
		el, err := c.await("roster")
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, it := range el.FindElements("query/item") {
			have[it.SelectAttrValue("jid", "")] = true
		}
		for contact, state := range roster {
			if contact != inFlight && have[contact] != (state == "in") {
				t.Errorf("%s is in the roster: %v; acknowledged as %s", contact, have[contact], state)
			}
		}
		for contact := range have {
			if _, ok := roster[contact]; !ok && contact != inFlight {
				t.Errorf("%s is in the roster, but no change of it was sent", contact)
			}
		}
	})
	t.Run("every acknowledged registration can log in", func(t *testing.T) {
		for _, u := range regs {
			c, err := dialLogin(p.addr, u, "r")
			if err != nil {
				t.Fatalf("%s: %v", u, err)
			}
			c.Close()
		}
	})
	p.stop(t)
	t.Run("PRAGMA integrity_check is ok", func(t *testing.T) {
		db, err := sql.Open("sqlite", filepath.Join(dataDir, "parley.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var res string
		if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
			t.Errorf("integrity_check = %q, %v", res, err)
		}
	})
}

// parleyProc is a running parley serve.
type parleyProc struct {
	cmd  *exec.Cmd
	addr string // STARTTLS c2s
	done chan struct{}
}

var listening = regexp.MustCompile(`msg="parley: listening" .* c2s=(\S+)`)

func startParley(t *testing.T, bin, cfg string) *parleyProc {
	t.Helper()
	cmd := exec.Command(bin, "serve", "-c", cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &parleyProc{cmd: cmd, done: make(chan struct{})}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill(t) })
	select {
	case p.addr = <-found:
	case <-p.done:
		t.Fatal("parley serve exited before it listened")
	case <-time.After(serveTimeout):
		t.Fatal("parley serve did not log that it listens")
	}
	return p
}

// kill ends the process with SIGKILL and waits for it.
func (p *parleyProc) kill(t *testing.T) {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop ends the process with SIGTERM and waits for it to exit.
func (p *parleyProc) stop(t *testing.T) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(serveTimeout):
		t.Fatal("parley serve did not stop on SIGTERM")
	}
}

// client is a bare XMPP client stream over TLS.
type client struct {
	net.Conn
	r *xmpp.Reader
}

// dialStream connects, opens a stream to example.com and upgrades it with
// STARTTLS, reading the features that follow.
func dialStream(addr string) (*client, error) {
	nc, err := net.DialTimeout("tcp", addr, serveTimeout)
	if err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(serveTimeout))
	c := &client{Conn: nc, r: xmpp.NewReader(nc, xmpp.Limits{MaxStanza: 1 << 20})}
	if err := c.open(); err != nil {
		nc.Close()
		return nil, err
	}
	fmt.Fprint(c, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	if el, err := c.next(); err != nil || el.Tag != "proceed" {
		nc.Close()
		return nil, fmt.Errorf("starttls: %v %v", el, err)
	}
	tc := tls.Client(nc, &tls.Config{ServerName: "example.com", InsecureSkipVerify: true}) // the test's own fresh certificate
	c.Conn, c.r = tc, xmpp.NewReader(tc, xmpp.Limits{MaxStanza: 1 << 20})
	if err := c.open(); err != nil {
		tc.Close()
		return nil, err
	}
	return c, nil
}

func (c *client) open() error {
	c.r.Restart()
	fmt.Fprint(c, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>")
	if _, err := c.r.ReadHeader(); err != nil {
		return err
	}
	_, err := c.next() // features
	return err
}

func (c *client) next() (*etree.Element, error) {
	_ = c.SetDeadline(time.Now().Add(serveTimeout))
	return c.r.ReadElement()
}

// await reads until the iq with id and returns it.
func (c *client) await(id string) (*etree.Element, error) {
	for {
		el, err := c.next()
		if err != nil {
			return nil, err
		}
		if el.Tag == "iq" && el.SelectAttrValue("id", "") == id {
			return el, nil
		}
	}
}

// dialLogin logs user@example.com in with PLAIN and binds resource.
func dialLogin(addr, user, resource string) (*client, error) {
	c, err := dialStream(addr)
	if err != nil {
		return nil, err
	}
	pw := "pw-" + user
	fmt.Fprintf(c, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>",
		base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pw)))
	if el, err := c.next(); err != nil || el.Tag != "success" {
		c.Close()
		return nil, fmt.Errorf("auth %s: %v %v", user, serialize(el), err)
	}
	if err := c.open(); err != nil {
		c.Close()
		return nil, err
	}
	fmt.Fprintf(c, "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>%s</resource></bind></iq>", resource)
	if el, err := c.await("bind"); err != nil || el.SelectAttrValue("type", "") != "result" {
		c.Close()
		return nil, fmt.Errorf("bind %s: %v %v", user, serialize(el), err)
	}
	return c, nil
}

// register registers user (password "pw-"+user) on a stream of its own;
// ok is whether the server answered with a result.
func register(addr, user string) (ok bool, err error) {
	c, err := dialStream(addr)
	if err != nil {
		return false, err
	}
	defer c.Close()
	fmt.Fprintf(c, "<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>%s</username><password>pw-%s</password></query></iq>", user, user)
	el, err := c.await("reg")
	if err != nil {
		return false, err
	}
	return el.SelectAttrValue("type", "") == "result", nil
}

func serialize(el *etree.Element) string {
	if el == nil {
		return "nothing"
	}
	d := etree.NewDocument()
	d.SetRoot(el.Copy())
	s, _ := d.WriteToString()
	return s
}

package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	httpcomponent "github.com/parley-im/parley/components/webhook"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
)

// startSlowServer starts the server of startServer with a second bot host,
// hung.localhost, whose webhook listens on the returned listener (for the
// tool's hanging webhook), and small queues so that a short run fills
// them: 64 KiB per session; 10 stanzas and a 1 s timeout for the bot.
func startSlowServer(t *testing.T) (*parleytest.Server, net.Listener) {
	t.Helper()
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hang.Close() })
	s, _ := startServer(t, func(c *conf.Config) {
		c.Limits.QueueBytes = 64 * conf.KiB
		c.Hosts = append(c.Hosts, conf.Host{
			Name: "hung.localhost", Type: httpcomponent.HostType, Options: &httpcomponent.Options{PostURL: "http://" + hang.Addr().String() + "/",
				Timeout: conf.Duration{Duration: time.Second}, Queue: 10},
		})
	})
	return s, hang
}

func TestSlowConsumers(t *testing.T) {
	pid := strconv.Itoa(os.Getpid()) // the server runs in this process
	tests := []struct {
		name              string
		shape, rate, size string
	}{
		// 100 KB bodies at 20/s: the 64 KiB queue and the socket's
		// buffers are full within the run.
		{"large_bodies", shapeBody, "20", "100000"},
		// 25,000 empty elements a message: 100 KB on the wire, far more
		// in the server's memory. At 100/s, 20 MB in the run: more than
		// the sockets' buffers can take (4 MiB to send and 6 MiB to
		// receive at most here), so the queue fills. At 40 KB a message
		// a loaded CI machine sent half the 400 messages, 3.9 MB, which
		// the buffers took whole, and the test failed (as at 20/s
		// before).
		{"many_empty_children", shapeChildren, "100", "100000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, hang := startSlowServer(t)
			code, out, res := runToolWith(t, s, func(o *options) { o.hangHook = hang },
				"msg", "-pairs", "2", "-window", "4", "-duration", "2s", "-create", "-pid", pid,
				"-stalled", "1", "-stall-rate", tt.rate, "-stall-size", tt.size, "-stall-shape", tt.shape,
				"-hang-domain", "hung.localhost", "-hang-rate", "50", "-hang-size", "100")
			// The errors the slow consumers' senders get do not fail the
			// run; a lost message among the pairs would.
			if code != 0 || res["ok"] != true || num(t, res, "errors") != 0 || num(t, res, "lost") != 0 {
				t.Fatalf("exit %d, ok %v, errors %v, lost %v, error %v", code, res["ok"], res["errors"], res["lost"], res["error"])
			}
			if sent := num(t, res, "sent"); sent == 0 || num(t, res, "delivered") != sent {
				t.Errorf("the pairs: sent %v, delivered %v", sent, res["delivered"])
			}
			if num(t, res, "stall.sent") == 0 || num(t, res, "stall.errors.resource-constraint") == 0 {
				t.Errorf("no resource-constraint from the stalled client's full queue: %v", res["stall"])
			}
			if num(t, res, "hang.sent") == 0 || num(t, res, "hang.errors.resource-constraint") == 0 ||
				num(t, res, "hang.errors.remote-server-timeout") == 0 || num(t, res, "hang.webhook_connections") == 0 {
				t.Errorf("the hung bot: want resource-constraint, remote-server-timeout and connections: %v", res["hang"])
			}
			for _, side := range []string{"stall", "hang"} {
				want := num(t, res, side+".sent")
				for _, v := range res[side].(map[string]any)["errors"].(map[string]any) {
					want -= v.(float64)
				}
				if got := num(t, res, side+".unanswered"); got != want {
					t.Errorf("%s: unanswered %v, want sent less errors, %v", side, got, want)
				}
			}
			if start, peak := num(t, res, "rss_start_kib"), num(t, res, "rss_peak_kib"); start <= 0 || peak < start {
				t.Errorf("rss: start %v, peak %v", start, peak)
			}
			// Accounts: 4 for the pairs, 2 senders to the stalled client,
			// 2 to the bot, then the stalled client, load8.
			for _, want := range []string{"server RSS:", "stalled: 1 stalled client(s) from load8@localhost", "hung bot hung@hung.localhost", "resource-constraint"} {
				if !strings.Contains(out, want) {
					t.Errorf("the summary does not say %q:\n%s", want, out)
				}
			}
			waitNoSessions(t, s)
		})
	}
}

func TestStalledClientLogsInAgain(t *testing.T) {
	s, _ := startServer(t, nil)
	s.AddUser("load0@localhost", "load-password")
	var stdout, stderr bytes.Buffer
	o := &options{progress: io.Discard}
	if code, ok := parse([]string{"msg", "-addr", s.Addr, "-domain", "localhost", "-step-timeout", "10s"}, o, &stdout, &stderr); !ok {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sc := &stalledClient{index: 0}
	if err := sc.login(ctx, o); err != nil {
		t.Fatal(err)
	}
	first := *sc.jid.Load()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc.keep(ctx, o, stop)
	}()
	// The newest login with a resource wins: the server ends the stalled
	// stream with <conflict/>.
	sc.mu.Lock()
	resource := sc.c.JID.Resource()
	sc.mu.Unlock()
	kicker := s.Login("load0@localhost", "load-password", resource)
	defer kicker.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if p := sc.jid.Load(); sc.drops.Load() == 1 && p != nil && *p != first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 15 s: %d drops, %d failed logins, jid %v (was %s)", sc.drops.Load(), sc.loginFailures.Load(), sc.jid.Load(), first)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	<-done
	sc.close()
	if n := sc.loginFailures.Load(); n != 0 {
		t.Errorf("%d failed logins", n)
	}
}

func TestSideMessage(t *testing.T) {
	tests := []struct {
		name         string
		size         int
		shape        string
		bodyLen      int
		children     int
		maxExtraWire int
	}{
		{"body", 1000, shapeBody, 1000, 0, 100},
		{"children", 40000, shapeChildren, len("slow consumer"), 10000, 150},
		{"empty_body", 0, shapeBody, 0, 0, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := appendSideMessage(nil, "x@localhost/r", "s1", tt.size, tt.shape)
			if extra := len(b) - tt.size; extra < 0 || extra > tt.maxExtraWire {
				t.Errorf("%d bytes on the wire for size %d", len(b), tt.size)
			}
			doc := etree.NewDocument()
			if err := doc.ReadFromBytes(b); err != nil {
				t.Fatalf("not XML: %v", err)
			}
			m := doc.Root()
			if m.Tag != "message" || m.SelectAttrValue("to", "") != "x@localhost/r" || m.SelectAttrValue("type", "") != "chat" {
				t.Errorf("not a chat message to x@localhost/r: %s", b[:min(len(b), 100)])
			}
			if got := len(m.SelectElement("body").Text()); got != tt.bodyLen {
				t.Errorf("body of %d bytes, want %d", got, tt.bodyLen)
			}
			got := 0
			if x := m.SelectElement("x"); x != nil {
				got = len(x.ChildElements())
			}
			if got != tt.children {
				t.Errorf("%d children, want %d", got, tt.children)
			}
		})
	}
}

func TestSideLoadCountsReplies(t *testing.T) {
	sl := &sideLoad{errs: map[string]int64{}}
	sl.sent.Store(6)
	for _, x := range []string{
		`<message type='error' from='hung@b' id='s1'><error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`,
		`<message type='error' from='hung@b' id='s2'><error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`,
		`<message type='error' from='hung@b' id='s3'><error type='wait'><remote-server-timeout xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`,
		`<message type='error' from='hung@b' id='s4'/>`,
		`<message type='chat' from='hung@b'><body>hi</body></message>`,
		`<message type='chat' from='hung@b'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`,
		`<presence from='hung@b'/>`,
	} {
		doc := etree.NewDocument()
		if err := doc.ReadFromString(x); err != nil {
			t.Fatal(err)
		}
		sl.receive(doc.Root())
	}
	r := sl.result()
	if r.Errors["resource-constraint"] != 2 || r.Errors["remote-server-timeout"] != 1 || r.Errors["unknown"] != 1 || len(r.Errors) != 3 {
		t.Errorf("errors %v", r.Errors)
	}
	if r.Replies != 1 || r.Unanswered != 1 {
		t.Errorf("replies %d, unanswered %d; want 1 and 1", r.Replies, r.Unanswered)
	}
}

func TestRSSSampler(t *testing.T) {
	s, err := startRSS(os.Getpid(), time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// Touch 64 MiB while it samples: the peak must see it.
	big := make([]byte, 64<<20)
	for i := range big {
		big[i] = 1
	}
	time.Sleep(20 * time.Millisecond)
	start, peak, err := s.stop()
	if err != nil {
		t.Fatal(err)
	}
	if peak-start < 32<<10 {
		t.Errorf("start %d KiB, peak %d KiB: the 64 MiB touched are not in it", start, peak)
	}
	big[len(big)-1] = 2 // keep it alive while sampling
	if _, err := startRSS(-1, time.Second); err == nil {
		t.Error("no error for a process that does not exist")
	}
}

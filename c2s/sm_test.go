package c2s_test

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/c2s"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// smClient is a client's side of stream management over a raw
// connection: it counts the stanzas it reads, answers the server's <r/>,
// and keeps what it sent until the server acknowledges it.
type smClient struct {
	t    testing.TB
	c    *parleytest.Conn
	user string
	h    uint32 // stanzas read

	mu      sync.Mutex
	unacked []string // raw stanzas sent and not acknowledged
	acked   uint32
	asks    int // <r/> the server sent
}

// login authenticates as user@localhost and opens the stream after SASL,
// without binding.
func smLogin(t testing.TB, s *parleytest.Server, user string) *parleytest.Conn {
	t.Helper()
	c := s.DialSecure("localhost")
	if el := c.AuthPlain(user, "pw"); el.Tag != "success" {
		t.Fatalf("login %s: %s", user, c.String(el))
	}
	c.Open("localhost")
	return c
}

// enable logs user in, binds resource and enables stream management.
func enable(t testing.TB, s *parleytest.Server, user, resource, attrs string) (*smClient, *etree.Element) {
	t.Helper()
	c := smLogin(t, s, user)
	c.Bind(resource)
	c.Send("<enable xmlns='urn:xmpp:sm:3' %s/>", attrs)
	el := c.Next()
	if el.Tag != "enabled" {
		t.Fatalf("enable: got %s", c.String(el))
	}
	return &smClient{t: t, c: c, user: user}, el
}

// send sends a stanza and keeps it until acknowledged.
func (sc *smClient) send(format string, args ...any) {
	sc.t.Helper()
	raw := fmt.Sprintf(format, args...)
	sc.mu.Lock()
	sc.unacked = append(sc.unacked, raw)
	sc.mu.Unlock()
	sc.c.Send("%s", raw)
}

// next reads the next element, answering <r/> and taking <a/> on the
// way (an <a/> is returned too).
func (sc *smClient) next() (*etree.Element, error) {
	for {
		el, err := sc.c.NextErr()
		if err != nil {
			return el, err
		}
		if xmpp.NS(el) == c2s.NSSM {
			switch el.Tag {
			case "r":
				sc.mu.Lock()
				sc.asks++
				sc.mu.Unlock()
				sc.c.Send("<a xmlns='urn:xmpp:sm:3' h='%d'/>", sc.h)
				continue
			case "a":
				h, _ := strconv.ParseUint(el.SelectAttrValue("h", ""), 10, 32)
				sc.ackTo(uint32(h))
			}
			return el, nil
		}
		sc.h++
		return el, nil
	}
}

// pingsThenAck sends n pings and <r/>, reads until the n answers and
// the server's <a/> have come, and returns that <a/>'s h.
func (sc *smClient) pingsThenAck(t *testing.T, n int) string {
	t.Helper()
	for i := range n {
		sc.send("<iq type='get' id='p%d'><ping xmlns='urn:xmpp:ping'/></iq>", i)
	}
	sc.c.Send("<r xmlns='urn:xmpp:sm:3'/>")
	results, h := 0, ""
	for results < n || h == "" {
		el, err := sc.next()
		if err != nil {
			t.Fatal(err)
		}
		switch el.Tag {
		case "iq":
			results++
		case "a":
			h = el.SelectAttrValue("h", "")
		}
	}
	return h
}

// ackTo drops what the server acknowledged.
func (sc *smClient) ackTo(h uint32) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	n := h - sc.acked
	if int(n) > len(sc.unacked) {
		sc.t.Errorf("the server acknowledged %d stanzas of %d sent", n, len(sc.unacked))
		n = uint32(len(sc.unacked))
	}
	sc.unacked = sc.unacked[n:]
	sc.acked = h
}

// resume logs in on a new connection and resumes id; it returns the
// server's answer, and after <resumed/> has sent again what the server did
// not handle.
func (sc *smClient) resume(s *parleytest.Server, user, id string) *etree.Element {
	sc.t.Helper()
	sc.c = smLogin(sc.t, s, user)
	sc.c.Send("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='%d'/>", id, sc.h)
	el := sc.c.Next()
	if el.Tag != "resumed" {
		return el
	}
	h, _ := strconv.ParseUint(el.SelectAttrValue("h", ""), 10, 32)
	sc.ackTo(uint32(h))
	sc.mu.Lock()
	again := append([]string(nil), sc.unacked...)
	sc.mu.Unlock()
	for _, raw := range again {
		sc.c.Send("%s", raw)
	}
	return el
}

func smServer(t testing.TB, parkAfter, resume time.Duration) *parleytest.Server {
	s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) {
		c.C2S.ParkAfter.Duration = parkAfter
		c.C2S.ResumeTimeout.Duration = resume
	}))
	for _, u := range []string{"alice", "bob"} {
		s.AddUser(u+"@localhost", "pw")
	}
	return s
}

// parkings are the idle-memory settings every stream management test
// runs under: off, and parking at once.
var parkings = []struct {
	name string
	d    time.Duration
}{{"park_after 0s", 0}, {"park_after 1ms", time.Millisecond}}

// TestSMEnableAndAcks: <sm/> comes with bind and not before
// authentication; enable before bind fails; <enabled/> carries an id and
// max only for resumption, never a location unless configured; the
// server answers <r/> with the stanzas it routed, asks for acks of what it
// sent, and takes them.
func TestSMEnableAndAcks(t *testing.T) {
	for _, p := range parkings {
		t.Run(p.name, func(t *testing.T) {
			s := smServer(t, p.d, 5*time.Minute)
			c := s.DialSecure("localhost")
			if hasSM(c.Features) {
				t.Fatalf("<sm/> offered before authentication: %s", c.String(c.Features))
			}
			if el := c.AuthPlain("alice", "pw"); el.Tag != "success" {
				t.Fatal(c.String(el))
			}
			c.Open("localhost")
			if !hasSM(c.Features) {
				t.Fatalf("no <sm/> after authentication: %s", c.String(c.Features))
			}
			c.Send("<enable xmlns='urn:xmpp:sm:3'/>")
			if el := c.Next(); el.Tag != "failed" || el.FindElement("unexpected-request") == nil {
				t.Fatalf("enable before bind: %s", c.String(el))
			}
			c.Bind("a")

			tests := []struct {
				attrs string
				id    bool
			}{
				{attrs: "", id: false},
				{attrs: "resume='true'", id: true},
			}
			for _, tt := range tests {
				sc, el := enable(t, s, "bob", "b"+strconv.FormatBool(tt.id), tt.attrs)
				if got := el.SelectAttrValue("id", "") != ""; got != tt.id {
					t.Errorf("enable %q: id present %v, want %v", tt.attrs, got, tt.id)
				}
				if tt.id && (el.SelectAttrValue("max", "") != "300" || el.SelectAttrValue("resume", "") != "true") {
					t.Errorf("enable %q: %s, want max='300' resume='true'", tt.attrs, sc.c.String(el))
				}
				if el.SelectAttr("location") != nil {
					t.Errorf("enable %q: location not configured but sent: %s", tt.attrs, sc.c.String(el))
				}
				// Three pings and <r/>: h is 3; the answers are asked for.
				if h := sc.pingsThenAck(t, 3); h != "3" {
					t.Errorf("enable %q: <a h='%s'/> after three stanzas, want 3", tt.attrs, h)
				}
				// The server asks for its three answers, and the client's
				// ack leaves nothing unacknowledged: a ping still works.
				sc.send("<iq type='get' id='last'><ping xmlns='urn:xmpp:ping'/></iq>")
				for {
					el, err := sc.next()
					if err != nil {
						t.Fatal(err)
					}
					if el.Tag == "iq" && el.SelectAttrValue("id", "") == "last" {
						break
					}
				}
				sc.mu.Lock()
				asks := sc.asks
				sc.mu.Unlock()
				if asks == 0 {
					t.Errorf("enable %q: the server never sent <r/>", tt.attrs)
				}
			}
			c.Send("<enable xmlns='urn:xmpp:sm:3'/>")
			if el := c.Next(); el.Tag != "enabled" {
				t.Fatal(c.String(el))
			}
			c.Send("<enable xmlns='urn:xmpp:sm:3'/>")
			if el := c.Next(); el.Tag != "failed" || el.FindElement("unexpected-request") == nil {
				t.Fatalf("a second enable: %s", c.String(el))
			}
		})
	}
}

func hasSM(features *etree.Element) bool {
	for _, f := range features.ChildElements() {
		if f.Tag == "sm" && xmpp.NS(f) == c2s.NSSM {
			return true
		}
	}
	return false
}

// expectTooHigh reads until the stream error and checks it is XEP-0198
// §4's for an h of stanzas never sent.
func expectTooHigh(t *testing.T, sc *smClient, h, sent string) {
	t.Helper()
	for {
		el, err := sc.c.NextErr()
		var se *xmpp.StreamError
		if errors.As(err, &se) {
			if se.Condition != xmpp.StreamUndefined {
				t.Fatalf("stream error %s, want undefined-condition", se.Condition)
			}
			app := el.FindElement("handled-count-too-high")
			if app == nil || xmpp.NS(app) != c2s.NSSM || app.SelectAttrValue("h", "") != h || app.SelectAttrValue("send-count", "") != sent {
				t.Fatalf("stream error %s, want <handled-count-too-high h='%s' send-count='%s'/>", sc.c.String(el), h, sent)
			}
			return
		}
		if err != nil {
			t.Fatalf("want a stream error, got %v", err)
		}
	}
}

// TestSMHandledCountTooHigh: an <a/> for stanzas never sent closes the
// stream (XEP-0198 §4), also when the counts wrap at 2^32; an h that wraps
// is counted mod 2^32 both ways.
func TestSMHandledCountTooHigh(t *testing.T) {
	tests := []struct {
		name  string
		start uint32 // where both counts start
	}{
		{"from zero", 0},
		{"wrapping at 2^32", 1<<32 - 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer c2s.SetSMInitialH(tt.start)()
			s := smServer(t, 0, 0)
			sc, _ := enable(t, s, "alice", "a", "")
			sc.h, sc.acked = tt.start, tt.start
			// Four pings: the client's count and the server's answers
			// both pass 2^32 when they start near it.
			h := sc.pingsThenAck(t, 4)
			if want := strconv.FormatUint(uint64(tt.start+4), 10); h != want {
				t.Errorf("<a h='%s'/>, want %s", h, want)
			}
			// All four answers acknowledged (the client's h passed 2^32
			// too), then one more than was sent.
			sc.c.Send("<a xmlns='urn:xmpp:sm:3' h='%d'/>", tt.start+4)
			sc.c.Sync()
			sc.c.Send("<a xmlns='urn:xmpp:sm:3' h='%d'/>", tt.start+6)
			expectTooHigh(t, sc, strconv.FormatUint(uint64(tt.start+6), 10), strconv.FormatUint(uint64(tt.start+5), 10))
		})
	}
}

// TestSMResumeUnderFlow: alice's TCP connection drops while messages flow
// both ways; she resumes on a new one, and every message arrived exactly
// once each way, in order.
func TestSMResumeUnderFlow(t *testing.T) {
	for _, p := range parkings {
		t.Run(p.name, func(t *testing.T) {
			const n = 200
			s := smServer(t, p.d, time.Minute)
			a, enabled := enable(t, s, "alice", "a", "resume='true'")
			id := enabled.SelectAttrValue("id", "")
			b := s.Login("bob@localhost", "pw", "b")
			// Bob sends n messages to alice's full JID on his own.
			bobDone := make(chan struct{})
			go func() {
				defer close(bobDone)
				for i := range n {
					fmt.Fprintf(b.Conn, "<message to='alice@localhost/a' type='chat' id='b%d'><body>%d</body></message>", i, i)
					if i%10 == 0 {
						time.Sleep(time.Millisecond)
					}
				}
			}()
			got := map[string]int{}
			var order []int
			read := func(want int) {
				t.Helper()
				for len(order) < want {
					el, err := a.next()
					if err != nil {
						t.Fatalf("alice after %d: %v", len(order), err)
					}
					if el.Tag == "message" {
						id := el.SelectAttrValue("id", "")
						got[id]++
						i, _ := strconv.Atoi(id[1:])
						order = append(order, i)
					}
				}
			}
			for i := range n / 2 {
				a.send("<message to='bob@localhost/b' type='chat' id='a%d'><body>%d</body></message>", i, i)
			}
			read(n / 4)
			// The connection drops, with stanzas in flight both ways.
			a.c.Conn.Close()
			for i := n / 2; i < n; i++ {
				a.mu.Lock()
				a.unacked = append(a.unacked, fmt.Sprintf("<message to='bob@localhost/b' type='chat' id='a%d'><body>%d</body></message>", i, i))
				a.mu.Unlock()
			}
			if el := a.resume(s, "alice", id); el.Tag != "resumed" {
				t.Fatalf("resume: %s", a.c.String(el))
			}
			read(n)
			<-bobDone
			// Nothing more comes after the last: a ping's answer is next.
			a.send("<iq type='get' id='end'><ping xmlns='urn:xmpp:ping'/></iq>")
			for {
				el, err := a.next()
				if err != nil {
					t.Fatal(err)
				}
				if el.Tag == "message" {
					got[el.SelectAttrValue("id", "")]++
				}
				if el.Tag == "iq" && el.SelectAttrValue("id", "") == "end" {
					break
				}
			}
			for i := range n {
				if c := got["b"+strconv.Itoa(i)]; c != 1 {
					t.Errorf("alice got b%d %d times", i, c)
				}
			}
			for i := range order {
				if order[i] != i {
					t.Fatalf("alice got bob's messages out of order: %v", order)
				}
			}
			// Bob, all of alice's.
			fromAlice := map[string]int{}
			for len(fromAlice) < n {
				el := b.Next()
				if el.Tag == "message" {
					fromAlice[el.SelectAttrValue("id", "")]++
				}
			}
			for _, st := range b.UntilSync() {
				if st.Kind == xmpp.KindMessage {
					fromAlice[st.ID]++
				}
			}
			for i := range n {
				if c := fromAlice["a"+strconv.Itoa(i)]; c != 1 {
					t.Errorf("bob got a%d %d times", i, c)
				}
			}
		})
	}
}

// TestSMResumeRefused: a resume of another user's session, of an unknown
// id or of an expired one gets <item-not-found/>, and the stream goes on
// (the client may bind instead). The expired one's <failed/> carries the
// count of the stanzas the server handled (XEP-0198 §5), once, and only
// to its own user.
func TestSMResumeRefused(t *testing.T) {
	const timeout = time.Second
	s := smServer(t, 0, timeout)
	a, enabled := enable(t, s, "alice", "a", "resume='true'")
	id := enabled.SelectAttrValue("id", "")
	if h := a.pingsThenAck(t, 3); h != "3" {
		t.Fatalf("<a h='%s'/> after three pings", h)
	}
	a.c.Conn.Close()
	tests := []struct {
		name, user, id string
		wait           time.Duration
		h              string // the <failed/>'s h; "" for none
	}{
		{"another user", "bob", id, 0, ""},
		{"an unknown id", "alice", "0123456789abcdef", 0, ""},
		{"another user, expired", "bob", id, 2 * timeout, ""},
		{"an expired id", "alice", id, 0, "3"},
		{"an expired id again", "alice", id, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			time.Sleep(tt.wait)
			c := smLogin(t, s, tt.user)
			c.Send("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='0'/>", tt.id)
			el := c.Next()
			if el.Tag != "failed" || el.FindElement("item-not-found") == nil {
				t.Fatalf("resume: %s", c.String(el))
			}
			if h := el.SelectAttr("h"); tt.h == "" && h != nil || tt.h != "" && (h == nil || h.Value != tt.h) {
				t.Errorf("resume: %s, want h %q", c.String(el), tt.h)
			}
			c.Bind("")
		})
	}
}

// TestSMTimeoutStoresOffline: what a detached session never got
// acknowledged, and what came for it while detached, goes to offline
// storage when it expires: alice gets it at her next login.
func TestSMTimeoutStoresOffline(t *testing.T) {
	for _, p := range parkings {
		t.Run(p.name, func(t *testing.T) {
			s := smServer(t, p.d, 300*time.Millisecond)
			a, _ := enable(t, s, "alice", "a", "resume='true'")
			a.c.Send("<presence/>")
			b := s.Login("bob@localhost", "pw", "b")
			b.Send("<message to='alice@localhost/a' type='chat' id='m1'><body>one</body></message>")
			for {
				el, err := a.next()
				if err != nil {
					t.Fatal(err)
				}
				if el.Tag == "message" && el.SelectAttrValue("id", "") == "m1" {
					break
				}
			}
			// Read, never acknowledged; then gone.
			a.c.Conn.Close()
			b.Send("<message to='alice@localhost/a' type='chat' id='m2'><body>two</body></message>")
			b.Sync()
			time.Sleep(time.Second)
			c := s.Login("alice@localhost", "pw", "again")
			c.Send("<presence/>")
			got := map[string]int{}
			deadline := time.Now().Add(5 * time.Second)
			for len(got) < 2 && time.Now().Before(deadline) {
				el := c.Next()
				if el.Tag == "message" {
					got[el.SelectAttrValue("id", "")]++
				}
			}
			if got["m1"] != 1 || got["m2"] != 1 {
				t.Fatalf("after the timeout alice got %v, want m1 and m2 once each", got)
			}
		})
	}
}

// TestSMResumeTakesAnOpenConnection: a resume of a session whose old
// connection is still open (the client lost it, the server did not
// notice) closes the old one and resumes on the new, with what was not
// acknowledged sent again.
func TestSMResumeTakesAnOpenConnection(t *testing.T) {
	for _, p := range parkings {
		t.Run(p.name, func(t *testing.T) {
			s := smServer(t, p.d, time.Minute)
			a, enabled := enable(t, s, "alice", "a", "resume='true'")
			old := a.c
			b := s.Login("bob@localhost", "pw", "b")
			b.Send("<message to='alice@localhost/a' type='chat' id='m1'><body>one</body></message>")
			b.Sync()
			time.Sleep(20 * time.Millisecond) // let it park, when it parks
			if el := a.resume(s, "alice", enabled.SelectAttrValue("id", "")); el.Tag != "resumed" || el.SelectAttrValue("h", "") != "0" {
				t.Fatalf("resume: %s", a.c.String(el))
			}
			el, err := a.next()
			if err != nil || el.Tag != "message" || el.SelectAttrValue("id", "") != "m1" {
				t.Fatalf("after resume: %v %v", el, err)
			}
			// The old connection ends; the new one is alive.
			for {
				if _, err := old.NextErr(); err != nil {
					break
				}
			}
			a.c.Sync()
		})
	}
}

// TestSMResumeTooHighKeepsTheSession: a <resume/> whose h acknowledges
// stanzas never sent ends the new stream with undefined-condition
// (XEP-0198 §4), and the session it named is not stranded: it stays
// detached, and a resume that counts right takes it, with everything it
// held; or it expires at its timeout and hands what it held on to offline
// storage. Both when the old connection was already gone and when the
// failed resume took it away.
func TestSMResumeTooHighKeepsTheSession(t *testing.T) {
	tests := []struct {
		name     string
		closeOld bool
		then     string // "resume" or "expire"
	}{
		{"detached, then resumed", true, "resume"},
		{"detached, then expired", true, "expire"},
		{"connection taken, then resumed", false, "resume"},
		{"connection taken, then expired", false, "expire"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const timeout = 500 * time.Millisecond
			s := smServer(t, 0, timeout)
			a, enabled := enable(t, s, "alice", "a", "resume='true'")
			id := enabled.SelectAttrValue("id", "")
			a.c.Send("<presence/>")
			b := s.Login("bob@localhost", "pw", "b")
			b.Send("<message to='alice@localhost/a' type='chat' id='m1'><body>one</body></message>")
			for {
				el, err := a.c.NextErr()
				if err != nil {
					t.Fatal(err)
				}
				if el.SelectAttrValue("id", "") == "m1" {
					break
				}
			}
			if tt.closeOld {
				a.c.Conn.Close()
			}
			// Alice got her presence and m1: two stanzas. She says five.
			bad := &smClient{t: t, c: smLogin(t, s, "alice"), user: "alice"}
			bad.c.Send("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='5'/>", id)
			expectTooHigh(t, bad, "5", "2")
			b.Send("<message to='alice@localhost/a' type='chat' id='m2'><body>two</body></message>")
			b.Sync()
			got := map[string]int{}
			var c *parleytest.Conn
			switch tt.then {
			case "resume":
				c = smLogin(t, s, "alice")
				c.Send("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='1'/>", id)
				if el := c.Next(); el.Tag != "resumed" {
					t.Fatalf("a resume that counts right after the failed one: %s", c.String(el))
				}
			case "expire":
				time.Sleep(2 * timeout)
				c = s.Login("alice@localhost", "pw", "again")
				c.Send("<presence/>")
			}
			for got["m1"]+got["m2"] < 2 {
				el := c.Next()
				if el.Tag == "message" {
					got[el.SelectAttrValue("id", "")]++
				}
			}
			c.Sync()
			if got["m1"] != 1 || got["m2"] != 1 {
				t.Errorf("alice got %v, want m1 and m2 once each", got)
			}
		})
	}
}

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
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// modernAccount is one session slixmpp_modern_client.py opens.
type modernAccount struct {
	JID      string `json:"jid"`
	Password string `json:"password"`
	Resource string `json:"resource"`
}

// modernConfig is what slixmpp_modern_client.py gets.
type modernConfig struct {
	Case        string                   `json:"case"`
	Host        string                   `json:"host"`
	Port        int                      `json:"port"`
	CAFile      string                   `json:"ca_file"`
	Accounts    map[string]modernAccount `json:"accounts"`
	Peer        string                   `json:"peer"`
	Page        int                      `json:"page,omitempty"` // mam: RSM max
	Nick        string                   `json:"nick,omitempty"` // pep
	StepTimeout float64                  `json:"step_timeout"`   // seconds
	// WireLog, from $PARLEY_INTEROP_WIRE_LOG, is a file that gets all
	// slixmpp logs, for debugging a case.
	WireLog string `json:"wire_log,omitempty"`
	// Room, Lobby and Invitee are the group-chat cases'
	// (slixmpp_muc_client.py): room bare JIDs, and whom alice invites.
	Room    string `json:"room,omitempty"`
	Lobby   string `json:"lobby,omitempty"`
	Invitee string `json:"invitee,omitempty"`
}

// The accounts of the modern cases. alice is the client slixmpp plays in
// every case; bob is her correspondent (a raw parleytest.Conn, or slixmpp
// in the PEP case); carol is a second contact.
const (
	aliceJID, bobJID, carolJID = "alice@localhost", "bob@localhost", "carol@localhost"
	bobPassword, carolPassword = "bob-password", "carol-password"
)

// modernRun is one run of slixmpp_modern_client.py: its steps by name, as
// they came, and what the test needs to fail with its output.
type modernRun struct {
	t      *testing.T
	steps  map[string]stepResult
	stderr *bytes.Buffer
	runErr error
}

// runModern starts slixmpp_modern_client.py with cfg, calls onStep for each
// step as it comes (in the test's goroutine, so it may use t and raw
// Conns), and returns when the client has ended. A step that waits for the
// test (the script's go_on) goes on when onStep calls next.
func runModern(t *testing.T, s *parleytest.Server, cfg modernConfig, onStep func(st stepResult, next func())) *modernRun {
	t.Helper()
	return runSlixmpp(t, s, "slixmpp_modern_client.py", cfg, onStep)
}

// runSlixmpp is runModern with another script of testdata/interop/python
// that takes the same config.
func runSlixmpp(t *testing.T, s *parleytest.Server, script string, cfg modernConfig, onStep func(st stepResult, next func())) *modernRun {
	t.Helper()
	if err := slixmppCheck(); err != nil {
		missing(t, "slixmpp for "+slixmppPython+" ("+err.Error()+")", "apt-get install python3-slixmpp")
	}
	script, err := filepath.Abs(filepath.Join("../../testdata/interop/python", script))
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(s.DirectTLSAddr)
	cfg.Host = host
	cfg.Port, _ = strconv.Atoi(port)
	cfg.CAFile = writeCA(t, s)
	cfg.StepTimeout = stepTimeout.Seconds()
	cfg.WireLog = os.Getenv("PARLEY_INTEROP_WIRE_LOG")
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(slixmppPython, script, string(b))
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1")
	r := &modernRun{t: t, steps: map[string]stepResult{}, stderr: &bytes.Buffer{}}
	cmd.Stderr = r.stderr
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	next := func() { _, _ = in.Write([]byte("next\n")) }
	if err := cmd.Start(); err != nil {
		t.Fatalf("slixmpp: starting the client: %v", err)
	}
	kill := time.AfterFunc(runTimeout, func() { _ = cmd.Process.Kill() })
	defer kill.Stop()
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var st stepResult
		if err := json.Unmarshal(sc.Bytes(), &st); err != nil {
			t.Logf("slixmpp: stdout line that is not a step: %s", sc.Text())
			continue
		}
		r.steps[st.Step] = st
		if !st.OK {
			continue
		}
		if st.Step == "login" {
			t.Logf("slixmpp %s: logged in %v with %v", cfg.Case, st.Detail["jids"], st.Detail["auth"])
			checkClassicSASL(t, st.Detail["auth"])
		}
		if onStep != nil {
			onStep(st, next)
		}
	}
	r.runErr = cmd.Wait()
	return r
}

// checkClassicSASL fails the test unless every login of auth (the script's
// list of what it sent) used RFC 6120 SASL: slixmpp 1.8.3 has no SASL2
// (XEP-0388), so each of its logins is one on the classic path, which
// stays beside SASL2 (issue 13, item 8).
func checkClassicSASL(t *testing.T, auth any) {
	t.Helper()
	list, _ := auth.([]any)
	if len(list) == 0 {
		t.Errorf("slixmpp: no <auth/> seen at login")
	}
	for _, a := range list {
		m, _ := a.(map[string]any)
		if m["element"] != "auth" || m["xmlns"] != "urn:ietf:params:xml:ns:xmpp-sasl" {
			t.Errorf("slixmpp: logged in with %v, want RFC 6120's <auth/>", m)
		}
	}
}

// step returns the detail of the step, or fails the test with why it is
// missing: the client's own failure, its exit and its stderr.
func (r *modernRun) step(name string) map[string]any {
	r.t.Helper()
	if st, ok := r.steps[name]; ok && st.OK {
		return st.Detail
	}
	msg := fmt.Sprintf("slixmpp: no step %q (client: %v)", name, r.runErr)
	if f, ok := r.steps["failed"]; ok {
		msg += "\n  the client failed: " + f.Error
	}
	if tail := r.stderr.String(); tail != "" {
		if len(tail) > 3000 {
			tail = "..." + tail[len(tail)-3000:]
		}
		msg += "\n  client stderr (tail):\n" + tail
	}
	r.t.Fatal(msg)
	return nil
}

// subscribe makes from subscribed to to's presence (RFC 6121 §3.1): both
// available on raw streams, from asks, to approves; it returns when from
// has the roster push with subscription to or both.
func subscribe(t *testing.T, s *parleytest.Server, from, fromPass, to, toPass string) {
	t.Helper()
	a := s.Login(from, fromPass, "setup")
	defer a.Close()
	b := s.Login(to, toPass, "setup")
	defer b.Close()
	// Interested resources (RFC 6121 §2.1.6): a's gets the roster push.
	a.ExpectResult(a.IQ("get", "", "<query xmlns='jabber:iq:roster'/>"), "roster get")
	a.Send("<presence/>")
	b.Send("<presence/>")
	a.Sync()
	b.Sync()
	a.Send("<presence to='%s' type='subscribe'/>", to)
	b.WaitFor("the subscription request", func(st *xmpp.Stanza) bool {
		return st.Kind == xmpp.KindPresence && st.Type == "subscribe"
	})
	b.Send("<presence to='%s' type='subscribed'/>", from)
	a.WaitFor("the roster push of the approval", func(st *xmpp.Stanza) bool {
		item := st.El.FindElement("query/item")
		return st.Kind == xmpp.KindIQ && st.Type == "set" && item != nil &&
			item.SelectAttrValue("jid", "") == to &&
			(item.SelectAttrValue("subscription", "") == "to" || item.SelectAttrValue("subscription", "") == "both")
	})
}

// triples reads a list of [a, b, c, ...] lists of strings from a step's
// detail, keeping the first n of each.
func triples(v any, n int) [][]string {
	list, _ := v.([]any)
	out := make([][]string, 0, len(list))
	for _, e := range list {
		row, _ := e.([]any)
		var r []string
		for i := 0; i < n && i < len(row); i++ {
			r = append(r, fmt.Sprint(row[i]))
		}
		out = append(out, r)
	}
	return out
}

// TestSlixmppCarbons: two resources of alice with slixmpp's xep_0280
// enable carbons (XEP-0280). A chat message bob sends to alice/phone is a
// received carbon on alice/laptop, a chat message the phone sends is a
// sent carbon there, and neither direction's message with <private/>
// (§8) is copied; the phone gets no carbons of its own. With the carbons
// module not registered, the enable iq fails and so does the case.
func TestSlixmppCarbons(t *testing.T) {
	t.Parallel()
	s := parleytest.Start(t)
	s.AddUser(aliceJID, clientPassword)
	s.AddUser(bobJID, bobPassword)
	bob := s.Login(bobJID, bobPassword, "desk")
	defer bob.Close()
	bob.Send("<presence/>")
	bob.Sync()
	cfg := modernConfig{Case: "carbons", Peer: bobJID, Accounts: map[string]modernAccount{
		"phone":  {aliceJID, clientPassword, "phone"},
		"laptop": {aliceJID, clientPassword, "laptop"},
	}}
	phone := aliceJID + "/phone"
	r := runModern(t, s, cfg, func(st stepResult, _ func()) {
		if st.Step != "ready" {
			return
		}
		bob.Send("<message to='%s' type='chat' id='b1'><body>to-phone</body></message>", phone)
		bob.Send("<message to='%s' type='chat' id='b2'><body>to-phone-private</body>"+
			"<private xmlns='urn:xmpp:carbons:2'/></message>", phone)
		bob.Send("<message to='%s' type='chat' id='b3'><body>to-phone-last</body></message>", phone)
	})
	got := r.step("carbons")
	r.step("done")

	bobDesk := bobJID + "/desk"
	for _, c := range []struct {
		resource string
		want     [][]string // kind, JID, body, in order
	}{
		{"phone", [][]string{
			{"direct", bobDesk, "to-phone"},
			{"direct", bobDesk, "to-phone-private"},
			{"direct", bobDesk, "to-phone-last"},
		}},
		{"laptop", [][]string{
			// The forwarded messages keep their addresses (§6, §7).
			{"received", bobDesk, "to-phone"},
			{"received", bobDesk, "to-phone-last"},
			{"sent", bobJID, "from-phone"},
			{"sent", bobJID, "from-phone-last"},
		}},
	} {
		// The two directions interleave: compare each kind in order.
		have := triples(got[c.resource], 3)
		for _, kind := range []string{"direct", "received", "sent"} {
			if w, h := ofKind(c.want, kind), ofKind(have, kind); !reflect.DeepEqual(w, h) {
				t.Errorf("alice/%s: %s messages %v, want %v", c.resource, kind, h, w)
			}
		}
	}
	// bob got all three of the phone's, from the phone.
	var bodies []string
	for _, st := range bob.UntilSync() {
		if st.Kind == xmpp.KindMessage && parleytest.Body(st) != "" {
			if st.From.String() != phone {
				t.Errorf("bob got %q from %s, want from %s", parleytest.Body(st), st.From, phone)
			}
			bodies = append(bodies, parleytest.Body(st))
		}
	}
	if want := []string{"from-phone", "from-phone-private", "from-phone-last"}; !reflect.DeepEqual(bodies, want) {
		t.Errorf("bob got %q, want %q", bodies, want)
	}
}

func ofKind(rows [][]string, kind string) [][]string {
	out := [][]string{}
	for _, r := range rows {
		if len(r) > 0 && r[0] == kind {
			out = append(out, r)
		}
	}
	return out
}

// mamCount is how many messages alice and bob exchange before slixmpp
// reads the archive, in pages of mamPage: two full pages and a short one.
const (
	mamCount = 250
	mamPage  = 100
)

// TestSlixmppMAM: alice and bob exchange mamCount chat messages (raw
// streams, each waiting for the other's, so the archive's order is the
// exchange's); then slixmpp's xep_0313 iterate (RSM, XEP-0059) pages
// through alice's archive with bob forwards and backwards. Every message
// must come exactly once, in order (reversed backwards), with its sender,
// recipient and body, under a distinct archive id. With the mam module not
// registered, the query fails.
func TestSlixmppMAM(t *testing.T) {
	t.Parallel()
	s := parleytest.Start(t)
	s.AddUser(aliceJID, clientPassword)
	s.AddUser(bobJID, bobPassword)
	alice := s.Login(aliceJID, clientPassword, "seed")
	bob := s.Login(bobJID, bobPassword, "seed")
	alice.Send("<presence/>")
	bob.Send("<presence/>")
	alice.Sync()
	bob.Sync()
	type msg struct{ from, to, body string }
	var want []msg
	for i := range mamCount {
		from, to, fromJ, toJ := bob, alice, bobJID, aliceJID
		if i%2 == 1 {
			from, to, fromJ, toJ = alice, bob, aliceJID, bobJID
		}
		// Markup and a non-ASCII character: escaping on the way in and
		// out of the archive shows.
		body := fmt.Sprintf("m-%03d <&> ☃", i)
		from.Send("<message to='%s' type='chat' id='m%d'><body>%s</body></message>", toJ, i, escape(body))
		to.WaitFor("message "+strconv.Itoa(i), func(st *xmpp.Stanza) bool {
			return st.Kind == xmpp.KindMessage && parleytest.Body(st) == body
		})
		want = append(want, msg{fromJ, toJ, body})
	}
	alice.Close()
	bob.Close()

	r := runModern(t, s, modernConfig{Case: "mam", Peer: bobJID, Page: mamPage,
		Accounts: map[string]modernAccount{"alice": {aliceJID, clientPassword, "reader"}}}, nil)
	for _, dir := range []string{"forward", "backward"} {
		rows := triples(r.step(dir)["messages"], 4)
		if dir == "backward" {
			for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
				rows[i], rows[j] = rows[j], rows[i]
			}
		}
		if len(rows) != len(want) {
			t.Errorf("%s: slixmpp read %d messages, want %d", dir, len(rows), len(want))
		}
		ids := map[string]bool{}
		for i, row := range rows {
			if i >= len(want) || len(row) != 4 {
				break
			}
			if got := (msg{row[0], row[1], row[2]}); got != want[i] {
				t.Errorf("%s: message %d is %+v, want %+v", dir, i, got, want[i])
			}
			if ids[row[3]] || row[3] == "" {
				t.Errorf("%s: message %d has archive id %q, empty or seen before", dir, i, row[3])
			}
			ids[row[3]] = true
		}
	}
	r.step("done")
}

// TestSlixmppCSI: alice with slixmpp's xep_0352 says she is inactive; bob
// (a raw stream; alice is subscribed to his presence) changes his presence
// twice: none of it reaches alice (XEP-0352 §5 lets the server hold what
// is not urgent; the issue wants presence held). Then bob sends a chat
// message: it reaches her at once, and what was held goes just before it,
// coalesced to bob's latest presence (the csi module's design: the radio
// is awake anyway, and the conversation stays in order). bob changes his
// presence twice more, held again; on <active/> alice gets the latest of
// those only. With the csi module not registered the server offers no
// <csi/> and the case fails.
func TestSlixmppCSI(t *testing.T) {
	t.Parallel()
	s := parleytest.Start(t)
	s.AddUser(aliceJID, clientPassword)
	s.AddUser(bobJID, bobPassword)
	subscribe(t, s, aliceJID, clientPassword, bobJID, bobPassword)
	bob := s.Login(bobJID, bobPassword, "desk")
	defer bob.Close()
	bob.Send("<presence><status>initial</status></presence>")
	bob.Sync()
	presence := func(show, status string) {
		bob.Send("<presence><show>%s</show><status>%s</status></presence>", show, status)
	}
	r := runModern(t, s, modernConfig{Case: "csi", Peer: bobJID,
		Accounts: map[string]modernAccount{"alice": {aliceJID, clientPassword, "phone"}}},
		func(st stepResult, next func()) {
			switch st.Step {
			case "inactive":
				presence("away", "held-1")
				presence("dnd", "held-2")
			case "held":
				bob.Send("<message to='%s' type='chat' id='through'><body>through</body></message>", aliceJID)
			case "body":
				presence("xa", "held-3")
				presence("chat", "held-4")
			default:
				return
			}
			// Routed (and held or queued for alice) before she syncs.
			bob.Sync()
			next()
		})
	bobDesk := bobJID + "/desk"
	for _, c := range []struct {
		step string
		want [][]string // from, show, status of bob's presences alice got
	}{
		{"held", nil},
		{"body", [][]string{{bobDesk, "dnd", "held-2"}}},
		{"held again", nil},
		{"active", [][]string{{bobDesk, "chat", "held-4"}}},
	} {
		got := triples(r.step(c.step)["presences"], 3)
		if len(got) == 0 && len(c.want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("step %q: alice got bob's presences %v, want %v", c.step, got, c.want)
		}
	}
	if msgs := triples(r.step("body")["messages"], 3); len(msgs) != 1 || msgs[0][2] != "through" {
		t.Errorf("while inactive alice got messages %v, want bob's one", msgs)
	}
	r.step("done")
}

// TestSlixmppPEP: alice publishes her nickname with slixmpp's xep_0172
// (PEP, XEP-0163, node http://jabber.org/protocol/nick). bob and carol,
// slixmpp too, are her contacts (subscribed both ways) and send entity caps
// (XEP-0115); bob's disco#info has nick+notify, carol's does not. bob gets
// the notification and carol does not (XEP-0163 §4.3). With the pep module
// not registered the publish fails.
func TestSlixmppPEP(t *testing.T) {
	t.Parallel()
	s := parleytest.Start(t)
	s.AddUser(aliceJID, clientPassword)
	s.AddUser(bobJID, bobPassword)
	s.AddUser(carolJID, carolPassword)
	// Both ways, as contacts are: the server learns bob's and carol's
	// caps from the presence alice receives from them (XEP-0163 §4.3).
	for _, c := range [][2]string{{bobJID, bobPassword}, {carolJID, carolPassword}} {
		subscribe(t, s, c[0], c[1], aliceJID, clientPassword)
		subscribe(t, s, aliceJID, clientPassword, c[0], c[1])
	}
	const nick = "Alice ☃ <&>"
	r := runModern(t, s, modernConfig{Case: "pep", Nick: nick, Accounts: map[string]modernAccount{
		"alice": {aliceJID, clientPassword, "phone"},
		"bob":   {bobJID, bobPassword, "laptop"},
		"carol": {carolJID, carolPassword, "laptop"},
	}}, nil)
	if typ := r.step("published")["type"]; typ != "result" {
		t.Errorf("the publish was answered with %v, want result", typ)
	}
	got := r.step("notify")
	if b, _ := got["bob"].([]any); len(b) == 0 || b[0] != nick {
		t.Errorf("bob (nick+notify) got nicks %v, want %q", got["bob"], nick)
	}
	if c, _ := got["carol"].([]any); len(c) != 0 {
		t.Errorf("carol (no +notify) got nicks %v, want none", c)
	}
	r.step("done")
}

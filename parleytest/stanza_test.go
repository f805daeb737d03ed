package parleytest

import (
	"strings"
	"testing"

	"github.com/parley-im/parley/xmpp"
)

// failure runs fn with c reporting to FailureOf's recorder and returns
// the message fn failed with, "" when it did not fail.
func failure(t *testing.T, c *Conn, fn func()) string {
	t.Helper()
	return FailureOf(t, func(tb testing.TB) {
		old := c.t
		c.t = tb
		defer func() { c.t = old }()
		fn()
	})
}

// pair starts a server with alice and bob online (no presence sent).
func pair(t *testing.T) (s *Server, alice, bob *Conn) {
	t.Helper()
	s = Start(t)
	s.AddUser("alice@localhost", "a")
	s.AddUser("bob@localhost", "b")
	return s, s.Login("alice@localhost", "a", "phone"), s.Login("bob@localhost", "b", "desk")
}

func messageTo(from *Conn, to *Conn, id string) {
	from.Send("<message to='%s' type='chat' id='%s'><body>%s</body></message>", to.JID, id, "body of "+id)
}

func ids(sts []*xmpp.Stanza) string {
	var out []string
	for _, st := range sts {
		out = append(out, st.ID)
	}
	return strings.Join(out, " ")
}

func TestIQ(t *testing.T) {
	_, alice, bob := pair(t)

	// bob's message is routed before his ping is answered, so it is on
	// its way to alice before she asks.
	messageTo(bob, alice, "m1")
	bob.Sync()
	// An answer to another iq comes first, too.
	alice.Send("<iq type='get' id='p0'><ping xmlns='urn:xmpp:ping'/></iq>")
	st, before := alice.IQAll("get", "", "<query xmlns='jabber:iq:roster'/>")
	if st.Kind != xmpp.KindIQ || st.Type != "result" || xmpp.Child(st.El, "jabber:iq:roster", "query") == nil {
		t.Fatalf("roster get: got %s", alice.String(st.El))
	}
	if ids(before) != "m1 p0" {
		t.Fatalf("before the answer: %s, want the message m1 and the answer p0", alice.Dump(before))
	}
	if msg := failure(t, alice, func() { alice.ExpectResult(st, "roster get") }); msg != "" {
		t.Fatalf("ExpectResult on a result failed: %s", msg)
	}
	if msg := failure(t, alice, func() { alice.ExpectError(st, xmpp.ServiceUnavailable, "roster get") }); !strings.Contains(msg, "want an error service-unavailable") {
		t.Fatalf("ExpectError on a result: %q, want a failure", msg)
	}

	// An iq to a bare JID of the server, for a namespace nobody answers.
	st = alice.IQ("get", "bob@localhost", "<query xmlns='urn:example:nobody'/>")
	if st.Kind != xmpp.KindIQ || st.Type != "error" {
		t.Fatalf("iq nobody answers: got %s, want an error", alice.String(st.El))
	}
	got := Condition(st)
	if got == "" {
		t.Fatalf("iq nobody answers: no condition in %s", alice.String(st.El))
	}
	if msg := failure(t, alice, func() { alice.ExpectError(st, got, "nobody") }); msg != "" {
		t.Fatalf("ExpectError(%s) on that error failed: %s", got, msg)
	}
	if msg := failure(t, alice, func() { alice.ExpectError(st, xmpp.Conflict, "nobody") }); !strings.Contains(msg, "want an error conflict") {
		t.Fatalf("ExpectError(conflict) on a %s error: %q, want a failure", got, msg)
	}
	if msg := failure(t, alice, func() { alice.ExpectResult(st, "nobody") }); !strings.Contains(msg, "want a result") {
		t.Fatalf("ExpectResult on an error: %q, want a failure", msg)
	}
}

func TestIQNextWantsTheAnswerFirst(t *testing.T) {
	_, alice, bob := pair(t)
	st := alice.IQNext("get", "", "<ping xmlns='urn:xmpp:ping'/>")
	if st.Type != "result" {
		t.Fatalf("ping: got %s", alice.String(st.El))
	}
	messageTo(bob, alice, "m1")
	bob.Sync()
	msg := failure(t, alice, func() { alice.IQNext("get", "", "<ping xmlns='urn:xmpp:ping'/>") })
	if !strings.Contains(msg, `id="m1"`) {
		t.Fatalf("IQNext with a message before the answer: %q, want a failure naming it", msg)
	}
	alice.Sync()
	alice.Send("<iq type='get' id='p0'><ping xmlns='urn:xmpp:ping'/></iq>")
	msg = failure(t, alice, func() { alice.IQNext("get", "", "<ping xmlns='urn:xmpp:ping'/>") })
	if !strings.Contains(msg, `id="p0"`) {
		t.Fatalf("IQNext with another answer before its own: %q, want a failure naming it", msg)
	}
}

func TestWaitForAndUntilSync(t *testing.T) {
	_, alice, bob := pair(t)
	for _, id := range []string{"m1", "m2", "m3"} {
		messageTo(bob, alice, id)
	}
	bob.Sync()
	st, before := alice.WaitFor("m2", func(st *xmpp.Stanza) bool { return st.ID == "m2" })
	if st.ID != "m2" || Body(st) != "body of m2" || ids(before) != "m1" {
		t.Fatalf("WaitFor(m2) = %s after %s", alice.String(st.El), alice.Dump(before))
	}
	if got := alice.UntilSync(); ids(got) != "m3" {
		t.Fatalf("UntilSync = %s, want m3 alone", alice.Dump(got))
	}
	if got := alice.UntilSync(); len(got) != 0 {
		t.Fatalf("UntilSync again = %s, want nothing", alice.Dump(got))
	}

	// A stream that ends before the stanza comes fails the wait.
	alice.Send("</stream:stream>")
	msg := failure(t, alice, func() { alice.WaitFor("the message m9", func(*xmpp.Stanza) bool { return false }) })
	if !strings.Contains(msg, "waiting for the message m9") {
		t.Fatalf("WaitFor on a closed stream: %q, want a failure", msg)
	}
}

func TestCloseStreamUnbinds(t *testing.T) {
	s, alice, bob := pair(t)
	bob.Send("<presence/>")
	bob.Sync()
	full := bob.JID
	bob.CloseStream()
	// bob/desk is gone: an iq to it is answered by the server for him
	// (RFC 6120 §10.5.3.2: service-unavailable), not delivered.
	st := alice.IQ("get", full.String(), "<ping xmlns='urn:xmpp:ping'/>")
	alice.ExpectError(st, xmpp.ServiceUnavailable, "ping to "+full.String())
	if _, err := bob.NextErr(); err == nil {
		t.Fatal("bob's stream still reads after CloseStream")
	}
	_ = s
}

func TestCondition(t *testing.T) {
	tests := []struct {
		raw  string
		want xmpp.StanzaCondition
	}{
		{"<iq type='error' id='1'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>", xmpp.ItemNotFound},
		{"<message type='error' id='1'><error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>", xmpp.ResourceConstraint},
		// Not an error stanza: no condition, even with an error child.
		{"<message type='chat' id='1'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>", ""},
		{"<iq type='result' id='1'/>", ""},
	}
	for _, tt := range tests {
		st := ParseStanza(t, tt.raw)
		if got := Condition(st); got != tt.want {
			t.Errorf("Condition(%s) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

func TestNewIDIsNew(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewID("x")
		if seen[id] || !strings.HasPrefix(id, "x-") {
			t.Fatalf("NewID gave %q (seen before: %v)", id, seen[id])
		}
		seen[id] = true
	}
}

func TestParseStanzaFailsOnWhatIsNotAStanza(t *testing.T) {
	for _, raw := range []string{"<message", "<foo/>"} {
		if FailureOf(t, func(tb testing.TB) { ParseStanza(tb, raw) }) == "" {
			t.Errorf("ParseStanza(%q) did not fail", raw)
		}
	}
}

func TestFailureOf(t *testing.T) {
	tests := []struct {
		name string
		fn   func(tb testing.TB)
		want string
	}{
		{"no failure", func(tb testing.TB) { tb.Log("fine") }, ""},
		{"Fatalf ends fn", func(tb testing.TB) { tb.Fatalf("a %d", 1); tb.Errorf("not reached") }, "a 1"},
		{"the first failure is kept", func(tb testing.TB) { tb.Errorf("first"); tb.Fatal("second") }, "first"},
		{"FailNow", func(tb testing.TB) { tb.FailNow() }, "(failed without a message)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FailureOf(t, tt.fn); got != tt.want {
				t.Errorf("FailureOf = %q, want %q", got, tt.want)
			}
		})
	}
}

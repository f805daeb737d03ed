package parleytest

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/parley-im/parley/xmpp"
)

var lastID atomic.Int64

// NewID returns prefix and a number no other NewID in this test binary
// returned, for stanza ids that must not collide across tests and
// connections.
func NewID(prefix string) string { return fmt.Sprintf("%s-%d", prefix, lastID.Add(1)) }

// NextStanzaFor reads the next stanza; what names what the test waits for,
// for the failure message (a stream error, a closed stream, a timeout or
// an element that is not a stanza all fail the test).
func (c *Conn) NextStanzaFor(what string) *xmpp.Stanza {
	c.t.Helper()
	el, err := c.NextErr()
	if err != nil {
		c.t.Fatalf("parleytest: %s waiting for %s: %v", c.JID, what, err)
	}
	st, err := xmpp.NewStanza(el)
	if err != nil {
		c.t.Fatalf("parleytest: %s waiting for %s: not a stanza: %s", c.JID, what, c.String(el))
	}
	return st
}

// WaitFor reads until a stanza that match accepts, bounded only by
// Timeout on each read, and returns it and the stanzas that came before
// it. what names the awaited stanza in the failure message.
func (c *Conn) WaitFor(what string, match func(*xmpp.Stanza) bool) (*xmpp.Stanza, []*xmpp.Stanza) {
	c.t.Helper()
	var before []*xmpp.Stanza
	for {
		st := c.NextStanzaFor(what)
		if match(st) {
			return st, before
		}
		before = append(before, st)
	}
}

// UntilSync pings the server and returns every stanza that arrives before
// the answer. The server routes a session's stanzas in order and delivers
// to local sessions before it reads the next one, so whatever it queued
// for c before it read the ping is among them: once the sender of a
// stanza has synced, the recipient's UntilSync shows whether it came.
func (c *Conn) UntilSync() []*xmpp.Stanza {
	c.t.Helper()
	id := NewID("parleytest-sync")
	c.Send("<iq type='get' id='%s'><ping xmlns='urn:xmpp:ping'/></iq>", id)
	_, before := c.WaitFor("the answer to ping "+id, func(st *xmpp.Stanza) bool {
		return st.Kind == xmpp.KindIQ && st.ID == id
	})
	return before
}

// IQAll sends an iq of type typ (get or set) with payload, to to (the
// account's own server when empty), under a fresh id, and returns the
// answer (the result or error iq with that id) and what came before it.
func (c *Conn) IQAll(typ, to, payload string) (*xmpp.Stanza, []*xmpp.Stanza) {
	c.t.Helper()
	id := NewID("parleytest-iq")
	c.Send("<iq type='%s' id='%s'%s>%s</iq>", typ, id, toAttr(to), payload)
	return c.WaitFor("the answer to iq "+id, func(st *xmpp.Stanza) bool {
		return st.Kind == xmpp.KindIQ && st.ID == id && (st.Type == "result" || st.Type == "error")
	})
}

// toAttr is the to attribute of an iq to to, none when to is empty.
func toAttr(to string) string {
	if to == "" {
		return ""
	}
	return fmt.Sprintf(" to='%s'", to)
}

// IQ is IQAll for callers that only want the answer.
func (c *Conn) IQ(typ, to, payload string) *xmpp.Stanza {
	c.t.Helper()
	st, _ := c.IQAll(typ, to, payload)
	return st
}

// IQNext is IQ for a stream on which the answer must be the very next
// stanza (one that is not bound yet, or a test of the stream itself):
// anything else fails the test.
func (c *Conn) IQNext(typ, to, payload string) *xmpp.Stanza {
	c.t.Helper()
	id := NewID("parleytest-iq")
	c.Send("<iq type='%s' id='%s'%s>%s</iq>", typ, id, toAttr(to), payload)
	st := c.NextStanzaFor("the answer to iq " + id)
	if st.Kind != xmpp.KindIQ || st.ID != id || (st.Type != "result" && st.Type != "error") {
		c.t.Fatalf("parleytest: sent iq %s, got %s", id, c.String(st.El))
	}
	return st
}

// ExpectResult fails the test unless st is an iq result; what names the
// request in the failure message.
func (c *Conn) ExpectResult(st *xmpp.Stanza, what string) {
	c.t.Helper()
	if st.Kind != xmpp.KindIQ || st.Type != "result" {
		c.t.Fatalf("%s: got %s, want a result", what, c.String(st.El))
	}
}

// ExpectError fails the test unless st is a stanza error (type='error')
// whose condition is want; what names the request in the failure message.
func (c *Conn) ExpectError(st *xmpp.Stanza, want xmpp.StanzaCondition, what string) {
	c.t.Helper()
	if got := Condition(st); got != want {
		c.t.Fatalf("%s: got %s, want an error %s", what, c.String(st.El), want)
	}
}

// Condition returns st's stanza error condition, "" when st is not an
// error (type='error' with a defined condition).
func Condition(st *xmpp.Stanza) xmpp.StanzaCondition {
	if st.Type != "error" {
		return ""
	}
	if se := xmpp.ParseStanzaError(st.El); se != nil {
		return se.Condition
	}
	return ""
}

// Body returns the text of st's <body/>, "" without one.
func Body(st *xmpp.Stanza) string {
	if b := xmpp.Child(st.El, "", "body"); b != nil {
		return b.Text()
	}
	return ""
}

// Dump renders stanzas one a line, for failure messages; "nothing" when
// there are none.
func (c *Conn) Dump(got []*xmpp.Stanza) string {
	if len(got) == 0 {
		return "nothing"
	}
	var b strings.Builder
	for _, st := range got {
		b.WriteString("\n\t" + c.String(st.El))
	}
	return b.String()
}

// CloseStream ends c's stream gracefully and waits for the server's
// closing tag, skipping what arrives before it; the server has unbound
// the session by then.
func (c *Conn) CloseStream() {
	c.t.Helper()
	c.Send("</stream:stream>")
	for {
		_, err := c.NextErr()
		if errors.Is(err, xmpp.ErrStreamClosed) {
			return
		}
		if err != nil {
			c.t.Fatalf("parleytest: closing %s: %v, want the server's closing tag", c.JID, err)
		}
	}
}

// ParseStanza parses raw XML into a stanza, for tests that hand stanzas
// to a component or a host directly; it fails the test on bad XML.
func ParseStanza(t testing.TB, raw string) *xmpp.Stanza {
	t.Helper()
	el, err := xmpp.ParseElement(raw, xmpp.Limits{})
	if err != nil {
		t.Fatalf("parleytest: parse %q: %v", raw, err)
	}
	st, err := xmpp.NewStanza(el)
	if err != nil {
		t.Fatalf("parleytest: %q is not a stanza: %v", raw, err)
	}
	return st
}

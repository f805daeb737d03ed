package external_test

import (
	"errors"
	"testing"

	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// TestStreamRefusals: what a connection that is not the component gets
// (XEP-0114 §3; Prosody's conditions where the XEP leaves them open).
func TestStreamRefusals(t *testing.T) {
	_, addr := start(t)
	tests := []struct {
		name, ns, to, key string
		want              xmpp.StreamCondition
	}{
		{"wrong secret", xmpp.NSAccept, gw, "guess", xmpp.StreamNotAuthorized},
		{"secret of another stream id", xmpp.NSAccept, gw, "", xmpp.StreamNotAuthorized},
		{"not a component host", xmpp.NSAccept, "localhost", secret, xmpp.HostUnknown},
		{"unknown domain", xmpp.NSAccept, "nowhere.example", secret, xmpp.HostUnknown},
		{"no to", xmpp.NSAccept, "", secret, xmpp.ImproperAddressing},
		{"client namespace", xmpp.NSClient, gw, secret, xmpp.InvalidNamespace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := dial(t, addr, tt.ns, tt.to)
			if c.Header.ID == "" || c.Header.NS != xmpp.NSAccept {
				t.Errorf("the server's header is %+v, want an id in %s", c.Header, xmpp.NSAccept)
			}
			key := tt.key
			if tt.name == "secret of another stream id" {
				c.Send("<handshake>%s</handshake>", digest("not-the-id", secret))
			} else {
				c.Send("<handshake>%s</handshake>", digest(c.Header.ID, key))
			}
			c.ExpectStreamError(tt.want)
		})
	}
}

// TestHandshakeIsCaseInsensitive: XEP-0114 asks for lower-case hex;
// Prosody accepts upper case too, and so do we.
func TestHandshakeIsCaseInsensitive(t *testing.T) {
	_, addr := start(t)
	c, _ := dial(t, addr, xmpp.NSAccept, gw)
	c.Send("<handshake>%s</handshake>", upper(digest(c.Header.ID, secret)))
	if el, err := c.NextErr(); err != nil || el.Tag != "handshake" {
		t.Fatalf("an upper-case handshake got %v %v", el, err)
	}
}

// TestComponentFrom: a component's stanzas must come from its domain or
// a subdomain that is no other host's; anything else ends the stream with
// invalid-from, as Prosody does.
func TestComponentFrom(t *testing.T) {
	s, addr := start(t, parleytest.WithHost("users."+gw, ""))
	s.AddUser("alice@localhost", "a")
	alice := s.Login("alice@localhost", "a", "phone")
	alice.Send("<presence/>")
	alice.UntilSync()
	tests := []struct {
		name, from string
		refused    bool
	}{
		{"its domain", gw, false},
		{"a user of its domain", "bob@" + gw + "/x", false},
		{"a subdomain", "irc." + gw, false},
		{"a foreign domain", "mallory@localhost", true},
		{"a domain ending like its own", "evil" + gw, true},
		{"a subdomain that is a local host", "carol@users." + gw, true},
		{"no from", "", true},
		{"a malformed from", "@" + gw, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := login(t, addr, gw, secret)
			if err != nil {
				t.Fatal(err)
			}
			id := parleytest.NewID("from")
			from := ""
			if tt.from != "" {
				from = " from='" + tt.from + "'"
			}
			c.Send("<message%s to='alice@localhost' type='chat' id='%s'><body>hi</body></message>", from, id)
			if tt.refused {
				c.ExpectStreamError(xmpp.InvalidFrom)
				alice.Send("<iq type='get' id='sync'/>")
				for _, st := range alice.UntilSync() {
					if st.ID == id {
						t.Errorf("alice got the refused stanza: %s", alice.String(st.El))
					}
				}
				return
			}
			got, _ := alice.WaitFor("the component's message", func(st *xmpp.Stanza) bool { return st.ID == id })
			if got.From.String() != tt.from {
				t.Errorf("alice got the message from %s, want %s", got.From, tt.from)
			}
			c.leave(s)
		})
	}
}

// TestStanzaWithoutTo: a stanza with no to gets bad-request (Prosody).
func TestStanzaWithoutTo(t *testing.T) {
	_, addr := start(t)
	c, err := login(t, addr, gw, secret)
	if err != nil {
		t.Fatal(err)
	}
	c.Send("<iq type='get' id='q1' from='%s'><ping xmlns='urn:xmpp:ping'/></iq>", gw)
	st := c.Next()
	if st.ID != "q1" || parleytest.Condition(st) != xmpp.BadRequest {
		t.Errorf("a stanza with no to got %s, want bad-request", str(st.El))
	}
}

// TestRouting: stanzas to the component's domain and its users reach
// its stream; the component's answers reach the client (raw XML).
func TestRouting(t *testing.T) {
	s, addr := start(t)
	s.AddUser("alice@localhost", "a")
	alice := s.Login("alice@localhost", "a", "phone")
	c, err := login(t, addr, gw, secret)
	if err != nil {
		t.Fatal(err)
	}
	alice.Send("<message to='bob@%s' id='m1' type='chat'><body>hello</body></message>", gw)
	m := c.Next()
	if m.ID != "m1" || m.From.String() != "alice@localhost/phone" || parleytest.Body(m) != "hello" {
		t.Fatalf("the component got %s", str(m.El))
	}
	c.Send("<message from='bob@%s/bridge' to='alice@localhost/phone' id='m2' type='chat'><body>hi back</body></message>", gw)
	back, _ := alice.WaitFor("the answer", func(st *xmpp.Stanza) bool { return st.ID == "m2" })
	if parleytest.Body(back) != "hi back" {
		t.Errorf("alice got %s", alice.String(back.El))
	}
	// An iq both ways: the client asks the component, the component
	// asks the server.
	alice.Send("<iq to='%s' type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>", gw)
	q := c.Next()
	if q.ID != "v1" || q.Kind != xmpp.KindIQ || q.Payload() == nil {
		t.Fatalf("the component got %s", str(q.El))
	}
	c.Send("<iq from='%s' to='alice@localhost/phone' type='result' id='v1'><query xmlns='jabber:iq:version'><name>gw</name></query></iq>", gw)
	res, _ := alice.WaitFor("the version", func(st *xmpp.Stanza) bool { return st.ID == "v1" })
	alice.ExpectResult(res, "the component's version")
	c.Send("<iq from='%s' to='localhost' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>", gw)
	if st := c.Next(); st.ID != "p1" || st.Type != "result" {
		t.Errorf("the server's ping answer is %s", str(st.El))
	}
}

// TestGoneComponentBounces: with no component connected, iqs and
// messages to its domain get service-unavailable and presence nothing;
// once one connects they reach it.
func TestGoneComponentBounces(t *testing.T) {
	s, addr := start(t)
	s.AddUser("alice@localhost", "a")
	alice := s.Login("alice@localhost", "a", "phone")
	check := func(when string) {
		t.Helper()
		alice.Send("<presence to='bob@%s' type='subscribe'/>", gw)
		alice.Send("<message to='bob@%s' id='gone-m' type='chat'><body>x</body></message>", gw)
		m, _ := alice.WaitFor("the message's bounce", func(st *xmpp.Stanza) bool { return st.ID == "gone-m" })
		alice.ExpectError(m, xmpp.ServiceUnavailable, "a message to a gone component, "+when)
		st := alice.IQ("get", gw, "<query xmlns='jabber:iq:version'/>")
		alice.ExpectError(st, xmpp.ServiceUnavailable, "an iq to a gone component, "+when)
	}
	check("before any connected")
	c, err := login(t, addr, gw, secret)
	if err != nil {
		t.Fatal(err)
	}
	c.Send("</stream:stream>")
	if _, err := c.NextErr(); !errors.Is(err, xmpp.ErrStreamClosed) {
		t.Fatalf("after the component's closing tag: %v, want the server's", err)
	}
	h, _ := externalHost(s)
	waitFor(t, "the component gone", func() bool { return !h.Connected() })
	check("after it left")
}

// TestSecondConnection: by default a second connection is refused with
// conflict and the first keeps the domain (Prosody's kick_new); with
// conflict = "replace" the first is closed with conflict instead.
func TestSecondConnection(t *testing.T) {
	tests := []struct {
		policy    string
		firstKept bool
	}{{"", true}, {"refuse", true}, {"replace", false}}
	for _, tt := range tests {
		t.Run("policy "+tt.policy, func(t *testing.T) {
			s := parleytest.Start(t, parleytest.WithHost("localhost", ""), withComponent(gw, tt.policy))
			addr := s.TypeAddrs("component")[0].String()
			s.AddUser("alice@localhost", "a")
			alice := s.Login("alice@localhost", "a", "phone")
			first, err := login(t, addr, gw, secret)
			if err != nil {
				t.Fatal(err)
			}
			second, err := login(t, addr, gw, secret)
			var se *xmpp.StreamError
			winner := second
			if tt.firstKept {
				if !errors.As(err, &se) || se.Condition != xmpp.StreamConflict {
					t.Fatalf("the second connection got %v, want a conflict stream error", err)
				}
				winner = first
			} else {
				if err != nil {
					t.Fatalf("the second connection got %v, want to replace the first", err)
				}
				first.ExpectStreamError(xmpp.StreamConflict)
			}
			alice.Send("<message to='%s' id='which'><body>x</body></message>", gw)
			if st := winner.Next(); st.ID != "which" {
				t.Errorf("the connection that holds the domain got %s", str(st.El))
			}
		})
	}
}

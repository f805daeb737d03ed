package server_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// stillServing proves the server keeps serving others: bob's message
// reaches carol.
func stillServing(t *testing.T, bob, carol *parleytest.Conn) {
	t.Helper()
	bob.Send("<message to='%s' type='chat'><body>still there?</body></message>", carol.JID)
	st := carol.NextStanza()
	if st.From != bob.JID || st.El.FindElement("body").Text() != "still there?" {
		t.Fatalf("carol got %s", carol.String(st.El))
	}
}

func TestBadInputClosesOnlyThatStream(t *testing.T) {
	s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) {
		c.Limits.StanzaSize = 10000
	}))
	for _, u := range []string{"alice", "bob", "carol"} {
		s.AddUser(u+"@localhost", "secret-"+u)
	}
	bob := s.Login("bob@localhost", "secret-bob", "desk")
	carol := s.Login("carol@localhost", "secret-carol", "desk")

	for _, tt := range badInputs {
		t.Run(tt.name, func(t *testing.T) {
			alice := s.Login("alice@localhost", "secret-alice", "")
			alice.Send("%s", tt.send)
			alice.ExpectStreamError(tt.want)
			stillServing(t, bob, carol)
		})
	}
}

// badInputs is what a bound client may send that ends its stream (with
// stanza_size = 10000), over TCP and over WebSocket alike.
var badInputs = []struct {
	name string
	send string
	want xmpp.StreamCondition
}{
	{"not well-formed XML is not-well-formed", "<message><body>x</message>", xmpp.NotWellFormed},
	{"a DTD is restricted-xml", "<!DOCTYPE lol [<!ENTITY lol 'lol'>]>", xmpp.RestrictedXML},
	{"an entity other than the five is restricted-xml", "<message to='bob@localhost'><body>&lol;</body></message>", xmpp.RestrictedXML},
	{"a comment is restricted-xml", "<message to='bob@localhost'><!-- hi --></message>", xmpp.RestrictedXML},
	{"a processing instruction is restricted-xml", "<?evil x?>", xmpp.RestrictedXML},
	{"a stanza over the size limit is policy-violation", "<message to='bob@localhost'><body>" + strings.Repeat("A", 20000) + "</body></message>", xmpp.StreamPolicyViolation},
	{"an element nested too deep is policy-violation", "<message>" + strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100) + "</message>", xmpp.StreamPolicyViolation},
	{"an unknown top-level element is unsupported-stanza-type", "<foo xmlns='urn:foo'/>", xmpp.UnsupportedStanzaType},
}

func TestNegotiationErrors(t *testing.T) {
	s := parleytest.Start(t)
	s.AddUser("alice@localhost", "secret-alice")
	s.AddUser("bob@localhost", "secret-bob")
	s.AddUser("carol@localhost", "secret-carol")
	bob := s.Login("bob@localhost", "secret-bob", "desk")
	carol := s.Login("carol@localhost", "secret-carol", "desk")

	t.Run("an unknown host is host-unknown", func(t *testing.T) {
		c := s.DialRaw()
		err := c.OpenErr("nowhere.example")
		var se *xmpp.StreamError
		if !errors.As(err, &se) || se.Condition != xmpp.HostUnknown {
			t.Fatalf("err = %v, want host-unknown", err)
		}
		stillServing(t, bob, carol)
	})

	t.Run("a wrong stream namespace is invalid-namespace", func(t *testing.T) {
		c := s.DialRaw()
		c.Send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")
		expectHeaderThenStreamError(t, c, xmpp.InvalidNamespace)
		stillServing(t, bob, carol)
	})

	t.Run("an old version is unsupported-version", func(t *testing.T) {
		c := s.DialRaw()
		c.Send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost'>")
		expectHeaderThenStreamError(t, c, xmpp.UnsupportedVersion)
	})

	t.Run("garbage before the header gets a header and not-well-formed", func(t *testing.T) {
		c := s.DialRaw()
		c.Send("GET / HTTP/1.1\r\n\r\n")
		expectHeaderThenStreamError(t, c, xmpp.NotWellFormed)
		stillServing(t, bob, carol)
	})

	t.Run("TLS is offered as required and SASL is not offered before it", func(t *testing.T) {
		c := s.DialRaw()
		c.Open("localhost")
		if c.Features.FindElement("starttls/required") == nil {
			t.Fatalf("features %s: want <starttls><required/></starttls>", c.String(c.Features))
		}
		if c.Features.FindElement("mechanisms") != nil {
			t.Fatalf("features %s: SASL offered before TLS", c.String(c.Features))
		}
	})

	t.Run("auth before STARTTLS is encryption-required and the stream can go on", func(t *testing.T) {
		c := s.DialRaw()
		c.Open("localhost")
		if el := c.AuthPlain("alice", "secret-alice"); el.Tag != "failure" || el.SelectElement("encryption-required") == nil {
			t.Fatalf("got %s, want <failure><encryption-required/></failure>", c.String(el))
		}
		c.StartTLS(s.TLSConfig("localhost"))
		if el := c.AuthPlain("alice", "secret-alice"); el.Tag != "success" {
			t.Fatalf("after STARTTLS got %s", c.String(el))
		}
	})

	t.Run("a wrong password is not-authorized and a retry works", func(t *testing.T) {
		c := s.DialSecure("localhost")
		if el := c.AuthPlain("alice", "wrong"); el.Tag != "failure" || el.SelectElement("not-authorized") == nil {
			t.Fatalf("got %s, want <failure><not-authorized/></failure>", c.String(el))
		}
		if el := c.AuthPlain("alice", "secret-alice"); el.Tag != "success" {
			t.Fatalf("retry got %s", c.String(el))
		}
		c.Open("localhost")
		c.Bind("retry")
		stillServing(t, bob, carol)
	})

	t.Run("too many wrong passwords close the stream with policy-violation", func(t *testing.T) {
		c := s.DialSecure("localhost")
		for i := 0; i < 2; i++ {
			if el := c.AuthPlain("alice", "wrong"); el.Tag != "failure" {
				t.Fatalf("attempt %d got %s", i, c.String(el))
			}
		}
		c.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHdyb25n</auth>")
		c.ExpectStreamError(xmpp.StreamPolicyViolation)
	})

	t.Run("an unknown user is not-authorized like a wrong password", func(t *testing.T) {
		c := s.DialSecure("localhost")
		if el := c.AuthPlain("mallory", "x"); el.Tag != "failure" || el.SelectElement("not-authorized") == nil {
			t.Fatalf("got %s", c.String(el))
		}
	})

	t.Run("bad base64 is incorrect-encoding", func(t *testing.T) {
		c := s.DialSecure("localhost")
		c.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>!!!</auth>")
		if el := c.Next(); el.Tag != "failure" || el.SelectElement("incorrect-encoding") == nil {
			t.Fatalf("got %s", c.String(el))
		}
	})

	t.Run("an unknown mechanism is invalid-mechanism", func(t *testing.T) {
		c := s.DialSecure("localhost")
		c.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-MAGIC'>=</auth>")
		if el := c.Next(); el.Tag != "failure" || el.SelectElement("invalid-mechanism") == nil {
			t.Fatalf("got %s", c.String(el))
		}
	})

	t.Run("failures of any kind close the stream at auth_failures", func(t *testing.T) {
		// Unknown mechanisms and aborts were not counted, and one stream
		// could try for ever.
		c := s.DialSecure("localhost")
		c.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-MAGIC'>=</auth>")
		if el := c.Next(); el.SelectElement("invalid-mechanism") == nil {
			t.Fatalf("got %s", c.String(el))
		}
		c.Send("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
		if el := c.Next(); el.SelectElement("aborted") == nil {
			t.Fatalf("got %s", c.String(el))
		}
		c.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-MAGIC'>=</auth>")
		c.ExpectStreamError(xmpp.StreamPolicyViolation)
	})

	t.Run("a stanza before authentication is not-authorized", func(t *testing.T) {
		c := s.DialRaw()
		c.Open("localhost")
		c.Send("<message to='bob@localhost'><body>sneaky</body></message>")
		c.ExpectStreamError(xmpp.StreamNotAuthorized)
		stillServing(t, bob, carol)
	})

	t.Run("a stanza after authentication but before bind is not-authorized", func(t *testing.T) {
		c := s.DialSecure("localhost")
		if el := c.AuthPlain("alice", "secret-alice"); el.Tag != "success" {
			t.Fatalf("auth got %s", c.String(el))
		}
		c.Open("localhost")
		if c.Features.FindElement("bind") == nil {
			t.Fatalf("features after SASL %s: want bind", c.String(c.Features))
		}
		c.Send("<message to='bob@localhost'><body>sneaky</body></message>")
		c.ExpectStreamError(xmpp.StreamNotAuthorized)
		stillServing(t, bob, carol)
	})

	// White space after <starttls/> is not data (go-sendxmpp writes
	// "<starttls/>\n" in one write); anything else before the handshake
	// would be read in the clear and trusted as if it came over TLS.
	const starttls = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
	for _, tc := range []struct {
		name, after string
		refused     bool
	}{
		{name: "a newline after starttls is dropped (go-sendxmpp)", after: "\n"},
		{name: "spaces, tabs and CRLF after starttls are dropped", after: " \t\r\n  "},
		{name: "a stanza after starttls is refused", after: "<message/>", refused: true},
		{name: "a stanza after a newline after starttls is refused", after: "\n<message/>", refused: true},
		{name: "a byte that is not white space after starttls is refused", after: " x", refused: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := s.DialRaw()
			c.Open("localhost")
			if tc.refused {
				c.Send("%s", starttls+tc.after)
				c.ExpectStreamError(xmpp.StreamPolicyViolation)
				return
			}
			c.StartTLSWith(s.TLSConfig("localhost"), starttls+tc.after)
			if el := c.AuthPlain("alice", "secret-alice"); el.Tag != "success" {
				t.Fatalf("auth after STARTTLS got %s", c.String(el))
			}
		})
	}
}

// expectHeaderThenStreamError is for errors sent before the features: the
// server's header comes first, then the error (RFC 6120 §4.9.1.3).
func expectHeaderThenStreamError(t *testing.T, c *parleytest.Conn, want xmpp.StreamCondition) {
	t.Helper()
	err := c.ReadHeaderErr()
	var se *xmpp.StreamError
	if !errors.As(err, &se) || se.Condition != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
}

func TestFromIsStampedByTheServer(t *testing.T) {
	s := parleytest.Start(t)
	s.AddUser("alice@localhost", "a")
	s.AddUser("bob@localhost", "b")
	alice := s.Login("alice@localhost", "a", "phone")
	bob := s.Login("bob@localhost", "b", "desk")
	for _, from := range []string{"eve@localhost/x", "localhost", "bob@localhost/desk", "not a jid@@"} {
		alice.Send("<message from='%s' to='bob@localhost/desk' type='chat'><body>hi</body></message>", from)
		st := bob.NextStanza()
		if st.From != alice.JID {
			t.Fatalf("client from %q: bob sees from %s, want %s", from, st.From, alice.JID)
		}
	}
}

func TestRouting(t *testing.T) {
	s := parleytest.Start(t)
	s.AddUser("alice@localhost", "a")
	s.AddUser("bob@localhost", "b")
	alice := s.Login("alice@localhost", "a", "phone")
	bob1 := s.Login("bob@localhost", "b", "one")
	bob2 := s.Login("bob@localhost", "b", "two")
	alice.Send("<presence/>")
	alice.Sync()

	t.Run("a message to a full JID reaches that resource even without presence", func(t *testing.T) {
		alice.Send("<message to='bob@localhost/two' type='chat' id='m1'><body>to two</body></message>")
		if st := nextNonPresence(bob2); st.ID != "m1" {
			t.Fatalf("bob2 got %s", bob2.String(st.El))
		}
	})

	t.Run("a message to a bare JID with no available resource waits offline for the next available presence", func(t *testing.T) {
		alice.Send("<message to='bob@localhost' type='chat' id='m2'><body>anyone?</body></message>")
		alice.Sync() // routed, and so stored, before bob comes online
		bob1.Send("<presence><priority>5</priority></presence>")
		st := nextNonPresence(bob1)
		d := xmpp.Child(st.El, xmpp.NSDelay, "delay")
		if st.ID != "m2" || d == nil || d.SelectAttrValue("from", "") != "localhost" || d.SelectAttrValue("stamp", "") == "" {
			t.Fatalf("bob1 got %s, want m2 with a delay stamp from localhost", bob1.String(st.El))
		}
	})

	bob2.Send("<presence><priority>1</priority></presence>")
	bob1.Sync()
	bob2.Sync()
	t.Run("a message to a bare JID goes to the highest priority", func(t *testing.T) {
		alice.Send("<message to='bob@localhost' type='chat' id='m3'><body>best</body></message>")
		alice.Send("<message to='bob@localhost/two' type='chat' id='m4'><body>marker</body></message>")
		if st := nextNonPresence(bob1); st.ID != "m3" {
			t.Fatalf("bob1 got %s", bob1.String(st.El))
		}
		// bob2 gets the marker first: it never got m3.
		if st := nextNonPresence(bob2); st.ID != "m4" {
			t.Fatalf("bob2 got %s, want only the marker", bob2.String(st.El))
		}
	})

	t.Run("a message to a gone resource goes to the bare JID", func(t *testing.T) {
		alice.Send("<message to='bob@localhost/gone' type='chat' id='m5'><body>x</body></message>")
		if st := nextNonPresence(bob1); st.ID != "m5" {
			t.Fatalf("bob1 got %s", bob1.String(st.El))
		}
	})

	tests := []struct {
		name, send string
		want       xmpp.StanzaCondition
	}{
		{"a message to an unknown user is service-unavailable", "<message to='nobody@localhost' type='chat' id='e1'><body>x</body></message>", xmpp.ServiceUnavailable},
		{"a message to a domain not served is remote-server-not-found", "<message to='someone@nowhere.example' id='e2'><body>x</body></message>", xmpp.RemoteServerNotFound},
		{"an iq to a gone resource is service-unavailable", "<iq to='bob@localhost/gone' type='get' id='e3'><ping xmlns='urn:xmpp:ping'/></iq>", xmpp.ServiceUnavailable},
		{"an unknown iq to the server is service-unavailable", "<iq to='localhost' type='get' id='e4'><query xmlns='urn:unknown'/></iq>", xmpp.ServiceUnavailable},
		{"a groupchat message to a user is service-unavailable", "<message to='bob@localhost' type='groupchat' id='e5'><body>x</body></message>", xmpp.ServiceUnavailable},
		{"a malformed to is jid-malformed", "<message to='@@bad' id='e6'><body>x</body></message>", xmpp.JIDMalformed},
		{"an iq get with two children is bad-request", "<iq to='localhost' type='get' id='e7'><ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/></iq>", xmpp.BadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alice.Send("%s", tt.send)
			st := alice.NextStanza()
			se := xmpp.ParseStanzaError(st.El)
			if st.Type != "error" || se == nil || se.Condition != tt.want {
				t.Fatalf("got %s, want error %s", alice.String(st.El), tt.want)
			}
		})
	}
}

// nextNonPresence reads past presence: a user's resources see each
// other's.
func nextNonPresence(c *parleytest.Conn) *xmpp.Stanza {
	for {
		if st := c.NextStanza(); st.Kind != xmpp.KindPresence {
			return st
		}
	}
}

func TestServerIQs(t *testing.T) {
	s := parleytest.Start(t)
	s.AddUser("alice@localhost", "a")
	alice := s.Login("alice@localhost", "a", "phone")
	tests := []struct {
		name, payload, check string
	}{
		{"ping answers an empty result", "<ping xmlns='urn:xmpp:ping'/>", ""},
		{"version names Parley", "<query xmlns='jabber:iq:version'/>", "query/name"},
		{"time gives utc and tzo", "<time xmlns='urn:xmpp:time'/>", "time/utc"},
		{"disco#info lists an identity", "<query xmlns='http://jabber.org/protocol/disco#info'/>", "query/identity[@category='server']"},
		{"disco#items answers", "<query xmlns='http://jabber.org/protocol/disco#items'/>", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := alice.IQNext("get", "localhost", tt.payload)
			if st.Type != "result" || st.From != xmpp.MustParse("localhost") {
				t.Fatalf("got %s", alice.String(st.El))
			}
			if tt.check != "" && st.El.FindElement(tt.check) == nil {
				t.Fatalf("got %s, want %s", alice.String(st.El), tt.check)
			}
		})
	}
	t.Run("disco#info lists exactly the implemented features", func(t *testing.T) {
		st := alice.IQNext("get", "localhost", "<query xmlns='http://jabber.org/protocol/disco#info'/>")
		var got []string
		for _, f := range st.El.FindElements("query/feature") {
			got = append(got, f.SelectAttrValue("var", ""))
		}
		// Sorted (XEP-0115 §5.1 order), whatever order modules start in.
		want := "http://jabber.org/protocol/disco#info http://jabber.org/protocol/disco#items " +
			"http://jabber.org/protocol/pubsub#access-open http://jabber.org/protocol/pubsub#access-presence http://jabber.org/protocol/pubsub#access-whitelist http://jabber.org/protocol/pubsub#auto-create http://jabber.org/protocol/pubsub#config-node http://jabber.org/protocol/pubsub#delete-items http://jabber.org/protocol/pubsub#delete-nodes http://jabber.org/protocol/pubsub#filtered-notifications http://jabber.org/protocol/pubsub#item-ids http://jabber.org/protocol/pubsub#last-published http://jabber.org/protocol/pubsub#persistent-items http://jabber.org/protocol/pubsub#publish http://jabber.org/protocol/pubsub#publish-options http://jabber.org/protocol/pubsub#retrieve-items " +
			"jabber:iq:last jabber:iq:private jabber:iq:version msgoffline urn:xmpp:blocking urn:xmpp:bookmarks:1#compat urn:xmpp:bookmarks:1#compat-pep urn:xmpp:carbons:2 urn:xmpp:carbons:rules:0 urn:xmpp:mam:2 urn:xmpp:mam:2#extended urn:xmpp:pep-vcard-conversion:0 urn:xmpp:ping urn:xmpp:push:0 urn:xmpp:sid:0 urn:xmpp:time vcard-temp"
		if strings.Join(got, " ") != want {
			t.Fatalf("features %q, want %q", got, want)
		}
	})
	t.Run("the legacy session iq is accepted", func(t *testing.T) {
		alice.ExpectResult(alice.IQNext("set", "", "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/>"), "session")
	})
	t.Run("a ping without to is answered for the account", func(t *testing.T) {
		alice.ExpectResult(alice.IQNext("get", "", "<ping xmlns='urn:xmpp:ping'/>"), "ping")
	})
	t.Run("whitespace keepalives are accepted", func(t *testing.T) {
		alice.Send(" \n ")
		alice.Send("<iq to='localhost' type='get' id='p3'><ping xmlns='urn:xmpp:ping'/></iq>")
		if st := alice.NextStanza(); st.ID != "p3" {
			t.Fatalf("got %s", alice.String(st.El))
		}
	})
}

func TestDirectTLS(t *testing.T) {
	s := parleytest.Start(t)
	s.AddUser("alice@localhost", "a")
	c := s.DialDirectTLS("localhost")
	c.Open("localhost")
	if c.Features.FindElement("starttls") != nil {
		t.Fatalf("starttls offered on a TLS stream: %s", c.String(c.Features))
	}
	if el := c.AuthPlain("alice", "a"); el.Tag != "success" {
		t.Fatalf("got %s", c.String(el))
	}
	c.Open("localhost")
	c.Bind("tls")
	c.ExpectResult(c.IQNext("get", "localhost", "<ping xmlns='urn:xmpp:ping'/>"), "ping")
}

func TestResourceConflictReplacesTheOldSession(t *testing.T) {
	s := parleytest.Start(t)
	s.AddUser("alice@localhost", "a")
	s.AddUser("bob@localhost", "b")
	old := s.Login("alice@localhost", "a", "phone")
	young := s.Login("alice@localhost", "a", "phone")
	old.ExpectStreamError(xmpp.StreamConflict)
	bob := s.Login("bob@localhost", "b", "")
	bob.Send("<message to='alice@localhost/phone' id='x'><body>new one?</body></message>")
	if st := young.NextStanza(); st.ID != "x" {
		t.Fatalf("got %s", young.String(st.El))
	}
}

func TestServerGeneratedResource(t *testing.T) {
	s := parleytest.Start(t)
	s.AddUser("alice@localhost", "a")
	c := s.Login("alice@localhost", "a", "")
	if c.JID.Resource() == "" || c.JID.Bare() != xmpp.MustParse("alice@localhost") {
		t.Fatalf("bound %s", c.JID)
	}
}

func TestIdleTimeout(t *testing.T) {
	s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) {
		c.C2S.IdleTimeout = conf.Duration{Duration: 200 * time.Millisecond}
	}))
	s.AddUser("alice@localhost", "a")
	c := s.Login("alice@localhost", "a", "")
	c.ExpectStreamError(xmpp.ConnectionTimeout)
}

func TestShutdownSendsSystemShutdown(t *testing.T) {
	s := parleytest.Start(t)
	s.AddUser("alice@localhost", "a")
	bound := s.Login("alice@localhost", "a", "")
	unbound := s.DialRaw()
	unbound.Open("localhost")
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	bound.ExpectStreamError(xmpp.SystemShutdown)
	unbound.ExpectStreamError(xmpp.SystemShutdown)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestWhitespaceThenStanza: a waiting session takes white space in bulk
// (keepalives), and a stanza behind it, in the same read or the next, is
// read whole.
func TestWhitespaceThenStanza(t *testing.T) {
	s := parleytest.Start(t)
	s.AddUser("alice@localhost", "secret")
	c := s.Login("alice@localhost", "secret", "r")
	for i, tc := range []struct{ before, after string }{
		{before: strings.Repeat(" ", 200000)},
		{before: strings.Repeat(" \n", 5000), after: strings.Repeat("\t", 3)},
		{before: " "},
	} {
		c.Send("%s<iq type='get' id='p%d' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>%s", tc.before, i, tc.after)
		if st := c.NextStanza(); st.ID != fmt.Sprintf("p%d", i) || st.Type != "result" {
			t.Fatalf("ping %d: got %s", i, c.String(st.El))
		}
		c.Send("%s", tc.before)
		c.Sync()
	}
}

// TestStreamLimitsAdvertised: every <stream:features/> carries the limits
// of XEP-0478: the largest stanza, and the seconds of silence a bound
// stream may keep.
func TestStreamLimitsAdvertised(t *testing.T) {
	s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) {
		c.Limits.StanzaSize = 100000
		c.C2S.IdleTimeout = conf.Duration{Duration: 7 * time.Minute}
	}))
	s.AddUser("alice@localhost", "secret")
	check := func(c *parleytest.Conn, when string) {
		t.Helper()
		lim := c.Features.FindElement("limits")
		if lim == nil || lim.NamespaceURI() != "urn:xmpp:stream-limits:0" {
			t.Fatalf("%s: features %s have no XEP-0478 limits", when, c.String(c.Features))
		}
		if got := lim.FindElement("max-bytes"); got == nil || got.Text() != "100000" {
			t.Errorf("%s: %s, want max-bytes 100000", when, c.String(lim))
		}
		if got := lim.FindElement("idle-seconds"); got == nil || got.Text() != "420" {
			t.Errorf("%s: %s, want idle-seconds 420", when, c.String(lim))
		}
	}
	c := s.DialRaw()
	c.Open("localhost")
	check(c, "before TLS")
	c.StartTLS(s.TLSConfig("localhost"))
	check(c, "after STARTTLS")
	if el := c.AuthPlain("alice", "secret"); el.Tag != "success" {
		t.Fatalf("auth: %s", c.String(el))
	}
	c.Open("localhost")
	check(c, "after SASL")
}

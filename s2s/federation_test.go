package s2s_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/s2s"
	"github.com/parley-im/parley/xmpp"
)

// next reads c until a stanza for which match holds, skipping others
// (presence broadcasts, say); the read timeout fails the test.
func next(t *testing.T, c *parleytest.Conn, what string, match func(*etree.Element) bool) *etree.Element {
	t.Helper()
	for {
		el := c.Next()
		if match(el) {
			return el
		}
		t.Logf("%s: skipping %s", what, c.String(el))
	}
}

func isMessage(body string) func(*etree.Element) bool {
	return func(el *etree.Element) bool {
		b := el.FindElement("body")
		return el.Tag == "message" && b != nil && b.Text() == body
	}
}

// twoServers starts a.example and b.example federating on loopback, with
// alice on a and bob on b, logged in.
func twoServers(t *testing.T, opts ...parleytest.Option) (a, b *parleytest.Server, alice, bob *parleytest.Conn) {
	t.Helper()
	return twoServersCA(t, nil, opts...)
}

// twoServersCA is twoServers whose clients also trust ca (when not nil),
// for servers with certificates of ca.
func twoServersCA(t *testing.T, ca *testCA, opts ...parleytest.Option) (a, b *parleytest.Server, alice, bob *parleytest.Conn) {
	t.Helper()
	srv := parleytest.StartFederated(t, []string{"a.example", "b.example"}, opts...)
	a, b = srv[0], srv[1]
	if ca != nil {
		a.CertPool.AddCert(ca.cert)
		b.CertPool.AddCert(ca.cert)
	}
	a.AddUser("alice@a.example", "pw")
	b.AddUser("bob@b.example", "pw")
	alice = a.Login("alice@a.example", "pw", "phone")
	bob = b.Login("bob@b.example", "pw", "laptop")
	for _, c := range []*parleytest.Conn{alice, bob} {
		// Available: what comes for the bare JID is delivered.
		c.Send("<presence/>")
		c.Sync()
	}
	return a, b, alice, bob
}

func TestChatBothWaysOverDialback(t *testing.T) {
	_, _, alice, bob := twoServers(t)
	tests := []struct {
		name     string
		from, to *parleytest.Conn
		toJID    string
		wantFrom string
		body     string
	}{
		{"a to b", alice, bob, "bob@b.example/laptop", "alice@a.example/phone", "hello from a"},
		{"b to a", bob, alice, "alice@a.example/phone", "bob@b.example/laptop", "hello from b"},
		{"a to b again, same stream", alice, bob, "bob@b.example", "alice@a.example/phone", "and again"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.from.Send("<message type='chat' to='%s'><body>%s</body></message>", tt.toJID, tt.body)
			el := next(t, tt.to, tt.name, isMessage(tt.body))
			if got := el.SelectAttrValue("from", ""); got != tt.wantFrom {
				t.Errorf("from = %q; want %q", got, tt.wantFrom)
			}
		})
	}
}

func TestIQAcrossServers(t *testing.T) {
	_, _, alice, bob := twoServers(t)
	tests := []struct {
		name    string
		c       *parleytest.Conn
		to      string
		payload string
		want    string // a child element of the result, "" for none
	}{
		{"ping b's server from a", alice, "b.example", "<ping xmlns='urn:xmpp:ping'/>", ""},
		{"version of a's server from b", bob, "a.example", "<query xmlns='jabber:iq:version'/>", "query"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "iq" + string(rune('0'+i))
			tt.c.Send("<iq type='get' id='%s' to='%s'>%s</iq>", id, tt.to, tt.payload)
			el := next(t, tt.c, tt.name, func(el *etree.Element) bool {
				return el.Tag == "iq" && el.SelectAttrValue("id", "") == id
			})
			if typ := el.SelectAttrValue("type", ""); typ != "result" {
				t.Fatalf("answer %s; want a result", tt.c.String(el))
			}
			if from := el.SelectAttrValue("from", ""); from != tt.to {
				t.Errorf("from = %q; want %q", from, tt.to)
			}
			if tt.want != "" && el.SelectElement(tt.want) == nil {
				t.Errorf("answer %s has no <%s/>", tt.c.String(el), tt.want)
			}
		})
	}
}

// errorCondition returns the defined condition of a stanza error.
func errorCondition(el *etree.Element) string {
	if se := xmpp.ParseStanzaError(el); se != nil {
		return string(se.Condition)
	}
	return ""
}

// hasPresence matches a presence of type typ (empty: available) from.
func hasPresence(typ, from string) func(*etree.Element) bool {
	return func(el *etree.Element) bool {
		return el.Tag == "presence" && el.SelectAttrValue("type", "") == typ && el.SelectAttrValue("from", "") == from
	}
}

// RFC 6121 §3 across servers: a subscription request, its approval, the
// contact's presence after it, a presence change, and the probe of a new
// session; each way.
func TestSubscriptionAndPresenceBothWays(t *testing.T) {
	a, b, alice, bob := twoServers(t)
	tests := []struct {
		name                  string
		user, contact         *parleytest.Conn
		userBare, contactBare string
		contactFull           string
		newSession            func() *parleytest.Conn
	}{
		{"alice subscribes to bob", alice, bob, "alice@a.example", "bob@b.example", "bob@b.example/laptop",
			func() *parleytest.Conn { return a.Login("alice@a.example", "pw", "tablet") }},
		{"bob subscribes to alice", bob, alice, "bob@b.example", "alice@a.example", "alice@a.example/phone",
			func() *parleytest.Conn { return b.Login("bob@b.example", "pw", "desk") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.user.Send("<presence type='subscribe' to='%s'/>", tt.contactBare)
			next(t, tt.contact, "subscribe", hasPresence("subscribe", tt.userBare))
			tt.contact.Send("<presence type='subscribed' to='%s'/>", tt.userBare)
			next(t, tt.user, "subscribed", hasPresence("subscribed", tt.contactBare))
			// §3.1.6: the contact's server sends its available resources.
			next(t, tt.user, "contact's presence", hasPresence("", tt.contactFull))

			tt.contact.Send("<presence><show>away</show></presence>")
			el := next(t, tt.user, "presence change", hasPresence("", tt.contactFull))
			if s := el.SelectElement("show"); s == nil || s.Text() != "away" {
				t.Errorf("presence %s; want <show>away</show>", tt.user.String(el))
			}

			// §4.3: a new session's initial presence probes the contact.
			c := tt.newSession()
			c.Send("<presence/>")
			next(t, c, "answer to the probe", hasPresence("", tt.contactFull))
		})
	}
}

// withCA gives each server a certificate of ca for its domain and trusts
// ca for peers' certificates.
func withCA(ca *testCA, requireValid bool) parleytest.Option {
	return parleytest.WithConfig(func(c *conf.Config) {
		h := &c.Hosts[0]
		_, h.TLSCert, h.TLSKey = ca.issue(h.Name)
		c.S2S.CAFile = ca.File
		c.S2S.RequireValidCerts = requireValid
	})
}

// Which way two servers authenticate: dialback with generated
// (self-signed) certificates, SASL EXTERNAL with certificates of a CA
// both trust, and then only EXTERNAL when valid certificates are required.
func TestAuthenticationByCertificateOrDialback(t *testing.T) {
	ca := newCA(t)
	tests := []struct {
		name string
		opts []parleytest.Option
		want s2s.Stats // of each server: one stream out, one in
	}{
		{"self-signed: dialback", nil, s2s.Stats{OutDialback: 1, InDialback: 1}},
		{"a shared CA: EXTERNAL", []parleytest.Option{withCA(ca, false)}, s2s.Stats{OutExternal: 1, InExternal: 1}},
		{"a shared CA, valid certs required", []parleytest.Option{withCA(ca, true)}, s2s.Stats{OutExternal: 1, InExternal: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b, alice, bob := twoServersCA(t, ca, tt.opts...)
			alice.Send("<message to='bob@b.example'><body>1</body></message>")
			next(t, bob, "a to b", isMessage("1"))
			bob.Send("<message to='alice@a.example'><body>2</body></message>")
			next(t, alice, "b to a", isMessage("2"))
			for _, s := range []*parleytest.Server{a, b} {
				if got := s.S2S().Stats(); got != tt.want {
					t.Errorf("%s: %+v; want %+v", s.Domain, got, tt.want)
				}
			}
		})
	}
}

// With valid certificates required, a peer whose certificate does not
// validate (here: generated, self-signed) gets no stream: what waits
// bounces.
func TestRequireValidCertsRefusesSelfSigned(t *testing.T) {
	_, _, alice, _ := twoServers(t, parleytest.WithConfig(func(c *conf.Config) {
		c.S2S.RequireValidCerts = true
		c.S2S.ConnectTimeout = conf.Duration{Duration: 5 * time.Second}
	}))
	alice.Send("<message id='m1' to='bob@b.example'><body>1</body></message>")
	el := next(t, alice, "bounce", func(el *etree.Element) bool { return el.Tag == "message" })
	if c := errorCondition(el); el.SelectAttrValue("type", "") != "error" || c != string(xmpp.RemoteServerNotFound) {
		t.Errorf("got %s; want a remote-server-not-found error", alice.String(el))
	}
}

// A remote that cannot be reached: what waits for it bounces to its
// sender, remote-server-not-found for a refused connection, and
// remote-server-timeout for a server that accepts and never answers,
// after connect_timeout.
func TestUnreachableRemoteBounces(t *testing.T) {
	closed, err := parleytest.FreeAddr() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() }) // accepted, never answered
		}
	}()
	tests := []struct {
		name, domain string
		want         xmpp.StanzaCondition
	}{
		{"closed port", "dead.example", xmpp.RemoteServerNotFound},
		{"silent server", "silent.example", xmpp.RemoteServerTimeout},
	}
	s := parleytest.Start(t, parleytest.WithHost("a.example", ""), parleytest.WithConfig(func(c *conf.Config) {
		c.S2S.Listen = []string{"127.0.0.1:0"}
		c.S2S.StaticRoutes = map[string]string{"dead.example": closed, "silent.example": silent.Addr().String()}
		c.S2S.ConnectTimeout = conf.Duration{Duration: time.Second}
	}))
	s.AddUser("alice@a.example", "pw")
	alice := s.Login("alice@a.example", "pw", "phone")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range 3 { // each queued while the stream connects
				alice.Send("<message id='%s%d' to='someone@%s'><body>%d</body></message>", tt.domain, i, tt.domain, i)
			}
			for i := range 3 {
				id := fmt.Sprintf("%s%d", tt.domain, i)
				el := next(t, alice, "bounce", func(el *etree.Element) bool {
					return el.Tag == "message" && el.SelectAttrValue("id", "") == id
				})
				if el.SelectAttrValue("type", "") != "error" || errorCondition(el) != string(tt.want) {
					t.Errorf("got %s; want a %s error", alice.String(el), tt.want)
				}
			}
		})
	}
}

// allow and deny: a domain this server does not federate with gets
// nothing from it (the message bounces) and cannot open a stream to it.
func TestAllowAndDenyLists(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *conf.Config)
	}{
		{"b denied", func(c *conf.Config) { c.S2S.Deny = []string{"b.example"} }},
		{"only c allowed", func(c *conf.Config) { c.S2S.Allow = []string{"c.example"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, b, alice, bob := twoServers(t, parleytest.WithConfig(func(c *conf.Config) {
				if c.Hosts[0].Name == "a.example" {
					tt.edit(c)
				}
			}))
			alice.Send("<message id='out' to='bob@b.example'><body>1</body></message>")
			el := next(t, alice, "bounce", func(el *etree.Element) bool { return el.Tag == "message" })
			if errorCondition(el) != string(xmpp.RemoteServerNotFound) {
				t.Errorf("got %s; want a remote-server-not-found error", alice.String(el))
			}
			// b's stream to a is refused at its header: bob's message
			// bounces, and a's alice never sees it.
			bob.Send("<message id='in' to='alice@a.example'><body>2</body></message>")
			el = next(t, bob, "bounce", func(el *etree.Element) bool { return el.Tag == "message" })
			if el.SelectAttrValue("type", "") != "error" {
				t.Errorf("got %s; want an error", bob.String(el))
			}
			noMessage(t, alice)
			if st := b.S2S().Stats(); st.OutDialback+st.OutExternal != 0 {
				t.Errorf("b authenticated a stream to a: %+v", st)
			}
		})
	}
}

// An idle stream closes after idle_timeout, whichever side has it (the
// other side, here, never closes one), and the next message opens a new
// one.
func TestIdleStreamCloses(t *testing.T) {
	tests := []struct{ name, idleSide string }{
		{"the sending side's timeout", "a.example"},
		{"the receiving side's timeout", "b.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b, alice, bob := twoServers(t, parleytest.WithConfig(func(c *conf.Config) {
				c.S2S.IdleTimeout = conf.Duration{}
				if c.Hosts[0].Name == tt.idleSide {
					c.S2S.IdleTimeout = conf.Duration{Duration: 200 * time.Millisecond}
				}
			}))
			for i, want := range []string{"before", "after"} {
				alice.Send("<message to='bob@b.example'><body>%s</body></message>", want)
				next(t, bob, want, isMessage(want))
				// Wait (with the read timeout's bound) for both sides to
				// drop the stream.
				for end := time.Now().Add(parleytest.Timeout); ; time.Sleep(20 * time.Millisecond) {
					aOut, _ := a.S2S().Streams()
					_, bIn := b.S2S().Streams()
					if aOut == 0 && bIn == 0 {
						break
					}
					if time.Now().After(end) {
						t.Fatalf("round %d: streams still open: a out %d, b in %d", i, aOut, bIn)
					}
				}
			}
			if got := a.S2S().Stats().OutDialback; got != 2 {
				t.Errorf("a authenticated %d streams; want 2 (one per round)", got)
			}
		})
	}
}

// A message from a remote contact to a user with no session waits in
// offline storage (RFC 6121 §8.5.2.2.1) and comes at the next login,
// with its remote from.
func TestRemoteMessageToOfflineUser(t *testing.T) {
	srv := parleytest.StartFederated(t, []string{"a.example", "b.example"})
	a, b := srv[0], srv[1]
	a.AddUser("alice@a.example", "pw")
	b.AddUser("bob@b.example", "pw")
	alice := a.Login("alice@a.example", "pw", "phone")
	alice.Send("<message type='chat' id='off1' to='bob@b.example'><body>while you were out</body></message>")
	// b handles a stream's stanzas in order: the answer to a ping sent
	// after the message says b has taken the message.
	alice.Send("<iq type='get' id='sync' to='b.example'><ping xmlns='urn:xmpp:ping'/></iq>")
	next(t, alice, "ping answer", func(el *etree.Element) bool { return el.Tag == "iq" && el.SelectAttrValue("id", "") == "sync" })
	bob := b.Login("bob@b.example", "pw", "laptop")
	bob.Send("<presence/>")
	el := next(t, bob, "offline message", isMessage("while you were out"))
	if from := el.SelectAttrValue("from", ""); from != "alice@a.example/phone" {
		t.Errorf("from = %q; want alice@a.example/phone", from)
	}
}

package server_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/c2s/sasl"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

const (
	nsSASL2 = "urn:xmpp:sasl:2"
	nsBind2 = "urn:xmpp:bind:0"
	nsFast  = "urn:xmpp:fast:0"
	nsSM    = "urn:xmpp:sm:3"
	agentA  = "d4565fa7-4d72-4749-b3d3-740edbf87770"
)

func plainData(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
}

// sasl2Dial opens a secure stream to localhost and returns the
// <authentication/> feature.
func sasl2Dial(t *testing.T, s *parleytest.Server) (*parleytest.Conn, *etree.Element) {
	t.Helper()
	c := s.DialSecure("localhost")
	f := c.Features
	auth := xmpp.Child(f, nsSASL2, "authentication")
	if auth == nil {
		t.Fatalf("no SASL2 in %s", c.String(f))
	}
	return c, auth
}

// child finds the direct child ns/local of el or fails.
func child(t *testing.T, c *parleytest.Conn, el *etree.Element, ns, local string) *etree.Element {
	t.Helper()
	ch := xmpp.Child(el, ns, local)
	if ch == nil {
		t.Fatalf("no {%s}%s in %s", ns, local, c.String(el))
	}
	return ch
}

func TestSASL2Bind2ResumeFAST(t *testing.T) {
	// A lifetime of its own, to see that [auth] fast_token_lifetime
	// reaches the token's expiry.
	const lifetime = 90 * time.Minute
	s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) { c.Auth.FastTokenLifetime.Duration = lifetime }))
	s.AddUser("alice@localhost", "secret1")
	s.AddUser("bob@localhost", "secret2")
	other := s.Login("alice@localhost", "secret1", "desk")
	other.Send("<presence/>")
	other.Sync()

	// The feature: mechanisms as SASL's, inline sm, bind with its
	// inline features, fast.
	c, auth := sasl2Dial(t, s)
	if m := auth.SelectElements("mechanism"); len(m) == 0 {
		t.Fatalf("no mechanisms: %s", c.String(auth))
	}
	inline := child(t, c, auth, nsSASL2, "inline")
	child(t, c, inline, nsSM, "sm")
	fast := child(t, c, inline, nsFast, "fast")
	if fast.FindElement("mechanism").Text() != sasl.HTSHA256None {
		t.Fatalf("fast: %s", c.String(fast))
	}
	vars := map[string]bool{}
	for _, f := range child(t, c, child(t, c, inline, nsBind2, "bind"), nsBind2, "inline").SelectElements("feature") {
		vars[f.SelectAttrValue("var", "")] = true
	}
	for _, v := range []string{nsSM, "urn:xmpp:carbons:2", "urn:xmpp:csi:0"} {
		if !vars[v] {
			t.Errorf("bind2 inline lacks %s: %v", v, vars)
		}
	}

	// Password login with bind2: sm and carbons inline, and a token.
	c.Send(`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>%s</initial-response>
		<user-agent id='%s'><software>test</software></user-agent>
		<bind xmlns='urn:xmpp:bind:0'><tag>Phone</tag><enable xmlns='urn:xmpp:sm:3' resume='true'/>
		<enable xmlns='urn:xmpp:carbons:2'/></bind>
		<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/></authenticate>`,
		plainData("alice", "secret1"), agentA)
	success := c.Next()
	if success.Tag != "success" || xmpp.NS(success) != nsSASL2 {
		t.Fatalf("got %s", c.String(success))
	}
	full := child(t, c, success, nsSASL2, "authorization-identifier").Text()
	if !strings.HasPrefix(full, "alice@localhost/Phone/") {
		t.Fatalf("authorization-identifier %q", full)
	}
	if strings.Contains(full, agentA) {
		t.Fatalf("the resource shows the user-agent id: %q", full)
	}
	enabled := child(t, c, child(t, c, success, nsBind2, "bound"), nsSM, "enabled")
	previd := enabled.SelectAttrValue("id", "")
	if previd == "" || enabled.SelectAttrValue("resume", "") != "true" {
		t.Fatalf("enabled: %s", c.String(enabled))
	}
	tokEl := child(t, c, success, nsFast, "token")
	token := tokEl.SelectAttrValue("token", "")
	if !strings.HasPrefix(token, "secret-token:") || tokEl.SelectAttrValue("expiry", "") == "" {
		t.Fatalf("token: %s", c.String(tokEl))
	}
	if exp, err := time.Parse(time.RFC3339, tokEl.SelectAttrValue("expiry", "")); err != nil || exp.Sub(time.Now().Add(lifetime)).Abs() > 5*time.Minute {
		t.Errorf("token expiry %q, want about now + %v (%v)", tokEl.SelectAttrValue("expiry", ""), lifetime, err)
	}
	if f := c.Next(); !parleytest.IsStream(f, "features") {
		t.Fatalf("after success: %s", c.String(f))
	}
	c.Send("<presence/>")

	// Carbons were enabled inline: a message the other resource sends
	// comes as a carbon.
	other.Send("<message to='bob@localhost' type='chat' id='m1'><body>hi bob</body></message>")
	for {
		got := smNext(t, c)
		if xmpp.Child(got.El, "urn:xmpp:carbons:2", "sent") != nil {
			break
		}
		if got.Kind == xmpp.KindMessage {
			t.Fatalf("not a carbon: %s", c.String(got.El))
		}
	}
	c.Send("<a xmlns='urn:xmpp:sm:3' h='0'/>")
	// Drop the connection; a message comes while detached.
	c.Conn.Close()
	other.Send("<message to='%s' type='chat' id='m2'><body>while away</body></message>", full)
	other.Sync()

	// Resume inline in SASL2, with a bind that must be ignored.
	c2, _ := sasl2Dial(t, s)
	c2.Send(`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>%s</initial-response>
		<user-agent id='%s'/><resume xmlns='urn:xmpp:sm:3' previd='%s' h='0'/>
		<bind xmlns='urn:xmpp:bind:0'><tag>Phone</tag></bind></authenticate>`,
		plainData("alice", "secret1"), agentA, previd)
	success = c2.Next()
	if success.Tag != "success" {
		t.Fatalf("resume: %s", c2.String(success))
	}
	if r := child(t, c2, success, nsSM, "resumed"); r.SelectAttrValue("previd", "") != previd {
		t.Fatalf("resumed: %s", c2.String(r))
	}
	if got := child(t, c2, success, nsSASL2, "authorization-identifier").Text(); got != full {
		t.Fatalf("resumed as %q, want %q", got, full)
	}
	if xmpp.Child(success, nsBind2, "bound") != nil {
		t.Fatalf("a resume also bound: %s", c2.String(success))
	}
	// Nothing lost: the carbon (not acknowledged: h='0' acknowledged
	// nothing) comes again, then what came while detached, once each.
	carbons, away := 0, 0
	for away == 0 {
		got := smNext(t, c2)
		switch {
		case xmpp.Child(got.El, "urn:xmpp:carbons:2", "sent") != nil && strings.Contains(c2.String(got.El), "hi bob"):
			if away > 0 {
				t.Fatal("the carbon after the message that came later")
			}
			carbons++
		case parleytest.Body(got) == "while away":
			away++
		}
	}
	if carbons != 1 {
		t.Fatalf("%d carbons after resume, want 1", carbons)
	}
	c2.Send("</stream:stream>")

	// FAST: the token logs in, in one round trip.
	fastLogin := func(user, agent, tok string, extra string) *etree.Element {
		c, _ := sasl2Dial(t, s)
		ir := base64.StdEncoding.EncodeToString(sasl.HTInitiator(user, []byte(tok)))
		c.Send(`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-NONE'><initial-response>%s</initial-response>
			<user-agent id='%s'/><fast xmlns='urn:xmpp:fast:0' %s/></authenticate>`, ir, agent, extra)
		el := c.Next()
		if el.Tag == "success" {
			ad := child(t, c, el, nsSASL2, "additional-data").Text()
			if ad != base64.StdEncoding.EncodeToString(sasl.HTResponder([]byte(tok))) {
				t.Errorf("server's HT answer %q", ad)
			}
			if id := child(t, c, el, nsSASL2, "authorization-identifier").Text(); id != user+"@localhost" {
				t.Errorf("authorization-identifier %q", id)
			}
		}
		c.Conn.Close()
		return el
	}
	tests := []struct {
		name, user, agent, token, extra, want string
	}{
		{"token", "alice", agentA, token, "", "success"},
		{"again", "alice", agentA, token, "count='2'", "success"},
		{"another user-agent", "alice", "5e3c8c1a-0000-4000-8000-000000000000", token, "", "not-authorized"},
		{"another user", "bob", agentA, token, "", "not-authorized"},
		{"a wrong token", "alice", agentA, token + "x", "", "not-authorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			el := fastLogin(tt.user, tt.agent, tt.token, tt.extra)
			got := el.Tag
			if got == "failure" {
				if cond := xmpp.Child(el, xmpp.NSSASL, tt.want); cond == nil {
					t.Fatalf("got %s, want %s", el.Tag+" "+strings.Join(childTags(el), ","), tt.want)
				}
				if xmpp.Child(el, nsSASL2, "text") == nil {
					t.Errorf("failure without text")
				}
				return
			}
			if got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
	// Invalidate, then it is refused.
	if el := fastLogin("alice", agentA, token, "invalidate='true'"); el.Tag != "success" {
		t.Fatalf("invalidate: %s", el.Tag)
	}
	if el := fastLogin("alice", agentA, token, ""); el.Tag != "failure" {
		t.Fatalf("after invalidate: %s", el.Tag)
	}

	// A new token; a wrong password fails with SASL's condition and
	// text; a password change ends the token.
	c3, _ := sasl2Dial(t, s)
	c3.Send(`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>%s</initial-response>
		<user-agent id='%s'/></authenticate>`, plainData("alice", "wrong"), agentA)
	f := c3.Next()
	if f.Tag != "failure" || xmpp.Child(f, xmpp.NSSASL, "not-authorized") == nil ||
		child(t, c3, f, nsSASL2, "text").Text() != "wrong username or password" {
		t.Fatalf("wrong password: %s", c3.String(f))
	}
	c3.Send(`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>%s</initial-response>
		<user-agent id='%s'/><request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/></authenticate>`,
		plainData("alice", "secret1"), agentA)
	success = c3.Next()
	if id := child(t, c3, success, nsSASL2, "authorization-identifier").Text(); id != "alice@localhost" {
		t.Fatalf("without bind: %q", id)
	}
	token = child(t, c3, success, nsFast, "token").SelectAttrValue("token", "")
	if f := c3.Next(); !parleytest.IsStream(f, "features") || xmpp.Child(f, "urn:ietf:params:xml:ns:xmpp-bind", "bind") == nil {
		t.Fatalf("features after success without bind2: %s", c3.String(f))
	}
	if el := fastLogin("alice", agentA, token, ""); el.Tag != "success" {
		t.Fatalf("new token: %s", el.Tag)
	}
	c3.Bind("laptop")
	c3.Send("<iq type='set' id='pw'><query xmlns='jabber:iq:register'><username>alice</username><password>secret3</password></query></iq>")
	if st := smNext(t, c3); st.Type != "result" {
		t.Fatalf("password change: %s", c3.String(st.El))
	}
	if el := fastLogin("alice", agentA, token, ""); el.Tag != "failure" {
		t.Fatalf("token after a password change: %s", el.Tag)
	}
}

func childTags(el *etree.Element) []string {
	var out []string
	for _, c := range el.ChildElements() {
		out = append(out, c.Tag)
	}
	return out
}

// smNext returns the next stanza, past stream management's elements.
func smNext(t *testing.T, c *parleytest.Conn) *xmpp.Stanza {
	t.Helper()
	for {
		el := c.Next()
		if xmpp.NS(el) == nsSM {
			continue
		}
		st, err := xmpp.NewStanza(el)
		if err != nil {
			t.Fatalf("not a stanza: %s", c.String(el))
		}
		return st
	}
}

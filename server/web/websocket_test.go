package web_test

import (
	"crypto/tls"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// TestWebSocketChatsWithTCP logs in over WebSocket with SCRAM, binds and
// exchanges messages with a TCP client: the same sessions, two framings.
func TestWebSocketChatsWithTCP(t *testing.T) {
	s := parleytest.Start(t)
	s.AddUser("alice@localhost", "secret-alice")
	s.AddUser("bob@localhost", "secret-bob")
	alice := s.LoginWebSocket("alice@localhost", "secret-alice", "browser")
	bob := s.Login("bob@localhost", "secret-bob", "desk")

	if alice.Features.FindElement("starttls") != nil {
		t.Errorf("STARTTLS offered over WebSocket: %s", alice.String(alice.Features))
	}
	alice.Send("<message xmlns='jabber:client' to='%s' type='chat'><body>hi from the browser</body></message>", bob.JID)
	if st := bob.NextStanza(); st.From != alice.JID || st.El.FindElement("body").Text() != "hi from the browser" {
		t.Fatalf("bob got %s", bob.String(st.El))
	}
	bob.Send("<message to='%s' type='chat'><body>a &lt; b, and ünïcode</body></message>", alice.JID)
	if st := alice.NextStanza(); st.From != bob.JID || st.El.FindElement("body").Text() != "a < b, and ünïcode" {
		t.Fatalf("alice got %s", alice.String(st.El))
	}

	// Each message is one element that declares its namespace (RFC 7395
	// §3.3.2), and the stream opened with <open/>.
	frames := alice.Conn.(*parleytest.WSConn).Frames()
	checks := map[string]bool{}
	for _, f := range frames {
		switch {
		case strings.HasPrefix(f, "<open "):
			checks["open"] = strings.Contains(f, "xmlns='"+xmpp.NSFraming+"'") && strings.Contains(f, "version='1.0'")
		case strings.HasPrefix(f, "<stream:features"):
			checks["features"] = strings.Contains(f, `xmlns:stream="`+xmpp.NSStream+`"`)
		case strings.HasPrefix(f, "<message"):
			checks["message"] = strings.HasPrefix(f, `<message xmlns="jabber:client"`) && strings.HasSuffix(f, "</message>")
		}
		var v struct{}
		if err := xml.Unmarshal([]byte(f), &v); err != nil {
			t.Errorf("frame %q is not one well-formed element: %v", f, err)
		}
	}
	for _, k := range []string{"open", "features", "message"} {
		if !checks[k] {
			t.Errorf("no well-framed %s among %q", k, frames)
		}
	}

	// A close from the client ends the stream with a <close/> of ours.
	alice.Send("<close xmlns='%s'/>", xmpp.NSFraming)
	if _, err := alice.NextErr(); !errors.Is(err, xmpp.ErrStreamClosed) {
		t.Fatalf("after <close/>: %v, want the server's <close/>", err)
	}
}

// TestWebSocketHandshake checks what is refused before a stream starts:
// a WebSocket without the xmpp subprotocol, and, with websocket_origins,
// a page of another origin.
func TestWebSocketHandshake(t *testing.T) {
	s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) {
		c.HTTP.WebSocketOrigins = []string{"chat.example.com"}
	}))
	tests := []struct {
		name   string
		opts   parleytest.WSOptions
		status int // 0: the handshake succeeds
	}{
		{"no subprotocol", parleytest.WSOptions{Subprotocols: []string{}}, http.StatusBadRequest},
		{"another subprotocol", parleytest.WSOptions{Subprotocols: []string{"mqtt"}}, http.StatusBadRequest},
		{"xmpp among others", parleytest.WSOptions{Subprotocols: []string{"mqtt", "xmpp"}}, 0},
		{"an origin not listed", parleytest.WSOptions{Origin: "https://evil.example"}, http.StatusForbidden},
		{"a listed origin", parleytest.WSOptions{Origin: "https://chat.example.com"}, 0},
		{"no origin (not a browser)", parleytest.WSOptions{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, resp, err := s.DialWebSocketWith(tt.opts)
			if tt.status != 0 {
				if err == nil || resp == nil || resp.StatusCode != tt.status {
					t.Fatalf("handshake: err %v, response %v; want HTTP %d", err, resp, tt.status)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if p := c.Conn.(*parleytest.WSConn).WS.Subprotocol(); p != "xmpp" {
				t.Fatalf("subprotocol %q, want xmpp", p)
			}
			c.Open("localhost")
		})
	}
}

// TestWebSocketAuthNeedsSecurity checks that SASL is refused over plain
// ws:// from anywhere but loopback, unless websocket_insecure. The test
// client is on loopback: a trusted proxy's X-Forwarded-For makes it
// another address.
func TestWebSocketAuthNeedsSecurity(t *testing.T) {
	tests := []struct {
		name     string
		insecure bool
		header   http.Header
		want     bool // SASL offered
	}{
		{"loopback", false, nil, true},
		{"forwarded from elsewhere over http", false, http.Header{"X-Forwarded-For": {"192.0.2.7"}}, false},
		{"forwarded from elsewhere over https", false, http.Header{"X-Forwarded-For": {"192.0.2.7"}, "X-Forwarded-Proto": {"https"}}, true},
		{"forwarded, websocket_insecure", true, http.Header{"X-Forwarded-For": {"192.0.2.7"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) {
				c.HTTP.TrustForwarded = true
				c.HTTP.WebSocketInsecure = tt.insecure
				c.C2S.RequireTLS = false // refused over plain ws:// all the same
			}))
			s.AddUser("alice@localhost", "secret-alice")
			c, _, err := s.DialWebSocketWith(parleytest.WSOptions{Header: tt.header})
			if err != nil {
				t.Fatal(err)
			}
			c.Open("localhost")
			if c.Features.FindElement("starttls") != nil {
				t.Errorf("STARTTLS offered over WebSocket (RFC 7395 §3.9: TLS is wss://): %s", c.String(c.Features))
			}
			offered := c.Features.FindElement("mechanisms") != nil
			if offered != tt.want {
				t.Fatalf("SASL offered: %v, want %v: %s", offered, tt.want, c.String(c.Features))
			}
			el := c.AuthSCRAM("SCRAM-SHA-256", "alice", "secret-alice", "n", nil)
			if got := el.Tag == "success"; got != tt.want {
				t.Fatalf("authentication: %s", c.String(el))
			}
			if !tt.want && el.FindElement("encryption-required") == nil {
				t.Fatalf("refusal: %s, want <encryption-required/>", c.String(el))
			}
		})
	}
	// Without trust_forwarded the headers say nothing about the client,
	// but a loopback peer that sends them is a proxy on the same host,
	// which may serve plain HTTP to anyone: SASL is refused, whatever
	// the headers claim.
	for _, h := range []http.Header{
		{"X-Forwarded-For": {"192.0.2.7"}},
		{"X-Forwarded-Proto": {"https"}},
		{"Forwarded": {"for=192.0.2.7;proto=https"}},
		{"X-Real-Ip": {"192.0.2.7"}},
	} {
		t.Run(fmt.Sprintf("a local proxy without trust_forwarded %v", h), func(t *testing.T) {
			s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) { c.C2S.RequireTLS = false }))
			c, _, err := s.DialWebSocketWith(parleytest.WSOptions{Header: h})
			if err != nil {
				t.Fatal(err)
			}
			c.Open("localhost")
			if c.Features.FindElement("mechanisms") != nil {
				t.Fatalf("SASL offered through an untrusted local proxy: %s", c.String(c.Features))
			}
		})
	}
}

// TestHostMeta checks XEP-0156's both forms: the WebSocket URL by the
// listener's scheme and the request's Host, websocket_url over it, CORS,
// and 404 for a name that is no served domain.
func TestHostMeta(t *testing.T) {
	plain := parleytest.Start(t)
	overridden := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) {
		c.HTTP.WebSocketURL = "wss://chat.example.com/xmpp-websocket"
	}))
	port := func(s *parleytest.Server) string { return s.HTTPURL[strings.LastIndex(s.HTTPURL, ":"):] }
	tests := []struct {
		name   string
		srv    *parleytest.Server
		host   string
		status int
		want   string
	}{
		{"served domain", plain, "localhost" + port(plain), 200, "ws://localhost" + port(plain) + "/xmpp-websocket"},
		{"served domain, no port", plain, "localhost", 200, "ws://localhost/xmpp-websocket"},
		{"websocket_url", overridden, "localhost", 200, "wss://chat.example.com/xmpp-websocket"},
		{"another name", plain, "evil.example", 404, ""},
	}
	for _, tt := range tests {
		for _, path := range []string{"/.well-known/host-meta", "/.well-known/host-meta.json"} {
			t.Run(tt.name+" "+path, func(t *testing.T) {
				req, _ := http.NewRequest("GET", tt.srv.HTTPURL+path, nil)
				req.Host = tt.host
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != tt.status {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
				}
				if tt.status != 200 {
					return
				}
				if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
					t.Errorf("Access-Control-Allow-Origin %q", got)
				}
				var links []struct{ Rel, Href string }
				if strings.HasSuffix(path, ".json") {
					var doc struct {
						Links []struct {
							Rel  string `json:"rel"`
							Href string `json:"href"`
						} `json:"links"`
					}
					if err := json.Unmarshal(body, &doc); err != nil {
						t.Fatalf("%v: %s", err, body)
					}
					for _, l := range doc.Links {
						links = append(links, struct{ Rel, Href string }{l.Rel, l.Href})
					}
				} else {
					if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/xrd+xml") {
						t.Errorf("Content-Type %q", ct)
					}
					var doc struct {
						XMLName xml.Name `xml:"http://docs.oasis-open.org/ns/xri/xrd-1.0 XRD"`
						Links   []struct {
							Rel  string `xml:"rel,attr"`
							Href string `xml:"href,attr"`
						} `xml:"Link"`
					}
					if err := xml.Unmarshal(body, &doc); err != nil {
						t.Fatalf("%v: %s", err, body)
					}
					for _, l := range doc.Links {
						links = append(links, struct{ Rel, Href string }{l.Rel, l.Href})
					}
				}
				if len(links) != 1 || links[0].Rel != "urn:xmpp:alt-connections:websocket" || links[0].Href != tt.want {
					t.Fatalf("links %+v, want the websocket at %s", links, tt.want)
				}
			})
		}
	}
}

// TestHTTPSWithSNI serves the HTTP listener over TLS with each host's
// certificate, and a client logs in over wss://, the stream secure
// without loopback's help (websocket_insecure is off and the client
// claims, through a trusted proxy header, another address).
func TestHTTPSWithSNI(t *testing.T) {
	s := parleytest.Start(t,
		parleytest.WithHost("localhost", "local"),
		parleytest.WithHost("other.example", "local"),
		parleytest.WithConfig(func(c *conf.Config) {
			c.HTTP.TLS = true
			c.HTTP.TrustForwarded = true
		}))
	if !strings.HasPrefix(s.HTTPURL, "https://") {
		t.Fatalf("HTTPURL %s", s.HTTPURL)
	}
	for _, host := range []string{"localhost", "other.example"} {
		t.Run(host, func(t *testing.T) {
			cfg := s.TLSConfig(host)
			tc, err := tls.Dial("tcp", strings.TrimPrefix(s.HTTPURL, "https://"), cfg)
			if err != nil {
				t.Fatalf("TLS to %s: %v", host, err)
			}
			cn := tc.ConnectionState().PeerCertificates[0].DNSNames
			tc.Close()
			if len(cn) == 0 || cn[0] != host {
				t.Fatalf("certificate for %v, want %s", cn, host)
			}
			s.AddUser("alice@"+host, "secret-alice")
			c, _, err := s.DialWebSocketWith(parleytest.WSOptions{TLS: cfg, Header: http.Header{"X-Forwarded-For": {"192.0.2.7"}}})
			if err != nil {
				t.Fatal(err)
			}
			c.Open(host)
			if el := c.AuthSCRAM("SCRAM-SHA-256", "alice", "secret-alice", "n", nil); el.Tag != "success" {
				t.Fatalf("authentication over wss://: %s", c.String(el))
			}
		})
	}
	req, _ := http.NewRequest("GET", s.HTTPURL+"/.well-known/host-meta.json", nil)
	req.Host = "localhost"
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: s.TLSConfig("localhost")}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"wss://`) {
		t.Fatalf("host-meta over HTTPS: %s", body)
	}
}

// TestWebSocketResume resumes over WebSocket (XEP-0198) a session whose
// WebSocket dropped: what was sent to it meanwhile arrives on the new one.
func TestWebSocketResume(t *testing.T) {
	s := parleytest.Start(t)
	s.AddUser("alice@localhost", "secret-alice")
	s.AddUser("bob@localhost", "secret-bob")
	bob := s.Login("bob@localhost", "secret-bob", "desk")
	alice := s.LoginWebSocket("alice@localhost", "secret-alice", "browser")
	alice.Send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	enabled := alice.Next()
	id := enabled.SelectAttrValue("id", "")
	if enabled.Tag != "enabled" || id == "" {
		t.Fatalf("enable: %s", alice.String(enabled))
	}
	bob.Send("<message to='%s' type='chat'><body>one</body></message>", alice.JID)
	if st := alice.NextStanza(); st.El.FindElement("body").Text() != "one" {
		t.Fatalf("alice got %s", alice.String(st.El))
	}
	_ = alice.Conn.(*parleytest.WSConn).WS.CloseNow() // the tab's network drops
	bob.Send("<message to='%s' type='chat'><body>two</body></message>", alice.JID)
	bob.Sync()

	again := s.DialWebSocket()
	again.Open("localhost")
	if el := again.AuthSCRAM("SCRAM-SHA-256", "alice", "secret-alice", "n", nil); el.Tag != "success" {
		t.Fatalf("authentication: %s", again.String(el))
	}
	again.Open("localhost")
	again.Send("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='1'/>", id)
	if el := again.Next(); el.Tag != "resumed" {
		t.Fatalf("resume: %s", again.String(el))
	}
	for {
		el := again.Next()
		if el.Tag == "message" {
			if body := el.FindElement("body"); body == nil || body.Text() != "two" {
				t.Fatalf("after resume: %s, want the message sent while detached", again.String(el))
			}
			break
		}
	}
	again.Send("<message xmlns='jabber:client' to='%s' type='chat'><body>back</body></message>", bob.JID)
	if st := bob.NextStanza(); st.El.FindElement("body").Text() != "back" {
		t.Fatalf("bob got %s", bob.String(st.El))
	}
}

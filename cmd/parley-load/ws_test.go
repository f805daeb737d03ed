package main

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-im/parley/conf"
)

// closedAddr is a TCP address nothing listens on: a run given it as -addr
// can only have talked to the server over its WebSocket.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// wsURL is the WebSocket endpoint of a parleytest server's HTTP listener.
func wsURL(httpURL string) string {
	return "ws" + strings.TrimPrefix(httpURL, "http") + "/xmpp-websocket"
}

// TestWebSocketTransport runs scenarios over XMPP over WebSocket against a
// real server, with -addr pointing nowhere so that nothing goes over c2s
// TCP.
func TestWebSocketTransport(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	tests := []struct {
		name  string
		edit  func(*conf.Config)
		args  []string
		code  int
		check func(t *testing.T, res map[string]any, out string)
	}{
		{
			name: "msg_over_ws_loses_nothing",
			args: []string{"msg", "-pairs", "2", "-window", "4", "-duration", "1s", "-create", "-pid", pid},
			check: func(t *testing.T, res map[string]any, _ string) {
				sent, delivered := num(t, res, "sent"), num(t, res, "delivered")
				if sent == 0 || delivered != sent || num(t, res, "lost") != 0 {
					t.Errorf("sent %v, delivered %v, lost %v", sent, delivered, num(t, res, "lost"))
				}
				num(t, res, "msgs_per_server_cpu_s")
			},
		},
		{
			name: "login_over_wss_binds_with_scram_plus",
			edit: func(c *conf.Config) {
				c.HTTP.TLS = true
				c.Auth.ChannelBinding = conf.ChannelBindingStrict
			},
			args: []string{"login", "-n", "3", "-create", "-mech", "SCRAM-SHA-256-PLUS"},
			check: func(t *testing.T, res map[string]any, _ string) {
				if n := num(t, res, "logins"); n != 3 || res["mech"] != "SCRAM-SHA-256-PLUS" {
					t.Errorf("logins %v with %v, want 3 with SCRAM-SHA-256-PLUS", n, res["mech"])
				}
			},
		},
		{
			name: "a_wrong_password_over_ws_fails_the_run",
			args: []string{"login", "-n", "2", "-password", "not-theirs"},
			code: 1,
			check: func(t *testing.T, res map[string]any, out string) {
				if num(t, res, "errors") != 2 || !strings.Contains(out, "auth not-authorized 2") {
					t.Errorf("errors %v, want 2 not-authorized:\n%s", num(t, res, "errors"), out)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, hook := startServer(t, tt.edit)
			if tt.code != 0 {
				for i := range 2 {
					s.AddUser("load"+strconv.Itoa(i)+"@localhost", "load-password")
				}
			}
			args := append(tt.args, "-transport", "ws", "-ws-url", wsURL(s.HTTPURL), "-addr", closedAddr(t))
			code, out, res := runTool(t, s, hook, args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d: %v", code, tt.code, res["error"])
			}
			if res["transport"] != "ws" || !strings.HasPrefix(res["server"].(string), "ws") {
				t.Errorf("transport %v, server %v: want ws and the WebSocket URL", res["transport"], res["server"])
			}
			tt.check(t, res, out)
			waitNoSessions(t, s)
		})
	}
}

func TestUnframe(t *testing.T) {
	tests := []struct {
		name, in, want string
		err            bool
	}{
		{"open_becomes_a_stream_header",
			`<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='localhost' id='x1' version='1.0' xml:lang='en'/>`,
			`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='x1' version='1.0' xml:lang='en'>`, false},
		{"close_becomes_the_closing_tag", `<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>`, `</stream:stream>`, false},
		{"a_stanza_stays_as_it_is", `<message to='a@b'><body>open</body></message>`, `<message to='a@b'><body>open</body></message>`, false},
		{"an_element_that_only_starts_with_open_is_a_stanza", `<opened/>`, `<opened/>`, false},
		{"open_in_another_namespace_is_an_error", `<open xmlns='jabber:client'/>`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := unframe([]byte(tt.in))
			if (err != nil) != tt.err {
				t.Fatalf("error %v, want error %v", err, tt.err)
			}
			if !tt.err && string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

package server_test

import (
	"crypto/tls"
	"encoding/base64"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
)

// TestSASLAsClientsDoIt replays, as raw SASL exchanges over TCP, what the
// clients people run send (measured with each: issue #11), on the default
// channel binding policy ("compatible") and on "strict".
func TestSASLAsClientsDoIt(t *testing.T) {
	exporter := func(c *parleytest.Conn) []byte {
		cs := c.Conn.(*tls.Conn).ConnectionState()
		b, err := cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name      string
		strict    bool
		mechanism string
		flag      string
		cb        func(*parleytest.Conn) []byte
		want      string // success, or the failure condition
		text      string // in the failure's text
	}{
		{
			name:      "slixmpp's default picks the best offered, SCRAM-SHA-256 with y, and logs in",
			mechanism: "SCRAM-SHA-256", flag: "y", want: "success",
		},
		{
			name:      "slixmpp forced to SCRAM-SHA-1 sends y and logs in",
			mechanism: "SCRAM-SHA-1", flag: "y", want: "success",
		},
		{
			name:      "a client that cannot bind sends n and logs in",
			mechanism: "SCRAM-SHA-256", flag: "n", want: "success",
		},
		{
			name:      "-PLUS is not offered by default, and asking for it says what is",
			mechanism: "SCRAM-SHA-256-PLUS", flag: "p=tls-exporter", cb: exporter,
			want: "invalid-mechanism", text: "SCRAM-SHA-256, SCRAM-SHA-1, PLAIN",
		},
		{
			name: "strict: -PLUS with tls-exporter logs in (mellium, Conversations, Gajim, Dino)", strict: true,
			mechanism: "SCRAM-SHA-256-PLUS", flag: "p=tls-exporter", cb: exporter, want: "success",
		},
		{
			name: "strict: SCRAM-SHA-1-PLUS with tls-exporter logs in", strict: true,
			mechanism: "SCRAM-SHA-1-PLUS", flag: "p=tls-exporter", cb: exporter, want: "success",
		},
		{
			name: "strict: slixmpp's tls-unique on TLS 1.3 is refused and told what is offered", strict: true,
			mechanism: "SCRAM-SHA-256-PLUS", flag: "p=tls-unique", cb: func(*parleytest.Conn) []byte { return []byte("finished") },
			want: "not-authorized", text: "tls-unique is not offered on this stream; offered: tls-exporter, tls-server-end-point",
		},
		{
			name: "strict: y where -PLUS is offered is refused as a downgrade", strict: true,
			mechanism: "SCRAM-SHA-256", flag: "y", want: "not-authorized", text: "pick a -PLUS mechanism",
		},
		{
			name: "strict: another connection's tls-exporter is refused", strict: true,
			mechanism: "SCRAM-SHA-256-PLUS", flag: "p=tls-exporter", cb: func(*parleytest.Conn) []byte { return make([]byte, 32) },
			want: "not-authorized", text: "channel binding does not match",
		},
		{
			name: "strict: n still logs in", strict: true,
			mechanism: "SCRAM-SHA-256", flag: "n", want: "success",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) {
				if tc.strict {
					c.Auth.ChannelBinding = conf.ChannelBindingStrict
				}
			}))
			s.AddUser("alice@localhost", "secret")
			c := s.DialSecure("localhost")
			var cb []byte
			if tc.cb != nil {
				cb = tc.cb(c)
			}
			el := c.AuthSCRAM(tc.mechanism, "alice", "secret", tc.flag, cb)
			if got := outcome(el); got != tc.want {
				t.Fatalf("got %s, want %s", c.String(el), tc.want)
			}
			if text := el.SelectElement("text"); tc.text != "" && (text == nil || !strings.Contains(text.Text(), tc.text)) {
				t.Errorf("failure %s: want a text with %q", c.String(el), tc.text)
			}
			if tc.want != "success" {
				// The stream stays open for another attempt (RFC 6120 §6.4.5).
				if el := c.AuthPlain("alice", "secret"); el.Tag != "success" {
					t.Fatalf("after the failure, PLAIN got %s", c.String(el))
				}
			}
		})
	}
}

// TestSASLFeatures: what each policy lists, which is what the clients
// choose from.
func TestSASLFeatures(t *testing.T) {
	for _, tc := range []struct {
		policy   string
		mechs    []string
		bindings []string
	}{
		{policy: conf.ChannelBindingCompatible, mechs: []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"}},
		{
			policy:   conf.ChannelBindingStrict,
			mechs:    []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"},
			bindings: []string{"tls-exporter", "tls-server-end-point"},
		},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) { c.Auth.ChannelBinding = tc.policy }))
			c := s.DialSecure("localhost")
			var mechs, bindings []string
			for _, m := range c.Features.FindElements("mechanisms/mechanism") {
				mechs = append(mechs, m.Text())
			}
			for _, b := range c.Features.FindElements("sasl-channel-binding/channel-binding") {
				bindings = append(bindings, b.SelectAttrValue("type", ""))
			}
			if !slices.Equal(mechs, tc.mechs) || !slices.Equal(bindings, tc.bindings) {
				t.Errorf("mechanisms %q, channel bindings %q; want %q, %q", mechs, bindings, tc.mechs, tc.bindings)
			}
		})
	}
}

// outcome is "success", or the condition of a <failure/>.
func outcome(el *etree.Element) string {
	if el.Tag == "failure" {
		for _, c := range el.ChildElements() {
			if c.Tag != "text" {
				return c.Tag
			}
		}
	}
	return el.Tag
}

// TestUnknownUserSaltSurvivesRestart: the fake salt of a name with no
// account is the same after a restart, as a real account's is (the secret
// is kept in the data directory), and its iteration count is one the
// accounts have, not the configured one they predate.
func TestUnknownUserSaltSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	serverFirst := func(iterations int) (salt, iters string) {
		s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) {
			c.DataDir = dir
			c.Database = filepath.Join(dir, "parley.db")
			c.Auth.SCRAMIterations = iterations
		}))
		if iterations == 4096 {
			s.AddUser("alice@localhost", "secret") // keys of 4096 iterations
		}
		c := s.DialSecure("localhost")
		first := base64.StdEncoding.EncodeToString([]byte("n,,n=nobody,r=abcdef"))
		c.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>%s</auth>", first)
		el := c.Next()
		msg, err := base64.StdEncoding.DecodeString(el.Text())
		if el.Tag != "challenge" || err != nil {
			t.Fatalf("got %s", c.String(el))
		}
		for _, a := range strings.Split(string(msg), ",") {
			switch {
			case strings.HasPrefix(a, "s="):
				salt = a[2:]
			case strings.HasPrefix(a, "i="):
				iters = a[2:]
			}
		}
		if err := s.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		return salt, iters
	}
	salt1, it1 := serverFirst(4096)
	salt2, it2 := serverFirst(20000) // scram_iterations raised since alice's account
	if salt1 != salt2 {
		t.Errorf("the unknown user's salt changed at restart: %s, then %s", salt1, salt2)
	}
	if it1 != "4096" || it2 != "4096" {
		t.Errorf("the unknown user's iteration counts: %s, then %s; want 4096, the count alice's keys have", it1, it2)
	}
}

package extdisco_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/server/mod/extdisco"
	"github.com/parley-im/parley/xmpp"
)

const (
	secret = "0123456789abcdef-turn-secret"
	ttl    = 2 * time.Hour
)

// services are the test host's: a STUN server, TURN with turn_secret over
// UDP and TLS, and a relay with static credentials.
var services = []local.ExternalService{
	{Type: "stun", Host: "stun.example.net"},
	{Type: "turn", Host: "turn.example.net", Name: "Relay"},
	{Type: "turns", Host: "turn.example.net"},
	{Type: "turn", Host: "192.0.2.7", Port: 3479, Transport: "tcp", Username: "static-user", Password: "static-pass"},
}

// start starts a server whose host localhost has the services above, and
// a second local host, other.localhost, whose users are not localhost's.
func start(t *testing.T) *parleytest.Server {
	t.Helper()
	return parleytest.Start(t, parleytest.WithHost("localhost", ""), parleytest.WithHost("other.localhost", ""),
		parleytest.WithConfig(func(c *conf.Config) {
			o := local.LocalOptionsOf(&c.Hosts[0])
			o.ExternalServices = slices.Clone(services)
			o.TURNSecret = secret
			o.TURNTTL = conf.Duration{Duration: ttl}
		}))
}

// xmlOf is st as XML, for a failure message.
func xmlOf(st *xmpp.Stanza) string { return string(local.Serialize(st.El)) }

// describe is one <service/> of an answer, as "type host port transport".
func describe(attrs map[string]string) string {
	return attrs["type"] + " " + attrs["host"] + " " + attrs["port"] + " " + attrs["transport"]
}

// answerServices returns the attributes of each <service/> of the answer
// st, whose payload must be <local xmlns=extdisco/>.
func answerServices(t *testing.T, st *xmpp.Stanza, local string) []map[string]string {
	t.Helper()
	p := st.Payload()
	if p == nil || p.Tag != local || xmpp.NS(p) != extdisco.NS {
		t.Fatalf("answer has no <%s xmlns='%s'/>: %s", local, extdisco.NS, xmlOf(st))
	}
	var out []map[string]string
	for _, s := range p.ChildElements() {
		a := map[string]string{}
		for _, at := range s.Attr {
			a[at.Key] = at.Value
		}
		out = append(out, a)
	}
	return out
}

// checkCredentials checks the credentials of one service of an answer
// asked for by user at asked: static ones as configured, TURN ones as
// coturn's use-auth-secret computes them, valid for about ttl.
func checkCredentials(t *testing.T, s map[string]string, user string, asked time.Time) {
	t.Helper()
	switch {
	case s["type"] == "stun":
		if s["username"] != "" || s["password"] != "" || s["restricted"] != "" {
			t.Errorf("%s: STUN service with credentials or restricted: %v", describe(s), s)
		}
	case s["host"] == "192.0.2.7":
		if s["username"] != "static-user" || s["password"] != "static-pass" || s["restricted"] != "true" || s["expires"] != "" {
			t.Errorf("%s: static credentials %v", describe(s), s)
		}
	default:
		exp, name, ok := strings.Cut(s["username"], ":")
		if !ok || name != user {
			t.Fatalf("%s: username %q; want <expiry>:%s", describe(s), s["username"], user)
		}
		unix, err := strconv.ParseInt(exp, 10, 64)
		if err != nil {
			t.Fatalf("%s: username %q: expiry %v", describe(s), s["username"], err)
		}
		if want := asked.Add(ttl).Unix(); unix < want-60 || unix > want+60 {
			t.Errorf("%s: expires at %d; want about now + %v = %d", describe(s), unix, ttl, want)
		}
		if want := time.Unix(unix, 0).UTC().Format("2006-01-02T15:04:05Z"); s["expires"] != want {
			t.Errorf("%s: expires=%q; want %q, the username's expiry", describe(s), s["expires"], want)
		}
		mac := hmac.New(sha1.New, []byte(secret))
		mac.Write([]byte(s["username"]))
		if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); s["password"] != want {
			t.Errorf("%s: password %q; want base64(HMAC-SHA1(secret, username)) = %q", describe(s), s["password"], want)
		}
		if s["restricted"] != "true" {
			t.Errorf("%s: restricted=%q; want true", describe(s), s["restricted"])
		}
	}
}

// TestServices: XEP-0215 §3.1 and §3.2, all services or those of a type,
// each with its defaults filled in and its credentials.
func TestServices(t *testing.T) {
	s := start(t)
	s.AddUser("alice@localhost", "a")
	alice := s.Login("alice@localhost", "a", "phone")
	tests := []struct {
		typ  string
		want []string
	}{
		{"", []string{"stun stun.example.net 3478 udp", "turn turn.example.net 3478 udp", "turns turn.example.net 5349 tcp", "turn 192.0.2.7 3479 tcp"}},
		{"turn", []string{"turn turn.example.net 3478 udp", "turn 192.0.2.7 3479 tcp"}},
		{"turns", []string{"turns turn.example.net 5349 tcp"}},
		{"stun", []string{"stun stun.example.net 3478 udp"}},
		{"ftp", nil}, // a type the host has none of: an empty list
	}
	for _, tt := range tests {
		t.Run("type "+tt.typ, func(t *testing.T) {
			payload := "<services xmlns='" + extdisco.NS + "'/>"
			if tt.typ != "" {
				payload = "<services xmlns='" + extdisco.NS + "' type='" + tt.typ + "'/>"
			}
			asked := time.Now()
			st := alice.IQ("get", "localhost", payload)
			alice.ExpectResult(st, "services")
			if got := st.Payload().SelectAttrValue("type", ""); got != tt.typ {
				t.Errorf("<services type=%q>; want %q, as asked", got, tt.typ)
			}
			var got []string
			for _, sv := range answerServices(t, st, "services") {
				got = append(got, describe(sv))
				checkCredentials(t, sv, "alice@localhost", asked)
				if sv["host"] == "turn.example.net" && sv["type"] == "turn" && sv["name"] != "Relay" {
					t.Errorf("name=%q; want Relay", sv["name"])
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("services %q; want %q", got, tt.want)
			}
		})
	}
}

// TestCredentials: XEP-0215 §3.3, credentials for the services named by
// type and host (and port), an error for a service without them.
func TestCredentials(t *testing.T) {
	s := start(t)
	s.AddUser("alice@localhost", "a")
	alice := s.Login("alice@localhost", "a", "phone")
	tests := []struct {
		name, ask string
		want      []string
		err       xmpp.StanzaCondition
	}{
		{"turn by type and host", "<service type='turn' host='turn.example.net'/>", []string{"turn turn.example.net 3478 udp"}, ""},
		{"turns by port", "<service type='turns' host='turn.example.net' port='5349'/>", []string{"turns turn.example.net 5349 tcp"}, ""},
		{"static credentials", "<service type='turn' host='192.0.2.7'/>", []string{"turn 192.0.2.7 3479 tcp"}, ""},
		{"two at once", "<service type='turn' host='turn.example.net'/><service type='turns' host='turn.example.net'/>",
			[]string{"turn turn.example.net 3478 udp", "turns turn.example.net 5349 tcp"}, ""},
		{"the wrong port", "<service type='turn' host='turn.example.net' port='1'/>", nil, xmpp.ItemNotFound},
		{"a service that needs none", "<service type='stun' host='stun.example.net'/>", nil, xmpp.ItemNotFound},
		{"an unknown host", "<service type='turn' host='turn.example.org'/>", nil, xmpp.ItemNotFound},
		{"no host", "<service type='turn'/>", nil, xmpp.BadRequest},
		{"no type", "<service host='turn.example.net'/>", nil, xmpp.BadRequest},
		{"no service", "", nil, xmpp.BadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			asked := time.Now()
			st := alice.IQ("get", "localhost", "<credentials xmlns='"+extdisco.NS+"'>"+tt.ask+"</credentials>")
			if tt.err != "" {
				alice.ExpectError(st, tt.err, "credentials")
				return
			}
			alice.ExpectResult(st, "credentials")
			var got []string
			for _, sv := range answerServices(t, st, "credentials") {
				got = append(got, describe(sv))
				checkCredentials(t, sv, "alice@localhost", asked)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("credentials for %q; want %q", got, tt.want)
			}
		})
	}
}

// TestOnlyUsers: the services and credentials are the host's users':
// a user of another host of the same server is refused (§2: forbidden).
func TestOnlyUsers(t *testing.T) {
	s := start(t)
	s.AddUser("alice@localhost", "a")
	s.AddUser("bob@other.localhost", "b")
	bob := s.Login("bob@other.localhost", "b", "desk")
	for _, payload := range []string{
		"<services xmlns='" + extdisco.NS + "'/>",
		"<credentials xmlns='" + extdisco.NS + "'><service type='turn' host='turn.example.net'/></credentials>",
	} {
		st := bob.IQ("get", "localhost", payload)
		bob.ExpectError(st, xmpp.Forbidden, "bob@other.localhost asking localhost "+payload)
		if strings.Contains(bob.String(st.El), "password") {
			t.Errorf("the refusal carries credentials: %s", bob.String(st.El))
		}
	}
	// bob's own host has no services: the protocol is not offered there.
	bob.ExpectError(bob.IQ("get", "other.localhost", "<services xmlns='"+extdisco.NS+"'/>"),
		xmpp.ServiceUnavailable, "services of a host without any")
}

// TestNoServicesNoFeature: a host without external services does not
// list urn:xmpp:extdisco:2, and answers its iqs <service-unavailable/>
// (XEP-0215 §2, for an entity that does not support the protocol); one
// with services lists it.
func TestNoServicesNoFeature(t *testing.T) {
	s := start(t)
	s.AddUser("alice@localhost", "a")
	s.AddUser("bob@other.localhost", "b")
	for _, tt := range []struct {
		user, host string
		want       bool
	}{
		{"alice@localhost", "localhost", true},
		{"bob@other.localhost", "other.localhost", false},
	} {
		c := s.Login(tt.user, tt.user[:1], "x")
		st := c.IQ("get", tt.host, "<query xmlns='"+xmpp.NSDiscoInfo+"'/>")
		c.ExpectResult(st, "disco#info")
		listed := false
		for _, f := range st.Payload().SelectElements("feature") {
			listed = listed || f.SelectAttrValue("var", "") == extdisco.NS
		}
		if listed != tt.want {
			t.Errorf("%s lists %s: %v; want %v", tt.host, extdisco.NS, listed, tt.want)
		}
		if !tt.want {
			c.ExpectError(c.IQ("get", tt.host, "<services xmlns='"+extdisco.NS+"'/>"), xmpp.ServiceUnavailable, "services")
		}
	}
}

// TestConfig: the checks of [[host.external_service]], turn_secret and
// turn_ttl, each mistake with its line, and turn_secret's value in none.
func TestConfig(t *testing.T) {
	const weak = "tooShortSecret"
	tests := []struct {
		name, src, wantErr string
	}{
		{"a full service", "[[host.external_service]]\ntype = \"turns\"\nhost = \"turn.example.com\"\nport = 443\ntransport = \"tcp\"\nname = \"TURN\"\nrestricted = true\nusername = \"u\"\npassword = \"p\"\n", ""},
		{"turn with a secret", "turn_secret = \"" + secret + "\"\nturn_ttl = \"1h\"\n[[host.external_service]]\ntype = \"turn\"\nhost = \"2001:db8::1\"\n", ""},
		{"no type", "[[host.external_service]]\nhost = \"stun.example.com\"\n", "parley.toml:3: host[0].external_service[0].type: an external service needs a type"},
		{"an unknown type", "[[host.external_service]]\ntype = \"ftp\"\nhost = \"a.example\"\n", `parley.toml:4: host[0].external_service[0].type: "ftp" is not a service type`},
		{"no host", "[[host.external_service]]\ntype = \"stun\"\n", "parley.toml:3: host[0].external_service[0].host: an external service needs a host"},
		{"a host with a port", "[[host.external_service]]\ntype = \"stun\"\nhost = \"stun.example.com:3478\"\n", `parley.toml:5: host[0].external_service[0].host: "stun.example.com:3478" is not a domain name`},
		{"a port too large", "[[host.external_service]]\ntype = \"stun\"\nhost = \"s.example\"\nport = 70000\n", "parley.toml:6: host[0].external_service[0].port: 70000 is not a port"},
		{"an unknown transport", "[[host.external_service]]\ntype = \"stun\"\nhost = \"s.example\"\ntransport = \"sctp\"\n", `parley.toml:6: host[0].external_service[0].transport: "sctp" is not a transport`},
		{"a username alone", "[[host.external_service]]\ntype = \"turn\"\nhost = \"t.example\"\nusername = \"u\"\n", "parley.toml:6: host[0].external_service[0].username: username and password go together"},
		{"restricted without credentials", "[[host.external_service]]\ntype = \"turn\"\nhost = \"t.example\"\nrestricted = true\n", "parley.toml:6: host[0].external_service[0].restricted: a restricted service needs credentials"},
		{"a short turn_secret", "turn_secret = \"" + weak + "\"\n[[host.external_service]]\ntype = \"turn\"\nhost = \"t.example\"\n", "parley.toml:3: host[0].turn_secret: the secret is 14 characters long"},
		{"turn_secret without a turn service", "turn_secret = \"" + secret + "\"\n[[host.external_service]]\ntype = \"stun\"\nhost = \"s.example\"\n", `parley.toml:3: host[0].turn_secret: no [[host.external_service]] has type "turn"`},
		{"a turn_ttl too short", "turn_ttl = \"10s\"\n", "parley.toml:3: host[0].turn_ttl: 10s is too short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := conf.Parse("parley.toml", []byte("[[host]]\nname = \"localhost\"\n"+tt.src))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if o := local.LocalOptionsOf(&c.Hosts[0]); o.TURNTTL.Duration == 0 {
					t.Error("turn_ttl left 0")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v\nwant %q", err, tt.wantErr)
			}
			for _, s := range []string{weak, secret} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("the error shows turn_secret: %v", err)
				}
			}
		})
	}
	c, err := conf.Parse("parley.toml", []byte("[[host]]\nname = \"localhost\"\n[[host.external_service]]\ntype = \"turns\"\nhost = \"t.example\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := local.LocalOptionsOf(&c.Hosts[0])
	if s := got.ExternalServices[0]; s.Port != 5349 || s.Transport != "tcp" || got.TURNTTL.Duration != 24*time.Hour {
		t.Errorf("defaults: %+v, turn_ttl %v; want port 5349, tcp, 24h", s, got.TURNTTL)
	}
}

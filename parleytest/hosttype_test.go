package parleytest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/server"
	"github.com/parley-im/parley/xmpp"
)

// The toy host type "echo-toy" is registered from here, outside server/
// and conf/, the way a host type's package registers itself: a domain
// that answers a ping and echoes a message's body after a prefix of its
// own option. It proves that a host type needs no edit to server/ or
// conf/ (issue #12): its options are decoded and checked with lines, its
// hosts routed to, its HTTP route and metrics served and its drain run.

const toyType = "echo-toy"

// toyOptions are the toy's keys in its [[host]] table.
type toyOptions struct {
	// Prefix goes before the echoed body. Default "echo: ".
	Prefix string `toml:"prefix"`
}

// toyHost is the handler of one echo-toy host.
type toyHost struct {
	router  *server.Router
	prefix  string
	echoed  atomic.Int64
	drained atomic.Bool
}

func init() {
	conf.RegisterHostType(toyType, conf.HostType[toyOptions]{Check: func(c *conf.HostCheck, o *toyOptions) {
		if o.Prefix == "" && !c.IsSet("prefix") {
			o.Prefix = "echo: "
		}
		if strings.TrimSpace(o.Prefix) == "" {
			c.Errorf("prefix", "%q is blank; write a few words, or leave prefix out for \"echo: \"", o.Prefix)
		}
	}})
	server.RegisterHostType(toyType, server.HostType{
		New: func(env *server.HostEnv) (server.Handler, error) {
			return &toyHost{router: env.Router, prefix: env.Host.Options.(*toyOptions).Prefix}, nil
		},
		Routes: func(mux *http.ServeMux, _ *server.HTTPAPI, hosts map[string]server.Handler) {
			mux.HandleFunc("GET /toy/{host}", func(w http.ResponseWriter, r *http.Request) {
				h, ok := hosts[r.PathValue("host")]
				if !ok {
					http.NotFound(w, r)
					return
				}
				fmt.Fprintf(w, "%d echoed", h.(*toyHost).echoed.Load())
			})
		},
		Metrics: func(w io.Writer, hosts map[string]server.Handler) {
			for name, h := range hosts {
				fmt.Fprintf(w, "toy_echoed_total{host=%q} %d\n", name, h.(*toyHost).echoed.Load())
			}
		},
	})
}

// HandleStanza answers pings and echoes messages; anything else gets
// service-unavailable.
func (h *toyHost) HandleStanza(st *xmpp.Stanza) {
	switch {
	case st.Kind == xmpp.KindIQ && st.Type == "get" && xmpp.Child(st.El, xmpp.NSPing, "ping") != nil:
		h.router.Route(st.Result(nil))
	case st.Kind == xmpp.KindMessage && st.Type != "error":
		body := st.El.FindElement("body")
		if body == nil {
			return
		}
		reply := etree.NewElement("message")
		reply.CreateAttr("type", st.Type)
		reply.CreateElement("body").SetText(h.prefix + body.Text())
		out, err := xmpp.NewStanza(reply)
		if err != nil {
			return
		}
		out.SetFrom(st.To)
		out.SetTo(st.From)
		h.echoed.Add(1)
		h.router.Route(out)
	default:
		h.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, "the toy answers pings and messages"))
	}
}

// Close records the drain at shutdown.
func (h *toyHost) Close(context.Context) error {
	h.drained.Store(true)
	return nil
}

// toyConfig is a config file with an echo-toy host; prefix is its line.
func toyConfig(prefix string) string {
	return "[[host]]\nname = \"localhost\"\n\n[[host]]\nname = \"toy.localhost\"\ntype = \"echo-toy\"\n" + prefix + "\n"
}

func TestToyHostTypeOptionsAreCheckedWithLines(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"a blank prefix is the toy's own check", toyConfig(`prefix = " "`),
			`toy.toml:7: host[1].prefix: " " is blank; write a few words, or leave prefix out for "echo: "`},
		{"a number where the toy wants a string is conf's", toyConfig(`prefix = 5`),
			`toy.toml:7: host[1].prefix: want a string in double quotes, not the number 5`},
		{"a key the toy does not have lists its keys", toyConfig(`prefx = "x"`),
			`toy.toml:7: host[1].prefx: unknown key; known keys of [[host]] are name, type, tls_cert, tls_key, prefix; did you mean prefix?`},
		{"the toy's key on a local host names the toy", "[[host]]\nname = \"localhost\"\nprefix = \"x\"\n",
			`toy.toml:3: host[0].prefix: only for type = "echo-toy"; this host has type = "local"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := conf.Parse("toy.toml", []byte(tt.src))
			var errs conf.Errors
			if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Error() != tt.want {
				t.Fatalf("Parse: %v\nwant the one problem %s", err, tt.want)
			}
		})
	}
	_, err := conf.Parse("toy.toml", []byte("[[host]]\nname = \"localhost\"\ntype = \"echo\"\n"))
	if err == nil || !strings.Contains(err.Error(), "echo-toy") {
		t.Errorf("an unknown type: %v; want the registered types listed, echo-toy among them", err)
	}
}

func TestToyHostTypeEndToEnd(t *testing.T) {
	file, err := conf.Parse("toy.toml", []byte(toyConfig(`prefix = "toy says: "`)))
	if err != nil {
		t.Fatal(err)
	}
	var toyHostConf conf.Host
	for _, h := range file.Hosts {
		if h.Type == toyType {
			toyHostConf = h
		}
	}
	s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) {
		c.Hosts = append(c.Hosts, toyHostConf)
	}))
	s.AddUser("alice@localhost", "pw")
	c := s.Login("alice@localhost", "pw", "phone")

	c.Send(`<iq type='get' id='p1' to='toy.localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if st := c.NextStanza(); st.Kind != xmpp.KindIQ || st.Type != "result" || st.ID != "p1" || st.From.String() != "toy.localhost" {
		t.Errorf("ping answered with %s; want a result from toy.localhost", c.String(st.El))
	}

	c.Send(`<message type='chat' to='anyone@toy.localhost' id='m1'><body>hello</body></message>`)
	st := c.NextStanza()
	if body := st.El.FindElement("body"); st.Kind != xmpp.KindMessage || body == nil || body.Text() != "toy says: hello" ||
		st.From.String() != "anyone@toy.localhost" {
		t.Errorf("message answered with %s; want the body after the prefix of the host's options", c.String(st.El))
	}

	c.Send(`<iq type='set' id='q1' to='toy.localhost'><query xmlns='jabber:iq:version'/></iq>`)
	if st := c.NextStanza(); st.Type != "error" || st.ID != "q1" {
		t.Errorf("an iq the toy does not answer: %s; want an error", c.String(st.El))
	}

	for path, want := range map[string]string{"/toy/toy.localhost": "1 echoed", "/metrics": `toy_echoed_total{host="toy.localhost"} 1`} {
		resp, err := http.Get(s.HTTPURL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d %q; want %q", path, resp.StatusCode, b, want)
		}
	}

	h, ok := s.HostHandler("toy.localhost")
	if !ok {
		t.Fatal("no handler for toy.localhost")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !h.(*toyHost).drained.Load() {
		t.Error("shutdown did not drain the toy host")
	}
}

package conf_test

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/components/webhook"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/server/local"
	_ "github.com/parley-im/parley/server/std"
)

func TestValidateFillsInAGoBuiltConfig(t *testing.T) {
	c := conf.New()
	c.Hosts = []conf.Host{
		{Name: "Example.COM"},
		{Name: "bots.example.com", Type: webhook.HostType, Options: &webhook.Options{PostURL: "http://127.0.0.1:1/hook"}},
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []conf.Host{
		{Name: "example.com", Type: local.HostLocal, Options: &local.LocalOptions{Registration: local.RegistrationClosed, TURNTTL: conf.Duration{Duration: 24 * time.Hour},
			Archive: true, ArchiveExpiresAfter: "1w", ArchiveDefault: "always", ArchiveMaxPage: 100, PushMaxPerMinute: 10, PushMaxDevices: 5}},
		{
			Name: "bots.example.com", Type: webhook.HostType, Options: &webhook.Options{PostURL: "http://127.0.0.1:1/hook",
				PostStanzas: []string{"message"}, Timeout: conf.Duration{10 * time.Second},
				Concurrency: 16, Queue: 1000, QueueBytes: 16 * conf.MiB, SenderQueue: 125, SenderQueueBytes: 2 * conf.MiB, Retries: 0,
				APIRate: 20, APIBurst: 200, Nick: "bots", ReplyTo: "mentions", RejoinAfter: conf.Duration{2 * time.Second}},
		},
	}
	if !reflect.DeepEqual(c.Hosts, want) {
		t.Errorf("hosts = %+v\nwant %+v", c.Hosts, want)
	}
}

func TestValidateFillsZeroTopLevelFields(t *testing.T) {
	c := &conf.Config{Hosts: []conf.Host{{Name: "example.com"}}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	n := conf.New()
	if c.DataDir != n.DataDir || c.LogLevel != n.LogLevel || c.Auth.SCRAMIterations != n.Auth.SCRAMIterations {
		t.Errorf("data_dir %q, log_level %q, scram_iterations %d; want the defaults", c.DataDir, c.LogLevel, c.Auth.SCRAMIterations)
	}
	if c.Limits.Rate != 0 {
		t.Errorf("rate = %v; a zero rate means unlimited and must stay 0", c.Limits.Rate)
	}
	l := n.Limits
	l.Rate = 0
	if c.Limits != l {
		t.Errorf("limits = %+v\nwant %+v", c.Limits, l)
	}
}

func TestValidateReportsWithoutLines(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *conf.Config)
		key    string
		want   string
	}{
		{
			name:   "no host asks for one",
			change: func(c *conf.Config) { c.Hosts = nil },
			key:    "host", want: "add a [[host]]",
		},
		{
			name:   "a bad log level lists the levels",
			change: func(c *conf.Config) { c.LogLevel = "loud" },
			key:    "log_level", want: "use debug, info, warn or error",
		},
		{
			name:   "a bad listen address asks for host:port",
			change: func(c *conf.Config) { c.C2S.Listen = []string{"localhost"} },
			key:    "c2s.listen[0]", want: "is not host:port",
		},
		{
			name:   "a bad host type lists the types",
			change: func(c *conf.Config) { c.Hosts[0].Type = "bot" },
			key:    "host[0].type", want: "use one of local, component, http_component, upload, muc",
		},
		{
			name:   "a webhook field on a local host names its type",
			change: func(c *conf.Config) { webhook.OptionsOf(&c.Hosts[0]).Rooms = []string{"a@b.example"} },
			key:    "host[0].rooms", want: `only for type = "http_component"`,
		},
		{
			name: "a missing post_url names the host",
			change: func(c *conf.Config) {
				c.Hosts[0] = conf.Host{Name: "bots.example.com", Type: webhook.HostType}
			},
			key: "host[0] (bots.example.com)", want: "post_url is required",
		},
		{
			name: "negative retries give the range",
			change: func(c *conf.Config) {
				c.Hosts[0] = conf.Host{Name: "bots.example.com", Type: webhook.HostType, Options: &webhook.Options{PostURL: "https://h.example/", Retries: -1}}
			},
			key: "host[0].retries", want: "use 0 to 10",
		},
		{
			name:   "a negative rate is refused",
			change: func(c *conf.Config) { c.Limits.Rate = -1 },
			key:    "limits.rate", want: "negative",
		},
		{
			name:   "a low iteration count gives the minimum",
			change: func(c *conf.Config) { c.Auth.SCRAMIterations = 100 },
			key:    "auth.scram_iterations", want: "use at least 4096",
		},
		{
			name:   "a duplicate host has no line to point at",
			change: func(c *conf.Config) { c.Hosts = append(c.Hosts, conf.Host{Name: "EXAMPLE.COM"}) },
			key:    "host[1].name", want: `"example.com" is already the name of host[0]; each`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := conf.New()
			c.Hosts = []conf.Host{{Name: "example.com"}}
			tt.change(c)
			err := c.Validate()
			var errs conf.Errors
			if !errors.As(err, &errs) || len(errs) != 1 {
				t.Fatalf("Validate() = %v; want one problem", err)
			}
			e := errs[0]
			if e.Line != 0 || e.File != "" || e.Key != tt.key || !strings.Contains(e.Msg, tt.want) {
				t.Errorf("got %#v; want key %q, no file or line, and a message containing %q", e, tt.key, tt.want)
			}
			if !strings.HasPrefix(e.Error(), tt.key+": ") {
				t.Errorf("Error() = %q; want it to start with the key", e.Error())
			}
		})
	}
}

func TestValidateAgainChangesNothing(t *testing.T) {
	for _, path := range []string{"../testdata/conf/full.toml", "default.toml"} {
		t.Run(filepath.Base(path)+" validates again unchanged", func(t *testing.T) {
			c, err := conf.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			before := *c
			before.Hosts = append([]conf.Host(nil), c.Hosts...)
			for i, h := range before.Hosts {
				// A copy of the options, which are a pointer.
				o := reflect.New(reflect.TypeOf(h.Options).Elem())
				o.Elem().Set(reflect.ValueOf(h.Options).Elem())
				before.Hosts[i].Options = o.Interface()
			}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*c, before) {
				t.Errorf("Validate changed the config:\n%+v\nwas\n%+v", *c, before)
			}
		})
	}
}

func TestConfigHelpers(t *testing.T) {
	c := conf.New()
	c.Hosts = []conf.Host{
		{Name: "example.com"},
		{Name: "bots.example.com", Type: webhook.HostType, Options: &webhook.Options{PostURL: "https://h.example/", PostStanzas: []string{"message", "iq"}}},
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		got  any
		want any
	}{
		{name: "the database is in data_dir by default", got: c.DatabasePath(), want: filepath.Join("data", "parley.db")},
		{name: "an in-memory database passes through", got: (&conf.Config{DataDir: "d", Database: ":memory:"}).DatabasePath(), want: ":memory:"},
		{name: "a database path is used as given", got: (&conf.Config{DataDir: "d", Database: "/x/p.db"}).DatabasePath(), want: "/x/p.db"},
		{name: "a host is found whatever its case", got: hostName(c.Host("BOTS.example.com")), want: "bots.example.com"},
		{name: "an unknown host is not found", got: hostName(c.Host("other.example")), want: ""},
		{name: "a listed kind is posted", got: webhook.OptionsOf(&c.Hosts[1]).Posts("iq"), want: true},
		{name: "an unlisted kind is not posted", got: webhook.OptionsOf(&c.Hosts[1]).Posts("presence"), want: false},
		// A local host has no webhook options to post with: OptionsOf
		// does not give a host of another type webhook options.
		{name: "a local host has no webhook options", got: webhook.OptionsOf(&c.Hosts[0]) == nil, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v; want %v", tt.got, tt.want)
			}
		})
	}
	h, _ := c.Host("example.com")
	h.TLSCert = "changed"
	if c.Hosts[0].TLSCert != "changed" {
		t.Errorf("Host does not return a pointer into Hosts")
	}
}

func hostName(h *conf.Host, ok bool) string {
	if !ok {
		return ""
	}
	return h.Name
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		name string
		err  conf.Error
		want string
	}{
		{name: "file, line and key", err: conf.Error{File: "p.toml", Line: 3, Key: "log_level", Msg: "m"}, want: "p.toml:3: log_level: m"},
		{name: "no line", err: conf.Error{File: "p.toml", Key: "log_level", Msg: "m"}, want: "p.toml: log_level: m"},
		{name: "no file or line", err: conf.Error{Key: "log_level", Msg: "m"}, want: "log_level: m"},
		{name: "a line without a file", err: conf.Error{Line: 3, Key: "k", Msg: "m"}, want: "line 3: k: m"},
		{name: "no key", err: conf.Error{File: "p.toml", Line: 3, Msg: "m"}, want: "p.toml:3: m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q; want %q", got, tt.want)
			}
		})
	}
}

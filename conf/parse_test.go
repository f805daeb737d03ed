package conf_test

import (
	"errors"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/components/muc"
	"github.com/parley-im/parley/components/webhook"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/server/local"
	_ "github.com/parley-im/parley/server/std"
)

// oneHost is appended to test configs that do not declare a host, so that
// they have the one they need; it comes last to leave line numbers alone.
const oneHost = "\n[[host]]\nname = \"example.com\"\n"

// parseErrors parses src as parley.toml and returns its problems.
func parseErrors(t *testing.T, src string) conf.Errors {
	t.Helper()
	if !strings.Contains(src, "host") {
		src += oneHost
	}
	c, err := conf.Parse("parley.toml", []byte(src))
	if err == nil {
		t.Fatalf("Parse succeeded with %+v; want an error", c)
	}
	if c != nil {
		t.Errorf("Parse returned a config with its error")
	}
	var errs conf.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse error %T is not Errors: %v", err, err)
	}
	return errs
}

func TestParseReportsMistakes(t *testing.T) {
	tests := []struct {
		name string
		src  string
		line int
		key  string
		want []string // parts of the message
	}{
		{
			name: "an unknown key names the known ones and the closest",
			src:  "[c2s]\nlisten = [\"[::]:5222\"]\n\n\n\n\nlistn = [\"x\"]\n",
			line: 7, key: "c2s.listn",
			want: []string{"unknown key; known keys of [c2s] are listen, direct_tls, require_tls, idle_timeout, park_after, resume_timeout, resume_location", "did you mean listen?"},
		},
		{
			name: "an unknown top-level key lists the tables too",
			src:  "data_dir = \"d\"\ndatadir = \"x\"\n",
			line: 2, key: "datadir",
			want: []string{"known top-level keys are data_dir, database, log_level, [c2s]", "[[host]]", "did you mean data_dir?"},
		},
		{
			name: "a key under the wrong table says where it belongs",
			src:  "[[host]]\nname = \"example.com\"\nlog_level = \"debug\"\n",
			line: 3, key: "host[0].log_level",
			want: []string{"unknown key", "log_level belongs at the top, above the first [table]"},
		},
		{
			name: "a limit under c2s says it belongs in limits",
			src:  "[c2s]\nstanza_size = \"1MiB\"\n",
			line: 2, key: "c2s.stanza_size",
			want: []string{"stanza_size belongs in [limits]"},
		},
		{
			name: "an unknown table is reported once",
			src:  "[c2ss]\nlisten = [\"x\"]\n",
			line: 1, key: "c2ss",
			want: []string{"unknown key", "did you mean [c2s]?"},
		},
		{
			name: "a host with one bracket asks for two",
			src:  "[host]\nname = \"example.com\"\n",
			line: 1, key: "host",
			want: []string{"want [[host]] tables, with two brackets"},
		},
		{
			name: "a bad log level lists the levels",
			src:  "\n\nlog_level = \"loud\"\n",
			line: 3, key: "log_level",
			want: []string{`"loud" is not a log level; use debug, info, warn or error`},
		},
		{
			name: "a bad host type lists the types and the closest",
			src:  "[[host]]\nname = \"example.com\"\n[[host]]\nname = \"bots.example.com\"\ntype = \"http-component\"\n",
			line: 5, key: "host[1].type",
			want: []string{`"http-component" is not a host type; use one of local, component, http_component, upload, muc`, "did you mean http_component?"},
		},
		{
			name: "a key for another host type names that type",
			src:  "[[host]]\nname = \"example.com\"\npost_url = \"https://x.example/\"\n",
			line: 3, key: "host[0].post_url",
			want: []string{`only for type = "http_component"`, `this host has type = "local"`},
		},
		{
			name: "a secret on a muc names the types that take one",
			src:  "[[host]]\nname = \"rooms.example.com\"\ntype = \"muc\"\nsecret = \"s\"\n",
			line: 4, key: "host[0].secret",
			want: []string{`only for type = "component", "http_component" or "upload"`},
		},
		{
			name: "a missing post_url points at its host",
			src:  "[[host]]\nname = \"example.com\"\n\n[[host]]\nname = \"bots.example.com\"\ntype = \"http_component\"\n",
			line: 4, key: "host[1] (bots.example.com)",
			want: []string{`post_url is required for type = "http_component"`, `post_url = "https://`},
		},
		{
			name: "a missing component secret points at its host",
			src:  "[[host]]\nname = \"gw.example.com\"\ntype = \"component\"\n",
			line: 1, key: "host[0] (gw.example.com)",
			want: []string{`secret is required for type = "component"`},
		},
		{
			name: "a missing host name points at its host",
			src:  "[[host]]\ntype = \"local\"\n",
			line: 1, key: "host[0]",
			want: []string{`name is required`, `name = "example.com"`},
		},
		{
			name: "a bad host name says what a domain is",
			src:  "[[host]]\nname = \"my server\"\n",
			line: 2, key: "host[0].name",
			want: []string{`"my server" is not a domain name`, "letters, digits and hyphens"},
		},
		{
			name: "a duplicate host name names the first one and its line",
			src:  "[[host]]\nname = \"example.com\"\n[[host]]\nname = \"EXAMPLE.com\"\n",
			line: 4, key: "host[1].name",
			want: []string{`"example.com" is already the name of host[0] (line 2)`},
		},
		{
			name: "a certificate without a key asks for both or neither",
			src:  "[[host]]\nname = \"example.com\"\ntls_cert = \"a.crt\"\n",
			line: 3, key: "host[0].tls_cert",
			want: []string{"tls_key is missing; give both tls_cert and tls_key, or neither"},
		},
		{
			name: "a key without a certificate asks for both or neither",
			src:  "[[host]]\nname = \"example.com\"\ntls_key = \"a.key\"\n",
			line: 3, key: "host[0].tls_key",
			want: []string{"tls_cert is missing"},
		},
		{
			name: "a size with a wrong unit lists the accepted forms",
			src:  "[limits]\nstanza_size = \"256 kb\"\n",
			line: 2, key: "limits.stanza_size",
			want: []string{`"256 kb" is not a size`, `"256KiB"`, "KiB, MiB, GiB (×1024) and KB, MB, GB (×1000)"},
		},
		{
			name: "a size of the wrong type lists the accepted forms",
			src:  "[limits]\nrate = true\n",
			line: 2, key: "limits.rate",
			want: []string{"want a size, not true", `"256KiB"`},
		},
		{
			name: "a negative size is refused",
			src:  "[limits]\nrate = -5\n",
			line: 2, key: "limits.rate",
			want: []string{"negative", `"256KiB"`},
		},
		{
			name: "a stanza size below RFC 6120 is refused",
			src:  "[limits]\nstanza_size = \"4KiB\"\n",
			line: 2, key: "limits.stanza_size",
			want: []string{"4KiB is too low; use at least 10KB", "RFC 6120"},
		},
		{
			name: "a burst smaller than a stanza is refused",
			src:  "[limits]\nstanza_size = \"2MiB\"\nburst = \"1MiB\"\n",
			line: 3, key: "limits.burst",
			want: []string{"1MiB is less than stanza_size (2MiB)", "use at least 2MiB"},
		},
		{
			name: "a zero depth is refused rather than defaulted",
			src:  "[limits]\nmax_depth = 0\n",
			line: 2, key: "limits.max_depth",
			want: []string{"0 is too low; use at least 8"},
		},
		{
			name: "a bad duration shows examples",
			src:  "[c2s]\nidle_timeout = \"5 minutes\"\n",
			line: 2, key: "c2s.idle_timeout",
			want: []string{`"5 minutes" is not a duration`, `"10s", "5m" or "1h30m"`},
		},
		{
			name: "a duration without a unit asks for one",
			src:  "[c2s]\nidle_timeout = 300\n",
			line: 2, key: "c2s.idle_timeout",
			want: []string{"300 has no unit", `"5m"`},
		},
		{
			name: "a negative resume_timeout says what zero means",
			src:  "[c2s]\nresume_timeout = \"-1s\"\n",
			line: 2, key: "c2s.resume_timeout",
			want: []string{"-1s is negative", `"0s" to turn stream resumption off`},
		},
		{
			name: "a fast_token_lifetime too short to use",
			src:  "[auth]\nfast_token_lifetime = \"10s\"\n",
			line: 2, key: "auth.fast_token_lifetime",
			want: []string{`10s is too short`, `at least "1m"`},
		},
		{
			name: "a resume_location with a path is no host:port",
			src:  "[c2s]\nresume_location = \"xmpp.example.com/5222\"\n",
			line: 2, key: "c2s.resume_location",
			want: []string{`"xmpp.example.com/5222" is not a host or host:port`},
		},
		{
			name: "a resume_location with a port out of range",
			src:  "[c2s]\nresume_location = \"xmpp.example.com:70000\"\n",
			line: 2, key: "c2s.resume_location",
			want: []string{"is not a host or host:port"},
		},
		{
			name: "a negative park_after says what zero means",
			src:  "[c2s]\npark_after = \"-1s\"\n",
			line: 2, key: "c2s.park_after",
			want: []string{"-1s is negative", `"0s" to keep every stream's goroutine`},
		},
		{
			name: "a listen address without a host asks for host:port",
			src:  "[c2s]\nlisten = [\"5222\"]\n",
			line: 2, key: "c2s.listen[0]",
			want: []string{`"5222" is not host:port`, `"[::]:5222"`},
		},
		{
			name: "a listen address on its own line keeps that line",
			src:  "[c2s]\nlisten = [\n  \"[::]:5222\",\n  \"[::]:xmpp\",\n]\n",
			line: 4, key: "c2s.listen[1]",
			want: []string{"the port must be a number from 0 to 65535"},
		},
		{
			name: "a listen address used twice names the first use",
			src:  "[c2s]\nlisten = [\"[::]:5222\"]\n[http]\nlisten = [\"[::]:5222\"]\n",
			line: 4, key: "http.listen[0]",
			want: []string{"already used by c2s.listen[0]"},
		},
		{
			name: "a token_failures of 0 asks for at least 1",
			src:  "[http]\ntoken_failures = 0\n",
			line: 2, key: "http.token_failures",
			want: []string{"0 is too low; use at least 1"},
		},
		{
			name: "a read_timeout under a second is too short",
			src:  "[http]\nread_timeout = \"100ms\"\n",
			line: 2, key: "http.read_timeout",
			want: []string{`100ms is too short; use a duration of at least "1s"`},
		},
		{
			name: "a secret written as a number is not shown",
			src:  "[http]\nmetrics_token = 1234567890123\n",
			line: 2, key: "http.metrics_token",
			want: []string{"want a string in double quotes, not a number"},
		},
		{
			name: "a metrics_token with a space cannot be sent",
			src:  "[http]\nmetrics_token = \"two words\"\n",
			line: 2, key: "http.metrics_token",
			want: []string{"one word without spaces"},
		},
		{
			name: "an api_rate of 0 asks for at least 1",
			src:  "[[host]]\nname = \"bots.example.com\"\ntype = \"http_component\"\npost_url = \"https://x.example/\"\napi_rate = 0\n",
			line: 5, key: "host[0].api_rate",
			want: []string{"0 is too low; use at least 1"},
		},
		{
			name: "an api_burst on a local host names its type",
			src:  "[[host]]\nname = \"example.com\"\napi_burst = 10\n",
			line: 3, key: "host[0].api_burst",
			want: []string{`only for type = "http_component"`},
		},
		{
			name: "a string where a list belongs shows the list",
			src:  "[c2s]\nlisten = \"[::]:5222\"\n",
			line: 2, key: "c2s.listen",
			want: []string{`want a list of strings; write ["[::]:5222"]`},
		},
		{
			name: "a static route needs host:port",
			src:  "[s2s]\nstatic_routes = { \"b.example\" = \"b.example\" }\n",
			line: 2, key: `s2s.static_routes."b.example"`,
			want: []string{`"b.example" is not host:port`},
		},
		{
			name: "a direct TLS static route needs host:port too",
			src:  "[s2s]\nstatic_routes = { \"b.example\" = \"tls://b.example\" }\n",
			line: 2, key: `s2s.static_routes."b.example"`,
			want: []string{`"tls://b.example" is not host:port`, `"tls://10.0.0.7:5270" for direct TLS`},
		},
		{
			name: "a static route with another scheme is refused",
			src:  "[s2s]\nstatic_routes = { \"b.example\" = \"https://10.0.0.7:5270\" }\n",
			line: 2, key: `s2s.static_routes."b.example"`,
			want: []string{`"https://10.0.0.7:5270" is not host:port`},
		},
		{
			name: "a static route to a local host is refused",
			src:  "[[host]]\nname = \"a.example\"\n[s2s]\nstatic_routes = { \"a.example\" = \"127.0.0.1:5269\" }\n",
			line: 4, key: `s2s.static_routes."a.example"`,
			want: []string{`is a [[host]] of this server`},
		},
		{
			name: "a denied domain must be a domain",
			src:  "[s2s]\ndeny = [\"user@b.example\"]\n",
			line: 2, key: "s2s.deny[0]",
			want: []string{`"user@b.example" is not a domain name`},
		},
		{
			name: "an s2s connect_timeout of 0s would wait forever",
			src:  "[s2s]\nconnect_timeout = \"0s\"\n",
			line: 2, key: "s2s.connect_timeout",
			want: []string{"must be more than 0s"},
		},
		{
			name: "a quoted boolean asks for true or false",
			src:  "[c2s]\nrequire_tls = \"yes\"\n",
			line: 2, key: "c2s.require_tls",
			want: []string{`want true or false, not the string "yes"`},
		},
		{
			name: "a quoted number asks for a whole number",
			src:  "[limits]\nqueue = \"10\"\n",
			line: 2, key: "limits.queue",
			want: []string{`want a whole number, not the string "10"`},
		},
		{
			name: "a bad post_url shows a good one",
			src:  "[[host]]\nname = \"b.example.com\"\ntype = \"http_component\"\npost_url = \"hooks.example.com/x\"\n",
			line: 4, key: "host[0].post_url",
			want: []string{"not an absolute http or https URL", `"https://hooks.example.com/xmpp"`},
		},
		{
			name: "a bad stanza kind lists the kinds",
			src:  "[[host]]\nname = \"b.example.com\"\ntype = \"http_component\"\npost_url = \"https://h.example/\"\npost_stanzas = [\"messages\"]\n",
			line: 5, key: "host[0].post_stanzas[0]",
			want: []string{`"messages" is not a stanza kind; use "message", "presence" or "iq"`},
		},
		{
			name: "a stanza kind listed twice is refused",
			src:  "[[host]]\nname = \"b.example.com\"\ntype = \"http_component\"\npost_url = \"https://h.example/\"\npost_stanzas = [\"iq\", \"iq\"]\n",
			line: 5, key: "host[0].post_stanzas[1]",
			want: []string{`"iq" is listed twice`},
		},
		{
			name: "an empty stanza list is refused",
			src:  "[[host]]\nname = \"b.example.com\"\ntype = \"http_component\"\npost_url = \"https://h.example/\"\npost_stanzas = []\n",
			line: 5, key: "host[0].post_stanzas",
			want: []string{`list at least one of "message", "presence" and "iq"`},
		},
		{
			name: "a zero webhook timeout is refused",
			src:  "[[host]]\nname = \"b.example.com\"\ntype = \"http_component\"\npost_url = \"https://h.example/\"\ntimeout = \"0s\"\n",
			line: 5, key: "host[0].timeout",
			want: []string{"not more than 0", `"10s"`},
		},
		{
			name: "a concurrency out of range gives the range",
			src:  "[[host]]\nname = \"b.example.com\"\ntype = \"http_component\"\npost_url = \"https://h.example/\"\nconcurrency = 5000\n",
			line: 5, key: "host[0].concurrency",
			want: []string{"5000 is out of range; use 1 to 1024"},
		},
		{
			name: "a zero webhook queue is refused",
			src:  "[[host]]\nname = \"b.example.com\"\ntype = \"http_component\"\npost_url = \"https://h.example/\"\nqueue = 0\n",
			line: 5, key: "host[0].queue",
			want: []string{"use at least 1"},
		},
		{
			name: "a sender's share larger than the queue is refused",
			src:  "[[host]]\nname = \"b.example.com\"\ntype = \"http_component\"\npost_url = \"https://h.example/\"\nqueue = 100\nsender_queue = 200\n",
			line: 6, key: "host[0].sender_queue",
			want: []string{"200 is more than queue (100)", "use at most 100, or leave sender_queue out for 12"},
		},
		{
			name: "a sender's byte share larger than queue_bytes is refused",
			src:  "[[host]]\nname = \"b.example.com\"\ntype = \"http_component\"\npost_url = \"https://h.example/\"\nqueue_bytes = \"1MiB\"\nsender_queue_bytes = \"2MiB\"\n",
			line: 6, key: "host[0].sender_queue_bytes",
			want: []string{"2MiB is more than queue_bytes (1MiB)", "leave sender_queue_bytes out for 128KiB"},
		},
		{
			name: "a tiny queue_bytes is refused",
			src:  "[[host]]\nname = \"b.example.com\"\ntype = \"http_component\"\npost_url = \"https://h.example/\"\nqueue_bytes = 1000\n",
			line: 5, key: "host[0].queue_bytes",
			want: []string{"use at least 64KiB"},
		},
		{
			name: "follow_redirects is for http_component hosts",
			src:  "[[host]]\nname = \"example.com\"\nfollow_redirects = true\n",
			line: 3, key: "host[0].follow_redirects",
			want: []string{"only for type = \"http_component\""},
		},
		{
			name: "too many retries gives the range",
			src:  "[[host]]\nname = \"b.example.com\"\ntype = \"http_component\"\npost_url = \"https://h.example/\"\nretries = 11\n",
			line: 5, key: "host[0].retries",
			want: []string{"use 0 to 10"},
		},
		{
			name: "a header Parley sets itself is refused",
			src:  "[[host]]\nname = \"b.example.com\"\ntype = \"http_component\"\npost_url = \"https://h.example/\"\n\n[host.headers]\nContent-Type = \"text/plain\"\n",
			line: 7, key: "host[0].headers.Content-Type",
			want: []string{"set by Parley"},
		},
		{
			name: "a header value with a control character is refused",
			src:  "[[host]]\nname = \"b.example.com\"\ntype = \"http_component\"\npost_url = \"https://h.example/\"\nheaders = { \"X-Team\" = \"a\\u0001b\" }\n",
			line: 5, key: `host[0].headers.X-Team`,
			want: []string{"control characters"},
		},
		{
			name: "User-Agent is Parley's own",
			src:  "[[host]]\nname = \"b.example.com\"\ntype = \"http_component\"\npost_url = \"https://h.example/\"\nheaders = { \"User-Agent\" = \"me\" }\n",
			line: 5, key: `host[0].headers.User-Agent`,
			want: []string{"set by Parley"},
		},
		{
			name: "a header name with a space is refused",
			src:  "[[host]]\nname = \"b.example.com\"\ntype = \"http_component\"\npost_url = \"https://h.example/\"\nheaders = { \"X Team\" = \"a\" }\n",
			line: 5, key: `host[0].headers."X Team"`,
			want: []string{"not an HTTP header name"},
		},
		{
			name: "a room that is not a bare JID shows one",
			src:  "[[host]]\nname = \"b.example.com\"\ntype = \"http_component\"\npost_url = \"https://h.example/\"\nrooms = [\"team@rooms.example.com\", \"team@rooms.example.com/bot\"]\n",
			line: 5, key: "host[0].rooms[1]",
			want: []string{"not a bare JID", `"team@rooms.example.com"`},
		},
		{
			name: "no host at all asks for one",
			src:  "log_level = \"info\"\nhost = []\n",
			line: 2, key: "host",
			want: []string{`add a [[host]] table with name = "example.com"`},
		},
		{
			name: "too few SCRAM iterations give the minimum",
			src:  "[auth]\nscram_iterations = 1000\n",
			line: 2, key: "auth.scram_iterations",
			want: []string{"1000 is too low; use at least 4096"},
		},
		{
			name: "the removed login_failures_per_ip names what replaced it",
			src:  "[limits]\nauth_failures = 3\nlogin_failures_per_ip = 10\n",
			line: 3, key: "limits.login_failures_per_ip",
			want: []string{"no longer used", "Remove the line", "login_backoff_after", "registrations_per_ip"},
		},
		{
			name: "an unknown channel binding policy lists the two",
			src:  "[auth]\nchannel_binding = \"yes\"\n",
			line: 2, key: "auth.channel_binding",
			want: []string{`"yes" is not a channel binding policy`, `"compatible"`, `"strict"`},
		},
		{
			name: "a login backoff past 15s is refused",
			src:  "[limits]\nlogin_backoff_max = \"1m\"\n",
			line: 2, key: "limits.login_backoff_max",
			want: []string{"out of range", `"0s" never to hold`},
		},
		{
			name: "an unquoted string is a syntax error with its line",
			src:  "data_dir = \"d\"\nlog_level = debug\n",
			line: 2, key: "log_level",
			want: []string{"debug is not a value; put strings in double quotes", `"debug"`},
		},
		{
			name: "an unquoted word that starts like inf still gets the quoting hint",
			src:  "data_dir = \"d\"\nlog_level = info # the default\n",
			line: 2, key: "log_level",
			want: []string{"info is not a value; put strings in double quotes", `"info"`},
		},
		{
			name: "an unquoted word in a table keeps the table in its key",
			src:  "[[host]]\nname = example.com\n",
			line: 2, key: "host.name",
			want: []string{"example.com is not a value", `"example.com"`},
		},
		{
			name: "a key set twice is a syntax error with its line",
			src:  "log_level = \"info\"\n\nlog_level = \"debug\"\n",
			line: 3, key: "log_level",
			want: []string{"set more than once"},
		},
		{
			name: "an unterminated list is a syntax error with its line",
			src:  "[c2s]\nlisten = [\"[::]:5222\"\n[[host]]\n",
			line: 3, key: "c2s.listen",
			want: []string{"TOML syntax:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := parseErrors(t, tt.src)
			if len(errs) != 1 {
				t.Fatalf("got %d problems; want 1:\n%v", len(errs), errs)
			}
			e := errs[0]
			if e.Key != tt.key || e.Line != tt.line || e.File != "parley.toml" {
				t.Errorf("got %s:%d key %q; want parley.toml:%d key %q\n%v", e.File, e.Line, e.Key, tt.line, tt.key, e)
			}
			for _, w := range tt.want {
				if !strings.Contains(e.Msg, w) {
					t.Errorf("message %q does not contain %q", e.Msg, w)
				}
			}
			if prefix := "parley.toml:" + strconv.Itoa(tt.line) + ": " + tt.key + ": "; !strings.HasPrefix(e.Error(), prefix) {
				t.Errorf("Error() = %q; want it to start with %q", e.Error(), prefix)
			}
		})
	}
}

func TestParseReportsEveryProblemSortedByLine(t *testing.T) {
	src := `log_level = "loud"
[c2s]
listn = ["[::]:5222"]
[limits]
stanza_size = "big"
[[host]]
name = "bots.example.com"
type = "http_component"
post_stanzas = ["mail"]
[[host]]
name = "bots.example.com"
`
	errs := parseErrors(t, src)
	want := []struct {
		line int
		key  string
	}{
		{1, "log_level"},
		{3, "c2s.listn"},
		{5, "limits.stanza_size"},
		{6, "host[0] (bots.example.com)"},
		{9, "host[0].post_stanzas[0]"},
		{11, "host[1].name"},
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d problems; want %d:\n%v", len(errs), len(want), errs)
	}
	for i, w := range want {
		if errs[i].Line != w.line || errs[i].Key != w.key {
			t.Errorf("problem %d is line %d key %q; want line %d key %q", i, errs[i].Line, errs[i].Key, w.line, w.key)
		}
	}
	if got := strings.Count(errs.Error(), "\n") + 1; got != len(want) {
		t.Errorf("Errors.Error() has %d lines; want one per problem:\n%s", got, errs)
	}
	var one *conf.Error
	if !errors.As(error(errs), &one) || one != errs[0] {
		t.Errorf("errors.As does not find the first *Error")
	}
}

func TestParseAppliesDefaults(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		check func(t *testing.T, c *conf.Config)
	}{
		{
			name: "a config of one host gets every default",
			src:  "[[host]]\nname = \"Example.COM\"\n",
			check: func(t *testing.T, c *conf.Config) {
				want := conf.New()
				want.File = "parley.toml"
				want.Hosts = []conf.Host{{Name: "example.com", Type: local.HostLocal, Options: &local.LocalOptions{Registration: local.RegistrationClosed, TURNTTL: conf.Duration{Duration: 24 * time.Hour},
					Archive: true, ArchiveExpiresAfter: "1w", ArchiveDefault: "always", ArchiveMaxPage: 100, PushMaxPerMinute: 10, PushMaxDevices: 5}}}
				if !reflect.DeepEqual(c, want) {
					t.Errorf("got %+v\nwant %+v", c, want)
				}
			},
		},
		{
			name: "an http component gets its defaults",
			src:  "[[host]]\nname = \"bots.example.com\"\ntype = \"http_component\"\npost_url = \"https://h.example/x\"\n",
			check: func(t *testing.T, c *conf.Config) {
				want := conf.Host{
					Name: "bots.example.com", Type: webhook.HostType, Options: &webhook.Options{PostURL: "https://h.example/x",
						PostStanzas: []string{"message"}, Timeout: conf.Duration{10 * time.Second},
						Concurrency: 16, Queue: 1000, QueueBytes: 16 * conf.MiB, SenderQueue: 125, SenderQueueBytes: 2 * conf.MiB, Retries: 2,
						APIRate: 20, APIBurst: 200, Nick: "bots", ReplyTo: "mentions", RejoinAfter: conf.Duration{2 * time.Second}},
				}
				if !reflect.DeepEqual(c.Hosts[0], want) {
					t.Errorf("got %+v\nwant %+v", c.Hosts[0], want)
				}
			},
		},
		{
			name: "a larger stanza size raises the default burst",
			src:  "[limits]\ns2s_stanza_size = \"4MiB\"\n" + oneHost,
			check: func(t *testing.T, c *conf.Config) {
				if c.Limits.Burst != 4*conf.MiB {
					t.Errorf("burst = %v; want 4MiB", c.Limits.Burst)
				}
			},
		},
		{
			name: "explicit false and zero values are honoured",
			src: `[c2s]
require_tls = false
idle_timeout = "0s"
listen = []
[limits]
rate = 0
[auth]
allow_plain = false
[[host]]
name = "bots.example.com"
type = "http_component"
post_url = "http://127.0.0.1:8080/"
retries = 0
`,
			check: func(t *testing.T, c *conf.Config) {
				if c.C2S.RequireTLS || c.Auth.AllowPlain {
					t.Errorf("require_tls = %v, allow_plain = %v; want both false", c.C2S.RequireTLS, c.Auth.AllowPlain)
				}
				if c.C2S.IdleTimeout.Duration != 0 || c.Limits.Rate != 0 || len(c.C2S.Listen) != 0 {
					t.Errorf("idle_timeout = %v, rate = %v, listen = %q; want 0, 0, []",
						c.C2S.IdleTimeout, c.Limits.Rate, c.C2S.Listen)
				}
				if o := webhook.OptionsOf(&c.Hosts[0]); o.Retries != 0 {
					t.Errorf("retries = %d; want 0", o.Retries)
				}
			},
		},
		{
			name: "an inline array of hosts works like [[host]] tables",
			src:  "host = [{ name = \"a.example\" }, { name = \"b.example\", type = \"muc\" }]\n",
			check: func(t *testing.T, c *conf.Config) {
				if len(c.Hosts) != 2 || c.Hosts[1].Type != muc.HostType {
					t.Errorf("hosts = %+v", c.Hosts)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := conf.Parse("parley.toml", []byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestDefaultIsALoopbackDemo(t *testing.T) {
	c := conf.Default()
	if c.File != "" {
		t.Errorf("File = %q; want empty", c.File)
	}
	if len(c.Hosts) != 2 || c.Hosts[0].Name != "localhost" || c.Hosts[0].Type != local.HostLocal {
		t.Errorf("hosts = %+v; want the local host localhost first", c.Hosts)
	}
	if len(c.Hosts) == 2 && (c.Hosts[1].Name != "echo.localhost" || c.Hosts[1].Type != webhook.HostType ||
		webhook.OptionsOf(&c.Hosts[1]).PostURL != "http://"+c.HTTP.Listen[0]+"/demo/echo") {
		t.Errorf("second host %+v; want the echo bot served by Parley's own HTTP listener", c.Hosts[1])
	}
	for _, a := range append(append(append([]string{}, c.C2S.Listen...), c.C2S.DirectTLS...), c.HTTP.Listen...) {
		if !strings.HasPrefix(a, "127.0.0.1:") && !strings.HasPrefix(a, "[::1]:") {
			t.Errorf("listener %q is not on loopback", a)
		}
	}
	if c.DataDir != "data" || c.LogLevel != "info" || !c.C2S.RequireTLS {
		t.Errorf("data_dir = %q, log_level = %q, require_tls = %v", c.DataDir, c.LogLevel, c.C2S.RequireTLS)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestFullTOMLSetsEveryKey(t *testing.T) {
	const path = "../testdata/conf/full.toml"
	c, err := conf.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.File != path {
		t.Errorf("File = %q; want %q", c.File, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Every key of the schema is set somewhere in the file, so that it
	// documents them all.
	var set []string
	for _, p := range conf.KeyPaths(data) {
		set = append(set, conf.ReIndex.ReplaceAllString(p, "[]"))
	}
	var walk func(path string, t reflect.Type)
	walk = func(path string, typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			k := f.Tag.Get("toml")
			if k == "" || k == "-" {
				continue
			}
			p := conf.JoinKey(path, k)
			found := false
			for _, s := range set {
				if s == p || s == p+"[]" {
					found = true
				}
			}
			if !found {
				t.Errorf("full.toml does not set %s", p)
			}
			switch {
			case f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[conf.Duration]():
				walk(p, f.Type)
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
				walk(p+"[]", f.Type.Elem())
			}
		}
	}
	walk("", reflect.TypeFor[conf.Config]())
	// The keys of the host types, in their [[host]] tables.
	for _, typ := range conf.HostTypes() {
		walk("host[]", reflect.TypeOf(conf.NewHostOptions(typ)).Elem())
	}
	for _, typ := range conf.HostTypes() {
		if _, ok := func() (*conf.Host, bool) {
			for i := range c.Hosts {
				if c.Hosts[i].Type == typ {
					return &c.Hosts[i], true
				}
			}
			return nil, false
		}(); !ok {
			t.Errorf("full.toml has no host of type %q", typ)
		}
	}
}

// A static route is kept as written, "tls://" and all: the s2s service
// reads the prefix as direct TLS.
func TestStaticRoutes(t *testing.T) {
	tests := []struct {
		name, route string
	}{
		{"host and port", "10.0.0.7:5269"},
		{"direct TLS", "tls://10.0.0.7:5270"},
		{"direct TLS to a name", "tls://xmpp.b.example:5270"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := conf.Parse("t.toml", []byte("[[host]]\nname = \"a.example\"\n[s2s]\nstatic_routes = { \"B.example\" = \""+tt.route+"\" }\n"))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.S2S.StaticRoutes["b.example"]; got != tt.route {
				t.Errorf("route %q; want %q", got, tt.route)
			}
		})
	}
}

func TestLoadReportsAMissingFile(t *testing.T) {
	_, err := conf.Load("testdata/no-such-file.toml")
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v; want os.ErrNotExist", err)
	}
}

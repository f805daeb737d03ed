package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/server/local"
)

// startServer starts Parley in-process with a local host that allows
// in-band registration, no rate limit, and a bot host whose webhook
// listens on the returned listener.
func startServer(t *testing.T, edit func(*conf.Config)) (*parleytest.Server, net.Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := parleytest.Start(t,
		parleytest.WithHost("localhost", ""),
		parleytest.WithBot("bots.localhost", "http://"+ln.Addr().String()+"/", nil),
		parleytest.WithConfig(func(c *conf.Config) {
			local.LocalOptionsOf(&c.Hosts[0]).Registration = local.RegistrationOpen
			c.Limits.Rate = 0
			if edit != nil {
				edit(c)
			}
		}))
	return s, ln
}

// runTool runs parley-load with args against s and returns its exit code,
// its output and its JSON line, decoded.
func runTool(t *testing.T, s *parleytest.Server, hook net.Listener, args ...string) (int, string, map[string]any) {
	t.Helper()
	return runToolWith(t, s, func(o *options) { o.webhook = hook }, args...)
}

// runToolWith is runTool with edit setting what flags cannot (listeners).
func runToolWith(t *testing.T, s *parleytest.Server, edit func(*options), args ...string) (int, string, map[string]any) {
	t.Helper()
	args = append(args[:1:1], append([]string{"-addr", s.Addr, "-domain", "localhost", "-timeout", "60s"}, args[1:]...)...)
	var stdout, stderr bytes.Buffer
	o := &options{progress: &stderr}
	if code, ok := parse(args, o, &stdout, &stderr); !ok {
		t.Fatalf("parley-load %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
	}
	edit(o)
	code := runOptions(context.Background(), o, &stdout)
	out := stdout.String()
	t.Logf("parley-load %s: exit %d\n%s%s", strings.Join(args, " "), code, stderr.String(), out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var res map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("the last line is not JSON: %v\n%s", err, out)
	}
	return code, out, res
}

// waitNoSessions polls until the server has no sessions left: every run
// closes its connections. The bound is generous: a session that was fed
// many large stanzas ends once the server has parsed what it had read,
// which under -race on a loaded 2-core machine took over 10 s.
func waitNoSessions(t *testing.T, s *parleytest.Server) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for s.Sessions() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions still open after the run", s.Sessions())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func num(t *testing.T, res map[string]any, path string) float64 {
	t.Helper()
	var v any = res
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: not an object at %q in %v", path, k, res)
		}
		v = m[k]
	}
	f, ok := v.(float64)
	if !ok {
		t.Fatalf("%s is %v, not a number", path, v)
	}
	return f
}

func TestScenarios(t *testing.T) {
	pid := strconv.Itoa(os.Getpid()) // the server runs in this process
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, res map[string]any)
	}{
		{"login_five_clients", []string{"login", "-n", "5", "-c", "2", "-create", "-pid", pid}, func(t *testing.T, res map[string]any) {
			if n := num(t, res, "logins"); n != 5 {
				t.Errorf("logins = %v, want 5", n)
			}
			if num(t, res, "logins_per_s") <= 0 || num(t, res, "connect_to_bound.p99_us") <= 0 {
				t.Errorf("no rate or latency: %v", res)
			}
			if res["mech"] != "SCRAM-SHA-256" {
				t.Errorf("mech = %v, want SCRAM-SHA-256 (the preferred one)", res["mech"])
			}
			num(t, res, "server_cpu_s")
		}},
		{"msg_two_pairs_lose_nothing", []string{"msg", "-pairs", "2", "-window", "4", "-duration", "1s", "-create", "-pid", pid}, func(t *testing.T, res map[string]any) {
			if lost := num(t, res, "lost"); lost != 0 {
				t.Errorf("lost = %v", lost)
			}
			sent, delivered := num(t, res, "sent"), num(t, res, "delivered")
			if sent == 0 || delivered != sent {
				t.Errorf("sent %v, delivered %v", sent, delivered)
			}
			if num(t, res, "latency.max_us") <= 0 || num(t, res, "msgs_per_s") <= 0 {
				t.Errorf("no latency or rate: %v", res)
			}
			num(t, res, "msgs_per_server_cpu_s")
		}},
		{"idle_five_connections", []string{"idle", "-n", "5", "-duration", "200ms", "-create", "-pid", pid}, func(t *testing.T, res map[string]any) {
			if n := num(t, res, "connections"); n != 5 {
				t.Errorf("connections = %v, want 5", n)
			}
			if num(t, res, "rss_before_kib") <= 0 || num(t, res, "rss_after_kib") <= 0 {
				t.Errorf("no RSS: %v", res)
			}
			num(t, res, "rss_per_conn_kib")
		}},
		{"bot_two_clients", []string{"bot", "-n", "2", "-duration", "1s", "-create", "-pid", pid, "-bot-domain", "bots.localhost"}, func(t *testing.T, res map[string]any) {
			rt := num(t, res, "round_trips")
			if rt == 0 {
				t.Errorf("no round trips: %v", res)
			}
			if hooks := num(t, res, "webhook_requests"); hooks < rt {
				t.Errorf("webhook requests %v < round trips %v", hooks, rt)
			}
			if num(t, res, "latency.p50_us") <= 0 {
				t.Errorf("no latency: %v", res)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, hook := startServer(t, nil)
			code, _, res := runTool(t, s, hook, tt.args...)
			if code != 0 || res["ok"] != true || num(t, res, "errors") != 0 {
				t.Fatalf("exit %d, ok %v, error %v", code, res["ok"], res["error"])
			}
			if res["scenario"] != tt.args[0] {
				t.Errorf("scenario = %v, want %s", res["scenario"], tt.args[0])
			}
			tt.check(t, res)
			waitNoSessions(t, s)
		})
	}
}

func TestLogin(t *testing.T) {
	t.Run("each_mechanism_works", func(t *testing.T) {
		// Strict, so that -PLUS is offered too.
		s, hook := startServer(t, func(c *conf.Config) { c.Auth.ChannelBinding = conf.ChannelBindingStrict })
		for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"} {
			code, _, res := runTool(t, s, hook, "login", "-n", "2", "-create", "-mech", mech)
			if code != 0 || res["mech"] != mech {
				t.Errorf("-mech %s: exit %d, mech %v, error %v", mech, code, res["mech"], res["error"])
			}
		}
		waitNoSessions(t, s)
	})
	t.Run("a_wrong_password_fails_the_run", func(t *testing.T) {
		s, hook := startServer(t, nil)
		for i := range 3 {
			s.AddUser("load"+strconv.Itoa(i)+"@localhost", "another-password")
		}
		code, out, res := runTool(t, s, hook, "login", "-n", "3")
		if code != 1 || res["ok"] != false || num(t, res, "errors") != 3 || num(t, res, "logins") != 0 {
			t.Fatalf("exit %d, %v", code, res)
		}
		if !strings.Contains(out, "auth not-authorized 3") {
			t.Errorf("the summary does not count the failures by cause:\n%s", out)
		}
	})
	t.Run("create_keeps_existing_accounts", func(t *testing.T) {
		s, hook := startServer(t, nil)
		s.AddUser("load0@localhost", "load-password")
		if code, _, _ := runTool(t, s, hook, "login", "-n", "3", "-create"); code != 0 {
			t.Fatalf("exit %d", code)
		}
	})
	t.Run("create_without_registration_says_so", func(t *testing.T) {
		s, hook := startServer(t, func(c *conf.Config) { local.LocalOptionsOf(&c.Hosts[0]).Registration = local.RegistrationClosed })
		code, _, res := runTool(t, s, hook, "login", "-n", "2", "-create")
		if code != 1 || !strings.Contains(res["error"].(string), "in-band registration") {
			t.Fatalf("exit %d, error %v", code, res["error"])
		}
	})
}

func TestRunsAreBounded(t *testing.T) {
	// A webhook that never answers: every client waits for its reply
	// until -timeout ends the run.
	s, _ := startServer(t, nil)
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	hook := hangingListener{silent}
	start := time.Now()
	var stdout, stderr bytes.Buffer
	o := &options{progress: &stderr}
	args := []string{"bot", "-addr", s.Addr, "-n", "2", "-duration", "30s", "-timeout", "2s", "-create"}
	if code, ok := parse(args, o, &stdout, &stderr); !ok {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	o.webhook = hook
	code := runOptions(context.Background(), o, &stdout)
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("the run took %v with -timeout 2s", took)
	}
	if code != 1 || !strings.Contains(stdout.String(), "-timeout") {
		t.Errorf("exit %d, want 1 and the timeout named:\n%s", code, stdout.String())
	}
	waitNoSessions(t, s)
}

// hangingListener accepts connections and never answers on them.
type hangingListener struct{ net.Listener }

func (l hangingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		go func() {
			_, _ = io.Copy(io.Discard, c)
			c.Close()
		}()
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no_scenario", nil, "Usage:"},
		{"unknown_scenario", []string{"flood"}, `unknown scenario "flood"`},
		{"pattern_without_a_number", []string{"login", "-users", "load"}, "exactly one %d"},
		{"idle_without_a_pid", []string{"idle"}, "-pid"},
		{"unknown_mechanism", []string{"login", "-mech", "DIGEST-MD5"}, "-mech DIGEST-MD5"},
		{"a_stray_argument", []string{"login", "extra"}, `unexpected argument "extra"`},
		{"stalled_is_for_msg", []string{"login", "-stalled", "1"}, "for the msg scenario"},
		{"hang_domain_is_for_msg", []string{"bot", "-hang-domain", "hung.localhost"}, "for the msg scenario"},
		{"negative_stalled", []string{"msg", "-stalled", "-1"}, "-stalled is negative"},
		{"stalled_without_senders", []string{"msg", "-stalled", "1", "-stall-senders", "0"}, "-stall-senders"},
		{"stalled_without_a_rate", []string{"msg", "-stalled", "1", "-stall-rate", "0"}, "-stall-rate"},
		{"an_unknown_shape", []string{"msg", "-stalled", "1", "-stall-shape", "nested"}, `-stall-shape "nested"`},
		{"a_bad_hang_domain", []string{"msg", "-hang-domain", "a b"}, "-hang-domain"},
		{"s2s_without_a_peer", []string{"s2s", "-peer-domain", "b.example"}, "-peer-addr"},
		{"s2s_to_itself", []string{"s2s", "-peer-addr", "127.0.0.1:5223", "-peer-domain", "LOCALHOST"}, "two servers that federate"},
		{"hang_without_a_rate", []string{"msg", "-hang-domain", "hung.localhost", "-hang-rate", "NaN"}, "-hang-rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tt.args, &stdout, &stderr); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr does not say %q:\n%s", tt.want, stderr.String())
			}
		})
	}
	t.Run("help_goes_to_stdout", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{"help"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "-webhook-addr") {
			t.Errorf("exit %d, stdout:\n%s", code, stdout.String())
		}
	})
}

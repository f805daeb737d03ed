package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/parleytest"
)

// serveTimeout bounds every wait on a server in these tests.
const serveTimeout = 15 * time.Second

// banner is the line serve logs once it listens; it captures the STARTTLS
// address.
var banner = regexp.MustCompile(`msg="parley: listening" .* c2s=(\S+) direct_tls=\S+`)

func TestServe(t *testing.T) {
	cfg, _ := testConfig{}.write(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs parleytest.Buffer
	done := make(chan int, 1)
	go func() {
		done <- runContext(ctx, []string{"serve", "-c", cfg}, strings.NewReader(""), &logs, &logs)
	}()
	text, ok := logs.WaitFor("parley: listening", serveTimeout)
	if !ok {
		cancel()
		t.Fatalf("serve did not log that it listens; log:\n%s", text)
	}
	m := banner.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("the banner does not name the addresses; log:\n%s", text)
	}

	t.Run("the banner's address accepts connections", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", m[1], serveTimeout)
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
	})
	t.Run("user commands work while the server runs", func(t *testing.T) {
		code, _, stderr := runParley(t, "secret\n", "user", "add", "-c", cfg, "alice@example.com")
		if code != 0 {
			t.Fatalf("user add: exit code %d; stderr:\n%s", code, stderr)
		}
		code, stdout, stderr := runParley(t, "", "user", "list", "-c", cfg)
		if code != 0 || stdout != "alice@example.com\n" {
			t.Fatalf("user list: exit code %d, stdout %q; stderr:\n%s", code, stdout, stderr)
		}
	})

	stopServe(t, cancel, done, &logs)
	if !strings.Contains(logs.String(), "stopped") {
		t.Errorf("serve did not log that it stopped; log:\n%s", logs.String())
	}
}

func TestServeFailures(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	unknownKey, _ := testConfig{top: `colour = "blue"`}.write(t)
	portInUse, _ := testConfig{c2s: busy.Addr().String()}.write(t)
	tests := []struct {
		name       string
		args       []string // after "serve"
		wantCode   int
		wantStderr string
	}{
		{name: "a config error is printed with its file and line", args: []string{"-c", unknownKey},
			wantCode: 1, wantStderr: unknownKey + ":2: colour: "},
		{name: "an address in use is an error", args: []string{"-c", portInUse},
			wantCode: 1, wantStderr: "parley serve: server: listen on " + busy.Addr().String()},
		{name: "an argument is a usage error", args: []string{"now"},
			wantCode: 2, wantStderr: "unexpected argument \"now\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Should serve start after all, the context stops it and the
			// exit code fails the test.
			ctx, cancel := context.WithTimeout(context.Background(), serveTimeout)
			defer cancel()
			var logs parleytest.Buffer
			code := runContext(ctx, append([]string{"serve"}, tt.args...), strings.NewReader(""), &logs, &logs)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d; log:\n%s", code, tt.wantCode, logs.String())
			}
			if !strings.Contains(logs.String(), tt.wantStderr) {
				t.Errorf("log %q does not contain %q", logs.String(), tt.wantStderr)
			}
		})
	}
}

func TestServePprof(t *testing.T) {
	tests := []struct {
		addr    string
		wantErr string
	}{
		{"127.0.0.1:0", ""},
		{"[::1]:0", ""},
		{"0.0.0.0:0", "loopback addresses only"},
		{"192.0.2.1:6060", "loopback addresses only"},
		{"localhost", "missing port"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			addr, err := servePprof(ctx, tt.addr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				if strings.Contains(tt.addr, "::1") && strings.Contains(err.Error(), "cannot assign") {
					t.Skip("no IPv6 loopback here")
				}
				t.Fatal(err)
			}
			resp, err := http.Get("http://" + addr.String() + "/debug/pprof/goroutine?debug=1")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile") {
				t.Fatalf("%d %.100q", resp.StatusCode, body)
			}
			cancel()
			// Once ctx ends, the listener closes.
			deadline := time.Now().Add(serveTimeout)
			for {
				c, err := net.Dial("tcp", addr.String())
				if err != nil {
					break
				}
				c.Close()
				if time.Now().After(deadline) {
					t.Fatal("the pprof listener is still open after ctx ended")
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

func TestServeFirstSteps(t *testing.T) {
	// The demo echo bot's webhook is Parley's own HTTP listener, so its
	// post_url needs the listener's port before the server starts: the
	// config is written with httpAddr in its place, then the port picked.
	const httpAddr = "HTTP-ADDR"
	httpTable := fmt.Sprintf("[http]\nlisten = [%q]\n", httpAddr)
	echoHost := fmt.Sprintf("[[host]]\nname = \"echo.example.com\"\ntype = \"http_component\"\npost_url = \"http://%s/demo/echo\"\n", httpAddr)
	otherBot := fmt.Sprintf("[[host]]\nname = \"bots.example.com\"\ntype = \"http_component\"\npost_url = \"http://%s/hook\"\n", httpAddr)
	local := func(name string) string { return fmt.Sprintf("[[host]]\nname = %q\n", name) }

	tests := []struct {
		name     string
		cfg      testConfig
		accounts []string // added before serve starts
		// want are the hints expected, by host; a host not in it must get
		// none. Each is the command the hint must hold, with the echo
		// bot's host when it must name one.
		want map[string]string
		echo string
	}{
		{name: "an empty store with the demo echo bot names both",
			cfg:  testConfig{top: httpTable, hosts: local("example.com") + echoHost},
			want: map[string]string{"example.com": "user add alice@example.com"}, echo: "echo.example.com"},
		{name: "an empty store without the demo bot names the command alone",
			cfg:  testConfig{hosts: local("example.com")},
			want: map[string]string{"example.com": "user add alice@example.com"}},
		{name: "a bot that is not the demo echo bot is not named",
			cfg:  testConfig{top: httpTable, hosts: local("example.com") + otherBot},
			want: map[string]string{"example.com": "user add alice@example.com"}},
		{name: "a host with an account gets no hint",
			cfg:      testConfig{top: httpTable, hosts: local("example.com") + echoHost},
			accounts: []string{"bob@example.com"}},
		{name: "of two local hosts only the one without accounts gets a hint",
			cfg:      testConfig{hosts: local("example.com") + local("example.org")},
			accounts: []string{"bob@example.com"},
			want:     map[string]string{"example.org": "user add alice@example.org"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg, logs string
			// A port picked before serve binds it can be taken in
			// between (by another test's connection, say): try another.
			for attempt := 0; ; attempt++ {
				addr, err := parleytest.FreeAddr()
				if err != nil {
					t.Fatal(err)
				}
				c := tt.cfg
				c.top = strings.ReplaceAll(c.top, httpAddr, addr)
				c.hosts = strings.ReplaceAll(c.hosts, httpAddr, addr)
				cfg, _ = c.write(t)
				for _, jid := range tt.accounts {
					if code, _, stderr := runParley(t, "secret\n", "user", "add", "-c", cfg, jid); code != 0 {
						t.Fatalf("user add %s: exit code %d; stderr:\n%s", jid, code, stderr)
					}
				}
				var ok bool
				if logs, ok = serveUntilListening(t, cfg); ok {
					break
				}
				if attempt == 9 || !strings.Contains(logs, "address already in use") {
					t.Fatalf("serve did not start; log:\n%s", logs)
				}
			}
			hints := regexp.MustCompile(`msg="parley: (\S+) has no accounts yet[^"]*"`).FindAllStringSubmatch(logs, -1)
			if len(hints) != len(tt.want) {
				t.Fatalf("%d hints, want %d; log:\n%s", len(hints), len(tt.want), logs)
			}
			for _, h := range hints {
				line, host := h[0], h[1]
				want, ok := tt.want[host]
				if !ok {
					t.Errorf("a hint for %s, which should have none: %s", host, line)
					continue
				}
				// The command is runnable as given: parley, the same
				// config, the host's real name.
				if cmd := "`parley -c " + cfg + " " + want + "`"; !strings.Contains(line, cmd) {
					t.Errorf("the hint does not hold %s: %s", cmd, line)
				}
				if tt.echo != "" && !strings.Contains(line, "send a message to "+tt.echo+",") {
					t.Errorf("the hint does not name the echo bot %s: %s", tt.echo, line)
				}
				if tt.echo == "" && strings.Contains(line, "demo bot") {
					t.Errorf("the hint names a demo bot the config does not have: %s", line)
				}
			}
		})
	}
}

// serveUntilListening runs `parley serve -c cfg` until it logs that it
// listens, stops it, and returns everything it logged. It reports false,
// with the log, when serve ended without listening.
func serveUntilListening(t *testing.T, cfg string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs parleytest.Buffer
	done := make(chan int, 1)
	go func() {
		done <- runContext(ctx, []string{"serve", "-c", cfg}, strings.NewReader(""), &logs, &logs)
	}()
	if _, ok := logs.WaitFor("parley: listening", serveTimeout); !ok {
		cancel()
		<-done
		return logs.String(), false
	}
	// What serve logs on starting comes before it waits for ctx: once it
	// returns, the log is complete.
	stopServe(t, cancel, done, &logs)
	return logs.String(), true
}

func TestShellQuote(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"parley.toml", "parley.toml"},
		{"./bin/parley", "./bin/parley"},
		{"/etc/parley/parley.toml", "/etc/parley/parley.toml"},
		{"my config.toml", "'my config.toml'"},
		{"it's.toml", `'it'\''s.toml'`},
		{"", "''"},
	} {
		if got := shellQuote(tt.in); got != tt.want {
			t.Errorf("shellQuote(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// stopServe cancels a running serve and fails the test unless it returns
// 0 within serveTimeout.
func stopServe(t *testing.T, cancel context.CancelFunc, done <-chan int, logs *parleytest.Buffer) {
	t.Helper()
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve: exit code %d, want 0; log:\n%s", code, logs.String())
		}
	case <-time.After(serveTimeout):
		t.Fatalf("serve did not return after its context ended; log:\n%s", logs.String())
	}
}

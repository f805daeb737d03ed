package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
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
	var logs syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runContext(ctx, []string{"serve", "-c", cfg}, strings.NewReader(""), &logs, &logs)
	}()
	text, ok := logs.waitFor("parley: listening", serveTimeout)
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

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve: exit code %d, want 0; log:\n%s", code, logs.String())
		}
	case <-time.After(serveTimeout):
		t.Fatalf("serve did not return after its context ended; log:\n%s", logs.String())
	}
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
			var logs syncBuffer
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

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/server/local"
)

// runS2STool runs parley-load's s2s scenario from the first of servers
// to the second and returns its exit code, output and JSON line.
func runS2STool(t *testing.T, a, b *parleytest.Server, args ...string) (int, string, map[string]any) {
	t.Helper()
	args = append([]string{"s2s", "-addr", a.Addr, "-domain", "a.example", "-peer-addr", b.Addr,
		"-peer-domain", "b.example", "-timeout", "60s"}, args...)
	var stdout, stderr bytes.Buffer
	o := &options{progress: &stderr}
	if code, ok := parse(args, o, &stdout, &stderr); !ok {
		t.Fatalf("parley-load %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
	}
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

// federated starts two Parleys, a.example and b.example, that federate
// over loopback (static routes, dialback with their self-signed
// certificates), with open registration and no rate limit.
func federated(t *testing.T, deny bool) (a, b *parleytest.Server) {
	t.Helper()
	servers := parleytest.StartFederated(t, []string{"a.example", "b.example"}, parleytest.WithConfig(func(c *conf.Config) {
		local.LocalOptionsOf(&c.Hosts[0]).Registration = local.RegistrationOpen
		c.Limits.Rate = 0
		if deny && c.Hosts[0].Name == "b.example" {
			c.S2S.Deny = []string{"a.example"}
		}
	}))
	return servers[0], servers[1]
}

func TestS2SScenario(t *testing.T) {
	t.Run("two_pairs_cross_one_stream_and_lose_nothing", func(t *testing.T) {
		a, b := federated(t, false)
		pid := strconv.Itoa(os.Getpid()) // both servers run in this process
		code, out, res := runS2STool(t, a, b, "-pairs", "2", "-window", "4", "-duration", "1s", "-create",
			"-pid", pid, "-peer-pid", pid)
		if code != 0 || res["ok"] != true || num(t, res, "errors") != 0 {
			t.Fatalf("exit %d, ok %v, error %v", code, res["ok"], res["error"])
		}
		sent, delivered := num(t, res, "sent"), num(t, res, "delivered")
		if sent == 0 || delivered != sent || num(t, res, "lost") != 0 {
			t.Errorf("sent %v, delivered %v, lost %v", sent, delivered, res["lost"])
		}
		if num(t, res, "latency.max_us") <= 0 || num(t, res, "msgs_per_s") <= 0 {
			t.Errorf("no latency or rate: %v", res)
		}
		for _, k := range []string{"msgs_per_server_cpu_s", "msgs_per_peer_server_cpu_s", "msgs_per_both_servers_cpu_s"} {
			num(t, res, k)
		}
		if !strings.Contains(out, "receiving server CPU") {
			t.Errorf("the summary has no line for the receiving server:\n%s", out)
		}
		waitNoSessions(t, a)
		waitNoSessions(t, b)
	})
	t.Run("servers_that_do_not_federate_fail_the_run", func(t *testing.T) {
		a, b := federated(t, true)
		code, _, res := runS2STool(t, a, b, "-pairs", "1", "-duration", "200ms", "-create")
		if code != 1 || res["ok"] != false || !strings.Contains(res["error"].(string), "federate") {
			t.Fatalf("exit %d, ok %v, error %v; want a failed warm-up", code, res["ok"], res["error"])
		}
	})
}

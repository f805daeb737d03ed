package main

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name string
		stat string
		want time.Duration
	}{
		{"plain_name", "1234 (parley) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 100 0 0", 3 * time.Second},
		{"name_with_spaces_and_parentheses", "1234 (a b) (c)) R 1 1 1 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 0 0", 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.stat))
			if err != nil || got != tt.want {
				t.Errorf("parseStat = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	t.Run("too_short_is_an_error", func(t *testing.T) {
		if _, err := parseStat([]byte("1 (x) S 1 2")); err == nil {
			t.Error("no error")
		}
	})
}

func TestParseRSS(t *testing.T) {
	got, err := parseRSS([]byte("Name:\tparley\nVmPeak:\t  900 kB\nVmRSS:\t   51234 kB\nThreads:\t9\n"))
	if err != nil || got != 51234 {
		t.Errorf("parseRSS = %d, %v; want 51234", got, err)
	}
	if _, err := parseRSS([]byte("Name:\tkthreadd\n")); err == nil {
		t.Error("no VmRSS: no error")
	}
}

func TestThisProcess(t *testing.T) {
	if _, err := processCPU(os.Getpid()); err != nil {
		t.Errorf("processCPU: %v", err)
	}
	if rss, err := processRSS(os.Getpid()); err != nil || rss <= 0 {
		t.Errorf("processRSS = %d, %v", rss, err)
	}
	if err := raiseNoFile(64); err != nil {
		t.Errorf("raiseNoFile(64): %v", err)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Microsecond)
	}
	l := summarize(d)
	if l.P50 != 50 || l.P99 != 99 || l.Max != 100 {
		t.Errorf("summarize(1..100 µs) = %+v, want 50, 99, 100", l)
	}
	if l := summarize([]time.Duration{7 * time.Microsecond}); l.P50 != 7 || l.P99 != 7 || l.Max != 7 {
		t.Errorf("one value: %+v", l)
	}
	if l := summarize(nil); l != (latency{}) {
		t.Errorf("no values: %+v", l)
	}
}

func TestChooseMechanism(t *testing.T) {
	tests := []struct {
		name    string
		offered []string
		want    string
		got     string
		wantErr bool
	}{
		{"scram_sha_256_first", []string{"PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"}, "", "SCRAM-SHA-256", false},
		{"then_scram_sha_1", []string{"PLAIN", "SCRAM-SHA-1"}, "", "SCRAM-SHA-1", false},
		{"plain_last", []string{"PLAIN"}, "", "PLAIN", false},
		{"nothing_in_common", []string{"DIGEST-MD5"}, "", "", true},
		{"forced_and_offered", []string{"SCRAM-SHA-256", "PLAIN"}, "PLAIN", "PLAIN", false},
		{"forced_and_not_offered", []string{"SCRAM-SHA-256"}, "PLAIN", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := chooseMechanism(tt.offered, tt.want)
			if got != tt.got || (err != nil) != tt.wantErr {
				t.Errorf("chooseMechanism = %q, %v", got, err)
			}
		})
	}
}

func TestSendTime(t *testing.T) {
	if d, err := sendTime("t123456 xxxx"); err != nil || d != 123456 {
		t.Errorf("sendTime = %v, %v", d, err)
	}
	for _, body := range []string{"hello", "t", "tx 1"} {
		if _, err := sendTime(body); err == nil {
			t.Errorf("sendTime(%q): no error", body)
		}
	}
}

// TestTransportPairingsRefused: what cannot run over WebSocket is refused
// before anything connects, with the reason.
func TestTransportPairingsRefused(t *testing.T) {
	ws := []string{"-transport", "ws", "-ws-url", "ws://127.0.0.1:5280/xmpp-websocket"}
	tests := []struct {
		name string
		args []string
		want string // "" when accepted
	}{
		{"msg over ws", append([]string{"msg"}, ws...), ""},
		{"s2s over ws", append([]string{"s2s", "-peer-addr", "127.0.0.1:1", "-peer-domain", "peer.localhost"}, ws...), "s2s needs -transport tcp"},
		{"s2s over tcp", []string{"s2s", "-peer-addr", "127.0.0.1:1", "-peer-domain", "peer.localhost"}, ""},
		{"a stalled client over ws", append([]string{"msg", "-stalled", "1"}, ws...), "-stalled needs -transport tcp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o options
			var stderr strings.Builder
			code, ok := parse(tt.args, &o, io.Discard, &stderr)
			switch {
			case tt.want == "" && !ok:
				t.Fatalf("refused (%d): %s", code, stderr.String())
			case tt.want != "" && (ok || !strings.Contains(stderr.String(), tt.want)):
				t.Fatalf("ok %v, stderr %q; want a refusal saying %q", ok, stderr.String(), tt.want)
			}
		})
	}
}

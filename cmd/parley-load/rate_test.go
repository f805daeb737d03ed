package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestPacers(t *testing.T) {
	t.Run("staggered_slots", func(t *testing.T) {
		start := time.Unix(1000, 0)
		ps := newPacers(4, 200, start)
		for i, p := range ps {
			// 4 clients at 200/s in all: each every 20 ms, 5 ms apart.
			if p.every != 20*time.Millisecond {
				t.Errorf("pacer %d: every %v, want 20ms", i, p.every)
			}
			if want := start.Add(time.Duration(i) * 5 * time.Millisecond); !p.next.Equal(want) {
				t.Errorf("pacer %d: first slot %v, want %v", i, p.next.Sub(start), want.Sub(start))
			}
		}
	})
	t.Run("a_client_behind_skips_what_it_missed", func(t *testing.T) {
		// One slot an hour, the first ten and a half hours ago: the ten
		// missed slots are skipped, not sent in a burst, and the next is
		// due now.
		first := time.Now().Add(-10*time.Hour - 30*time.Minute)
		p := newPacers(1, 1.0/3600, first)[0]
		stop := make(chan struct{})
		slot, ok := p.wait(context.Background(), stop)
		if !ok {
			t.Fatal("wait = false with nothing stopped")
		}
		if p.skipped != 10 {
			t.Errorf("skipped %d slots, want 10", p.skipped)
		}
		// The message is timed from its slot, the eleventh, half an hour
		// ago: not from now.
		if want := first.Add(10 * time.Hour); !slot.Equal(want) {
			t.Errorf("slot %v after the first, want %v", slot.Sub(first), want.Sub(first))
		}
		// The slot after is half an hour away: stop ends the wait.
		close(stop)
		if _, ok := p.wait(context.Background(), stop); ok {
			t.Error("wait = true after stop")
		}
	})
}

func TestMsgRate(t *testing.T) {
	s, hook := startServer(t, nil)
	const rate, clients = 200, 4
	code, out, res := runTool(t, s, hook, "msg", "-pairs", "2", "-window", "4", "-duration", "1s", "-rate", "200", "-create")
	if code != 0 || res["ok"] != true {
		t.Fatalf("exit %d, ok %v, error %v", code, res["ok"], res["error"])
	}
	if r := num(t, res, "rate_per_s"); r != rate {
		t.Errorf("rate_per_s = %v, want %v", r, rate)
	}
	if !strings.Contains(out, "paced at 200 msgs/s") {
		t.Errorf("the summary does not give the rate:\n%s", out)
	}
	sent, delivered := num(t, res, "sent"), num(t, res, "delivered")
	if delivered != sent || num(t, res, "lost") != 0 {
		t.Errorf("sent %v, delivered %v", sent, delivered)
	}
	// Each client sends in its slots only: over the measured window (which
	// includes the sending time, however late the end came) at most
	// rate×window plus one slot per client. Unpaced, the same run sends
	// thousands. The lower bound only says that it sent at all.
	window := num(t, res, "window_s")
	if limit := rate*window + clients; sent > limit*1.5 || sent < 10 {
		t.Errorf("sent %v in a %.2f s window at -rate %d: want at least 10 and at most about %.0f", sent, window, rate, limit)
	}
	waitNoSessions(t, s)
}

func TestRateUsage(t *testing.T) {
	for _, v := range []string{"-1", "NaN", "Inf"} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{"msg", "-rate", v}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "-rate") {
			t.Errorf("-rate %s: exit %d, stderr:\n%s", v, code, stderr.String())
		}
	}
}

package c2s

import (
	"fmt"
	"testing"
	"time"
)

// TestSMGoneBounds: the counts of ended sessions are kept per user, the
// smGoneMax most recent, each told once and for smGoneFor.
func TestSMGoneBounds(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		puts   int           // sessions of alice that ended, id i with h i, a second apart
		user   string        // who asks
		id     string        // for which id
		after  time.Duration // after the last put
		h      uint32
		found  bool
		second bool // asked again, found again
	}{
		{"the last one", 3, "alice@localhost", "s2", 0, 2, true, false},
		{"the first of ten", smGoneMax, "alice@localhost", "s0", 0, 0, true, false},
		{"the first of eleven is dropped", smGoneMax + 1, "alice@localhost", "s0", 0, 0, false, false},
		{"the second of eleven is kept", smGoneMax + 1, "alice@localhost", "s1", 0, 1, true, false},
		{"another user's", 3, "bob@localhost", "s2", 0, 0, false, false},
		{"an unknown id", 3, "alice@localhost", "s9", 0, 0, false, false},
		{"too old", 1, "alice@localhost", "s0", smGoneFor, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g smGone
			for i := range tt.puts {
				g.put("alice@localhost", fmt.Sprintf("s%d", i), uint32(i), t0.Add(time.Duration(i)*time.Second))
			}
			now := t0.Add(time.Duration(tt.puts-1)*time.Second + tt.after)
			h, ok := g.take(tt.user, tt.id, now)
			if ok != tt.found || ok && h != tt.h {
				t.Fatalf("take(%s, %s) = %d, %v; want %d, %v", tt.user, tt.id, h, ok, tt.h, tt.found)
			}
			if _, ok := g.take(tt.user, tt.id, now); ok != tt.second {
				t.Errorf("asked again: found %v", ok)
			}
		})
	}
	// A day later the next put sweeps what is too old: nothing is left.
	var g smGone
	g.put("alice@localhost", "old", 1, t0)
	g.put("bob@localhost", "new", 2, t0.Add(smGoneFor+2*time.Minute))
	if _, ok := g.byUser["alice@localhost"]; ok {
		t.Errorf("a count older than smGoneFor is kept: %v", g.byUser)
	}
}

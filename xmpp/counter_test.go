package xmpp

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCounterPacesToTheRate(t *testing.T) {
	tests := []struct {
		name              string
		rate, burst, size int64
		chunk             int
		wantSlept         time.Duration
	}{
		{"a read within the burst does not wait", 1000, 500, 400, 100, 0},
		{"reads past the burst wait for the excess", 1000, 100, 600, 50, 500 * time.Millisecond},
		{"big reads wait the same in total", 1000, 100, 600, 600, 500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := time.Unix(1000, 0)
			var slept time.Duration
			c := &counter{
				r: strings.NewReader(strings.Repeat("x", int(tt.size))), rate: tt.rate, burst: tt.burst, tokens: tt.burst,
				now:   func() time.Time { return clock },
				sleep: func(d time.Duration) { slept += d; clock = clock.Add(d) },
			}
			buf := make([]byte, tt.chunk)
			var total int64
			for {
				n, err := c.Read(buf)
				total += int64(n)
				if err != nil {
					break
				}
			}
			if total != tt.size {
				t.Fatalf("read %d bytes, want %d", total, tt.size)
			}
			if slept != tt.wantSlept {
				t.Fatalf("slept %v, want %v", slept, tt.wantSlept)
			}
		})
	}
}

func TestCounterStopsAtTheBudget(t *testing.T) {
	c := &counter{r: strings.NewReader(strings.Repeat("x", 100)), max: 10}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if n != 10 || err != nil {
		t.Fatalf("first read: %d, %v; want 10 bytes", n, err)
	}
	if _, err := c.Read(buf); !errors.Is(err, errTooBig) {
		t.Fatalf("second read: %v, want errTooBig", err)
	}
}

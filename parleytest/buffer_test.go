package parleytest

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestBufferWaitFor(t *testing.T) {
	var b Buffer
	go func() {
		for i := range 5 {
			fmt.Fprintf(&b, "line %d\n", i)
			time.Sleep(time.Millisecond)
		}
	}()
	text, ok := b.WaitFor("line 4", Timeout)
	if !ok || !strings.HasPrefix(text, "line 0\n") || !strings.Contains(text, "line 4") {
		t.Fatalf("WaitFor(line 4) = %q, %v", text, ok)
	}
	if text, ok := b.WaitFor("line 5", 10*time.Millisecond); ok || text != b.String() {
		t.Fatalf("WaitFor(line 5) = %q, %v, want the contents and false", text, ok)
	}
}

func TestBufferTail(t *testing.T) {
	var b Buffer
	fmt.Fprint(&b, "one\ntwo\n"+strings.Repeat("x", 12)+"\n")
	tests := []struct {
		n, width int
		want     string
	}{
		{1, 100, strings.Repeat("x", 12)},
		{2, 10, "two\nxxxxxxxxxx..."},
		{9, 100, "one\ntwo\n" + strings.Repeat("x", 12)},
	}
	for _, tt := range tests {
		if got := b.Tail(tt.n, tt.width); got != tt.want {
			t.Errorf("Tail(%d, %d) = %q, want %q", tt.n, tt.width, got, tt.want)
		}
	}
}

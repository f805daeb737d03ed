package xmpp

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// chunks is a transport that hands out one chunk per Read, as a socket
// hands out what has arrived. A chunk marked fed must come through feed
// first: the Reader reading it itself means it did not idle where it
// could have.
type chunks struct {
	t     *testing.T
	parts []string
	fed   []bool
}

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.parts) == 0 {
		return 0, io.EOF
	}
	if c.fed[0] {
		c.t.Errorf("the reader read %q itself instead of going idle before it", c.parts[0])
		c.fed[0] = false
	}
	n := copy(p, c.parts[0])
	c.parts[0] = c.parts[0][n:]
	if c.parts[0] == "" {
		c.parts, c.fed = c.parts[1:], c.fed[1:]
	}
	return n, nil
}

// feed stands for a caller that waited for its peer by reading one byte of
// the transport itself: it takes the first byte of the next chunk and
// gives it to Prepend.
func (c *chunks) feed(r *Reader) {
	b := c.parts[0][0]
	c.parts[0] = c.parts[0][1:]
	c.fed[0] = false
	if c.parts[0] == "" {
		c.parts, c.fed = c.parts[1:], c.fed[1:]
	}
	r.Prepend(b)
}

// newChunks is a transport of the stream header, then parts; a part that
// starts with '|' must be fed.
func newChunks(t *testing.T, parts ...string) *chunks {
	c := &chunks{t: t, parts: []string{header}, fed: []bool{false}}
	for _, p := range parts {
		c.fed = append(c.fed, strings.HasPrefix(p, "|"))
		c.parts = append(c.parts, strings.TrimPrefix(p, "|"))
	}
	return c
}

func TestIdleReaderHoldsNoBuffer(t *testing.T) {
	tests := []struct {
		name string
		// parts after the header: each arrives in one Read. A part that
		// starts with '|' arrives while the reader is idle: the caller
		// reads its first byte and feeds it through Prepend.
		parts []string
		want  []string // tags of the elements read, in order
	}{
		{"one stanza per read",
			[]string{"|<message><body>a</body></message>", "|<iq type='get' id='1'/>"},
			[]string{"message", "iq"}},
		{"two stanzas in one read: not idle between them",
			[]string{"|<message/><presence/>"},
			[]string{"message", "presence"}},
		{"a stanza cut across reads",
			[]string{"|<mess", "age><bo", "dy>x</body></message>"},
			[]string{"message"}},
		{"a keepalive fed alone leaves the reader idle",
			[]string{"| ", "|\n", "|<presence/>"},
			[]string{"presence"}},
		{"a one-byte stanza start",
			[]string{"|<", "iq type='get' id='2'/>"},
			[]string{"iq"}},
		{"deep stanzas, then the stream's prefixes after Compact",
			[]string{"|<message><a xmlns='urn:a'><b xmlns:p='urn:p'><p:c><d/></p:c></b></a></message>", "|<iq xml:lang='de' type='get' id='3'><stream:x/></iq>"},
			[]string{"message", "iq"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newChunks(t, tt.parts...)
			r := NewReader(src, Limits{})
			if _, err := r.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			var got []string
			for len(got) < len(tt.want) {
				if r.Idle() {
					if r.br != nil || r.tag != nil || r.arena != nil || r.evs != nil || r.sc != nil {
						t.Fatal("Idle reported true, but the reader holds its buffer or working memory")
					}
					r.Compact()
					// What is left is the rounding to the allocator's size classes.
					if cap(r.scope)-len(r.scope) >= 16 || cap(r.binds)-len(r.binds) > 1 || cap(r.frames)-len(r.frames) > 1 {
						t.Fatalf("after Compact: scope %d/%d, binds %d/%d, frames %d/%d (len/cap)",
							len(r.scope), cap(r.scope), len(r.binds), cap(r.binds), len(r.frames), cap(r.frames))
					}
					if len(src.parts) == 0 || !src.fed[0] {
						t.Fatalf("idle with %q next, which the reader should read itself", src.parts)
					}
					src.feed(r)
					continue
				}
				el, err := r.ReadElement()
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, el.Tag)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("read %v, want %v", got, tt.want)
			}
			if len(src.parts) != 0 {
				t.Fatalf("%q left unread", src.parts)
			}
		})
	}
}

func TestPrependedBytesCountAgainstTheSizeLimit(t *testing.T) {
	body := strings.Repeat("z", 300)
	src := newChunks(t, "|<message><body>"+body+"</body></message>")
	r := NewReader(src, Limits{MaxStanza: 200})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if !r.Idle() {
		t.Fatal("not idle after the header")
	}
	src.feed(r)
	if r.Buffered() != 1 {
		t.Fatalf("Buffered = %d after Prepend, want 1", r.Buffered())
	}
	_, err := r.ReadElement()
	var se *StreamError
	if !errors.As(err, &se) || se.Condition != StreamPolicyViolation {
		t.Fatalf("err = %v, want <policy-violation/>", err)
	}
}

func TestIdleAfterResetAndEnd(t *testing.T) {
	src := newChunks(t, "</stream:stream>")
	r := NewReader(src, Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if !r.Idle() {
		t.Fatal("not idle after the header")
	}
	if _, err := r.ReadElement(); !errors.Is(err, ErrStreamClosed) {
		t.Fatalf("err = %v, want ErrStreamClosed", err)
	}
	if !r.Idle() {
		t.Fatal("not idle after the end of the stream")
	}
	// A Reset while idle points the next read at the new transport.
	r.Reset(strings.NewReader(header + "<presence/>"))
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if el, err := r.ReadElement(); err != nil || el.Tag != "presence" {
		t.Fatalf("after Reset: %v, %v", el, err)
	}
}

func BenchmarkReadMessageIdleBetween(b *testing.B) {
	msg := `<message to='juliet@example.com/balcony' type='chat' id='x1'><body>` + strings.Repeat("a", 100) + `</body></message>`
	src := &repeater{head: header, body: msg}
	r := NewReader(src, Limits{})
	if _, err := r.ReadHeader(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		r.Idle()
		if _, err := r.ReadElement(); err != nil {
			b.Fatal(err)
		}
	}
}

// repeater sends head once, then body forever, one copy per Read.
type repeater struct {
	head, body string
	sent       bool
}

func (s *repeater) Read(p []byte) (int, error) {
	if !s.sent {
		s.sent = true
		return copy(p, s.head), nil
	}
	return copy(p, s.body), nil
}

// TestFeed: what a caller read while the Reader was idle goes through Feed:
// white space in front is taken in bulk and leaves the Reader idle, the rest
// is read before the transport, and everything counts against the limits.
func TestFeed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		feeds    []string // each given to Feed while idle, in turn
		limits   Limits
		idle     bool   // after the last Feed
		buffered int    // after the last Feed
		want     string // the next element's name, or the stream error's condition
	}{
		{name: "white space alone leaves the reader idle", feeds: []string{"  \n\t\r ", strings.Repeat(" ", 100000)}, idle: true, want: "presence"},
		{name: "white space then a stanza", feeds: []string{"   <message><body>hi</body></message>"}, buffered: len("<message><body>hi</body></message>"), want: "message"},
		{name: "a stanza cut in two feeds", feeds: []string{"  <message><bo"}, buffered: len("<message><bo"), want: "message"},
		{name: "fed bytes count against the size limit", limits: Limits{MaxStanza: 100},
			feeds: []string{" <message><body>" + strings.Repeat("z", 300) + "</body></message>"}, buffered: 332, want: string(StreamPolicyViolation)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rest := "<presence/>"
			if tc.name == "a stanza cut in two feeds" {
				rest = "dy>hi</body></message>"
			}
			// The header comes in a read of its own, so the Reader can idle.
			r := NewReader(newChunks(t, rest), tc.limits)
			if _, err := r.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			idle := r.Idle()
			for _, f := range tc.feeds {
				if !idle {
					t.Fatalf("not idle before feeding %q", f)
				}
				idle = r.Feed([]byte(f))
			}
			if idle != tc.idle || r.Buffered() != tc.buffered {
				t.Fatalf("after feeding: idle %v, buffered %d; want %v, %d", idle, r.Buffered(), tc.idle, tc.buffered)
			}
			el, err := r.ReadElement()
			got := ""
			if err != nil {
				got = condition(err)
			} else {
				got = el.Tag
			}
			if got != tc.want {
				t.Fatalf("next element: %q (%v), want %q", got, err, tc.want)
			}
		})
	}
}

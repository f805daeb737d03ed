package xmpp

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/beevik/etree"
)

func TestWriterHoldsABufferOnlyUntilFlush(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out)
	if w.bw != nil {
		t.Fatal("a new Writer holds a buffer")
	}
	if err := w.Flush(); err != nil || w.bw != nil {
		t.Fatalf("Flush with nothing written: err %v, holds a buffer: %v", err, w.bw != nil)
	}
	if err := w.WriteHeader(Header{NS: NSClient, ID: "s1", From: "example.com", Version: "1.0"}); err != nil {
		t.Fatal(err)
	}
	el := etree.NewElement("message")
	el.CreateAttr("to", "juliet@example.com")
	el.CreateElement("body").SetText("a < b & 'c'")
	if err := w.WriteElement(el); err != nil {
		t.Fatal(err)
	}
	if w.bw == nil || w.Buffered() == 0 || out.Len() != 0 {
		t.Fatalf("before Flush: buffered %d, written %d; want everything buffered", w.Buffered(), out.Len())
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if w.bw != nil || w.Buffered() != 0 {
		t.Fatal("the Writer keeps its buffer after Flush")
	}
	if err := w.WriteEnd(); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='example.com' version='1.0'>` +
		`<message to="juliet@example.com"><body>a &lt; b &amp; 'c'</body></message></stream:stream>`
	if out.String() != want {
		t.Fatalf("wrote\n%s\nwant\n%s", out.String(), want)
	}
}

func TestWriterWritesElementsLargerThanItsBuffer(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out)
	body := strings.Repeat("x", 3*writeBufferSize+17)
	el := etree.NewElement("message")
	el.CreateElement("body").SetText(body)
	_ = w.WriteElement(el)
	_ = w.WriteRaw(" ")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if want := "<message><body>" + body + "</body></message> "; out.String() != want {
		t.Fatalf("wrote %d bytes, want %d", out.Len(), len(want))
	}
}

// failWriter fails every write after the first n bytes.
type failWriter struct {
	n   int
	out bytes.Buffer
}

var errBroken = errors.New("broken pipe")

func (f *failWriter) Write(p []byte) (int, error) {
	if f.out.Len()+len(p) > f.n {
		return 0, errBroken
	}
	return f.out.Write(p)
}

func TestWriterAfterAFailedFlushWritesNothing(t *testing.T) {
	f := &failWriter{n: 5}
	w := NewWriter(f)
	_ = w.WriteRaw("<presence/>")
	if err := w.Flush(); !errors.Is(err, errBroken) {
		t.Fatalf("Flush = %v, want %v", err, errBroken)
	}
	if w.bw != nil {
		t.Fatal("a failed Flush keeps the buffer")
	}
	// A later write must not put the rest of a stream after a partial
	// one, even if the transport would take it now.
	f.n = 1 << 20
	if err := w.WriteRaw("</stream:stream>"); !errors.Is(err, errBroken) {
		t.Fatalf("WriteRaw after a failed Flush = %v, want %v", err, errBroken)
	}
	if err := w.Flush(); !errors.Is(err, errBroken) {
		t.Fatalf("second Flush = %v, want %v", err, errBroken)
	}
	if f.out.Len() != 0 || w.bw != nil {
		t.Fatalf("wrote %q after the failure, holds a buffer: %v", f.out.String(), w.bw != nil)
	}

	// Reset starts over on a new transport.
	var out bytes.Buffer
	w.Reset(&out)
	_ = w.WriteRaw("<a/>")
	if err := w.Flush(); err != nil || out.String() != "<a/>" {
		t.Fatalf("after Reset: %v, wrote %q", err, out.String())
	}
}

func TestWriterResetDropsWhatIsBuffered(t *testing.T) {
	var first, second bytes.Buffer
	w := NewWriter(&first)
	_ = w.WriteRaw("dropped")
	w.Reset(&second)
	if w.bw != nil || w.Buffered() != 0 {
		t.Fatal("Reset keeps the buffer")
	}
	_ = w.WriteRaw("<proceed/>")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if first.Len() != 0 || second.String() != "<proceed/>" {
		t.Fatalf("first transport got %q, second %q", first.String(), second.String())
	}
}

package xmpp

import (
	"strings"
	"testing"

	"github.com/beevik/etree"
)

// frames is a FrameWriter that keeps each frame, and what was flushed.
type frames struct {
	cur     strings.Builder
	ended   []string
	flushed []string
}

func (f *frames) Write(p []byte) (int, error) { return f.cur.Write(p) }
func (f *frames) EndFrame()                   { f.ended = append(f.ended, f.cur.String()); f.cur.Reset() }
func (f *frames) Flush() error {
	f.flushed = append(f.flushed, f.ended...)
	f.ended = nil
	return nil
}

// TestFramedWriterWritesOneElementPerFrame checks RFC 7395 §3.3's framing:
// <open/> and <close/> instead of the stream tags, and each element a
// frame that declares its namespace.
func TestFramedWriterWritesOneElementPerFrame(t *testing.T) {
	features := etree.NewElement("stream:features")
	features.CreateElement("bind").CreateAttr("xmlns", NSBind)
	msg := etree.NewElement("message")
	msg.CreateAttr("to", "juliet@example.com")
	msg.CreateElement("body").SetText("a < b")
	success := NewElementNS(NSSASL, "success")
	streamErr := NewStreamError(StreamPolicyViolation, "").Element()
	big := etree.NewElement("message")
	big.CreateElement("body").SetText(strings.Repeat("x", 3*writeBufferSize))

	tests := []struct {
		name  string
		write func(w *Writer) error
		want  string
	}{
		{"header", func(w *Writer) error {
			return w.WriteHeader(Header{NS: NSClient, ID: "s1", From: "example.com", Version: "1.0", Lang: "en"})
		}, `<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='s1' from='example.com' version='1.0' xml:lang='en'/>`},
		{"features", func(w *Writer) error { return w.WriteElement(features) },
			`<stream:features xmlns:stream="http://etherx.jabber.org/streams"><bind xmlns="` + NSBind + `"/></stream:features>`},
		{"stanza", func(w *Writer) error { return w.WriteElement(msg) },
			`<message xmlns="jabber:client" to="juliet@example.com"><body>a &lt; b</body></message>`},
		{"own namespace", func(w *Writer) error { return w.WriteElement(success) },
			`<success xmlns="` + NSSASL + `"/>`},
		{"stream error", func(w *Writer) error { return w.WriteElement(streamErr) },
			`<stream:error xmlns:stream="http://etherx.jabber.org/streams"><policy-violation xmlns="` + NSStreams + `"/></stream:error>`},
		{"larger than the buffer", func(w *Writer) error { return w.WriteElement(big) },
			`<message xmlns="jabber:client"><body>` + strings.Repeat("x", 3*writeBufferSize) + `</body></message>`},
		{"keepalive", func(w *Writer) error { return w.WriteRaw(" ") }, ""},
		{"end", func(w *Writer) error { return w.WriteEnd() }, `<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f frames
			w := NewFramedWriter(&f, NSClient)
			if err := tt.write(w); err != nil {
				t.Fatal(err)
			}
			if len(f.flushed) != 0 {
				t.Fatalf("frames sent before Flush: %q", f.flushed)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			var want []string
			if tt.want != "" {
				want = []string{tt.want}
			}
			if strings.Join(f.flushed, "|") != strings.Join(want, "|") || len(f.flushed) != len(want) || f.cur.Len() != 0 {
				t.Fatalf("frames %q (unended %q), want %q", f.flushed, f.cur.String(), want)
			}
			if w.bw != nil {
				t.Fatal("the Writer keeps its buffer after Flush")
			}
		})
	}
}

package xmpp

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/beevik/etree"
)

// TestWeightTracksMemory: Weight is within a factor of two of the heap
// that stanzas read by the stream reader hold, for the shapes that matter:
// many empty elements (the amplification of issue #17 row 2), many
// attributes, long text, and an ordinary chat message.
func TestWeightTracksMemory(t *testing.T) {
	const hdr = `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='a' version='1.0'>`
	text := strings.Repeat("x", 200000)
	for _, tc := range []struct {
		name   string
		stanza string
	}{
		{"20,000 empty children", "<message>" + strings.Repeat("<a/>", 20000) + "</message>"},
		{"children with attributes", "<message>" + strings.Repeat("<item jid='someone@example.com' name='Some One' subscription='both'/>", 2000) + "</message>"},
		{"200 KB of text", "<message><body>" + text + "</body></message>"},
		{"a chat message", "<message to='bob@example.com' type='chat' id='a1'><body>hello there</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := max(4, 1<<20/len(tc.stanza)) // stanzas: about a MiB of input, for the small ones to show on the heap
			var in strings.Builder
			in.Grow(len(hdr) + n*len(tc.stanza))
			in.WriteString(hdr)
			for range n {
				in.WriteString(tc.stanza)
			}
			input := in.String()
			r := NewReader(strings.NewReader(input), Limits{MaxStanza: 1 << 30, MaxAttrs: 64, MaxDepth: 64})
			if _, err := r.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			els := make([]*etree.Element, 0, n)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for range n {
				el, err := r.ReadElement()
				if err != nil {
					t.Fatal(err)
				}
				els = append(els, el)
			}
			r.Idle() // the reader's buffers go back to their pool
			runtime.GC()
			runtime.ReadMemStats(&after)
			held := (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / float64(n)
			w := float64(Weight(els[0]))
			// The input stays alive to the end: freed between the two
			// readings, it would hide what the stanzas hold.
			runtime.KeepAlive(els)
			runtime.KeepAlive(r)
			runtime.KeepAlive(input)
			t.Logf("held %.0f bytes a stanza, weight %.0f", held, w)
			if w < held/2 || w > held*2 {
				t.Errorf("weight %.0f, but a stanza holds %.0f bytes of heap", w, held)
			}
		})
	}
}

// BenchmarkWeight is what a bound in bytes costs each queued stanza.
func BenchmarkWeight(b *testing.B) {
	el := etree.NewElement("message")
	el.CreateAttr("to", "bob@example.com")
	el.CreateAttr("type", "chat")
	el.CreateAttr("id", "a1")
	el.CreateElement("body").SetText("hello there")
	el.CreateElement("active").CreateAttr("xmlns", "http://jabber.org/protocol/chatstates")
	b.ReportAllocs()
	var n int64
	for range b.N {
		n += Weight(el)
	}
	_ = fmt.Sprint(n)
}

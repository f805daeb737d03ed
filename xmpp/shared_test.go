package xmpp

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/beevik/etree"
)

// fanOutCopies returns n roots like components/muc's to makes them: tmpl's
// name and attributes, a to of their own, and tmpl's children shared (the
// same array, cut to its length).
func fanOutCopies(tmpl *etree.Element, n int) []*etree.Element {
	kids := tmpl.Child[:len(tmpl.Child):len(tmpl.Child)]
	els := make([]*etree.Element, n)
	for i := range els {
		el := &etree.Element{Space: tmpl.Space, Tag: tmpl.Tag, Child: kids}
		el.Attr = append(append([]etree.Attr(nil), tmpl.Attr...),
			etree.Attr{Key: "to", Value: fmt.Sprintf("u%d@example.com/r&'<%d>", i, i)})
		els[i] = el
	}
	return els
}

// streamBytes writes els on a byte stream, or a framed one, flushing
// after each, and returns what was sent.
func streamBytes(els []*etree.Element, framed bool) string {
	if framed {
		f := &frames{}
		w := NewFramedWriter(f, NSClient)
		for _, el := range els {
			_ = w.WriteElement(el)
			_ = w.Flush()
		}
		return strings.Join(f.flushed, "|")
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, el := range els {
		_ = w.WriteElement(el)
		_ = w.Flush()
	}
	return buf.String()
}

// entryOf returns the table's entry for kids, nil if there is none.
func entryOf(kids []etree.Token) *sharedKids {
	if len(kids) == 0 {
		return nil
	}
	if e := sharedSlot(&kids[0]).Load(); e != nil && e.first == &kids[0] {
		return e
	}
	return nil
}

// checkShared writes the copies of tmpl with their children shared and
// fails t unless every stream gets the bytes it gets without sharing,
// and unless the shared serialization, when one was kept, was used by
// each of the writes it was made for. It reports whether one was kept.
func checkShared(t *testing.T, tmpl *etree.Element) (shared bool) {
	t.Helper()
	const n = 3
	for _, framed := range []bool{false, true} {
		els := fanOutCopies(tmpl, n)
		want := streamBytes(els, framed)
		ShareChildren(els[0].Child, n)
		shared = entryOf(els[0].Child) != nil
		got := streamBytes(els, framed)
		if got != want {
			t.Fatalf("framed %v: with the children shared the stream is\n%q\nwithout\n%q", framed, got, want)
		}
		if shared && entryOf(els[0].Child) != nil {
			t.Fatalf("framed %v: %d writes left the shared entry in the table: not all of them used it", framed, n)
		}
		if viaEtree(els[1]) != viaSerializer(els[1], writeBufferSize) {
			t.Fatalf("the serializer and etree differ on %q", viaEtree(els[1]))
		}
	}
	return shared
}

// TestSharedChildrenWriteTheSameBytes compares, byte for byte, a
// fan-out's copies written with their children serialized once against
// the same copies written one by one, on byte streams and framed ones:
// the hand-made trees of the serializer's tests (namespaced children,
// prefixes, escapes, CDATA, invalid UTF-8), stanzas as muc builds them,
// and what the reader makes of generated inputs.
func TestSharedChildrenWriteTheSameBytes(t *testing.T) {
	cases := map[string]*etree.Element{}
	for name, el := range builtTrees() {
		cases["built/"+name] = el
	}
	for i, s := range trickyStrings {
		el := etree.NewElement("message")
		el.CreateAttr("from", "room@muc.example.com/"+s)
		el.CreateAttr("type", "groupchat")
		el.CreateElement("body").SetText(s)
		x := el.CreateElement("x")
		x.CreateAttr("xmlns", "jabber:x:oob")
		x.CreateElement("url").SetCData(s)
		oid := etree.NewElement("occupant-id")
		oid.Space = ""
		oid.CreateAttr("xmlns", "urn:xmpp:occupant-id:0")
		oid.CreateAttr("id", s)
		el.AddChild(oid)
		cases[fmt.Sprintf("tricky/%d", i)] = el
	}
	for name, in := range map[string]string{
		"jabber:client body": `<message xmlns='jabber:client' type='groupchat'><body>hi &amp; bye</body></message>`,
		"prefixed child":     `<message type='groupchat'><body>x</body><e:enc xmlns:e='urn:xmpp:eme:0' e:ns='urn:xmpp:omemo:2'/></message>`,
		"nested namespaces":  `<message><html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'><p>a<br/>b</p></body></html></message>`,
		"text between":       `<message>  <body>a</body>  <thread>t</thread>  </message>`,
		"no children":        `<message type='groupchat'/>`,
		"empty text child":   `<message></message>`,
	} {
		el, err := ParseElement(in, Limits{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cases["parsed/"+name] = el
	}
	used := 0
	for name, el := range cases {
		t.Run(name, func(t *testing.T) {
			if checkShared(t, el) {
				used++
			}
		})
	}
	if used < len(cases)*3/4 {
		t.Errorf("the shared bytes were kept for %d of %d cases; want most", used, len(cases))
	}
	t.Run("generated", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5, 6))
		n := 3000
		if testing.Short() {
			n = 300
		}
		for range n {
			r := NewReader(strings.NewReader(header+generateXML(rng)), Limits{})
			if _, err := r.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			for {
				el, err := r.ReadElement()
				if err != nil {
					break
				}
				checkShared(t, el)
			}
		}
	})
}

// TestSharedChildrenNotUsedOnceChanged: a copy whose children changed
// after the fan-out (a child added, which gives it a new array, or a
// shorter slice of the same one) is written from its own tree, and the
// others still from the shared bytes.
func TestSharedChildrenNotUsedOnceChanged(t *testing.T) {
	tmpl, err := ParseElement(`<message type='groupchat'><body>hello</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	els := fanOutCopies(tmpl, 3)
	ShareChildren(els[0].Child, 3)
	sid := etree.NewElement("stanza-id")
	sid.CreateAttr("xmlns", "urn:xmpp:sid:0")
	els[1].AddChild(sid)
	els[2].Child = els[2].Child[:1]
	for i, el := range els {
		if got, want := viaSerializer(el, writeBufferSize), viaEtree(el); got != want {
			t.Errorf("copy %d: wrote\n%q\nwant\n%q", i, got, want)
		}
	}
	// Only the unchanged copy took the entry: two of its three uses wait.
	e := entryOf(els[0].Child)
	if e == nil || e.left.Load() != 2 {
		t.Fatalf("the entry after one matching write: %+v; want 2 uses left", e)
	}
}

// TestShareChildrenLimits: one use, no children and children past
// sharedMaxBytes are not kept.
func TestShareChildrenLimits(t *testing.T) {
	big := etree.NewElement("message")
	big.CreateElement("body").SetText(strings.Repeat("x", sharedMaxBytes))
	one := etree.NewElement("message")
	one.CreateElement("body").SetText("hi")
	for _, c := range []struct {
		name string
		el   *etree.Element
		uses int
	}{{"one use", one, 1}, {"too big", big, 10}} {
		ShareChildren(c.el.Child, c.uses)
		if entryOf(c.el.Child) != nil {
			t.Errorf("%s: kept", c.name)
		}
	}
	ShareChildren(nil, 10) // no children: nothing to do, no panic
}

// BenchmarkWriteFanOut writes a room message to 20 recipients, each on
// its own Writer flushed after it, as 20 sessions would: each copy's tree
// walked and escaped ("per-copy"), or the children serialized once and
// copied ("shared").
func BenchmarkWriteFanOut(b *testing.B) {
	const n = 20
	tmpl, err := ParseElement(`<message from='room@muc.example.com/alice' type='groupchat' id='m1'>`+
		`<body>`+strings.Repeat("Grüße &amp; hello, ", 7)+`</body>`+
		`<active xmlns='http://jabber.org/protocol/chatstates'/>`+
		`<occupant-id xmlns='urn:xmpp:occupant-id:0' id='dd0JhVwOqS8ciWP8YydC6+5RxCI0dqI1Cs37j0dLLvA='/></message>`, Limits{})
	if err != nil {
		b.Fatal(err)
	}
	ws := make([]*Writer, n)
	for i := range ws {
		ws[i] = NewWriter(io.Discard)
	}
	for _, shared := range []bool{false, true} {
		name := "per-copy"
		if shared {
			name = "shared"
		}
		b.Run(name, func(b *testing.B) {
			els := fanOutCopies(tmpl, n)
			b.SetBytes(int64(n * len(viaEtree(els[0]))))
			b.ReportAllocs()
			for b.Loop() {
				if shared {
					ShareChildren(els[0].Child, n)
				}
				for i, el := range els {
					_ = ws[i].WriteElement(el)
					_ = ws[i].Flush()
				}
			}
		})
	}
}

package xmpp

import (
	"bufio"
	"strings"
	"unicode/utf8"

	"github.com/beevik/etree"
)

// This file serializes etree elements without etree's WriteTo, which
// decodes every rune of text and attribute values and allocates for each
// prefixed name. The output is byte for byte what
//
//	el.WriteTo(w, &writeSettings)
//
// writes (etree v1.8.1, CanonicalText and CanonicalAttrVal, double-quoted
// attributes, no CanonicalEndTags): serialize_test.go compares the two on
// hand-made, generated and fuzzed trees. The rules, from etree's source:
//
//   - An element is '<', its name ("space:tag", or "tag" when Space is
//     empty), each attribute as ` key="value"` in order, then "/>" if it
//     has no child token at all, else '>', its children and "</name>". An
//     empty text child is a child: <a></a>, not <a/>.
//   - Text escapes & < > as &amp; &lt; &gt; and CR as &#xD;; quotes, tab
//     and LF are written as they are.
//   - An attribute value escapes & < " as &amp; &lt; &quot; and tab, LF and
//     CR as &#x9; &#xA; &#xD;; > and ' are written as they are.
//   - In both, each byte of invalid UTF-8, each character outside the XML
//     Char production (controls other than tab, LF and CR; U+FFFE and
//     U+FFFF) becomes U+FFFD. A well-formed U+FFFD stays.
//   - A CDATA-flagged text is written as <![CDATA[...]]>, with each "]]>"
//     split as "]]]]><![CDATA[>"; nothing else in it is checked.
//   - Comments, directives and processing instructions, which no stream
//     carries and no code of ours builds, are left to etree.

// Escape classes of a byte: what it is replaced by, an index in escapes.
const (
	escNone  = iota // written as it is
	escAmp          // &amp;
	escLT           // &lt;
	escGT           // &gt;
	escQuot         // &quot; (etree, in double-quoted attribute values)
	escTab          // &#x9;
	escLF           // &#xA;
	escCR           // &#xD;
	escBad          // U+FFFD: a control character not allowed in XML
	escMulti        // the first byte of a multi-byte sequence, or invalid
)

var escapes = [...]string{
	escAmp:  "&amp;",
	escLT:   "&lt;",
	escGT:   "&gt;",
	escQuot: "&quot;",
	escTab:  "&#x9;",
	escLF:   "&#xA;",
	escCR:   "&#xD;",
	escBad:  "\uFFFD",
}

// escapeTable maps each byte to its escape class, in two versions: one for
// strings known to be valid UTF-8, in which the only non-ASCII characters
// to replace are U+FFFE and U+FFFF (EF BF BE, EF BF BF), and one for the
// others, in which every non-ASCII byte starts a sequence to decode.
type escapeTable struct {
	valid, any [256]uint8
}

// newEscapeTable returns a table in which the C0 controls other than tab,
// LF and CR are bad, the bytes of special have the classes that follow
// each, and non-ASCII bytes are multi, or only 0xEF for valid UTF-8.
func newEscapeTable(special map[byte]uint8) *escapeTable {
	var t escapeTable
	for c := 0; c < 0x20; c++ {
		if c != '\t' && c != '\n' && c != '\r' {
			t.any[c] = escBad
		}
	}
	for c := 0x80; c < 0x100; c++ {
		t.any[c] = escMulti
	}
	for c, class := range special {
		t.any[c] = class
	}
	t.valid = t.any
	for c := 0x80; c < 0x100; c++ {
		if c != 0xEF {
			t.valid[c] = escNone
		}
	}
	return &t
}

var (
	// textEscapes is etree's escapeCanonicalText.
	textEscapes = newEscapeTable(map[byte]uint8{'&': escAmp, '<': escLT, '>': escGT, '\r': escCR})
	// attrEscapes is etree's escapeCanonicalAttr, for values in double
	// quotes.
	attrEscapes = newEscapeTable(map[byte]uint8{'&': escAmp, '<': escLT, '"': escQuot,
		'\t': escTab, '\n': escLF, '\r': escCR})
)

// out writes into the free part of a bufio.Writer's buffer and hands what
// it wrote over with one Write, which then copies it onto itself: a few
// calls per element instead of one per name, quote and run of text.
type out struct {
	w   *bufio.Writer
	buf []byte // the free part of w's buffer, as of the last flush
	n   int    // bytes of buf written
}

// newOut returns an out that writes into w's buffer.
func newOut(w *bufio.Writer) out {
	o := out{w: w}
	o.reset()
	return o
}

// reset takes w's free buffer afresh, after w was written to.
func (o *out) reset() {
	b := o.w.AvailableBuffer()
	o.buf, o.n = b[:cap(b)], 0
}

// flush hands what was written over to w.
func (o *out) flush() {
	if o.n > 0 {
		o.w.Write(o.buf[:o.n])
	}
	o.reset()
}

// str writes s.
func (o *out) str(s string) {
	if o.n+len(s) <= len(o.buf) {
		o.n += copy(o.buf[o.n:], s)
	} else {
		o.strSlow(s)
	}
}

// strSlow writes s when the buffer is too full to take it.
func (o *out) strSlow(s string) {
	o.flush()
	o.w.WriteString(s)
	o.reset()
}

// byte1 writes c.
func (o *out) byte1(c byte) {
	if o.n < len(o.buf) {
		o.buf[o.n] = c
		o.n++
	} else {
		// The buffer is full.
		o.flush()
		o.w.WriteByte(c)
		o.reset()
	}
}

// name writes a prefixed or unprefixed name.
func (o *out) name(space, local string) {
	if space != "" {
		o.str(space)
		o.byte1(':')
	}
	o.str(local)
}

// escape writes s escaped by e: runs that need no escaping are written
// whole.
func (o *out) escape(s string, e *escapeTable) {
	t, checked := &e.any, false
	last, i := 0, 0
	for {
		// Skip what needs no escaping, 8 bytes at a time while it lasts.
		for i+8 <= len(s) {
			b := s[i : i+8]
			if t[b[0]]|t[b[1]]|t[b[2]]|t[b[3]]|t[b[4]]|t[b[5]]|t[b[6]]|t[b[7]] != escNone {
				break
			}
			i += 8
		}
		for i < len(s) && t[s[i]] == escNone {
			i++
		}
		if i >= len(s) {
			break
		}
		class, n := t[s[i]], 1
		if class == escMulti {
			if !checked {
				// At the first non-ASCII byte: if the rest is valid
				// UTF-8, only U+FFFE and U+FFFF remain to be caught.
				checked = true
				if utf8.ValidString(s[i:]) {
					t = &e.valid
					continue
				}
			}
			r, size := utf8.DecodeRuneInString(s[i:])
			// Every rune that decodes is a Char but these two; a byte
			// that does not decode comes back as RuneError of size 1.
			if size > 1 && r != 0xFFFE && r != 0xFFFF {
				i += size
				continue
			}
			class, n = escBad, size
		}
		o.str(s[last:i])
		o.str(escapes[class])
		i += n
		last = i
	}
	o.str(s[last:])
}

// escapeString writes s escaped by t.
func escapeString(w *bufio.Writer, s string, t *escapeTable) {
	o := newOut(w)
	o.escape(s, t)
	o.flush()
}

// writeElement writes el as el.WriteTo(w, &writeSettings) would, faster
// and without allocating. Children that a fan-out serialized once
// (ShareChildren) are copied, not walked.
func writeElement(w *bufio.Writer, el *etree.Element) {
	o := newOut(w)
	if b := sharedChildren(el.Child); b != nil {
		o.startTag(el)
		o.byte1('>')
		o.bytes(b)
		o.endTag(el)
	} else {
		o.element(el)
	}
	o.flush()
}

// bytes writes b.
func (o *out) bytes(b []byte) {
	if o.n+len(b) <= len(o.buf) {
		o.n += copy(o.buf[o.n:], b)
		return
	}
	o.flush()
	o.w.Write(b)
	o.reset()
}

// startTag writes el's name and attributes after '<'.
func (o *out) startTag(el *etree.Element) {
	o.byte1('<')
	o.name(el.Space, el.Tag)
	for i := range el.Attr {
		a := &el.Attr[i]
		o.byte1(' ')
		o.name(a.Space, a.Key)
		o.str(`="`)
		o.escape(a.Value, attrEscapes)
		o.byte1('"')
	}
}

// endTag writes el's closing tag.
func (o *out) endTag(el *etree.Element) {
	o.str("</")
	o.name(el.Space, el.Tag)
	o.byte1('>')
}

// element writes el and what it holds.
func (o *out) element(el *etree.Element) {
	o.startTag(el)
	if len(el.Child) == 0 {
		o.str("/>")
		return
	}
	o.byte1('>')
	o.children(el.Child)
	o.endTag(el)
}

// children writes the tokens of an element's content.
func (o *out) children(kids []etree.Token) {
	for _, c := range kids {
		switch c := c.(type) {
		case *etree.Element:
			o.element(c)
		case *etree.CharData:
			if c.IsCData() {
				o.cdata(c.Data)
			} else {
				o.escape(c.Data, textEscapes)
			}
		default:
			o.flush()
			c.WriteTo(o.w, &writeSettings)
			o.flush()
		}
	}
}

// cdata writes a CDATA section as etree writes it: XML cannot escape "]]>"
// inside one, so the section is closed after "]]" and another opened.
func (o *out) cdata(s string) {
	o.str("<![CDATA[")
	for {
		i := strings.Index(s, "]]>")
		if i < 0 {
			break
		}
		o.str(s[:i+2])
		o.str("]]><![CDATA[")
		s = s[i+2:]
	}
	o.str(s)
	o.str("]]>")
}

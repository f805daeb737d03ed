package xmpp

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/beevik/etree"
)

// viaEtree is what etree's own WriteTo writes for el: the reference.
func viaEtree(el *etree.Element) string {
	var buf bytes.Buffer
	el.WriteTo(&buf, &writeSettings)
	return buf.String()
}

// viaSerializer is what writeElement writes for el through a buffer of
// size bytes.
func viaSerializer(el *etree.Element, size int) string {
	var buf bytes.Buffer
	bw := bufio.NewWriterSize(&buf, size)
	writeElement(bw, el)
	if err := bw.Flush(); err != nil {
		panic(err)
	}
	return buf.String()
}

// checkSame fails t unless both serializers write the same bytes for el,
// whatever the size of the buffer.
func checkSame(t *testing.T, el *etree.Element) string {
	t.Helper()
	want := viaEtree(el)
	for _, size := range []int{writeBufferSize, 16} {
		if got := viaSerializer(el, size); got != want {
			t.Fatalf("buffer of %d bytes: wrote\n%q\netree writes\n%q", size, got, want)
		}
	}
	return want
}

// The strings that the tests put in text, attribute values and CDATA.
var trickyStrings = []string{
	"",
	"plain",
	`& < > " '`,
	"&amp;&lt;&#65;&#x1F600;",
	"a\rb\nc\td\r\n",
	"\r\n\t ",
	" ",
	"]]>", "]]]]>", "]]>]]>", "]", "]]", "x]]>y]]>z",
	"--", "-", "a--b-", "?>",
	"Grüße, 世界 🎉 ǅ é",
	"\u00a0\u0085\u2028\u2029\ufeff",
	"\x00", "\x01\x08\x0b\x0c\x0e\x1f", "\x7f", "a\x00b",
	"\xff", "a\xffb", "\xc0\x80", "\xc2", "\xe2\x82", "\xe2\x82\xac", "\xf0\x9f\x98",
	"\xed\xa0\x80",             // a surrogate, not UTF-8
	"\xf4\x90\x80\x80",         // past U+10FFFF
	"\xef\xbf\xbe\xef\xbf\xbf", // U+FFFE U+FFFF: not Chars
	"\xef\xbf\xbd",             // U+FFFD itself stays
	"\U0010FFFF\U00010000\ud7ff\ue000",
	strings.Repeat("ab&", 2000),
	strings.Repeat("é", 3000) + "<",
	strings.Repeat("x", writeBufferSize-1) + "&" + strings.Repeat("y", writeBufferSize),
}

// builtTrees are trees as code makes them with etree's API.
func builtTrees() map[string]*etree.Element {
	trees := map[string]*etree.Element{}
	add := func(name string, el *etree.Element) { trees[name] = el }

	add("empty", etree.NewElement("presence"))
	add("prefixed", etree.NewElement("stream:features"))
	add("no name", etree.NewElement(""))
	{
		el := etree.NewElement("message")
		el.CreateText("")
		add("empty text child", el)
	}
	{
		el := etree.NewElement("message")
		el.SetText("")
		add("SetText empty", el)
	}
	{
		el := etree.NewElement("message")
		el.CreateCData("")
		add("empty CDATA", el)
	}
	{
		el := etree.NewElement("p:x")
		el.CreateAttr("xmlns", "jabber:client")
		el.CreateAttr("xmlns:p", "urn:p")
		el.CreateAttr("p:a", "1")
		el.CreateAttr("xml:lang", "en")
		el.CreateAttr("a", "")
		y := el.CreateElement("p:y")
		y.CreateAttr("xmlns:q", "urn:q")
		y.CreateElement("q:z").CreateElement("w").CreateAttr("xmlns", "")
		add("namespaces", el)
	}
	{
		el := etree.NewElement("message")
		el.Attr = append(el.Attr, etree.Attr{Key: "dup", Value: "1"}, etree.Attr{Key: "dup", Value: "2"}, etree.Attr{Space: "x", Key: ""})
		add("attributes as they are", el)
	}
	{
		el := etree.NewElement("message")
		el.CreateComment("a--b-")
		el.CreateComment("")
		el.CreateProcInst("target", "x?>y")
		el.CreateProcInst("t", "")
		el.CreateDirective("DOCTYPE x [<!ENTITY a 'b'>]")
		el.CreateDirective("-x")
		el.CreateDirective("x > y")
		el.CreateDirective("")
		add("comment, procinst and directive", el)
	}
	{
		el := etree.NewElement("body")
		el.CreateText("a")
		el.CreateElement("b")
		el.CreateText(" & ")
		el.CreateCData("c]]>d")
		el.CreateText("")
		el.CreateText("e")
		add("mixed content", el)
	}
	{
		el := etree.NewElement("d0")
		e := el
		for i := 1; i < 200; i++ {
			e = e.CreateElement("d" + strconv.Itoa(i))
			e.CreateAttr("n", strconv.Itoa(i))
		}
		e.SetText("deep")
		add("deep", el)
	}
	for i, s := range trickyStrings {
		el := etree.NewElement("message")
		el.CreateAttr("to", s)
		el.CreateAttr("xml:lang", s)
		el.CreateElement("body").SetText(s)
		el.CreateElement("data").SetCData(s)
		el.CreateElement("c").CreateComment(s)
		el.CreateElement("p").CreateProcInst("pi", s)
		el.CreateElement("d").CreateDirective(s)
		add("tricky "+strconv.Itoa(i), el)
	}

	// What the package builds.
	j := MustParse("juliet@example.com/balcony")
	r := MustParse("romeo@example.net/orchard")
	add("stream error", NewStreamError(StreamPolicyViolation, "too <fast> & \"loud\"").Element())
	add("stream error without text", NewStreamError(NotWellFormed, "").Element())
	iq := NewIQ("get", "q'1", r, j, NewElementNS("jabber:iq:roster", "query"))
	add("iq", iq.El)
	add("error reply", iq.ErrorReply(NewStanzaError(FeatureNotImplemented, "no <roster> here")).El)
	add("presence", NewPresence("unavailable", j, r).El)
	add("copy", iq.Copy().El)
	return trees
}

// parsedInputs are stanzas as the reader gives them.
var parsedInputs = []string{
	`<message/>`,
	`<message></message>`,
	`<message to='juliet@example.com/balcony' id='ktx72v49' type='chat' xml:lang='en'><body>Art thou not Romeo, and a Montague?</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`,
	`<message><body>a &amp; b &lt; c &gt; d " ' &quot;&apos;</body></message>`,
	`<message a='&amp;&lt;&gt;&quot;&apos;"' b="'"/>`,
	"<message a='\t\n\r&#9;&#10;&#13;'>\r\n\t<body>x\r\ny\rz&#13;&#10;&#9;</body></message>",
	`<message><body>a<![CDATA[<b> & ]]]]><![CDATA[>]]>c</body></message>`,
	`<message><x><![CDATA[]]></x><y><![CDATA[ ]]></y></message>`,
	`<message><body>Grüße, 世界 🎉 &#x1F600;&#xFFFD;&#x10FFFF;</body><é ü='ö'/></message>`,
	`<p:x xmlns:p='urn:p' p:a='1'><p:y xml:lang='en'/></p:x>`,
	`<message xmlns:p='urn:p' xmlns:q='urn:q' p:a='1' q:b='2' p:c='3'><p:y xmlns:r='urn:r' r:d='4'><q:z/></p:y></message>`,
	`<message><x xmlns=''><y/></x><z/></message>`,
	`<iq type='set' id='1'><query xmlns='jabber:iq:roster'><item jid='a@b' name='A &amp; B'><group>Friends &lt;3</group></item></query></iq>`,
	`<message>  <body> </body>  </message>`,
	`<stream:error xmlns:stream='http://etherx.jabber.org/streams'><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`,
}

func TestSerializeMatchesEtree(t *testing.T) {
	for name, el := range builtTrees() {
		t.Run(name, func(t *testing.T) { checkSame(t, el) })
	}
	for i, in := range parsedInputs {
		t.Run("parsed "+strconv.Itoa(i), func(t *testing.T) {
			el, err := ParseElement(in, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			checkRoundTrip(t, el)
		})
	}
}

// TestSerializeKnownOutput pins a few outputs, should etree's change.
func TestSerializeKnownOutput(t *testing.T) {
	tests := []struct {
		name string
		el   func() *etree.Element
		want string
	}{
		{"empty", func() *etree.Element { return etree.NewElement("a") }, `<a/>`},
		{"empty text", func() *etree.Element {
			el := etree.NewElement("a")
			el.CreateText("")
			return el
		}, `<a></a>`},
		{"text", func() *etree.Element {
			el := etree.NewElement("a")
			el.SetText("&<>\"'\r\n\t\x00\xff\xef\xbf\xbe\xef\xbf\xbdé")
			return el
		}, "<a>&amp;&lt;&gt;\"'&#xD;\n\t\uFFFD\uFFFD\uFFFD\uFFFDé</a>"},
		{"attribute", func() *etree.Element {
			el := etree.NewElement("p:a")
			el.CreateAttr("xml:lang", "&<>\"'\r\n\t\x00\xff")
			return el
		}, "<p:a xml:lang=\"&amp;&lt;>&quot;'&#xD;&#xA;&#x9;\uFFFD\uFFFD\"/>"},
		{"CDATA", func() *etree.Element {
			el := etree.NewElement("a")
			el.SetCData("x]]>y&")
			return el
		}, `<a><![CDATA[x]]]]><![CDATA[>y&]]></a>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkSame(t, tt.el()); got != tt.want {
				t.Fatalf("wrote %q, want %q", got, tt.want)
			}
		})
	}
}

// TestSerializeGenerated compares the two on what the reader makes of
// the inputs that the tokenizer's differential test generates.
func TestSerializeGenerated(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 2000
	}
	rng := rand.New(rand.NewPCG(3, 4))
	compared := 0
	for range n {
		in := generateXML(rng)
		r := NewReader(strings.NewReader(header+in), Limits{})
		if _, err := r.ReadHeader(); err != nil {
			t.Fatal(err)
		}
		for {
			el, err := r.ReadElement()
			if err != nil {
				break
			}
			checkRoundTrip(t, el)
			compared++
		}
	}
	if compared < n/4 {
		t.Fatalf("only %d elements read from %d inputs", compared, n)
	}
}

// checkRoundTrip checks that both serializers agree on el, which the
// reader made, and that what they write reads back to the same tree.
func checkRoundTrip(t *testing.T, el *etree.Element) {
	t.Helper()
	out := checkSame(t, el)
	back, err := ParseElement(out, Limits{MaxStanza: 1 << 20})
	if err != nil {
		t.Fatalf("reading back %q: %v", out, err)
	}
	if d := treeDiff(el, back); d != "" {
		t.Fatalf("%q reads back different: %s", out, d)
	}
}

// tokens returns the children of el but empty texts, which are written as
// nothing (though <a></a> rather than <a/>) and so do not read back.
func tokens(el *etree.Element) []etree.Token {
	var ts []etree.Token
	for _, c := range el.Child {
		if cd, ok := c.(*etree.CharData); ok && cd.Data == "" {
			continue
		}
		ts = append(ts, c)
	}
	return ts
}

// treeDiff describes the first difference between two trees, or is "":
// names, attributes in order and children but empty texts.
func treeDiff(a, b *etree.Element) string {
	if a.Space != b.Space || a.Tag != b.Tag {
		return "element " + a.FullTag() + " is " + b.FullTag()
	}
	if len(a.Attr) != len(b.Attr) {
		return a.FullTag() + ": attributes differ in number"
	}
	for i := range a.Attr {
		if a.Attr[i].Space != b.Attr[i].Space || a.Attr[i].Key != b.Attr[i].Key || a.Attr[i].Value != b.Attr[i].Value {
			return a.FullTag() + ": attribute " + strconv.Quote(a.Attr[i].FullKey()+"="+a.Attr[i].Value) +
				" is " + strconv.Quote(b.Attr[i].FullKey()+"="+b.Attr[i].Value)
		}
	}
	ak, bk := tokens(a), tokens(b)
	if len(ak) != len(bk) {
		return a.FullTag() + ": children differ in number"
	}
	for i := range ak {
		switch ca := ak[i].(type) {
		case *etree.Element:
			cb, ok := bk[i].(*etree.Element)
			if !ok {
				return a.FullTag() + ": child " + strconv.Itoa(i) + " is not an element"
			}
			if d := treeDiff(ca, cb); d != "" {
				return d
			}
		case *etree.CharData:
			cb, ok := bk[i].(*etree.CharData)
			if !ok || cb.Data != ca.Data || cb.IsCData() != ca.IsCData() {
				return a.FullTag() + ": text " + strconv.Itoa(i) + " differs"
			}
		default:
			return a.FullTag() + ": unexpected token"
		}
	}
	return ""
}

// escapeResults returns what the two escapings write for s, and what
// their references write.
func escapeResults(s string) (got, want [2]string) {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	result := func() string {
		bw.Flush()
		r := buf.String()
		buf.Reset()
		return r
	}

	etree.NewText(s).WriteTo(&buf, &writeSettings)
	want[0] = result()
	escapeString(bw, s, textEscapes)
	got[0] = result()

	a := etree.Attr{Key: "a", Value: s}
	a.WriteTo(&buf, &writeSettings)
	want[1] = result()
	bw.WriteString(`a="`)
	escapeString(bw, s, attrEscapes)
	bw.WriteByte('"')
	got[1] = result()
	return got, want
}

// checkEscapes compares the two escapings with their references on
// each of ss, joined by 'a' (which ends any UTF-8 sequence) to go faster.
func checkEscapes(t *testing.T, ss ...string) {
	t.Helper()
	if got, want := escapeResults(strings.Join(ss, "a")); got == want {
		return
	}
	for _, s := range ss {
		got, want := escapeResults(s)
		for i, what := range []string{"text", "attribute value"} {
			if got[i] != want[i] {
				t.Fatalf("%s %q: wrote %q, the reference writes %q", what, s, got[i], want[i])
			}
		}
	}
	t.Fatal("the strings differ only when joined")
}

// TestEscapeExhaustive compares the escapings on every string of one or
// two bytes, on strings of three and four made of the bytes that matter
// to UTF-8 and XML, and on every code point.
func TestEscapeExhaustive(t *testing.T) {
	var batch []string
	check := func(b []byte) {
		batch = append(batch, string(b))
		if len(batch) == 1000 {
			checkEscapes(t, batch...)
			batch = batch[:0]
		}
	}
	for a := range 256 {
		check([]byte{byte(a)})
		for b := range 256 {
			check([]byte{byte(a), byte(b)})
		}
	}
	alphabet := []byte{0x00, '\t', '\n', '\r', 0x1f, 'a', '&', '<', '>', '"', '\'', 0x7f,
		0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbd, 0xbe, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff}
	var rec func(prefix []byte)
	rec = func(prefix []byte) {
		if len(prefix) >= 3 {
			check(prefix)
		}
		if len(prefix) == 4 {
			return
		}
		for _, c := range alphabet {
			rec(append(prefix, c))
		}
	}
	rec(make([]byte, 0, 4))
	checkEscapes(t, batch...)

	// Every code point, surrogates included (as WTF-8, not UTF-8), a
	// block at a time between ASCII that needs escaping.
	var b []byte
	for r := rune(0); r <= utf8.MaxRune; r++ {
		if r >= 0xd800 && r <= 0xdfff {
			b = append(b, 0xed, byte(0x80|(r>>6)&0x3f), byte(0x80|r&0x3f))
		} else {
			b = utf8.AppendRune(b, r)
		}
		if r%1024 == 1023 {
			b = append(b, "&\r<"...)
			checkEscapes(t, string(b))
			b = b[:0]
		}
	}
}

// A typical chat message, as the reader gives it.
const chatMessage = `<message to='juliet@example.com/balcony' from='romeo@example.net/orchard' id='ktx72v49' type='chat' xml:lang='en'><body>Art thou not Romeo, and a Montague? Art thou not Romeo?</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`

func TestSerializeDoesNotAllocate(t *testing.T) {
	el, err := ParseElement(chatMessage, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(io.Discard)
	if n := testing.AllocsPerRun(100, func() { writeElement(bw, el) }); n != 0 {
		t.Errorf("writeElement: %v allocations per message", n)
	}
	// Through a Writer that holds its buffer (no Flush: under the race
	// detector sync.Pool drops some of what is put back).
	w := NewWriter(io.Discard)
	if n := testing.AllocsPerRun(100, func() { _ = w.WriteElement(el) }); n != 0 {
		t.Errorf("Writer.WriteElement: %v allocations per message", n)
	}
	tricky := etree.NewElement("p:message")
	tricky.CreateAttr("xml:lang", "a\xffb & \"<é>\"\r\n\t\x00")
	tricky.CreateElement("body").SetText("a\xffb & <é> \r\x00\xef\xbf\xbe🎉")
	if n := testing.AllocsPerRun(100, func() { writeElement(bw, tricky) }); n != 0 {
		t.Errorf("writeElement of %s: %v allocations", viaEtree(tricky), n)
	}
}

// sanitized is s with every byte of invalid UTF-8 and every character
// that is not an XML Char replaced by U+FFFD, as both serializers do.
func sanitized(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || !isXMLCharRef(r) {
			r = utf8.RuneError
		}
		b.WriteRune(r)
		i += n
	}
	return b.String()
}

// isXMLCharRef is the Char production of XML 1.0, kept apart from the
// tokenizer's own.
func isXMLCharRef(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r <= 0xd7ff ||
		r >= 0xe000 && r <= 0xfffd || r >= 0x10000 && r <= utf8.MaxRune
}

func FuzzSerialize(f *testing.F) {
	for _, s := range parsedInputs {
		f.Add(s)
	}
	for _, s := range trickyStrings {
		if len(s) < 100 {
			f.Add(s)
		}
	}
	f.Fuzz(func(t *testing.T, in string) {
		// What the reader makes of in.
		if el, err := ParseElement(in, Limits{}); err == nil {
			checkRoundTrip(t, el)
		}

		// in as text, attribute value, CDATA and the rest, as code may
		// put anything there.
		el := etree.NewElement("message")
		el.CreateAttr("to", in)
		el.CreateAttr("xml:lang", in)
		el.CreateElement("body").SetText(in)
		el.CreateElement("data").SetCData(in)
		el.CreateComment(in)
		el.CreateProcInst("pi", in)
		el.CreateDirective(in)
		checkSame(t, el)

		// Text and attribute values make XML whatever they hold; it
		// reads back with what XML cannot carry replaced by U+FFFD.
		el = etree.NewElement("message")
		el.CreateAttr("to", in)
		el.CreateElement("body").SetText(in)
		out := checkSame(t, el)
		back, err := ParseElement(out, Limits{MaxStanza: 1 << 20})
		if err != nil {
			t.Fatalf("reading back %q: %v", out, err)
		}
		want := sanitized(in)
		if got := back.SelectAttrValue("to", ""); got != want {
			t.Fatalf("attribute %q reads back as %q, want %q", in, got, want)
		}
		body := back.SelectElement("body")
		if got := body.Text(); got != want {
			t.Fatalf("text %q reads back as %q, want %q", in, got, want)
		}
		if in == "" && len(body.Child) != 0 {
			t.Fatalf("an empty text reads back as %d tokens", len(body.Child))
		}
	})
}

// BenchmarkWriteElement writes a chat message with etree's WriteTo and
// with the serializer, and a long body full of escapes and non-ASCII.
func BenchmarkWriteElement(b *testing.B) {
	msg, err := ParseElement(chatMessage, Limits{})
	if err != nil {
		b.Fatal(err)
	}
	long := etree.NewElement("message")
	long.CreateAttr("to", "juliet@example.com/balcony")
	long.CreateElement("body").SetText(strings.Repeat("Grüße, \"世界\" <b>&amp;</b> 🎉\n", 100))
	for _, c := range []struct {
		name string
		el   *etree.Element
	}{{"chat", msg}, {"long", long}} {
		b.Run(c.name+"/etree", func(b *testing.B) {
			bw := bufio.NewWriterSize(io.Discard, writeBufferSize)
			b.SetBytes(int64(len(viaEtree(c.el))))
			b.ReportAllocs()
			for b.Loop() {
				c.el.WriteTo(bw, &writeSettings)
			}
		})
		b.Run(c.name+"/serializer", func(b *testing.B) {
			bw := bufio.NewWriterSize(io.Discard, writeBufferSize)
			b.SetBytes(int64(len(viaEtree(c.el))))
			b.ReportAllocs()
			for b.Loop() {
				writeElement(bw, c.el)
			}
		})
		b.Run(c.name+"/Writer", func(b *testing.B) {
			w := NewWriter(io.Discard)
			b.SetBytes(int64(len(viaEtree(c.el))))
			b.ReportAllocs()
			for b.Loop() {
				_ = w.WriteElement(c.el)
				_ = w.Flush()
			}
		})
	}
}

// BenchmarkEscape escapes text with little to escape, text with much,
// and text that is mostly not ASCII.
func BenchmarkEscape(b *testing.B) {
	for _, c := range []struct{ name, s string }{
		{"ascii", strings.Repeat("Art thou not Romeo, and a Montague? ", 30)},
		{"escapes", strings.Repeat(`a<b> & "c" `, 100)},
		{"cyrillic", strings.Repeat("Ты ли не Ромео и не Монтекки? ", 30)},
		{"emoji", strings.Repeat("🎉👍🏽 ", 100)},
	} {
		b.Run(c.name, func(b *testing.B) {
			bw := bufio.NewWriterSize(io.Discard, writeBufferSize)
			b.SetBytes(int64(len(c.s)))
			b.ReportAllocs()
			for b.Loop() {
				escapeString(bw, c.s, textEscapes)
			}
		})
	}
}

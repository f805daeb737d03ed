package xmpp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/beevik/etree"
)

const header = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0' xml:lang='en'>`

func serialize(t *testing.T, el *etree.Element) string {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.WriteElement(el); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// readFirst reads the stream header and the first element of stream.
func readFirst(t *testing.T, stream string) *etree.Element {
	t.Helper()
	r := NewReader(strings.NewReader(stream), Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	el, err := r.ReadElement()
	if err != nil {
		t.Fatal(err)
	}
	return el
}

func TestReadHeader(t *testing.T) {
	r := NewReader(strings.NewReader(header), Limits{})
	h, err := r.ReadHeader()
	if err != nil {
		t.Fatal(err)
	}
	want := Header{To: "example.com", Version: "1.0", Lang: "en", NS: NSClient}
	if h != want {
		t.Fatalf("header = %+v, want %+v", h, want)
	}
}

// The tables of what the Reader accepts and refuses, for the tests below.
// The inputs of acceptCases and rejectCases also seed
// FuzzTokenizerDifferential (reader_diff_test.go), so that every case is
// held to encoding/xml's answer too.

// acceptCases are elements read whole: in, after header (the default
// header when ""), is written as want.
var acceptCases = []struct {
	name   string
	header string
	in     string
	want   string
}{
	{"a stanza in the default namespace carries no xmlns", "",
		`<message xmlns='jabber:client' to='a@b'><body>hi</body></message>`,
		`<message to="a@b"><body>hi</body></message>`},
	{"a child in another namespace carries its xmlns", "",
		`<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>`,
		`<iq type="get" id="1"><ping xmlns="urn:xmpp:ping"/></iq>`},
	{"prefixed elements are resolved to a default namespace", "",
		`<message><p:x xmlns:p='urn:p'><p:y>1</p:y></p:x></message>`,
		`<message><x xmlns="urn:p"><y>1</y></x></message>`},
	{"a top-level element in another namespace keeps its xmlns", "",
		`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`,
		`<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>`},
	{"xml:lang is kept", "",
		`<message xml:lang='de'><body>Hallo</body></message>`,
		`<message xml:lang="de"><body>Hallo</body></message>`},
	{"prefixed attributes get a declared prefix", "",
		`<message xmlns:q='urn:q' q:a='1'/>`,
		`<message xmlns:ns1="urn:q" ns1:a="1"/>`},
	{"entities and character references are decoded and re-escaped", "",
		`<message><body>&lt;b&gt; &amp; &apos;&quot; &#x263A;</body></message>`,
		`<message><body>&lt;b&gt; &amp; '" ☺</body></message>`},
	{"whitespace keepalives before an element are skipped", "",
		" \n\t <presence/>",
		`<presence/>`},
	{"a CDATA section is text", "",
		`<message><body>a<![CDATA[<b> & ]]]]><![CDATA[>]]>c</body></message>`,
		`<message><body>a&lt;b&gt; &amp; ]]&gt;c</body></message>`},
	{"an empty CDATA section is an empty text", "",
		`<message><x><![CDATA[]]></x></message>`,
		`<message><x></x></message>`},
	{"line ends are normalized", "",
		"<message a='1\r\n2\r3'>\r\n<body>x\r\ry</body></message>",
		"<message a=\"1&#xA;2&#xA;3\">\n<body>x\n\ny</body></message>"},
	{"a character reference to CR is kept", "",
		`<message><body>&#13;&#10;</body></message>`,
		"<message><body>&#xD;\n</body></message>"},
	{"a prefix declared on the stream header", `<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'>`,
		`<db:result to='a' from='b'>key</db:result>`,
		`<result xmlns="jabber:server:dialback" to="a" from="b">key</result>`},
	{"a stream without a default namespace", `<s:stream xmlns:s='http://etherx.jabber.org/streams'>`,
		`<message><body>x</body></message>`,
		`<message><body>x</body></message>`},
	{"xml prefix declared as it is", "",
		`<message xmlns:xml='http://www.w3.org/XML/1998/namespace' xml:lang='en'/>`,
		`<message xml:lang="en"/>`},
	{"undeclaring the default namespace", "",
		`<message><x xmlns=''><y/></x></message>`,
		`<message><x xmlns=""><y/></x></message>`},
	{"a prefix and the default namespace the same", "",
		`<message xmlns:c='jabber:client'><c:body>x</c:body></message>`,
		`<message><body>x</body></message>`},
	{"two prefixed attributes", "",
		`<message xmlns:p='urn:p' p:a='1' p:b='2'/>`,
		`<message xmlns:ns1="urn:p" ns1:a="1" xmlns:ns2="urn:p" ns2:b="2"/>`},
	{"non-ASCII names and text", "",
		`<message><body>Grüße, 世界 🎉</body><é ü='ö'/></message>`,
		`<message><body>Grüße, 世界 🎉</body><é ü="ö"/></message>`},
	{"white space in tags", "",
		"<message\n\tto = 'a'\n></message >",
		`<message to="a"/>`},
}

// rejectCases are elements refused: reading in after the default header,
// with limits, fails with condition want (condEOF for
// io.ErrUnexpectedEOF).
var rejectCases = []struct {
	name   string
	limits Limits
	in     string
	want   StreamCondition
}{
	{"a DTD is restricted XML", Limits{}, `<!DOCTYPE foo [<!ENTITY x "y">]><message/>`, RestrictedXML},
	{"a comment is restricted XML", Limits{}, `<message><!-- hi --></message>`, RestrictedXML},
	{"a processing instruction is restricted XML", Limits{}, `<message><?php echo 1 ?></message>`, RestrictedXML},
	{"an unknown entity is restricted XML", Limits{}, `<message><body>&foo;</body></message>`, RestrictedXML},
	{"a mismatched end tag is not well-formed", Limits{}, `<message><body></message>`, NotWellFormed},
	{"a bad character is not well-formed", Limits{}, "<message><body>\x00</body></message>", NotWellFormed},
	{"text between stanzas is bad format", Limits{}, `hello<message/>`, BadFormat},
	{"a stanza over the size limit is a policy violation", Limits{MaxStanza: 100}, `<message><body>` + strings.Repeat("x", 200) + `</body></message>`, StreamPolicyViolation},
	{"a huge text node stops at the size limit", Limits{MaxStanza: 1000}, `<message><body>` + strings.Repeat("x", 100000) + `</body></message>`, StreamPolicyViolation},
	{"nesting past the depth limit is a policy violation", Limits{MaxDepth: 3}, `<message><a><b><c/></b></a></message>`, StreamPolicyViolation},
	{"too many attributes is a policy violation", Limits{MaxAttrs: 6}, `<message a='1' b='2' c='3' d='4' e='5' f='6' g='7'/>`, StreamPolicyViolation},
	{"an unbound element prefix", Limits{}, `<message><q:body>hi</q:body></message>`, BadNamespacePrefix},
	{"an unbound attribute prefix", Limits{}, `<message q:a='1'/>`, BadNamespacePrefix},
	{"a prefix bound only in a sibling", Limits{}, `<message><p:a xmlns:p='urn:p'/><p:b/></message>`, BadNamespacePrefix},
	{"a duplicate attribute", Limits{}, `<message a='1' a='2'/>`, NotWellFormed},
	{"an element in the xml namespace", Limits{}, `<message><xml:x/></message>`, BadFormat},
	{"a duplicate namespace declaration", Limits{}, `<message xmlns='jabber:client' xmlns='jabber:client'/>`, NotWellFormed},
	{"a duplicate expanded name", Limits{}, `<message xmlns:p='urn:p' xmlns:q='urn:p' p:a='1' q:a='2'/>`, NotWellFormed},
	{"a reference to NUL", Limits{}, `<message><body>&#0;</body></message>`, NotWellFormed},
	{"a reference to a surrogate", Limits{}, `<message><body>&#xD800;</body></message>`, NotWellFormed},
	{"a reference past Unicode", Limits{}, `<message><body>&#x110000;</body></message>`, NotWellFormed},
	{"a reference to U+FFFE in an attribute", Limits{}, `<message a='&#xFFFE;'/>`, NotWellFormed},
	{"a reference without digits", Limits{}, `<message><body>&#x;</body></message>`, NotWellFormed},
	{"a reference without a semicolon", Limits{}, `<message><body>&#65 </body></message>`, NotWellFormed},
	{"an upper-case X in a hex reference", Limits{}, `<message><body>&#X41;</body></message>`, NotWellFormed},
	{"a bare ampersand", Limits{}, `<message><body>fish & chips</body></message>`, NotWellFormed},
	{"an unknown entity", Limits{}, `<message><body>&nbsp;</body></message>`, RestrictedXML},
	{"invalid UTF-8 in text", Limits{}, "<message><body>\xff</body></message>", NotWellFormed},
	{"a cut UTF-8 sequence before markup", Limits{}, "<message><body>\xe2\x82</body></message>", NotWellFormed},
	{"a UTF-16 surrogate in UTF-8", Limits{}, "<message><body>\xed\xa0\x80</body></message>", NotWellFormed},
	{"invalid UTF-8 in an attribute", Limits{}, "<message to='\xc0\xaf'/>", NotWellFormed},
	{"invalid UTF-8 in a name", Limits{}, "<message><b\xffdy/></message>", NotWellFormed},
	{"U+FFFF in text", Limits{}, "<message><body>\uffff</body></message>", NotWellFormed},
	{"a control character in an attribute", Limits{}, "<message to='\x01'/>", NotWellFormed},
	{"']]>' in text", Limits{}, `<message><body>]]></body></message>`, NotWellFormed},
	{"'<' in an attribute value", Limits{}, `<message to='<'/>`, NotWellFormed},
	{"an unquoted attribute value", Limits{}, `<message to=a/>`, NotWellFormed},
	{"an attribute without a value", Limits{}, `<message to/>`, NotWellFormed},
	{"a missing closing quote", Limits{}, `<message to='a/>`, condEOF},
	{"attributes without white space", Limits{}, `<message to='a'id='b'/>`, NotWellFormed},
	{"a name starting with a digit", Limits{}, `<message><1a/></message>`, NotWellFormed},
	{"a name starting with a dash", Limits{}, `<message -a='1'/>`, NotWellFormed},
	{"a name with an empty prefix", Limits{}, `<message><:a/></message>`, NotWellFormed},
	{"a name with an empty local part", Limits{}, `<message a:='1'/>`, NotWellFormed},
	{"a name with two colons", Limits{}, `<message><a:b:c xmlns:a='urn:a'/></message>`, NotWellFormed},
	{"an attribute name with two colons", Limits{}, `<message xmlns:a='urn:a' a:b:c='1'/>`, NotWellFormed},
	{"undeclaring a prefix", Limits{}, `<message xmlns:p=''/>`, NotWellFormed},
	{"declaring the xmlns prefix", Limits{}, `<message xmlns:xmlns='urn:x'/>`, NotWellFormed},
	{"binding xml elsewhere", Limits{}, `<message xmlns:xml='urn:x'/>`, NotWellFormed},
	{"binding the xml namespace to another prefix", Limits{}, `<message xmlns:p='http://www.w3.org/XML/1998/namespace'/>`, NotWellFormed},
	{"the xmlns prefix on an element", Limits{}, `<xmlns:message/>`, NotWellFormed},
	{"a mismatched prefix in an end tag", Limits{}, `<message xmlns:p='urn:p' xmlns:q='urn:p'><p:a></q:a></message>`, NotWellFormed},
	{"an end tag at the wrong depth", Limits{}, `<message></body></message>`, NotWellFormed},
	{"a bad '<!' sequence", Limits{}, `<message><!-x--></message>`, NotWellFormed},
	{"a bad CDATA start", Limits{}, `<message><![CDATX[x]]></message>`, NotWellFormed},
	{"a CDATA section between stanzas", Limits{}, `<![CDATA[ ]]><message/>`, BadFormat},
	{"a reference between stanzas", Limits{}, `&#32;<message/>`, BadFormat},
	{"a comment between stanzas", Limits{}, `<!-- x --><message/>`, RestrictedXML},
	{"a processing instruction between stanzas", Limits{}, `<?xml version='1.0'?><message/>`, RestrictedXML},
	{"a cut comment", Limits{}, `<message><!-- x`, RestrictedXML},
}

// headerRejectCases are stream headers refused with condition want.
var headerRejectCases = []struct {
	name string
	in   string
	want StreamCondition
}{
	{"a wrong stream namespace", `<stream:stream xmlns:stream='urn:wrong' xmlns='jabber:client'>`, InvalidNamespace},
	{"a wrong root element", `<hello/>`, InvalidNamespace},
	{"a non UTF-8 encoding", `<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>`, UnsupportedEncoding},
	{"a DTD before the header", `<!DOCTYPE x><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>`, RestrictedXML},
	{"garbage", `<<<`, NotWellFormed},
	{"an unbound stream prefix", `<stream:stream xmlns='jabber:client'>`, BadNamespacePrefix},
	{"XML 1.1", `<?xml version='1.1'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>`, NotWellFormed},
	{"another processing instruction", `<?php x?><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>`, RestrictedXML},
	{"text after the declaration", `<?xml version='1.0'?>hello`, NotWellFormed},
	{"an HTTP request", "GET / HTTP/1.1\r\n", NotWellFormed},
	{"a closing tag", `</stream:stream>`, NotWellFormed},
	{"more attributes than the limit on the header", `<stream:stream xmlns:stream='http://etherx.jabber.org/streams'` + manyAttrs(65) + `>`, StreamPolicyViolation},
	{"23,000 attributes on the header", `<stream:stream xmlns:stream='http://etherx.jabber.org/streams'` + manyAttrs(23000) + `>`, StreamPolicyViolation},
}

// manyAttrs is n attributes a0=” a1=”...
func manyAttrs(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, " a%d=''", i)
	}
	return b.String()
}

func TestReadElement(t *testing.T) {
	for _, tt := range acceptCases {
		t.Run(tt.name, func(t *testing.T) {
			hdr := tt.header
			if hdr == "" {
				hdr = header
			}
			if got := serialize(t, readFirst(t, hdr+tt.in)); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestReadElementErrors(t *testing.T) {
	for _, tt := range rejectCases {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(header+tt.in), tt.limits)
			if _, err := r.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			_, err := r.ReadElement()
			if got := condition(err); got != string(tt.want) {
				t.Fatalf("err = %v, want %s", err, tt.want)
			}
			// And the error stays.
			if _, err2 := r.ReadElement(); err2 != err {
				t.Fatalf("the next read: %v, want %v again", err2, err)
			}
		})
	}
}

func TestReadHeaderErrors(t *testing.T) {
	for _, tt := range headerRejectCases {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReader(strings.NewReader(tt.in), Limits{}).ReadHeader()
			if got := condition(err); got != string(tt.want) {
				t.Fatalf("err = %v, want %s", err, tt.want)
			}
		})
	}
}

func TestReadElementEndOfStream(t *testing.T) {
	r := NewReader(strings.NewReader(header+`<presence/></stream:stream>`), Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadElement(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadElement(); !errors.Is(err, ErrStreamClosed) {
		t.Fatalf("err = %v, want ErrStreamClosed", err)
	}

	r = NewReader(strings.NewReader(header+`<message><bo`), Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadElement(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a cut connection: err = %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestReaderSizeLimitIsPerStanza(t *testing.T) {
	// Many stanzas each under the limit add up to far more than it.
	var b strings.Builder
	for range 100 {
		b.WriteString(`<message><body>` + strings.Repeat("y", 50) + `</body></message>`)
	}
	r := NewReader(strings.NewReader(header+b.String()), Limits{MaxStanza: 200})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := r.ReadElement(); err != nil {
			t.Fatalf("stanza %d: %v", i, err)
		}
	}
}

func TestReaderRestart(t *testing.T) {
	in := header + `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>` + header + `<iq type='set' id='b'/>`
	r := NewReader(strings.NewReader(in), Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadElement(); err != nil {
		t.Fatal(err)
	}
	r.Restart()
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	el, err := r.ReadElement()
	if err != nil {
		t.Fatal(err)
	}
	if el.Tag != "iq" || KindOf(el) != KindIQ {
		t.Fatalf("after restart got <%s/>", el.Tag)
	}
}

// readerSeeds are the seeds of FuzzReader, and of
// FuzzTokenizerDifferential too.
var readerSeeds = []string{
	`<message to='a@b/c'><body>x</body></message>`,
	`<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>`,
	`<p:x xmlns:p='urn:p' p:a='1'><p:y xml:lang='en'/></p:x>`,
	`<message><body>&amp;&#x41;</body></message>`,
	`<!-- x --><message/>`,
}

func FuzzReader(f *testing.F) {
	for _, s := range readerSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r := NewReader(strings.NewReader(header+in), Limits{MaxStanza: 4096})
		if _, err := r.ReadHeader(); err != nil {
			t.Fatal(err)
		}
		for range 10 {
			el, err := r.ReadElement()
			if err != nil {
				return
			}
			// What we write must read back to the same tree.
			out := serialize(t, el)
			r2 := NewReader(strings.NewReader(header+out), Limits{MaxStanza: 1 << 20})
			if _, err := r2.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			el2, err := r2.ReadElement()
			if err != nil {
				t.Fatalf("re-reading our own output %q: %v", out, err)
			}
			if out2 := serialize(t, el2); out2 != out {
				t.Fatalf("round trip changed the element:\n%s\n%s", out, out2)
			}
		}
	})
}

func BenchmarkReadMessage(b *testing.B) {
	msg := `<message to='juliet@example.com/balcony' id='ktx72v49' type='chat' xml:lang='en'><body>Art thou not Romeo, and a Montague? Art thou not Romeo?</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`
	in := header + strings.Repeat(msg, 1000)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	var r *Reader
	for i := 0; i < b.N; i++ {
		if i%1000 == 0 {
			r = NewReader(strings.NewReader(in), Limits{})
			if _, err := r.ReadHeader(); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := r.ReadElement(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteMessage(b *testing.B) {
	msg := `<message to='juliet@example.com/balcony' id='ktx72v49' type='chat' xml:lang='en'><body>Art thou not Romeo, and a Montague? Art thou not Romeo?</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`
	r := NewReader(strings.NewReader(header+msg), Limits{})
	if _, err := r.ReadHeader(); err != nil {
		b.Fatal(err)
	}
	el, err := r.ReadElement()
	if err != nil {
		b.Fatal(err)
	}
	w := NewWriter(io.Discard)
	b.ReportAllocs()
	for b.Loop() {
		_ = w.WriteElement(el)
		_ = w.Flush()
	}
}

func TestAReadStanzaTakesAFromWithoutAllocating(t *testing.T) {
	const runs = 50
	var sts []*Stanza
	for range runs + 1 {
		el, err := ParseElement(`<message to='a@b/c' type='chat' id='1'><body>hi</body></message>`, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		st, err := NewStanza(el)
		if err != nil {
			t.Fatal(err)
		}
		sts = append(sts, st)
	}
	from := MustParse("x@y/z")
	i := 0
	if n := testing.AllocsPerRun(runs, func() {
		sts[i].StampFrom(from, "x@y/z")
		i++
	}); n != 0 {
		t.Fatalf("StampFrom allocates %v times on a stanza the reader built", n)
	}
	if got := sts[0].El.SelectAttrValue("from", ""); got != "x@y/z" {
		t.Fatalf("from = %q", got)
	}
}

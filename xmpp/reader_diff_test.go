package xmpp

import (
	"encoding/xml"
	"errors"
	"io"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/beevik/etree"
)

// The tests of the hand-written tokenizer: the differential fuzz test
// against encoding/xml (stdReader, reader_std_test.go), more tests of what
// the tokenizer does, and the benchmarks of both. The tables of accepted
// and refused input, which seed the fuzz test, are in reader_test.go.

// diffLimits are small enough for the fuzzer to reach (MaxAttrs just
// lets the fixed header's five through), and the size limit
// out of its way: encoding/xml counts a stanza after a keepalive from one
// byte further on, so the two can differ by a byte at the limit.
var diffLimits = Limits{MaxStanza: 1 << 20, MaxDepth: 6, MaxAttrs: 5}

// outcome is what one ReadElement gave: the element as the Writer writes
// it, or the error.
type outcome struct {
	out string
	err error
}

func (o outcome) cond() string { return condition(o.err) }

func (o outcome) text() string {
	var se *StreamError
	if errors.As(o.err, &se) {
		return se.Text
	}
	return ""
}

// condEOF is what condition says of io.ErrUnexpectedEOF.
const condEOF StreamCondition = "EOF"

func condition(err error) string {
	var se *StreamError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &se):
		return string(se.Condition)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return string(condEOF)
	case errors.Is(err, ErrStreamClosed):
		return "closed"
	}
	return "other: " + err.Error()
}

// maxDiffElements is how many elements of one input are compared.
const maxDiffElements = 16

// readOutcomes reads the header, then elements until an error.
func readOutcomes(t *testing.T, header func() (Header, error), next func() (*etree.Element, error)) []outcome {
	t.Helper()
	if _, err := header(); err != nil {
		t.Fatalf("the fixed header: %v", err)
	}
	var outs []outcome
	for range maxDiffElements {
		el, err := next()
		if err != nil {
			return append(outs, outcome{err: err})
		}
		outs = append(outs, outcome{out: serialize(t, el)})
	}
	return outs
}

func readNew(t *testing.T, r io.Reader) []outcome {
	rd := NewReader(r, diffLimits)
	return readOutcomes(t, rd.ReadHeader, rd.ReadElement)
}

func readStd(t *testing.T, r io.Reader) []outcome {
	rd := newStdReader(r, diffLimits)
	return readOutcomes(t, rd.ReadHeader, rd.ReadElement)
}

// diffSeeds are the seeds of FuzzTokenizerDifferential: the seeds of
// FuzzReader, the inputs of the tables of reader_test.go (but for one too
// big for the fuzzer to mutate usefully), and moreDiffSeeds.
var diffSeeds = func() []string {
	seeds := append([]string(nil), readerSeeds...)
	for _, c := range acceptCases {
		seeds = append(seeds, c.in)
	}
	for _, c := range rejectCases {
		if len(c.in) <= 1<<10 {
			seeds = append(seeds, c.in)
		}
	}
	return append(seeds, moreDiffSeeds...)
}()

// moreDiffSeeds are inputs of other tests, real stanzas, and variants of
// the rejections in rejectCases.
var moreDiffSeeds = []string{
	// TestReadElementEndOfStream, TestReaderRestart, TestParseElement.
	`<presence/></stream:stream>`,
	`<message><bo`,
	`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`,
	`<vCard xmlns='vcard-temp'><FN>A</FN></vCard>`,
	`<a/><b/>`,
	`</stream:stream><message/>`,
	// Real stanzas.
	`<iq type='result' id='roster_1' to='juliet@example.com/balcony'><query xmlns='jabber:iq:roster' ver='ver11'>` +
		`<item jid='romeo@example.net' name='Romeo' subscription='both'><group>Friends</group></item>` +
		`<item jid='mercutio@example.com' name='Mercutio' subscription='from'/>` +
		`<item jid='benvolio@example.net' name='Benvolio' subscription='none' ask='subscribe'/></query></iq>`,
	`<iq type='result' id='info1' from='example.com' to='juliet@example.com/balcony'><query xmlns='http://jabber.org/protocol/disco#info'>` +
		`<identity category='server' type='im' name='Parley'/><feature var='http://jabber.org/protocol/disco#info'/>` +
		`<feature var='urn:xmpp:ping'/><x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'>` +
		`<value>http://jabber.org/network/serverinfo</value></field></x></query></iq>`,
	`<presence from='romeo@example.net/orchard' xml:lang='en'><show>dnd</show><status>Wooing Juliet</status>` +
		`<priority>1</priority><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://code.google.com/p/exodus'` +
		` ver='QgayPKawpkPSDYmwT/WM94uAlu0='/><x xmlns='vcard-temp:x:update'><photo/></x></presence>`,
	`<message to='juliet@example.com' type='chat'><body>Wherefore art thou, Romeo?</body>` +
		`<html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>` +
		`<p style='font-weight:bold'>Wherefore <em>art</em> thou, <span style='color:red'>Romeo</span>?</p><br/></body></html></message>`,
	`<message><body>&lt;&gt;&amp;&apos;&quot; &#65;&#x42;&#0067;&#x1F600;&#xe9;</body><subject a='&lt;&#10;&#x9;'/></message>`,
	`<message><body><![CDATA[<b>bold</b> & ]]]]><![CDATA[> done]]></body></message>`,
	`<message><body>a<![CDATA[]]>b</body><x><![CDATA[]]></x></message>`,
	"<message>\r\n<body a='x\r\ny\rz'>line\r\nline\rline</body>\r</message>",
	`<db:result xmlns:db='jabber:server:dialback' to='a' from='b'>key</db:result>`,
	`<message><xml:x/><x xml:space='preserve' xml:id='1'/></message>`,
	`<message><x xmlns=''/><y xmlns='urn:a'><z xmlns=''/></y></message>`,
	` <r xmlns='urn:xmpp:sm:3'/>  <a xmlns='urn:xmpp:sm:3' h='1'/> `,
	`<message><body>привет, 世界 🎉</body><é/></message>`,
	// Variants of rejectCases.
	`<message a='<'/>`,
	`<message a=1/>`,
	`<message a='1'b='2'/>`,
	`<1message/>`,
	`<:message/>`,
	`<message><body>&#65</body></message>`,
	`<message><body>& </body></message>`,
	`<message><![CDATA[x`,
	`<?xml version='1.0' encoding='latin1'?><message/>`,
}

// FuzzTokenizerDifferential holds the tokenizer to encoding/xml's answers:
// for any input after a fixed stream header, the two readers must give
// the same elements (as the Writer writes them), and fail on the same
// element with the same condition, except for the documented divergences
// below. The new reader must also give exactly the same outcomes when its
// input comes one byte at a time.
func FuzzTokenizerDifferential(f *testing.F) {
	for _, s := range diffSeeds {
		f.Add(s)
	}
	f.Fuzz(checkDifferential)
}

// TestTokenizerDifferentialGenerated runs the differential check on
// inputs put together from pieces of XMPP and of bad XML, which reach
// combinations that the fuzzer's byte mutations find slowly.
func TestTokenizerDifferentialGenerated(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 2000
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		in := generateXML(rng)
		t.Run(strconv.Itoa(i), func(t *testing.T) { checkDifferential(t, in) })
		if t.Failed() {
			return
		}
	}
}

// The pieces of generateXML: mostly good ones, sometimes bad ones.
var (
	genNames     = []string{"message", "body", "a", "p:x", "q:y", "xml:z", "é", "ü", "ǅ", "a·b", "x-y.z_1"}
	genBadNames  = []string{"1a", ":a", "a:", "xmlns", "xmlns:x", "a:b:c", "r:x", "-a", "a\xffb", "\u0e33"}
	genAttrs     = []string{"to", "id", "a", "p:a", "q:a", "xml:lang", "xmlns", "xmlns:p", "xmlns:q", "b", "é"}
	genBadAttrs  = []string{"xmlns:xml", ":b", "r:a", "1", "xmlns:xmlns"}
	genValues    = []string{"", "x", "&amp;", "&#x10FFFF;", "\r\n", "é", "urn:p", "urn:q", "jabber:client", "'", `"`, "\t", "]]>", ">"}
	genBadValues = []string{"&#0;", "&#xD800;", "<", "\xff", NSXML, "&foo;", "&#65", "&", "\x01"}
	genTexts     = []string{"hi", "&lt;", "&#65;", "&#x1F600;", "]]", ">", "\r", "\r\n", "é", "<![CDATA[x]]>", "<![CDATA[]]>", "<![CDATA[]]]]>", " ", "&apos;&quot;", "\t\n", "]"}
	genBadTexts  = []string{"]]>", "\x00", "\xff", "\xe2\x82", "<!-- c -->", "<?pi x?>", "&", "&#;", "&#xFFFE;", "<![CDATA[x", "&bad;", "<!DOCTYPE x>"}
	genSpace     = []string{" ", "\n", "", "  \t"}
)

// generateXML puts together a few top-level elements from the pieces.
func generateXML(rng *rand.Rand) string {
	pick := func(good, bad []string) string {
		if bad != nil && rng.IntN(12) == 0 {
			return bad[rng.IntN(len(bad))]
		}
		return good[rng.IntN(len(good))]
	}
	var b strings.Builder
	var element func(depth int)
	element = func(depth int) {
		name := pick(genNames, genBadNames)
		b.WriteString("<" + name)
		if rng.IntN(4) != 0 {
			b.WriteString(" xmlns:p='urn:p'")
		}
		if rng.IntN(3) == 0 {
			b.WriteString(" xmlns:q='urn:q'")
		}
		for range rng.IntN(4) {
			b.WriteString(pick([]string{" ", "\n"}, []string{""}))
			q := "'"
			if rng.IntN(2) == 0 {
				q = `"`
			}
			b.WriteString(pick(genAttrs, genBadAttrs) + "=" + q + pick(genValues, genBadValues) + q)
		}
		b.WriteString(pick(genSpace, nil))
		if rng.IntN(4) == 0 {
			b.WriteString("/>")
			return
		}
		b.WriteString(">")
		for range rng.IntN(4) {
			if depth < 7 && rng.IntN(2) == 0 {
				element(depth + 1)
			} else {
				b.WriteString(pick(genTexts, genBadTexts))
			}
		}
		if rng.IntN(30) == 0 {
			name = pick(genNames, genBadNames)
		}
		b.WriteString("</" + name + pick(genSpace, nil) + ">")
	}
	for range 1 + rng.IntN(3) {
		if rng.IntN(3) == 0 {
			b.WriteString(pick(genSpace, []string{"x", "&#32;", "<![CDATA[ ]]>", "<!-- -->"}))
		}
		element(1)
	}
	if rng.IntN(4) == 0 {
		b.WriteString("</stream:stream>")
	}
	s := b.String()
	if rng.IntN(6) == 0 {
		s = s[:rng.IntN(len(s)+1)]
	}
	return s
}

// checkDifferential is the body of FuzzTokenizerDifferential.
func checkDifferential(t *testing.T, in string) {
	{
		neu := readNew(t, strings.NewReader(header+in))
		slow := readNew(t, iotest.OneByteReader(strings.NewReader(header+in)))
		if len(slow) != len(neu) {
			t.Fatalf("one byte at a time: %d outcomes, want %d", len(slow), len(neu))
		}
		for i := range neu {
			if slow[i].out != neu[i].out || slow[i].cond() != neu[i].cond() || slow[i].text() != neu[i].text() {
				t.Fatalf("element %d one byte at a time: %+v, want %+v", i, slow[i], neu[i])
			}
		}

		std := readStd(t, strings.NewReader(header+in))
		for i := 0; i < len(neu) && i < len(std); i++ {
			n, s := neu[i], std[i]
			if n.cond() == s.cond() && n.out == s.out {
				continue
			}
			d := &divergence{in: in, index: i, std: s, neu: n}
			if rule := d.explain(); rule != "" {
				t.Logf("element %d: expected divergence (%s): encoding/xml %q %v, new %q %v", i, rule, s.out, s.err, n.out, n.err)
				return
			}
			t.Fatalf("element %d of %q:\nencoding/xml: %q %v\nnew:          %q %v", i, in, s.out, s.err, n.out, n.err)
		}
	}
}

// divergence is a difference between the two readers on one element.
type divergence struct {
	in       string
	index    int // of the element
	std, neu outcome
	ns       *nsReport
}

// names reports what encoding/xml's raw tokens show of the input up to the
// element that differs.
func (d *divergence) names() *nsReport {
	if d.ns == nil {
		d.ns = checkNames(d.in, d.index)
	}
	return d.ns
}

// explain returns the rule that accounts for the divergence, or "".
func (d *divergence) explain() string {
	for _, r := range divergenceRules {
		if r.applies(d) {
			return r.name
		}
	}
	return ""
}

// newRefuses reports whether the new reader refused the element, with
// condition c and a text containing text, where encoding/xml either
// accepted it or failed on something it met later (which the new reader,
// failing first, never reached).
func (d *divergence) newRefuses(c StreamCondition, text string) bool {
	return d.neu.cond() == string(c) && strings.Contains(d.neu.text(), text) &&
		d.std.cond() != "closed"
}

// divergenceRules are the documented differences between the new reader
// and encoding/xml, each with the check that the input has what makes it.
var divergenceRules = []struct {
	name    string
	applies func(d *divergence) bool
}{
	// Namespaces in XML 1.0. encoding/xml takes an unbound prefix for the
	// namespace itself; the new reader refuses it (RFC 6120 §4.9.3.2).
	{"unbound prefix", func(d *divergence) bool {
		return d.newRefuses(BadNamespacePrefix, "is not declared") && d.names().unbound
	}},
	// encoding/xml does not look for duplicate attributes (the last one
	// won); XML 1.0 (Unique Att Spec) and Namespaces in XML (by expanded
	// name) forbid them.
	{"duplicate attribute", func(d *divergence) bool {
		return d.newRefuses(NotWellFormed, "duplicate attribute") && d.names().dupAttr
	}},
	// encoding/xml takes ":a" and "a:" for local names; they are not
	// QNames.
	{"not a QName", func(d *divergence) bool {
		return d.newRefuses(NotWellFormed, "is not a qualified name") && d.names().badQName
	}},
	// encoding/xml accepts xmlns:p='', declarations of the xml and xmlns
	// prefixes and namespaces, and the xmlns prefix on an element.
	{"reserved prefix or namespace", func(d *divergence) bool {
		return d.neu.cond() == string(NotWellFormed) && d.names().badDecl &&
			(strings.Contains(d.neu.text(), "prefix") || strings.Contains(d.neu.text(), "namespace") ||
				strings.Contains(d.neu.text(), "cannot be declared"))
	}},
	// encoding/xml takes <xml:x/> into the xml namespace; the new reader
	// refuses it, as that namespace cannot be the default one that
	// elements travel with.
	{"element in the xml namespace", func(d *divergence) bool {
		return d.newRefuses(BadFormat, "xml namespace") && strings.Contains(d.in, "<xml:")
	}},
	// encoding/xml puts an element named xmlns in no namespace, not in
	// the default one.
	{"element named xmlns", func(d *divergence) bool {
		return d.std.err == nil && d.neu.err == nil && d.names().xmlnsElement
	}},
	// The new reader counts attributes as it reads them and stops at one
	// past the limit (a header of 23,000 cost 0.7 s of CPU); encoding/xml
	// reads the whole tag, and fails first on a mistake after that
	// attribute, where the new reader never looked. Where encoding/xml
	// read the tag whole, it refused it for the same limit.
	{"attribute limit met before a later mistake", func(d *divergence) bool {
		return d.newRefuses(StreamPolicyViolation, "attributes on one element") && d.std.err != nil
	}},
	// encoding/xml reads <a x='1'y='2'>; XML requires white space between
	// attributes.
	{"attributes without white space", func(d *divergence) bool {
		return d.newRefuses(NotWellFormed, "separated by white space") && attrsWithoutSpace.MatchString(d.in)
	}},
	// encoding/xml turns a character reference to a surrogate into
	// U+FFFD; it is not an XML Char.
	{"reference to a surrogate", func(d *divergence) bool {
		return d.newRefuses(NotWellFormed, "surrogate") && hasSurrogateRef(d.in)
	}},
	// Names: the new reader has the Name production of XML 1.0 fifth
	// edition, encoding/xml the older tables, which know fewer letters.
	{"non-ASCII name", func(d *divergence) bool {
		if name, ok := strings.CutPrefix(d.std.text(), "invalid XML name: "); ok {
			return hasNonASCII(name) && isName([]byte(name))
		}
		if !d.newRefuses(NotWellFormed, "invalid name") {
			return false
		}
		name, err := strconv.Unquote(strings.Fields(d.neu.text())[2])
		return err == nil && hasNonASCII(name) && stdIsName(name)
	}},
	// encoding/xml reads a comment, DTD or processing instruction to its
	// end before it is refused (and acts on an XML declaration's encoding
	// and version); the new reader refuses it at its start, so where the
	// markup is cut short or bad, encoding/xml's error is another.
	{"markup refused at its start", func(d *divergence) bool {
		return d.neu.cond() == string(RestrictedXML) && d.std.err != nil && d.std.cond() != "closed" &&
			(strings.Contains(d.in, "<!") || strings.Contains(d.in, "<?"))
	}},
	// Between stanzas encoding/xml reads a whole text node, references and
	// CDATA sections included, and takes it for a keepalive if it decodes
	// to white space; the new reader takes only literal white space, and
	// refuses anything else at its first byte.
	{"text between stanzas", func(d *divergence) bool {
		if !d.newRefuses(BadFormat, "text between stanzas") {
			return false
		}
		return d.std.err != nil || strings.Contains(d.in, "&") || strings.Contains(d.in, "<![CDATA[")
	}},
	// A malformed reference (a bare '&', no ';', not a number) is not
	// well-formed XML; encoding/xml's message for it says "entity", so
	// the Reader used to call it restricted XML.
	{"malformed reference", func(d *divergence) bool {
		return d.std.cond() == string(RestrictedXML) && strings.Contains(d.std.text(), "invalid character entity") &&
			d.neu.cond() == string(NotWellFormed) && strings.Contains(d.neu.text(), "malformed")
	}},
	// The Reader used to find entity errors by looking for "entity" in
	// encoding/xml's messages, and so called any syntax error whose message
	// quotes the input restricted XML when the input said "entity".
	{"entity in a quoted name", func(d *divergence) bool {
		return d.std.cond() == string(RestrictedXML) && !strings.Contains(d.std.text(), "invalid character entity") &&
			strings.Contains(d.std.text(), "entity") && d.neu.cond() == string(NotWellFormed)
	}},
	// A stream cut inside a CDATA section: encoding/xml's message for it
	// is not its usual "unexpected EOF", so the Reader used to call it
	// not well-formed.
	{"cut in a CDATA section", func(d *divergence) bool {
		return d.neu.cond() == string(condEOF) && strings.Contains(d.std.text(), "unexpected EOF in CDATA section")
	}},
}

// stdIsName reports whether encoding/xml takes name for a name.
func stdIsName(name string) bool {
	_, err := xml.NewDecoder(strings.NewReader("<" + name + "/>")).Token()
	return err == nil
}

var attrsWithoutSpace = regexp.MustCompile(`=\s*("[^"]*"|'[^']*')[^\s/>]`)

var charRef = regexp.MustCompile(`&#(x[0-9a-fA-F]+|[0-9]+);`)

func hasSurrogateRef(s string) bool {
	for _, m := range charRef.FindAllStringSubmatch(s, -1) {
		var v uint64
		var err error
		if m[1][0] == 'x' {
			v, err = strconv.ParseUint(m[1][1:], 16, 32)
		} else {
			v, err = strconv.ParseUint(m[1], 10, 32)
		}
		if err == nil && 0xD800 <= v && v <= 0xDFFF {
			return true
		}
	}
	return false
}

func hasNonASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return true
		}
	}
	return false
}

// nsReport is what checkNames found.
type nsReport struct {
	unbound      bool // a prefix used and not declared
	dupAttr      bool // two attributes with the same name or expanded name
	badQName     bool // a name with an empty prefix or local part
	badDecl      bool // a declaration Namespaces in XML forbids, or the xmlns prefix on an element
	xmlnsElement bool // an element named xmlns
	nonASCIIName bool // a name with non-ASCII letters
}

// checkNames reads header+in with encoding/xml's RawToken, which leaves
// prefixes alone, up to the end of top-level element last, and reports
// what Namespaces in XML forbids in it, independently of the tokenizer.
func checkNames(in string, last int) *nsReport {
	rep := &nsReport{}
	d := xml.NewDecoder(strings.NewReader(header + in))
	d.Strict = true
	type bind struct{ prefix, uri string }
	binds := []bind{{"xml", NSXML}}
	var marks []int
	lookup := func(p string) (string, bool) {
		for i := len(binds) - 1; i >= 0; i-- {
			if binds[i].prefix == p {
				return binds[i].uri, true
			}
		}
		return "", false
	}
	checkName := func(n xml.Name) {
		if strings.Contains(n.Local, ":") {
			rep.badQName = true
		}
		if hasNonASCII(n.Space + n.Local) {
			rep.nonASCIIName = true
		}
	}
	top := -1
	for {
		tok, err := d.RawToken()
		if err != nil {
			return rep
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(marks) == 1 {
				top++
				if top > last {
					return rep
				}
			}
			marks = append(marks, len(binds))
			checkName(t.Name)
			for _, a := range t.Attr {
				checkName(a.Name)
				switch {
				case a.Name.Space == "xmlns":
					p, v := a.Name.Local, a.Value
					if p == "xmlns" || p == "xml" && v != NSXML || p != "xml" && v == NSXML || v == nsXMLNS || v == "" {
						rep.badDecl = true
					}
					binds = append(binds, bind{p, v})
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					if a.Value == NSXML || a.Value == nsXMLNS {
						rep.badDecl = true
					}
					binds = append(binds, bind{"", a.Value})
				}
			}
			switch {
			case t.Name.Space == "xmlns":
				rep.badDecl = true
			case t.Name.Space != "":
				if _, ok := lookup(t.Name.Space); !ok {
					rep.unbound = true
				}
			case t.Name.Local == "xmlns":
				rep.xmlnsElement = true
			}
			type expanded struct{ space, local string }
			seen := map[xml.Name]bool{}
			seenExpanded := map[expanded]bool{}
			for _, a := range t.Attr {
				if seen[a.Name] {
					rep.dupAttr = true
				}
				seen[a.Name] = true
				if a.Name.Space == "" || a.Name.Space == "xmlns" {
					continue
				}
				uri, ok := lookup(a.Name.Space)
				if !ok {
					rep.unbound = true
					continue
				}
				e := expanded{uri, a.Name.Local}
				if seenExpanded[e] {
					rep.dupAttr = true
				}
				seenExpanded[e] = true
			}
		case xml.EndElement:
			if len(marks) > 0 {
				binds = binds[:marks[len(marks)-1]]
				marks = marks[:len(marks)-1]
			}
			if len(marks) == 1 && top >= last {
				return rep
			}
		}
	}
}

func TestReadElementMergesText(t *testing.T) {
	el := readFirst(t, header+`<message><body>a&amp;<![CDATA[b]]>c</body></message>`)
	body := el.SelectElement("body")
	if len(body.Child) != 1 || body.Text() != "a&bc" {
		t.Fatalf("body has %d children, text %q; want one text a&bc", len(body.Child), body.Text())
	}
	if body.Parent() != el || body.Index() != 0 || el.Parent() != nil || el.Index() != -1 {
		t.Fatalf("parent links: body.Parent()=%p Index()=%d, root Parent()=%p Index()=%d", body.Parent(), body.Index(), el.Parent(), el.Index())
	}
	// The slabs do not leak into neighbours.
	body.CreateAttr("a", "1")
	el.CreateElement("x")
	if got := serialize(t, el); got != `<message><body a="1">a&amp;bc</body><x/></message>` {
		t.Fatalf("after changes: %s", got)
	}
}

// stopReader returns its data, then fails the test if read again.
type stopReader struct {
	t    *testing.T
	data string
}

func (s *stopReader) Read(p []byte) (int, error) {
	if s.data == "" {
		s.t.Fatal("read past the end of the element")
	}
	n := copy(p, s.data)
	s.data = s.data[n:]
	return n, nil
}

func TestReaderDoesNotReadPastTheElement(t *testing.T) {
	for _, in := range []string{
		`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`,
		`<message to='a'><body>x&#x1F600;</body></message>`,
		"<message to='\xf0\x9f\x98\x80'/>",
		"<message><body>\r</body></message>",
		"<message a='\r'/>",
	} {
		r := NewReader(iotest.OneByteReader(&stopReader{t: t, data: header + in}), Limits{})
		if _, err := r.ReadHeader(); err != nil {
			t.Fatal(err)
		}
		if _, err := r.ReadElement(); err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if r.Buffered() != 0 {
			t.Fatalf("%q: %d bytes buffered", in, r.Buffered())
		}
	}
}

func TestReadHeaderAndRestartKeepBufferedBytes(t *testing.T) {
	r := NewReader(strings.NewReader(header+"<a xmlns='urn:a'/>  "+header+"<b/>"), Limits{})
	for _, want := range []string{`<a xmlns="urn:a"/>`, `<b/>`} {
		if _, err := r.ReadHeader(); err != nil {
			t.Fatal(err)
		}
		el, err := r.ReadElement()
		if err != nil {
			t.Fatal(err)
		}
		if got := serialize(t, el); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
		r.Restart()
	}
}

func TestReadHeaderSelfClosed(t *testing.T) {
	r := NewReader(strings.NewReader(`<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>`), Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadElement(); !errors.Is(err, ErrStreamClosed) {
		t.Fatalf("err = %v, want ErrStreamClosed", err)
	}
}

// The benchmarks. BenchmarkReadMessage (reader_test.go) is the chat
// message; these add bodies of 1 KiB and 10 KiB, and run the same on
// encoding/xml for comparison.

const benchMessage = `<message to='juliet@example.com/balcony' id='ktx72v49' type='chat' xml:lang='en'><body>Art thou not Romeo, and a Montague? Art thou not Romeo?</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`

func bodyMessage(size int) string {
	body := strings.Repeat("Art thou not Romeo, and a Montague? ", size/36+1)[:size]
	return `<message to='juliet@example.com/balcony' id='ktx72v49' type='chat' xml:lang='en'><body>` + body + `</body></message>`
}

type elementReader interface {
	ReadHeader() (Header, error)
	ReadElement() (*etree.Element, error)
}

func benchRead(b *testing.B, msg string, open func(io.Reader) elementReader) {
	const perStream = 100
	in := header + strings.Repeat(msg, perStream)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	var r elementReader
	for i := 0; i < b.N; i++ {
		if i%perStream == 0 {
			r = open(strings.NewReader(in))
			if _, err := r.ReadHeader(); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := r.ReadElement(); err != nil {
			b.Fatal(err)
		}
	}
}

func openNew(r io.Reader) elementReader { return NewReader(r, Limits{}) }
func openStd(r io.Reader) elementReader { return newStdReader(r, Limits{}) }

func BenchmarkReadBody(b *testing.B) {
	b.Run("1KiB", func(b *testing.B) { benchRead(b, bodyMessage(1<<10), openNew) })
	b.Run("10KiB", func(b *testing.B) { benchRead(b, bodyMessage(10<<10), openNew) })
}

func BenchmarkStdRead(b *testing.B) {
	b.Run("message", func(b *testing.B) { benchRead(b, benchMessage, openStd) })
	b.Run("1KiB", func(b *testing.B) { benchRead(b, bodyMessage(1<<10), openStd) })
	b.Run("10KiB", func(b *testing.B) { benchRead(b, bodyMessage(10<<10), openStd) })
}

func TestReaderReset(t *testing.T) {
	r := NewReader(strings.NewReader(header+`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`), Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadElement(); err != nil {
		t.Fatal(err)
	}
	if r.Buffered() != 0 {
		t.Fatalf("%d bytes buffered after <starttls/>", r.Buffered())
	}
	// The TLS layer: a new transport, a new stream.
	r.Reset(strings.NewReader(header + `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>`))
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	el, err := r.ReadElement()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := serialize(t, el), `<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">AGEAYg==</auth>`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestReadElementWithoutHeader(t *testing.T) {
	r := NewReader(strings.NewReader(`<message><body>x</body></message></x>`), Limits{})
	el, err := r.ReadElement()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := serialize(t, el), `<message><body>x</body></message>`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if _, err := r.ReadElement(); condition(err) != string(NotWellFormed) {
		t.Fatalf("an end tag with no stream: %v, want not-well-formed", err)
	}
}

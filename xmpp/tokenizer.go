package xmpp

import (
	"strconv"
	"unicode/utf8"

	"github.com/beevik/etree"
)

// This file is the Reader's tokenizer: a hand-written parser of the subset
// of XML that XMPP allows (RFC 6120 §11), working on the bufio.Reader's
// buffer directly.
//
// A stanza is read in two passes. The first reads it from the buffer,
// checks all of it (well-formedness, namespaces, limits) and leaves
// compact records in slices the Reader keeps from stanza to stanza: every
// decoded text, attribute value and name that is not a well-known constant
// goes to one byte arena, and the elements, texts and attributes become
// events that point into it. The second pass knows every count, so it
// makes one string of the arena and one slab each of elements, texts,
// attributes and child slots, and builds the etree from them: a handful of
// allocations per stanza whatever its size, and nothing built for a stanza
// that turns out to be bad. The slabs hand out sub-slices capped at their
// length, so a later append to one element's attributes or children
// reallocates instead of running into its neighbour's. The price: one
// string of a stanza kept alive keeps the stanza's arena alive, and one
// element kept alive keeps the stanza's slabs.
//
// Where the XML is bad, the errors are those encoding/xml made the Reader
// return (the differential fuzz test holds the two to the same answers),
// with these deliberate differences, all listed with reasons in
// reader_diff_test.go:
//   - namespaces are checked (Namespaces in XML 1.0): an unbound prefix is
//     <bad-namespace-prefix/>; undeclaring a prefix, misusing the xml and
//     xmlns prefixes or namespaces, and names with an empty prefix or
//     local part are <not-well-formed/>;
//   - duplicate attributes (by name, or by namespace and local name) are
//     <not-well-formed/>, and so are attributes not separated by white
//     space;
//   - a character reference must denote an XML Char: surrogates are
//     refused, not turned into U+FFFD;
//   - names are checked against the Name production of XML 1.0 fifth
//     edition, which allows more non-ASCII letters than the older tables of
//     encoding/xml;
//   - a comment, DTD or processing instruction is refused as soon as it
//     starts, not read to its end; text between stanzas likewise, and only
//     literal white space counts as a keepalive there (no references or
//     CDATA sections);
//   - a reference that is not well-formed (a bare '&', a missing ';', a
//     number that is not one) is <not-well-formed/>; only a well-formed
//     reference to an unknown entity is <restricted-xml/>;
//   - a stream cut inside a CDATA section is io.ErrUnexpectedEOF, like a
//     stream cut anywhere else;
//   - an element named xmlns is in the default namespace (encoding/xml
//     put it in none).
//
// Kept from encoding/xml: attribute values are not normalized beyond line
// ends (a tab or newline stays one), the xml prefix works on elements too,
// and a CDATA section is text. Adjacent texts and CDATA sections make one
// text node where encoding/xml made several, which serialize the same.

// span is a range of bytes in one of the Reader's buffers.
type span struct{ off, end int }

// str is a string of the stanza being read: a constant, or a range of the
// arena when s is "".
type str struct {
	s        string
	off, end int
}

func (v str) in(arena string) string {
	if v.s != "" {
		return v.s
	}
	return arena[v.off:v.end]
}

// binding is a namespace declaration in scope: prefix (empty for the default
// namespace) and URI, both in Reader.scope.
type binding struct{ prefix, uri span }

// frame is an open element.
type frame struct {
	qname span // its raw name, for the end tag, in scope
	ns    span // its namespace, in scope (empty: none)
	binds int  // len(Reader.binds) before its declarations
	scope int  // len(Reader.scope) before it
	ev    int  // its start event
}

// rawAttr is an attribute of the start tag being read.
type rawAttr struct {
	name  span // in Reader.tag
	colon int  // index of ':' in the name, or -1
	val   span // in the arena, or in scope for a namespace declaration
	decl  bool // a namespace declaration: xmlns or xmlns:p
	ns    span // the namespace of a prefixed attribute, in scope
}

// oattr is an attribute as it will be built.
type oattr struct{ key, val str }

const (
	evStart = iota
	evEnd
	evText
)

// event is one record of the first pass.
type event struct {
	kind   uint8
	val    str // the local name of a start, the data of a text
	attrs  int // a start's first attribute in Reader.oattrs
	nattrs int
	nchild int // a start's children: elements and texts
}

// Character classes: which bytes stop the fast loop of each kind of
// character data.
const (
	spText  = 1 << iota // < & ] > CR, controls, non-ASCII
	spCDATA             // ] > CR, controls, non-ASCII
	spApos              // ' < & CR, controls, non-ASCII
	spQuot              // " < & CR, controls, non-ASCII
)

var charClass = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c >= utf8.RuneSelf, c < 0x20 && c != '\t' && c != '\n':
			t[c] = spText | spCDATA | spApos | spQuot
		case c == '<', c == '&':
			t[c] = spText | spApos | spQuot
		case c == ']', c == '>':
			t[c] = spText | spCDATA
		case c == '\'':
			t[c] = spApos
		case c == '"':
			t[c] = spQuot
		}
	}
	return t
}()

// nameByte holds the bytes a name runs over: ASCII name characters and
// every byte of a multi-byte sequence (checked once the name is read), as
// encoding/xml delimits names.
var nameByte = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c >= utf8.RuneSelf || isNameStartASCII(byte(c)) ||
			'0' <= c && c <= '9' || c == '.' || c == '-'
	}
	return t
}()

func isNameStartASCII(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == ':'
}

func isSpaceByte(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// isChar reports whether r is a Char of XML 1.0.
func isChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		0x20 <= r && r <= 0xD7FF || 0xE000 <= r && r <= 0xFFFD || 0x10000 <= r && r <= 0x10FFFF
}

// isNameStartRune and isNameRune are NameStartChar and NameChar of XML 1.0
// fifth edition.
func isNameStartRune(r rune) bool {
	if r < utf8.RuneSelf {
		return isNameStartASCII(byte(r))
	}
	return 0xC0 <= r && r <= 0xD6 || 0xD8 <= r && r <= 0xF6 || 0xF8 <= r && r <= 0x2FF ||
		0x370 <= r && r <= 0x37D || 0x37F <= r && r <= 0x1FFF || 0x200C <= r && r <= 0x200D ||
		0x2070 <= r && r <= 0x218F || 0x2C00 <= r && r <= 0x2FEF || 0x3001 <= r && r <= 0xD7FF ||
		0xF900 <= r && r <= 0xFDCF || 0xFDF0 <= r && r <= 0xFFFD || 0x10000 <= r && r <= 0xEFFFF
}

func isNameRune(r rune) bool {
	return isNameStartRune(r) || '0' <= r && r <= '9' || r == '.' || r == '-' ||
		r == 0xB7 || 0x300 <= r && r <= 0x36F || 0x203F <= r && r <= 0x2040
}

// isName reports whether b, a run of nameByte bytes, is an XML Name.
func isName(b []byte) bool {
	ok, _, _ := nameColon(b)
	return ok
}

// nameColon reports whether b, a run of nameByte bytes, is an XML Name,
// and where its first colon is (-1: none) and whether another follows. The
// Name check looks at every byte anyway, so it notes the colons on the way:
// the QName checks and the prefix/local split then need no scan of their
// own.
func nameColon(b []byte) (ok bool, colon int, more bool) {
	colon = -1
	if len(b) == 0 {
		return false, colon, false
	}
	if b[0] < utf8.RuneSelf {
		if !isNameStartASCII(b[0]) {
			return false, colon, false
		}
		// ASCII bytes of a run of nameByte bytes are all NameChars, so
		// only the colons are of interest.
		ascii := true
		for i, c := range b {
			if c >= utf8.RuneSelf {
				ascii = false
				break
			}
			if c == ':' {
				if colon >= 0 {
					more = true
				} else {
					colon = i
				}
			}
		}
		if ascii {
			return true, colon, more
		}
		colon, more = -1, false
	}
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return false, -1, false
		}
		if i == 0 && !isNameStartRune(r) || !isNameRune(r) {
			return false, -1, false
		}
		if r == ':' {
			if colon >= 0 {
				more = true
			} else {
				colon = i
			}
		}
		i += n
	}
	return true, colon, more
}

func notWellFormed(text string) *StreamError { return NewStreamError(NotWellFormed, text) }

// The namespace of namespace declarations, which nothing may declare.
const nsXMLNS = "http://www.w3.org/2000/xmlns/"

// The window on the buffer.

// need makes sure at least n bytes are in the window from pos, reading
// from the transport if it must. Once the transport fails, it fails the
// same way without reading again, as encoding/xml did.
func (r *Reader) need(n int) error {
	if len(r.buf)-r.pos >= n {
		return nil
	}
	if r.rerr != nil {
		return r.rerr
	}
	_, _ = r.br.Discard(r.pos) // buffered bytes: cannot fail
	r.pos = 0
	_, err := r.br.Peek(n)
	r.buf, _ = r.br.Peek(r.br.Buffered())
	if err != nil {
		r.rerr = err
	}
	return err
}

// release gives the bytes taken back to the bufio.Reader's accounting and
// forgets the window, at the end of every call of the API.
func (r *Reader) release() {
	if r.br != nil {
		_, _ = r.br.Discard(r.pos)
	}
	r.buf, r.pos = nil, 0
}

func (r *Reader) peekByte() (byte, error) {
	if r.pos == len(r.buf) {
		if err := r.need(1); err != nil {
			return 0, err
		}
	}
	return r.buf[r.pos], nil
}

func (r *Reader) nextByte() (byte, error) {
	c, err := r.peekByte()
	if err == nil {
		r.pos++
	}
	return c, err
}

// skipSpace skips white space and reports whether there was any.
func (r *Reader) skipSpace() (bool, error) {
	skipped := false
	for {
		if r.pos == len(r.buf) {
			if err := r.need(1); err != nil {
				return skipped, err
			}
		}
		if !isSpaceByte(r.buf[r.pos]) {
			return skipped, nil
		}
		r.pos++
		skipped = true
	}
}

// scanName appends the run of name bytes at pos to dst.
func (r *Reader) scanName(dst []byte) ([]byte, error) {
	for {
		if r.pos == len(r.buf) {
			if err := r.need(1); err != nil {
				return dst, err
			}
		}
		b := r.buf[r.pos:]
		i := 0
		for i < len(b) && nameByte[b[i]] {
			i++
		}
		dst = append(dst, b[:i]...)
		r.pos += i
		if i < len(b) {
			return dst, nil
		}
	}
}

// readName appends the name at pos to dst; what is not a Name is
// not-well-formed. what says what the name is for, in error texts.
func (r *Reader) readName(dst []byte, what string) ([]byte, error) {
	start := len(dst)
	dst, err := r.scanName(dst)
	if err != nil {
		return dst, err
	}
	if ok, _, _ := nameColon(dst[start:]); !ok {
		return dst, badName(dst[start:], what)
	}
	return dst, nil
}

// readQName is readName for the name of an element or attribute, which
// cannot have more than one colon. It returns the index of the colon in
// the name, or -1, for the checks and the prefix/local split that follow.
// (An empty prefix or local part is refused later, by checkQName once the
// tag is read: encoding/xml took them for local names, and an error found
// in the tag before then wins.)
func (r *Reader) readQName(dst []byte, what string) ([]byte, int, error) {
	start := len(dst)
	dst, err := r.scanName(dst)
	if err != nil {
		return dst, -1, err
	}
	name := dst[start:]
	ok, colon, more := nameColon(name)
	switch {
	case !ok:
		return dst, -1, badName(name, what)
	case more:
		return dst, -1, notWellFormed("'" + string(name) + "' is not a qualified name")
	}
	return dst, colon, nil
}

// badName is the error for name, which is not a Name, where what was
// expected.
func badName(name []byte, what string) *StreamError {
	if len(name) == 0 {
		return notWellFormed("expected " + what)
	}
	return notWellFormed("invalid name " + strconv.Quote(string(name)) + " where " + what + " was expected")
}

// charData appends the character data at pos to dst, decoded: the text of
// an element up to the next '<' (mask spText, the '<' not taken), an
// attribute value up to and with its closing quote (spApos, spQuot), or a
// CDATA section up to and with its "]]>" (spCDATA). Line ends are
// normalized to "\n". A character that is not an XML Char, or bytes that
// are not UTF-8, are reported at the end of the run, as encoding/xml did:
// an error in the structure found before then wins.
func (r *Reader) charData(dst []byte, mask uint8) ([]byte, error) {
	var bad string // the first invalid character, reported at the end
	brackets := 0  // how many ']' come just before pos
	for {
		if r.pos == len(r.buf) {
			if err := r.need(1); err != nil {
				if bad != "" && mask != spCDATA {
					return dst, notWellFormed(bad)
				}
				return dst, err
			}
		}
		b := r.buf[r.pos:]
		i := 0
		for i < len(b) && charClass[b[i]]&mask == 0 {
			i++
		}
		if i > 0 {
			dst = append(dst, b[:i]...)
			r.pos += i
			brackets = 0
			if i == len(b) {
				continue
			}
		}
		switch c := b[i]; {
		case c == '<':
			if mask != spText {
				return dst, notWellFormed("'<' in an attribute value")
			}
			if bad != "" {
				return dst, notWellFormed(bad)
			}
			return dst, nil
		case c == '\'' || c == '"':
			r.pos++
			if bad != "" {
				return dst, notWellFormed(bad)
			}
			return dst, nil
		case c == '&':
			r.pos++
			var err error
			if dst, err = r.reference(dst, &bad); err != nil {
				return dst, err
			}
			brackets = 0
		case c == ']':
			r.pos++
			dst = append(dst, c)
			brackets++
		case c == '>':
			r.pos++
			if brackets >= 2 {
				if mask == spCDATA {
					dst = dst[:len(dst)-2]
					if bad != "" {
						return dst, notWellFormed(bad)
					}
					return dst, nil
				}
				return dst, notWellFormed("']]>' in text")
			}
			dst = append(dst, c)
			brackets = 0
		case c == '\r':
			r.pos++
			dst = append(dst, '\n')
			brackets = 0
			// Any error here comes back from the next read.
			if r.need(1) == nil && r.buf[r.pos] == '\n' {
				r.pos++
			}
		case c < utf8.RuneSelf: // a control character
			r.pos++
			if bad == "" {
				bad = "character " + strconv.QuoteRune(rune(c)) + " is not allowed in XML"
			}
			dst = append(dst, c)
			brackets = 0
		default:
			dst = r.multiByte(dst, &bad)
			brackets = 0
		}
	}
}

// multiByte appends the UTF-8 sequence at pos to dst and checks it.
func (r *Reader) multiByte(dst []byte, bad *string) []byte {
	for !utf8.FullRune(r.buf[r.pos:]) {
		if r.need(len(r.buf)-r.pos+1) != nil {
			break // cut short: not UTF-8; any error comes back from the next read
		}
	}
	c, n := utf8.DecodeRune(r.buf[r.pos:])
	if *bad == "" {
		if c == utf8.RuneError && n == 1 {
			*bad = "invalid UTF-8"
		} else if !isChar(c) {
			*bad = "character " + strconv.QuoteRune(c) + " is not allowed in XML"
		}
	}
	dst = append(dst, r.buf[r.pos:r.pos+n]...)
	r.pos += n
	return dst
}

// reference decodes the reference after an '&' and appends it to dst. A
// character reference to a character that is not an XML Char goes to bad.
func (r *Reader) reference(dst []byte, bad *string) ([]byte, error) {
	c, err := r.nextByte()
	if err != nil {
		return dst, err
	}
	if c == '#' {
		if c, err = r.nextByte(); err != nil {
			return dst, err
		}
		hex := c == 'x'
		if hex {
			if c, err = r.nextByte(); err != nil {
				return dst, err
			}
		}
		var v rune
		digits := 0
		for {
			var d rune
			switch {
			case '0' <= c && c <= '9':
				d = rune(c - '0')
			case hex && 'a' <= c && c <= 'f':
				d = rune(c-'a') + 10
			case hex && 'A' <= c && c <= 'F':
				d = rune(c-'A') + 10
			default:
				d = -1
			}
			if d < 0 {
				break
			}
			if hex {
				v = v*16 + d
			} else {
				v = v*10 + d
			}
			if v > utf8.MaxRune {
				v = utf8.MaxRune + 1 // stays too big without overflowing
			}
			digits++
			if c, err = r.nextByte(); err != nil {
				return dst, err
			}
		}
		if c != ';' || digits == 0 || v > utf8.MaxRune {
			return dst, notWellFormed("malformed character reference")
		}
		if *bad == "" && !isChar(v) {
			if 0xD800 <= v && v <= 0xDFFF {
				*bad = "character reference to a surrogate"
			} else {
				*bad = "character reference to " + strconv.QuoteRune(v) + ", not allowed in XML"
			}
		}
		return utf8.AppendRune(dst, v), nil
	}
	// An entity reference: the name goes to the end of tag for a moment.
	r.pos--
	start := len(r.tag)
	if r.tag, err = r.scanName(r.tag); err != nil {
		return dst, err
	}
	name := r.tag[start:]
	defer func() { r.tag = r.tag[:start] }()
	if c, err = r.nextByte(); err != nil {
		return dst, err
	}
	if c != ';' || !isName(name) {
		return dst, notWellFormed("malformed entity reference")
	}
	switch string(name) {
	case "lt":
		return append(dst, '<'), nil
	case "gt":
		return append(dst, '>'), nil
	case "amp":
		return append(dst, '&'), nil
	case "apos":
		return append(dst, '\''), nil
	case "quot":
		return append(dst, '"'), nil
	}
	return dst, NewStreamError(RestrictedXML, "only the five predefined entities and character references are allowed")
}

// readStartTag reads a start tag after its '<': the raw name goes to tag,
// the attributes to attrs, their values to the arena or, for namespace
// declarations, to scope. It reports whether the element is empty (<a/>).
func (r *Reader) readStartTag() (empty bool, err error) {
	r.tag = r.tag[:0]
	r.attrs = r.attrs[:0]
	if r.tag, r.colon, err = r.readQName(r.tag, "an element name after '<'"); err != nil {
		return false, err
	}
	for {
		sp, err := r.skipSpace()
		if err != nil {
			return false, err
		}
		c := r.buf[r.pos]
		switch {
		case c == '>':
			r.pos++
			return false, nil
		case c == '/':
			r.pos++
			if c, err = r.nextByte(); err != nil {
				return false, err
			}
			if c != '>' {
				return false, notWellFormed("expected '/>'")
			}
			return true, nil
		case !sp && nameByte[c]:
			return false, notWellFormed("attributes must be separated by white space")
		}
		// Counted as they are read, the stream header's too: resolve's
		// duplicate check is quadratic in the count, and one 242 KB
		// header of 23,000 attributes cost 0.7 s of CPU before
		// authentication.
		if len(r.attrs) >= r.limits.MaxAttrs {
			return false, NewStreamError(StreamPolicyViolation, "more than "+strconv.Itoa(r.limits.MaxAttrs)+" attributes on one element")
		}
		a := rawAttr{name: span{off: len(r.tag)}}
		if r.tag, a.colon, err = r.readQName(r.tag, "an attribute name"); err != nil {
			return false, err
		}
		a.name.end = len(r.tag)
		if _, err := r.skipSpace(); err != nil {
			return false, err
		}
		if c, err = r.nextByte(); err != nil {
			return false, err
		}
		if c != '=' {
			return false, notWellFormed("expected '=' after an attribute name")
		}
		if _, err := r.skipSpace(); err != nil {
			return false, err
		}
		if c, err = r.nextByte(); err != nil {
			return false, err
		}
		mask := uint8(spQuot)
		switch c {
		case '\'':
			mask = spApos
		case '"':
		default:
			return false, notWellFormed("an attribute value must be quoted")
		}
		name := r.tag[a.name.off:a.name.end]
		a.decl = string(name) == "xmlns" || a.colon == len("xmlns") && string(name[:a.colon]) == "xmlns"
		if a.decl {
			a.val.off = len(r.scope)
			r.scope, err = r.charData(r.scope, mask)
			a.val.end = len(r.scope)
		} else {
			a.val.off = len(r.arena)
			r.arena, err = r.charData(r.arena, mask)
			a.val.end = len(r.arena)
		}
		if err != nil {
			return false, err
		}
		r.attrs = append(r.attrs, a)
	}
}

// checkQName refuses a name with an empty prefix or local part; colon is
// the index of its colon, or -1. A second colon was refused as the name was
// read (readQName).
func checkQName(name []byte, colon int) error {
	if colon < 0 {
		return nil
	}
	if colon == 0 || colon == len(name)-1 {
		return notWellFormed("'" + string(name) + "' is not a qualified name")
	}
	return nil
}

func (r *Reader) lookup(prefix []byte) (span, bool) {
	for i := len(r.binds) - 1; i >= 0; i-- {
		b := r.binds[i]
		if string(r.scope[b.prefix.off:b.prefix.end]) == string(prefix) {
			return b.uri, true
		}
	}
	return span{}, false
}

func (r *Reader) bytesOf(s span) []byte { return r.scope[s.off:s.end] }

// resolve checks the start tag just read for duplicate attributes, applies
// its namespace declarations, and resolves the namespaces of the element
// (returned) and of its prefixed attributes (in attrs). The caller has taken
// the scope and binds marks before the tag was read.
func (r *Reader) resolve() (span, error) {
	tag := r.tag
	for i := range r.attrs {
		a := &r.attrs[i]
		name := tag[a.name.off:a.name.end]
		for _, b := range r.attrs[:i] {
			if string(tag[b.name.off:b.name.end]) == string(name) {
				return span{}, notWellFormed("duplicate attribute " + string(name))
			}
		}
		if err := checkQName(name, a.colon); err != nil {
			return span{}, err
		}
		if !a.decl {
			continue
		}
		uri := r.bytesOf(a.val)
		b := binding{uri: a.val}
		if a.colon < 0 {
			if string(uri) == NSXML || string(uri) == nsXMLNS {
				return span{}, notWellFormed("the default namespace cannot be " + string(uri))
			}
		} else {
			prefix := name[a.colon+1:]
			switch {
			case string(prefix) == "xmlns":
				return span{}, notWellFormed("the xmlns prefix cannot be declared")
			case string(prefix) == "xml" && string(uri) != NSXML, string(prefix) != "xml" && string(uri) == NSXML:
				return span{}, notWellFormed("the xml prefix is bound to " + NSXML + " and nothing else is")
			case string(uri) == nsXMLNS:
				return span{}, notWellFormed(nsXMLNS + " cannot be declared")
			case len(uri) == 0:
				return span{}, notWellFormed("a prefix cannot be undeclared")
			}
			b.prefix.off = len(r.scope)
			r.scope = append(r.scope, prefix...)
			b.prefix.end = len(r.scope)
		}
		r.binds = append(r.binds, b)
	}

	qname := tag[:r.attrs0()]
	if err := checkQName(qname, r.colon); err != nil {
		return span{}, err
	}
	var ns span
	if r.colon < 0 {
		ns, _ = r.lookup(nil)
	} else {
		prefix := qname[:r.colon]
		if string(prefix) == "xmlns" {
			return span{}, notWellFormed("the xmlns prefix is reserved")
		}
		if string(prefix) == "xml" {
			// Its namespace cannot be a default namespace (Namespaces
			// in XML §3), which is how elements travel here.
			return span{}, NewStreamError(BadFormat, "elements in the xml namespace are not allowed")
		}
		var ok bool
		if ns, ok = r.lookup(prefix); !ok {
			return span{}, NewStreamError(BadNamespacePrefix, "prefix "+string(prefix)+" is not declared")
		}
	}

	for i := range r.attrs {
		a := &r.attrs[i]
		if a.decl || a.colon < 0 {
			continue
		}
		prefix := tag[a.name.off : a.name.off+a.colon]
		var ok bool
		if a.ns, ok = r.lookup(prefix); !ok {
			return span{}, NewStreamError(BadNamespacePrefix, "prefix "+string(prefix)+" is not declared")
		}
		local := tag[a.name.off+a.colon+1 : a.name.end]
		for _, b := range r.attrs[:i] {
			if !b.decl && b.colon >= 0 &&
				string(tag[b.name.off+b.colon+1:b.name.end]) == string(local) &&
				string(r.bytesOf(b.ns)) == string(r.bytesOf(a.ns)) {
				return span{}, notWellFormed("duplicate attribute {" + string(r.bytesOf(a.ns)) + "}" + string(local))
			}
		}
	}
	return ns, nil
}

// attrs0 is the length of the element's raw name in tag.
func (r *Reader) attrs0() int {
	if len(r.attrs) > 0 {
		return r.attrs[0].name.off
	}
	return len(r.tag)
}

// pushFrame opens the element whose start tag was just read and resolved.
func (r *Reader) pushFrame(ns span, scope, binds, ev int) {
	f := frame{ns: ns, binds: binds, scope: scope, ev: ev}
	f.qname.off = len(r.scope)
	r.scope = append(r.scope, r.tag[:r.attrs0()]...)
	f.qname.end = len(r.scope)
	r.frames = append(r.frames, f)
}

// popFrame closes the innermost element and its declarations.
func (r *Reader) popFrame() {
	f := r.frames[len(r.frames)-1]
	r.frames = r.frames[:len(r.frames)-1]
	r.binds = r.binds[:f.binds]
	r.scope = r.scope[:f.scope]
}

// readEndTag reads an end tag after its "</" and checks that it closes the
// innermost element.
func (r *Reader) readEndTag() error {
	var err error
	r.tag = r.tag[:0]
	if r.tag, _, err = r.readQName(r.tag, "an element name after '</'"); err != nil {
		return err
	}
	if _, err := r.skipSpace(); err != nil {
		return err
	}
	c := r.buf[r.pos]
	r.pos++
	if c != '>' {
		return notWellFormed("expected '>' after </" + string(r.tag))
	}
	if len(r.frames) == 0 { // no stream header was read
		return notWellFormed("unexpected end tag </" + string(r.tag) + ">")
	}
	f := r.frames[len(r.frames)-1]
	if open := r.bytesOf(f.qname); string(open) != string(r.tag) {
		return notWellFormed("element <" + string(open) + "> closed by </" + string(r.tag) + ">")
	}
	return nil
}

// readMarkup handles what follows "<!" or "<?" (at pos), which is refused:
// a comment, DTD or processing instruction is restricted XML, anything
// else not well-formed. A CDATA section is not refused: it returns nil
// with pos after "<![CDATA[".
func (r *Reader) readMarkup(c byte) error {
	r.pos++
	if c == '?' {
		var err error
		if r.tag, err = r.readName(r.tag[:0], "a target name after '<?'"); err != nil {
			return err
		}
		return NewStreamError(RestrictedXML, "processing instructions are not allowed")
	}
	c, err := r.nextByte()
	if err != nil {
		return err
	}
	switch c {
	case '-':
		if c, err = r.nextByte(); err != nil {
			return err
		}
		if c != '-' {
			return notWellFormed("'<!-' is not the start of a comment")
		}
		return NewStreamError(RestrictedXML, "comments are not allowed")
	case '[':
		for i := range len("CDATA[") {
			if c, err = r.nextByte(); err != nil {
				return err
			}
			if c != "CDATA["[i] {
				return notWellFormed("'<![' is not the start of a CDATA section")
			}
		}
		return nil
	}
	return NewStreamError(RestrictedXML, "DTDs and other directives are not allowed")
}

// readStanza reads a top-level element, whose '<' was just taken, into
// events (the first pass).
func (r *Reader) readStanza() error {
	r.arena = r.arena[:0]
	r.evs = r.evs[:0]
	r.oattrs = r.oattrs[:0]
	r.nEl, r.nText = 0, 0
	base := len(r.frames)
	if err := r.startElement(base); err != nil {
		return err
	}
	for len(r.frames) > base {
		off := len(r.arena)
		var err error
		r.arena, err = r.charData(r.arena, spText)
		if len(r.arena) > off {
			r.addText(off)
		}
		if err != nil {
			return err
		}
		r.pos++ // '<'
		c, err := r.peekByte()
		if err != nil {
			return err
		}
		switch c {
		case '/':
			r.pos++
			if err := r.readEndTag(); err != nil {
				return err
			}
			r.popFrame()
			r.evs = append(r.evs, event{kind: evEnd})
		case '!', '?':
			if err := r.readMarkup(c); err != nil {
				return err
			}
			off := len(r.arena)
			if r.arena, err = r.charData(r.arena, spCDATA); err != nil {
				return err
			}
			r.addText(off) // even an empty one, as encoding/xml did
		default:
			if err := r.startElement(base); err != nil {
				return err
			}
		}
	}
	return nil
}

// addText records the text from off to the end of the arena: with the text
// just before it, if that is where it follows, as one run.
func (r *Reader) addText(off int) {
	if n := len(r.evs); n > 0 && r.evs[n-1].kind == evText {
		r.evs[n-1].val.end = len(r.arena)
		return
	}
	r.evs[r.frames[len(r.frames)-1].ev].nchild++
	r.evs = append(r.evs, event{kind: evText, val: str{off: off, end: len(r.arena)}})
	r.nText++
}

// startElement reads an element's start tag, after its '<', inside a
// stanza whose frames start at base.
func (r *Reader) startElement(base int) error {
	scope, binds := len(r.scope), len(r.binds)
	empty, err := r.readStartTag()
	if err != nil {
		return err
	}
	depth := len(r.frames) - base
	if depth >= r.limits.MaxDepth {
		return NewStreamError(StreamPolicyViolation, "elements nested deeper than "+strconv.Itoa(r.limits.MaxDepth))
	}
	ns, err := r.resolve()
	if err != nil {
		return err
	}

	ev := event{kind: evStart, attrs: len(r.oattrs)}
	ev.val = r.name(r.tag[r.colon+1 : r.attrs0()])
	var differs bool
	if depth == 0 {
		differs = string(r.bytesOf(ns)) != r.ns
	} else {
		parent := r.frames[len(r.frames)-1]
		r.evs[parent.ev].nchild++
		differs = string(r.bytesOf(ns)) != string(r.bytesOf(parent.ns))
	}
	if differs {
		r.oattrs = append(r.oattrs, oattr{str{s: "xmlns"}, r.uri(ns)})
	}
	prefixed := 0
	for _, a := range r.attrs {
		val := str{off: a.val.off, end: a.val.end}
		switch {
		case a.decl:
		case a.colon < 0:
			r.oattrs = append(r.oattrs, oattr{r.name(r.tag[a.name.off:a.name.end]), val})
		case string(r.tag[a.name.off:a.name.off+a.colon]) == "xml":
			r.oattrs = append(r.oattrs, oattr{r.xmlKey(r.tag[a.name.off+a.colon+1 : a.name.end]), val})
		default:
			prefixed++
			r.oattrs = append(r.oattrs,
				oattr{r.xmlnsKey(prefixed), r.uri(a.ns)},
				oattr{r.prefixedKey(prefixed, r.tag[a.name.off+a.colon+1:a.name.end]), val})
		}
	}
	ev.nattrs = len(r.oattrs) - ev.attrs
	r.evs = append(r.evs, ev)
	r.nEl++
	r.pushFrame(ns, scope, binds, len(r.evs)-1)
	if empty {
		r.popFrame()
		r.evs = append(r.evs, event{kind: evEnd})
	}
	return nil
}

// copyOut puts b in the arena.
func (r *Reader) copyOut(b []byte) str {
	v := str{off: len(r.arena)}
	r.arena = append(r.arena, b...)
	v.end = len(r.arena)
	return v
}

// name is an element or attribute name: a constant when it is a common
// one, else a copy in the arena.
func (r *Reader) name(b []byte) str {
	if s := internName(b); s != "" {
		return str{s: s}
	}
	return r.copyOut(b)
}

// uri is a namespace URI, from scope.
func (r *Reader) uri(ns span) str {
	b := r.bytesOf(ns)
	if s := internNS(b); s != "" {
		return str{s: s}
	}
	return r.copyOut(b)
}

func (r *Reader) xmlKey(local []byte) str {
	switch string(local) {
	case "lang":
		return str{s: "xml:lang"}
	case "space":
		return str{s: "xml:space"}
	}
	v := str{off: len(r.arena)}
	r.arena = append(append(r.arena, "xml:"...), local...)
	v.end = len(r.arena)
	return v
}

var xmlnsKeys = [...]string{"xmlns:ns1", "xmlns:ns2", "xmlns:ns3", "xmlns:ns4", "xmlns:ns5", "xmlns:ns6", "xmlns:ns7", "xmlns:ns8"}

// xmlnsKey is the declaration of the prefix made for the nth prefixed
// attribute of an element.
func (r *Reader) xmlnsKey(n int) str {
	if n <= len(xmlnsKeys) {
		return str{s: xmlnsKeys[n-1]}
	}
	v := str{off: len(r.arena)}
	r.arena = strconv.AppendInt(append(r.arena, "xmlns:ns"...), int64(n), 10)
	v.end = len(r.arena)
	return v
}

func (r *Reader) prefixedKey(n int, local []byte) str {
	v := str{off: len(r.arena)}
	r.arena = strconv.AppendInt(append(r.arena, "ns"...), int64(n), 10)
	r.arena = append(append(r.arena, ':'), local...)
	v.end = len(r.arena)
	return v
}

// build makes the etree of the stanza just read (the second pass).
func (r *Reader) build() *etree.Element {
	arena := string(r.arena)
	var (
		els   []etree.Element
		texts []etree.CharData
		attrs []etree.Attr
		kids  []etree.Token
	)
	if r.nEl > 1 {
		els = make([]etree.Element, r.nEl-1)
	}
	if r.nText > 0 {
		texts = make([]etree.CharData, r.nText)
	}
	// One slot more than read, for the root: the server stamps a from on
	// every stanza it routes, which would otherwise copy the root's
	// attributes to a new array.
	attrs = make([]etree.Attr, len(r.oattrs)+1)
	if n := r.nEl - 1 + r.nText; n > 0 {
		kids = make([]etree.Token, n)
	}
	var stackBuf [16]*etree.Element
	stack := stackBuf[:0]
	var root *etree.Element
	a, k := 0, 0
	for i := range r.evs {
		ev := &r.evs[i]
		switch ev.kind {
		case evStart:
			var el *etree.Element
			if root == nil {
				el = etree.NewElement(ev.val.in(arena))
				root = el
			} else {
				el, els = &els[0], els[1:]
				el.Tag = ev.val.in(arena)
			}
			n := ev.nattrs
			if el == root {
				n++
			}
			el.Attr = attrs[a : a : a+n]
			a += n
			for _, oa := range r.oattrs[ev.attrs : ev.attrs+ev.nattrs] {
				el.CreateAttr(oa.key.in(arena), oa.val.in(arena))
			}
			el.Child = kids[k : k : k+ev.nchild]
			k += ev.nchild
			if len(stack) > 0 {
				stack[len(stack)-1].AddChild(el)
			}
			stack = append(stack, el)
		case evEnd:
			stack = stack[:len(stack)-1]
		case evText:
			t := &texts[0]
			texts = texts[1:]
			t.Data = ev.val.in(arena)
			stack[len(stack)-1].AddChild(t)
		}
	}
	return root
}

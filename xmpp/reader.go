package xmpp

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// Limits bound what a Reader accepts from its peer. A zero field means the
// default named beside it.
type Limits struct {
	MaxStanza int64 // bytes of one top-level element (and of the stream header); default 256 KiB
	MaxDepth  int   // element nesting inside a stanza, the stanza itself is depth 1; default 64
	MaxAttrs  int   // attributes of one element, namespace declarations included; default 64
	Rate      int64 // bytes per second, averaged; 0 = unlimited
	Burst     int64 // bytes that may arrive at once above Rate; default MaxStanza
}

func (l Limits) withDefaults() Limits {
	if l.MaxStanza <= 0 {
		l.MaxStanza = 256 << 10
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = 64
	}
	if l.MaxAttrs <= 0 {
		l.MaxAttrs = 64
	}
	if l.Burst <= 0 {
		l.Burst = l.MaxStanza
	}
	return l
}

// readBufferSize is the size of a Reader's buffer. The size limit allows
// this much read-ahead on top of MaxStanza.
const readBufferSize = 4096

// Header is a stream header (the attributes of <stream:stream>).
type Header struct {
	To      string
	From    string
	ID      string
	Version string
	Lang    string
	NS      string // the default namespace: jabber:client, jabber:server, ...
}

// ErrStreamClosed is returned by ReadElement when the peer closed the
// stream with </stream:stream>.
var ErrStreamClosed = errors.New("xmpp: stream closed by peer")

// errTooBig is what the counting reader returns past its budget.
var errTooBig = errors.New("xmpp: stanza size limit reached")

// errEncoding is what the tokenizer gets for any encoding but UTF-8.
var errEncoding = errors.New("xmpp: streams are UTF-8")

// Reader reads one XMPP stream: its header, then one top-level element at a
// time, each built directly into an *etree.Element. Its limits are checked
// while reading: the byte budget by a counting reader under the buffer (the
// tokenizer holds a whole text node before returning it), depth and
// attributes while building.
//
// Namespaces are normalized: an element whose namespace differs from its
// parent's carries an explicit xmlns attribute, and a top-level element in
// the stream's default namespace carries none, so that a stanza moves
// between kinds of stream untouched. Prefixed attributes are kept with a
// declared prefix; xml:lang stays xml:lang.
//
// Errors from ReadHeader and ReadElement are a *StreamError for anything the
// peer did wrong, ErrStreamClosed when it closed the stream, and I/O errors
// as they come (io.ErrUnexpectedEOF when the connection ended mid-stream).
type Reader struct {
	limits Limits
	cr     counter
	br     *bufio.Reader
	dec    *xml.Decoder
	ns     string // default namespace of the stream, from the header
}

// NewReader returns a Reader of the stream arriving on r.
func NewReader(r io.Reader, l Limits) *Reader {
	rd := &Reader{limits: l.withDefaults()}
	rd.cr.r = r
	rd.cr.rate = rd.limits.Rate
	rd.cr.burst = rd.limits.Burst
	rd.cr.tokens = rd.limits.Burst
	rd.cr.now, rd.cr.sleep = time.Now, time.Sleep
	rd.br = bufio.NewReaderSize(&rd.cr, readBufferSize)
	rd.Restart()
	return rd
}

// Restart prepares for a new stream header on the same connection, as after
// SASL success (RFC 6120 §6.4.6). Buffered bytes are kept.
func (r *Reader) Restart() {
	r.dec = xml.NewDecoder(r.br)
	r.dec.Strict = true
	r.dec.CharsetReader = func(string, io.Reader) (io.Reader, error) { return nil, errEncoding }
	r.ns = ""
}

// Reset points the Reader at a new transport, as after STARTTLS, and
// prepares for a new stream header. Call it only when Buffered is 0.
func (r *Reader) Reset(rd io.Reader) {
	r.cr.r = rd
	r.br.Reset(&r.cr)
	r.Restart()
}

// Buffered returns how many bytes were read from the transport and not yet
// consumed. Before STARTTLS it must be 0: anything else is a peer that sent
// data it should not have.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// consumed is how many bytes the tokenizer has taken so far.
func (r *Reader) consumed() int64 { return r.cr.n - int64(r.br.Buffered()) }

// budget allows the next element MaxStanza bytes plus read-ahead.
func (r *Reader) budget() int64 {
	start := r.consumed()
	r.cr.max = start + r.limits.MaxStanza + readBufferSize
	return start
}

// ReadHeader reads the XML declaration, if any, and the stream header.
func (r *Reader) ReadHeader() (Header, error) {
	r.budget()
	// The tokenizer holds text until the next '<', so a peer speaking
	// something else (an HTTP request, a TLS hello on the wrong port)
	// would wait for it forever. Look at the first byte that is not
	// white space instead.
	for {
		b, err := r.br.Peek(1)
		if err != nil {
			return Header{}, r.mapError(err)
		}
		if isSpace(b) {
			_, _ = r.br.ReadByte()
			continue
		}
		if b[0] != '<' {
			return Header{}, NewStreamError(NotWellFormed, "a stream starts with '<'")
		}
		break
	}
	for {
		tok, err := r.dec.Token()
		if err != nil {
			return Header{}, r.mapError(err)
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			if t.Target != "xml" {
				return Header{}, NewStreamError(RestrictedXML, "processing instructions are not allowed")
			}
			if enc := procInstParam(string(t.Inst), "encoding"); enc != "" && !strings.EqualFold(enc, "utf-8") {
				return Header{}, NewStreamError(UnsupportedEncoding, "streams are UTF-8")
			}
		case xml.CharData:
			if !isSpace(t) {
				return Header{}, NewStreamError(NotWellFormed, "text before the stream header")
			}
		case xml.StartElement:
			if t.Name.Local != "stream" || t.Name.Space != NSStream {
				return Header{}, NewStreamError(InvalidNamespace, "the stream element is <stream xmlns='"+NSStream+"'>")
			}
			var h Header
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					h.NS = a.Value
				case a.Name.Space == "" && a.Name.Local == "to":
					h.To = a.Value
				case a.Name.Space == "" && a.Name.Local == "from":
					h.From = a.Value
				case a.Name.Space == "" && a.Name.Local == "id":
					h.ID = a.Value
				case a.Name.Space == "" && a.Name.Local == "version":
					h.Version = a.Value
				case a.Name.Space == NSXML && a.Name.Local == "lang":
					h.Lang = a.Value
				}
			}
			r.ns = h.NS
			return h, nil
		case xml.Comment, xml.Directive:
			return Header{}, NewStreamError(RestrictedXML, "comments and DTDs are not allowed")
		default:
			return Header{}, NewStreamError(NotWellFormed, "expected the stream header")
		}
	}
}

// ReadElement reads the next top-level element of the stream, skipping
// whitespace keepalives between elements.
func (r *Reader) ReadElement() (*etree.Element, error) {
	start := r.budget()
	for {
		tok, err := r.dec.Token()
		if err != nil {
			return nil, r.mapError(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			el, err := r.build(t)
			if err != nil {
				return nil, err
			}
			if r.consumed()-start > r.limits.MaxStanza {
				return nil, tooBig(r.limits.MaxStanza)
			}
			return el, nil
		case xml.EndElement:
			return nil, ErrStreamClosed
		case xml.CharData:
			if !isSpace(t) {
				return nil, NewStreamError(BadFormat, "text between stanzas")
			}
			// A whitespace keepalive: restart the budget.
			start = r.budget()
		default:
			return nil, restricted(tok)
		}
	}
}

type frame struct {
	el *etree.Element
	ns string
}

// build reads the rest of the element that start opens.
func (r *Reader) build(start xml.StartElement) (*etree.Element, error) {
	root, err := r.element(start, r.ns)
	if err != nil {
		return nil, err
	}
	stack := make([]frame, 1, 8)
	stack[0] = frame{root, start.Name.Space}
	for {
		tok, err := r.dec.Token()
		if err != nil {
			return nil, r.mapError(err)
		}
		top := &stack[len(stack)-1]
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) >= r.limits.MaxDepth {
				return nil, NewStreamError(StreamPolicyViolation, "elements nested deeper than "+strconv.Itoa(r.limits.MaxDepth))
			}
			el, err := r.element(t, top.ns)
			if err != nil {
				return nil, err
			}
			top.el.AddChild(el)
			stack = append(stack, frame{el, t.Name.Space})
		case xml.EndElement:
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return root, nil
			}
		case xml.CharData:
			top.el.CreateText(string(t))
		default:
			return nil, restricted(tok)
		}
	}
}

// element makes the etree element for start, inside a parent in parentNS.
func (r *Reader) element(start xml.StartElement, parentNS string) (*etree.Element, error) {
	if len(start.Attr) > r.limits.MaxAttrs {
		return nil, NewStreamError(StreamPolicyViolation, "more than "+strconv.Itoa(r.limits.MaxAttrs)+" attributes on one element")
	}
	el := etree.NewElement(start.Name.Local)
	if start.Name.Space != parentNS {
		el.CreateAttr("xmlns", start.Name.Space)
	}
	prefixes := 0
	for _, a := range start.Attr {
		switch a.Name.Space {
		case "xmlns":
			// A prefix declaration: prefixes are resolved, not kept.
		case "":
			if a.Name.Local != "xmlns" {
				el.CreateAttr(a.Name.Local, a.Value)
			}
		case NSXML:
			el.CreateAttr("xml:"+a.Name.Local, a.Value)
		default:
			prefixes++
			p := "ns" + strconv.Itoa(prefixes)
			el.CreateAttr("xmlns:"+p, a.Name.Space)
			el.CreateAttr(p+":"+a.Name.Local, a.Value)
		}
	}
	return el, nil
}

// mapError turns a tokenizer error into what ReadElement promises.
func (r *Reader) mapError(err error) error {
	if errors.Is(err, errTooBig) {
		return tooBig(r.limits.MaxStanza)
	}
	if strings.Contains(err.Error(), errEncoding.Error()) {
		return NewStreamError(UnsupportedEncoding, "streams are UTF-8")
	}
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		switch {
		case se.Msg == "unexpected EOF":
			return io.ErrUnexpectedEOF
		case strings.Contains(se.Msg, "entity"):
			return NewStreamError(RestrictedXML, "only the five predefined entities and character references are allowed")
		default:
			return NewStreamError(NotWellFormed, se.Msg)
		}
	}
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func tooBig(max int64) *StreamError {
	return NewStreamError(StreamPolicyViolation, "stanza larger than "+strconv.FormatInt(max, 10)+" bytes")
}

func restricted(tok xml.Token) *StreamError {
	switch tok.(type) {
	case xml.Comment:
		return NewStreamError(RestrictedXML, "comments are not allowed")
	case xml.Directive:
		return NewStreamError(RestrictedXML, "DTDs and other directives are not allowed")
	case xml.ProcInst:
		return NewStreamError(RestrictedXML, "processing instructions are not allowed")
	}
	return NewStreamError(NotWellFormed, fmt.Sprintf("unexpected %T", tok))
}

func isSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// procInstParam returns the value of param in an XML declaration body.
func procInstParam(s, param string) string {
	i := strings.Index(s, param+"=")
	if i < 0 {
		return ""
	}
	s = s[i+len(param)+1:]
	if len(s) == 0 || (s[0] != '\'' && s[0] != '"') {
		return ""
	}
	q := s[0]
	s = s[1:]
	if j := strings.IndexByte(s, q); j >= 0 {
		return s[:j]
	}
	return ""
}

// counter is the reader under the buffer: it counts bytes, stops at the
// budget and, with a rate, paces the peer with a token bucket.
type counter struct {
	r      io.Reader
	n      int64 // bytes read so far
	max    int64 // budget: no read past it
	rate   int64
	burst  int64
	tokens int64
	last   time.Time
	now    func() time.Time    // time.Now; a test's clock otherwise
	sleep  func(time.Duration) // time.Sleep; likewise
}

func (c *counter) Read(p []byte) (int, error) {
	if c.max > 0 {
		left := c.max - c.n
		if left <= 0 {
			return 0, errTooBig
		}
		if int64(len(p)) > left {
			p = p[:left]
		}
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.rate > 0 && n > 0 {
		c.pace(n)
	}
	return n, err
}

// pace takes n tokens and sleeps off any debt.
func (c *counter) pace(n int) {
	now := c.now()
	if !c.last.IsZero() {
		c.tokens += int64(now.Sub(c.last)) * c.rate / int64(time.Second)
		if c.tokens > c.burst {
			c.tokens = c.burst
		}
	}
	c.last = now
	c.tokens -= int64(n)
	if c.tokens < 0 {
		d := time.Duration(-c.tokens * int64(time.Second) / c.rate)
		c.sleep(d)
		c.last = c.last.Add(d)
		c.tokens = 0
	}
}

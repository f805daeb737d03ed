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

// stdReader is the stream reader as it was before the hand-written
// tokenizer: encoding/xml's Decoder.Token over the same counting reader and
// buffer, building the same trees. It stays as the oracle of
// FuzzTokenizerDifferential and the baseline of the benchmarks; production
// code does not use it.
type stdReader struct {
	limits Limits
	cr     counter
	br     *bufio.Reader
	dec    *xml.Decoder
	ns     string
}

// errEncoding is what the decoder gets for any encoding but UTF-8.
var errEncoding = errors.New("xmpp: streams are UTF-8")

func newStdReader(r io.Reader, l Limits) *stdReader {
	rd := &stdReader{limits: l.WithDefaults()}
	rd.cr.r = r
	rd.cr.rate = rd.limits.Rate
	rd.cr.burst = rd.limits.Burst
	rd.cr.tokens = rd.limits.Burst
	rd.cr.now, rd.cr.sleep = time.Now, time.Sleep
	rd.br = bufio.NewReaderSize(&rd.cr, readBufferSize)
	rd.Restart()
	return rd
}

func (r *stdReader) Restart() {
	r.dec = xml.NewDecoder(r.br)
	r.dec.Strict = true
	r.dec.CharsetReader = func(string, io.Reader) (io.Reader, error) { return nil, errEncoding }
	r.ns = ""
}

func (r *stdReader) consumed() int64 { return r.cr.n - int64(r.br.Buffered()) }

func (r *stdReader) budget() int64 {
	start := r.consumed()
	r.cr.max = start + r.limits.MaxStanza + readBufferSize
	return start
}

func (r *stdReader) ReadHeader() (Header, error) {
	r.budget()
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

func (r *stdReader) ReadElement() (*etree.Element, error) {
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
			start = r.budget()
		default:
			return nil, stdRestricted(tok)
		}
	}
}

type stdFrame struct {
	el *etree.Element
	ns string
}

func (r *stdReader) build(start xml.StartElement) (*etree.Element, error) {
	root, err := r.element(start, r.ns)
	if err != nil {
		return nil, err
	}
	stack := make([]stdFrame, 1, 8)
	stack[0] = stdFrame{root, start.Name.Space}
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
			stack = append(stack, stdFrame{el, t.Name.Space})
		case xml.EndElement:
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return root, nil
			}
		case xml.CharData:
			top.el.CreateText(string(t))
		default:
			return nil, stdRestricted(tok)
		}
	}
}

func (r *stdReader) element(start xml.StartElement, parentNS string) (*etree.Element, error) {
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

func (r *stdReader) mapError(err error) error {
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
			// The decoder's message, not the production text: the
			// differential test tells kinds of reference error apart by it.
			return NewStreamError(RestrictedXML, se.Msg)
		default:
			return NewStreamError(NotWellFormed, se.Msg)
		}
	}
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func stdRestricted(tok xml.Token) *StreamError {
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

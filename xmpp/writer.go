package xmpp

import (
	"bufio"
	"encoding/xml"
	"io"

	"github.com/beevik/etree"
)

// writeSettings escapes only what XML requires, to keep output small.
var writeSettings = etree.WriteSettings{CanonicalText: true, CanonicalAttrVal: true}

// Writer writes one XMPP stream through a buffer. It is not safe for
// concurrent use: one goroutine owns a stream's writing.
type Writer struct {
	bw *bufio.Writer
}

// NewWriter returns a Writer of a stream sent on w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{bw: bufio.NewWriterSize(w, 4096)}
}

// Reset points the Writer at a new transport, as after STARTTLS. Anything
// buffered is dropped: flush first.
func (w *Writer) Reset(to io.Writer) { w.bw.Reset(to) }

// WriteHeader writes the XML declaration and the opening stream tag.
func (w *Writer) WriteHeader(h Header) error {
	w.bw.WriteString("<?xml version='1.0'?><stream:stream xmlns='")
	escapeAttr(w.bw, h.NS)
	w.bw.WriteString("' xmlns:stream='" + NSStream + "'")
	attr(w.bw, "id", h.ID)
	attr(w.bw, "from", h.From)
	attr(w.bw, "to", h.To)
	attr(w.bw, "version", h.Version)
	attr(w.bw, "xml:lang", h.Lang)
	_, err := w.bw.WriteString(">")
	return err
}

func attr(bw *bufio.Writer, k, v string) {
	if v == "" {
		return
	}
	bw.WriteString(" " + k + "='")
	escapeAttr(bw, v)
	bw.WriteByte('\'')
}

func escapeAttr(bw *bufio.Writer, v string) {
	// xml.EscapeText escapes quotes, angle brackets, ampersands and line
	// breaks: enough for an attribute value in single quotes.
	_ = xml.EscapeText(bw, []byte(v))
}

// WriteElement serializes el. A top-level stanza has no xmlns of its own and
// takes the stream's default namespace.
func (w *Writer) WriteElement(el *etree.Element) error {
	el.WriteTo(w.bw, &writeSettings)
	return nil
}

// WriteRaw writes s as is: for whitespace keepalives and fixed replies.
func (w *Writer) WriteRaw(s string) error {
	_, err := w.bw.WriteString(s)
	return err
}

// WriteStreamError writes a stream error; the caller closes the stream.
func (w *Writer) WriteStreamError(e *StreamError) error {
	return w.WriteElement(e.Element())
}

// WriteEnd writes the closing stream tag.
func (w *Writer) WriteEnd() error {
	_, err := w.bw.WriteString("</stream:stream>")
	return err
}

// Buffered returns how many bytes wait to be flushed.
func (w *Writer) Buffered() int { return w.bw.Buffered() }

// Flush sends what is buffered.
func (w *Writer) Flush() error { return w.bw.Flush() }

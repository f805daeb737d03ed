package xmpp

import (
	"bufio"
	"crypto/tls"
	"encoding/xml"
	"io"
	"net"
	"strings"
	"sync"

	"github.com/beevik/etree"
)

// writeSettings escapes only what XML requires, to keep output small.
// WriteElement does not call etree's WriteTo (see serialize.go) but writes
// the same bytes as it does with these settings.
var writeSettings = etree.WriteSettings{CanonicalText: true, CanonicalAttrVal: true}

// writeBufferSize is the size of the buffer a Writer holds between its
// first write and the Flush that follows.
const writeBufferSize = 4096

// writeBuffers holds the buffers of Writers that have nothing to flush.
// Most streams are idle most of the time: they share the few buffers that
// the writing ones need instead of each holding one.
var writeBuffers = sync.Pool{
	New: func() any { return bufio.NewWriterSize(nil, writeBufferSize) },
}

// Writer writes one XMPP stream through a buffer. The buffer is taken from
// a pool by the first write after a Flush and given back by the next Flush,
// so a Writer with nothing to flush holds none. It is not safe for
// concurrent use: one goroutine owns a stream's writing at a time.
type Writer struct {
	to  io.Writer
	bw  *bufio.Writer // nil while nothing waits to be flushed
	err error         // the first failed flush; later writes are dropped
	fr  *framing      // nil for a stream of bytes (TCP)
}

// NewWriter returns a Writer of a stream sent on w.
func NewWriter(w io.Writer) *Writer { return &Writer{to: w} }

// NSFraming is the namespace of RFC 7395's <open/> and <close/>.
const NSFraming = "urn:ietf:params:xml:ns:xmpp-framing"

// FrameWriter is the transport of a framed stream (RFC 7395, XMPP over
// WebSocket), where each top-level element is a message of its own. The
// Writer writes a frame's bytes to it, then calls EndFrame; its Flush
// calls the FrameWriter's Flush, which sends the frames ended so far.
type FrameWriter interface {
	io.Writer
	// EndFrame ends the frame written since the last one.
	EndFrame()
	// Flush sends the ended frames.
	Flush() error
}

// framing is what a framed Writer keeps: its transport as a FrameWriter,
// and the stream's default namespace, which each top-level element of a
// frame declares since no stream element does it for them.
type framing struct {
	fw FrameWriter
	ns string
}

// NewFramedWriter returns a Writer of a framed stream (RFC 7395 §3.3) on
// fw: WriteHeader writes <open/>, WriteEnd <close/>, and WriteElement one
// frame per element, which declares its namespace (ns for one that has
// none of its own, the streams namespace for stream:features and
// stream:error). Whitespace given to WriteRaw is not sent: a frame holds
// an element, and WebSocket has pings for keepalives.
func NewFramedWriter(fw FrameWriter, ns string) *Writer {
	return &Writer{to: fw, fr: &framing{fw: fw, ns: ns}}
}

// endFrame ends a framed Writer's current frame: the buffer goes to the
// FrameWriter, which learns where the frame ends.
func (w *Writer) endFrame() error {
	if err := w.bw.Flush(); err != nil {
		return err
	}
	w.fr.fw.EndFrame()
	return nil
}

// Reset points the Writer at a new transport, as after STARTTLS. Anything
// buffered is dropped, and so is an earlier error: flush first.
func (w *Writer) Reset(to io.Writer) {
	w.release()
	w.to = to
	w.err = nil
}

// buf returns the buffer to write into, taken from the pool if the Writer
// holds none.
func (w *Writer) buf() *bufio.Writer {
	if w.bw == nil {
		w.bw = writeBuffers.Get().(*bufio.Writer)
		w.bw.Reset(w.to)
	}
	return w.bw
}

// release gives the buffer back, dropping what it holds.
func (w *Writer) release() {
	if w.bw == nil {
		return
	}
	w.bw.Reset(nil)
	writeBuffers.Put(w.bw)
	w.bw = nil
}

// WriteHeader writes the XML declaration and the opening stream tag.
func (w *Writer) WriteHeader(h Header) error {
	if w.err != nil {
		return w.err
	}
	bw := w.buf()
	if w.fr != nil {
		bw.WriteString("<open xmlns='" + NSFraming + "'")
		w.fr.ns = h.NS
		attr(bw, "id", h.ID)
		attr(bw, "from", h.From)
		attr(bw, "to", h.To)
		attr(bw, "version", h.Version)
		attr(bw, "xml:lang", h.Lang)
		bw.WriteString("/>")
		return w.endFrame()
	}
	bw.WriteString("<?xml version='1.0'?><stream:stream xmlns='")
	escapeAttr(bw, h.NS)
	bw.WriteString("' xmlns:stream='" + NSStream + "'")
	attr(bw, "id", h.ID)
	attr(bw, "from", h.From)
	attr(bw, "to", h.To)
	attr(bw, "version", h.Version)
	attr(bw, "xml:lang", h.Lang)
	_, err := bw.WriteString(">")
	return err
}

func attr(bw *bufio.Writer, k, v string) {
	if v == "" {
		return
	}
	bw.WriteByte(' ')
	bw.WriteString(k)
	bw.WriteString("='")
	escapeAttr(bw, v)
	bw.WriteByte('\'')
}

// escapeAttr writes v for the stream header, once per stream: quotes,
// angle brackets, ampersands and line breaks escaped, enough for an
// attribute value in single quotes.
func escapeAttr(bw *bufio.Writer, v string) {
	_ = xml.EscapeText(bw, []byte(v))
}

// WriteElement serializes el. A top-level stanza has no xmlns of its own and
// takes the stream's default namespace.
func (w *Writer) WriteElement(el *etree.Element) error {
	if w.err != nil {
		return w.err
	}
	if w.fr != nil {
		writeFramedElement(w.buf(), el, w.fr.ns)
		return w.endFrame()
	}
	writeElement(w.buf(), el)
	return nil
}

// writeFramedElement writes el as the one element of a frame: with the
// namespace declaration a stream header would have given it. el may be
// shared with other sessions, so the declaration goes on a shallow copy;
// the byte-stream path does not pay for it.
func writeFramedElement(w *bufio.Writer, el *etree.Element, ns string) {
	var decl etree.Attr
	switch {
	case el.Space == "stream" && el.SelectAttr("xmlns:stream") == nil:
		decl = etree.Attr{Space: "xmlns", Key: "stream", Value: NSStream}
	case el.Space == "" && el.SelectAttr("xmlns") == nil:
		decl = etree.Attr{Key: "xmlns", Value: ns}
	default:
		writeElement(w, el)
		return
	}
	cp := *el
	cp.Attr = append(make([]etree.Attr, 0, len(el.Attr)+1), decl)
	cp.Attr = append(cp.Attr, el.Attr...)
	writeElement(w, &cp)
}

// WriteRaw writes s as is: for whitespace keepalives and fixed replies.
func (w *Writer) WriteRaw(s string) error {
	if w.err != nil {
		return w.err
	}
	if w.fr != nil {
		if strings.TrimSpace(s) == "" {
			return nil
		}
		w.buf().WriteString(s)
		return w.endFrame()
	}
	_, err := w.buf().WriteString(s)
	return err
}

// WriteStreamError writes a stream error; the caller closes the stream.
func (w *Writer) WriteStreamError(e *StreamError) error {
	return w.WriteElement(e.Element())
}

// WriteEnd writes the closing stream tag.
func (w *Writer) WriteEnd() error {
	if w.err != nil {
		return w.err
	}
	if w.fr != nil {
		w.buf().WriteString("<close xmlns='" + NSFraming + "'/>")
		return w.endFrame()
	}
	_, err := w.buf().WriteString("</stream:stream>")
	return err
}

// Failed reports whether a flush failed: the stream is broken, and the
// transport may hold part of what the failed flush wrote.
func (w *Writer) Failed() bool { return w.err != nil }

// CloseConn closes conn, a stream's connection, at its end. After a
// failed write (writeFailed) it closes the socket beneath TLS instead:
// crypto/tls's Close would send its close_notify alert after the record
// the failed write cut short (at its deadline, to a peer that reads too
// slowly), which the peer then reads as a corrupt record ("bad record
// MAC", a sign of tampering) instead of a dropped connection.
func CloseConn(conn net.Conn, writeFailed bool) error {
	if tc, ok := conn.(*tls.Conn); ok && writeFailed {
		return tc.NetConn().Close()
	}
	return conn.Close()
}

// Buffered returns how many bytes wait to be flushed.
func (w *Writer) Buffered() int {
	if w.bw == nil {
		return 0
	}
	return w.bw.Buffered()
}

// Flush sends what is buffered and gives the buffer back. After a failed
// Flush the stream is broken: what was buffered is dropped, and every later
// write and Flush returns the same error until Reset.
func (w *Writer) Flush() error {
	if w.err != nil {
		w.release()
		return w.err
	}
	if w.fr != nil {
		// Each frame was handed over as it ended; what remains is to
		// send them.
		w.release()
		err := w.fr.fw.Flush()
		w.err = err
		return err
	}
	if w.bw == nil {
		return nil
	}
	err := w.bw.Flush()
	w.release()
	w.err = err
	return err
}

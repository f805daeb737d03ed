package xmpp

import (
	"bufio"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"
)

// Limits bound what a Reader accepts from its peer. A zero field means the
// default named beside it.
type Limits struct {
	MaxStanza int64 // bytes of one top-level element (and of the stream header); default DefaultMaxStanza
	MaxDepth  int   // element nesting inside a stanza, the stanza itself is depth 1; default DefaultMaxDepth
	MaxAttrs  int   // attributes of one element, namespace declarations included; default DefaultMaxAttrs
	Rate      int64 // bytes per second, averaged; 0 = unlimited
	Burst     int64 // bytes that may arrive at once above Rate; default MaxStanza
}

// The defaults of [Limits], which [Limits.WithDefaults] fills in. They are
// also the defaults of the [limits] keys that set them in Parley's config
// (stanza_size, max_depth, max_attributes), which package conf takes from
// here. They are untyped so that a config's sizes can use them as they are.
const (
	// DefaultMaxStanza is 256 KiB, well above the 10000 bytes every
	// server must accept (RFC 6120 §13.12).
	DefaultMaxStanza = 256 << 10
	// DefaultMaxDepth is how deeply elements may nest in a stanza.
	DefaultMaxDepth = 64
	// DefaultMaxAttrs is how many attributes one element may carry.
	DefaultMaxAttrs = 64
)

// WithDefaults returns l with the default of each limit it leaves zero, as
// a Reader applies them.
func (l Limits) WithDefaults() Limits {
	if l.MaxStanza <= 0 {
		l.MaxStanza = DefaultMaxStanza
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxAttrs <= 0 {
		l.MaxAttrs = DefaultMaxAttrs
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

// Reader reads one XMPP stream: its header, then one top-level element at a
// time, each built into an *etree.Element. It tokenizes the XML subset of
// RFC 6120 §11 itself, on the buffer of a bufio.Reader (tokenizer.go). Its
// limits are checked while reading: the byte budget by a counting reader
// under the buffer, depth and attributes as each start tag is read.
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
// An error other than ErrStreamClosed is returned again by every later call
// until Restart or Reset.
type Reader struct {
	limits Limits
	cr     counter
	br     *bufio.Reader // nil while idle: see Idle
	sc     *scratch      // where br and the working slices go back when idle

	// The window: br's buffered bytes as of the last read, pos of them
	// taken. Given back to br (release) at the end of every call.
	buf  []byte
	pos  int
	rerr error // the transport's error, once it gave one

	err    error  // the error that ended the stream for this Reader
	closed bool   // the stream element was closed
	ns     string // default namespace of the stream, from the header

	// Namespace scope and open elements, kept from stanza to stanza: the
	// stream element is frames[0], its declarations stay in binds.
	scope  []byte // raw names of open elements, prefixes and URIs in scope
	binds  []binding
	frames []frame

	// The start tag being read.
	tag   []byte // its raw names
	colon int    // index of ':' in the element's name (the start of tag), or -1
	attrs []rawAttr

	// The stanza being read: see tokenizer.go.
	arena  []byte
	evs    []event
	oattrs []oattr
	nEl    int
	nText  int
}

// NewReader returns a Reader of the stream arriving on r.
func NewReader(r io.Reader, l Limits) *Reader {
	rd := &Reader{limits: l.WithDefaults()}
	rd.cr.r = r
	rd.cr.rate = rd.limits.Rate
	rd.cr.burst = rd.limits.Burst
	rd.cr.tokens = rd.limits.Burst
	rd.cr.now, rd.cr.sleep = time.Now, time.Sleep
	rd.Restart()
	return rd
}

// scratch is what a Reader needs only while it reads: the buffer and the
// tokenizer's working slices. Most streams are idle most of the time; an
// idle Reader gives its scratch to scratchPool (Idle) and takes one again
// at its next read, so the few streams that are reading share what the
// many waiting ones would otherwise each hold.
type scratch struct {
	br     *bufio.Reader
	tag    []byte
	attrs  []rawAttr
	arena  []byte
	evs    []event
	oattrs []oattr
}

var scratchPool = sync.Pool{
	New: func() any { return &scratch{br: bufio.NewReaderSize(nil, readBufferSize)} },
}

// acquire takes a scratch from the pool if the Reader holds none.
func (r *Reader) acquire() {
	if r.br != nil {
		return
	}
	sc := scratchPool.Get().(*scratch)
	sc.br.Reset(&r.cr)
	r.sc = sc
	r.br, r.tag, r.attrs, r.arena, r.evs, r.oattrs = sc.br, sc.tag, sc.attrs, sc.arena, sc.evs, sc.oattrs
}

// Idle gives the Reader's buffer and working memory back to a pool shared
// by all Readers when it holds no unread bytes, and reports whether it
// holds none now. A caller about to wait for its peer calls it first, and
// when it reports true may wait until the transport is readable (holding
// nothing meanwhile) before the next ReadElement, which takes a buffer
// again. When it reports false, bytes wait: call ReadElement at once.
func (r *Reader) Idle() bool {
	if r.br == nil {
		return len(r.cr.pend) == 0
	}
	if r.br.Buffered() > 0 || len(r.cr.pend) > 0 {
		return false
	}
	sc := r.sc
	sc.br.Reset(nil)
	sc.tag, sc.attrs, sc.arena, sc.evs, sc.oattrs = r.tag[:0], r.attrs[:0], r.arena[:0], r.evs[:0], r.oattrs[:0]
	scratchPool.Put(sc)
	r.sc, r.br, r.tag, r.attrs, r.arena, r.evs, r.oattrs = nil, nil, nil, nil, nil, nil, nil
	return true
}

// Compact trims what an idle Reader keeps from stanza to stanza (the
// stream element's namespace scope, in slices that grew with the deepest
// stanza so far) to its size, for a stream about to wait long: reading
// the next stanza grows them again. It does nothing unless Idle reported
// true.
func (r *Reader) Compact() {
	if r.br != nil {
		return
	}
	r.scope = slices.Clone(r.scope)
	r.binds = slices.Clone(r.binds)
	r.frames = slices.Clone(r.frames)
}

// Prepend makes b the next byte the Reader reads, before anything from the
// transport: for a caller that waited for its peer by reading one byte of
// the transport itself (after Idle reported true). It is Feed of one byte,
// without an allocation.
func (r *Reader) Prepend(b byte) {
	r.feed(oneByte[b][:], false)
}

// oneByte holds every byte value, for Prepend to point a Reader's pending
// bytes at without an allocation or a byte of its own: a Reader only ever
// reads its pending bytes.
var oneByte = func() (t [256][1]byte) {
	for i := range t {
		t[i][0] = byte(i)
	}
	return t
}()

// Feed gives the Reader bytes that its caller read from the transport
// while the Reader was idle (after Idle reported true), to be read before
// anything more from the transport, and reports whether the Reader is idle
// still. The bytes count against the limits like any others. White space
// at their front, between elements, is taken at once and in bulk (a run of
// keepalives leaves the Reader idle: it cost a call a byte before, 0.2 s
// of CPU a MiB); the rest is copied. Feed only between ReadElement calls,
// and only when the Reader holds nothing else (Idle is true).
func (r *Reader) Feed(p []byte) bool {
	return r.feed(p, true)
}

func (r *Reader) feed(p []byte, clone bool) bool {
	if r.br == nil && len(r.cr.pend) == 0 && r.err == nil && !r.closed {
		k := 0
		for k < len(p) && isSpaceByte(p[k]) {
			k++
		}
		if k > 0 {
			r.cr.n += int64(k)
			if r.cr.rate > 0 {
				r.cr.pace(k)
			}
			p = p[k:]
		}
	}
	if len(p) > 0 {
		if clone {
			p = append(r.cr.pend, p...)
		}
		r.cr.pend = p
	}
	return r.br == nil && len(r.cr.pend) == 0
}

// Restart prepares for a new stream header on the same connection, as after
// SASL success (RFC 6120 §6.4.6). Buffered bytes are kept.
func (r *Reader) Restart() {
	r.buf, r.pos, r.rerr = nil, 0, nil
	r.err, r.closed, r.ns = nil, false, ""
	r.frames = r.frames[:0]
	// The xml prefix is bound from the start.
	r.scope = append(r.scope[:0], "xml"+NSXML...)
	r.binds = append(r.binds[:0], binding{prefix: span{0, 3}, uri: span{3, 3 + len(NSXML)}})
}

// Reset points the Reader at a new transport, as after STARTTLS, and
// prepares for a new stream header. Call it only when Buffered is 0.
func (r *Reader) Reset(rd io.Reader) {
	r.cr.r = rd
	r.cr.pend = nil
	if r.br != nil {
		r.br.Reset(&r.cr)
	}
	r.Restart()
}

// Buffered returns how many bytes were read from the transport and not yet
// consumed. Before STARTTLS it must be 0: anything else is a peer that sent
// data it should not have.
func (r *Reader) Buffered() int {
	n := 0
	if r.br != nil {
		n = r.br.Buffered()
	}
	n += len(r.cr.pend)
	return n
}

// SkipBufferedSpace drops the white space at the front of what was read
// from the transport and not consumed yet, without reading more, and
// returns how many bytes are still buffered after it. Before STARTTLS,
// white space after <starttls/> is not data (RFC 6120 §11.7 allows it
// between elements; go-sendxmpp writes a newline with <starttls/>), while
// anything else there is (see Buffered).
func (r *Reader) SkipBufferedSpace() int {
	if r.br != nil {
		for r.br.Buffered() > 0 {
			b, _ := r.br.Peek(1) // buffered: cannot fail
			if !isSpaceByte(b[0]) {
				return r.Buffered()
			}
			_, _ = r.br.Discard(1)
		}
	}
	// The pending bytes come after br's buffer, which is empty now.
	for len(r.cr.pend) > 0 && isSpaceByte(r.cr.pend[0]) {
		r.cr.pend = r.cr.pend[1:]
	}
	if len(r.cr.pend) == 0 {
		r.cr.pend = nil
	}
	return r.Buffered()
}

// consumed is how many bytes the tokenizer has taken so far.
func (r *Reader) consumed() int64 {
	n := r.cr.n + int64(r.pos)
	if r.br != nil {
		n -= int64(r.br.Buffered())
	}
	return n
}

// budget allows the next element MaxStanza bytes plus read-ahead.
func (r *Reader) budget() int64 {
	start := r.consumed()
	r.cr.max = start + r.limits.MaxStanza + readBufferSize
	return start
}

// ReadHeader reads the XML declaration, if any, and the stream header.
func (r *Reader) ReadHeader() (Header, error) {
	if r.err != nil {
		return Header{}, r.err
	}
	r.acquire()
	r.budget()
	h, err := r.readHeader()
	r.release()
	r.shrink()
	if err != nil {
		r.err = r.mapError(err)
		return Header{}, r.err
	}
	return h, nil
}

func (r *Reader) readHeader() (Header, error) {
	decl := false
	for {
		// A peer speaking something else (an HTTP request, a TLS hello
		// on the wrong port) is told so at its first byte.
		if _, err := r.skipSpace(); err != nil {
			return Header{}, err
		}
		if r.buf[r.pos] != '<' {
			if decl {
				return Header{}, notWellFormed("text before the stream header")
			}
			return Header{}, notWellFormed("a stream starts with '<'")
		}
		r.pos++
		c, err := r.peekByte()
		if err != nil {
			return Header{}, err
		}
		switch c {
		case '?':
			if err := r.readDecl(); err != nil {
				return Header{}, err
			}
			decl = true
			continue
		case '!':
			if err := r.readMarkup(c); err != nil {
				return Header{}, err
			}
			return Header{}, notWellFormed("expected the stream header")
		case '/':
			return Header{}, notWellFormed("expected the stream header")
		}
		return r.readStreamTag()
	}
}

// readDecl reads the XML declaration after its '<': any other processing
// instruction is restricted XML.
func (r *Reader) readDecl() error {
	r.pos++
	var err error
	if r.tag, err = r.readName(r.tag[:0], "a target name after '<?'"); err != nil {
		return err
	}
	if string(r.tag) != "xml" {
		return NewStreamError(RestrictedXML, "processing instructions are not allowed")
	}
	var prev byte
	for {
		c, err := r.nextByte()
		if err != nil {
			return err
		}
		if prev == '?' && c == '>' {
			break
		}
		r.tag = append(r.tag, c)
		prev = c
	}
	body := string(r.tag[len("xml") : len(r.tag)-1])
	if v := procInstParam(body, "version"); v != "" && v != "1.0" {
		return notWellFormed("only XML 1.0 is supported")
	}
	if enc := procInstParam(body, "encoding"); enc != "" && !strings.EqualFold(enc, "utf-8") {
		return NewStreamError(UnsupportedEncoding, "streams are UTF-8")
	}
	return nil
}

// readStreamTag reads the stream header's start tag after its '<'.
func (r *Reader) readStreamTag() (Header, error) {
	r.arena = r.arena[:0]
	scope, binds := len(r.scope), len(r.binds)
	empty, err := r.readStartTag()
	if err != nil {
		return Header{}, err
	}
	ns, err := r.resolve()
	if err != nil {
		return Header{}, err
	}
	if string(r.tag[r.colon+1:r.attrs0()]) != "stream" || string(r.bytesOf(ns)) != NSStream {
		return Header{}, NewStreamError(InvalidNamespace, "the stream element is <stream xmlns='"+NSStream+"'>")
	}
	var h Header
	for _, a := range r.attrs {
		name := r.tag[a.name.off:a.name.end]
		if a.decl {
			if a.colon < 0 {
				if h.NS = internNS(r.bytesOf(a.val)); h.NS == "" {
					h.NS = string(r.bytesOf(a.val))
				}
			}
			continue
		}
		var field *string
		switch string(name) {
		case "to":
			field = &h.To
		case "from":
			field = &h.From
		case "id":
			field = &h.ID
		case "version":
			field = &h.Version
		case "xml:lang":
			field = &h.Lang
		default:
			continue
		}
		*field = string(r.arena[a.val.off:a.val.end])
	}
	r.ns = h.NS
	r.pushFrame(ns, scope, binds, 0)
	r.closed = empty
	return h, nil
}

// ReadElement reads the next top-level element of the stream, skipping
// whitespace keepalives between elements.
func (r *Reader) ReadElement() (*etree.Element, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.closed {
		return nil, ErrStreamClosed
	}
	r.acquire()
	el, err := r.readElement()
	r.release()
	r.shrink()
	if err != nil {
		if err == ErrStreamClosed {
			r.closed = true
			return nil, err
		}
		r.err = r.mapError(err)
		return nil, r.err
	}
	return el, nil
}

func (r *Reader) readElement() (*etree.Element, error) {
	start := r.budget()
	space, err := r.skipSpace()
	if err != nil {
		return nil, err
	}
	if r.buf[r.pos] != '<' {
		return nil, NewStreamError(BadFormat, "text between stanzas")
	}
	if space {
		// A whitespace keepalive: restart the budget.
		start = r.budget()
	}
	r.pos++
	c, err := r.peekByte()
	if err != nil {
		return nil, err
	}
	switch c {
	case '/':
		r.pos++
		if err := r.readEndTag(); err != nil {
			return nil, err
		}
		return nil, ErrStreamClosed
	case '!', '?':
		if err := r.readMarkup(c); err != nil {
			return nil, err
		}
		return nil, NewStreamError(BadFormat, "text between stanzas")
	}
	if err := r.readStanza(); err != nil {
		return nil, err
	}
	if r.consumed()-start > r.limits.MaxStanza {
		return nil, tooBig(r.limits.MaxStanza)
	}
	return r.build(), nil
}

// shrink lets go of buffers that a big stanza grew, so that an idle stream
// holds little: the arena is kept up to 16 KiB (a big message body, read
// again and again, should not grow it each time), the rest up to about 4
// KiB each.
func (r *Reader) shrink() {
	if cap(r.arena) > 16<<10 {
		r.arena = nil
	}
	if cap(r.evs) > 64 {
		r.evs = nil
	}
	if cap(r.oattrs) > 64 {
		r.oattrs = nil
	}
	if cap(r.attrs) > 64 {
		r.attrs = nil
	}
	if cap(r.tag) > 1<<10 {
		r.tag = nil
	}
	if cap(r.scope) > 1<<10 && cap(r.scope) > 2*len(r.scope) {
		r.scope = append([]byte(nil), r.scope...)
	}
}

// mapError turns what the tokenizer met into what ReadElement promises.
func (r *Reader) mapError(err error) error {
	switch {
	case errors.Is(err, errTooBig):
		return tooBig(r.limits.MaxStanza)
	case err == io.EOF:
		return io.ErrUnexpectedEOF
	}
	return err
}

func tooBig(max int64) *StreamError {
	return NewStreamError(StreamPolicyViolation, "stanza larger than "+strconv.FormatInt(max, 10)+" bytes")
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

	pend []byte // what to return before reading r (Reader.Feed), never written
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
	if len(c.pend) > 0 && len(p) > 0 {
		// Read from the transport already: hand it over alone rather
		// than block reading more behind it.
		n := copy(p, c.pend)
		c.pend = c.pend[n:]
		if len(c.pend) == 0 {
			c.pend = nil
		}
		c.n += int64(n)
		if c.rate > 0 {
			c.pace(n)
		}
		return n, nil
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

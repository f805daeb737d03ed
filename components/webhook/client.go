package webhook

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"golang.org/x/net/http/httpguts"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The webhook's own HTTP/1.1 client. net/http's Transport hands every
// request between three goroutines (the caller, a connection's writeLoop and
// its readLoop); here the worker that posts a stanza writes the request
// itself, in one write, on a kept-alive connection, and reads the answer on
// the same goroutine. It speaks only what a webhook needs: POST to one URL,
// answers with a Content-Length, chunked or delimited by the end of the
// connection. Config.Client, or a proxy in the environment, selects
// net/http instead (see newLeanClient).

// maxHeaderBytes bounds the status line and headers of an answer, 1xx
// answers and chunked trailers included.
const maxHeaderBytes = 1 << 20

// maxTrailerBytes bounds the trailers of a chunked answer, their last
// CRLF included: net/http finds their end within its 4 KiB read buffer.
const maxTrailerBytes = 4096

// maxChunkLine bounds a chunk-size line, as net/http does.
const maxChunkLine = 4096

// max1xx is how many interim (1xx) answers may come before the final one,
// as net/http allows.
const max1xx = 5

// leanIdleTimeout is how long an unused connection is kept.
const leanIdleTimeout = 90 * time.Second

// errAnswerTooLarge is returned by leanClient.do for an answer whose body
// is larger than maxAnswer.
var errAnswerTooLarge = errors.New("the answer is larger than 1 MiB")

// errRedirect is returned by leanClient.do for a redirect: a 301, 302,
// 303, 307 or 308 with a Location, in the answer's location. The answer
// was read and the connection kept; the component decides whether it is
// followed (see redirectTarget).
var errRedirect = errors.New("a redirect")

// aLongTimeAgo is a deadline in the past: it wakes every blocked read and
// write on a connection.
var aLongTimeAgo = time.Unix(1, 0)

// readers are the buffered readers of connections, kept while a
// connection is open and shared between connections over time.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// leanClient posts to one http or https URL.
type leanClient struct {
	// ctx ends every exchange when done, in flight or not: it is the
	// component's, cancelled on shutdown.
	ctx     context.Context
	done    <-chan struct{}
	addr    string      // host:port dialed
	uri     string      // the request-URI in head
	tlsConf *tls.Config // nil for http
	// head is the request line and the headers that are the same for every
	// request, each line ending in CRLF.
	head []byte
	// closeEach is set when the configured headers ask the server to close
	// the connection after each answer.
	closeEach   bool
	dialTimeout time.Duration
	idleTimeout time.Duration
	maxIdle     int
	// retried counts the requests given up on a kept-alive connection
	// and sent again on a fresh one.
	retried atomic.Int64

	mu       sync.Mutex
	idle     []*leanConn // the most recently used last
	closed   bool
	sweeper  *time.Timer // closes connections idle too long
	sweeping bool        // sweeper is armed
	lineBufs sync.Pool   // *[]byte for header lines longer than a reader's buffer
}

// leanConn is one kept-alive connection.
type leanConn struct {
	conn      net.Conn
	raw       syscall.RawConn // the TCP socket, for peerClosed; nil if none
	br        *bufio.Reader
	idleSince time.Time
	// stop undoes the context.AfterFunc that interrupts the connection
	// when the client's ctx ends: one per connection, not per request.
	stop func() bool
}

// close closes the connection and gives its reader back.
func (pc *leanConn) close() {
	if pc.stop != nil {
		pc.stop()
	}
	_ = pc.conn.Close()
	if pc.br != nil {
		pc.br.Reset(nil)
		readers.Put(pc.br)
		pc.br = nil
	}
}

// leanOptions is what newLeanClient needs besides the URL.
type leanOptions struct {
	ctx         context.Context   // ends every exchange; nil: never
	headers     map[string]string // validated by checkHeaders
	signs       bool              // the webhook-* headers are the component's
	tlsConf     *tls.Config       // nil: system roots
	dialTimeout time.Duration
	maxConns    int
}

// newLeanClient returns a client for rawURL, or nil when net/http must be
// used instead: a URL that is not a plain http or https one (user
// information, a non-ASCII host, an IPv6 zone, another scheme: net/http
// has the rules and the error messages for those), or one that the
// environment sends through a proxy.
func newLeanClient(rawURL string, o leanOptions) *leanClient {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Opaque != "" {
		return nil
	}
	for i := 0; i < len(u.Host); i++ {
		if b := u.Host[i]; b >= 0x80 || b <= ' ' || b == '%' {
			return nil
		}
	}
	if p, err := http.ProxyFromEnvironment(&http.Request{URL: u}); err != nil || p != nil {
		return nil
	}
	host := u.Hostname()
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	hostHeader := u.Host
	if hostHeader[len(hostHeader)-1] == ':' {
		// An empty port, as net/http removes it.
		hostHeader = hostHeader[:len(hostHeader)-1]
	}
	ctx := o.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	h := &leanClient{
		ctx:         ctx,
		done:        ctx.Done(),
		addr:        net.JoinHostPort(host, port),
		dialTimeout: o.dialTimeout,
		idleTimeout: leanIdleTimeout,
		maxIdle:     max(o.maxConns, 1),
	}
	if u.Scheme == "https" {
		tc := &tls.Config{}
		if o.tlsConf != nil {
			tc = o.tlsConf.Clone()
		}
		if tc.ServerName == "" {
			tc.ServerName = host
		}
		// This client speaks HTTP/1.1 only.
		tc.NextProtos = []string{"http/1.1"}
		if tc.ClientSessionCache == nil {
			tc.ClientSessionCache = tls.NewLRUClientSessionCache(h.maxIdle)
		}
		h.tlsConf = tc
	}
	h.uri = u.RequestURI()
	h.head, h.closeEach = requestHead(h.uri, hostHeader, o.headers, o.signs)
	return h
}

// excludedHeaders are configured headers this client does not send, as
// net/http does not: the request's framing and Host are its own.
var excludedHeaders = []string{"Host", "Content-Length", "Transfer-Encoding", "Trailer"}

// signatureHeaders are the Standard Webhooks headers, in canonical form.
var signatureHeaders = []string{"Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"}

// requestHead renders the part of the request that never changes: the
// request line, Host, User-Agent, Content-Type and the configured headers
// (validated by checkHeaders) in canonical form and sorted order. The
// webhook-* headers are the component's own when it signs; User-Agent and
// Content-Type are always its own. closeEach reports a configured
// "Connection: close".
func requestHead(requestURI, host string, headers map[string]string, signs bool) (head []byte, closeEach bool) {
	own := map[string]string{"Content-Type": "application/json"}
	for k, v := range headers {
		k = http.CanonicalHeaderKey(k)
		if slices.Contains(excludedHeaders, k) || k == "User-Agent" || k == "Content-Type" ||
			(signs && slices.Contains(signatureHeaders, k)) {
			continue
		}
		if _, dup := own[k]; dup {
			// Two spellings of one name: keep one, the same whatever
			// the map's order.
			if v2 := own[k]; v2 > v {
				v = v2
			}
		}
		own[k] = v
	}
	keys := make([]string, 0, len(own))
	for k := range own {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	head = append(head, "POST "...)
	head = append(head, requestURI...)
	head = append(head, " HTTP/1.1\r\nHost: "...)
	head = append(head, host...)
	head = append(head, "\r\nUser-Agent: Parley\r\n"...)
	for _, k := range keys {
		v := strings.Trim(own[k], " \t")
		head = append(head, k...)
		head = append(head, ": "...)
		head = append(head, v...)
		head = append(head, "\r\n"...)
		if k == "Connection" && hasToken([]byte(v), "close") {
			closeEach = true
		}
	}
	return head, closeEach
}

// checkHeaders refuses configured headers that would break the request:
// a name that is not an HTTP token, a value with a control character
// (CR and LF would let it add headers of its own), as net/http refuses
// them when sending.
func checkHeaders(headers map[string]string) error {
	for k, v := range headers {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("header name %q is not an HTTP token (letters, digits and !#$%%&'*+-.^_`|~)", k)
		}
		if !httpguts.ValidHeaderFieldValue(v) {
			return fmt.Errorf("header %s: the value must be one line without control characters such as CR or LF", k)
		}
	}
	return nil
}

// tokenByte marks the bytes of an HTTP token.
var tokenByte = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// do sends req, a whole request (headers and body), and reads the answer
// into a: status, Content-Type, Retry-After and the body, appended to
// a.body[:0]. The exchange ends by deadline, or sooner when the client's
// ctx ends. A kept-alive connection that fails before any byte of the
// answer arrived (the server closed it while it was idle) is given up for
// a fresh one, once.
func (h *leanClient) do(deadline time.Time, req []byte, a *answer) error {
	if h.cancelled() {
		return h.ctx.Err()
	}
	fresh := false
	for {
		pc, reused, err := h.get(deadline, fresh)
		if err != nil {
			return err
		}
		answered, err := h.roundTrip(pc, deadline, req, a)
		if err == nil {
			return nil
		}
		var we *writeError
		if reused && !answered && !h.cancelled() && errors.As(err, &we) && closedByPeer(err) {
			// The webhook closed the connection after get looked at
			// it, before the request went out: it cannot have taken
			// the request, which goes again on a new connection, once.
			// After a write that went out, the request is never sent
			// again here (the webhook may have taken it); the
			// component's retries decide, as for any failure.
			fresh = true
			h.retried.Add(1)
			continue
		}
		return err
	}
}

// cancelled reports whether the client's ctx has ended.
func (h *leanClient) cancelled() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

// writeError is a request that failed to go out.
type writeError struct{ err error }

func (e *writeError) Error() string { return "write request: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// closedByPeer reports whether err is what a write or read gets on a
// connection the other end closed.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED)
}

// roundTrip writes req on pc and reads the answer. answered reports
// whether any byte of it came. pc goes back to the pool when it can carry
// another request, and is closed otherwise.
func (h *leanClient) roundTrip(pc *leanConn, deadline time.Time, req []byte, a *answer) (answered bool, err error) {
	if err := pc.conn.SetDeadline(deadline); err != nil {
		pc.close()
		return false, fmt.Errorf("webhook connection: %w", err)
	}
	// The end of ctx moves the deadline into the past (see dial). When it
	// came before the line above, which undid that, it is seen here; when
	// after, the deadline it sets wins.
	if h.cancelled() {
		pc.close()
		return false, h.ctx.Err()
	}
	keep := false
	defer func() {
		if keep && !h.cancelled() {
			h.put(pc)
		} else {
			pc.close()
		}
	}()
	if _, err := pc.conn.Write(req); err != nil {
		return false, &writeError{err}
	}
	if _, err := pc.br.Peek(1); err != nil {
		return false, fmt.Errorf("read answer: %w", err)
	}
	var redirect bool
	keep, redirect, err = h.readResponse(pc.br, a)
	if err != nil {
		keep = false
		if !errors.Is(err, errAnswerTooLarge) {
			err = fmt.Errorf("read answer: %w", err)
		}
		return true, err
	}
	keep = keep && !h.closeEach && pc.br.Buffered() == 0
	if redirect {
		return true, errRedirect
	}
	return true, nil
}

// get returns a kept-alive connection, or a new one when there is none or
// fresh is set. reused reports a kept-alive one.
func (h *leanClient) get(deadline time.Time, fresh bool) (pc *leanConn, reused bool, err error) {
	if !fresh {
		var expired []*leanConn
		h.mu.Lock()
		for len(h.idle) > 0 {
			pc = h.idle[len(h.idle)-1]
			h.idle[len(h.idle)-1] = nil
			h.idle = h.idle[:len(h.idle)-1]
			if time.Since(pc.idleSince) < h.idleTimeout {
				break
			}
			expired = append(expired, pc)
			pc = nil
		}
		h.mu.Unlock()
		for _, old := range expired {
			old.close()
		}
		if pc != nil && pc.peerClosed() {
			// The webhook closed it while it was idle: a request
			// written on it would meet the end of the connection,
			// and could not be told apart from one the webhook took
			// and then dropped (which must not be sent again).
			pc.close()
			return h.get(deadline, fresh)
		}
		if pc != nil {
			return pc, true, nil
		}
	}
	pc, err = h.dial(deadline)
	return pc, false, err
}

// dial opens a connection, with TLS for https.
func (h *leanClient) dial(deadline time.Time) (*leanConn, error) {
	d := net.Dialer{Timeout: h.dialTimeout, Deadline: deadline, KeepAlive: 30 * time.Second}
	conn, err := d.DialContext(h.ctx, "tcp", h.addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", h.addr, err)
	}
	tcp := conn
	if h.tlsConf != nil {
		if err := conn.SetDeadline(deadline); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("dial %s: %w", h.addr, err)
		}
		tc := tls.Client(conn, h.tlsConf)
		if err := tc.HandshakeContext(h.ctx); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("TLS handshake with %s: %w", h.addr, err)
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != "" && p != "http/1.1" {
			_ = conn.Close()
			return nil, fmt.Errorf("TLS handshake with %s: the server chose protocol %q, not http/1.1", h.addr, p)
		}
		conn = tc
	}
	br := readers.Get().(*bufio.Reader)
	br.Reset(conn)
	stop := context.AfterFunc(h.ctx, func() { _ = conn.SetDeadline(aLongTimeAgo) })
	pc := &leanConn{conn: conn, br: br, stop: stop}
	if sc, ok := tcp.(syscall.Conn); ok {
		pc.raw, _ = sc.SyscallConn()
	}
	return pc, nil
}

// put keeps pc for the next request, or closes it when the client is
// closed or keeps enough already.
func (h *leanClient) put(pc *leanConn) {
	pc.idleSince = time.Now()
	h.mu.Lock()
	if h.closed || len(h.idle) >= h.maxIdle {
		h.mu.Unlock()
		pc.close()
		return
	}
	h.idle = append(h.idle, pc)
	if !h.sweeping {
		h.sweeping = true
		if h.sweeper == nil {
			h.sweeper = time.AfterFunc(h.idleTimeout, h.sweep)
		} else {
			h.sweeper.Reset(h.idleTimeout)
		}
	}
	h.mu.Unlock()
}

// sweep closes the connections idle for idleTimeout, and comes back when
// the next one will be.
func (h *leanClient) sweep() {
	h.mu.Lock()
	now := time.Now()
	var old []*leanConn
	keep := h.idle[:0]
	for _, pc := range h.idle {
		if now.Sub(pc.idleSince) >= h.idleTimeout {
			old = append(old, pc)
		} else {
			keep = append(keep, pc)
		}
	}
	clear(h.idle[len(keep):])
	h.idle = keep
	h.sweeping = false
	if len(h.idle) > 0 && !h.closed {
		// The oldest is first.
		h.sweeping = true
		h.sweeper.Reset(h.idleTimeout - now.Sub(h.idle[0].idleSince))
	}
	h.mu.Unlock()
	for _, pc := range old {
		pc.close()
	}
}

// close closes the idle connections; the ones in use are closed when
// their request ends.
func (h *leanClient) close() {
	h.mu.Lock()
	h.closed = true
	idle := h.idle
	h.idle = nil
	if h.sweeper != nil {
		h.sweeper.Stop()
	}
	h.mu.Unlock()
	for _, pc := range idle {
		pc.close()
	}
}

// idleConns returns how many connections wait for a request.
func (h *leanClient) idleConns() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.idle)
}

// respHeaders is what the client reads of an answer's headers.
type respHeaders struct {
	contentLength int64 // -1 when absent
	chunked       bool
	teCount       int
	close         bool // Connection: close
	keepAlive     bool // Connection: keep-alive
	contentType   string
	hasType       bool
	retryAfter    string
	hasRetry      bool
	hasLocation   bool   // a Location header was read
	location      string // the first one
	// prevType is the previous answer's Content-Type: a header that
	// repeats it takes its string instead of a new one.
	prevType string
	last     int // which of the above the previous line set, for continuation lines
}

// Which header a line was.
const (
	hdrNone = iota // no header line yet
	hdrOther
	hdrLength
	hdrTE
	hdrConnection
	hdrType
	hdrRetry
)

// readResponse reads an answer: interim 1xx answers are skipped, the
// final one is read whole into a. keep reports whether the connection may
// carry another request, redirect whether the answer is a redirect that
// net/http would follow.
func (h *leanClient) readResponse(br *bufio.Reader, a *answer) (keep, redirect bool, err error) {
	budget := maxHeaderBytes
	var lb *[]byte    // for lines longer than br's buffer
	var lastCRLF bool // the last line ended in CRLF, not a bare LF
	defer func() {
		if lb != nil {
			h.lineBufs.Put(lb)
		}
	}()
	line := func(limit int) ([]byte, error) {
		l, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if lb == nil {
				if v, ok := h.lineBufs.Get().(*[]byte); ok {
					lb = v
				} else {
					lb = new([]byte)
				}
			}
			buf := append((*lb)[:0], l...)
			for errors.Is(err, bufio.ErrBufferFull) && len(buf) <= limit {
				l, err = br.ReadSlice('\n')
				buf = append(buf, l...)
			}
			*lb = buf
			l = buf
		}
		if len(l) > limit {
			return nil, fmt.Errorf("a line longer than %d bytes", limit)
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(l) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		budget -= len(l)
		l = l[:len(l)-1]
		lastCRLF = len(l) > 0 && l[len(l)-1] == '\r'
		if lastCRLF {
			l = l[:len(l)-1]
		}
		return l, nil
	}
	var status int
	var http11 bool
	var hd respHeaders
	for n1xx := 0; ; n1xx++ {
		l, err := line(budget)
		if err != nil {
			return false, false, err
		}
		var ok bool
		if status, http11, ok = parseStatusLine(l); !ok {
			return false, false, fmt.Errorf("malformed status line %q", truncate(l))
		}
		hd = respHeaders{contentLength: -1, prevType: a.contentType}
		for {
			l, err := line(budget)
			if err != nil {
				return false, false, err
			}
			if len(l) == 0 {
				break
			}
			if err := hd.add(l); err != nil {
				return false, false, err
			}
		}
		if budget < 0 {
			return false, false, errors.New("headers larger than 1 MiB")
		}
		if status >= 200 {
			break
		}
		if status == http.StatusSwitchingProtocols {
			return false, false, errors.New("unexpected 101 Switching Protocols")
		}
		if n1xx >= max1xx {
			return false, false, errors.New("too many 1xx answers")
		}
	}
	a.status = status
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		redirect = hd.location != ""
		a.location = hd.location
	}
	a.retryAfter = 0
	if hd.hasRetry {
		a.retryAfter = retryAfter(hd.retryAfter)
	}
	a.contentType = hd.contentType
	keep = !hd.close && (http11 || hd.keepAlive)
	if !http11 {
		// HTTP/1.0 knows no Transfer-Encoding.
		hd.chunked, hd.teCount = false, 0
	}
	body := a.body[:0]
	defer func() { a.body = body }()
	switch {
	case status == http.StatusNoContent || status == http.StatusNotModified:
		// No body, whatever the headers say.
	case hd.teCount > 1:
		return false, false, errors.New("too many transfer encodings")
	case hd.teCount == 1 && !hd.chunked:
		return false, false, errors.New("unsupported transfer encoding")
	case hd.chunked:
		// Chunk-size lines are framing, not headers: they take nothing
		// from the budget, which the trailers get afresh.
		chunkLine := func(limit int) ([]byte, error) {
			saved := budget
			l, err := line(limit)
			budget = saved
			if err == nil && (!lastCRLF || bytes.IndexByte(l, '\r') >= 0) {
				// RFC 9112 §7.1 and its erratum 7633: a bare LF
				// ends a header line, never a chunk line; net/http
				// refuses it too, and so two readers cannot frame
				// one answer differently.
				return nil, errors.New("a chunk line that does not end in CRLF")
			}
			return l, err
		}
		// Trailers: at most maxTrailerBytes, each line ending in CRLF
		// and well formed, as net/http wants them.
		budget = maxTrailerBytes
		first := true
		trailerLine := func() ([]byte, error) {
			if budget <= 0 {
				return nil, fmt.Errorf("trailers larger than %d bytes", maxTrailerBytes)
			}
			l, err := line(budget)
			if err != nil {
				return nil, err
			}
			if !lastCRLF {
				return nil, errors.New("a trailer line that does not end in CRLF")
			}
			if len(l) > 0 {
				if err := checkTrailer(l, first); err != nil {
					return nil, err
				}
			}
			first = false
			return l, nil
		}
		body, err = readChunked(br, body, chunkLine, trailerLine)
		if err != nil {
			return false, false, err
		}
	case hd.contentLength >= 0:
		if hd.contentLength > maxAnswer {
			return false, false, errAnswerTooLarge
		}
		n := int(hd.contentLength)
		body = slices.Grow(body, n)[:n]
		if _, err := io.ReadFull(br, body); err != nil {
			return false, false, err
		}
	default:
		// Delimited by the end of the connection.
		keep = false
		for {
			if len(body) == cap(body) {
				body = slices.Grow(body, min(max(cap(body), 512), maxAnswer+1))
			}
			n, err := br.Read(body[len(body):cap(body)])
			body = body[:len(body)+n]
			if len(body) > maxAnswer {
				return false, false, errAnswerTooLarge
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return false, false, err
			}
		}
	}
	return keep, redirect, nil
}

// readChunked reads a chunked body into body, then its trailers.
func readChunked(br *bufio.Reader, body []byte, chunkLine func(limit int) ([]byte, error), trailerLine func() ([]byte, error)) ([]byte, error) {
	var excess int64 // framing beyond what the data needs, as net/http counts it
	for {
		l, err := chunkLine(maxChunkLine)
		if err != nil {
			return body, fmt.Errorf("chunked body: %w", err)
		}
		excess += int64(len(l)) + 2
		// As net/http: white space at the end, then an extension, go;
		// the size is hex digits and nothing else.
		size := bytes.TrimRight(l, " \t")
		if i := bytes.IndexByte(size, ';'); i >= 0 {
			size = size[:i] // a chunk extension
		}
		n, ok := parseHex(size)
		if !ok {
			return body, fmt.Errorf("chunked body: malformed chunk size %q", truncate(l))
		}
		// 16 bytes of framing per chunk, and twice its data, are
		// free; an answer of tiny chunks with long extensions is
		// refused past 16 KiB more, as net/http refuses it.
		excess = max(excess-16-2*int64(min(n, maxAnswer)), 0)
		if excess > 16<<10 {
			return body, errors.New("chunked body: too much framing for its data")
		}
		if n == 0 {
			break
		}
		if uint64(len(body))+n > maxAnswer {
			return body, errAnswerTooLarge
		}
		start := len(body)
		body = slices.Grow(body, int(n))[:start+int(n)]
		if _, err := io.ReadFull(br, body[start:]); err != nil {
			return body, fmt.Errorf("chunked body: %w", err)
		}
		var crlf [2]byte
		if _, err := io.ReadFull(br, crlf[:]); err != nil {
			return body, fmt.Errorf("chunked body: %w", err)
		}
		if crlf != [2]byte{'\r', '\n'} {
			return body, errors.New("chunked body: malformed chunk end")
		}
	}
	for {
		l, err := trailerLine()
		if err != nil {
			return body, fmt.Errorf("chunked trailers: %w", err)
		}
		if len(l) == 0 {
			return body, nil
		}
	}
}

// checkTrailer checks a trailer line, which is read and dropped: a
// header line, or (not first) the continuation of one.
func checkTrailer(l []byte, first bool) error {
	for _, c := range l {
		if badValueByte[c] {
			return fmt.Errorf("a control character in trailer line %q", truncate(l))
		}
	}
	if l[0] == ' ' || l[0] == '\t' {
		if first {
			return fmt.Errorf("malformed first trailer line %q", truncate(l))
		}
		return nil
	}
	i := bytes.IndexByte(l, ':')
	if i <= 0 {
		return fmt.Errorf("malformed trailer line %q", truncate(l))
	}
	for _, c := range l[:i] {
		if !tokenByte[c] {
			return fmt.Errorf("malformed header name %q", truncate(l[:i]))
		}
	}
	return nil
}

// parseHex parses a chunk size: 1 to 16 hex digits.
func parseHex(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | uint64(c)
	}
	return n, true
}

// parseStatusLine parses "HTTP/1.1 200 OK": the reason may be empty or
// missing.
func parseStatusLine(l []byte) (status int, http11, ok bool) {
	switch {
	case bytes.HasPrefix(l, []byte("HTTP/1.1 ")):
		http11 = true
	case bytes.HasPrefix(l, []byte("HTTP/1.0 ")):
	default:
		return 0, false, false
	}
	l = l[len("HTTP/1.1 "):]
	if len(l) < 3 || (len(l) > 3 && l[3] != ' ') {
		return 0, false, false
	}
	for _, c := range l[:3] {
		if c < '0' || c > '9' {
			return 0, false, false
		}
		status = status*10 + int(c-'0')
	}
	if status < 100 {
		return 0, false, false
	}
	return status, http11, true
}

// badValueByte marks the bytes a header value may not have (RFC 9110
// §5.5: field-vchar, SP, HTAB and obs-text only), the ones net/http
// refuses: the controls other than tab, and DEL.
var badValueByte = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = c != '\t'
	}
	t[0x7f] = true
	return t
}()

// add reads one header line.
func (hd *respHeaders) add(l []byte) error {
	for _, c := range l {
		if badValueByte[c] {
			return fmt.Errorf("a control character in header line %q", truncate(l))
		}
	}
	if l[0] == ' ' || l[0] == '\t' {
		// An obsolete folded line continues the previous one.
		switch hd.last {
		case hdrNone:
			return fmt.Errorf("malformed first header line %q", truncate(l))
		case hdrOther:
			return nil
		case hdrType:
			hd.contentType += " " + string(bytes.Trim(l, " \t"))
			return nil
		case hdrRetry:
			hd.retryAfter += " " + string(bytes.Trim(l, " \t"))
			return nil
		default:
			return fmt.Errorf("folded header line %q", truncate(l))
		}
	}
	i := bytes.IndexByte(l, ':')
	if i <= 0 {
		return fmt.Errorf("malformed header line %q", truncate(l))
	}
	name, v := l[:i], bytes.Trim(l[i+1:], " \t")
	for _, c := range name {
		if !tokenByte[c] {
			return fmt.Errorf("malformed header name %q", truncate(name))
		}
	}
	hd.last = hdrOther
	switch {
	case equalFold(name, "Content-Length"):
		hd.last = hdrLength
		n, err := parseContentLength(v)
		if err != nil {
			return err
		}
		if hd.contentLength >= 0 && hd.contentLength != n {
			return errors.New("several different Content-Length headers")
		}
		hd.contentLength = n
	case equalFold(name, "Transfer-Encoding"):
		hd.last = hdrTE
		hd.teCount++
		hd.chunked = equalFold(v, "chunked")
	case equalFold(name, "Connection"):
		hd.last = hdrConnection
		hd.close = hd.close || hasToken(v, "close")
		hd.keepAlive = hd.keepAlive || hasToken(v, "keep-alive")
	case equalFold(name, "Content-Type"):
		if !hd.hasType {
			// The first one counts, as for net/http's Header.Get.
			hd.last = hdrType
			hd.hasType = true
			if string(v) == hd.prevType {
				hd.contentType = hd.prevType
			} else {
				hd.contentType = string(v)
			}
		}
	case equalFold(name, "Location"):
		if !hd.hasLocation {
			// The first one counts, empty or not, as for net/http's
			// Header.Get.
			hd.hasLocation = true
			hd.location = string(v)
		}
	case equalFold(name, "Retry-After"):
		if !hd.hasRetry {
			hd.last = hdrRetry
			hd.hasRetry = true
			hd.retryAfter = string(v)
		}
	}
	return nil
}

// parseContentLength parses a Content-Length value: digits only.
func parseContentLength(v []byte) (int64, error) {
	if len(v) == 0 {
		return 0, errors.New("empty Content-Length")
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' || n > (1<<62)/10 {
			return 0, fmt.Errorf("bad Content-Length %q", truncate(v))
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

// hasToken reports whether the comma-separated list v holds token,
// ignoring case.
func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		var t []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			t, v = v[:i], v[i+1:]
		} else {
			t, v = v, nil
		}
		if equalFold(bytes.Trim(t, " \t"), token) {
			return true
		}
	}
	return false
}

// equalFold reports whether b is s, ignoring ASCII case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// truncate shortens what an error quotes.
func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

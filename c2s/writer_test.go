package c2s

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/server/certs"
	"github.com/parley-im/parley/xmpp"
)

// boundSession returns a session that is past bind on one end of a pipe,
// and the client's end. Nothing has been written yet. The idle-memory
// machinery is on (ParkAfter), as by default: writers come from its pool.
func boundSession(t *testing.T, queue int) (*Session, net.Conn) {
	t.Helper()
	srv := NewServer(Config{Router: &handBackRouter{}, Queue: queue, WriteTimeout: 5 * time.Second, ParkAfter: time.Hour})
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return bindOn(t, srv)
}

// bindOn is boundSession on srv.
func bindOn(t *testing.T, srv *Server) (*Session, net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	s := newSession(srv, a, true)
	s.state |= stateAuthenticated | stateBound
	s.username, s.host = "juliet", "example.com"
	s.jid = xmpp.MustParse("juliet@example.com/balcony")
	s.jidAddr = s.jid.String()
	return s, b
}

// clientReader collects what the client end receives until EOF.
type clientReader struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
}

func readClient(c net.Conn) *clientReader {
	r := &clientReader{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		p := make([]byte, 512)
		for {
			n, err := c.Read(p)
			r.mu.Lock()
			r.buf.Write(p[:n])
			r.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return r
}

func (r *clientReader) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

// waitFor polls cond for up to 5 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// goroutinesIn counts the goroutines with fn in their stacks.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) {
			count++
		}
	}
	return count
}

func (s *Session) writerRuns() bool {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return s.writing
}

func message(n int) *etree.Element {
	el := etree.NewElement("message")
	el.CreateAttr("id", fmt.Sprint(n))
	return el
}

func TestIdleBoundSessionHasNoWriterGoroutineAndNoBuffer(t *testing.T) {
	s, c := boundSession(t, 10)
	r := readClient(c)

	s.startWriter(etree.NewElement("iq"))
	if !s.Deliver(message(1)) {
		t.Fatal("Deliver refused")
	}
	waitFor(t, "the bind result and the message are written", func() bool {
		return r.String() == `<iq/><message id="1"/>`
	})
	waitFor(t, "the writer goroutine exits once the queue is empty", func() bool { return !s.writerRuns() })
	if s.w.Buffered() != 0 {
		t.Fatalf("%d bytes wait in the idle session's writer", s.w.Buffered())
	}
	waitFor(t, "no goroutine runs the session's code", func() bool { return goroutinesIn("c2s.(*Session)") == 0 })

	// The next stanza starts a writer again.
	if !s.Deliver(message(2)) {
		t.Fatal("Deliver refused")
	}
	waitFor(t, "the next message is written", func() bool {
		return strings.HasSuffix(r.String(), `<message id="2"/>`)
	})
	waitFor(t, "the writer goroutine exits again", func() bool { return !s.writerRuns() })
}

func TestDeliverFromManyGoroutinesLosesNothing(t *testing.T) {
	const senders, each = 8, 300
	s, c := boundSession(t, senders*each)
	r := readClient(c)
	s.startWriter(etree.NewElement("iq"))
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if !s.Deliver(message(g*each + i)) {
					t.Errorf("sender %d: message %d refused", g, i)
					return
				}
				if i%50 == 0 {
					// Let the queue run dry now and then, so that
					// writers exit and start while others deliver.
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	want := senders*each + 1
	waitFor(t, "every stanza is written", func() bool { return strings.Count(r.String(), "/>") == want })
	waitFor(t, "the writer goroutine exits", func() bool { return !s.writerRuns() })
	// Each sender's stanzas arrive in the order it delivered them.
	out := r.String()
	for g := range senders {
		last := -1
		for i := range each {
			at := strings.Index(out, fmt.Sprintf(`<message id="%d"/>`, g*each+i))
			if at < last {
				t.Fatalf("sender %d: message %d arrived before message %d", g, i, i-1)
			}
			last = at
		}
	}
}

func TestCloseOfAnIdleSessionWritesTheQueueTheErrorAndTheEnd(t *testing.T) {
	s, c := boundSession(t, 10)
	r := readClient(c)
	s.startWriter(etree.NewElement("iq"))
	waitFor(t, "the writer goroutine exits", func() bool { return !s.writerRuns() })

	s.Close(xmpp.NewStreamError(xmpp.SystemShutdown, ""))
	s.Close(xmpp.NewStreamError(xmpp.StreamConflict, "")) // no second stream error
	if s.Deliver(message(1)) {
		t.Fatal("Deliver took a stanza after Close")
	}
	done := make(chan struct{})
	go func() { s.waitWritten(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("waitWritten does not return after Close")
	}
	<-r.done // the connection was closed
	out := r.String()
	if !strings.HasPrefix(out, "<iq/><stream:error><system-shutdown") || !strings.HasSuffix(out, "</stream:error></stream:stream>") {
		t.Fatalf("the client got %s", out)
	}
	if s.Deliver(message(2)) {
		t.Fatal("Deliver took a stanza after the stream ended")
	}
}

func TestCloseWhileWritingEndsTheStreamOnce(t *testing.T) {
	for range 50 {
		s, c := boundSession(t, 100)
		r := readClient(c)
		s.startWriter(etree.NewElement("iq"))
		for i := range 20 {
			s.Deliver(message(i))
		}
		s.Close(nil)
		s.waitWritten()
		<-r.done
		out := r.String()
		if strings.Count(out, "</stream:stream>") != 1 || !strings.HasSuffix(out, "</stream:stream>") {
			t.Fatalf("the client got %s", out)
		}
		if n := strings.Count(out, "<message"); n != 20 {
			t.Fatalf("%d of 20 queued messages written before the end: %s", n, out)
		}
	}
}

func TestCloseBeforeBindStartsNoWriter(t *testing.T) {
	s, c := boundSession(t, 10)
	s.state = stateSecure
	go func() { _, _ = io.Copy(io.Discard, c) }()
	s.Deliver(message(1)) // routed to it between Router.Bind and the bind result
	s.Close(nil)
	if s.writerRuns() {
		t.Fatal("Close before bind started a writer; the session's goroutine ends the stream itself")
	}
}

func TestWriteFailureEndsTheWriting(t *testing.T) {
	s, c := boundSession(t, 10)
	c.Close() // the client is gone: the first flush fails
	s.startWriter(etree.NewElement("iq"))
	done := make(chan struct{})
	go func() { s.waitWritten(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a failed write does not end the writing")
	}
	s.Deliver(message(1))
	if !s.writerRuns() {
		t.Fatal("want writing left set after the last write, so that no writer starts again")
	}
	s.Close(nil) // from the reader's end: must not block or write
}

func TestAWriterBlockedOnASlowClientHoldsUpNoOtherSession(t *testing.T) {
	srv := NewServer(Config{Router: &handBackRouter{}, Queue: 10, WriteTimeout: 5 * time.Second, ParkAfter: time.Hour})
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	slow, _ := bindOn(t, srv) // its client never reads: the write blocks
	slow.startWriter(etree.NewElement("iq"))
	waitFor(t, "the slow session's writer is blocked", func() bool { return goroutinesIn("c2s.(*Session).writeLoop") == 1 })
	fast, c := bindOn(t, srv)
	r := readClient(c)
	fast.startWriter(etree.NewElement("iq"))
	waitFor(t, "the other session's stanza is written", func() bool { return r.String() == "<iq/>" })
}

func TestWaitingWritersExitAtShutdown(t *testing.T) {
	srv := NewServer(Config{Router: &handBackRouter{}, Queue: 10, WriteTimeout: 5 * time.Second, ParkAfter: time.Hour})
	for range 3 {
		s, c := bindOn(t, srv)
		r := readClient(c)
		s.startWriter(etree.NewElement("iq"))
		waitFor(t, "the bind result is written", func() bool { return r.String() == "<iq/>" })
	}
	waitFor(t, "a writer goroutine waits for work", func() bool { return goroutinesIn("c2s.(*writers).run") > 0 })
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the waiting writers exit", func() bool { return goroutinesIn("c2s.(*writers).run") == 0 })
}

func TestAPanicInTheWriterEndsOnlyThatStream(t *testing.T) {
	srv := NewServer(Config{Router: &handBackRouter{}, Queue: 10, WriteTimeout: 5 * time.Second, ParkAfter: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	bad, c := bindOn(t, srv)
	r := readClient(c)
	broken := etree.NewElement("message")
	broken.Child = append(broken.Child, nil) // serializing it panics
	bad.startWriter(broken)
	<-r.done // the connection was closed
	bad.waitWritten()

	good, c := bindOn(t, srv)
	r = readClient(c)
	good.startWriter(etree.NewElement("iq"))
	waitFor(t, "another session is written after the panic", func() bool { return r.String() == "<iq/>" })
}

// TestABigBatchAfterAnIdleSpellIsWritten: a session that wrote nothing
// for longer than WriteTimeout, then gets more than its writer's buffer
// holds at once (a room's occupant list, a page of the archive), writes
// it all. The buffer spills into the connection before the flush: those
// writes must have a deadline of their own, not the last flush's, which
// has passed (they failed at once, and the stream was cut).
func TestABigBatchAfterAnIdleSpellIsWritten(t *testing.T) {
	const timeout = 100 * time.Millisecond
	srv := NewServer(Config{Router: &handBackRouter{}, Queue: 100, WriteTimeout: timeout, ParkAfter: time.Hour})
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	s, c := bindOn(t, srv)
	r := readClient(c)
	s.startWriter(etree.NewElement("iq"))
	waitFor(t, "the bind result is written", func() bool { return r.String() == `<iq/>` })
	waitFor(t, "the writer goroutine exits", func() bool { return !s.writerRuns() })
	time.Sleep(3 * timeout) // idle: the last flush's deadline passes
	big := strings.Repeat("x", 3*4096)
	var want strings.Builder
	want.WriteString("<iq/>")
	for i := range 3 {
		m := message(i)
		m.CreateElement("body").SetText(big)
		if !s.Deliver(m) {
			t.Fatal("Deliver refused")
		}
		fmt.Fprintf(&want, `<message id="%d"><body>%s</body></message>`, i, big)
	}
	waitFor(t, "the big batch is written", func() bool { return r.String() == want.String() })
}

// cutConn is a server's connection whose next Write, once cut is set,
// takes all but the last 10 bytes of what it is given and times out, as
// a write to a client that reads too slowly may at its deadline; later
// writes go through.
type cutConn struct {
	net.Conn
	cut atomic.Bool
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func (c *cutConn) Write(p []byte) (int, error) {
	if c.cut.CompareAndSwap(true, false) {
		n, _ := c.Conn.Write(p[:len(p)-10])
		return n, timeoutError{}
	}
	return c.Conn.Write(p)
}

// TestATimedOutWriteEndsTLSCleanly: when a write to a client times out
// part way through a TLS record, the connection ends as a dropped one.
// crypto/tls's Close would have sent its close_notify alert after the
// cut record, and the client, reading on, would have taken the whole for
// a forged record ("bad record MAC").
func TestATimedOutWriteEndsTLSCleanly(t *testing.T) {
	store := certs.NewStore()
	if err := store.LoadOrCreate("example.com", "", "", t.TempDir()); err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	cut := &cutConn{Conn: a}
	ts := tls.Server(cut, store.TLSConfig())
	tc := tls.Client(b, &tls.Config{InsecureSkipVerify: true})
	errc := make(chan error, 1)
	go func() { errc <- ts.Handshake() }()
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	srv := NewServer(Config{Router: &handBackRouter{}, Queue: 10, WriteTimeout: 5 * time.Second, ParkAfter: time.Hour})
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	s, _ := bindOn(t, srv)
	s.conn, s.tcp, s.w = ts, cut, xmpp.NewWriter(ts)

	got := make(chan string, 100)
	ended := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := tc.Read(buf)
			if n > 0 {
				got <- string(buf[:n])
			}
			if err != nil {
				ended <- err
				return
			}
		}
	}()
	s.startWriter(etree.NewElement("iq"))
	if first := <-got; first != "<iq/>" {
		t.Fatalf("the client read %q, want <iq/>", first)
	}
	cut.cut.Store(true)
	m := message(1)
	m.CreateElement("body").SetText(strings.Repeat("y", 2000))
	if !s.Deliver(m) {
		t.Fatal("Deliver refused")
	}
	select {
	case err := <-ended:
		t.Logf("the client's stream ends with %v", err)
		if strings.Contains(err.Error(), "MAC") || strings.Contains(err.Error(), "alert") {
			t.Fatalf("the client's stream ends with %v; want the end of a dropped connection", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client's stream did not end")
	}
}

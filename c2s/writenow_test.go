package c2s

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
)

// tlsSession returns a bound session on a loopback TCP connection under
// TLS, with the idle-memory machinery's socket beneath it (as a real
// client's), on a server with cfg and a router that records what is
// handed back (pairOn), and the client's end.
func tlsSession(t *testing.T, cfg Config) (*Session, *tls.Conn) {
	t.Helper()
	cfg.Router = &handBackRouter{}
	cfg.ParkAfter = time.Hour
	s, c := pairOn(t, false, true, cfg)
	return s, c.(*tls.Conn)
}

// writerStarts is how many times the server handed a session's writing to
// its writer pool.
func writerStarts(srv *Server) int64 { return srv.idle.(*leanIdle).writers.starts.Load() }

var messageID = regexp.MustCompile(`<message id="(\d+)"`)

// readIDs reads from c until it has seen n messages (message(i)'s), and
// returns their ids in order.
func readIDs(t *testing.T, c net.Conn, n int) []string {
	t.Helper()
	var ids []string
	var pending []byte // what follows the last whole message tag seen
	p := make([]byte, 64<<10)
	for len(ids) < n {
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		k, err := c.Read(p)
		pending = append(pending, p[:k]...)
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", len(ids), n, err)
		}
		all := messageID.FindAllSubmatchIndex(pending, -1)
		for _, m := range all {
			ids = append(ids, string(pending[m[2]:m[3]]))
		}
		if len(all) > 0 {
			pending = append([]byte(nil), pending[all[len(all)-1][1]:]...)
		}
	}
	return ids
}

// TestDeliverWritesFromTheCaller: a stanza delivered to a session whose
// writer is idle goes out from Deliver's goroutine when the socket takes
// it, without waking a pooled writer (the hand-off and the write
// deadline's timer were a fifth of a room's fan-out).
func TestDeliverWritesFromTheCaller(t *testing.T) {
	s, c := tlsSession(t, Config{Queue: 10, WriteTimeout: 5 * time.Second})
	srv := s.srv
	s.startWriter(etree.NewElement("iq"))
	p := make([]byte, 100)
	if n, err := c.Read(p); err != nil || string(p[:n]) != "<iq/>" {
		t.Fatalf("read %q, %v; want the bind result", p[:n], err)
	}
	waitFor(t, "the pool's writer is done", func() bool { return !s.writerRuns() })
	before := writerStarts(srv)
	for i := range 5 {
		if !s.Deliver(message(i)) {
			t.Fatal("Deliver refused")
		}
		if got := readIDs(t, c, 1); got[0] != fmt.Sprint(i) {
			t.Fatalf("read message %s, want %d", got[0], i)
		}
	}
	if n := writerStarts(srv) - before; n != 0 {
		t.Errorf("5 deliveries to an idle session woke the writer pool %d times, want 0", n)
	}
	if s.writerRuns() {
		t.Error("the writing is still claimed after the last delivery")
	}
}

// TestAFullSocketLeavesTheRestToThePool: a client that does not read
// fills its socket; Deliver never blocks on it (the write deadline here
// is an hour), what the socket did not take is written by the pool once
// the client reads, and every stanza arrives once, in order.
func TestAFullSocketLeavesTheRestToThePool(t *testing.T) {
	s, c := tlsSession(t, Config{Queue: 100000, QueueBytes: 1 << 30, WriteTimeout: time.Hour})
	srv := s.srv
	s.startWriter(etree.NewElement("iq"))
	waitFor(t, "the pool's writer is done", func() bool { return !s.writerRuns() })
	before := writerStarts(srv)
	const n = 3000 // 3,000 × 2 KiB: more than loopback's socket buffers hold
	body := strings.Repeat("z", 2048)
	delivered := make(chan error, 1)
	go func() {
		for i := range n {
			m := message(i)
			m.CreateElement("body").SetText(body)
			if !s.Deliver(m) {
				delivered <- fmt.Errorf("Deliver refused message %d", i)
				return
			}
		}
		delivered <- nil
	}()
	select {
	case err := <-delivered:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Deliver blocks on a client that does not read")
	}
	if writerStarts(srv) == before {
		t.Error("the writer pool never took over, though the client read nothing")
	}
	p := make([]byte, len("<iq/>"))
	if _, err := c.Read(p); err != nil || string(p) != "<iq/>" {
		t.Fatalf("read %q, %v; want the bind result first", p, err)
	}
	ids := readIDs(t, c, n)
	if len(ids) != n {
		t.Fatalf("read %d messages, want %d", len(ids), n)
	}
	for i, id := range ids {
		if id != fmt.Sprint(i) {
			t.Fatalf("message %d has id %s: out of order or repeated", i, id)
		}
	}
}

// TestATryThatFailsHandsTheStanzaBack: when the client's connection is
// reset, the stanza whose write failed from Deliver's goroutine is handed
// back to the router, by the pool, and the stream ends.
func TestATryThatFailsHandsTheStanzaBack(t *testing.T) {
	s, c := tlsSession(t, Config{Queue: 10, WriteTimeout: 5 * time.Second})
	s.startWriter(etree.NewElement("iq"))
	p := make([]byte, 100)
	if _, err := c.Read(p); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pool's writer is done", func() bool { return !s.writerRuns() })
	// A reset, not a close: the next write fails at once.
	_ = c.NetConn().(*net.TCPConn).SetLinger(0)
	_ = c.NetConn().Close()
	time.Sleep(50 * time.Millisecond) // for the reset to arrive; a write before it just succeeds, and the loop below retries
	for i := 1; ; i++ {
		if !s.Deliver(message(i)) {
			break // the session is closing: a failed write closed it
		}
		if i > 1000 {
			t.Fatal("1,000 deliveries to a reset connection, and the session does not close")
		}
		time.Sleep(time.Millisecond)
	}
	awaitWritten(t, s)
	got, _ := handedBack(s)
	if !strings.Contains(got, "message#") {
		t.Fatalf("handed back %q, want the message whose write failed", got)
	}
	if !s.sock.writeFailed() {
		t.Error("the socket does not report the failed write")
	}
}

// TestInlineAndPooledWritesKeepEachSendersOrder: many goroutines deliver
// to one TLS session whose client reads slowly at first, so that tries
// from Deliver's callers, bytes left for the pool and the pool's own
// batches interleave; every stanza arrives once, each sender's in the
// order it delivered them.
func TestInlineAndPooledWritesKeepEachSendersOrder(t *testing.T) {
	const senders, each = 8, 400
	s, c := tlsSession(t, Config{Queue: senders * each, QueueBytes: 1 << 30, WriteTimeout: time.Hour})
	s.startWriter(etree.NewElement("iq"))
	// Mostly one TLS record a stanza; every tenth one spans several
	// (larger than the writer's buffer and than a record), so that one
	// try makes several writes and the later ones queue behind the
	// bytes an earlier one left.
	body, big := strings.Repeat("w", 700), strings.Repeat("W", 40<<10)
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m := message(g*each + i)
				if i%10 == 5 {
					m.CreateElement("body").SetText(big)
				} else {
					m.CreateElement("body").SetText(body)
				}
				if !s.Deliver(m) {
					t.Errorf("sender %d: message %d refused", g, i)
					return
				}
				if i%40 == 0 {
					// Let the queue run dry now and then: the next
					// delivery tries from its caller again.
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	// Slow at first: the socket fills, tries leave bytes behind and the
	// pool blocks; then as fast as it comes.
	var got []byte
	p := make([]byte, 4096)
	for reads := 0; ; reads++ {
		if reads < 200 {
			time.Sleep(time.Millisecond)
		}
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		n, err := c.Read(p)
		got = append(got, p[:n]...)
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		if bytes.Count(got, []byte("</message>")) == senders*each {
			break
		}
	}
	wg.Wait()
	if !bytes.HasPrefix(got, []byte("<iq/>")) {
		t.Fatalf("the stream starts %q, want the bind result", got[:min(len(got), 20)])
	}
	var ids []string
	for _, m := range messageID.FindAllSubmatch(got, -1) {
		ids = append(ids, string(m[1]))
	}
	if len(ids) != senders*each {
		t.Fatalf("read %d messages, want %d", len(ids), senders*each)
	}
	seen := make(map[string]bool)
	last := make([]int, senders)
	for g := range last {
		last[g] = -1
	}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("message %s arrived twice", id)
		}
		seen[id] = true
		var n int
		fmt.Sscan(id, &n)
		g, i := n/each, n%each
		if i <= last[g] {
			t.Fatalf("sender %d: message %d arrived after message %d", g, i, last[g])
		}
		last[g] = i
	}
}

// TestATryKeepsLaterWritesBehindTheBytesItLeft: within one try, once a
// write left bytes behind (the socket was full), later writes queue
// behind them, and the drain sends them all in order.
func TestATryKeepsLaterWritesBehindTheBytesItLeft(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	raw := <-accepted
	if raw == nil {
		t.Fatal("accept failed")
	}
	defer raw.Close()
	sc := wrapSock(raw)
	if sc == nil {
		t.Skip("no raw socket on this system")
	}
	first := bytes.Repeat([]byte("a"), 32<<20) // more than loopback's buffers hold
	writes := [][]byte{first, []byte("bb"), bytes.Repeat([]byte("c"), 70000), []byte("d")}
	var want []byte
	sc.beginTry()
	for _, w := range writes {
		if n, err := sc.Write(w); n != len(w) || err != nil {
			t.Fatalf("a try's Write = %d, %v; want %d, nil", n, err, len(w))
		}
		want = append(want, w...)
	}
	if !sc.endTry(nil, nil) {
		t.Fatal("32 MiB went into a socket nobody reads at once: nothing left behind?")
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(client, int64(len(want))))
		got <- b
	}()
	_ = sc.SetWriteDeadline(time.Now().Add(20 * time.Second))
	if err := sc.drain(); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("the client read %d bytes, not the %d written in order", len(b), len(want))
	}
}

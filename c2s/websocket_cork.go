package c2s

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// The WebSocket library writes each message to the socket as it ends it:
// over TCP a session's writer coalesces what waits into one write, and
// over WebSocket it would make one system call (and, on wss://, one TLS
// record) per stanza, which cost a WebSocket session 2.5 times the
// server CPU of a TCP one per message (BENCHMARKS.md). corkConn sits
// beneath the library: while wsConn.Flush writes a batch of frames it
// holds what the library writes, and sends the batch in one write.

// corkResponse is the http.ResponseWriter given to websocket.Accept: its
// Hijack puts a corkConn beneath the library.
type corkResponse struct {
	http.ResponseWriter
	conn *corkConn // set by Hijack
}

// Hijack takes over the connection as http.Hijacker does, with writes
// going through a corkConn. What the client sent after the handshake and
// the server has buffered stays in the reader.
func (w *corkResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("c2s: the response cannot be hijacked")
	}
	nc, brw, err := h.Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.conn = &corkConn{Conn: nc}
	return w.conn, bufio.NewReadWriter(brw.Reader, bufio.NewWriter(w.conn)), nil
}

// corkConn is a connection whose writes can be held (cork) and sent
// together (uncork). Writes from any goroutine while it is corked (the
// library's pongs and close frames) join the batch; each write is whole,
// so frames never interleave.
type corkConn struct {
	net.Conn

	mu     sync.Mutex
	corked bool
	buf    []byte
}

// Write sends p, or holds it while the connection is corked.
func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// cork holds the writes that follow until uncork.
func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// uncork sends what was held in one write, which must end by deadline
// (zero: none), and lets later writes through.
func (c *corkConn) uncork(deadline time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	if len(c.buf) == 0 {
		return nil
	}
	if !deadline.IsZero() {
		_ = c.Conn.SetWriteDeadline(deadline)
		defer func() { _ = c.Conn.SetWriteDeadline(time.Time{}) }()
	}
	_, err := c.Conn.Write(c.buf)
	if cap(c.buf) > 4<<10 {
		// A burst must not pin its buffer for the session's life: a
		// WebSocket session never parks, and idle ones are many.
		c.buf = nil
	} else {
		c.buf = c.buf[:0]
	}
	return err
}

package s2s

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// writeTimeout bounds one flush to a peer: a server that does not read
// loses its stream rather than holding the writer.
const writeTimeout = 30 * time.Second

type enqueueResult uint8

const (
	enqueued enqueueResult = iota
	queueFull
	streamClosed
)

// outStream is the stream from one local domain to one remote domain:
// one goroutine connects, authenticates, then writes what is queued; a
// second reads what the peer sends on it (nothing but whitespace, a
// stream error or the stream's end, since stanzas come on the peer's own
// stream).
type outStream struct {
	svc *Service
	pair

	mu     sync.Mutex
	queue  []*xmpp.Stanza
	closed bool
	// failed is why the stream ended without rerouting what waited
	// (the peer could not be reached, say): what is sent to a closed
	// stream with it gets the same answer (Service.RouteRemote).
	failed *xmpp.StanzaError
	// wake has room for one signal: the writer takes the whole queue.
	wake     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	lastUsed atomic.Int64 // unix nanoseconds of the last write
	// pong gets the id of an answered ping (Service.pong).
	pong chan string
}

// pingPrefix starts the ids of the outbound streams' pings, which
// Service.pong looks for among the results inbound streams carry.
const pingPrefix = "s2s-ping-"

func newOutStream(s *Service, p pair) *outStream {
	return &outStream{svc: s, pair: p, wake: make(chan struct{}, 1), stop: make(chan struct{}), pong: make(chan string, 1)}
}

// enqueue queues st for the writer, without blocking.
func (o *outStream) enqueue(st *xmpp.Stanza) enqueueResult {
	o.mu.Lock()
	switch {
	case o.closed:
		o.mu.Unlock()
		return streamClosed
	case len(o.queue) >= o.svc.cfg.Queue:
		o.mu.Unlock()
		return queueFull
	}
	o.queue = append(o.queue, st)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return enqueued
}

// shutdown ends the stream: the writer closes it with <system-shutdown/>.
func (o *outStream) shutdown() { o.stopOnce.Do(func() { close(o.stop) }) }

// take empties the queue; close marks the stream closed too, so that
// later stanzas go to a new stream.
func (o *outStream) take(close bool) []*xmpp.Stanza {
	o.mu.Lock()
	defer o.mu.Unlock()
	q := o.queue
	o.queue = nil
	if close {
		o.closed = true
	}
	return q
}

// run is the stream's life: connect and authenticate within the connect
// timeout, or bounce what waits; then write until idle, shutdown, or the
// peer's end.
func (o *outStream) run() {
	log := o.svc.log.With("local", o.local, "remote", o.remote)
	ctx, cancel := context.WithTimeout(o.svc.ctx, o.svc.cfg.ConnectTimeout)
	ps, err := o.svc.dialPeer(ctx, o.pair)
	if err == nil {
		if err = o.svc.authenticate(ps); err != nil {
			ps.close()
		}
	}
	timedOut := ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded)
	cancel()
	if err != nil {
		cond, text := xmpp.RemoteServerNotFound, "cannot reach "+o.remote
		switch {
		case o.svc.ctx.Err() != nil:
			text = "the server is shutting down"
		case timedOut:
			cond, text = xmpp.RemoteServerTimeout, o.remote+" did not answer in time"
		case errors.Is(err, errDialbackRefused):
			text = o.remote + " refused this server's identity"
		}
		log.Warn("s2s: outbound stream failed", "err", err)
		o.end(cond, text, false)
		return
	}
	_ = ps.conn.SetDeadline(time.Time{})
	log.Info("s2s: outbound stream ready", "tls", ps.tls, "peer_cert_valid", ps.certValid)
	o.serve(ps)
}

// serve writes queued stanzas to the authenticated stream ps.
func (o *outStream) serve(ps *peerStream) {
	defer ps.close()
	peerGone := make(chan struct{})
	go func() {
		defer close(peerGone)
		for {
			el, err := ps.r.ReadElement()
			if err != nil {
				if !errors.Is(err, xmpp.ErrStreamClosed) && !errors.Is(err, net.ErrClosed) {
					o.svc.log.Debug("s2s: outbound stream read", "remote", o.remote, "err", err)
				}
				return
			}
			if el.Tag == "error" && xmpp.NS(el) == xmpp.NSStream {
				o.svc.log.Info("s2s: outbound stream error from peer", "remote", o.remote, "err", xmpp.ParseStreamError(el))
				return
			}
		}
	}()
	idle := o.svc.cfg.IdleTimeout
	var idleC <-chan time.Time
	var timer *time.Timer
	if idle > 0 {
		timer = time.NewTimer(idle)
		defer timer.Stop()
		idleC = timer.C
	}
	o.lastUsed.Store(time.Now().UnixNano())
	// The ping's timer: after PingInterval without a write, a ping;
	// then, while one waits for its answer (pending), ConnectTimeout.
	interval := o.svc.cfg.PingInterval
	var pingC <-chan time.Time
	var pingTimer *time.Timer
	if interval > 0 {
		pingTimer = time.NewTimer(interval)
		defer pingTimer.Stop()
		pingC = pingTimer.C
	}
	pending := ""
	defer func() {
		if pending != "" {
			o.svc.mu.Lock()
			delete(o.svc.pings, pending)
			o.svc.mu.Unlock()
		}
	}()
	lastWrite := time.Now()
	write := func(q []*xmpp.Stanza) error {
		if len(q) == 0 {
			return nil
		}
		_ = ps.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		for _, st := range q {
			if err := ps.w.WriteElement(st.El); err != nil {
				return err
			}
		}
		lastWrite = time.Now()
		o.lastUsed.Store(lastWrite.UnixNano())
		o.svc.stanzasOut.Add(int64(len(q)))
		return ps.w.Flush()
	}
	for {
		select {
		case <-pingC:
			if pending != "" {
				o.svc.deadPeers.Add(1)
				o.svc.log.Warn("s2s: peer did not answer a ping; closing its stream", "local", o.local, "remote", o.remote)
				o.end("", "", true)
				return
			}
			if since := time.Since(lastWrite); since < interval {
				pingTimer.Reset(interval - since)
				continue
			}
			pending = pingPrefix + newID()
			o.svc.mu.Lock()
			o.svc.pings[pending] = o
			o.svc.mu.Unlock()
			ping := etree.NewElement("iq")
			ping.CreateAttr("type", "get")
			ping.CreateAttr("id", pending)
			ping.CreateAttr("from", o.local)
			ping.CreateAttr("to", o.remote)
			ping.AddChild(xmpp.NewElementNS("urn:xmpp:ping", "ping"))
			_ = ps.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := ps.send(ping); err != nil {
				o.svc.log.Warn("s2s: outbound stream ping failed", "remote", o.remote, "err", err)
				o.end("", "", true)
				return
			}
			o.svc.pingsSent.Add(1)
			lastWrite = time.Now()
			pingTimer.Reset(o.svc.cfg.ConnectTimeout)
		case id := <-o.pong:
			if id == pending {
				pending = ""
				pingTimer.Reset(interval)
			}
		case <-o.wake:
			if err := write(o.take(false)); err != nil {
				o.svc.log.Warn("s2s: outbound stream write failed", "remote", o.remote, "err", err)
				o.end(xmpp.RemoteServerTimeout, "the stream to "+o.remote+" failed", false)
				return
			}
		case <-peerGone:
			o.end("", "", true)
			return
		case <-o.stop:
			_ = ps.conn.SetWriteDeadline(time.Now().Add(time.Second))
			_ = ps.w.WriteStreamError(xmpp.NewStreamError(xmpp.SystemShutdown, ""))
			_ = ps.w.WriteEnd()
			_ = ps.w.Flush()
			o.end(xmpp.RemoteServerTimeout, "the server is shutting down", false)
			return
		case <-idleC:
			since := time.Since(time.Unix(0, o.lastUsed.Load()))
			if since < idle {
				timer.Reset(idle - since)
				continue
			}
			o.svc.log.Debug("s2s: outbound stream idle, closing", "remote", o.remote)
			_ = ps.conn.SetWriteDeadline(time.Now().Add(time.Second))
			_ = ps.w.WriteEnd()
			_ = ps.w.Flush()
			o.end("", "", true)
			return
		}
	}
}

// end takes o out of the table and closes it; what still waits bounces
// with cond, or, when reroute is set (the stream closed without a
// failure: idle, or the peer's end), goes to a new stream.
func (o *outStream) end(cond xmpp.StanzaCondition, text string, reroute bool) {
	o.svc.forget(o)
	var failed *xmpp.StanzaError
	if !reroute {
		failed = xmpp.NewStanzaError(cond, text)
	}
	o.mu.Lock()
	o.failed = failed
	o.mu.Unlock()
	for _, st := range o.take(true) {
		if reroute {
			o.svc.RouteRemote(st)
			continue
		}
		o.svc.cfg.Router.Bounce(st, failed)
	}
}

// failure is why the stream ended, when it ended without rerouting.
func (o *outStream) failure() *xmpp.StanzaError {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.failed
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// s2sResult is the JSON line of the s2s scenario. The common fields'
// server_cpu_s is the sending server's (-pid); the receiving server's
// (-peer-pid) has fields of its own.
type s2sResult struct {
	common
	PeerServer string `json:"peer_server"`
	PeerDomain string `json:"peer_domain"`
	Pairs      int    `json:"pairs"`
	Window     int    `json:"window"`
	BodyBytes  int    `json:"body_bytes"`
	Sent       int64  `json:"sent"`
	Delivered  int64  `json:"delivered"`
	// Lost is Sent less Delivered after the drain: it must be 0.
	Lost int64 `json:"lost"`
	// Bounced counts error replies to sent messages (they are lost too).
	Bounced int64 `json:"bounced"`
	// Foreign counts messages that were not from this run's senders,
	// ignored (offline messages of an earlier run).
	Foreign  int64   `json:"foreign"`
	MsgsPerS float64 `json:"msgs_per_s"`
	// MsgsPerCPUS is per CPU-second of the sending server (-pid).
	MsgsPerCPUS *float64 `json:"msgs_per_server_cpu_s,omitempty"`
	// PeerCPUS is the receiving server's CPU time over the window
	// (-peer-pid), PeerMsgsPerCPUS the messages per CPU-second of it.
	PeerCPUS        *float64 `json:"peer_server_cpu_s,omitempty"`
	PeerMsgsPerCPUS *float64 `json:"msgs_per_peer_server_cpu_s,omitempty"`
	// BothMsgsPerCPUS is per CPU-second of the two servers together:
	// what one message costs across the federation.
	BothMsgsPerCPUS *float64 `json:"msgs_per_both_servers_cpu_s,omitempty"`
	Latency         latency  `json:"latency"`
	DrainS          float64  `json:"drain_s"`
}

// peerOptions returns o for the receiving server of the s2s scenario:
// its address, domain and process.
func (o *options) peerOptions() *options {
	p := *o
	p.Addr, p.Domain, p.PID = o.PeerAddr, o.PeerDomain, o.PeerPID
	p.tls = o.tls.Clone()
	p.tls.ServerName = o.PeerDomain
	return &p
}

// runS2S runs the s2s scenario: o.Pairs senders log in to the server at
// o.Addr (domain o.Domain) and as many receivers to the one at
// o.PeerAddr (o.PeerDomain), which federate; sender i sends chat
// messages to receiver i's full JID with at most o.Window in flight, for
// o.Duration, then a drain of up to o.Drain. Every message crosses the
// one server-to-server stream from o.Domain to o.PeerDomain. The same
// account numbers are used on both servers.
func runS2S(ctx context.Context, o *options) report {
	p := o.peerOptions()
	r := &s2sResult{PeerServer: p.Addr, PeerDomain: p.Domain, Pairs: o.Pairs, Window: o.Window, BodyBytes: o.Size}
	n := o.Pairs
	if err := raiseNoFile(uint64(2*n) + 64); err != nil {
		r.fail(err)
		return r
	}
	for _, side := range []*options{o, p} {
		if err := prepare(ctx, side, n); err != nil {
			r.fail(err)
			return r
		}
	}
	senders := make([]*msgClient, n)
	receivers := make([]*msgClient, n)
	for i := range senders {
		senders[i] = &msgClient{win: make(chan struct{}, o.Window)}
		// A receiver sends nothing: its window stays empty.
		receivers[i] = &msgClient{win: make(chan struct{})}
		senders[i].peer, receivers[i].peer = receivers[i], senders[i]
	}
	var armed atomic.Bool
	reader := func(side []*msgClient) func(*Conn, *etree.Element) {
		return func(c *Conn, el *etree.Element) {
			if cl := side[c.Index]; armed.Load() {
				cl.receive(el)
			} else if xmpp.KindOf(el) == xmpp.KindMessage {
				cl.foreign.Add(1)
			}
		}
	}
	o.progressf("logging in %d senders on %s and %d receivers on %s", n, o.Domain, n, p.Domain)
	ls := loginAll(ctx, o, n, o.Presence, true, reader(senders))
	defer func() { closeAll(ls.conns) }()
	if !r.loggedIn(ls) {
		return r
	}
	lr := loginAll(ctx, p, n, p.Presence, true, reader(receivers))
	defer func() { closeAll(lr.conns) }()
	if !r.loggedIn(lr) {
		return r
	}
	for i := range senders {
		senders[i].c, receivers[i].c = ls.conns[i], lr.conns[i]
	}
	for _, cl := range senders {
		cl.to = escape(cl.peer.c.JID.String())
	}
	armed.Store(true)
	// The first message opens the stream (and dialback's verification):
	// one message per pair that is not timed, so that the measured window
	// is the stream's steady state.
	if err := warmS2S(ctx, o, senders); err != nil {
		r.fail(err)
		return r
	}
	// Every warm-up message has arrived: the readers wait for the next.
	for i, cl := range senders {
		cl.sent.Store(0)
		receivers[i].delivered.Store(0)
		receivers[i].lat = nil
	}

	o.progressf("sending for %v, window %d, %d-byte bodies, %s → %s", o.Duration, o.Window, o.Size, o.Domain, p.Domain)
	m, err := startMeter(o.PID)
	if err != nil {
		r.fail(err)
		return r
	}
	pm, err := startMeter(p.PID)
	if err != nil {
		r.fail(fmt.Errorf("peer: %w", err))
		return r
	}
	stop := make(chan struct{})
	sending := startSenders(ctx, stop, senders, o.Size)
	select {
	case <-time.After(o.Duration):
	case <-ctx.Done():
	}
	close(stop)
	sendErrs, sendErr := sending()
	var peer common
	r.DrainS, _, _ = drainAndStop(ctx, &r.common, o.Drain, func() (sent, done int64) {
		for _, cl := range senders {
			sent += cl.sent.Load()
			done += cl.peer.delivered.Load() + cl.bounced.Load()
		}
		return sent, done
	}, m, nil)
	r.fail(pm.stop(&peer))
	r.countDropped(ls.conns)
	r.countDropped(lr.conns)
	closeAll(ls.conns)
	closeAll(lr.conns)
	ls.conns, lr.conns = nil, nil

	var all []time.Duration
	var strays int64
	for i, cl := range senders {
		rc := receivers[i]
		r.Sent += cl.sent.Load()
		r.Delivered += rc.delivered.Load()
		r.Bounced += cl.bounced.Load()
		strays += cl.strays.Load() + rc.strays.Load()
		r.Foreign += cl.foreign.Load() + rc.foreign.Load()
		all = append(all, rc.lat...)
	}
	r.Lost = r.Sent - r.Delivered
	r.Errors = sendErrs + r.DroppedStream + r.Bounced + strays
	r.MsgsPerS = r.rate(r.Delivered)
	r.MsgsPerCPUS = r.perCPU(r.Delivered)
	r.PeerCPUS = peer.ServerCPUS
	r.PeerMsgsPerCPUS = peer.perCPU(r.Delivered)
	if r.ServerCPUS != nil && r.PeerCPUS != nil {
		both := common{ServerCPUS: new(float64)}
		*both.ServerCPUS = *r.ServerCPUS + *r.PeerCPUS
		r.BothMsgsPerCPUS = both.perCPU(r.Delivered)
	}
	r.Latency = summarize(all)
	r.fail(sendErr)
	if strays > 0 {
		r.fail(fmt.Errorf("%d messages arrived that were not sent (or arrived twice)", strays))
	}
	if r.Lost != 0 {
		r.fail(fmt.Errorf("%d of %d messages were lost (%d bounced with an error)", r.Lost, r.Sent, r.Bounced))
	}
	return r
}

// warmS2S sends one message from each sender and waits, up to
// o.StepTimeout past the server's connect time, until every one has
// arrived: the server-to-server stream is then up.
func warmS2S(ctx context.Context, o *options, senders []*msgClient) error {
	for _, cl := range senders {
		cl.win <- struct{}{}
		cl.sent.Add(1)
		if err := cl.c.send("<message type='chat' to='" + cl.to + "' id='w'><body>t" +
			fmt.Sprint(int64(time.Since(epoch))) + " warm-up</body></message>"); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	deadline := time.Now().Add(o.StepTimeout)
	for {
		var done, bounced int64
		for _, cl := range senders {
			done += cl.peer.delivered.Load()
			bounced += cl.bounced.Load()
		}
		if bounced > 0 {
			return fmt.Errorf("warm-up: %d of %d messages bounced: do the servers federate (static_routes, [s2s] listen)?", bounced, len(senders))
		}
		if done == int64(len(senders)) {
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if time.Now().After(deadline) {
			return errors.New("warm-up: the first messages did not cross within -step-timeout: do the servers federate (static_routes, [s2s] listen)?")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *s2sResult) summary(w io.Writer) {
	fmt.Fprintf(w, "s2s: %d pairs %s → %s, window %d, %d-byte bodies: %d sent, %d delivered in %.2f s (%.2f s of it draining): %.0f msgs/s\n",
		r.Pairs, r.Domain, r.PeerDomain, r.Window, r.BodyBytes, r.Sent, r.Delivered, r.WindowS, r.DrainS, r.MsgsPerS)
	fmt.Fprintf(w, "  latency: %s\n", r.Latency)
	fmt.Fprintf(w, "  lost: %d (bounced %d), dropped streams: %d\n", r.Lost, r.Bounced, r.DroppedStream)
	r.cpuLine(w, r.Delivered, "msgs")
	if r.PeerCPUS != nil {
		fmt.Fprintf(w, "  receiving server CPU: %.2f s", *r.PeerCPUS)
		if r.PeerMsgsPerCPUS != nil {
			fmt.Fprintf(w, " (%.0f msgs per CPU-second)", *r.PeerMsgsPerCPUS)
		}
		if r.BothMsgsPerCPUS != nil {
			fmt.Fprintf(w, "; both: %.0f msgs per CPU-second", *r.BothMsgsPerCPUS)
		}
		fmt.Fprintln(w)
	}
}

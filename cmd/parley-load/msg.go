package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// msgResult is the JSON line of the msg scenario.
type msgResult struct {
	common
	Pairs     int `json:"pairs"`
	Window    int `json:"window"`
	BodyBytes int `json:"body_bytes"`
	// Rate is the offered rate, in messages per second over all the
	// clients (-rate); 0 when the clients send as fast as the window lets
	// them.
	Rate float64 `json:"rate_per_s,omitempty"`
	// Skipped counts the send slots of a paced run that passed while a
	// client was more than one slot behind (its window full, or the
	// client itself too slow): the rate actually offered was lower than
	// Rate by that many messages.
	Skipped   int64 `json:"rate_skipped,omitempty"`
	Sent      int64 `json:"sent"`
	Delivered int64 `json:"delivered"`
	// Lost is Sent less Delivered after the drain: it must be 0.
	Lost int64 `json:"lost"`
	// Bounced counts error replies to sent messages (they are lost too).
	Bounced int64 `json:"bounced"`
	// Foreign counts messages that were not from this run's peers (offline
	// messages of an earlier run), ignored.
	Foreign     int64    `json:"foreign"`
	MsgsPerS    float64  `json:"msgs_per_s"`
	MsgsPerCPUS *float64 `json:"msgs_per_server_cpu_s,omitempty"`
	Latency     latency  `json:"latency"`
	DrainS      float64  `json:"drain_s"`
	// RSSStartKiB is the server's resident memory when the sending
	// starts, RSSPeakKiB the highest of the samples taken every 50 ms
	// from then to the end of the drain (with -pid).
	RSSStartKiB int64 `json:"rss_start_kib,omitempty"`
	RSSPeakKiB  int64 `json:"rss_peak_kib,omitempty"`
	// Stall and Hang are the slow consumers beside the pairs (-stalled,
	// -hang-domain): what their senders sent and got back.
	Stall *sideResult `json:"stall,omitempty"`
	Hang  *sideResult `json:"hang,omitempty"`
}

// msgClient is one side of a pair: it sends to peer and receives from it.
type msgClient struct {
	c    *Conn
	peer *msgClient
	to   string // the peer's full JID, escaped for an attribute
	// win holds a token for each message sent and not yet received: the
	// sender puts one in before it sends, the peer's reader takes it out
	// when the message arrives.
	win chan struct{}

	sent      atomic.Int64 // by this client
	delivered atomic.Int64 // to this client
	bounced   atomic.Int64 // of this client's messages
	strays    atomic.Int64 // messages from the peer that were not in flight
	foreign   atomic.Int64 // messages from others, ignored
	lat       []time.Duration
	// pace, when not nil, spaces this client's sends (-rate).
	pace *pacer
}

// pacer spaces one client's sends every interval, at fixed times from
// the first: a token bucket that holds one token. A client that falls
// more than one interval behind (its window full, or itself too slow)
// skips the slots it missed instead of sending them in a burst.
type pacer struct {
	next    time.Time // the next send slot
	every   time.Duration
	skipped int64 // slots missed
	timer   *time.Timer
}

// newPacers returns n pacers that together send rate messages a second,
// each every n/rate seconds, their slots staggered by 1/rate from one to
// the next so that the sends are evenly spread, starting after start.
func newPacers(n int, rate float64, start time.Time) []*pacer {
	every := max(time.Duration(float64(n)/rate*float64(time.Second)), time.Nanosecond)
	ps := make([]*pacer, n)
	for i := range ps {
		ps[i] = &pacer{next: start.Add(time.Duration(float64(every) * float64(i) / float64(n))), every: every}
	}
	return ps
}

// wait sleeps until the next send slot and returns when the message is due,
// and whether to send: false when stop is closed or ctx done first. The
// message is timed from then, not from when it leaves: a send held back by
// a full window, or a slot already past because earlier sends were held
// back, is latency too (no coordinated omission). When wait slept, the
// message is due when the timer woke it, as the lateness of the tool's
// own timers (about a millisecond when idle) is not the server's.
func (p *pacer) wait(ctx context.Context, stop <-chan struct{}) (time.Time, bool) {
	if behind := time.Since(p.next); behind >= p.every {
		n := int64(behind / p.every)
		p.skipped += n
		p.next = p.next.Add(time.Duration(n) * p.every)
	}
	due := p.next
	if d := time.Until(p.next); d > 0 {
		if p.timer == nil {
			p.timer = time.NewTimer(d)
		} else {
			p.timer.Reset(d)
		}
		select {
		case <-p.timer.C:
		case <-stop:
			return time.Time{}, false
		case <-ctx.Done():
			return time.Time{}, false
		}
		due = time.Now()
	}
	p.next = p.next.Add(p.every)
	return due, true
}

// epoch is the time base of the send times in message bodies: monotonic,
// and the sender and receiver are both in this process.
var epoch = time.Now()

// runMsg runs the msg scenario: 2×o.Pairs clients, account 2i paired with
// 2i+1, each sending chat messages to the other's full JID with at most
// o.Window in flight, for o.Duration; then a drain of up to o.Drain for
// what is still in flight. With o.Rate the clients together send at most
// o.Rate messages a second, evenly spread. With -stalled or -hang-domain
// the slow consumers (slow.go) and their senders run beside the pairs for
// the same o.Duration.
func runMsg(ctx context.Context, o *options) report {
	r := &msgResult{Pairs: o.Pairs, Window: o.Window, BodyBytes: o.Size, Rate: o.Rate}
	n := 2 * o.Pairs
	slow := newSlowLoad(o)
	if err := prepare(ctx, o, n+slow.accounts()); err != nil {
		r.fail(err)
		return r
	}
	clients := make([]*msgClient, n)
	for i := range clients {
		clients[i] = &msgClient{win: make(chan struct{}, o.Window)}
	}
	for i := 0; i < n; i += 2 {
		clients[i].peer, clients[i+1].peer = clients[i+1], clients[i]
	}
	// The readers start during the logins; they count nothing until
	// every client knows its peer (what arrives before is foreign: offline
	// messages of an earlier run).
	var armed atomic.Bool
	handle := func(c *Conn, el *etree.Element) {
		if c.Index >= n {
			if sl := slow.side(c.Index); sl != nil {
				sl.receive(el)
			}
			return
		}
		if cl := clients[c.Index]; armed.Load() {
			cl.receive(el)
		} else if xmpp.KindOf(el) == xmpp.KindMessage {
			cl.foreign.Add(1)
		}
	}
	if err := slow.start(); err != nil {
		r.fail(err)
		return r
	}
	defer slow.close()
	if slow != nil {
		o.progressf("logging in %d clients (%d pairs), %d senders to slow consumers and %d stalled clients",
			n+slow.accounts(), o.Pairs, slow.senders(), len(slow.stalled))
	} else {
		o.progressf("logging in %d clients (%d pairs)", n, o.Pairs)
	}
	l := loginAll(ctx, o, n+slow.senders(), o.Presence, true, handle)
	conns := l.conns
	defer func() { closeAll(conns) }()
	if !r.loggedIn(l) {
		return r
	}
	if err := slow.loginStalled(ctx); err != nil {
		r.Errors++
		r.fail(fmt.Errorf("login: %w", err))
		return r
	}
	for i, cl := range clients {
		cl.c = l.conns[i]
	}
	for _, cl := range clients {
		cl.to = escape(cl.peer.c.JID.String())
	}
	armed.Store(true)

	if o.Rate > 0 {
		o.progressf("sending for %v, window %d, %d-byte bodies, %g msgs/s in all", o.Duration, o.Window, o.Size, o.Rate)
	} else {
		o.progressf("sending for %v, window %d, %d-byte bodies", o.Duration, o.Window, o.Size)
	}
	m, err := startMeter(o.PID)
	if err != nil {
		r.fail(err)
		return r
	}
	var rss *rssSampler
	if o.PID > 0 {
		if rss, err = startRSS(o.PID, 50*time.Millisecond); err != nil {
			r.fail(err)
			return r
		}
	}
	if o.Rate > 0 {
		for i, p := range newPacers(n, o.Rate, time.Now()) {
			clients[i].pace = p
		}
	}
	stop := make(chan struct{})
	sending := startSenders(ctx, stop, clients, o.Size)
	slowWait := slow.run(ctx, conns, stop)
	select {
	case <-time.After(o.Duration):
	case <-ctx.Done():
	}
	close(stop)
	sendErrs, sendErr := sending()
	slowErrs, slowErr := slowWait()

	r.DrainS, r.RSSStartKiB, r.RSSPeakKiB = drainAndStop(ctx, &r.common, o.Drain, func() (sent, done int64) {
		for _, cl := range clients {
			sent += cl.sent.Load()
			done += cl.delivered.Load() + cl.bounced.Load()
		}
		return sent, done
	}, m, rss)
	r.countDropped(conns)
	// Close before reading the latencies: the readers are done then.
	closeAll(conns)
	conns = nil
	slow.close()
	r.Stall, r.Hang = slow.results()
	var all []time.Duration
	var strays int64
	for _, cl := range clients {
		r.Sent += cl.sent.Load()
		r.Delivered += cl.delivered.Load()
		r.Bounced += cl.bounced.Load()
		if cl.pace != nil {
			r.Skipped += cl.pace.skipped
		}
		strays += cl.strays.Load()
		r.Foreign += cl.foreign.Load()
		all = append(all, cl.lat...)
	}
	r.Lost = r.Sent - r.Delivered
	r.Errors = sendErrs + slowErrs + r.DroppedStream + r.Bounced + strays
	r.MsgsPerS = r.rate(r.Delivered)
	r.MsgsPerCPUS = r.perCPU(r.Delivered)
	r.Latency = summarize(all)
	r.fail(sendErr)
	r.fail(slowErr)
	if strays > 0 {
		r.fail(fmt.Errorf("%d messages arrived that were not sent (or arrived twice)", strays))
	}
	if r.Lost != 0 {
		r.fail(fmt.Errorf("%d of %d messages were lost (%d bounced with an error)", r.Lost, r.Sent, r.Bounced))
	}
	return r
}

// send sends messages to the peer until stop is closed, keeping at most
// cap(win) of them in flight, each in its slot when the client is paced.
// The body is size bytes: the send time, a space, padding.
func (cl *msgClient) send(ctx context.Context, stop <-chan struct{}, size int) error {
	return sendPaced(ctx, stop, sender{c: cl.c, win: cl.win, pace: cl.pace, sent: &cl.sent,
		head: "<message type='chat' to='" + cl.to + "' id='m", first: 1}, size)
}

// sendingClient is a scenario's client that sends until it is told to
// stop: msg's and s2s's msgClient, muc's mucClient.
type sendingClient interface {
	send(ctx context.Context, stop <-chan struct{}, size int) error
	conn() *Conn
}

func (cl *msgClient) conn() *Conn { return cl.c }
func (cl *mucClient) conn() *Conn { return cl.c }

// startSenders runs each client's send on a goroutine of its own until
// stop is closed (or ctx ends); the function it returns waits for them
// and says how many failed, and the first failure.
func startSenders[C sendingClient](ctx context.Context, stop <-chan struct{}, clients []C, size int) func() (int64, error) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		fails int64
		first error
	)
	for _, cl := range clients {
		wg.Go(func() {
			if err := cl.send(ctx, stop, size); err != nil {
				mu.Lock()
				fails++
				if first == nil {
					first = fmt.Errorf("sending as %s: %w", cl.conn().JID, err)
				}
				mu.Unlock()
			}
		})
	}
	return func() (int64, error) {
		wg.Wait()
		return fails, first
	}
}

// drainAndStop ends a run's measurement as msg and muc do: it waits, up
// to limit and polling, until total says everything wanted came (or ctx
// ends), then stops the meter and the RSS sampler (nil for none), their
// mistakes recorded in c. It returns the drain's seconds and the RSS at
// the start and at its peak.
func drainAndStop(ctx context.Context, c *common, limit time.Duration, total func() (want, done int64),
	m *meter, rss *rssSampler) (drainS float64, rssStart, rssPeak int64) {
	start := time.Now()
	for {
		want, done := total()
		if done >= want || time.Since(start) >= limit || ctx.Err() != nil {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	drainS = seconds(time.Since(start))
	if ctx.Err() != nil {
		c.fail(context.Cause(ctx))
	}
	c.fail(m.stop(c))
	if rss != nil {
		var err error
		rssStart, rssPeak, err = rss.stop()
		c.fail(err)
	}
	return drainS, rssStart, rssPeak
}

// sender is what sendPaced sends with: a client's connection, window,
// pacer and count of messages sent, and the message's start up to its
// id's number.
type sender struct {
	c    *Conn
	win  chan struct{}
	pace *pacer
	sent *atomic.Int64
	head string
	// first is the first sequence number; withSeq puts each number in
	// the body too, after the send time.
	first   int
	withSeq bool
}

// sendPaced sends messages through s.c until stop is closed or ctx ends,
// keeping at most cap(s.win) in flight, each in its slot when s.pace is
// set. A body is "t<send time> ", the sequence number and a space when
// s.withSeq, then padding to size bytes.
func sendPaced(ctx context.Context, stop <-chan struct{}, s sender, size int) error {
	pad := strings.Repeat("x", size)
	buf := make([]byte, 0, len(s.head)+size+64)
	for seq := s.first; ; seq++ {
		var slot time.Time
		if s.pace != nil {
			var ok bool
			if slot, ok = s.pace.wait(ctx, stop); !ok {
				return nil
			}
		}
		select {
		case <-stop:
			return nil
		case <-ctx.Done():
			return nil
		case s.win <- struct{}{}:
		}
		buf = append(buf[:0], s.head...)
		buf = strconv.AppendInt(buf, int64(seq), 10)
		buf = append(buf, "'><body>t"...)
		start := len(buf)
		sentAt := time.Since(epoch)
		if !slot.IsZero() {
			sentAt = slot.Sub(epoch)
		}
		buf = strconv.AppendInt(buf, int64(sentAt), 10)
		buf = append(buf, ' ')
		if s.withSeq {
			buf = strconv.AppendInt(buf, int64(seq), 10)
			buf = append(buf, ' ')
		}
		buf = append(buf, pad[min(len(buf)-start+1, size):]...)
		buf = append(buf, "</body></message>"...)
		s.sent.Add(1)
		if err := s.c.write(buf); err != nil {
			s.sent.Add(-1)
			<-s.win
			return err
		}
	}
}

// receive runs on the client's reader for every element it gets.
func (cl *msgClient) receive(el *etree.Element) {
	if xmpp.KindOf(el) != xmpp.KindMessage {
		return // presence, our own and the server's
	}
	if el.SelectAttrValue("type", "") == "error" {
		// One of our messages came back: it is not in flight any more.
		cl.bounced.Add(1)
		select {
		case <-cl.win:
		default:
			cl.strays.Add(1)
		}
		return
	}
	if from, err := xmpp.Parse(el.SelectAttrValue("from", "")); err != nil || from != cl.peer.c.JID {
		// Not from this run's peer: offline messages of an earlier run
		// that was cut short, or anyone else's.
		cl.foreign.Add(1)
		return
	}
	body := el.SelectElement("body")
	if body == nil {
		return // a chat state or a receipt: not ours to count
	}
	sentAt, err := sendTime(body.Text())
	if err != nil {
		cl.strays.Add(1)
		return
	}
	select {
	case <-cl.peer.win:
	default:
		// More arrived than the peer has in flight: a duplicate.
		cl.strays.Add(1)
		return
	}
	cl.lat = append(cl.lat, time.Since(epoch)-sentAt)
	cl.delivered.Add(1)
}

// sendTime reads the send time at the start of a message body.
func sendTime(body string) (time.Duration, error) {
	rest, ok := strings.CutPrefix(body, "t")
	if !ok {
		return 0, errors.New("not a parley-load message")
	}
	if i := strings.IndexByte(rest, ' '); i >= 0 {
		rest = rest[:i]
	}
	ns, err := strconv.ParseInt(rest, 10, 64)
	return time.Duration(ns), err
}

func (r *msgResult) summary(w io.Writer) {
	paced := ""
	if r.Rate > 0 {
		paced = fmt.Sprintf(", paced at %g msgs/s (%d slots skipped)", r.Rate, r.Skipped)
	}
	fmt.Fprintf(w, "msg: %d pairs, window %d, %d-byte bodies%s: %d sent, %d delivered in %.2f s (%.2f s of it draining): %.0f msgs/s\n",
		r.Pairs, r.Window, r.BodyBytes, paced, r.Sent, r.Delivered, r.WindowS, r.DrainS, r.MsgsPerS)
	fmt.Fprintf(w, "  latency: %s\n", r.Latency)
	fmt.Fprintf(w, "  lost: %d (bounced %d), dropped streams: %d\n", r.Lost, r.Bounced, r.DroppedStream)
	r.cpuLine(w, r.Delivered, "msgs")
	if r.RSSPeakKiB > 0 {
		fmt.Fprintf(w, "  server RSS: %d KiB when the sending started, peak %d KiB (+%d KiB)\n",
			r.RSSStartKiB, r.RSSPeakKiB, r.RSSPeakKiB-r.RSSStartKiB)
	}
	if r.Stall != nil {
		r.Stall.summary(w, "stalled:")
	}
	if r.Hang != nil {
		r.Hang.summary(w, "hung bot")
	}
}

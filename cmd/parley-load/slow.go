package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// The slow consumers of a msg run (-stalled, -hang-domain): load beside
// the measured pairs that a server must contain, so that the pairs'
// throughput with them can be compared with a run without them. A
// stalled client logs in and never reads its socket while other clients
// send it messages at a steady rate; a hung bot is an http_component host
// whose webhook, served by this tool, accepts connections and never
// answers, while other clients send to the bot at a steady rate. The
// errors those senders get back (resource-constraint when a queue is
// full, remote-server-timeout when the webhook times out) are what a
// server should answer: they are counted, not failures.

// Stanza shapes of -stall-shape.
const (
	// shapeBody is one chat message with a body of the given size.
	shapeBody = "body"
	// shapeChildren is a message whose size is in empty child elements,
	// four bytes each on the wire and a hundred or more each once parsed:
	// the shape that amplifies memory when a queue counts stanzas or
	// bytes on the wire.
	shapeChildren = "children"
)

// hungBot is the local part of the hung bot's JID on -hang-domain.
const hungBot = "hung"

// stalledRcvBuf is the socket receive buffer of a stalled client: small
// and fixed, so that the kernel's buffers on both ends (which are not the
// server's memory, and which grow to megabytes on loopback for a socket
// that was once read) hold little, and what the client does not take
// waits in the server's own queue.
const stalledRcvBuf = 4096

// keepaliveEvery is how often a stalled client writes a whitespace
// keepalive, which is how it learns that the server has ended its
// stream: it reads nothing.
const keepaliveEvery = time.Second

// sideResult is what one kind of slow consumer and its senders did.
type sideResult struct {
	// Target is whom the senders sent to: the stalled clients' accounts
	// or the hung bot's JID.
	Target  string  `json:"target"`
	Senders int     `json:"senders"`
	Rate    float64 `json:"rate_per_s"`
	Bytes   int     `json:"bytes"`
	Shape   string  `json:"shape"`
	Sent    int64   `json:"sent"`
	// Skipped counts send slots a sender missed (see msgResult.Skipped).
	Skipped int64 `json:"rate_skipped"`
	// Errors counts the error replies by their condition: for a stalled
	// client resource-constraint, for a hung bot resource-constraint and
	// remote-server-timeout. They are the expected outcome.
	Errors map[string]int64 `json:"errors"`
	// Replies counts other messages back from the target (a hung bot
	// sends none).
	Replies int64 `json:"replies,omitempty"`
	// Unanswered is Sent less the errors and replies: what the server
	// holds for the target, wrote into its socket, or answers later.
	Unanswered int64 `json:"unanswered"`
	// ServerDrops counts the stalled clients' streams the server ended
	// (its write timeout closes a client that does not read); each logged
	// in again to stay stalled.
	ServerDrops int64 `json:"server_drops,omitempty"`
	// LoginFailures counts failed logins again after a drop.
	LoginFailures int64 `json:"login_failures,omitempty"`
	// Connections counts the connections the hung webhook accepted, and
	// RequestBytes what the server wrote on them.
	Connections  int64 `json:"webhook_connections,omitempty"`
	RequestBytes int64 `json:"webhook_request_bytes,omitempty"`
}

// slowLoad is the slow consumers of one run and their senders.
type slowLoad struct {
	o     *options
	pairs int // the first account after the measured pairs'

	stall *sideLoad // nil without -stalled
	hang  *sideLoad // nil without -hang-domain

	stalled []*stalledClient
	hook    *hangingWebhook
}

// sideLoad is the senders to one kind of slow consumer.
type sideLoad struct {
	res   sideResult
	first int // the account of the first sender
	size  int
	shape string
	// to returns the escaped JID the n-th message of sender i goes to,
	// "" when there is none now (a stalled client logging in again).
	to func(i, n int) string

	sent    atomic.Int64
	replies atomic.Int64
	mu      sync.Mutex
	errs    map[string]int64
	skipped atomic.Int64
}

// newSlowLoad returns the slow consumers o asks for, nil when none. The
// accounts after the 2×pairs measured ones are, in order: the senders to
// the stalled clients, the senders to the hung bot, the stalled clients.
func newSlowLoad(o *options) *slowLoad {
	if o.Stalled == 0 && o.HangDomain == "" {
		return nil
	}
	s := &slowLoad{o: o, pairs: 2 * o.Pairs}
	next := s.pairs
	if o.Stalled > 0 {
		s.stall = &sideLoad{
			first: next, size: o.StallSize, shape: o.StallShape, errs: map[string]int64{},
			res: sideResult{
				Target:  fmt.Sprintf("%d stalled client(s) from %s@%s", o.Stalled, o.user(s.pairs+o.StallSenders+s.hangSenders()), o.Domain),
				Senders: o.StallSenders, Rate: o.StallRate, Bytes: o.StallSize, Shape: o.StallShape,
			},
		}
		next += o.StallSenders
		s.stall.to = func(i, n int) string {
			if p := s.stalled[(i+n)%len(s.stalled)].jid.Load(); p != nil {
				return *p
			}
			return ""
		}
	}
	if o.HangDomain != "" {
		bot := escape(hungBot + "@" + o.HangDomain)
		s.hang = &sideLoad{
			first: next, size: o.HangSize, shape: shapeBody, errs: map[string]int64{},
			res: sideResult{
				Target:  hungBot + "@" + o.HangDomain,
				Senders: o.HangSenders, Rate: o.HangRate, Bytes: o.HangSize, Shape: shapeBody,
			},
			to: func(int, int) string { return bot },
		}
		next += o.HangSenders
	}
	for i := range o.Stalled {
		s.stalled = append(s.stalled, &stalledClient{index: next + i})
	}
	return s
}

func (s *slowLoad) hangSenders() int {
	if s.o.HangDomain == "" {
		return 0
	}
	return s.o.HangSenders
}

// senders is how many sender accounts follow the pairs'.
func (s *slowLoad) senders() int {
	if s == nil {
		return 0
	}
	n := s.hangSenders()
	if s.stall != nil {
		n += s.o.StallSenders
	}
	return n
}

// accounts is how many accounts the run needs beyond the pairs'.
func (s *slowLoad) accounts() int {
	if s == nil {
		return 0
	}
	return s.senders() + len(s.stalled)
}

// side returns the side load account i sends for, nil for a pair's.
func (s *slowLoad) side(i int) *sideLoad {
	if s == nil {
		return nil
	}
	for _, sl := range []*sideLoad{s.stall, s.hang} {
		if sl != nil && i >= sl.first && i < sl.first+sl.res.Senders {
			return sl
		}
	}
	return nil
}

// start serves the hung webhook, before any client logs in.
func (s *slowLoad) start() error {
	if s == nil || s.hang == nil {
		return nil
	}
	h, err := serveHangingWebhook(s.o)
	if err != nil {
		return err
	}
	s.hook = h
	return nil
}

// loginStalled logs the stalled clients in. They start no reader.
func (s *slowLoad) loginStalled(ctx context.Context) error {
	if s == nil {
		return nil
	}
	for _, sc := range s.stalled {
		if err := sc.login(ctx, s.o); err != nil {
			return fmt.Errorf("the stalled client: %w", err)
		}
	}
	return nil
}

// run sends to the slow consumers from the sender connections (by
// account number) and keeps the stalled clients stalled until stop is
// closed; the returned function waits for all of it and returns the
// senders' write errors.
func (s *slowLoad) run(ctx context.Context, conns []*Conn, stop <-chan struct{}) (wait func() (errs int64, first error)) {
	if s == nil {
		return func() (int64, error) { return 0, nil }
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		sendErrs int64
		sendErr  error
	)
	for _, sc := range s.stalled {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc.keep(ctx, s.o, stop)
		}()
	}
	for _, sl := range []*sideLoad{s.stall, s.hang} {
		if sl == nil {
			continue
		}
		for i, p := range newPacers(sl.res.Senders, sl.res.Rate, time.Now()) {
			c := conns[sl.first+i]
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := sl.send(ctx, stop, c, i, p)
				sl.skipped.Add(p.skipped)
				if err != nil {
					mu.Lock()
					sendErrs++
					if sendErr == nil {
						sendErr = fmt.Errorf("sending to %s as %s: %w", sl.res.Target, c.JID, err)
					}
					mu.Unlock()
				}
			}()
		}
	}
	return func() (int64, error) {
		wg.Wait()
		return sendErrs, sendErr
	}
}

// close ends the stalled clients' streams and stops the hung webhook.
func (s *slowLoad) close() {
	if s == nil {
		return
	}
	for _, sc := range s.stalled {
		sc.close()
	}
	if s.hook != nil {
		s.hook.Close()
	}
}

// results fills in what the slow consumers did, once everything is
// closed.
func (s *slowLoad) results() (stall, hang *sideResult) {
	if s == nil {
		return nil, nil
	}
	if s.stall != nil {
		stall = s.stall.result()
		for _, sc := range s.stalled {
			stall.ServerDrops += sc.drops.Load()
			stall.LoginFailures += sc.loginFailures.Load()
		}
	}
	if s.hang != nil {
		hang = s.hang.result()
		hang.Connections = s.hook.connections.Load()
		hang.RequestBytes = s.hook.bytes.Load()
	}
	return stall, hang
}

func (sl *sideLoad) result() *sideResult {
	r := sl.res
	r.Sent = sl.sent.Load()
	r.Replies = sl.replies.Load()
	r.Skipped = sl.skipped.Load()
	sl.mu.Lock()
	r.Errors = maps.Clone(sl.errs)
	sl.mu.Unlock()
	r.Unanswered = r.Sent - r.Replies
	for _, n := range r.Errors {
		r.Unanswered -= n
	}
	return &r
}

// send sends one sender's messages, paced by p, until stop is closed.
func (sl *sideLoad) send(ctx context.Context, stop <-chan struct{}, c *Conn, i int, p *pacer) error {
	var buf []byte
	for n := 0; ; n++ {
		if _, ok := p.wait(ctx, stop); !ok {
			return nil
		}
		to := sl.to(i, n)
		if to == "" {
			continue // the stalled client is logging in again
		}
		buf = appendSideMessage(buf[:0], to, "s"+strconv.Itoa(n), sl.size, sl.shape)
		if err := c.write(buf); err != nil {
			return err
		}
		sl.sent.Add(1)
	}
}

// appendSideMessage appends a chat message to to with id: a body of size
// bytes, or with shapeChildren a short body and size bytes of empty
// elements in one payload.
func appendSideMessage(buf []byte, to, id string, size int, shape string) []byte {
	buf = append(buf, "<message type='chat' to='"...)
	buf = append(buf, to...)
	buf = append(buf, "' id='"...)
	buf = append(buf, id...)
	buf = append(buf, "'><body>"...)
	if shape == shapeChildren {
		buf = append(buf, "slow consumer</body><x xmlns='urn:parley-load:pad'>"...)
		for range size / len("<a/>") {
			buf = append(buf, "<a/>"...)
		}
		buf = append(buf, "</x></message>"...)
		return buf
	}
	for range size {
		buf = append(buf, 'x')
	}
	return append(buf, "</body></message>"...)
}

// receive runs on a sender's reader: it counts the error replies by
// condition and the other messages from the target.
func (sl *sideLoad) receive(el *etree.Element) {
	if xmpp.KindOf(el) != xmpp.KindMessage {
		return
	}
	if el.SelectAttrValue("type", "") != "error" {
		if el.SelectElement("body") != nil {
			sl.replies.Add(1)
		}
		return
	}
	cond := "unknown"
	if se := xmpp.ParseStanzaError(el); se != nil && se.Condition != "" {
		cond = string(se.Condition)
	}
	sl.mu.Lock()
	sl.errs[cond]++
	sl.mu.Unlock()
}

// stalledClient is a client that never reads its stream. It writes a
// whitespace keepalive every second, which fails once the server has
// closed the connection; then it logs in again, to stay a stalled client
// for the whole run.
type stalledClient struct {
	index int
	// jid is the escaped full JID of the current stream, nil between
	// streams.
	jid atomic.Pointer[string]

	mu sync.Mutex // guards c against close
	c  *Conn

	drops         atomic.Int64
	loginFailures atomic.Int64
}

// login logs the client in, without a reader.
func (sc *stalledClient) login(ctx context.Context, o *options) error {
	c, err := loginBuf(ctx, o, sc.index, o.Presence, stalledRcvBuf)
	if err != nil {
		return err
	}
	sc.mu.Lock()
	sc.c = c
	sc.mu.Unlock()
	jid := escape(c.JID.String())
	sc.jid.Store(&jid)
	return nil
}

// keep writes keepalives until stop is closed, and logs in again when the
// server has ended the stream.
func (sc *stalledClient) keep(ctx context.Context, o *options, stop <-chan struct{}) {
	t := time.NewTicker(keepaliveEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sc.mu.Lock()
		c := sc.c
		sc.mu.Unlock()
		if c != nil {
			if err := c.send(" "); err == nil {
				continue
			}
			// The first write after the server closed may still succeed
			// (it only draws a reset); this one did not.
			sc.drops.Add(1)
			o.progressf("the server ended the stalled stream of %s; logging in again", c.JID)
			sc.jid.Store(nil)
			sc.mu.Lock()
			sc.c = nil
			sc.mu.Unlock()
			c.stop()
			c.nc.Close()
		}
		if err := sc.login(ctx, o); err != nil {
			sc.loginFailures.Add(1)
			o.progressf("the stalled client %s: %v", o.user(sc.index), err)
		}
	}
}

// close ends the stream: what the server still holds for it goes where a
// gone client's messages go.
func (sc *stalledClient) close() {
	sc.mu.Lock()
	c := sc.c
	sc.c = nil
	sc.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// hangingWebhook accepts connections and reads what comes, and never
// answers: a bot that hangs.
type hangingWebhook struct {
	ln          net.Listener
	connections atomic.Int64
	bytes       atomic.Int64

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// serveHangingWebhook listens on o.hangHook or o.HangAddr.
func serveHangingWebhook(o *options) (*hangingWebhook, error) {
	ln := o.hangHook
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", o.HangAddr); err != nil {
			return nil, fmt.Errorf("the hung webhook: %w", err)
		}
	}
	h := &hangingWebhook{ln: ln, conns: map[net.Conn]struct{}{}}
	h.wg.Add(1)
	go h.accept()
	return h, nil
}

func (h *hangingWebhook) accept() {
	defer h.wg.Done()
	for {
		c, err := h.ln.Accept()
		if err != nil {
			return
		}
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			c.Close()
			return
		}
		h.conns[c] = struct{}{}
		h.wg.Add(1)
		h.mu.Unlock()
		h.connections.Add(1)
		go func() {
			defer h.wg.Done()
			// Read, so that the server's requests are written; answer
			// nothing.
			n, _ := io.Copy(io.Discard, c)
			h.bytes.Add(n)
			c.Close()
		}()
	}
}

// Close stops listening, closes every connection and waits for them.
func (h *hangingWebhook) Close() {
	h.mu.Lock()
	h.closed = true
	for c := range h.conns {
		c.Close()
	}
	h.mu.Unlock()
	h.ln.Close()
	h.wg.Wait()
}

// validateSlow checks the slow-consumer flags.
func (o *options) validateSlow() error {
	if o.Stalled < 0 {
		return errors.New("-stalled is negative")
	}
	if (o.Stalled > 0 || o.HangDomain != "") && o.Scenario != "msg" {
		return errors.New("-stalled and -hang-domain are for the msg scenario")
	}
	if o.Stalled > 0 {
		if o.StallSenders < 1 {
			return errors.New("-stall-senders must be at least 1")
		}
		if !(o.StallRate > 0) || o.StallRate > 1e6 {
			return errors.New("-stall-rate must be a positive number of messages per second")
		}
		if o.StallSize < 0 {
			return errors.New("-stall-size is negative")
		}
		if o.StallShape != shapeBody && o.StallShape != shapeChildren {
			return fmt.Errorf("-stall-shape %q: use %s or %s", o.StallShape, shapeBody, shapeChildren)
		}
	}
	if o.HangDomain != "" {
		if _, err := xmpp.Parse(hungBot + "@" + o.HangDomain); err != nil {
			return fmt.Errorf("-hang-domain: %w", err)
		}
		if o.HangSenders < 1 {
			return errors.New("-hang-senders must be at least 1")
		}
		if !(o.HangRate > 0) || o.HangRate > 1e6 {
			return errors.New("-hang-rate must be a positive number of messages per second")
		}
		if o.HangSize < 0 {
			return errors.New("-hang-size is negative")
		}
	}
	return nil
}

// summary writes one line for a side load.
func (r *sideResult) summary(w io.Writer, what string) {
	var errs []string
	for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
		errs = append(errs, fmt.Sprintf("%s %d", k, r.Errors[k]))
	}
	if len(errs) == 0 {
		errs = []string{"none"}
	}
	fmt.Fprintf(w, "  %s %s: %d sender(s) at %g msgs/s of %d bytes (%s): %d sent; errors back (expected): %s; unanswered %d",
		what, r.Target, r.Senders, r.Rate, r.Bytes, r.Shape, r.Sent, strings.Join(errs, ", "), r.Unanswered)
	if r.Replies > 0 {
		fmt.Fprintf(w, "; replies %d", r.Replies)
	}
	if r.Connections > 0 {
		fmt.Fprintf(w, "; webhook connections %d (%d bytes of requests)", r.Connections, r.RequestBytes)
	}
	if r.ServerDrops > 0 || r.LoginFailures > 0 {
		fmt.Fprintf(w, "; the server ended the stalled stream %d time(s) (%d logins again failed)", r.ServerDrops, r.LoginFailures)
	}
	fmt.Fprintln(w)
}

// rssSampler reads a process's resident memory every interval and keeps
// the highest figure: the peak of a run, which the two ends miss.
type rssSampler struct {
	pid        int
	start      int64
	peak       atomic.Int64
	stopCh     chan struct{}
	done       chan struct{}
	sampleErrs atomic.Int64
}

// startRSS reads pid's RSS now and then every interval until stop.
func startRSS(pid int, every time.Duration) (*rssSampler, error) {
	rss, err := processRSS(pid)
	if err != nil {
		return nil, fmt.Errorf("the server's memory: %w", err)
	}
	s := &rssSampler{pid: pid, start: rss, stopCh: make(chan struct{}), done: make(chan struct{})}
	s.peak.Store(rss)
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stopCh:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s, nil
}

func (s *rssSampler) sample() {
	rss, err := processRSS(s.pid)
	if err != nil {
		s.sampleErrs.Add(1)
		return
	}
	for {
		p := s.peak.Load()
		if rss <= p || s.peak.CompareAndSwap(p, rss) {
			return
		}
	}
}

// stop takes a last sample and returns the RSS at the start and the peak,
// in KiB.
func (s *rssSampler) stop() (start, peak int64, err error) {
	close(s.stopCh)
	<-s.done
	s.sample()
	if n := s.sampleErrs.Load(); n > 0 {
		err = fmt.Errorf("the server's memory: %d samples failed", n)
	}
	return s.start, s.peak.Load(), err
}

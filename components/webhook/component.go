package webhook

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/parley-im/parley/internal/ratelog"
	"github.com/parley-im/parley/xmpp"
)

// Router is what the component needs of the server: somewhere to send the
// stanzas it answers with.
type Router interface {
	Route(st *xmpp.Stanza)
}

// Config is one http_component host. Zero values take the defaults named
// on each field.
type Config struct {
	// Domain is the bot domain: every JID under it is a bot.
	Domain string
	// PostURL is the webhook.
	PostURL string
	// PostMessages, PostPresence and PostIQ choose what is posted; what is
	// not posted is answered by the component itself.
	PostMessages, PostPresence, PostIQ bool
	// Secret, when set, signs every request with the Standard Webhooks
	// headers. A secret written "whsec_<base64>" is base64-decoded to
	// its key bytes, as Standard Webhooks libraries do; any other string
	// is used as it is.
	Secret string
	// Timeout bounds one request; default 10s.
	Timeout time.Duration
	// Concurrency is how many requests may be in flight; default 16.
	Concurrency int
	// Queue is how many stanzas may wait, besides the ones being posted;
	// default 1000.
	Queue int
	// QueueBytes bounds the memory the stanzas waiting or being posted
	// hold (as estimated by stanzaCost); default 16 MiB. A stanza that
	// finds the queue empty is always taken, however large.
	QueueBytes int64
	// SenderQueue is how many of the waiting stanzas may come from one
	// sender (one bare JID, all its resources and conversations);
	// default max(Queue/8, 4), at most Queue. Past it only that sender
	// is refused, so one user cannot fill the queue for every other.
	SenderQueue int
	// SenderQueueBytes is what one sender's stanzas, waiting or being
	// posted, may hold; default QueueBytes/8. A sender with nothing
	// waiting or in flight always has one stanza taken.
	SenderQueueBytes int64
	// FollowRedirects follows a webhook's 301, 302, 307 and 308
	// redirects to the same origin (scheme, host and port), at most
	// maxRedirects of them, with the same POST; a redirect to another
	// origin is refused, so the signature and the configured headers
	// never leave the webhook's origin. Off (the default), a redirect is
	// a failure.
	FollowRedirects bool
	// Retries is how many times a failed request is tried again.
	Retries int
	// Headers are added to every request.
	Headers map[string]string
	// TypingDelay is how long the webhook may take before the sender sees
	// the bot typing; default 1s.
	TypingDelay time.Duration
	// Router takes the replies. Required.
	Router Router
	// Client, when set, makes the requests with net/http. By default the
	// component uses a lean HTTP/1.1 client of its own (net/http when the
	// environment sets a proxy for PostURL).
	Client *http.Client
	// TLSConfig is the TLS configuration of the component's own client
	// for an https PostURL; nil: the system's roots. Ignored when Client
	// is set.
	TLSConfig *tls.Config
	// Logger receives the component's logs; default slog.Default().
	Logger *slog.Logger

	// Rooms are group chats (bare JIDs) the bot joins when JoinRooms is
	// called, as Nick, from bot@Domain/rooms (see rooms.go).
	Rooms []string
	// Nick is the bot's nick in rooms; default Domain's first label.
	Nick string
	// ReplyAll posts every group-chat message of the rooms; false (the
	// default) posts only those that mention the bot.
	ReplyAll bool
	// JoinOnInvite makes the bot join the rooms it is invited to.
	JoinOnInvite bool
	// RejoinAfter is the first wait before a room is joined again after
	// a failed join or a kick; it doubles with each failure in a row up
	// to 5 minutes. Default 2s.
	RejoinAfter time.Duration
	// BotDomains are the server's bot domains (this one may be among
	// them): messages their bots send in a room are never posted.
	BotDomains []string
}

// Component is a bot domain behind a webhook. HandleStanza never blocks:
// stanzas wait in a bounded queue, and a pool of Concurrency workers posts
// them, keeping the order within each conversation (one sender to one bot
// JID) while different conversations run in parallel.
type Component struct {
	cfg     Config
	postURL *url.URL
	domain  xmpp.JID
	key     []byte // signing key, nil without a secret
	log     *slog.Logger
	client  *http.Client // net/http: when lean is nil; it follows no redirect itself
	lean    *leanClient  // the component's own client, nil for net/http
	ownHTTP bool         // client is the component's own, closed with it
	metrics *Metrics
	opts    *Options // the host's options, when the server built it (newHost)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards convs, senders, queued, held and inflight. It is never
	// held during a request or while routing.
	mu       sync.Mutex
	convs    map[convKey]*conv
	senders  map[xmpp.JID]*sender // by bare JID, while it has stanzas waiting or in flight
	queued   int                  // stanzas waiting, at most Queue
	held     int64                // stanzaCost of the stanzas waiting or in flight, at most QueueBytes
	inflight int                  // stanzas being posted, at most Concurrency
	closed   bool
	ready    chan *conv // conversations with work; never blocks (see enqueue)
	// senderInflight is how many requests one sender may have in
	// flight: half the workers (at least one), so that a sender with
	// many conversations and a hanging webhook leaves workers to the
	// others.
	senderInflight int

	refusals ratelog.Limiter

	// rooms are the group chats the bot is in; nil when it has none
	// and joins none on invitation.
	rooms *roomBots
}

// sender is what one bare JID has in the queue: its share is checked
// when a stanza comes, and its requests in flight when a worker takes
// one of its conversations.
type sender struct {
	queued   int   // stanzas waiting
	held     int64 // stanzaCost of those waiting or in flight
	inflight int   // stanzas being posted
	// parked are conversations with work that wait for one of the
	// sender's requests to end: they are in neither ready nor a worker.
	parked []*conv
}

// convKey identifies a conversation: one sender to one bot JID.
type convKey struct {
	from xmpp.JID
	to   xmpp.JID
}

// conv is a conversation's waiting stanzas. It exists while it has work;
// it is in ready, parked with its sender, or held by exactly one worker,
// never two of these, so its stanzas are posted one at a time, in order.
type conv struct {
	key     convKey
	pending []waiting
}

// waiting is a stanza in the queue, with its stanzaCost, and whether it
// comes from a room the bot is in.
type waiting struct {
	st     *xmpp.Stanza
	cost   int64
	inRoom bool
}

// New builds the component and starts its workers.
func New(cfg Config) (*Component, error) {
	domain, err := xmpp.Parse(cfg.Domain)
	if err != nil || !domain.IsBare() || domain.Local() != "" {
		return nil, fmt.Errorf("webhook %s: not a domain", cfg.Domain)
	}
	if cfg.Router == nil {
		return nil, fmt.Errorf("webhook %s: no router", cfg.Domain)
	}
	postURL, err := url.Parse(cfg.PostURL)
	if err != nil {
		// Package conf refuses such a URL; net/http says it is not
		// valid at the first request, as it always has here.
		postURL = &url.URL{Opaque: cfg.PostURL}
	}
	if err := checkHeaders(cfg.Headers); err != nil {
		return nil, fmt.Errorf("webhook %s: %w", cfg.Domain, err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = defaultConcurrency
	}
	if cfg.Queue <= 0 {
		cfg.Queue = defaultQueue
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = defaultQueueBytes
	}
	if cfg.SenderQueue <= 0 {
		cfg.SenderQueue = defaultSenderQueue(cfg.Queue)
	}
	cfg.SenderQueue = min(cfg.SenderQueue, cfg.Queue)
	if cfg.SenderQueueBytes <= 0 {
		cfg.SenderQueueBytes = defaultSenderQueueBytes(cfg.QueueBytes)
	}
	cfg.SenderQueueBytes = min(cfg.SenderQueueBytes, cfg.QueueBytes)
	if cfg.TypingDelay <= 0 {
		cfg.TypingDelay = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Component{
		cfg:     cfg,
		postURL: postURL,
		domain:  domain,
		key:     signingKey(cfg.Secret),
		log:     cfg.Logger.With("component", "webhook", "host", cfg.Domain),
		client:  cfg.Client,
		metrics: newMetrics(),
		convs:   make(map[convKey]*conv),
		senders: make(map[xmpp.JID]*sender),
		ready:   make(chan *conv, cfg.Queue+cfg.Concurrency),

		senderInflight: max(cfg.Concurrency/2, 1),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if len(cfg.Rooms) > 0 || cfg.JoinOnInvite {
		if c.rooms, err = newRoomBots(c, cfg); err != nil {
			c.cancel()
			return nil, fmt.Errorf("webhook %s: %w", cfg.Domain, err)
		}
	}
	if c.client == nil {
		c.lean = newLeanClient(cfg.PostURL, leanOptions{
			ctx:         c.ctx,
			headers:     cfg.Headers,
			signs:       c.key != nil,
			tlsConf:     cfg.TLSConfig,
			dialTimeout: cfg.Timeout,
			maxConns:    cfg.Concurrency,
		})
	}
	if c.client != nil {
		// A copy, so as not to change the caller's: redirects are
		// followed by postHTTP, or not at all.
		cl := *c.client
		cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		c.client = &cl
	} else {
		// net/http for what the lean client leaves to it.
		c.ownHTTP = true
		c.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}, Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        cfg.Concurrency,
			MaxIdleConnsPerHost: cfg.Concurrency,
			IdleConnTimeout:     leanIdleTimeout,
			TLSHandshakeTimeout: cfg.Timeout,
			TLSClientConfig:     cfg.TLSConfig,
			ForceAttemptHTTP2:   true,
		}}
	}
	for range cfg.Concurrency {
		c.wg.Add(1)
		go c.work()
	}
	return c, nil
}

// Domain returns the bot domain.
func (c *Component) Domain() string { return c.domain.Domain() }

// Metrics returns the component's counters.
func (c *Component) Metrics() *Metrics { return c.metrics }

// HandleStanza takes a stanza addressed to the bot domain. Errors are
// never posted (no bot loops); what is not posted is answered here.
func (c *Component) HandleStanza(st *xmpp.Stanza) {
	if c.rooms != nil && c.rooms.handle(st) {
		return
	}
	if st.IsError() {
		return
	}
	switch st.Kind {
	case xmpp.KindIQ:
		if !c.cfg.PostIQ {
			c.answerIQ(st)
			return
		}
		if st.Type == "result" {
			// Answers to the bot's own iqs are posted too, but never
			// answered.
			break
		}
	case xmpp.KindPresence:
		if !c.cfg.PostPresence {
			c.answerPresence(st)
			return
		}
	case xmpp.KindMessage:
		if !c.cfg.PostMessages {
			return
		}
	}
	c.enqueue(st, c.rooms != nil && c.rooms.tracks(st.From.Bare()))
}

// enqueue puts st at the end of its conversation, or bounces it when the
// queue, or its sender's share of it, is full. inRoom says st comes from
// a room the bot is in: its post names the room and the nick. A room's
// group-chat messages are one conversation, posted in the room's order.
func (c *Component) enqueue(st *xmpp.Stanza, inRoom bool) {
	key := convKey{from: st.From, to: st.To.Bare()}
	if inRoom && st.Type == "groupchat" {
		key.from = st.From.Bare()
	}
	who := st.From.Bare()
	cost := stanzaCost(st)
	c.mu.Lock()
	s := c.senders[who]
	if s == nil {
		s = &sender{}
	}
	cause := ""
	switch {
	case c.closed:
		cause = causeShutdown
	case (s.queued >= c.cfg.SenderQueue && c.cfg.SenderQueue < c.cfg.Queue) ||
		(s.held > 0 && s.held+cost > c.cfg.SenderQueueBytes && c.cfg.SenderQueueBytes < c.cfg.QueueBytes):
		// Before the totals: a sender past its share is told so,
		// whether or not the queue is full too. A share as large as
		// the queue is none: the queue is full then.
		cause = causeSenderShare
	case c.queued >= c.cfg.Queue:
		cause = causeQueueFull
	case c.held > 0 && c.held+cost > c.cfg.QueueBytes:
		cause = causeQueueBytes
	}
	if cause != "" {
		sq, sh := s.queued, s.held
		c.mu.Unlock()
		c.refuse(st, cause, sq, sh)
		return
	}
	if s.queued == 0 && s.inflight == 0 {
		c.senders[who] = s
	}
	cv := c.convs[key]
	fresh := cv == nil
	if fresh {
		cv = &conv{key: key}
		c.convs[key] = cv
	}
	cv.pending = append(cv.pending, waiting{st, cost, inRoom})
	c.queued++
	c.held += cost
	s.queued++
	s.held += cost
	c.metrics.queued.Store(int64(c.queued))
	c.metrics.held.Store(c.held)
	if fresh {
		// A conversation exists only while it has a stanza waiting or in
		// flight, so there are at most Queue+Concurrency of them, the
		// capacity of ready: this send cannot block.
		c.ready <- cv
	}
	c.mu.Unlock()
}

// refuse bounces a stanza the queue did not take, counts it by cause, and
// logs the cause at most once a minute.
func (c *Component) refuse(st *xmpp.Stanza, cause string, senderQueued int, senderHeld int64) {
	c.metrics.fail(cause)
	var text string
	switch cause {
	case causeShutdown:
		text = "the bot is shutting down"
	case causeSenderShare:
		text = fmt.Sprintf("you have too much waiting for the bots of %s (%d stanzas, %d KiB; the limit is %d stanzas, %d KiB); wait for the bot to answer",
			c.cfg.Domain, senderQueued, (senderHeld+1023)/1024, c.cfg.SenderQueue, (c.cfg.SenderQueueBytes+1023)/1024)
	case causeQueueBytes:
		text = "the bot has too much to do (its queue is full of large stanzas); try again later"
	default:
		text = "the bot has too much to do; try again later"
	}
	if ok, skipped := c.refusals.Allow(cause, time.Now()); ok {
		c.log.Warn("webhook: stanzas refused", "cause", cause, "refused", skipped+1, "last_from", st.From.Bare().String(),
			"queue", c.cfg.Queue, "queue_bytes", c.cfg.QueueBytes, "sender_queue", c.cfg.SenderQueue, "sender_queue_bytes", c.cfg.SenderQueueBytes)
	}
	c.bounce(st, xmpp.NewStanzaError(xmpp.ResourceConstraint, text))
}

// work is one worker: it takes a conversation, posts its oldest stanza,
// and puts the conversation back at the end of the line if it has more.
// A conversation whose sender has its share of requests in flight is
// parked with the sender until one of them ends.
func (c *Component) work() {
	defer c.wg.Done()
	w := c.newWorker()
	for {
		select {
		case <-c.ctx.Done():
			return
		case cv := <-c.ready:
			who := cv.key.from.Bare()
			c.mu.Lock()
			s := c.senders[who]
			if s.inflight >= c.senderInflight {
				s.parked = append(s.parked, cv)
				c.mu.Unlock()
				continue
			}
			st, cost, inRoom := cv.pending[0].st, cv.pending[0].cost, cv.pending[0].inRoom
			cv.pending[0] = waiting{}
			cv.pending = cv.pending[1:]
			c.queued--
			c.inflight++
			s.queued--
			s.inflight++
			c.metrics.queued.Store(int64(c.queued))
			c.mu.Unlock()

			c.process(w, st, inRoom)

			c.mu.Lock()
			c.inflight--
			c.held -= cost
			s.inflight--
			s.held -= cost
			c.metrics.held.Store(c.held)
			if len(cv.pending) == 0 {
				delete(c.convs, cv.key)
			} else {
				c.ready <- cv
			}
			if len(s.parked) > 0 {
				// A conversation of the sender's goes back in line
				// for the request that ended.
				c.ready <- s.parked[0]
				s.parked[0] = nil
				s.parked = s.parked[1:]
			}
			if s.queued == 0 && s.inflight == 0 {
				delete(c.senders, who)
			}
			c.mu.Unlock()
		}
	}
}

// Close refuses new stanzas, lets the queue drain until ctx ends, then
// stops the workers (cancelling requests in flight) and answers every
// stanza still waiting with an error, so no iq is left unanswered.
func (c *Component) Close(ctx context.Context) error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
drain:
	for c.depth() > 0 {
		select {
		case <-ctx.Done():
			break drain
		case <-tick.C:
		}
	}
	if c.rooms != nil {
		// After the drain, so that the last answers still reach the
		// rooms; before the workers stop, which stops the join loop.
		c.rooms.leaveAll()
	}
	c.cancel()
	c.wg.Wait()
	if c.lean != nil {
		c.lean.close()
	}
	if c.ownHTTP {
		c.client.CloseIdleConnections()
	}
	c.mu.Lock()
	var left []*xmpp.Stanza
	for _, cv := range c.convs {
		for _, p := range cv.pending {
			left = append(left, p.st)
		}
	}
	c.convs = map[convKey]*conv{}
	c.senders = map[xmpp.JID]*sender{}
	c.queued = 0
	c.held = 0
	c.metrics.queued.Store(0)
	c.metrics.held.Store(0)
	c.mu.Unlock()
	for _, st := range left {
		c.bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, "the bot is shutting down"))
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("webhook %s: close: %d stanzas not posted: %w", c.cfg.Domain, len(left), err)
	}
	return nil
}

// depth returns how many stanzas wait or are being posted.
func (c *Component) depth() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queued + c.inflight
}

// route sends a stanza the bot makes.
func (c *Component) route(st *xmpp.Stanza) { c.cfg.Router.Route(st) }

// bounce answers st with an error from the bot JID it was sent to. A
// message or presence from a room the bot is in is never answered with an
// error: a room takes most errors from an occupant for a sign that it is
// gone and removes it (Prosody's rooms and components/muc do, for
// service-unavailable and remote-server-timeout among others), so a
// failing webhook would put the bot out of its rooms. The failure is counted and logged
// all the same.
func (c *Component) bounce(st *xmpp.Stanza, e *xmpp.StanzaError) {
	if st.IsError() || (st.Kind == xmpp.KindIQ && st.Type == "result") {
		return
	}
	if st.Kind != xmpp.KindIQ && c.rooms != nil && c.rooms.tracks(st.From.Bare()) {
		return
	}
	if st.Kind == xmpp.KindPresence && (st.Type == "unavailable" || st.Type == "probe") {
		return
	}
	c.route(st.ErrorReply(e))
}

// stanzaCost is what the queue's byte bounds count of a stanza: the
// memory it holds (xmpp.Weight), rather than its size on the wire, since a
// stanza of many empty elements is small on the wire and large in memory.
func stanzaCost(st *xmpp.Stanza) int64 {
	if st.El == nil {
		return 0
	}
	return xmpp.Weight(st.El)
}

package webhook

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

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
}

// Component is a bot domain behind a webhook. HandleStanza never blocks:
// stanzas wait in a bounded queue, and a pool of Concurrency workers posts
// them, keeping the order within each conversation (one sender to one bot
// JID) while different conversations run in parallel.
type Component struct {
	cfg     Config
	domain  xmpp.JID
	key     []byte // signing key, nil without a secret
	log     *slog.Logger
	client  *http.Client // net/http: when lean is nil, and for redirects
	lean    *leanClient  // the component's own client, nil for net/http
	ownHTTP bool         // client is the component's own, closed with it
	metrics *Metrics

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards convs, queued and inflight. It is never held during a
	// request or while routing.
	mu       sync.Mutex
	convs    map[convKey]*conv
	queued   int // stanzas waiting, at most Queue
	inflight int // stanzas being posted, at most Concurrency
	closed   bool
	ready    chan *conv // conversations with work; never blocks (see enqueue)
}

// convKey identifies a conversation: one sender to one bot JID.
type convKey struct {
	from xmpp.JID
	to   xmpp.JID
}

// conv is a conversation's waiting stanzas. It exists while it has work;
// it is in ready or held by exactly one worker, never both, so its
// stanzas are posted one at a time, in order.
type conv struct {
	key     convKey
	pending []*xmpp.Stanza
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
	if err := checkHeaders(cfg.Headers); err != nil {
		return nil, fmt.Errorf("webhook %s: %w", cfg.Domain, err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 1000
	}
	if cfg.TypingDelay <= 0 {
		cfg.TypingDelay = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Component{
		cfg:     cfg,
		domain:  domain,
		key:     signingKey(cfg.Secret),
		log:     cfg.Logger.With("component", "webhook", "host", cfg.Domain),
		client:  cfg.Client,
		metrics: newMetrics(),
		convs:   make(map[convKey]*conv),
		ready:   make(chan *conv, cfg.Queue+cfg.Concurrency),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
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
	if c.client == nil {
		// net/http for what the lean client leaves to it.
		c.ownHTTP = true
		c.client = &http.Client{Transport: &http.Transport{
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
	c.enqueue(st)
}

// enqueue puts st at the end of its conversation, or bounces it when the
// queue is full.
func (c *Component) enqueue(st *xmpp.Stanza) {
	key := convKey{from: st.From, to: st.To.Bare()}
	c.mu.Lock()
	if c.closed || c.queued >= c.cfg.Queue {
		closed := c.closed
		c.mu.Unlock()
		c.metrics.fail(causeQueueFull)
		text := "the bot has too much to do; try again later"
		if closed {
			text = "the bot is shutting down"
		}
		c.bounce(st, xmpp.NewStanzaError(xmpp.ResourceConstraint, text))
		return
	}
	cv := c.convs[key]
	fresh := cv == nil
	if fresh {
		cv = &conv{key: key}
		c.convs[key] = cv
	}
	cv.pending = append(cv.pending, st)
	c.queued++
	c.metrics.queued.Store(int64(c.queued))
	if fresh {
		// A conversation exists only while it has a stanza waiting or in
		// flight, so there are at most Queue+Concurrency of them, the
		// capacity of ready: this send cannot block.
		c.ready <- cv
	}
	c.mu.Unlock()
}

// work is one worker: it takes a conversation, posts its oldest stanza,
// and puts the conversation back at the end of the line if it has more.
func (c *Component) work() {
	defer c.wg.Done()
	w := c.newWorker()
	for {
		select {
		case <-c.ctx.Done():
			return
		case cv := <-c.ready:
			c.mu.Lock()
			st := cv.pending[0]
			cv.pending[0] = nil
			cv.pending = cv.pending[1:]
			c.queued--
			c.inflight++
			c.metrics.queued.Store(int64(c.queued))
			c.mu.Unlock()

			c.process(w, st)

			c.mu.Lock()
			c.inflight--
			if len(cv.pending) == 0 {
				delete(c.convs, cv.key)
			} else {
				c.ready <- cv
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
		left = append(left, cv.pending...)
	}
	c.convs = map[convKey]*conv{}
	c.queued = 0
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

// bounce answers st with an error from the bot JID it was sent to.
func (c *Component) bounce(st *xmpp.Stanza, e *xmpp.StanzaError) {
	if st.IsError() || (st.Kind == xmpp.KindIQ && st.Type == "result") {
		return
	}
	if st.Kind == xmpp.KindPresence && (st.Type == "unavailable" || st.Type == "probe") {
		return
	}
	c.route(st.ErrorReply(e))
}

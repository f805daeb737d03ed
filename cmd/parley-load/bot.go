package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// botResult is the JSON line of the bot scenario.
type botResult struct {
	common
	Clients    int    `json:"clients"`
	Bot        string `json:"bot"`
	RoundTrips int64  `json:"round_trips"`
	// WebhookRequests is how many requests the webhook answered: one per
	// round trip, unless the server retried.
	WebhookRequests int64    `json:"webhook_requests"`
	RoundTripsPerS  float64  `json:"round_trips_per_s"`
	RoundTripsCPUS  *float64 `json:"round_trips_per_server_cpu_s,omitempty"`
	Latency         latency  `json:"latency"`
}

// webhookAnswer is the webhook's reply: the body it was posted.
type webhookAnswer struct {
	Body string `json:"body"`
}

// webhook is the echo bot: it answers every POST with the body of the
// stanza it carries.
type webhook struct {
	requests atomic.Int64
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	var in webhookAnswer // the request has a body field too
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&in); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.requests.Add(1)
	if in.Body == "" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(webhookAnswer{Body: in.Body})
}

// serveWebhook starts the webhook on o.webhook or o.WebhookAddr; the
// returned function stops it.
func serveWebhook(o *options, h http.Handler) (stop func(), err error) {
	ln := o.webhook
	if ln == nil {
		if ln, err = net.Listen("tcp", o.WebhookAddr); err != nil {
			return nil, fmt.Errorf("webhook: %w", err)
		}
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}

// botReply is what came back from the bot: a body, or an error.
type botReply struct {
	body string
	err  error
}

// botClient is one client talking to the bot.
type botClient struct {
	c       *Conn
	replies chan botReply
	lat     []time.Duration
}

// runBot runs the bot scenario: o.N clients each send a chat message to
// the bot and wait for its reply, over and over for o.Duration.
func runBot(ctx context.Context, o *options) report {
	bot := o.BotUser + "@" + o.BotDomain
	r := &botResult{Clients: o.N, Bot: bot}
	if _, err := xmpp.Parse(bot); err != nil {
		r.fail(fmt.Errorf("-bot-user and -bot-domain: %w", err))
		return r
	}
	if err := prepare(ctx, o, o.N); err != nil {
		r.fail(err)
		return r
	}
	hook := &webhook{}
	stopHook, err := serveWebhook(o, hook)
	if err != nil {
		r.fail(err)
		return r
	}
	defer stopHook()

	clients := make([]*botClient, o.N)
	for i := range clients {
		clients[i] = &botClient{replies: make(chan botReply, 1)}
	}
	handle := func(c *Conn, el *etree.Element) { clients[c.Index].receive(el) }
	o.progressf("logging in %d clients", o.N)
	l := loginAll(ctx, o, o.N, o.Presence, true, handle)
	conns := l.conns
	defer func() { closeAll(conns) }()
	if !r.loggedIn(l) {
		return r
	}
	for i, cl := range clients {
		cl.c = l.conns[i]
	}

	o.progressf("talking to %s for %v", bot, o.Duration)
	hooks0 := hook.requests.Load()
	m, err := startMeter(o.PID)
	if err != nil {
		r.fail(err)
		return r
	}
	end := time.Now().Add(o.Duration)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		errs  int64
	)
	to := escape(bot)
	for _, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := cl.talk(ctx, to, end, o.StepTimeout); err != nil {
				mu.Lock()
				errs++
				if first == nil {
					first = fmt.Errorf("%s: %w", cl.c.JID, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		r.fail(context.Cause(ctx))
	}
	r.fail(m.stop(&r.common))
	r.WebhookRequests = hook.requests.Load() - hooks0

	r.countDropped(conns)
	closeAll(conns)
	conns = nil
	var all []time.Duration
	for _, cl := range clients {
		all = append(all, cl.lat...)
	}
	r.RoundTrips = int64(len(all))
	r.Errors = errs + r.DroppedStream
	r.RoundTripsPerS = r.rate(r.RoundTrips)
	r.RoundTripsCPUS = r.perCPU(r.RoundTrips)
	r.Latency = summarize(all)
	r.fail(first)
	return r
}

// talk sends a message and waits for its reply until end. A client stops
// at its first failure: a late reply would be taken for the next one's.
func (cl *botClient) talk(ctx context.Context, to string, end time.Time, timeout time.Duration) error {
	head := "<message type='chat' to='" + to + "' id='b"
	var buf []byte
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for seq := 1; time.Now().Before(end); seq++ {
		body := "rt" + strconv.Itoa(cl.c.Index) + "-" + strconv.Itoa(seq)
		buf = append(buf[:0], head...)
		buf = strconv.AppendInt(buf, int64(seq), 10)
		buf = append(buf, "'><body>"...)
		buf = append(buf, body...)
		buf = append(buf, "</body></message>"...)
		start := time.Now()
		if err := cl.c.write(buf); err != nil {
			return err
		}
		timer.Reset(timeout)
		select {
		case got := <-cl.replies:
			if got.err != nil {
				return got.err
			}
			if got.body != body {
				return fmt.Errorf("the bot answered %q to %q", got.body, body)
			}
			cl.lat = append(cl.lat, time.Since(start))
		case <-timer.C:
			return fmt.Errorf("no reply within %v", timeout)
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// receive runs on the client's reader: replies with a body and errors go
// to the waiting sender; chat states and presence are skipped.
func (cl *botClient) receive(el *etree.Element) {
	if xmpp.KindOf(el) != xmpp.KindMessage {
		return
	}
	var rep botReply
	if el.SelectAttrValue("type", "") == "error" {
		rep.err = errors.New("the bot answered with an error")
		if se := xmpp.ParseStanzaError(el); se != nil {
			rep.err = fmt.Errorf("the bot answered with an error: %w", se)
		}
	} else {
		b := el.SelectElement("body")
		if b == nil {
			return
		}
		rep.body = b.Text()
	}
	select {
	case cl.replies <- rep:
	default:
		// The sender is not waiting: it has given up already.
	}
}

func (r *botResult) summary(w io.Writer) {
	fmt.Fprintf(w, "bot: %d clients talking to %s: %d round trips in %.2f s: %.0f round trips/s (%d webhook requests)\n",
		r.Clients, r.Bot, r.RoundTrips, r.WindowS, r.RoundTripsPerS, r.WebhookRequests)
	fmt.Fprintf(w, "  round trip: %s\n", r.Latency)
	r.cpuLine(w, r.RoundTrips, "round trips")
}

package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/server"
)

// This file makes the package the http_component host type: its options
// (hostconf.go), the component of each host, the send API with its rate
// limits, the bots' metrics, the demo echo webhook and the drain at
// shutdown (Component.Close).

func init() {
	Version = server.Version
	conf.RegisterHostType(HostType, conf.HostType[Options]{Check: checkOptions})
	server.RegisterHostType(HostType, server.HostType{New: newHost, Routes: routes, Metrics: writeMetrics,
		Listen: joinRooms})
}

// joinRooms starts the bots' rooms (Component.JoinRooms) once the server
// starts. It is the type's Listen, the one hook that runs after every
// host is built and before the server routes: a join sent from New could
// meet a router whose host table is still being filled in. It opens no
// listener.
func joinRooms(_ context.Context, _ *conf.Config, hosts map[string]server.Handler) (server.Listener, error) {
	for _, h := range hosts {
		h.(*Component).JoinRooms()
	}
	return noListener{}, nil
}

// noListener is what joinRooms returns: nothing to close, since the
// component leaves its rooms when it drains (Component.Close).
type noListener struct{}

// Addrs returns none.
func (noListener) Addrs() []net.Addr { return nil }

// Close does nothing.
func (noListener) Close() error { return nil }

// botDomains are the http_component hosts of cfg: their bots' messages in
// a room are never posted to another bot of the server.
func botDomains(cfg *conf.Config) []string {
	var out []string
	for _, h := range cfg.Hosts {
		if h.Type == HostType {
			out = append(out, h.Name)
		}
	}
	return out
}

// newHost builds the component of an http_component host.
func newHost(env *server.HostEnv) (server.Handler, error) {
	h := env.Host
	o := OptionsOf(h)
	c, err := New(Config{
		Domain:       h.Name,
		PostURL:      o.PostURL,
		PostMessages: o.Posts("message"),
		PostPresence: o.Posts("presence"),
		PostIQ:       o.Posts("iq"),
		Secret:       o.Secret,
		Timeout:      o.Timeout.Duration,
		Concurrency:  o.Concurrency,
		Queue:        o.Queue,
		Retries:      o.Retries,
		Headers:      o.Headers,
		Router:       env.Router,
		Logger:       env.Log,

		// Issue #17 rows 7 and 10: the queue's byte bound and
		// per-sender share; redirects.
		QueueBytes:       int64(o.QueueBytes),
		SenderQueue:      o.SenderQueue,
		SenderQueueBytes: int64(o.SenderQueueBytes),
		FollowRedirects:  o.FollowRedirects,

		// Issue #14 item 4: the bot in rooms.
		Rooms:        o.Rooms,
		Nick:         o.Nick,
		ReplyAll:     o.ReplyTo == replyAll,
		JoinOnInvite: o.JoinOnInvite,
		RejoinAfter:  o.RejoinAfter.Duration,
		BotDomains:   botDomains(env.Config),
	})
	if err != nil {
		return nil, err
	}
	c.opts = o
	return c, nil
}

// AnswersPresence reports that the component answers presence for its
// bots itself: they are always available (see answerPresence).
func (c *Component) AnswersPresence() bool { return true }

// ComponentOf returns the component of the http_component host of s
// named host.
func ComponentOf(s *server.Server, host string) (*Component, bool) {
	h, ok := s.HostHandler(host)
	if !ok {
		return nil, false
	}
	c, ok := h.(*Component)
	return c, ok
}

// writeMetrics writes the bot hosts' metrics, when there are any.
func writeMetrics(w io.Writer, hosts map[string]server.Handler) {
	if len(hosts) == 0 {
		return
	}
	m := make(map[string]*Metrics, len(hosts))
	for n, h := range hosts {
		m[n] = h.(*Component).Metrics()
	}
	WritePrometheus(w, m)
}

// maxSendBody bounds a send API request, and a request to the demo echo
// webhook.
const maxSendBody = 256 << 10

// causeAPIRate is the refusal cause of a send API request past the
// host's api_rate (parley_http_refused_total).
const causeAPIRate = "api_rate"

// sendAPI serves POST /api/bots/<host>/send: a bot speaks first.
type sendAPI struct {
	http  *server.HTTPAPI
	hosts map[string]*sendHost
}

// sendHost is the send API of one http_component host.
type sendHost struct {
	*Component
	token string
	// tokenSum is the SHA-256 of the api_token: comparing sums keeps the
	// comparison constant-time in the length of the token too.
	tokenSum [sha256.Size]byte
	bucket   *server.RateLimiter
	burst    int
}

// routes adds the send API and the demo echo webhook.
func routes(mux *http.ServeMux, api *server.HTTPAPI, hosts map[string]server.Handler) {
	a := &sendAPI{http: api, hosts: make(map[string]*sendHost, len(hosts))}
	for name, h := range hosts {
		c := h.(*Component)
		a.hosts[name] = &sendHost{
			Component: c,
			token:     c.opts.APIToken,
			tokenSum:  sha256.Sum256([]byte(c.opts.APIToken)),
			bucket:    api.NewRateLimiter(float64(c.opts.APIRate), float64(c.opts.APIBurst)),
			burst:     c.opts.APIBurst,
		}
	}
	api.DeclareRefusal(causeAPIRate)
	mux.HandleFunc("POST /api/bots/{host}/send", a.handleSend)
	mux.HandleFunc("POST /demo/echo", handleEcho)
}

// handleSend is POST /api/bots/<host>/send.
//
// Every refusal that can be decided from the headers is answered before
// the body is read: net/http sends "100 Continue" to a client that asked
// for it only when the handler reads the body, so such a client never
// sends a body that would be refused.
func (a *sendAPI) handleSend(w http.ResponseWriter, r *http.Request) {
	api := a.http
	if api.Throttled(w, r, true) {
		return
	}
	host := strings.ToLower(r.PathValue("host"))
	b, ok := a.hosts[host]
	if !ok || b.token == "" {
		api.JSONError(w, http.StatusNotFound, "no bot host "+host+" with an api_token")
		return
	}
	if !api.TokenMatches(r, &b.tokenSum) {
		api.Fail(r)
		api.Refuse("unauthorized", "send API: wrong or missing token", "host", host, "remote", r.RemoteAddr)
		w.Header().Set("WWW-Authenticate", `Bearer realm="parley"`)
		api.JSONError(w, http.StatusUnauthorized, "send Authorization: Bearer <the host's api_token>")
		return
	}
	if r.ContentLength > maxSendBody {
		api.Refuse("too_large", "send API: body too large", "host", host, "bytes", r.ContentLength)
		api.JSONError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", maxSendBody))
		return
	}
	if wait, ok := b.bucket.Wait(1); !ok {
		a.rateLimited(w, b, host, wait)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSendBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		api.Refuse("too_large", "send API: body too large", "host", host, "bytes", "chunked")
		api.JSONError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", maxSendBody))
		return
	case errors.Is(err, os.ErrDeadlineExceeded):
		api.Refuse("read_timeout", "send API: body not read within read_timeout", "host", host, "remote", r.RemoteAddr)
		api.JSONError(w, http.StatusRequestTimeout, fmt.Sprintf("the body did not arrive within %v (read_timeout)",
			api.ReadTimeout()))
		return
	case err != nil:
		api.JSONError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	replies, err := decodeSendBody(body)
	if err != nil {
		api.JSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(replies) > b.burst {
		api.Refuse("too_large", "send API: more messages than api_burst in one request", "host", host, "messages", len(replies))
		api.JSONError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request carries %d messages; "+
			"this host takes at most %d at once (api_burst): split it", len(replies), b.burst))
		return
	}
	if wait, ok := b.bucket.Take(len(replies)); !ok {
		a.rateLimited(w, b, host, wait)
		return
	}
	if err := b.Send(replies); err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, ErrForbiddenFrom) {
			status = http.StatusForbidden
		}
		api.JSONError(w, status, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]int{"accepted": len(replies)})
}

// rateLimited answers 429: the host's api_rate is used up for wait.
func (a *sendAPI) rateLimited(w http.ResponseWriter, b *sendHost, host string, wait time.Duration) {
	a.http.Refuse(causeAPIRate, "send API: api_rate exceeded", "host", host)
	w.Header().Set("Retry-After", a.http.RetryAfter(wait))
	a.http.JSONError(w, http.StatusTooManyRequests, fmt.Sprintf("%s accepts %g messages a second (api_rate) and %d at once (api_burst); "+
		"try again in %ss", host, b.bucket.Rate(), b.burst, a.http.RetryAfter(wait)))
}

// decodeSendBody reads a send API body: an object or an array of
// objects, with no field a reply does not have.
func decodeSendBody(body []byte) ([]Reply, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, errors.New("the body is empty; send a JSON object or an array of objects")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var replies []Reply
	var err error
	if body[0] == '[' {
		err = dec.Decode(&replies)
	} else {
		var one Reply
		err = dec.Decode(&one)
		replies = []Reply{one}
	}
	if err == nil && dec.More() {
		err = errors.New("data after the JSON value")
	}
	if err != nil {
		return nil, fmt.Errorf("the body is not a reply object or an array of them: %w", err)
	}
	if len(replies) == 0 {
		return nil, errors.New("the array is empty")
	}
	return replies, nil
}

// handleEcho is the demo bot's webhook, served on Parley's own HTTP
// listener (default.toml's echo.localhost): it answers a message's body.
func handleEcho(w http.ResponseWriter, r *http.Request) {
	var req Request
	if err := json.NewDecoder(io.LimitReader(r.Body, maxSendBody)).Decode(&req); err != nil {
		http.Error(w, "not a Parley webhook request", http.StatusBadRequest)
		return
	}
	if req.Kind != "message" || req.Body == "" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(Reply{Body: req.Body})
}

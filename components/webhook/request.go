package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/parley-im/parley/xmpp"
)

// Request is the JSON object posted for each stanza: the seed's fields
// (to, from, kind, stanza, body) plus the stanza's id and type.
type Request struct {
	To     string `json:"to"`
	From   string `json:"from"`
	Kind   string `json:"kind"`
	Stanza string `json:"stanza"`
	Body   string `json:"body,omitempty"`
	ID     string `json:"id,omitempty"`
	Type   string `json:"type,omitempty"`
}

// maxAnswer bounds what is read of a webhook's answer.
const maxAnswer = 1 << 20

// signingKey returns the HMAC key of a secret (nil for none).
func signingKey(secret string) []byte {
	if secret == "" {
		return nil
	}
	if rest, ok := strings.CutPrefix(secret, "whsec_"); ok {
		if k, err := base64.StdEncoding.DecodeString(rest); err == nil {
			return k
		}
	}
	return []byte(secret)
}

// Sign returns the Standard Webhooks signature header value of body sent
// as message id at timestamp (Unix seconds) with key.
func Sign(key []byte, id string, timestamp int64, body []byte) string {
	var scratch []byte
	return string(appendSign(nil, hmac.New(sha256.New, key), &scratch, []byte(id), timestamp, body))
}

// appendSign appends to dst the signature header value of body sent as
// message id at timestamp, made with mac (an HMAC-SHA256 of the key, reset
// here). *scratch is reused for the parts it builds, and kept grown.
func appendSign(dst []byte, mac hash.Hash, scratch *[]byte, id []byte, timestamp int64, body []byte) []byte {
	mac.Reset()
	mac.Write(id)
	b := append((*scratch)[:0], '.')
	b = strconv.AppendInt(b, timestamp, 10)
	b = append(b, '.')
	mac.Write(b)
	mac.Write(body)
	b = mac.Sum(b[:0])
	*scratch = b
	dst = append(dst, "v1,"...)
	return base64.StdEncoding.AppendEncode(dst, b)
}

// answer is what the webhook said.
type answer struct {
	status      int
	contentType string
	body        []byte
	retryAfter  time.Duration
	location    string // of a redirect the lean client does not follow
}

// failure is a delivery that did not work: its cause (a metrics label) and
// the stanza error the sender gets.
type failure struct {
	cause string
	err   *xmpp.StanzaError
}

func (f *failure) Error() string { return f.cause + ": " + f.err.Error() }

// The causes of failure, as counted in the metrics.
const (
	causeConnect   = "connect"
	causeTimeout   = "timeout"
	causeStatus    = "status"
	causeJSON      = "bad_json"
	causeReply     = "bad_reply"
	causeRefused   = "refused_from"
	causeRedirect  = "redirect"
	causeQueueFull = "queue_full"
	// causeQueueBytes is the queue's byte bound (QueueBytes), and
	// causeSenderShare a sender's share (SenderQueue, SenderQueueBytes).
	causeQueueBytes  = "queue_bytes"
	causeSenderShare = "sender_share"
	causeShutdown    = "shutdown"
	causeNoAnswer    = "no_answer"
)

// post delivers body, retrying on connect errors, 429, 502, 503 and 504
// with exponential backoff that honours Retry-After. The answer may be
// w's, valid until w's next delivery.
func (c *Component) post(ctx context.Context, w *worker, body []byte) (*answer, error) {
	w.newMessageID()
	for attempt := 0; ; attempt++ {
		start := time.Now()
		var a *answer
		var err error
		if c.lean != nil {
			a, err = c.postLean(ctx, w, body)
		} else {
			a, err = c.postOnce(ctx, string(w.id), body)
		}
		c.metrics.observe(time.Since(start))
		retry := false
		switch {
		case err != nil:
			var f *failure
			retry = errors.As(err, &f) && f.cause == causeConnect
		default:
			switch a.status {
			case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
				retry = true
			}
		}
		if !retry || attempt >= c.cfg.Retries {
			return a, err
		}
		wait := backoff(attempt)
		if a != nil && a.retryAfter > 0 {
			wait = a.retryAfter
		}
		if wait > c.cfg.Timeout {
			// Waiting longer than a request may take helps nobody who
			// is waiting for the answer.
			wait = c.cfg.Timeout
		}
		c.metrics.retries.Add(1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, shutdownFailure()
		case <-t.C:
		}
	}
}

// backoff is 250ms, 500ms, 1s, ... with ±20% jitter.
func backoff(attempt int) time.Duration {
	d := 250 * time.Millisecond << min(attempt, 6)
	var b [1]byte
	_, _ = rand.Read(b[:])
	return d + time.Duration(int64(d)*(int64(b[0])-128)/640)
}

func shutdownFailure() *failure {
	return &failure{causeShutdown, xmpp.NewStanzaError(xmpp.ServiceUnavailable, "the bot is shutting down")}
}

// postLean makes one request with the component's own client.
func (c *Component) postLean(ctx context.Context, w *worker, body []byte) (*answer, error) {
	req := append(w.req[:0], c.lean.head...)
	req = append(req, "Content-Length: "...)
	req = strconv.AppendInt(req, int64(len(body)), 10)
	if c.key != nil {
		ts := time.Now().Unix()
		req = append(req, "\r\nWebhook-Id: "...)
		req = append(req, w.id...)
		req = append(req, "\r\nWebhook-Timestamp: "...)
		req = strconv.AppendInt(req, ts, 10)
		req = append(req, "\r\nWebhook-Signature: "...)
		req = w.appendSignature(req, ts, body)
	}
	req = append(req, "\r\n\r\n"...)
	req = append(req, body...)
	w.req = req
	c.metrics.requests.Add(1)
	// The client ends the exchange when c.ctx ends, as ctx here.
	deadline := time.Now().Add(c.cfg.Timeout)
	if err := c.lean.do(deadline, req, &w.ans); err != nil {
		switch {
		case errors.Is(err, errAnswerTooLarge):
			return nil, tooLargeFailure()
		case errors.Is(err, errRedirect):
			// net/http follows redirects, as the component always
			// has: the request goes on with it from where the
			// redirect points, so the webhook does not get it twice.
			target, err := url.Parse(c.cfg.PostURL)
			if err == nil {
				target, err = target.Parse(w.ans.location)
			}
			if err != nil {
				return nil, connectFailure("the bot redirected to an address that is not valid")
			}
			c.metrics.requests.Add(1)
			return c.postHTTP(ctx, deadline, target.String(), sameSite(c.cfg.PostURL, target), string(w.id), body)
		}
		return nil, c.transportFailure(ctx, err)
	}
	return &w.ans, nil
}

// tooLargeFailure is an answer over maxAnswer.
func tooLargeFailure() *failure {
	return &failure{causeReply, xmpp.NewStanzaError(xmpp.InternalServerError, "the bot's answer is larger than 1 MiB")}
}

// postOnce makes one request with net/http.
func (c *Component) postOnce(ctx context.Context, id string, body []byte) (*answer, error) {
	c.metrics.requests.Add(1)
	return c.postHTTP(ctx, time.Now().Add(c.cfg.Timeout), c.cfg.PostURL, true, id, body)
}

// postHTTP makes one request to target with net/http, redirects followed,
// ending by deadline. Without trusted, the configured headers that carry
// credentials are left out, as net/http leaves them out of a redirect to
// another site.
func (c *Component) postHTTP(ctx context.Context, deadline time.Time, target string, trusted bool, id string, body []byte) (*answer, error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, connectFailure("the bot's address is not valid")
	}
	for k, v := range c.cfg.Headers {
		if !trusted && credentialHeader(k) {
			continue
		}
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Parley")
	if c.key != nil {
		ts := time.Now().Unix()
		req.Header.Set("webhook-id", id)
		req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
		req.Header.Set("webhook-signature", Sign(c.key, id, ts, body))
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, c.transportFailure(ctx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, c.transportFailure(ctx, err)
	}
	if len(data) > maxAnswer {
		return nil, tooLargeFailure()
	}
	return &answer{
		status:      resp.StatusCode,
		contentType: resp.Header.Get("Content-Type"),
		body:        data,
		retryAfter:  retryAfter(resp.Header.Get("Retry-After")),
	}, nil
}

// transportFailure classifies an error of the request itself.
func (c *Component) transportFailure(ctx context.Context, err error) *failure {
	if c.ctx.Err() != nil {
		return shutdownFailure()
	}
	var ne net.Error
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return &failure{causeTimeout, xmpp.NewStanzaError(xmpp.RemoteServerTimeout, "the bot did not answer in time")}
	}
	c.log.Warn("webhook: request failed", "err", err)
	return connectFailure("the bot cannot be reached")
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// seedErrors is the seed's (Prosody's mod_component_http) table of HTTP
// statuses and the stanza errors they become, kept so that a webhook
// written for the seed gets the same errors here. Any other status is
// cancel/service-unavailable, as in the seed.
var seedErrors = map[int]struct {
	typ  xmpp.ErrorType
	cond xmpp.StanzaCondition
}{
	http.StatusBadRequest:          {xmpp.ErrModify, xmpp.BadRequest},
	http.StatusUnauthorized:        {xmpp.ErrAuth, xmpp.NotAuthorized},
	http.StatusPaymentRequired:     {xmpp.ErrAuth, xmpp.Forbidden},
	http.StatusForbidden:           {xmpp.ErrAuth, xmpp.Forbidden},
	http.StatusNotFound:            {xmpp.ErrCancel, xmpp.ItemNotFound},
	http.StatusGone:                {xmpp.ErrCancel, xmpp.Gone},
	http.StatusInternalServerError: {xmpp.ErrCancel, xmpp.InternalServerError},
	http.StatusNotImplemented:      {xmpp.ErrCancel, xmpp.FeatureNotImplemented},
	// 502 is cancel where RFC 6120 shows wait with the condition: the
	// seed's type, kept for compatibility.
	http.StatusBadGateway:         {xmpp.ErrCancel, xmpp.RemoteServerTimeout},
	http.StatusServiceUnavailable: {xmpp.ErrWait, xmpp.RemoteServerTimeout},
	http.StatusGatewayTimeout:     {xmpp.ErrWait, xmpp.RemoteServerTimeout},
}

// statusFailure maps a final non-2xx status to the sender's error, by the
// seed's table (seedErrors).
func statusFailure(status int) *failure {
	e := xmpp.NewStanzaError(xmpp.ServiceUnavailable, fmt.Sprintf("the bot answered HTTP %d", status))
	if m, ok := seedErrors[status]; ok {
		e.Type, e.Condition = m.typ, m.cond
	}
	return &failure{causeStatus, e}
}

// connectFailure is a webhook that could not be reached or did not speak
// HTTP: the seed's "connection failure" (its status 0), which it answers
// with cancel/remote-server-timeout.
func connectFailure(text string) *failure {
	e := xmpp.NewStanzaError(xmpp.RemoteServerTimeout, text)
	e.Type = xmpp.ErrCancel
	return &failure{causeConnect, e}
}

// isJSON reports whether a Content-Type is JSON, parameters allowed
// (application/json; charset=utf-8, application/vnd.x+json).
func isJSON(ct string) bool {
	if ct == "application/json" || ct == "application/json; charset=utf-8" {
		return true // what most answers say, without ParseMediaType's allocation
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// sameSite reports whether target is on the host of base or a subdomain of
// it: net/http's rule for keeping credentials on a redirect.
func sameSite(base string, target *url.URL) bool {
	b, err := url.Parse(base)
	if err != nil {
		return false
	}
	bh, th := strings.ToLower(b.Hostname()), strings.ToLower(target.Hostname())
	return th == bh || strings.HasSuffix(th, "."+bh)
}

// credentialHeader reports whether a header carries credentials that must
// not follow a redirect to another site.
func credentialHeader(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Authorization", "Www-Authenticate", "Cookie", "Cookie2", "Proxy-Authorization":
		return true
	}
	return false
}

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
// (to, from, kind, stanza, body) plus the stanza's id and type, and for
// what comes from a room the bot is in (from room@service/nick), the
// room's bare JID and the occupant's nick.
type Request struct {
	To     string `json:"to"`
	From   string `json:"from"`
	Kind   string `json:"kind"`
	Stanza string `json:"stanza"`
	Body   string `json:"body,omitempty"`
	ID     string `json:"id,omitempty"`
	Type   string `json:"type,omitempty"`
	Room   string `json:"room,omitempty"`
	Nick   string `json:"nick,omitempty"`
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
			return c.followLean(ctx, w, deadline)
		}
		return nil, c.transportFailure(ctx, err)
	}
	return &w.ans, nil
}

// tooLargeFailure is an answer over maxAnswer.
func tooLargeFailure() *failure {
	return &failure{causeReply, xmpp.NewStanzaError(xmpp.InternalServerError, "the bot's answer is larger than 1 MiB")}
}

// followLean follows the redirect in w.ans with the lean client, when
// follow_redirects allows it: the target is on the webhook's origin, so it
// is the same connection pool, and only the request line changes. The
// redirected request is built in w.redir from w.req, which stays as it was
// first sent.
func (c *Component) followLean(ctx context.Context, w *worker, deadline time.Time) (*answer, error) {
	cur := c.postURL
	for hop := 0; ; hop++ {
		target, f := c.redirectTarget(cur, w.ans.status, w.ans.location, hop)
		if f != nil {
			return nil, f
		}
		// w.req is "POST <uri> HTTP/1.1\r\n...": the part after the URI
		// is the same for every hop.
		rest := w.req[len("POST ")+len(c.lean.uri):]
		w.redir = append(append(append(w.redir[:0], "POST "...), target.RequestURI()...), rest...)
		c.metrics.requests.Add(1)
		err := c.lean.do(deadline, w.redir, &w.ans)
		switch {
		case err == nil:
			return &w.ans, nil
		case errors.Is(err, errAnswerTooLarge):
			return nil, tooLargeFailure()
		case !errors.Is(err, errRedirect):
			return nil, c.transportFailure(ctx, err)
		}
		cur = target
	}
}

// maxRedirects is how many redirects one request may follow, with
// follow_redirects: a loop costs the webhook at most maxRedirects+1
// requests per attempt.
const maxRedirects = 3

// isRedirect reports whether status is one that net/http follows.
func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// redirectTarget decides whether the hop-th redirect (counting from 0) of
// a request to cur, answered status with location, is followed: it returns
// where the same POST goes next, or the failure the sender gets. Only
// with follow_redirects, only 301, 302, 307 and 308 (RFC 9110 §15.4 lets a
// client keep the method of a 301 or 302; a 303 asks for a GET, which
// would not deliver the stanza), only to the webhook's origin (so the
// signature and the configured headers never go anywhere else), and at
// most maxRedirects times.
func (c *Component) redirectTarget(cur *url.URL, status int, location string, hop int) (*url.URL, *failure) {
	fail := func(why string) *failure {
		e := xmpp.NewStanzaError(xmpp.ServiceUnavailable, fmt.Sprintf("the bot answered HTTP %d, a redirect, which is not followed: %s", status, why))
		return &failure{causeRedirect, e}
	}
	if !c.cfg.FollowRedirects {
		return nil, fail("follow_redirects is off")
	}
	if status == http.StatusSeeOther {
		return nil, fail("a 303 asks for a GET, which would not deliver the stanza")
	}
	if hop >= maxRedirects {
		return nil, fail(fmt.Sprintf("more than %d redirects", maxRedirects))
	}
	target, err := cur.Parse(location)
	if err != nil || target.Opaque != "" || target.User != nil || !validRequestURI(target.RequestURI()) {
		return nil, fail("its Location is not a valid address")
	}
	if !sameOrigin(c.postURL, target) {
		return nil, fail("it leads to another origin than post_url's")
	}
	target.Fragment, target.RawFragment = "", ""
	return target, nil
}

// validRequestURI reports whether uri can go on a request line as it is:
// printable ASCII without spaces.
func validRequestURI(uri string) bool {
	if uri == "" || uri[0] != '/' {
		return false
	}
	for i := 0; i < len(uri); i++ {
		if uri[i] <= ' ' || uri[i] >= 0x7f {
			return false
		}
	}
	return true
}

// sameOrigin reports whether a and b have the same origin (RFC 6454):
// scheme, host and port, the port of a URL without one being its scheme's.
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) &&
		portOf(a) == portOf(b)
}

// portOf returns u's port, or its scheme's when it has none.
func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

// postOnce makes one request with net/http.
func (c *Component) postOnce(ctx context.Context, id string, body []byte) (*answer, error) {
	c.metrics.requests.Add(1)
	return c.postHTTP(ctx, time.Now().Add(c.cfg.Timeout), id, body)
}

// postHTTP makes one request with net/http, ending by deadline, and follows
// redirects as followLean does (c.client itself follows none).
func (c *Component) postHTTP(ctx context.Context, deadline time.Time, id string, body []byte) (*answer, error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	target := c.postURL
	for hop := 0; ; hop++ {
		a, location, err := c.postHTTPOnce(ctx, target, id, body)
		if err != nil || !isRedirect(a.status) || location == "" {
			return a, err
		}
		next, f := c.redirectTarget(target, a.status, location, hop)
		if f != nil {
			return nil, f
		}
		c.metrics.requests.Add(1)
		target = next
	}
}

// postHTTPOnce makes one request to target with net/http, and returns the
// answer and its Location.
func (c *Component) postHTTPOnce(ctx context.Context, target *url.URL, id string, body []byte) (*answer, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), bytes.NewReader(body))
	if err != nil {
		return nil, "", connectFailure("the bot's address is not valid")
	}
	for k, v := range c.cfg.Headers {
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
		return nil, "", c.transportFailure(ctx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, "", c.transportFailure(ctx, err)
	}
	if len(data) > maxAnswer {
		return nil, "", tooLargeFailure()
	}
	return &answer{
		status:      resp.StatusCode,
		contentType: resp.Header.Get("Content-Type"),
		body:        data,
		retryAfter:  retryAfter(resp.Header.Get("Retry-After")),
	}, resp.Header.Get("Location"), nil
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

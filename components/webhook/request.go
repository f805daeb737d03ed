package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
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

// newRequest renders st as the posted JSON.
func newRequest(st *xmpp.Stanza) ([]byte, error) {
	el := st.El.Copy()
	// A standalone document: the stanza's namespace made explicit.
	el.CreateAttr("xmlns", xmpp.NSClient)
	var buf bytes.Buffer
	w := xmpp.NewWriter(&buf)
	_ = w.WriteElement(el)
	if err := w.Flush(); err != nil {
		return nil, err
	}
	req := Request{
		To:     st.To.String(),
		From:   st.From.String(),
		Kind:   st.Kind.String(),
		Stanza: buf.String(),
		ID:     st.ID,
		Type:   st.Type,
	}
	if st.Kind == xmpp.KindMessage {
		if b := xmpp.Child(st.El, "", "body"); b != nil {
			req.Body = b.Text()
		}
	}
	return json.Marshal(req)
}

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
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(timestamp, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// newMessageID returns a fresh webhook-id.
func newMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "msg_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// answer is what the webhook said.
type answer struct {
	status      int
	contentType string
	body        []byte
	retryAfter  time.Duration
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
	causeQueueFull = "queue_full"
	causeShutdown  = "shutdown"
	causeNoAnswer  = "no_answer"
)

// post delivers body, retrying on connect errors, 429, 502, 503 and 504
// with exponential backoff that honours Retry-After.
func (c *Component) post(ctx context.Context, body []byte) (*answer, error) {
	id := newMessageID()
	for attempt := 0; ; attempt++ {
		start := time.Now()
		a, err := c.postOnce(ctx, id, body)
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

// postOnce makes one request.
func (c *Component) postOnce(ctx context.Context, id string, body []byte) (*answer, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.PostURL, bytes.NewReader(body))
	if err != nil {
		return nil, &failure{causeConnect, xmpp.NewStanzaError(xmpp.InternalServerError, "the bot's address is not valid")}
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
	c.metrics.requests.Add(1)
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
		return nil, &failure{causeReply, xmpp.NewStanzaError(xmpp.InternalServerError, "the bot's answer is larger than 1 MiB")}
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
	return &failure{causeConnect, xmpp.NewStanzaError(xmpp.RemoteServerNotFound, "the bot cannot be reached")}
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

// statusFailure maps a final non-2xx status to the sender's error.
func statusFailure(status int) *failure {
	text := fmt.Sprintf("the bot answered HTTP %d", status)
	var cond xmpp.StanzaCondition
	switch {
	case status == http.StatusTooManyRequests:
		cond = xmpp.ResourceConstraint
	case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
		cond = xmpp.BadRequest
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		cond = xmpp.Forbidden
	case status == http.StatusNotFound || status == http.StatusGone || status == http.StatusMethodNotAllowed:
		cond = xmpp.ServiceUnavailable
	case status == http.StatusServiceUnavailable:
		cond = xmpp.ServiceUnavailable
	case status == http.StatusGatewayTimeout:
		cond = xmpp.RemoteServerTimeout
	case status == http.StatusBadGateway:
		cond = xmpp.RemoteServerNotFound
	case status >= 500:
		cond = xmpp.InternalServerError
	default:
		cond = xmpp.UndefinedCondition
	}
	return &failure{causeStatus, xmpp.NewStanzaError(cond, text)}
}

// isJSON reports whether a Content-Type is JSON, parameters allowed
// (application/json; charset=utf-8, application/vnd.x+json).
func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

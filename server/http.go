package server

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parley-im/parley/components/webhook"
	"github.com/parley-im/parley/internal/clientaddr"
)

// maxSendBody bounds a send API request.
const maxSendBody = 256 << 10

// The HTTP server's fixed limits; read_timeout is configured.
const (
	// httpHeaderTimeout bounds reading a request's headers (or
	// read_timeout, when shorter): a client that dribbles them holds a
	// connection and its goroutine no longer.
	httpHeaderTimeout = 10 * time.Second
	// httpIdleTimeout closes a keep-alive connection that sends no next
	// request.
	httpIdleTimeout = 2 * time.Minute
	// httpMaxHeaderBytes bounds a request's headers. Go's default is
	// 1 MiB; the send API and /metrics need a few hundred bytes.
	httpMaxHeaderBytes = 16 << 10
	// httpWriteMargin is how long, after read_timeout, a handler has to
	// answer: the answers are small, so only a client that does not read
	// them needs it.
	httpWriteMargin = 10 * time.Second
	// tokenFailureWindow is the window of [HTTP.TokenFailures].
	tokenFailureWindow = time.Minute
)

// bot is an http_component host with its send API token.
type bot struct {
	*webhook.Component
	token string
}

// newHTTPServer returns the server of the HTTP listeners, with the
// timeouts that keep a slow or silent client from holding a connection.
func (s *Server) newHTTPServer() *http.Server {
	read := s.cfg.HTTP.ReadTimeout.Duration
	return &http.Server{
		Handler:           s.httpHandler(),
		ReadHeaderTimeout: min(httpHeaderTimeout, read),
		// A request's body too: without it a token holder sending one
		// byte a minute holds the connection for ever.
		ReadTimeout:    read,
		WriteTimeout:   read + httpWriteMargin,
		IdleTimeout:    httpIdleTimeout,
		MaxHeaderBytes: httpMaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// httpAPI serves Parley's HTTP listener: the bots' send API, the
// metrics, and the demo echo webhook.
type httpAPI struct {
	s            *Server
	bots         map[string]*sendHost
	metricsToken [sha256.Size]byte // of the token; zero when there is none
	hasMetrics   bool              // a metrics_token is set
	failures     *clientaddr.Limiter
	refusals     refusals
}

// sendHost is the send API of one http_component host.
type sendHost struct {
	bot
	// tokenSum is the SHA-256 of the api_token: comparing sums keeps the
	// comparison constant-time in the length of the token too.
	tokenSum [sha256.Size]byte
	bucket   *tokenBucket
	burst    int
}

// httpHandler returns the handler of Parley's HTTP listener.
func (s *Server) httpHandler() http.Handler {
	a := &httpAPI{
		s:        s,
		bots:     make(map[string]*sendHost, len(s.bots)),
		failures: clientaddr.NewLimiter(s.cfg.HTTP.TokenFailures, tokenFailureWindow, time.Now),
	}
	a.refusals.log = s.log
	for name, b := range s.bots {
		h, _ := s.cfg.Host(name)
		a.bots[name] = &sendHost{
			bot:      b,
			tokenSum: sha256.Sum256([]byte(b.token)),
			bucket:   newTokenBucket(float64(h.APIRate), float64(h.APIBurst), time.Now),
			burst:    h.APIBurst,
		}
	}
	if t := s.cfg.HTTP.MetricsToken; t != "" {
		a.metricsToken, a.hasMetrics = sha256.Sum256([]byte(t)), true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/bots/{host}/send", a.handleSend)
	mux.HandleFunc("GET /metrics", a.handleMetrics)
	mux.HandleFunc("POST /demo/echo", handleEcho)
	return mux
}

// apiError answers a send API request with a JSON error.
func apiError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// bearer returns the token of an Authorization header of the Bearer
// scheme (RFC 6750 §2.1), whose name is case-insensitive (RFC 9110 §11.1)
// and followed by one or more spaces.
func bearer(auth string) (string, bool) {
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(token, " ")
	return token, token != ""
}

// tokenMatches reports, in constant time, whether the request's bearer
// token has the SHA-256 sum want.
func tokenMatches(r *http.Request, want *[sha256.Size]byte) bool {
	token, ok := bearer(r.Header.Get("Authorization"))
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1 && ok
}

// throttled answers 429 when the client's address has had too many wrong
// tokens lately, and reports whether it did. It runs before the token is
// checked, so a guesser gets no answer about its guesses at all.
func (a *httpAPI) throttled(w http.ResponseWriter, r *http.Request, jsonErr bool) bool {
	wait, ok := a.failures.Blocked(r.RemoteAddr)
	if !ok {
		return false
	}
	a.refusals.count(causeTokenFailures, "too many wrong tokens from one address", "remote", r.RemoteAddr, "path", r.URL.Path)
	w.Header().Set("Retry-After", retryAfter(wait))
	msg := fmt.Sprintf("too many requests with a wrong token from your address; try again in %s (token_failures = %d a minute)",
		retryAfter(wait)+"s", a.s.cfg.HTTP.TokenFailures)
	if jsonErr {
		apiError(w, http.StatusTooManyRequests, msg)
	} else {
		http.Error(w, msg, http.StatusTooManyRequests)
	}
	return true
}

// retryAfter is the Retry-After value for a wait: whole seconds, rounded
// up, at least 1.
func retryAfter(wait time.Duration) string {
	return strconv.FormatInt(max(1, int64((wait+time.Second-1)/time.Second)), 10)
}

// handleSend is POST /api/bots/<host>/send: a bot speaks first.
//
// Every refusal that can be decided from the headers is answered before
// the body is read: net/http sends "100 Continue" to a client that asked
// for it only when the handler reads the body, so such a client never
// sends a body that would be refused.
func (a *httpAPI) handleSend(w http.ResponseWriter, r *http.Request) {
	if a.throttled(w, r, true) {
		return
	}
	host := strings.ToLower(r.PathValue("host"))
	b, ok := a.bots[host]
	if !ok || b.token == "" {
		apiError(w, http.StatusNotFound, "no bot host "+host+" with an api_token")
		return
	}
	if !tokenMatches(r, &b.tokenSum) {
		a.failures.Fail(r.RemoteAddr)
		a.refusals.count(causeUnauthorized, "send API: wrong or missing token", "host", host, "remote", r.RemoteAddr)
		w.Header().Set("WWW-Authenticate", `Bearer realm="parley"`)
		apiError(w, http.StatusUnauthorized, "send Authorization: Bearer <the host's api_token>")
		return
	}
	if r.ContentLength > maxSendBody {
		a.refusals.count(causeTooLarge, "send API: body too large", "host", host, "bytes", r.ContentLength)
		apiError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", maxSendBody))
		return
	}
	if wait, ok := b.bucket.wait(1); !ok {
		a.rateLimited(w, b, host, wait)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSendBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		a.refusals.count(causeTooLarge, "send API: body too large", "host", host, "bytes", "chunked")
		apiError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", maxSendBody))
		return
	case errors.Is(err, os.ErrDeadlineExceeded):
		a.refusals.count(causeReadTimeout, "send API: body not read within read_timeout", "host", host, "remote", r.RemoteAddr)
		apiError(w, http.StatusRequestTimeout, fmt.Sprintf("the body did not arrive within %v (read_timeout)",
			a.s.cfg.HTTP.ReadTimeout.Duration))
		return
	case err != nil:
		apiError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	replies, err := decodeReplies(body)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(replies) > b.burst {
		a.refusals.count(causeTooLarge, "send API: more messages than api_burst in one request", "host", host, "messages", len(replies))
		apiError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request carries %d messages; "+
			"this host takes at most %d at once (api_burst): split it", len(replies), b.burst))
		return
	}
	if wait, ok := b.bucket.take(len(replies)); !ok {
		a.rateLimited(w, b, host, wait)
		return
	}
	if err := b.Send(replies); err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, webhook.ErrForbiddenFrom) {
			status = http.StatusForbidden
		}
		apiError(w, status, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]int{"accepted": len(replies)})
}

// rateLimited answers 429: the host's api_rate is used up for wait.
func (a *httpAPI) rateLimited(w http.ResponseWriter, b *sendHost, host string, wait time.Duration) {
	a.refusals.count(causeAPIRate, "send API: api_rate exceeded", "host", host)
	w.Header().Set("Retry-After", retryAfter(wait))
	apiError(w, http.StatusTooManyRequests, fmt.Sprintf("%s accepts %g messages a second (api_rate) and %d at once (api_burst); "+
		"try again in %ss", host, b.bucket.rate, b.burst, retryAfter(wait)))
}

// decodeReplies reads an object or an array of objects.
func decodeReplies(body []byte) ([]webhook.Reply, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, errors.New("the body is empty; send a JSON object or an array of objects")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var replies []webhook.Reply
	var err error
	if body[0] == '[' {
		err = dec.Decode(&replies)
	} else {
		var one webhook.Reply
		err = dec.Decode(&one)
		replies = []webhook.Reply{one}
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

// handleMetrics is GET /metrics: with a metrics_token, for the clients
// that send it; without one, for loopback clients only (the metrics tell
// how busy the server is and which bot hosts fail, nothing for the world).
func (a *httpAPI) handleMetrics(w http.ResponseWriter, r *http.Request) {
	if a.hasMetrics {
		if a.throttled(w, r, false) {
			return
		}
		if !tokenMatches(r, &a.metricsToken) {
			a.failures.Fail(r.RemoteAddr)
			a.refusals.count(causeUnauthorized, "/metrics: wrong or missing token", "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="parley metrics"`)
			http.Error(w, "/metrics needs Authorization: Bearer <the [http] metrics_token>", http.StatusUnauthorized)
			return
		}
	} else if !loopback(r.RemoteAddr) {
		a.refusals.count(causeMetricsForbidden, "/metrics: not a loopback client", "remote", r.RemoteAddr)
		http.Error(w, "/metrics answers loopback clients only; set [http] metrics_token to read it from elsewhere "+
			"with Authorization: Bearer <token>", http.StatusForbidden)
		return
	}
	a.s.writeMetrics(w)
	a.refusals.write(w)
}

// loopback reports whether the address (ip:port) is a loopback one.
func loopback(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// writeMetrics writes the metrics in the Prometheus text format.
func (s *Server) writeMetrics(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	fmt.Fprintf(w, "# TYPE parley_c2s_sessions gauge\nparley_c2s_sessions %d\n", s.c2s.Sessions())
	fmt.Fprintf(w, "# TYPE parley_slow_consumer_bounces_total counter\nparley_slow_consumer_bounces_total %d\n", s.router.SlowConsumers())
	l := s.c2s.LoginStats()
	fmt.Fprintf(w, "# HELP parley_c2s_logins_total Logins whose credentials were checked, by result.\n"+
		"# TYPE parley_c2s_logins_total counter\n"+
		"parley_c2s_logins_total{result=\"success\"} %d\nparley_c2s_logins_total{result=\"failure\"} %d\n",
		l.Succeeded, l.Failed)
	fmt.Fprintf(w, "# HELP parley_c2s_login_delays_total Login answers held by the login limits, by the limit that held them.\n"+
		"# TYPE parley_c2s_login_delays_total counter\n"+
		"parley_c2s_login_delays_total{limit=\"login_backoff_after\"} %d\n"+
		"parley_c2s_login_delays_total{limit=\"login_spray_accounts\"} %d\n"+
		"parley_c2s_login_delays_total{limit=\"login_account_failures\"} %d\n",
		l.DelayedAccountFromAddress, l.DelayedAddress, l.DelayedAccount)
	fmt.Fprintf(w, "# HELP parley_c2s_refused_connections_total Connections closed at accept: too many unauthenticated ones from their address.\n"+
		"# TYPE parley_c2s_refused_connections_total counter\n"+
		"parley_c2s_refused_connections_total{limit=\"unauthenticated_per_ip\"} %d\n", s.c2s.Refused())
	refusals := s.c2s.Refusals()
	fmt.Fprintf(w, "# HELP parley_c2s_refusals_total Streams ended by a stream error and failed SASL attempts, by kind and condition.\n"+
		"# TYPE parley_c2s_refusals_total counter\n")
	for _, k := range slices.Sorted(maps.Keys(refusals)) {
		kind, cond, _ := strings.Cut(k, ":")
		fmt.Fprintf(w, "parley_c2s_refusals_total{kind=%q,condition=%q} %d\n", kind, cond, refusals[k])
	}
	ls := s.LimitStats()
	fmt.Fprintf(w, "# HELP parley_limit_refusals_total Stanzas refused by a per-account limit, by limit.\n"+
		"# TYPE parley_limit_refusals_total counter\n"+
		"parley_limit_refusals_total{limit=\"offline\"} %d\n"+
		"parley_limit_refusals_total{limit=\"sessions_per_account\"} %d\n"+
		"parley_limit_refusals_total{limit=\"private_storage_bytes\"} %d\n"+
		"parley_limit_refusals_total{limit=\"roster_changes_per_minute\"} %d\n",
		ls.OfflineFull, ls.SessionsRefused, ls.PrivateStorageRefused, ls.RosterChangesRefused)
	fmt.Fprintf(w, "# HELP parley_offline_messages_total Offline messages taken by sessions, and put back unwritten.\n"+
		"# TYPE parley_offline_messages_total counter\n"+
		"parley_offline_messages_total{event=\"delivered\"} %d\nparley_offline_messages_total{event=\"restored\"} %d\n",
		ls.OfflineDelivered, ls.OfflineRestored)
	fmt.Fprintf(w, "# HELP parley_c2s_login_delay_seconds_total Time login answers were held, added up.\n"+
		"# TYPE parley_c2s_login_delay_seconds_total counter\nparley_c2s_login_delay_seconds_total %g\n", l.DelaySeconds)
	if len(s.bots) > 0 {
		m := make(map[string]*webhook.Metrics, len(s.bots))
		for n, b := range s.bots {
			m[n] = b.Metrics()
		}
		webhook.WritePrometheus(w, m)
	}
}

// handleEcho is the demo bot's webhook: it answers a message's body.
func handleEcho(w http.ResponseWriter, r *http.Request) {
	var req webhook.Request
	if err := json.NewDecoder(io.LimitReader(r.Body, maxSendBody)).Decode(&req); err != nil {
		http.Error(w, "not a Parley webhook request", http.StatusBadRequest)
		return
	}
	if req.Kind != "message" || req.Body == "" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(webhook.Reply{Body: req.Body})
}

package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parley-im/parley/c2s"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/internal/clientaddr"
)

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

// HTTPAPI serves Parley's HTTP listener: the metrics, and the routes of
// the host types (a bot domain's send API, a demo webhook). It lends those
// routes what they share with the metrics: the per-address limit on wrong
// tokens, the count of refused requests, and the listener's limits.
type HTTPAPI struct {
	s            *Server
	metricsToken [sha256.Size]byte // of the token; zero when there is none
	hasMetrics   bool              // a metrics_token is set
	failures     *clientaddr.Limiter
	refusals     refusals
}

// httpHandler returns the handler of Parley's HTTP listener.
func (s *Server) httpHandler() http.Handler {
	a := &HTTPAPI{
		s:        s,
		failures: clientaddr.NewLimiter(s.cfg.HTTP.TokenFailures, tokenFailureWindow, time.Now),
	}
	a.refusals.log = s.log
	if t := s.cfg.HTTP.MetricsToken; t != "" {
		a.metricsToken, a.hasMetrics = sha256.Sum256([]byte(t)), true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", a.handleMetrics)
	for _, rs := range registeredRoutes() {
		rs.routes(mux, a)
	}
	for _, t := range registeredTypes() {
		if t.Routes != nil {
			t.Routes(mux, a, s.hostsOfType(t.name))
		}
	}
	return mux
}

// Client is how the listener sees a request's client: its address
// (ip:port, or an ip alone when a proxy forwarded it) and whether it came
// over HTTPS, to the listener or, with [http] trust_forwarded, to the
// reverse proxy in front.
func (a *HTTPAPI) Client(r *http.Request) (addr string, https bool) {
	addr, https = r.RemoteAddr, r.TLS != nil
	if !a.s.cfg.HTTP.TrustForwarded {
		return addr, https
	}
	if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		// The last address is the one the proxy saw; any before it
		// are what the client claimed.
		list := strings.Split(xff[len(xff)-1], ",")
		if ip, err := netip.ParseAddr(strings.TrimSpace(list[len(list)-1])); err == nil {
			addr = ip.String()
		}
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p != "" {
		https = strings.EqualFold(strings.TrimSpace(p), "https")
	}
	return addr, https
}

// Config is the server's config, checked.
func (a *HTTPAPI) Config() *conf.Config { return a.s.cfg }

// Logger is the server's logger.
func (a *HTTPAPI) Logger() *slog.Logger { return a.s.log }

// ServesLogins reports whether domain (normalised) is a host whose users
// log in (a SessionHost): the domains a web client may be configured for.
func (a *HTTPAPI) ServesLogins(domain string) bool {
	_, ok := a.s.sessionHosts[domain]
	return ok
}

// LoginDomains are the domains of the hosts whose users log in, sorted;
// the slice is the caller's.
func (a *HTTPAPI) LoginDomains() []string {
	out := make([]string, 0, len(a.s.sessionHosts))
	for d := range a.s.sessionHosts {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// ServeWebSocket hands a request to the c2s server, which upgrades it to
// XMPP over WebSocket (RFC 7395) and serves the stream as one more client
// session: see c2s.Server.ServeWebSocket for opts.
func (a *HTTPAPI) ServeWebSocket(w http.ResponseWriter, r *http.Request, opts c2s.WebSocketOptions) error {
	return a.s.c2s.ServeWebSocket(w, r, opts)
}

// Throttled answers 429 when the client's address has had too many wrong
// tokens lately (token_failures), and reports whether it did; the answer
// is JSON ({"error": ...}) when jsonErr is set. A route that checks a
// token calls it first, so a guesser gets no answer about its guesses.
func (a *HTTPAPI) Throttled(w http.ResponseWriter, r *http.Request, jsonErr bool) bool {
	return a.throttled(w, r, jsonErr)
}

// TokenMatches reports, in constant time, whether the request's bearer
// token has the SHA-256 sum want. A route that finds it does not calls
// [HTTPAPI.Fail].
func (a *HTTPAPI) TokenMatches(r *http.Request, want *[sha256.Size]byte) bool {
	return tokenMatches(r, want)
}

// Fail counts a request with a wrong or missing token against its
// address.
func (a *HTTPAPI) Fail(r *http.Request) { a.failures.Fail(r.RemoteAddr) }

// Refuse counts a refused request under cause, a label of
// parley_http_refused_total ("unauthorized", "too_large", "read_timeout"
// or a cause of the route's own), and logs msg with args once a minute
// per cause.
func (a *HTTPAPI) Refuse(cause, msg string, args ...any) { a.refusals.count(cause, msg, args...) }

// DeclareRefusal makes /metrics show cause from the start, at 0, before
// any request is refused for it.
func (a *HTTPAPI) DeclareRefusal(cause string) { a.refusals.counter(cause) }

// JSONError answers with status and the JSON {"error": msg}.
func (a *HTTPAPI) JSONError(w http.ResponseWriter, status int, msg string) { apiError(w, status, msg) }

// RetryAfter is the Retry-After value for a wait: whole seconds, rounded
// up, at least 1.
func (a *HTTPAPI) RetryAfter(wait time.Duration) string { return retryAfter(wait) }

// ReadTimeout is the listener's read_timeout: a request's body that has
// not arrived within it fails with os.ErrDeadlineExceeded.
func (a *HTTPAPI) ReadTimeout() time.Duration { return a.s.cfg.HTTP.ReadTimeout.Duration }

// NewRateLimiter returns a full token bucket of rate tokens a second, up
// to burst at once, for a route's own rate limit.
func (a *HTTPAPI) NewRateLimiter(rate, burst float64) *RateLimiter {
	return &RateLimiter{b: newTokenBucket(rate, burst, time.Now)}
}

// RateLimiter is a token bucket, safe for concurrent use.
type RateLimiter struct{ b *tokenBucket }

// Wait reports whether n tokens are there now, taking none; when they are
// not, it returns how long until they will be.
func (l *RateLimiter) Wait(n int) (time.Duration, bool) { return l.b.wait(n) }

// Take takes n tokens when they are there; when they are not it takes
// none and returns how long until they will be.
func (l *RateLimiter) Take(n int) (time.Duration, bool) { return l.b.take(n) }

// Rate is the tokens the bucket earns back a second.
func (l *RateLimiter) Rate() float64 { return l.b.rate }

// apiError answers a request with a JSON error.
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
func (a *HTTPAPI) throttled(w http.ResponseWriter, r *http.Request, jsonErr bool) bool {
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

// handleMetrics is GET /metrics: with a metrics_token, for the clients
// that send it; without one, for loopback clients only (the metrics tell
// how busy the server is and which bot hosts fail, nothing for the world).
func (a *HTTPAPI) handleMetrics(w http.ResponseWriter, r *http.Request) {
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
	fmt.Fprintf(w, "# HELP parley_c2s_login_delay_seconds_total Time login answers were held, added up.\n"+
		"# TYPE parley_c2s_login_delay_seconds_total counter\nparley_c2s_login_delay_seconds_total %g\n", l.DelaySeconds)
	for _, t := range registeredTypes() {
		if t.Metrics != nil {
			t.Metrics(w, s.hostsOfType(t.name))
		}
	}
	for _, svc := range s.services {
		svc.Metrics(w)
	}
}

// httpsConfig is the TLS config of an HTTPS listener: the hosts'
// certificates by SNI, HTTP/1.1 only, since a WebSocket upgrade takes
// over an HTTP/1.1 connection.
func (s *Server) httpsConfig() *tls.Config {
	cfg := s.certs.TLSConfig().Clone()
	cfg.NextProtos = []string{"http/1.1"}
	return cfg
}

var (
	routeSetsMu sync.RWMutex
	routeSets   []routeSet
)

// routeSet is a RegisterRoutes registration.
type routeSet struct {
	name   string
	routes func(mux *http.ServeMux, api *HTTPAPI)
}

// RegisterRoutes adds routes that belong to no host type to the HTTP
// listener of every server this binary builds: the web endpoints
// (package server/web: /xmpp-websocket, host-meta, /chat) register so,
// from an init, and the binary imports them (see package server/std).
// routes is called once per server, before the host types' routes, with
// what the listener lends its routes. It panics when name is empty or
// taken or routes is nil: these are mistakes in the program.
func RegisterRoutes(name string, routes func(mux *http.ServeMux, api *HTTPAPI)) {
	if name == "" || routes == nil {
		panic("server: RegisterRoutes needs a name and routes")
	}
	routeSetsMu.Lock()
	defer routeSetsMu.Unlock()
	for _, o := range routeSets {
		if o.name == name {
			panic("server: routes " + name + " are registered twice")
		}
	}
	routeSets = append(routeSets, routeSet{name, routes})
}

// registeredRoutes returns the RegisterRoutes registrations, in their
// order.
func registeredRoutes() []routeSet {
	routeSetsMu.RLock()
	defer routeSetsMu.RUnlock()
	return append([]routeSet(nil), routeSets...)
}

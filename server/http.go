package server

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/parley-im/parley/components/webhook"
)

// maxSendBody bounds a send API request.
const maxSendBody = 256 << 10

// bot is an http_component host with its send API token.
type bot struct {
	*webhook.Component
	token string
}

// httpHandler serves Parley's HTTP listener: the bots' send API, the
// metrics, and the demo echo webhook.
func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/bots/{host}/send", s.handleSend)
	mux.HandleFunc("GET /metrics", s.handleMetrics)
	mux.HandleFunc("POST /demo/echo", handleEcho)
	return mux
}

// apiError answers a send API request with a JSON error.
func apiError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// handleSend is POST /api/bots/<host>/send: a bot speaks first.
func (s *Server) handleSend(w http.ResponseWriter, r *http.Request) {
	host := strings.ToLower(r.PathValue("host"))
	b, ok := s.bots[host]
	if !ok || b.token == "" {
		apiError(w, http.StatusNotFound, "no bot host "+host+" with an api_token")
		return
	}
	auth := r.Header.Get("Authorization")
	token, found := strings.CutPrefix(auth, "Bearer ")
	if !found || subtle.ConstantTimeCompare([]byte(token), []byte(b.token)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="parley"`)
		apiError(w, http.StatusUnauthorized, "send Authorization: Bearer <the host's api_token>")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSendBody+1))
	if err != nil {
		apiError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	if len(body) > maxSendBody {
		apiError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", maxSendBody))
		return
	}
	replies, err := decodeReplies(body)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
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

// handleMetrics writes the metrics in the Prometheus text format.
func (s *Server) handleMetrics(w http.ResponseWriter, _ *http.Request) {
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

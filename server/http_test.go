package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/components/webhook"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/parleytest/webhooktest"
)

// botHost is the bot domain of the send API tests (and of the bot in
// rfc6121_test.go).
const botHost = "bots.localhost"

// sendToken is the api_token of the bot hosts of these tests.
const sendToken = "s3cret-token"

// sendMsg is a send API body that reaches nobody (no such user), so that
// the tests need no logged-in client.
const sendMsg = `{"to":"nobody@localhost","body":"x"}`

// httpFrom returns a client whose connections come from the local address
// ip, so that a test on loopback can be several clients.
func httpFrom(t *testing.T, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// httpAnswer is the part of an HTTP answer the tests look at.
type httpAnswer struct {
	status     int
	retryAfter string
	body       string
}

// httpDo sends a request with the Authorization header auth (none when
// empty) and returns the answer.
func httpDo(t *testing.T, c *http.Client, method, u, auth, body string) httpAnswer {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return httpAnswer{resp.StatusCode, resp.Header.Get("Retry-After"), string(b)}
}

// sendURL is the send API of host.
func sendURL(s *parleytest.Server, host string) string {
	return s.HTTPURL + "/api/bots/" + host + "/send"
}

// startSendAPI starts a server with the bot host bots.localhost, whose
// api_token is sendToken; edit changes the host, cfg the rest.
func startSendAPI(t *testing.T, edit func(*conf.Host), cfg func(*conf.Config), opts ...parleytest.Option) *parleytest.Server {
	t.Helper()
	hook := webhooktest.New(t, nil)
	opts = append(opts, parleytest.WithConfig(func(c *conf.Config) {
		if cfg != nil {
			cfg(c)
		}
	}))
	return hook.Start(t, botHost, func(h *conf.Host) {
		webhook.OptionsOf(h).APIToken = sendToken
		if edit != nil {
			edit(h)
		}
	}, opts...)
}

func TestSendAPIAuthorizationScheme(t *testing.T) {
	s := startSendAPI(t, nil, func(c *conf.Config) { c.HTTP.TokenFailures = 1000 })
	c := httpFrom(t, "127.0.0.1")
	tests := []struct {
		name, auth string
		want       int
	}{
		{"Bearer is accepted", "Bearer " + sendToken, 202},
		{"lowercase bearer is accepted (RFC 9110 §11.1)", "bearer " + sendToken, 202},
		{"uppercase BEARER is accepted", "BEARER " + sendToken, 202},
		{"several spaces after the scheme are accepted", "Bearer   " + sendToken, 202},
		{"a wrong token is refused", "Bearer wrong", 401},
		{"a prefix of the token is refused", "Bearer " + sendToken[:5], 401},
		{"the token and more is refused", "Bearer " + sendToken + "x", 401},
		{"the scheme alone is refused", "Bearer", 401},
		{"the scheme glued to the token is refused", "Bearer" + sendToken, 401},
		{"another scheme is refused", "Basic " + sendToken, 401},
		{"no header is refused", "", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := httpDo(t, c, http.MethodPost, sendURL(s, botHost), tt.auth, sendMsg)
			if a.status != tt.want {
				t.Errorf("status %d (%s), want %d", a.status, a.body, tt.want)
			}
		})
	}
}

// rawRequest writes head (the request line and headers, without the blank
// line that ends them) and then body to a new connection to s's HTTP
// listener, and returns the connection and a reader of its answers.
func rawRequest(t *testing.T, s *parleytest.Server, head, body string) (net.Conn, *bufio.Reader) {
	t.Helper()
	u, _ := url.Parse(s.HTTPURL)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	head = strings.ReplaceAll(head, "\n", "\r\n") + "\r\n\r\n"
	if _, err := io.WriteString(conn, head+body); err != nil {
		t.Fatal(err)
	}
	return conn, bufio.NewReader(conn)
}

// statusLine reads an answer's status line and headers, and returns the
// status line.
func statusLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the status line: %v (after %q)", err, line)
	}
	for {
		h, err := r.ReadString('\n')
		if err != nil || h == "\r\n" {
			break
		}
	}
	return strings.TrimSpace(line)
}

func TestSendAPIAnswersBeforeTheBody(t *testing.T) {
	s := startSendAPI(t, func(h *conf.Host) { webhook.OptionsOf(h).APIRate, webhook.OptionsOf(h).APIBurst = 1, 1 }, nil)
	head := func(auth string, length int) string {
		return fmt.Sprintf("POST /api/bots/%s/send HTTP/1.1\nHost: x\nAuthorization: %s\nContent-Type: application/json\n"+
			"Expect: 100-continue\nContent-Length: %d", botHost, auth, length)
	}
	right := "Bearer " + sendToken
	tests := []struct {
		name string
		head string
		// first is the status line answered to the headers alone; then,
		// when it is 100 Continue, body is sent and final is the answer.
		first, body, final string
	}{
		{"a body over 256 KiB is refused with 413 and no 100 Continue", head(right, 300<<10), "HTTP/1.1 413 Request Entity Too Large", "", ""},
		{"a wrong token is refused with 401 and no 100 Continue", head("Bearer wrong", len(sendMsg)), "HTTP/1.1 401 Unauthorized", "", ""},
		{"a good request gets 100 Continue, then 202", head(right, len(sendMsg)), "HTTP/1.1 100 Continue", sendMsg, "HTTP/1.1 202 Accepted"},
		// The bucket of one message is now empty.
		{"a request past api_rate is refused with 429 and no 100 Continue", head(right, len(sendMsg)), "HTTP/1.1 429 Too Many Requests", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, r := rawRequest(t, s, tt.head, "")
			if got := statusLine(t, r); got != tt.first {
				t.Fatalf("answer to the headers: %q, want %q", got, tt.first)
			}
			if tt.body == "" {
				return
			}
			io.WriteString(conn, tt.body)
			if got := statusLine(t, r); got != tt.final {
				t.Errorf("answer to the body: %q, want %q", got, tt.final)
			}
		})
	}

	t.Run("a chunked body over 256 KiB is refused with 413", func(t *testing.T) {
		s := startSendAPI(t, nil, nil)
		chunk := strings.Repeat("a", 64<<10)
		var body strings.Builder
		for range 5 {
			fmt.Fprintf(&body, "%x\r\n%s\r\n", len(chunk), chunk)
		}
		body.WriteString("0\r\n\r\n")
		_, r := rawRequest(t, s, fmt.Sprintf("POST /api/bots/%s/send HTTP/1.1\nHost: x\nAuthorization: %s\n"+
			"Transfer-Encoding: chunked", botHost, right), body.String())
		if got := statusLine(t, r); got != "HTTP/1.1 413 Request Entity Too Large" {
			t.Errorf("answer %q, want 413", got)
		}
		if got := metric(t, s, `parley_http_refused_total{cause="too_large"}`); got != 1 {
			t.Errorf("too_large refusals = %v, want 1", got)
		}
	})
}

func TestSendAPISlowBodyTimesOut(t *testing.T) {
	s := startSendAPI(t, nil, func(c *conf.Config) { c.HTTP.ReadTimeout.Duration = time.Second })
	tests := []struct {
		name, head, body string
	}{
		{"a body that stops arriving", fmt.Sprintf("POST /api/bots/%s/send HTTP/1.1\nHost: x\nAuthorization: Bearer %s\n"+
			"Content-Length: 100", botHost, sendToken), `{"to":`},
		{"headers that stop arriving", fmt.Sprintf("POST /api/bots/%s/send HTTP/1.1\nHost: x", botHost), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The client sends no more and waits, up to 20 s: the server
			// must answer or hang up long before.
			u, _ := url.Parse(s.HTTPURL)
			c, err := net.Dial("tcp", u.Host)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			// The head without the blank line that ends it, when the
			// headers are the slow part.
			head := strings.ReplaceAll(tt.head, "\n", "\r\n") + "\r\n"
			if tt.body != "" {
				head += "\r\n" + tt.body
			}
			io.WriteString(c, head)
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("the server neither answered nor hung up: %v (read %q)", err, got)
			}
			if tt.body != "" && !strings.HasPrefix(string(got), "HTTP/1.1 408") {
				t.Errorf("answer %q, want 408", got)
			}
		})
	}
	if got := metric(t, s, `parley_http_refused_total{cause="read_timeout"}`); got != 1 {
		t.Errorf("read_timeout refusals = %v, want 1", got)
	}
}

func TestSendAPIRateLimit(t *testing.T) {
	const other = "other.localhost"
	s := startSendAPI(t, func(h *conf.Host) { webhook.OptionsOf(h).APIRate, webhook.OptionsOf(h).APIBurst = 1, 3 }, nil,
		parleytest.WithBot(other, "http://127.0.0.1:1/", func(h *conf.Host) { webhook.OptionsOf(h).APIToken = sendToken }))
	c := httpFrom(t, "127.0.0.1")
	auth := "Bearer " + sendToken
	four := "[" + strings.Repeat(sendMsg+",", 3) + sendMsg + "]"

	// More than the burst could never pass: 413, and nothing is taken.
	if a := httpDo(t, c, http.MethodPost, sendURL(s, botHost), auth, four); a.status != 413 || !strings.Contains(a.body, "api_burst") {
		t.Errorf("four messages, more than the burst: status %d (%s), want 413 naming api_burst", a.status, a.body)
	}
	// Seconds pass between the steps on a loaded machine, refilling the
	// bucket a little: the burst is spent by one array of three.
	three := "[" + strings.Repeat(sendMsg+",", 2) + sendMsg + "]"
	if a := httpDo(t, c, http.MethodPost, sendURL(s, botHost), auth, three); a.status != 202 {
		t.Fatalf("three messages within the burst: status %d (%s), want 202", a.status, a.body)
	}
	a := httpDo(t, c, http.MethodPost, sendURL(s, botHost), auth, three)
	if a.status != 429 {
		t.Fatalf("three more at once: status %d (%s), want 429", a.status, a.body)
	}
	if n, err := strconv.Atoi(a.retryAfter); err != nil || n < 1 || n > 3 {
		t.Errorf("Retry-After %q, want 1 to 3 seconds", a.retryAfter)
	}
	if !strings.Contains(a.body, "api_rate") {
		t.Errorf("429 body %q does not name api_rate", a.body)
	}
	if a := httpDo(t, c, http.MethodPost, sendURL(s, other), auth, three); a.status != 202 {
		t.Errorf("another bot host: status %d (%s), want 202: the limit is per host", a.status, a.body)
	}
	n, _ := strconv.Atoi(a.retryAfter)
	time.Sleep(time.Duration(n) * time.Second)
	if a := httpDo(t, c, http.MethodPost, sendURL(s, botHost), auth, sendMsg); a.status != 202 {
		t.Errorf("after Retry-After: status %d (%s), want 202", a.status, a.body)
	}
	if got := metric(t, s, `parley_http_refused_total{cause="api_rate"}`); got != 1 {
		t.Errorf("api_rate refusals = %v, want 1", got)
	}
}

func TestSendAPIThrottlesWrongTokens(t *testing.T) {
	const other = "other.localhost"
	s := startSendAPI(t, nil, func(c *conf.Config) { c.HTTP.TokenFailures = 3 },
		parleytest.WithBot(other, "http://127.0.0.1:1/", func(h *conf.Host) { webhook.OptionsOf(h).APIToken = sendToken }))
	guesser, neighbour := httpFrom(t, "127.0.0.1"), httpFrom(t, "127.0.0.2")
	right := "Bearer " + sendToken
	steps := []struct {
		name   string
		client *http.Client
		host   string
		auth   string
		want   int
	}{
		{"a first wrong token is 401", guesser, botHost, "Bearer guess-1", 401},
		{"a second, on another host, is 401", guesser, other, "Bearer guess-2", 401},
		{"a missing token counts too: 401", guesser, botHost, "", 401},
		{"past token_failures a wrong token is 429", guesser, botHost, "Bearer guess-4", 429},
		{"and so is the right token from that address", guesser, botHost, right, 429},
		{"on any host", guesser, other, right, 429},
		{"the right token from another address is accepted", neighbour, botHost, right, 202},
		{"a wrong token from another address is only 401", neighbour, botHost, "Bearer oops", 401},
	}
	for _, st := range steps {
		a := httpDo(t, st.client, http.MethodPost, sendURL(s, st.host), st.auth, sendMsg)
		if a.status != st.want {
			t.Fatalf("%s: status %d (%s), want %d", st.name, a.status, a.body, st.want)
		}
		if st.want == 429 {
			if n, err := strconv.Atoi(a.retryAfter); err != nil || n < 1 || n > 60 {
				t.Errorf("%s: Retry-After %q, want 1 to 60 seconds", st.name, a.retryAfter)
			}
			if !strings.Contains(a.body, "token_failures") {
				t.Errorf("%s: body %q does not name token_failures", st.name, a.body)
			}
		}
	}
	for cause, want := range map[string]float64{"unauthorized": 4, "token_failures": 3} {
		if got := metric(t, s, `parley_http_refused_total{cause="`+cause+`"}`); got != want {
			t.Errorf("%s refusals = %v, want %v", cause, got, want)
		}
	}
}

// nonLoopbackIP returns an IP address of this machine that is not a
// loopback one: connections from it to 127.0.0.1 are from afar as far as
// the server can tell.
func nonLoopbackIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			// Check that it can reach loopback listeners at all.
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: n.IP}, Timeout: 2 * time.Second}
			c, err := d.DialContext(context.Background(), "tcp", l.Addr().String())
			l.Close()
			if err == nil {
				c.Close()
				return n.IP.String()
			}
		}
	}
	t.Skip("this machine has no non-loopback IPv4 address that reaches 127.0.0.1")
	return ""
}

func TestMetricsAccess(t *testing.T) {
	const token = "m3trics-token"
	far := nonLoopbackIP(t)
	open := parleytest.Start(t)
	locked := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) {
		c.HTTP.MetricsToken = token
		c.HTTP.TokenFailures = 1000
	}))
	tests := []struct {
		name string
		s    *parleytest.Server
		from string
		auth string
		want int
	}{
		{"without a token, loopback is served", open, "127.0.0.1", "", 200},
		{"without a token, all of 127/8 is loopback", open, "127.0.0.2", "", 200},
		{"without a token, another address is refused", open, far, "", 403},
		{"without a token, another address is refused whatever it sends", open, far, "Bearer anything", 403},
		{"with a token, it is served from afar", locked, far, "Bearer " + token, 200},
		{"with a token, a lowercase scheme is fine", locked, far, "bearer " + token, 200},
		{"with a token, loopback needs it too (a reverse proxy is loopback)", locked, "127.0.0.1", "", 401},
		{"with a token, loopback with it is served", locked, "127.0.0.1", "Bearer " + token, 200},
		{"with a token, a wrong one is refused", locked, far, "Bearer " + token + "x", 401},
		{"with a token, none is refused", locked, far, "", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := httpDo(t, httpFrom(t, tt.from), http.MethodGet, tt.s.HTTPURL+"/metrics", tt.auth, "")
			if a.status != tt.want {
				t.Fatalf("status %d, want %d; body:\n%.300s", a.status, tt.want, a.body)
			}
			served := strings.Contains(a.body, "parley_c2s_sessions")
			if served != (tt.want == 200) {
				t.Errorf("metrics in the answer: %v, want %v; body:\n%.300s", served, tt.want == 200, a.body)
			}
			if tt.want != 200 && !strings.Contains(a.body, "metrics_token") {
				t.Errorf("refusal %q does not say how to get in (metrics_token)", a.body)
			}
		})
	}
	if got := metric(t, open, `parley_http_refused_total{cause="metrics_forbidden"}`); got != 2 {
		t.Errorf("metrics_forbidden refusals = %v, want 2", got)
	}
}

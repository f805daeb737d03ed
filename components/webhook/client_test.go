package webhook

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/xmpp"
)

// countConns makes srv count the connections it accepts and closes.
func countConns(srv *httptest.Server) (accepted, closed *atomic.Int64) {
	accepted, closed = new(atomic.Int64), new(atomic.Int64)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			accepted.Add(1)
		case http.StateClosed, http.StateHijacked:
			closed.Add(1)
		}
	}
	return accepted, closed
}

// newPoster returns a component posting to url (its workers idle: tests
// call post themselves) and a worker's scratch space.
func newPoster(t *testing.T, url string, edit func(*Config)) (*Component, *worker) {
	t.Helper()
	cfg := Config{Domain: "bots.example", PostURL: url, Router: &recorder{}, Concurrency: 2, PostMessages: true, Timeout: 5 * time.Second,
		Logger: slog.New(slog.DiscardHandler)}
	if edit != nil {
		edit(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c, c.newWorker()
}

// postBody posts body and returns the answer's status, Content-Type and
// body, or the failure's cause.
func postBody(c *Component, w *worker, body string) (status int, ct, got string, err error) {
	a, err := c.post(c.ctx, w, []byte(body))
	if err != nil {
		return 0, "", "", err
	}
	return a.status, a.contentType, string(a.body), nil
}

func causeOf(err error) string {
	var f *failure
	if errors.As(err, &f) {
		return f.cause
	}
	return ""
}

func TestLeanClientAgainstNetHTTPServers(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		tls     bool
		http2   bool // the TLS server also offers h2
		// want is the answer's body and Content-Type; conns how many
		// connections three requests take.
		want, wantType string
		wantStatus     int
		conns          int64
	}{
		{name: "a Content-Length answer, connection kept", wantStatus: 200, want: `{"body":"hi"}`, wantType: "application/json", conns: 1,
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Length", "13")
				_, _ = io.WriteString(w, `{"body":"hi"}`)
			}},
		{name: "a chunked answer, connection kept", wantStatus: 200, want: strings.Repeat("x", 10000) + "end", wantType: "text/plain", conns: 1,
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				_, _ = io.WriteString(w, strings.Repeat("x", 10000))
				w.(http.Flusher).Flush()
				_, _ = io.WriteString(w, "end")
			}},
		{name: "Connection: close takes a connection per request", wantStatus: 200, want: "bye", wantType: "text/plain; charset=utf-8", conns: 3,
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Connection", "close")
				_, _ = io.WriteString(w, "bye")
			}},
		{name: "interim 1xx answers are skipped", wantStatus: 201, want: "made", wantType: "text/plain; charset=utf-8", conns: 1,
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Link", "</a.css>; rel=preload")
				w.WriteHeader(http.StatusEarlyHints)
				w.WriteHeader(http.StatusProcessing)
				w.WriteHeader(http.StatusCreated)
				_, _ = io.WriteString(w, "made")
			}},
		{name: "204 has no body", wantStatus: 204, conns: 1,
			handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }},
		{name: "a 404 is an answer, its body read", wantStatus: 404, want: "404 page not found\n", wantType: "text/plain; charset=utf-8", conns: 1,
			handler: http.NotFound},
		{name: "TLS, connection kept", tls: true, wantStatus: 200, want: "secure", wantType: "text/plain; charset=utf-8", conns: 1,
			handler: func(w http.ResponseWriter, r *http.Request) {
				if r.TLS == nil || r.ProtoMajor != 1 {
					http.Error(w, "not HTTP/1.1 over TLS", 500)
					return
				}
				_, _ = io.WriteString(w, "secure")
			}},
		{name: "TLS to a server that offers h2 speaks HTTP/1.1", tls: true, http2: true, wantStatus: 200, want: "HTTP/1.1", wantType: "text/plain; charset=utf-8", conns: 1,
			handler: func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.Proto) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			var mu sync.Mutex
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				got = append(got, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Content-Type")+" "+string(b))
				mu.Unlock()
				tt.handler(w, r)
			}))
			accepted, _ := countConns(srv)
			var tc *tls.Config
			if tt.tls {
				srv.EnableHTTP2 = tt.http2
				srv.StartTLS()
				tc = srv.Client().Transport.(*http.Transport).TLSClientConfig
			} else {
				srv.Start()
			}
			defer srv.Close()
			c, w := newPoster(t, srv.URL+"/hook?x=1", func(cfg *Config) { cfg.TLSConfig = tc })
			if c.lean == nil {
				t.Fatal("the component does not use its own client")
			}
			for i := range 3 {
				status, ct, body, err := postBody(c, w, fmt.Sprintf(`{"n":%d}`, i))
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if status != tt.wantStatus || body != tt.want || ct != tt.wantType {
					t.Fatalf("request %d: %d %q %q, want %d %q %q", i, status, ct, truncate([]byte(body)), tt.wantStatus, tt.wantType, truncate([]byte(tt.want)))
				}
			}
			if n := accepted.Load(); n != tt.conns {
				t.Errorf("%d connections for 3 requests, want %d", n, tt.conns)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 3 || got[2] != `POST /hook?x=1 application/json {"n":2}` {
				t.Errorf("the server got %q", got)
			}
		})
	}
}

func TestLeanClientRequestIsWellFormed(t *testing.T) {
	reqs := make(chan *http.Request, 1)
	bodies := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		reqs <- r
		bodies <- string(b)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c, w := newPoster(t, srv.URL, func(cfg *Config) {
		cfg.Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		cfg.Headers = map[string]string{
			"authorization": "  Bearer t\t", "X-Two": "a b", "Host": "evil.example", "Content-Length": "1",
			"Content-Type": "text/plain", "User-Agent": "other", "Webhook-Id": "forged",
		}
	})
	body := `{"to":"echo@bots.example"}`
	if _, _, _, err := postBody(c, w, body); err != nil {
		t.Fatal(err)
	}
	r := <-reqs
	got := <-bodies
	h := r.Header
	checks := []struct{ name, got, want string }{
		{"method", r.Method, "POST"},
		{"path", r.URL.RequestURI(), "/"},
		{"proto", r.Proto, "HTTP/1.1"},
		{"host", r.Host, strings.TrimPrefix(srv.URL, "http://")},
		{"body", got, body},
		{"content-length", h.Get("Content-Length"), fmt.Sprint(len(body))},
		{"content-type", h.Get("Content-Type"), "application/json"},
		{"user-agent", h.Get("User-Agent"), "Parley"},
		{"authorization", h.Get("Authorization"), "Bearer t"},
		{"x-two", h.Get("X-Two"), "a b"},
		{"webhook-id", h.Get("Webhook-Id"), string(w.id)},
		{"one webhook-id", fmt.Sprint(len(h.Values("Webhook-Id"))), "1"},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s: %q, want %q", ck.name, ck.got, ck.want)
		}
	}
	var unix int64
	if _, err := fmt.Sscan(h.Get("Webhook-Timestamp"), &unix); err != nil {
		t.Fatalf("webhook-timestamp %q: %v", h.Get("Webhook-Timestamp"), err)
	}
	if want := Sign(c.key, h.Get("Webhook-Id"), unix, []byte(got)); h.Get("Webhook-Signature") != want {
		t.Errorf("webhook-signature %q, want %q", h.Get("Webhook-Signature"), want)
	}
}

func TestNewRefusesHeadersThatWouldBreakTheRequest(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string]string
		want    string // in the error; "" for none
	}{
		{"CR LF in a value", map[string]string{"X-A": "a\r\nX-Injected: yes"}, "control characters such as CR or LF"},
		{"LF alone", map[string]string{"X-A": "a\nb"}, "control characters"},
		{"CR alone", map[string]string{"X-A": "a\rb"}, "control characters"},
		{"NUL", map[string]string{"X-A": "a\x00"}, "control characters"},
		{"a space in a name", map[string]string{"X A": "b"}, "not an HTTP token"},
		{"a colon in a name", map[string]string{"X-A:": "b"}, "not an HTTP token"},
		{"CR LF in a name", map[string]string{"X-A\r\nX-B": "b"}, "not an HTTP token"},
		{"an empty name", map[string]string{"": "b"}, "not an HTTP token"},
		{"a tab and UTF-8 are fine", map[string]string{"X-A": "a\tb é"}, ""},
	}
	for _, tt := range tests {
		for _, client := range []*http.Client{nil, http.DefaultClient} {
			t.Run(fmt.Sprintf("%s (net/http %v)", tt.name, client != nil), func(t *testing.T) {
				c, err := New(Config{Domain: "bots.example", PostURL: "http://127.0.0.1:1/", Router: &recorder{}, Headers: tt.headers, Client: client})
				if c != nil {
					defer c.Close(context.Background())
				}
				switch {
				case tt.want == "" && err != nil:
					t.Fatalf("New: %v", err)
				case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
					t.Fatalf("New: %v, want an error saying %q", err, tt.want)
				}
			})
		}
	}
}

// rawServer answers HTTP requests with bytes the test chooses.
type rawServer struct {
	url      string
	conns    atomic.Int64
	requests atomic.Int64
	// closed gets the number of each connection the server closes.
	closed chan int64
}

// newRawServer answers request reqNo (from 0) of connection connNo (from
// 0) with answer's raw bytes, then closes the connection when hangUp is
// set.
func newRawServer(t *testing.T, answer func(connNo, reqNo int64) (raw string, hangUp bool)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{url: "http://" + ln.Addr().String() + "/", closed: make(chan int64, 100)}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, conn)
			mu.Unlock()
			n := s.conns.Add(1) - 1
			wg.Go(func() {
				defer func() {
					conn.Close()
					s.closed <- n
				}()
				br := bufio.NewReader(conn)
				for i := int64(0); ; i++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					s.requests.Add(1)
					raw, hangUp := answer(n, i)
					if _, err := io.WriteString(conn, raw); err != nil || hangUp {
						return
					}
				}
			})
		}
	})
	return s
}

func TestLeanClientReadsAnswers(t *testing.T) {
	const okJSON = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"body\":\"hi\"}"
	tests := []struct {
		name       string
		raw        string
		hangUp     bool
		wantStatus int
		wantType   string
		wantBody   string
		wantRetry  time.Duration
		conns      int64 // for two requests
	}{
		{name: "Content-Length", raw: okJSON, wantStatus: 200, wantType: "application/json", wantBody: `{"body":"hi"}`, conns: 1},
		{name: "chunks with extensions and trailers",
			raw:        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n3;ext=1\r\n{\"b\r\nA \r\nody\":\"hi\"}\r\n0\r\nX-Trailer: t\r\n\r\n",
			wantStatus: 200, wantType: "application/json", wantBody: `{"body":"hi"}`, conns: 1},
		{name: "chunked wins over Content-Length",
			raw:        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
			wantStatus: 200, wantBody: "ok", conns: 1},
		{name: "HTTP/1.0 delimited by the end of the connection", raw: "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"body\":\"hi\"}", hangUp: true,
			wantStatus: 200, wantType: "application/json", wantBody: `{"body":"hi"}`, conns: 2},
		{name: "HTTP/1.0 keep-alive", raw: "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok",
			wantStatus: 200, wantBody: "ok", conns: 1},
		{name: "HTTP/1.0 knows no chunks", raw: "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nraw", hangUp: true,
			wantStatus: 200, wantBody: "raw", conns: 2},
		{name: "Connection: close", raw: "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\nok", hangUp: true,
			wantStatus: 200, wantBody: "ok", conns: 2},
		{name: "100 Continue and 103 are skipped", raw: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + okJSON,
			wantStatus: 200, wantType: "application/json", wantBody: `{"body":"hi"}`, conns: 1},
		{name: "bare LF line ends", raw: "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", wantStatus: 200, wantBody: "ok", conns: 1},
		{name: "a status line without a reason", raw: "HTTP/1.1 204\r\n\r\n", wantStatus: 204, conns: 1},
		{name: "204 and 304 have no body whatever the headers say", raw: "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", wantStatus: 304, conns: 1},
		{name: "Retry-After", raw: "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n", wantStatus: 429, wantRetry: 7 * time.Second, conns: 1},
		{name: "header names in any case, values trimmed", raw: "HTTP/1.1 200 OK\r\ncontent-TYPE: \t application/json \r\nCONTENT-LENGTH: 2\r\n\r\n{}",
			wantStatus: 200, wantType: "application/json", wantBody: "{}", conns: 1},
		{name: "a folded Content-Type", raw: "HTTP/1.1 200 OK\r\nContent-Type: application/json;\r\n charset=utf-8\r\nX-Other: a\r\n b\r\nContent-Length: 2\r\n\r\n{}",
			wantStatus: 200, wantType: "application/json; charset=utf-8", wantBody: "{}", conns: 1},
		{name: "the same Content-Length twice", raw: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", wantStatus: 200, wantBody: "ok", conns: 1},
		{name: "a header line longer than the read buffer", raw: "HTTP/1.1 200 OK\r\nX-Long: " + strings.Repeat("a", 10000) + "\r\nContent-Type: " + strings.Repeat("b", 5000) + "\r\nContent-Length: 2\r\n\r\nok",
			wantStatus: 200, wantType: strings.Repeat("b", 5000), wantBody: "ok", conns: 1},
		{name: "bytes after the answer drop the connection", raw: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK", wantStatus: 200, wantBody: "ok", conns: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newRawServer(t, func(_, _ int64) (string, bool) { return tt.raw, tt.hangUp })
			c, w := newPoster(t, s.url, nil)
			for i := range 2 {
				if tt.hangUp && i == 1 {
					<-s.closed // no race with the server's close
				}
				a, err := c.post(c.ctx, w, []byte("{}"))
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if a.status != tt.wantStatus || a.contentType != tt.wantType || string(a.body) != tt.wantBody || a.retryAfter != tt.wantRetry {
					t.Fatalf("request %d: %d %q %q %v, want %d %q %q %v", i, a.status, truncate([]byte(a.contentType)), a.body, a.retryAfter,
						tt.wantStatus, truncate([]byte(tt.wantType)), tt.wantBody, tt.wantRetry)
				}
			}
			if n := s.conns.Load(); n != tt.conns {
				t.Errorf("%d connections for 2 requests, want %d", n, tt.conns)
			}
		})
	}
}

func TestLeanClientRefusesMalformedAnswers(t *testing.T) {
	tests := []struct {
		name, raw string
		want      string // in the error
	}{
		{"garbage", "garbage\r\n\r\n", "malformed status line"},
		{"a status that is not a number", "HTTP/1.1 2x0 OK\r\n\r\n", "malformed status line"},
		{"a four-digit status", "HTTP/1.1 2000 OK\r\n\r\n", "malformed status line"},
		{"HTTP/2 in text", "HTTP/2.0 200 OK\r\n\r\n", "malformed status line"},
		{"a header without a colon", "HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n", "malformed header line"},
		{"a space in a header name", "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "malformed header name"},
		{"a first header line folded", "HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", "malformed first header line"},
		{"a folded Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n 2\r\n\r\n", "folded header line"},
		{"a Content-Length that is not a number", "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", "bad Content-Length"},
		{"a negative Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"},
		{"an empty Content-Length", "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", "empty Content-Length"},
		{"two different Content-Lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc", "several different Content-Length"},
		{"a Transfer-Encoding other than chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported transfer encoding"},
		{"two Transfer-Encodings", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "too many transfer encodings"},
		{"a bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed chunk size"},
		{"a chunk size of 17 digits", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000001\r\n", "malformed chunk size"},
		{"a chunk without its CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n", "malformed chunk end"},
		{"101 Switching Protocols", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", "unexpected 101"},
		{"too many 1xx", strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 6) + "HTTP/1.1 204 No Content\r\n\r\n", "too many 1xx"},
		{"a body cut short", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "unexpected EOF"},
		{"headers cut short", "HTTP/1.1 200 OK\r\nContent-Le", "unexpected EOF"},
		{"headers over 1 MiB", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", maxHeaderBytes) + "\r\n\r\n", "longer than"},
		// Found by FuzzReadResponseDifferential: net/http refuses these,
		// and the two clients must frame an answer alike.
		{"a control character in a header", "HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 0\r\n\r\n", "a control character in header line"},
		{"a chunk line ending in a bare LF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n", "does not end in CRLF"},
		{"a CR inside a chunk line", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r;x\r\nok\r\n0\r\n\r\n", "does not end in CRLF"},
		{"a chunk size after white space", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n 2\r\nok\r\n0\r\n\r\n", "malformed chunk size"},
		{"trailers ending in a bare LF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\n", "trailer line that does not end in CRLF"},
		{"a malformed trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nno colon\r\n\r\n", "malformed trailer line"},
		{"trailers over 4 KiB", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + strings.Repeat("a", 4096) + "\r\n\r\n", "longer than"},
		{"tiny chunks with long extensions", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
			strings.Repeat("1;"+strings.Repeat("e", 1000)+"\r\nx\r\n", 20) + "0\r\n\r\n", "too much framing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newRawServer(t, func(_, _ int64) (string, bool) { return tt.raw, true })
			c, w := newPoster(t, s.url, nil)
			_, err := c.post(c.ctx, w, []byte("{}"))
			if causeOf(err) != causeConnect {
				t.Fatalf("err = %v, want a connect failure", err)
			}
			// The failure given to the sender is today's; the reason is
			// in the log. Read it from the client directly.
			var a answer
			err = c.lean.do(time.Now().Add(5*time.Second), []byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"), &a)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("do: %v, want an error saying %q", err, tt.want)
			}
			if n := s.requests.Load(); n != 2 {
				t.Errorf("the server got %d requests, want 2 (no retry)", n)
			}
		})
	}
}

func TestLeanClientRefusesAnswersOver1MiB(t *testing.T) {
	big := strings.Repeat("a", maxAnswer+1)
	tests := []struct{ name, raw string }{
		{"Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: " + fmt.Sprint(len(big)) + "\r\n\r\n" + big},
		{"chunks", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + fmt.Sprintf("%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n", maxAnswer, big[:maxAnswer], 1, "a")},
		{"the end of the connection", "HTTP/1.0 200 OK\r\n\r\n" + big},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newRawServer(t, func(_, _ int64) (string, bool) { return tt.raw, true })
			c, w := newPoster(t, s.url, nil)
			_, err := c.post(c.ctx, w, []byte("{}"))
			var f *failure
			if !errors.As(err, &f) || f.cause != causeReply || !strings.Contains(f.err.Text, "larger than 1 MiB") {
				t.Fatalf("err = %v, want a bad_reply failure for an answer over 1 MiB", err)
			}
		})
	}
	t.Run("exactly 1 MiB is fine", func(t *testing.T) {
		s := newRawServer(t, func(_, _ int64) (string, bool) {
			return "HTTP/1.1 200 OK\r\nContent-Length: " + fmt.Sprint(maxAnswer) + "\r\n\r\n" + big[:maxAnswer], false
		})
		c, w := newPoster(t, s.url, nil)
		a, err := c.post(c.ctx, w, []byte("{}"))
		if err != nil || len(a.body) != maxAnswer {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestLeanClientDropsAConnectionTheServerClosedWhileIdle(t *testing.T) {
	t.Run("a raw server that closes after each answer", func(t *testing.T) {
		s := newRawServer(t, func(connNo, _ int64) (string, bool) {
			return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d", connNo), true
		})
		c, w := newPoster(t, s.url, nil)
		for i := range 3 {
			if i > 0 {
				<-s.closed // the kept connection is closed: the next request finds out
			}
			_, _, body, err := postBody(c, w, "{}")
			if err != nil || body != fmt.Sprint(i) {
				t.Fatalf("request %d: %q, %v; want the answer of connection %d", i, body, err, i)
			}
		}
		// Each closed connection is seen before a request goes on it.
		if s.requests.Load() != 3 || c.lean.retried.Load() != 0 || c.Metrics().Requests() != 3 {
			t.Fatalf("the server got %d requests, %d retried, %d counted; want 3, 0 and 3",
				s.requests.Load(), c.lean.retried.Load(), c.Metrics().Requests())
		}
	})
	t.Run("net/http with an idle timeout", func(t *testing.T) {
		var calls atomic.Int64
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			_, _ = io.WriteString(w, "ok")
		}))
		srv.Config.IdleTimeout = 20 * time.Millisecond
		accepted, closed := countConns(srv)
		srv.Start()
		defer srv.Close()
		c, w := newPoster(t, srv.URL, nil)
		for i := range 2 {
			if i > 0 {
				for closed.Load() < 1 {
					time.Sleep(5 * time.Millisecond)
				}
			}
			if _, _, body, err := postBody(c, w, "{}"); err != nil || body != "ok" {
				t.Fatalf("request %d: %q, %v", i, body, err)
			}
		}
		if calls.Load() != 2 || accepted.Load() != 2 || c.lean.retried.Load() != 0 {
			t.Fatalf("%d calls, %d connections, %d retried; want 2, 2 and 0 (each request handled exactly once)",
				calls.Load(), accepted.Load(), c.lean.retried.Load())
		}
	})
	t.Run("a request the webhook took on a kept connection and dropped is not sent again", func(t *testing.T) {
		s := newRawServer(t, func(_, reqNo int64) (string, bool) {
			if reqNo == 0 {
				return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
			}
			return "", true // read the request, then hang up without a word
		})
		c, w := newPoster(t, s.url, nil)
		if _, err := c.post(c.ctx, w, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.post(c.ctx, w, []byte("{}")); causeOf(err) != causeConnect {
			t.Fatalf("err = %v, want a connect failure", err)
		}
		if s.requests.Load() != 2 || s.conns.Load() != 1 || c.lean.retried.Load() != 0 {
			t.Fatalf("%d requests on %d connections, %d retried; want 2, 1 and 0", s.requests.Load(), s.conns.Load(), c.lean.retried.Load())
		}
	})
	t.Run("a fresh connection closed without an answer is not retried", func(t *testing.T) {
		s := newRawServer(t, func(_, _ int64) (string, bool) { return "", true })
		c, w := newPoster(t, s.url, nil)
		if _, err := c.post(c.ctx, w, []byte("{}")); causeOf(err) != causeConnect {
			t.Fatalf("err = %v, want a connect failure", err)
		}
		if s.requests.Load() != 1 || c.lean.retried.Load() != 0 {
			t.Fatalf("the server got %d requests, %d retried; want 1 and 0", s.requests.Load(), c.lean.retried.Load())
		}
	})
	t.Run("a kept connection closed after the first byte of the answer is not retried", func(t *testing.T) {
		s := newRawServer(t, func(_, reqNo int64) (string, bool) {
			if reqNo == 0 {
				return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
			}
			return "HTTP/1.1 20", true
		})
		c, w := newPoster(t, s.url, nil)
		if _, err := c.post(c.ctx, w, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.post(c.ctx, w, []byte("{}")); causeOf(err) != causeConnect {
			t.Fatalf("err = %v, want a connect failure", err)
		}
		if s.requests.Load() != 2 || s.conns.Load() != 1 || c.lean.retried.Load() != 0 {
			t.Fatalf("%d requests on %d connections, %d retried; want 2, 1 and 0", s.requests.Load(), s.conns.Load(), c.lean.retried.Load())
		}
	})
}

func TestLeanClientTimeoutsAndShutdown(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if strings.Contains(string(b), "hang@") {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"body":"pong"}`)
	}))
	defer srv.Close()
	defer close(release)

	t.Run("a hung webhook times out, other conversations go on", func(t *testing.T) {
		rec := &recorder{}
		c, err := New(Config{Domain: "bots.example", PostURL: srv.URL, Router: rec, Concurrency: 2, PostMessages: true,
			Timeout: 400 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		c.HandleStanza(mustStanza(t, `<message from='alice@example/a' to='hang@bots.example' type='chat' id='h'><body>x</body></message>`))
		for i := range 5 {
			c.HandleStanza(mustStanza(t, fmt.Sprintf(`<message from='bob@example/b' to='echo@bots.example' type='chat' id='e%d'><body>x</body></message>`, i)))
		}
		got := waitRouted(t, rec, 6)
		for i, st := range got[:5] {
			if st.Type != "chat" || botBodyOf(st) != "pong" {
				t.Fatalf("stanza %d: %s, want the 5 pongs before the timeout", i, xmlOf(st))
			}
		}
		e := got[5]
		if e.Type != "error" || e.ID != "h" || xmpp.ParseStanzaError(e.El).Condition != xmpp.RemoteServerTimeout {
			t.Fatalf("got %s, want remote-server-timeout for h", xmlOf(e))
		}
		if c.Metrics().Failures(causeTimeout) != 1 {
			t.Fatalf("timeout failures %d, want 1", c.Metrics().Failures(causeTimeout))
		}
	})

	t.Run("shutdown interrupts a request in flight", func(t *testing.T) {
		rec := &recorder{}
		c, err := New(Config{Domain: "bots.example", PostURL: srv.URL, Router: rec, Concurrency: 1, PostIQ: true, Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		c.HandleStanza(mustStanza(t, `<iq from='alice@example/a' to='hang@bots.example' type='get' id='q'><query xmlns='urn:x'/></iq>`))
		for c.Metrics().Requests() == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_ = c.Close(ctx)
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("Close took %v", d)
		}
		got := waitRouted(t, rec, 1)
		if xmpp.ParseStanzaError(got[0].El).Condition != xmpp.ServiceUnavailable || c.Metrics().Failures(causeShutdown) != 1 {
			t.Fatalf("got %s, want service-unavailable counted as shutdown", xmlOf(got[0]))
		}
	})

	t.Run("a webhook that accepts but never answers is a timeout", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		c, w := newPoster(t, "http://"+ln.Addr().String()+"/", func(cfg *Config) { cfg.Timeout = 200 * time.Millisecond })
		// Nothing accepts: the kernel completes the connection, and
		// nothing answers.
		start := time.Now()
		_, err = c.post(c.ctx, w, []byte("{}"))
		if causeOf(err) != causeTimeout || time.Since(start) > 3*time.Second {
			t.Fatalf("err = %v after %v, want a timeout after 200ms", err, time.Since(start))
		}
	})
}

func TestLeanClientClosesIdleConnections(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	accepted, closed := countConns(srv)
	srv.Start()
	defer srv.Close()

	t.Run("after the idle timeout", func(t *testing.T) {
		c, w := newPoster(t, srv.URL, nil)
		c.lean.idleTimeout = 50 * time.Millisecond
		before := closed.Load()
		for range 2 {
			if _, _, _, err := postBody(c, w, "{}"); err != nil {
				t.Fatal(err)
			}
		}
		if c.lean.idleConns() != 1 {
			t.Fatalf("%d idle connections, want 1", c.lean.idleConns())
		}
		deadline := time.Now().Add(5 * time.Second)
		for closed.Load() == before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if c.lean.idleConns() != 0 || closed.Load() != before+1 {
			t.Fatalf("%d idle connections and %d closed; want 0 and 1", c.lean.idleConns(), closed.Load()-before)
		}
	})
	t.Run("on Close, and at most Concurrency are kept", func(t *testing.T) {
		rec := &recorder{}
		c, err := New(Config{Domain: "bots.example", PostURL: srv.URL, Router: rec, Concurrency: 3, PostMessages: true})
		if err != nil {
			t.Fatal(err)
		}
		a0, c0 := accepted.Load(), closed.Load()
		for i := range 30 {
			c.HandleStanza(mustStanza(t, fmt.Sprintf(`<message from='u%d@example/a' to='echo@bots.example' id='%d'><body>x</body></message>`, i, i)))
		}
		for c.depth() > 0 {
			time.Sleep(5 * time.Millisecond)
		}
		if n := accepted.Load() - a0; n < 1 || n > 3 {
			t.Fatalf("%d connections for 3 workers", n)
		}
		if err := c.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for closed.Load()-c0 < accepted.Load()-a0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if open := (accepted.Load() - a0) - (closed.Load() - c0); open != 0 {
			t.Fatalf("%d connections left open after Close", open)
		}
	})
}

func TestClientChoice(t *testing.T) {
	tests := []struct {
		name, url string
		client    *http.Client
		lean      bool
	}{
		{"http", "http://127.0.0.1:8080/hook", nil, true},
		{"https", "https://hooks.example.com/xmpp", nil, true},
		{"IPv6", "http://[::1]:8080/", nil, true},
		{"a Client set by the caller", "http://127.0.0.1:8080/", http.DefaultClient, false},
		{"user information", "http://user:pw@127.0.0.1:8080/", nil, false},
		{"a non-ASCII host", "http://bücher.example/", nil, false},
		{"another scheme", "ftp://127.0.0.1/", nil, false},
		{"no URL", "", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(Config{Domain: "bots.example", PostURL: tt.url, Router: &recorder{}, Client: tt.client})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(context.Background())
			if (c.lean != nil) != tt.lean || (c.lean == nil && c.client == nil) {
				t.Fatalf("lean client %v, want %v", c.lean != nil, tt.lean)
			}
		})
	}
	t.Run("the request head", func(t *testing.T) {
		h := newLeanClient("https://hooks.example.com:8443/a%20b?q=1#frag", leanOptions{
			headers: map[string]string{"x-b": "2", "X-A": "1", "webhook-id": "kept without a secret"}, maxConns: 1})
		want := "POST /a%20b?q=1 HTTP/1.1\r\nHost: hooks.example.com:8443\r\nUser-Agent: Parley\r\n" +
			"Content-Type: application/json\r\nWebhook-Id: kept without a secret\r\nX-A: 1\r\nX-B: 2\r\n"
		if string(h.head) != want || h.addr != "hooks.example.com:8443" || h.tlsConf.ServerName != "hooks.example.com" {
			t.Fatalf("head %q addr %s server name %s", h.head, h.addr, h.tlsConf.ServerName)
		}
		h = newLeanClient("http://127.0.0.1", leanOptions{headers: map[string]string{"Connection": "close"}})
		if !h.closeEach || h.addr != "127.0.0.1:80" || !strings.HasPrefix(string(h.head), "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n") {
			t.Fatalf("head %q addr %s closeEach %v", h.head, h.addr, h.closeEach)
		}
	})
}

// waitRouted waits for n routed stanzas.
func waitRouted(t *testing.T, rec *recorder, n int) []*xmpp.Stanza {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec.mu.Lock()
		got := append([]*xmpp.Stanza(nil), rec.got...)
		rec.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			if len(got) != n {
				t.Fatalf("%d stanzas routed, want %d", len(got), n)
			}
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func botBodyOf(st *xmpp.Stanza) string {
	if b := xmpp.Child(st.El, "", "body"); b != nil {
		return b.Text()
	}
	return ""
}

func xmlOf(st *xmpp.Stanza) string {
	var b strings.Builder
	w := xmpp.NewWriter(&b)
	_ = w.WriteElement(st.El)
	_ = w.Flush()
	return b.String()
}

// TestRedirects is issue #17's row 10: redirects were followed with the
// signed body and the signature to another port, and a loop cost 33
// requests per message. Now they are not followed unless
// follow_redirects is on, and then only to the webhook's origin, at most
// maxRedirects times; both clients (the lean one and net/http) behave
// alike.
func TestRedirects(t *testing.T) {
	var mu sync.Mutex
	var seen []string // "server method path signed? authorization"
	record := func(name string, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s %s %s %s sig=%v auth=%q", name, r.Method, r.URL.RequestURI(), b,
			r.Header.Get("Webhook-Signature") != "", r.Header.Get("Authorization")))
		mu.Unlock()
	}
	// Another origin: another port on the same address.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record("other", r)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"body":"other"}`)
	}))
	defer other.Close()
	var hook *httptest.Server
	hook = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record("hook", r)
		switch r.URL.Path {
		case "/307":
			http.Redirect(w, r, "/new", http.StatusTemporaryRedirect)
		case "/302":
			http.Redirect(w, r, "/new?x=1", http.StatusFound)
		case "/303":
			http.Redirect(w, r, "/new", http.StatusSeeOther)
		case "/absolute":
			// The same origin, written out, with the host in capitals.
			w.Header().Set("Location", strings.Replace(hook.URL, "http://", "HTTP://", 1)+"/new")
			w.WriteHeader(http.StatusPermanentRedirect)
		case "/other-port":
			http.Redirect(w, r, other.URL+"/new", http.StatusTemporaryRedirect)
		case "/other-host":
			// The same server under another name is another origin.
			http.Redirect(w, r, strings.Replace(hook.URL, "127.0.0.1", "localhost", 1)+"/new", http.StatusTemporaryRedirect)
		case "/https":
			http.Redirect(w, r, strings.Replace(hook.URL, "http://", "https://", 1)+"/new", http.StatusTemporaryRedirect)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusTemporaryRedirect)
		case "/chain":
			http.Redirect(w, r, "/chain1", http.StatusTemporaryRedirect)
		case "/chain1":
			http.Redirect(w, r, "/chain2", http.StatusPermanentRedirect)
		case "/chain2":
			http.Redirect(w, r, "/new", http.StatusMovedPermanently)
		case "/302-nowhere":
			w.WriteHeader(http.StatusFound)
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"body":"`+r.Method+`"}`)
		}
	}))
	defer hook.Close()
	const creds = ` sig=true auth="Bearer secret"`
	tests := []struct {
		path   string
		follow bool
		body   string // the answer followed to, or
		err    string // the failure's text
		cause  string
		seen   []string
	}{
		// Off, the default: the redirecting address sees the request
		// once, and nothing goes anywhere else.
		{"/307", false, "", "HTTP 307, a redirect, which is not followed: follow_redirects is off", causeRedirect,
			[]string{"hook POST /307 {}" + creds}},
		{"/other-port", false, "", "follow_redirects is off", causeRedirect,
			[]string{"hook POST /other-port {}" + creds}},
		{"/loop", false, "", "follow_redirects is off", causeRedirect,
			[]string{"hook POST /loop {}" + creds}},
		// A 3xx without a Location is no redirect: a status like any.
		// (post returns it; parseAnswer makes it a status failure.)
		{"/302-nowhere", false, "", "", "",
			[]string{"hook POST /302-nowhere {}" + creds}},

		// On: the same POST, signed, with its headers, on the origin.
		{"/307", true, `{"body":"POST"}`, "", "",
			[]string{"hook POST /307 {}" + creds, "hook POST /new {}" + creds}},
		{"/302", true, `{"body":"POST"}`, "", "",
			[]string{"hook POST /302 {}" + creds, "hook POST /new?x=1 {}" + creds}},
		{"/absolute", true, `{"body":"POST"}`, "", "",
			[]string{"hook POST /absolute {}" + creds, "hook POST /new {}" + creds}},
		{"/chain", true, `{"body":"POST"}`, "", "",
			[]string{"hook POST /chain {}" + creds, "hook POST /chain1 {}" + creds, "hook POST /chain2 {}" + creds, "hook POST /new {}" + creds}},
		{"/303", true, "", "a 303 asks for a GET", causeRedirect,
			[]string{"hook POST /303 {}" + creds}},
		// Another origin is never sent anything.
		{"/other-port", true, "", "it leads to another origin than post_url's", causeRedirect,
			[]string{"hook POST /other-port {}" + creds}},
		{"/other-host", true, "", "another origin", causeRedirect,
			[]string{"hook POST /other-host {}" + creds}},
		{"/https", true, "", "another origin", causeRedirect,
			[]string{"hook POST /https {}" + creds}},
		// A loop ends after maxRedirects hops: 4 requests, not 33.
		{"/loop", true, "", "more than 3 redirects", causeRedirect,
			[]string{"hook POST /loop {}" + creds, "hook POST /loop {}" + creds, "hook POST /loop {}" + creds, "hook POST /loop {}" + creds}},
	}
	for _, client := range []string{"lean", "net/http"} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s%s/follow=%v", client, tt.path, tt.follow), func(t *testing.T) {
				mu.Lock()
				seen = nil
				mu.Unlock()
				c, w := newPoster(t, hook.URL+tt.path, func(cfg *Config) {
					cfg.Headers = map[string]string{"Authorization": "Bearer secret"}
					cfg.Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
					cfg.FollowRedirects = tt.follow
					cfg.Retries = 2 // a redirect is not retried
					if client == "net/http" {
						cfg.Client = &http.Client{}
					}
				})
				if (c.lean != nil) != (client == "lean") {
					t.Fatalf("lean client %v", c.lean != nil)
				}
				before := c.metrics.requests.Load()
				status, _, body, err := postBody(c, w, "{}")
				if tt.err == "" {
					want := 200
					if tt.body == "" {
						want = 302
					}
					if err != nil || status != want || body != tt.body {
						t.Fatalf("%d %q %v, want %d %q", status, body, err, want, tt.body)
					}
				} else {
					var f *failure
					if !errors.As(err, &f) || f.cause != tt.cause || !strings.Contains(f.err.Text, tt.err) ||
						f.err.Condition != xmpp.ServiceUnavailable || f.err.Type != xmpp.ErrCancel {
						t.Fatalf("%d %q %v, want a %s failure cancel service-unavailable %q", status, body, err, tt.cause, tt.err)
					}
				}
				mu.Lock()
				defer mu.Unlock()
				if strings.Join(seen, "\n") != strings.Join(tt.seen, "\n") {
					t.Fatalf("the servers saw\n%s\nwant\n%s", strings.Join(seen, "\n"), strings.Join(tt.seen, "\n"))
				}
				if n := c.metrics.requests.Load() - before; n != int64(len(tt.seen)) {
					t.Fatalf("%d requests counted, want %d", n, len(tt.seen))
				}
			})
		}
	}
}

func TestLeanClientSmallChunksDoNotCountAsHeaders(t *testing.T) {
	// 400,000 one-byte chunks: 1.2 MB of chunk-size lines for a 400 KB
	// answer, which net/http reads; they are framing, not headers.
	var b strings.Builder
	b.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
	const n = 400_000
	for range n {
		b.WriteString("1\r\nx\r\n")
	}
	b.WriteString("0\r\nX-Trailer: 1\r\n\r\n")
	raw := b.String()
	s := newRawServer(t, func(_, _ int64) (string, bool) { return raw, false })
	c, w := newPoster(t, s.url, nil)
	a, err := c.post(c.ctx, w, []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.body) != n || s.requests.Load() != 1 {
		t.Fatalf("%d bytes after %d requests, want %d after 1", len(a.body), s.requests.Load(), n)
	}
}

func TestLeanClientKeepsAtMostConcurrencyIdle(t *testing.T) {
	// Eight requests at once on a client of Concurrency 2: eight
	// connections, of which two are kept when the answers are in.
	const n = 8
	arrived := make(chan struct{}, n)
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{}`)
	}))
	accepted, closed := countConns(srv)
	srv.Start()
	defer srv.Close()
	c, _ := newPoster(t, srv.URL, func(cfg *Config) { cfg.Concurrency = 2 })
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		w := c.newWorker()
		wg.Go(func() {
			_, err := c.post(c.ctx, w, []byte("{}"))
			errs <- err
		})
	}
	for range n {
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("the requests did not all arrive")
		}
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if accepted.Load() != n {
		t.Fatalf("%d connections for %d requests at once", accepted.Load(), n)
	}
	if idle := c.lean.idleConns(); idle != 2 {
		t.Fatalf("%d connections kept idle, want 2 (Concurrency)", idle)
	}
	deadline := time.Now().Add(5 * time.Second)
	for closed.Load() < n-2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if closed.Load() != n-2 {
		t.Fatalf("%d connections closed, want %d", closed.Load(), n-2)
	}
}

package webhook

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The lean client's answer reader (readResponse) fuzzed differentially
// against net/http's ReadResponse, read the way net/http's Transport reads
// an answer to a POST: 1xx answers other than 101 skipped (at most 5),
// the body read to its end. Both must agree on the status, the
// Content-Type, Retry-After and Location that the component uses, the
// body, and whether the connection may carry another request, or both
// must refuse the answer. The differences that are intended are the
// rules in answerDivergences, each with why.

// readOutcome is what one reader made of an answer.
type readOutcome struct {
	status      int
	contentType string
	retryAfter  time.Duration
	location    string // of a redirect with a Location, else ""
	body        string
	keep        bool
	err         error
}

// leanReadOutcome reads in with the lean client's reader.
func leanReadOutcome(in []byte) readOutcome {
	h := &leanClient{}
	var a answer
	keep, redirect, err := h.readResponse(bufio.NewReaderSize(bytes.NewReader(in), 4096), &a)
	if err != nil {
		return readOutcome{err: err}
	}
	o := readOutcome{status: a.status, contentType: a.contentType, retryAfter: a.retryAfter, body: string(a.body), keep: keep}
	if redirect {
		o.location = a.location
	}
	return o
}

// stdReadOutcome reads in with net/http, as its Transport does.
func stdReadOutcome(in []byte) readOutcome {
	br := bufio.NewReader(bytes.NewReader(in))
	req := &http.Request{Method: http.MethodPost}
	for n1xx := 0; ; n1xx++ {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return readOutcome{err: err}
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return readOutcome{err: errors.New("101")}
		}
		if resp.StatusCode < 200 {
			if n1xx >= max1xx {
				return readOutcome{err: errors.New("too many 1xx")}
			}
			continue
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
		if err != nil {
			return readOutcome{err: err}
		}
		if len(body) > maxAnswer {
			return readOutcome{err: errAnswerTooLarge}
		}
		o := readOutcome{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"),
			retryAfter: retryAfter(resp.Header.Get("Retry-After")), body: string(body), keep: !resp.Close}
		if isRedirect(resp.StatusCode) {
			o.location = resp.Header.Get("Location")
		}
		return o
	}
}

// answerDivergences are the intended differences: name, and whether it
// accounts for what the two readers did with in.
var answerDivergences = []struct {
	name    string
	applies func(in []byte, lean, std readOutcome) bool
}{
	// net/http reads a version HTTP/1.x for any x, and other majors; the
	// webhook's client speaks 1.0 and 1.1 only, and refuses the rest.
	{"a version other than HTTP/1.0 and HTTP/1.1", func(in []byte, lean, std readOutcome) bool {
		return lean.err != nil && std.err == nil && strings.Contains(lean.err.Error(), "malformed status line") &&
			!statusLines(in, func(l string) bool { return strings.HasPrefix(l, "HTTP/1.1 ") || strings.HasPrefix(l, "HTTP/1.0 ") })
	}},
	// net/http reads a header name with a space in it ("Bad Name: x")
	// and keeps it uncanonicalized; RFC 9110 §5.1 makes a field name a
	// token and RFC 9112 §5.1 forbids white space before the colon, so
	// the lean client refuses it rather than guess what was meant.
	{"a header name that is not a token", func(in []byte, lean, std readOutcome) bool {
		return lean.err != nil && std.err == nil && strings.Contains(lean.err.Error(), "malformed header name")
	}},
}

// statusLines reports whether every status line of in (the first line,
// and the one after each empty line) satisfies ok: a rough split, enough
// for the rules.
func statusLines(in []byte, ok func(string) bool) bool {
	first := true
	for _, l := range strings.Split(strings.ReplaceAll(string(in), "\r\n", "\n"), "\n") {
		if first && !ok(l) {
			return false
		}
		first = l == ""
	}
	return true
}

// compareReaders reports how the readers differ on in, "" when they agree
// or the difference is an intended one (named in rule).
func compareReaders(in []byte) (diff, rule string) {
	lean, std := leanReadOutcome(in), stdReadOutcome(in)
	switch {
	case lean.err != nil && std.err != nil:
		return "", ""
	case lean.err == nil && std.err == nil:
		d := lean.retryAfter - std.retryAfter
		// An HTTP date is counted from now, which moved between the two.
		sameRetry := d > -time.Second && d < time.Second
		if lean.status == std.status && lean.contentType == std.contentType && sameRetry &&
			lean.location == std.location && lean.body == std.body && lean.keep == std.keep {
			return "", ""
		}
	}
	for _, r := range answerDivergences {
		if r.applies(in, lean, std) {
			return "", r.name
		}
	}
	return describe("lean", lean) + "\n" + describe("net/http", std), ""
}

func describe(name string, o readOutcome) string {
	if o.err != nil {
		return name + ": refused: " + o.err.Error()
	}
	return fmt.Sprintf("%s: status %d, type %q, retry %v, location %q, body %q, keep %v",
		name, o.status, truncate([]byte(o.contentType)), o.retryAfter, truncate([]byte(o.location)), truncate([]byte(o.body)), o.keep)
}

// answerSeeds are answers the fuzz test starts from (with those of
// testdata/fuzz/FuzzReadResponseDifferential).
var answerSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"body\":\"hi\"}",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n3;ext=1\r\n{\"b\r\nA \r\nody\":\"hi\"}\r\n0\r\nX-Trailer: t\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"body\":\"hi\"}",
	"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nraw",
	"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
	"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
	"HTTP/1.1 204\r\n\r\n",
	"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
	"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 503 Service Unavailable\r\nRetry-After: Fri, 31 Dec 1999 23:59:59 GMT\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\ncontent-TYPE: \t application/json \r\nCONTENT-LENGTH: 2\r\n\r\n{}",
	"HTTP/1.1 200 OK\r\nContent-Type: application/json;\r\n charset=utf-8\r\nX-Other: a\r\n b\r\nContent-Length: 2\r\n\r\n{}",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 307 Temporary Redirect\r\nLocation: /new\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n",
	"garbage\r\n\r\n",
	"HTTP/1.1 2x0 OK\r\n\r\n",
	"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
	"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n 2\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n",
	"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
}

// TestReadResponseAgreesWithNetHTTP runs the differential check on the
// seeds, so that plain go test keeps it.
func TestReadResponseAgreesWithNetHTTP(t *testing.T) {
	for _, s := range answerSeeds {
		if diff, rule := compareReaders([]byte(s)); diff != "" {
			t.Errorf("%q:\n%s", s, diff)
		} else if rule != "" {
			t.Logf("%q: intended divergence: %s", s, rule)
		}
	}
}

func FuzzReadResponseDifferential(f *testing.F) {
	for _, s := range answerSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if diff, _ := compareReaders(in); diff != "" {
			t.Fatalf("%q:\n%s", in, diff)
		}
	})
}

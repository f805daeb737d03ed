package upload_test

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/parley-im/parley/components/upload"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

const (
	uploadDomain = "upload.localhost"
	testMax      = 1 << 20 // max_file_size of the test server
	testQuota    = 2 << 20 // quota_per_user of the test server
)

// env is a server with an upload host and users: alice and bob of
// localhost (allowed), eve of other.localhost (not allowed).
type env struct {
	s          *parleytest.Server
	svc        *upload.Service
	alice, bob *parleytest.Conn
	eve        *parleytest.Conn
}

func startEnv(t testing.TB, edit func(o *upload.Options)) *env {
	t.Helper()
	s := parleytest.StartSelfAddressed(t, func(c *conf.Config, httpAddr string) {
		o := &upload.Options{
			PublicURL:    "http://" + httpAddr,
			AllowedHosts: []string{"localhost"},
			MaxFileSize:  testMax,
			QuotaPerUser: testQuota,
		}
		if edit != nil {
			edit(o)
		}
		c.Hosts = append(c.Hosts, conf.Host{Name: "localhost"}, conf.Host{Name: "other.localhost"},
			conf.Host{Name: uploadDomain, Type: upload.HostType, Options: o})
		c.HTTP.TokenFailures = 1000 // tests send wrong tokens on purpose
	})
	h, ok := s.HostHandler(uploadDomain)
	if !ok {
		t.Fatal("no upload host")
	}
	s.AddUser("alice@localhost", "pw")
	s.AddUser("bob@localhost", "pw")
	s.AddUser("eve@other.localhost", "pw")
	return &env{
		s: s, svc: h.(*upload.Service),
		alice: s.Login("alice@localhost", "pw", "phone"),
		bob:   s.Login("bob@localhost", "pw", "phone"),
		eve:   s.Login("eve@other.localhost", "pw", "phone"),
	}
}

// slot is a slot as a client reads it.
type slot struct {
	PutURL string
	Header map[string]string
	GetURL string
}

// requestSlot asks for a slot and returns the answer.
func requestSlot(c *parleytest.Conn, filename string, size int64, contentType string) *xmpp.Stanza {
	attrs := fmt.Sprintf(" filename='%s' size='%d'", xmlAttr(filename), size)
	if contentType != "" {
		attrs += fmt.Sprintf(" content-type='%s'", xmlAttr(contentType))
	}
	return c.IQ("get", uploadDomain, "<request xmlns='urn:xmpp:http:upload:0'"+attrs+"/>")
}

func xmlAttr(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return strings.ReplaceAll(b.String(), "'", "&#39;")
}

// mustSlot requests a slot and fails the test unless it gets one.
func mustSlot(t testing.TB, c *parleytest.Conn, filename string, size int64, contentType string) slot {
	t.Helper()
	st := requestSlot(c, filename, size, contentType)
	c.ExpectResult(st, "slot request")
	el := xmpp.Child(st.El, upload.NS, "slot")
	if el == nil {
		t.Fatalf("slot answer without <slot/>: %s", c.String(st.El))
	}
	sl := slot{Header: map[string]string{}}
	if put := el.SelectElement("put"); put != nil {
		sl.PutURL = put.SelectAttrValue("url", "")
		for _, h := range put.SelectElements("header") {
			sl.Header[h.SelectAttrValue("name", "")] = h.Text()
		}
	}
	if get := el.SelectElement("get"); get != nil {
		sl.GetURL = get.SelectAttrValue("url", "")
	}
	if sl.PutURL == "" || sl.GetURL == "" || sl.Header["Authorization"] == "" {
		t.Fatalf("incomplete slot: %s", c.String(st.El))
	}
	return sl
}

// put PUTs body to url with headers (Content-Type among them) and returns
// the status.
func put(t testing.TB, url string, headers map[string]string, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// putSlot fills sl with body of type contentType and fails the test
// unless the answer is 201.
func putSlot(t testing.TB, sl slot, contentType string, body []byte) {
	t.Helper()
	h := map[string]string{"Content-Type": contentType}
	for k, v := range sl.Header {
		h[k] = v
	}
	if got := put(t, sl.PutURL, h, body); got != http.StatusCreated {
		t.Fatalf("PUT %s: %d; want 201", sl.PutURL, got)
	}
}

// get does a request of method to url with headers and returns the
// response, its body read.
func get(t testing.TB, method, url string, headers map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

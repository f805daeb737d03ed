package upload_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/components/upload"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// TestSlotPutGet: a slot, its PUT, then GET whole, by range and HEAD,
// with the headers that keep a browser from running the file.
func TestSlotPutGet(t *testing.T) {
	e := startEnv(t, nil)
	body := []byte("0123456789abcdef")
	tests := []struct {
		name, filename, contentType, disposition string
	}{
		{"an image is shown inline", "my juliet.jpg", "image/jpeg", `inline; filename="my juliet.jpg"`},
		{"html is an attachment", "page.html", "text/html; charset=utf-8", `attachment; filename=page.html`},
		{"a name in UTF-8 is encoded", "größe.txt", "text/plain", `attachment; filename*=utf-8''gr%C3%B6%C3%9Fe.txt`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sl := mustSlot(t, e.alice, tt.filename, int64(len(body)), tt.contentType)
			if sl.PutURL != sl.GetURL || !strings.HasSuffix(sl.GetURL, "/"+strings.ReplaceAll(tt.filename, " ", "%20")) &&
				!strings.Contains(tt.filename, "ö") {
				t.Errorf("URLs %s, %s; want one URL ending in the file name", sl.PutURL, sl.GetURL)
			}
			if resp, _ := get(t, "GET", sl.GetURL, nil); resp.StatusCode != http.StatusNotFound {
				t.Errorf("GET before the PUT: %d; want 404", resp.StatusCode)
			}
			putSlot(t, sl, tt.contentType, body)

			resp, got := get(t, "GET", sl.GetURL, nil)
			if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
				t.Fatalf("GET: %d %q; want 200 and the body", resp.StatusCode, got)
			}
			for k, want := range map[string]string{
				"Content-Type":            tt.contentType,
				"Content-Disposition":     tt.disposition,
				"X-Content-Type-Options":  "nosniff",
				"Content-Security-Policy": "default-src 'none'; media-src 'self'; frame-ancestors 'none'",
				"Accept-Ranges":           "bytes",
			} {
				if v := resp.Header.Get(k); v != want {
					t.Errorf("GET %s: %q; want %q", k, v, want)
				}
			}
			etag := resp.Header.Get("ETag")
			if etag == "" || resp.Header.Get("Last-Modified") == "" {
				t.Errorf("GET without ETag or Last-Modified: %v", resp.Header)
			}

			resp, got = get(t, "GET", sl.GetURL, map[string]string{"Range": "bytes=2-5"})
			if resp.StatusCode != http.StatusPartialContent || string(got) != "2345" ||
				resp.Header.Get("Content-Range") != "bytes 2-5/16" {
				t.Errorf("GET bytes=2-5: %d %q %q; want 206 \"2345\" bytes 2-5/16", resp.StatusCode, got, resp.Header.Get("Content-Range"))
			}
			resp, got = get(t, "HEAD", sl.GetURL, nil)
			if resp.StatusCode != http.StatusOK || len(got) != 0 || resp.Header.Get("Content-Length") != "16" {
				t.Errorf("HEAD: %d, %d bytes, Content-Length %q; want 200, none, 16", resp.StatusCode, len(got), resp.Header.Get("Content-Length"))
			}
			if resp, _ := get(t, "GET", sl.GetURL, map[string]string{"If-None-Match": etag}); resp.StatusCode != http.StatusNotModified {
				t.Errorf("GET If-None-Match: %d; want 304", resp.StatusCode)
			}

			// On disk under the slot's random name, nothing else.
			id := path.Base(path.Dir(sl.GetURL))
			if b, err := os.ReadFile(filepath.Join(e.svc.Dir(), id)); err != nil || !bytes.Equal(b, body) {
				t.Errorf("the file %s/%s: %q, %v", e.svc.Dir(), id, b, err)
			}
			if len(id) != 22 {
				t.Errorf("slot name %q; want 22 characters of base64url (128 bits)", id)
			}
		})
	}
	entries, _ := os.ReadDir(e.svc.Dir())
	if len(entries) != len(tests) {
		t.Errorf("%d entries in the uploads directory; want %d: no temporary file left", len(entries), len(tests))
	}
}

// TestPutRefusals: every PUT that must not fill a slot, and its status.
func TestPutRefusals(t *testing.T) {
	e := startEnv(t, nil)
	body := []byte("hello, world")
	headers := func(sl slot) map[string]string {
		return map[string]string{"Content-Type": "text/plain", "Authorization": sl.Header["Authorization"]}
	}
	tests := []struct {
		name string
		// edit changes the request for slot sl (alice's); other is a
		// slot of bob's for the same file.
		edit func(t *testing.T, sl, other slot) (url string, h map[string]string, body []byte)
		want int
	}{
		{"no Authorization", func(t *testing.T, sl, _ slot) (string, map[string]string, []byte) {
			h := headers(sl)
			delete(h, "Authorization")
			return sl.PutURL, h, body
		}, http.StatusUnauthorized},
		{"a wrong signature", func(t *testing.T, sl, _ slot) (string, map[string]string, []byte) {
			h := headers(sl)
			tok := h["Authorization"]
			last := tok[len(tok)-2] // not the last character: its low bits are padding
			flip := byte('A')
			if last == 'A' {
				flip = 'B'
			}
			h["Authorization"] = tok[:len(tok)-2] + string(flip) + tok[len(tok)-1:]
			return sl.PutURL, h, body
		}, http.StatusForbidden},
		{"a later expiry than signed", func(t *testing.T, sl, _ slot) (string, map[string]string, []byte) {
			h := headers(sl)
			exp, mac, _ := strings.Cut(strings.TrimPrefix(h["Authorization"], "Bearer "), ".")
			n, _ := strconv.ParseInt(exp, 10, 64)
			h["Authorization"] = "Bearer " + strconv.FormatInt(n+3600, 10) + "." + mac
			return sl.PutURL, h, body
		}, http.StatusForbidden},
		{"another user's token on this slot", func(t *testing.T, sl, other slot) (string, map[string]string, []byte) {
			return sl.PutURL, headers(other), body
		}, http.StatusForbidden},
		{"this slot's token on another user's slot", func(t *testing.T, sl, other slot) (string, map[string]string, []byte) {
			return other.PutURL, headers(sl), body
		}, http.StatusForbidden},
		{"larger than the slot", func(t *testing.T, sl, _ slot) (string, map[string]string, []byte) {
			return sl.PutURL, headers(sl), append(body, '!')
		}, http.StatusRequestEntityTooLarge},
		{"smaller than the slot", func(t *testing.T, sl, _ slot) (string, map[string]string, []byte) {
			return sl.PutURL, headers(sl), body[1:]
		}, http.StatusBadRequest},
		{"another content type", func(t *testing.T, sl, _ slot) (string, map[string]string, []byte) {
			h := headers(sl)
			h["Content-Type"] = "text/html"
			return sl.PutURL, h, body
		}, http.StatusUnsupportedMediaType},
		{"another file name", func(t *testing.T, sl, _ slot) (string, map[string]string, []byte) {
			return dir(sl.PutURL) + "/other.txt", headers(sl), body
		}, http.StatusNotFound},
		{"../ in the file name, escaped", func(t *testing.T, sl, _ slot) (string, map[string]string, []byte) {
			return dir(sl.PutURL) + "/..%2F..%2Fescaped", headers(sl), body
		}, http.StatusNotFound},
		{"an unknown slot", func(t *testing.T, sl, _ slot) (string, map[string]string, []byte) {
			return dir(dir(sl.PutURL)) + "/AAAAAAAAAAAAAAAAAAAAAA/hello.txt", headers(sl), body
		}, http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sl := mustSlot(t, e.alice, "hello.txt", int64(len(body)), "text/plain")
			other := mustSlot(t, e.bob, "hello.txt", int64(len(body)), "text/plain")
			url, h, b := tt.edit(t, sl, other)
			if got := put(t, url, h, b); got != tt.want {
				t.Errorf("PUT: %d; want %d", got, tt.want)
			}
			// Neither slot was filled: each still takes its own PUT.
			putSlot(t, sl, "text/plain", body)
			putSlot(t, other, "text/plain", body)
		})
	}

	t.Run("a second PUT to a filled slot", func(t *testing.T) {
		sl := mustSlot(t, e.alice, "once.txt", int64(len(body)), "text/plain")
		putSlot(t, sl, "text/plain", body)
		if got := put(t, sl.PutURL, headers(sl), []byte("HELLO, WORLD")); got != http.StatusConflict {
			t.Errorf("second PUT: %d; want 409", got)
		}
		if _, b := get(t, "GET", sl.GetURL, nil); !bytes.Equal(b, body) {
			t.Errorf("after a second PUT the file is %q; want the first", b)
		}
	})

	t.Run("an expired signature", func(t *testing.T) {
		sl := mustSlot(t, e.alice, "late.txt", int64(len(body)), "text/plain")
		e.svc.SetClock(func() time.Time { return time.Now().Add(5*time.Minute + time.Second) })
		defer e.svc.SetClock(time.Now)
		if got := put(t, sl.PutURL, headers(sl), body); got != http.StatusForbidden {
			t.Errorf("PUT after slot_lifetime: %d; want 403", got)
		}
	})

	t.Run("../ in the path", func(t *testing.T) {
		sl := mustSlot(t, e.alice, "dots.txt", int64(len(body)), "text/plain")
		url := sl.PutURL[:strings.LastIndex(sl.PutURL, "/")] + "/../../../escaped"
		req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
		for k, v := range headers(sl) {
			req.Header.Set(k, v)
		}
		// Sent as written: Go's client would not clean it, but be sure.
		req.URL.Opaque = req.URL.Path
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusCreated {
			t.Errorf("PUT %s: 201", url)
		}
		found := false
		_ = filepath.WalkDir(filepath.Dir(e.svc.Dir()), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Name() == "escaped" {
				found = true
			}
			return nil
		})
		if found {
			t.Error("a file named escaped was written")
		}
	})
}

// TestSlotRequestRefusals: XEP-0363 §5's errors, and the requests that are
// not a slot.
func TestSlotRequestRefusals(t *testing.T) {
	e := startEnv(t, nil)
	tests := []struct {
		name     string
		c        *parleytest.Conn
		filename string
		size     int64
		ctype    string
		want     xmpp.StanzaCondition
		wantType xmpp.ErrorType
	}{
		{"too large", e.alice, "big.bin", testMax + 1, "", xmpp.NotAcceptable, xmpp.ErrModify},
		{"a user of a host not allowed", e.eve, "a.txt", 1, "", xmpp.NotAllowed, xmpp.ErrCancel},
		{"../ in the file name", e.alice, "../a.txt", 1, "", xmpp.BadRequest, xmpp.ErrModify},
		{"a backslash in the file name", e.alice, `..\a.txt`, 1, "", xmpp.BadRequest, xmpp.ErrModify},
		{"a dot-dot file name", e.alice, "..", 1, "", xmpp.BadRequest, xmpp.ErrModify},
		{"a negative size", e.alice, "a.txt", -1, "", xmpp.BadRequest, xmpp.ErrModify},
		{"a content type that is not one", e.alice, "a.txt", 1, "text", xmpp.BadRequest, xmpp.ErrModify},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := requestSlot(tt.c, tt.filename, tt.size, tt.ctype)
			tt.c.ExpectError(st, tt.want, tt.name)
			if se := xmpp.ParseStanzaError(st.El); se.Type != tt.wantType {
				t.Errorf("error type %s; want %s", se.Type, tt.wantType)
			}
			if tt.want == xmpp.NotAcceptable {
				ftl := xmpp.Child(st.El.SelectElement("error"), upload.NS, "file-too-large")
				if ftl == nil || ftl.SelectElement("max-file-size") == nil ||
					ftl.SelectElement("max-file-size").Text() != strconv.Itoa(testMax) {
					t.Errorf("no <file-too-large><max-file-size>%d: %s", testMax, tt.c.String(st.El))
				}
			}
		})
	}

	t.Run("past the quota", func(t *testing.T) {
		// Two full files fill bob's 2 MiB; the third byte is refused
		// until the oldest expires.
		for i := range 2 {
			sl := mustSlot(t, e.bob, "f"+strconv.Itoa(i), testMax, "")
			putSlot(t, sl, "application/octet-stream", make([]byte, testMax))
		}
		st := requestSlot(e.bob, "one-more", 1, "")
		e.bob.ExpectError(st, xmpp.ResourceConstraint, "a slot past the quota")
		retry := xmpp.Child(st.El.SelectElement("error"), upload.NS, "retry")
		if xmpp.ParseStanzaError(st.El).Type != xmpp.ErrWait || retry == nil {
			t.Fatalf("quota error %s; want type wait with <retry/>", e.bob.String(st.El))
		}
		stamp, err := time.Parse(time.RFC3339, retry.SelectAttrValue("stamp", ""))
		if err != nil || stamp.Before(time.Now().Add(167*time.Hour)) || stamp.After(time.Now().Add(169*time.Hour)) {
			t.Errorf("retry stamp %q (%v); want a week from now in UTC", retry.SelectAttrValue("stamp", ""), err)
		}
		// Others' quotas are their own.
		mustSlot(t, e.alice, "one-more", 1, "")
	})

	t.Run("a pending slot counts until its lifetime ends", func(t *testing.T) {
		mustSlot(t, e.alice, "pending", testMax, "")
		mustSlot(t, e.alice, "pending", testMax-1, "")
		e.alice.ExpectError(requestSlot(e.alice, "x", 2, ""), xmpp.ResourceConstraint, "past the quota with pending slots")
		e.svc.SetClock(func() time.Time { return time.Now().Add(5*time.Minute + time.Second) })
		defer e.svc.SetClock(time.Now)
		mustSlot(t, e.alice, "x", 2, "")
	})
}

// TestDisco: the service's disco#info has XEP-0363's feature and form
// with max-file-size, and the local host lists the service in its items.
func TestDisco(t *testing.T) {
	e := startEnv(t, nil)
	st := e.alice.IQ("get", uploadDomain, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
	e.alice.ExpectResult(st, "disco#info")
	q := st.El.FindElement("query")
	var features []string
	for _, f := range q.SelectElements("feature") {
		features = append(features, f.SelectAttrValue("var", ""))
	}
	if !strings.Contains(strings.Join(features, " "), upload.NS) {
		t.Errorf("features %v; want %s", features, upload.NS)
	}
	if id := q.SelectElement("identity"); id == nil || id.SelectAttrValue("category", "") != "store" || id.SelectAttrValue("type", "") != "file" {
		t.Errorf("identity: %s; want store/file", e.alice.String(st.El))
	}
	fields := map[string]string{}
	if x := q.SelectElement("x"); x != nil {
		for _, f := range x.SelectElements("field") {
			if v := f.SelectElement("value"); v != nil {
				fields[f.SelectAttrValue("var", "")] = v.Text()
			}
		}
	}
	want := map[string]string{"FORM_TYPE": upload.NS, "max-file-size": strconv.Itoa(testMax), "x-quota-per-user": strconv.Itoa(testQuota)}
	for k, v := range want {
		if fields[k] != v {
			t.Errorf("form field %s = %q; want %q (form %v)", k, fields[k], v, fields)
		}
	}

	st = e.alice.IQ("get", "localhost", "<query xmlns='http://jabber.org/protocol/disco#items'/>")
	found := false
	for _, it := range st.El.FindElements("query/item") {
		found = found || it.SelectAttrValue("jid", "") == uploadDomain
	}
	if !found {
		t.Errorf("disco#items of localhost: %s; want %s listed", e.alice.String(st.El), uploadDomain)
	}
}

// TestExpiry: the sweep removes a file past expires_after, its record and
// its URL, and gives the quota back.
func TestExpiry(t *testing.T) {
	e := startEnv(t, nil)
	sl := mustSlot(t, e.alice, "old.bin", testMax, "")
	putSlot(t, sl, "application/octet-stream", make([]byte, testMax))
	fresh := mustSlot(t, e.alice, "fresh.bin", 3, "")
	id := path.Base(path.Dir(sl.GetURL))

	n, err := e.svc.Sweep(context.Background(), time.Now())
	if err != nil || n != 0 {
		t.Fatalf("Sweep now: %d, %v; want nothing removed", n, err)
	}
	// A week and a day later: the file and the slot never filled.
	n, err = e.svc.Sweep(context.Background(), time.Now().Add(8*24*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("Sweep a week later: %d, %v; want 2 removed", n, err)
	}
	if _, err := os.Stat(filepath.Join(e.svc.Dir(), id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the expired file: %v; want it gone", err)
	}
	if resp, _ := get(t, "GET", sl.GetURL, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET an expired file: %d; want 404", resp.StatusCode)
	}
	if got := put(t, fresh.PutURL, map[string]string{"Authorization": fresh.Header["Authorization"]}, []byte("abc")); got != http.StatusNotFound {
		t.Errorf("PUT to a swept slot: %d; want 404", got)
	}
	// The whole quota is free again.
	mustSlot(t, e.alice, "again.bin", testMax, "")
	mustSlot(t, e.alice, "again.bin", testMax, "")
}

// dir is url without its last path segment.
func dir(url string) string { return url[:strings.LastIndex(url, "/")] }

package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/components/webhook"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// botHost is the bot domain most webhook tests use.
const botHost = "bots.localhost"

// botNS is the namespace of the payloads the tests send to bots.
const botNS = "urn:example:bot"

// botRequest is one request a test webhook received.
type botRequest struct {
	Method string
	Header http.Header
	Body   []byte
	// JSON is Body decoded; JSONErr says why it could not be.
	JSON    webhook.Request
	JSONErr error
	// Local is the localpart of the bot JID the stanza was sent to.
	Local string

	ctx context.Context
}

// botHook is a real webhook: an HTTP server that records every request
// and answers it with handle. A handler that holds a request is released
// when the test ends (before the Parley server shuts down, see botStart)
// or when Parley gives up on the request.
type botHook struct {
	*httptest.Server
	requests chan *botRequest
	calls    atomic.Int64
	inFlight atomic.Int64
	// maxInFlight is the most requests handled at once.
	maxInFlight atomic.Int64
	done        chan struct{}
	once        sync.Once
	handle      func(w http.ResponseWriter, r *botRequest)
}

// botNewHook starts a webhook that answers with handle (nil: 204).
func botNewHook(t *testing.T, handle func(w http.ResponseWriter, r *botRequest)) *botHook {
	t.Helper()
	h := &botHook{requests: make(chan *botRequest, 10000), done: make(chan struct{}), handle: handle}
	h.Server = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(func() {
		h.unblock()
		h.Close()
	})
	return h
}

func (h *botHook) serve(w http.ResponseWriter, r *http.Request) {
	n := h.inFlight.Add(1)
	defer h.inFlight.Add(-1)
	for {
		m := h.maxInFlight.Load()
		if n <= m || h.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	body, _ := io.ReadAll(r.Body)
	req := &botRequest{Method: r.Method, Header: r.Header.Clone(), Body: body, ctx: r.Context()}
	req.JSONErr = json.Unmarshal(body, &req.JSON)
	if j, err := xmpp.Parse(req.JSON.To); err == nil {
		req.Local = j.Local()
	}
	h.calls.Add(1)
	select {
	case h.requests <- req:
	default:
	}
	if h.handle == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h.handle(w, req)
}

// unblock releases every held handler, now and later.
func (h *botHook) unblock() { h.once.Do(func() { close(h.done) }) }

// hold blocks a handler until release is closed (nil: never), the test
// ends or the request is cancelled. It reports whether release did it.
func (h *botHook) hold(r *botRequest, release <-chan struct{}) bool {
	select {
	case <-release:
		return true
	case <-h.done:
		return false
	case <-r.ctx.Done():
		return false
	}
}

// next returns the next request the webhook received.
func (h *botHook) next(t *testing.T) *botRequest {
	t.Helper()
	select {
	case r := <-h.requests:
		return r
	case <-time.After(parleytest.Timeout):
		t.Fatalf("the webhook got no request in %v", parleytest.Timeout)
		return nil
	}
}

// botStart starts a server with the bot host botHost behind hook, edited
// by edit, and whatever else opts add. Held requests of hook are released
// before the server shuts down, so that its bots drain at once.
func botStart(t *testing.T, hook *botHook, edit func(*conf.Host), opts ...parleytest.Option) *parleytest.Server {
	t.Helper()
	s := parleytest.Start(t, append([]parleytest.Option{parleytest.WithBot(botHost, hook.URL, edit)}, opts...)...)
	t.Cleanup(hook.unblock)
	return s
}

// botUsers creates the accounts local@localhost, password "pw-"+local.
func botUsers(t *testing.T, s *parleytest.Server, locals ...string) {
	t.Helper()
	for _, l := range locals {
		s.AddUser(l+"@localhost", "pw-"+l)
	}
}

// botLogin logs local@localhost in with resource and makes it available.
func botLogin(t *testing.T, s *parleytest.Server, local, resource string) *parleytest.Conn {
	t.Helper()
	c := s.Login(local+"@localhost", "pw-"+local, resource)
	c.Send("<presence/>")
	c.Sync()
	return c
}

// botComponent returns the component of a bot host.
func botComponent(t *testing.T, s *parleytest.Server, host string) *webhook.Component {
	t.Helper()
	c, ok := webhook.ComponentOf(s.Server, host)
	if !ok {
		t.Fatalf("no bot host %s", host)
	}
	return c
}

// botIsChatState reports whether st is a standalone chat state
// notification (XEP-0085): a message whose only children are chat states.
func botIsChatState(st *xmpp.Stanza) bool {
	if st.Kind != xmpp.KindMessage || st.Type == "error" {
		return false
	}
	children := st.El.ChildElements()
	if len(children) == 0 {
		return false
	}
	for _, ch := range children {
		if xmpp.NS(ch) != webhook.NSChatStates {
			return false
		}
	}
	return true
}

// botNext reads the next stanza, skipping standalone chat states (a
// webhook slower than the typing delay adds them).
func botNext(t *testing.T, c *parleytest.Conn) *xmpp.Stanza {
	t.Helper()
	for {
		st := c.NextStanza()
		if !botIsChatState(st) {
			return st
		}
	}
}

// botBody returns the text of st's body, "" without one.
func botBody(st *xmpp.Stanza) string {
	if b := xmpp.Child(st.El, "", "body"); b != nil {
		return b.Text()
	}
	return ""
}

// botCondition returns st's stanza error condition, "" if it has none.
func botCondition(st *xmpp.Stanza) xmpp.StanzaCondition {
	if se := xmpp.ParseStanzaError(st.El); se != nil {
		return se.Condition
	}
	return ""
}

// botExpectError reads the next stanza and checks it is an error of kind
// with id, from from, with condition want.
func botExpectError(t *testing.T, c *parleytest.Conn, kind xmpp.Kind, from, id string, want xmpp.StanzaCondition) *xmpp.Stanza {
	t.Helper()
	st := botNext(t, c)
	if st.Kind != kind || st.Type != "error" || st.ID != id || st.From.String() != from || botCondition(st) != want {
		t.Fatalf("got %s\nwant a %s error %s with id %q from %s", c.String(st.El), kind, want, id, from)
	}
	return st
}

// botExpectMessage reads the next stanza and checks it is a message from
// from with body.
func botExpectMessage(t *testing.T, c *parleytest.Conn, from, body string) *xmpp.Stanza {
	t.Helper()
	st := botNext(t, c)
	if st.Kind != xmpp.KindMessage || st.Type == "error" || st.From.String() != from || botBody(st) != body {
		t.Fatalf("got %s\nwant a message from %s with body %q", c.String(st.El), from, body)
	}
	return st
}

var botSyncs atomic.Int64

// botUntilSync pings the server and returns every stanza that arrives
// before the answer. Whatever the server routed to c before it read the
// ping is among them.
func botUntilSync(t *testing.T, c *parleytest.Conn) []*xmpp.Stanza {
	t.Helper()
	id := fmt.Sprintf("bot-sync-%d", botSyncs.Add(1))
	c.Send("<iq type='get' id='%s'><ping xmlns='urn:xmpp:ping'/></iq>", id)
	var got []*xmpp.Stanza
	for {
		st := c.NextStanza()
		if st.Kind == xmpp.KindIQ && st.ID == id {
			return got
		}
		got = append(got, st)
	}
}

var botMarkers atomic.Int64

// botMarker proves that nothing more is on its way to rcpt because of
// what sender sent to the bot JID to: it sends a marker message in the
// same conversation, which the bot answers (or fails) only after
// everything sent before it, and fails unless the marker's answer is the
// next stanza rcpt reads (chat states aside). Webhooks answer markers with
// botMarkerReply.
func botMarker(t *testing.T, sender *parleytest.Conn, to string, rcpt *parleytest.Conn) {
	t.Helper()
	id := fmt.Sprintf("marker-%d", botMarkers.Add(1))
	body := "marker"
	if rcpt != sender {
		body = "marker to " + rcpt.JID.String()
	}
	sender.Send("<message to='%s' type='chat' id='%s'><body>%s</body></message>", to, id, body)
	st := botNext(t, rcpt)
	if st.ID != id {
		t.Fatalf("%s got %s before the marker %s", rcpt.JID, rcpt.String(st.El), id)
	}
}

// botMarkerReply answers the markers of botMarker and reports whether r
// was one.
func botMarkerReply(w http.ResponseWriter, r *botRequest) bool {
	body, ok := strings.CutPrefix(r.JSON.Body, "marker")
	if r.JSON.Kind != "message" || !ok {
		return false
	}
	botJSON(w, http.StatusOK, webhook.Reply{To: strings.TrimPrefix(body, " to "), Body: "marker", ID: r.JSON.ID})
	return true
}

// botJSON answers with v as JSON.
func botJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// botRaw answers with body as it is.
func botRaw(w http.ResponseWriter, status int, contentType, body string) {
	if contentType != "" {
		w.Header().Set("Content-Type", contentType)
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// botRouter records what a component routes, for tests of a component
// without a server.
type botRouter struct {
	mu  sync.Mutex
	got []*xmpp.Stanza
}

func (r *botRouter) Route(st *xmpp.Stanza) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, st)
}

// take returns what was routed so far and forgets it.
func (r *botRouter) take() []*xmpp.Stanza {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

// botAPIAnswer is an answer of the send API.
type botAPIAnswer struct {
	Status      int
	ContentType string
	Fields      map[string]any
	Raw         string
}

// botSendAPI posts body to the send API of host with the Authorization
// header auth (none when empty).
func botSendAPI(t *testing.T, s *parleytest.Server, host, auth, body string) botAPIAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.HTTPURL+"/api/bots/"+host+"/send", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("send API: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := botAPIAnswer{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Raw: string(raw)}
	_ = json.Unmarshal(raw, &a.Fields)
	return a
}

package webhook_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/parley-im/parley/components/webhook"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/parleytest/webhooktest"
	"github.com/parley-im/parley/xmpp"
)

// botHost is the bot domain most webhook tests use.
const botHost = "bots.localhost"

// botNS is the namespace of the payloads the tests send to bots.
const botNS = "urn:example:bot"

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
func botComponent(t testing.TB, s *parleytest.Server, host string) *webhook.Component {
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

// botExpectError reads the next stanza and checks it is an error of kind
// with id, from from, with condition want.
func botExpectError(t *testing.T, c *parleytest.Conn, kind xmpp.Kind, from, id string, want xmpp.StanzaCondition) *xmpp.Stanza {
	t.Helper()
	st := botNext(t, c)
	if st.Kind != kind || st.Type != "error" || st.ID != id || st.From.String() != from || parleytest.Condition(st) != want {
		t.Fatalf("got %s\nwant a %s error %s with id %q from %s", c.String(st.El), kind, want, id, from)
	}
	return st
}

// botExpectMessage reads the next stanza and checks it is a message from
// from with body.
func botExpectMessage(t *testing.T, c *parleytest.Conn, from, body string) *xmpp.Stanza {
	t.Helper()
	st := botNext(t, c)
	if st.Kind != xmpp.KindMessage || st.Type == "error" || st.From.String() != from || parleytest.Body(st) != body {
		t.Fatalf("got %s\nwant a message from %s with body %q", c.String(st.El), from, body)
	}
	return st
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
func botMarkerReply(w http.ResponseWriter, r *webhooktest.Post) bool {
	body, ok := strings.CutPrefix(r.JSON.Body, "marker")
	if r.JSON.Kind != "message" || !ok {
		return false
	}
	webhooktest.JSON(w, http.StatusOK, webhook.Reply{To: strings.TrimPrefix(body, " to "), Body: "marker", ID: r.JSON.ID})
	return true
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

package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// Reply is one object of a webhook's answer, or of a send API request:
// the seed's fields, each optional. Missing to and from are the incoming
// stanza's swapped; missing kind is message (iq when answering an iq get
// or set);
// missing type is the incoming message's; body becomes the message body
// (a presence's status). Stanza, when set, is routed as it is, with only
// its from checked and server-owned elements removed.
type Reply struct {
	To     string `json:"to,omitempty"`
	From   string `json:"from,omitempty"`
	Kind   string `json:"kind,omitempty"`
	Type   string `json:"type,omitempty"`
	ID     string `json:"id,omitempty"`
	Body   string `json:"body,omitempty"`
	Stanza string `json:"stanza,omitempty"`
}

// NSChatStates is XEP-0085's namespace.
const NSChatStates = "http://jabber.org/protocol/chatstates"

// process posts one stanza, with w's buffers, and routes what comes back.
// inRoom says st comes from a room the bot is in.
func (c *Component) process(w *worker, st *xmpp.Stanza, inRoom bool) {
	defer w.release()
	body := w.encodeRoomRequest(st, inRoom)
	typing := c.startTyping(st)
	a, err := c.post(c.ctx, w, body)
	composing := typing.stop()
	var replies []Reply
	if err == nil {
		replies, err = parseAnswer(a)
	}
	if err != nil {
		c.failed(st, err, composing)
		return
	}
	answered := false
	var out []*xmpp.Stanza
	for i, r := range replies {
		rs, err := c.build(st, r)
		if err != nil {
			// One bad reply object spoils the answer: nothing of it is
			// sent, and the sender is told.
			c.failed(st, fmt.Errorf("reply %d: %w", i, err), composing)
			return
		}
		if isAnswerTo(rs, st) {
			if answered {
				c.log.Warn("webhook: second answer to one iq dropped", "id", st.ID)
				continue
			}
			answered = true
		}
		out = append(out, rs)
	}
	if composing && st.Kind == xmpp.KindMessage {
		c.addActive(st, out)
	}
	for _, rs := range out {
		c.route(rs)
	}
	if st.Kind == xmpp.KindIQ && (st.Type == "get" || st.Type == "set") && !answered {
		c.metrics.fail(causeNoAnswer)
		c.bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, "the bot did not answer this iq"))
	}
}

// isAnswerTo reports whether rs answers the iq request in.
func isAnswerTo(rs, in *xmpp.Stanza) bool {
	return in.Kind == xmpp.KindIQ && rs.Kind == xmpp.KindIQ && (rs.Type == "result" || rs.Type == "error") &&
		rs.ID == in.ID && rs.To == in.From
}

// failed tells the sender a delivery did not work.
func (c *Component) failed(st *xmpp.Stanza, err error, composing bool) {
	var f *failure
	if !errors.As(err, &f) {
		f = &failure{causeReply, xmpp.NewStanzaError(xmpp.InternalServerError, "the bot's answer was not valid: "+err.Error())}
	}
	c.metrics.fail(f.cause)
	if f.cause != causeShutdown {
		c.log.Warn("webhook: delivery failed", "cause", f.cause, "err", err, "from", st.From.String(), "to", st.To.String())
	}
	c.bounce(st, f.err)
	if composing {
		c.addActive(st, nil)
	}
}

// parseAnswer reads a webhook's HTTP answer into reply objects.
func parseAnswer(a *answer) ([]Reply, error) {
	if a.status < 200 || a.status > 299 {
		return nil, statusFailure(a.status)
	}
	body := bytes.TrimSpace(a.body)
	if a.status == 204 || len(body) == 0 {
		return nil, nil
	}
	if !isJSON(a.contentType) {
		return nil, &failure{causeJSON, xmpp.NewStanzaError(xmpp.InternalServerError, "the bot answered "+a.contentType+", not JSON")}
	}
	if replies, ok := fastReplies(body); ok {
		return replies, nil
	}
	replies, err := decodeReplies(body)
	if err != nil {
		return nil, &failure{causeJSON, xmpp.NewStanzaError(xmpp.InternalServerError, "the bot's answer is not valid JSON: "+err.Error())}
	}
	return replies, nil
}

// decodeReplies decodes an answer's body, one object or an array of them,
// with encoding/json: what fastReplies must agree with.
func decodeReplies(body []byte) ([]Reply, error) {
	switch body[0] {
	case '{':
		var r Reply
		err := strictJSON(body, &r)
		return []Reply{r}, err
	case '[':
		var replies []Reply
		err := strictJSON(body, &replies)
		return replies, err
	}
	return nil, errors.New("neither an object nor an array of objects")
}

// strictJSON decodes one JSON value and nothing after it.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return err
	}
	// More would miss a ']' or '}' after the value: only the end will do.
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// build turns one reply object into a stanza. in is the stanza being
// answered, nil for the send API. A group-chat message to a room the bot
// is in, with no from given, comes from the bot's own occupant there
// (the room takes no message from anyone else), and every group-chat
// message carries the bot marker (NSBot), so that other bots do not
// answer it.
func (c *Component) build(in *xmpp.Stanza, r Reply) (*xmpp.Stanza, error) {
	st, fromGiven, err := c.buildReply(in, r)
	if err != nil || st.Kind != xmpp.KindMessage || st.Type != "groupchat" {
		return st, err
	}
	if !fromGiven && c.rooms != nil && c.rooms.tracks(st.To.Bare()) {
		st.SetFrom(c.rooms.self)
	}
	if xmpp.Child(st.El, NSBot, "bot") == nil {
		st.El.AddChild(xmpp.NewElementNS(NSBot, "bot"))
	}
	return st, nil
}

// buildReply turns one reply object into a stanza, as build says, and
// reports whether the reply gave its from.
func (c *Component) buildReply(in *xmpp.Stanza, r Reply) (*xmpp.Stanza, bool, error) {
	if r.Stanza != "" {
		return c.buildRaw(in, r.Stanza)
	}
	st, err := c.buildFields(in, r)
	return st, r.From != "", err
}

// buildFields turns a reply object without a stanza into a stanza.
func (c *Component) buildFields(in *xmpp.Stanza, r Reply) (*xmpp.Stanza, error) {
	var to, from xmpp.JID
	var err error
	if r.To != "" {
		if to, err = xmpp.Parse(r.To); err != nil {
			return nil, fmt.Errorf("to: %w", err)
		}
	} else if in != nil {
		to = in.From
		if in.Kind == xmpp.KindMessage && in.Type == "groupchat" {
			// Answered in the room, not privately to the occupant.
			to = in.From.Bare()
		}
	} else {
		return nil, errors.New("to is required")
	}
	if r.From != "" {
		if from, err = xmpp.Parse(r.From); err != nil {
			return nil, fmt.Errorf("from: %w", err)
		}
	} else if in != nil {
		from = in.To
	} else {
		from = c.domain
	}
	if err := c.checkFrom(from); err != nil {
		return nil, err
	}
	kind := r.Kind
	if kind == "" {
		kind = "message"
		if in != nil && in.Kind == xmpp.KindIQ && (in.Type == "get" || in.Type == "set") {
			kind = "iq"
		}
	}
	el := etree.NewElement(kind)
	st := &xmpp.Stanza{El: el}
	switch kind {
	case "message":
		st.Kind = xmpp.KindMessage
		st.Type = r.Type
		if st.Type == "" {
			switch {
			case in != nil && in.Kind == xmpp.KindMessage:
				// The incoming type, normal (no type) included.
				st.Type = in.Type
			default:
				st.Type = "chat"
			}
		}
		if r.Body != "" {
			el.CreateElement("body").SetText(r.Body)
		}
	case "presence":
		st.Kind = xmpp.KindPresence
		st.Type = r.Type
		if r.Body != "" {
			el.CreateElement("status").SetText(r.Body)
		}
	case "iq":
		st.Kind = xmpp.KindIQ
		st.Type = r.Type
		if st.Type == "" {
			st.Type = "result"
		}
		if st.Type != "result" && st.Type != "error" {
			return nil, errors.New("an iq made from fields can only be a result or an error; send a get or set as a stanza")
		}
		if st.Type == "error" {
			el.AddChild(xmpp.NewStanzaError(xmpp.UndefinedCondition, r.Body).Element())
		}
		st.ID = r.ID
		if st.ID == "" && in != nil && in.Kind == xmpp.KindIQ {
			st.ID = in.ID
		}
		if st.ID == "" {
			return nil, errors.New("an iq needs an id")
		}
	default:
		return nil, fmt.Errorf("kind %q: use message, presence or iq", kind)
	}
	if st.Type != "" {
		el.CreateAttr("type", st.Type)
	}
	if st.ID == "" && r.ID != "" {
		st.ID = r.ID
	}
	if st.ID != "" {
		el.CreateAttr("id", st.ID)
	}
	st.SetFrom(from)
	st.SetTo(to)
	return st, nil
}

// buildRaw parses a reply's stanza field, with the same restrictions as
// anything a client sends, and reports whether it had a from.
func (c *Component) buildRaw(in *xmpp.Stanza, raw string) (*xmpp.Stanza, bool, error) {
	el, err := xmpp.ParseElement(raw, xmpp.Limits{})
	if err != nil {
		return nil, false, fmt.Errorf("stanza must be exactly one message, presence or iq: %w", err)
	}
	st, err := xmpp.NewStanza(el)
	if err != nil {
		return nil, false, fmt.Errorf("stanza: %w", err)
	}
	fromGiven := !st.From.IsZero()
	if st.From.IsZero() && in != nil {
		st.SetFrom(in.To)
	} else if st.From.IsZero() {
		st.SetFrom(c.domain)
	}
	if err := c.checkFrom(st.From); err != nil {
		return nil, false, err
	}
	if st.To.IsZero() {
		if in == nil {
			return nil, false, errors.New("stanza: to is required")
		}
		st.SetTo(in.From)
		if in.Kind == xmpp.KindMessage && in.Type == "groupchat" && st.Kind == xmpp.KindMessage {
			st.SetTo(in.From.Bare()) // in the room, as a reply from fields
		}
	}
	stripServerOwned(st.El, c.domain.Domain())
	return st, fromGiven, nil
}

// checkFrom allows any JID of the bot's domain and nothing else.
func (c *Component) checkFrom(from xmpp.JID) error {
	if from.Domain() != c.domain.Domain() {
		c.log.Warn("webhook: reply from outside the bot's domain refused", "from", from.String())
		return &failure{causeRefused, xmpp.NewStanzaError(xmpp.InternalServerError, "the bot tried to speak as "+from.String())}
	}
	return nil
}

// Namespaces of elements only a server may add.
const (
	nsStanzaID   = "urn:xmpp:sid:0"
	nsOccupantID = "urn:xmpp:occupant-id:0"
)

// stripServerOwned removes what only a server may vouch for: stanza-id
// and occupant-id, and delay stamps from anyone but the bot's domain.
func stripServerOwned(el *etree.Element, domain string) {
	for _, ch := range el.ChildElements() {
		switch {
		case ch.Tag == "stanza-id" && xmpp.NS(ch) == nsStanzaID,
			ch.Tag == "occupant-id" && xmpp.NS(ch) == nsOccupantID:
			el.RemoveChild(ch)
		case ch.Tag == "delay" && xmpp.NS(ch) == xmpp.NSDelay:
			if f, err := xmpp.Parse(ch.SelectAttrValue("from", "")); err != nil || f.Domain() != domain {
				el.RemoveChild(ch)
			}
		}
	}
}

// typing shows the bot typing while a webhook is slow (XEP-0085).
type typing struct {
	mu    sync.Mutex
	timer *time.Timer
	done  bool
	sent  bool
}

// startTyping arms the composing notification for a chat message.
func (c *Component) startTyping(st *xmpp.Stanza) *typing {
	t := &typing{}
	if st.Kind != xmpp.KindMessage || (st.Type != "chat" && st.Type != "" && st.Type != "normal") {
		return t
	}
	t.timer = time.AfterFunc(c.cfg.TypingDelay, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.done {
			return
		}
		t.sent = true
		c.route(chatState(st, "composing"))
	})
	return t
}

// stop disarms the timer and reports whether composing was sent.
func (t *typing) stop() bool {
	if t.timer != nil {
		t.timer.Stop()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done = true
	return t.sent
}

// chatState is a standalone chat state notification from the bot.
func chatState(in *xmpp.Stanza, state string) *xmpp.Stanza {
	el := etree.NewElement("message")
	el.CreateAttr("type", "chat")
	el.AddChild(xmpp.NewElementNS(NSChatStates, state))
	st := &xmpp.Stanza{El: el, Kind: xmpp.KindMessage, Type: "chat"}
	st.SetFrom(in.To)
	st.SetTo(in.From)
	return st
}

// addActive ends the typing notification: <active/> on the first reply
// message to the sender, or on its own when there is none.
func (c *Component) addActive(in *xmpp.Stanza, out []*xmpp.Stanza) {
	for _, rs := range out {
		if rs.Kind == xmpp.KindMessage && rs.To == in.From && rs.Type != "error" && xmpp.Child(rs.El, NSChatStates, "active") == nil {
			rs.El.AddChild(xmpp.NewElementNS(NSChatStates, "active"))
			return
		}
	}
	c.route(chatState(in, "active"))
}

// ErrForbiddenFrom is returned by Send for a reply whose from is outside
// the bot's domain.
var ErrForbiddenFrom = errors.New("from must be a JID of the bot's domain")

// Send routes messages a bot starts itself (the send API). Each reply needs
// a to; from defaults to the bot domain. Nothing is sent unless every
// reply is valid. A from outside the domain gives an error wrapping
// ErrForbiddenFrom; any other invalid reply an error saying what is wrong.
func (c *Component) Send(replies []Reply) error {
	out := make([]*xmpp.Stanza, 0, len(replies))
	for i, r := range replies {
		st, err := c.build(nil, r)
		if err != nil {
			var f *failure
			if errors.As(err, &f) && f.cause == causeRefused {
				c.metrics.fail(causeRefused)
				return fmt.Errorf("reply %d: %w", i, ErrForbiddenFrom)
			}
			return fmt.Errorf("reply %d: %w", i, err)
		}
		out = append(out, st)
	}
	for _, st := range out {
		c.route(st)
	}
	return nil
}

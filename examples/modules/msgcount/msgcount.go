// Package msgcount is a toy module, the worked example of
// docs/ARCHITECTURE.md: it counts the messages each user of a local host
// sends and receives, and answers the user's own question for the counts
// with an iq:
//
//	<iq type='get' id='c1'><count xmlns='urn:example:msgcount'/></iq>
//	<iq type='result' id='c1'><count xmlns='urn:example:msgcount' sent='3' received='2'/></iq>
//
// A server has it when its binary imports the package (beside
// server/std). It registers itself, and nothing in server/ names it.
package msgcount

import (
	"context"
	"strconv"
	"sync"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/server"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/xmpp"
)

// NS is the namespace of the count iq, and its disco#info feature.
const NS = "urn:example:msgcount"

func init() {
	local.RegisterModule(local.Module{Name: "msgcount", Start: start})
}

// counts are one host's counters, by user (localpart).
type counts struct {
	mu             sync.Mutex
	sent, received map[string]int
}

func (c *counts) add(m map[string]int, local string) {
	c.mu.Lock()
	m[local]++
	c.mu.Unlock()
}

// start runs once per local host: it registers two message handlers and
// one iq handler on h.
func start(h *local.Host) error {
	c := &counts{sent: map[string]int{}, received: map[string]int{}}
	// What a user's client sends. Returning false lets the stanza go on
	// its way: the module watches, it does not take.
	h.Hook(local.FromClient, xmpp.KindMessage, 0, func(_ server.Session, st *xmpp.Stanza) bool {
		c.add(c.sent, st.From.Local())
		return false
	})
	// What comes to a user, to the bare or to a full JID: each message
	// passes one of the two once.
	received := func(_ server.Session, st *xmpp.Stanza) bool {
		if st.Type != "error" {
			c.add(c.received, st.To.Local())
		}
		return false
	}
	h.Hook(local.ToBare, xmpp.KindMessage, 0, received)
	h.Hook(local.ToFull, xmpp.KindMessage, 0, received)
	// The iq, to the user's own account (sent without to, or to the
	// user's bare JID). Another user asking gets <forbidden/>; an iq of
	// another type or payload never reaches this handler.
	h.HandleIQ(local.ToBare, "get", NS, "count", NS, func(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
		if !st.To.IsZero() && st.To.Bare() != st.From.Bare() {
			return nil, xmpp.NewStanzaError(xmpp.Forbidden, "ask for your own counts")
		}
		local := st.From.Local()
		c.mu.Lock()
		sent, received := c.sent[local], c.received[local]
		c.mu.Unlock()
		q := xmpp.NewElementNS(NS, "count")
		q.CreateAttr("sent", strconv.Itoa(sent))
		q.CreateAttr("received", strconv.Itoa(received))
		return q, nil
	})
	return nil
}

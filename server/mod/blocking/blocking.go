// Package blocking is the module of Blocking Command (XEP-0191): a user
// reads, adds to and removes from the list of JIDs it blocks, and the
// user's resources that read the list get each change pushed. The list
// itself is the core's (routing checks it on every stanza to and from the
// user, and the error a user gets for writing to a blocked contact is the
// core's too): this module is the protocol.
package blocking

import (
	"context"
	"strconv"
	"sync/atomic"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/xmpp"
)

// NS is XEP-0191's namespace and feature.
const NS = "urn:xmpp:blocking"

func init() {
	local.RegisterModule(local.Module{Name: "blocking", Start: start})
}

type module struct {
	h *local.Host
	// asked is set on a session that read the list: it gets the pushes
	// (XEP-0191 §3.3: "interested resources").
	asked local.SessionValue[bool]
}

func start(h *local.Host) error {
	m := &module{h: h, asked: local.NewSessionValue[bool](h)}
	h.HandleIQ(local.ToBare, "get", NS, "blocklist", NS, local.OwnOnly(m.list))
	h.HandleIQ(local.ToBare, "set", NS, "block", "", local.OwnOnly(func(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
		return m.set(ctx, st, true)
	}))
	h.HandleIQ(local.ToBare, "set", NS, "unblock", "", local.OwnOnly(func(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
		return m.set(ctx, st, false)
	}))
	return nil
}

// list answers the blocklist request (§3.2).
func (m *module) list(_ context.Context, st *xmpp.Stanza) (*etree.Element, error) {
	if s := m.h.Recipient(st.From); s != nil {
		m.asked.Set(s, true)
	}
	list, err := m.h.BlockList(st.From.Local())
	if err != nil {
		return nil, err
	}
	q := xmpp.NewElementNS(NS, "blocklist")
	for _, j := range list {
		q.CreateElement("item").CreateAttr("jid", j.String())
	}
	return q, nil
}

// pushSeq numbers the pushes' ids.
var pushSeq atomic.Uint64

// set blocks or unblocks (§3.3, §3.4), then pushes the change to the
// user's resources that read the list.
func (m *module) set(ctx context.Context, st *xmpp.Stanza, block bool) (*etree.Element, error) {
	var jids []xmpp.JID
	items := st.Payload().SelectElements("item")
	for _, it := range items {
		j, err := xmpp.Parse(it.SelectAttrValue("jid", ""))
		if err != nil || j.IsZero() {
			return nil, xmpp.NewStanzaError(xmpp.JIDMalformed, "an item's jid is not valid")
		}
		jids = append(jids, j)
	}
	if block && len(jids) == 0 {
		return nil, xmpp.NewStanzaError(xmpp.BadRequest, "block at least one jid")
	}
	changed, err := m.h.SetBlocked(ctx, st.From.Local(), jids, block)
	if err != nil {
		return nil, err
	}
	bare := st.From.Bare()
	for _, s := range m.h.Sessions(st.From.Local()) {
		if !m.asked.Get(s) {
			continue
		}
		push := xmpp.NewElementNS(NS, st.Payload().Tag)
		if len(items) > 0 {
			// An unblock of everything is pushed as it came: empty.
			for _, j := range changed {
				push.CreateElement("item").CreateAttr("jid", j.String())
			}
		}
		m.h.Deliver(s, xmpp.NewIQ("set", "block-"+strconv.FormatUint(pushSeq.Add(1), 36), bare, s.JID(), push))
	}
	return nil, nil
}

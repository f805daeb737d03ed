package pep

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// Bookmarks (XEP-0402) and the bridge to the bookmarks of old clients
// (XEP-0048 in private XML, XEP-0049), as Prosody's mod_bookmarks does
// it: the urn:xmpp:bookmarks:1 node is the one list. A private get of
// <storage xmlns='storage:bookmarks'/> is made from its items; a private
// set publishes the conferences that are new or changed and retracts
// those that are gone, so that a client of XEP-0402 hears of each. The
// store keeps no second copy that could disagree.
const (
	// NSBookmarks is XEP-0402's node and payload namespace.
	NSBookmarks = "urn:xmpp:bookmarks:1"
	// NSBookmarksCompat is the feature of the bridge (XEP-0402 §5.3).
	NSBookmarksCompat = NSBookmarks + "#compat"
	// NSLegacyBookmarks is XEP-0048's namespace.
	NSLegacyBookmarks = "storage:bookmarks"
)

// bookmarksConfig is the node's configuration when the bridge makes it:
// what XEP-0402 §4 asks of clients in publish-options.
var bookmarksConfig = storage.PubsubConfig{
	AccessModel: "whitelist", PublishModel: "publishers", MaxItems: MaxItems, PersistItems: true,
	NotifyRetract: true, NotifyDelete: true, SendLast: "never",
}

// bookmarksBridge keeps XEP-0048's private XML in the XEP-0402 node.
type bookmarksBridge struct{ m *module }

// bookmark is a conference's fields both formats have.
type bookmark struct {
	name, autojoin, nick, password string
	hasNick, hasPassword           bool
}

// bookmarkOf reads a <conference/> of either namespace.
func bookmarkOf(c *etree.Element) bookmark {
	b := bookmark{name: c.SelectAttrValue("name", "")}
	// XEP-0048 and XEP-0402 both make autojoin an xs:boolean.
	switch c.SelectAttrValue("autojoin", "") {
	case "1", "true":
		b.autojoin = "true"
	}
	if n := c.SelectElement("nick"); n != nil {
		b.nick, b.hasNick = n.Text(), true
	}
	if p := c.SelectElement("password"); p != nil {
		b.password, b.hasPassword = p.Text(), true
	}
	return b
}

// fill sets b's fields on c.
func (b bookmark) fill(c *etree.Element) {
	if b.name != "" {
		c.CreateAttr("name", b.name)
	}
	if b.autojoin != "" {
		c.CreateAttr("autojoin", b.autojoin)
	}
	if b.hasNick {
		c.CreateElement("nick").SetText(b.nick)
	}
	if b.hasPassword {
		c.CreateElement("password").SetText(b.password)
	}
}

// PrivateGet makes XEP-0048's <storage/> from the node's items: nil when
// there is no node yet.
func (b bookmarksBridge) PrivateGet(ctx context.Context, user string) (*etree.Element, error) {
	m := b.m
	_, items, err := m.store.PubsubItems(ctx, m.h.Name(), user, NSBookmarks, nil, 0)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bookmarks of %s: %w", user, err)
	}
	out := xmpp.NewElementNS(NSLegacyBookmarks, "storage")
	for _, it := range items {
		p, err := xmpp.ParseElement(string(it.Payload), m.h.StoredLimits())
		if err != nil {
			return nil, fmt.Errorf("bookmark %s of %s: %w", it.ID, user, err)
		}
		if p.Tag != "conference" || xmpp.NS(p) != NSBookmarks {
			// Not a bookmark: the owner published something else there.
			continue
		}
		c := out.CreateElement("conference")
		c.CreateAttr("jid", it.ID)
		bookmarkOf(p).fill(c)
	}
	return out, nil
}

// PrivateSet makes the node's items the conferences of el: new or changed
// ones published, missing ones retracted, unchanged ones left alone (no
// notification, XEP-0402 §5.3.2, and their <extensions/> kept).
func (b bookmarksBridge) PrivateSet(ctx context.Context, from xmpp.JID, el *etree.Element) error {
	m := b.m
	user := from.Local()
	var order []string
	want := map[string]bookmark{}
	for _, c := range el.ChildElements() {
		if c.Tag != "conference" {
			continue // <url/>: XEP-0402 has no place for it
		}
		j, err := xmpp.Parse(c.SelectAttrValue("jid", ""))
		if err != nil || j.IsZero() {
			return xmpp.NewStanzaError(xmpp.BadRequest, "a conference needs the jid of its room")
		}
		id := j.String()
		if _, dup := want[id]; !dup {
			order = append(order, id)
		}
		want[id] = bookmarkOf(c)
	}
	if len(order) > MaxItems {
		m.h.Refused("pep_bookmarks", "user", from.Bare().String(), "bookmarks", len(order))
		return xmpp.NewStanzaError(xmpp.PolicyViolation, fmt.Sprintf("at most %d bookmarks", MaxItems))
	}
	have := map[string]bookmark{}
	cfg, items, err := m.store.PubsubItems(ctx, m.h.Name(), user, NSBookmarks, nil, 0)
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return fmt.Errorf("bookmarks of %s: %w", user, err)
	default:
		for _, it := range items {
			if p, err := xmpp.ParseElement(string(it.Payload), m.h.StoredLimits()); err == nil &&
				p.Tag == "conference" && xmpp.NS(p) == NSBookmarks {
				have[it.ID] = bookmarkOf(p)
			} else {
				have[it.ID] = bookmark{name: "\x00"} // never equal: replaced
			}
		}
		if cfg.MaxItems < MaxItems || !cfg.PersistItems {
			// A node that keeps fewer items would drop bookmarks
			// (Prosody overrides the same fields).
			m.h.Logger().Warn("pep: bookmarks node reconfigured for the bridge", "user", from.Bare().String(),
				"max_items", cfg.MaxItems, "persist_items", cfg.PersistItems)
			cfg.MaxItems, cfg.PersistItems = MaxItems, true
			if err := m.store.ConfigurePubsubNode(ctx, m.h.Name(), user, NSBookmarks, cfg); err != nil {
				return fmt.Errorf("configuring the bookmarks of %s: %w", user, err)
			}
		}
	}
	changed := false
	defer func() {
		if changed {
			m.legacyBookmarksChanged(ctx, from.Bare())
		}
	}()
	for _, id := range order {
		bm := want[id]
		if old, ok := have[id]; ok && old == bm {
			continue
		}
		c := xmpp.NewElementNS(NSBookmarks, "conference")
		bm.fill(c)
		if err := m.put(ctx, from, NSBookmarks, id, c, bookmarksConfig); err != nil {
			return err
		}
		changed = true
	}
	for id := range have {
		if _, ok := want[id]; !ok {
			if err := m.remove(ctx, from, NSBookmarks, id); err != nil {
				return err
			}
			changed = true
		}
	}
	return nil
}

// NSBookmarksCompatPEP is the feature of the bridge to XEP-0048's PEP
// node (storage:bookmarks, one item "current" holding the <storage/>),
// which Prosody advertises and answers as well.
const NSBookmarksCompatPEP = NSBookmarks + "#compat-pep"

// legacyPEPGet answers an items request of the storage:bookmarks node:
// the owner's bookmarks as one item, made from the XEP-0402 node. Like
// that node, it is the owner's alone.
func (m *module) legacyPEPGet(ctx context.Context, st *xmpp.Stanza, own xmpp.JID) (*etree.Element, error) {
	if st.From.Bare() != own {
		return nil, m.fail(st, xmpp.NewStanzaError(xmpp.NotAllowed, ""), "closed-node")
	}
	storageEl, err := m.legacyStorage(ctx, own.Local())
	if err != nil {
		return nil, err
	}
	res := xmpp.NewElementNS(NS, "pubsub")
	list := res.CreateElement("items")
	list.CreateAttr("node", NSLegacyBookmarks)
	it := list.CreateElement("item")
	it.CreateAttr("id", "current")
	it.AddChild(storageEl)
	return res, nil
}

// legacyStorage is the <storage/> of user's bookmarks, empty when there
// are none.
func (m *module) legacyStorage(ctx context.Context, user string) (*etree.Element, error) {
	el, err := bookmarksBridge{m}.PrivateGet(ctx, user)
	if el == nil && err == nil {
		el = xmpp.NewElementNS(NSLegacyBookmarks, "storage")
	}
	return el, err
}

// legacyPEPPublish takes a publish to the storage:bookmarks node as a
// private set would (Prosody ignores the item id and the
// publish-options too).
func (m *module) legacyPEPPublish(ctx context.Context, st *xmpp.Stanza, payload *etree.Element) (*etree.Element, error) {
	if payload.Tag != "storage" || xmpp.NS(payload) != NSLegacyBookmarks {
		return nil, m.fail(st, xmpp.NewStanzaError(xmpp.BadRequest, "the item is a <storage xmlns='storage:bookmarks'/>"), "invalid-payload")
	}
	if err := (bookmarksBridge{m}).PrivateSet(ctx, st.From, payload); err != nil {
		return nil, err
	}
	res := xmpp.NewElementNS(NS, "pubsub")
	p := res.CreateElement("publish")
	p.CreateAttr("node", NSLegacyBookmarks)
	p.CreateElement("item").CreateAttr("id", "current")
	return res, nil
}

// legacyBookmarksChanged tells the owner's resources that want the
// storage:bookmarks node (+notify) the whole list after a change of the
// XEP-0402 node, as Prosody's XEP-0411 broadcast: an old client that
// follows bookmarks through PEP stays in step.
func (m *module) legacyBookmarksChanged(ctx context.Context, own xmpp.JID) {
	var to []xmpp.JID
	for _, j := range m.caps.interested(own, NSLegacyBookmarks) {
		if j.Bare() == own {
			to = append(to, j)
		}
	}
	if len(to) == 0 {
		return
	}
	storageEl, err := m.legacyStorage(ctx, own.Local())
	if err != nil {
		m.h.Logger().Error("pep: legacy bookmarks", "user", own.String(), "err", err)
		return
	}
	ev := itemsEvent(NSLegacyBookmarks, "current", storageEl)
	for _, j := range to {
		msg := etree.NewElement("message")
		msg.CreateAttr("type", "headline")
		id := "pep-" + strconv.FormatUint(m.ids.Add(1), 36)
		msg.CreateAttr("id", id)
		msg.AddChild(ev.Copy())
		out := &xmpp.Stanza{El: msg, Kind: xmpp.KindMessage, Type: "headline", ID: id}
		out.SetFrom(own)
		out.SetTo(j)
		m.h.Route(out)
	}
}

// Package pep is the module of the Personal Eventing Protocol (XEP-0163):
// each account is a publish-subscribe service (XEP-0060) at its bare JID,
// whose nodes the owner publishes to (avatars, OMEMO keys, bookmarks,
// nicknames) and whose contacts hear of each item when their client asks
// for the node with "+notify" in its entity capabilities (XEP-0115).
//
// What it answers: publish (nodes made on the first publish, with
// publish-options as preconditions), retract, items (all, the newest N,
// or by id), node configuration and deletion (the owner's). Who may see a
// node's items is its access model: presence (the owner and contacts with
// a subscription from the owner; the default), open (anyone), whitelist
// (the owner alone: affiliations are not kept yet). Explicit
// subscriptions (XEP-0060 §6.1) are not answered: in PEP, presence
// subscriptions and +notify are the subscriptions.
//
// The defaults follow Prosody's mod_pep: max_items 1, persist_items,
// send_last_published_item on_sub_and_presence, notify on retract and
// delete. Bounds: an item's payload at most MaxItemSize bytes (over it:
// policy-violation, issue #13), MaxItems items a node, MaxNodes nodes an
// account.
//
// Bridges to what older clients use, as Prosody's mod_bookmarks and
// mod_vcard_legacy do: XEP-0048's bookmarks in private XML are the items
// of XEP-0402's node (bookmarks.go, through private.SetBridge), and the
// vCard's PHOTO is the XEP-0084 avatar both ways, whose hash the module
// adds to the user's available presence (XEP-0153; avatar.go, through
// vcard.OnSet and vcard.SetPhoto).
package pep

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/server/mod/private"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// Namespaces of XEP-0060.
const (
	NS           = "http://jabber.org/protocol/pubsub"
	NSOwner      = NS + "#owner"
	NSEvent      = NS + "#event"
	NSErrors     = NS + "#errors"
	NSNodeConfig = NS + "#node_config"
	NSPubOptions = NS + "#publish-options"
)

// Bounds of what one account keeps.
const (
	// MaxItemSize bounds one item's payload, serialized: an avatar of
	// XEP-0084 (base64) fits, with room for the stanza around it under
	// the default stanza_size of 256 KiB.
	MaxItemSize = 128 << 10
	// MaxItems bounds a node's max_items ("max" means it), as Prosody's
	// pep_max_items.
	MaxItems = 256
	// MaxNodes bounds an account's nodes.
	MaxNodes = 256
)

// Features is what the module lists in disco#info (XEP-0060 §10), each
// answered: a test of this package sends the request each promises.
var Features = []string{
	NS + "#access-open", NS + "#access-presence", NS + "#access-whitelist",
	NS + "#auto-create", NS + "#config-node", NS + "#delete-nodes",
	NS + "#filtered-notifications", NS + "#last-published", NS + "#persistent-items",
	NS + "#publish", NSPubOptions, NS + "#delete-items", NS + "#item-ids", NS + "#retrieve-items",
}

// defaults is the configuration of a node made by a publish.
var defaults = storage.PubsubConfig{
	AccessModel: "presence", PublishModel: "publishers", MaxItems: 1, PersistItems: true,
	NotifyRetract: true, NotifyDelete: true, SendLast: "on_sub_and_presence",
}

// Store is what the module needs of storage.
type Store interface {
	PublishPubsub(ctx context.Context, host, user, node string, item storage.PubsubItem, o storage.PublishOptions) (storage.PubsubConfig, error)
	PubsubConfigOf(ctx context.Context, host, user, node string) (storage.PubsubConfig, error)
	ConfigurePubsubNode(ctx context.Context, host, user, node string, c storage.PubsubConfig) error
	PubsubItems(ctx context.Context, host, user, node string, ids []string, max int) (storage.PubsubConfig, []storage.PubsubItem, error)
	RetractPubsubItem(ctx context.Context, host, user, node, id string) (storage.PubsubConfig, error)
	DeletePubsubNode(ctx context.Context, host, user, node string) (storage.PubsubConfig, error)
	PubsubLastItems(ctx context.Context, host, user string) ([]storage.PubsubNode, error)
}

func init() {
	local.RegisterModule(local.Module{Name: "pep", Start: start})
}

type module struct {
	h     *local.Host
	store Store
	caps  *capsTracker
	ids   atomic.Uint64 // for item ids and notification ids
	// hashes is each session's avatar hash for its presence (XEP-0153).
	hashes local.SessionValue[*string]
}

func start(h *local.Host) error {
	st, ok := h.Store().(Store)
	if !ok {
		return fmt.Errorf("the store (%T) cannot keep PEP nodes", h.Store())
	}
	m := &module{h: h, store: st}
	m.caps = newCapsTracker(m)
	// XEP-0163 §6.1: the account is a PEP service. Four features come
	// with the iqs; the others are behaviours of those iqs. All are
	// listed on the account (and so on the host), where Conversations
	// looks for publish-options.
	h.AccountIdentity("pubsub", "pep")
	h.HandleIQ(local.ToBare, "set", NS, "pubsub", NSPubOptions, m.pubsubSet)
	h.HandleIQ(local.ToBare, "get", NS, "pubsub", NS+"#retrieve-items", m.pubsubGet)
	h.HandleIQ(local.ToBare, "get", NSOwner, "pubsub", NS+"#config-node", local.OwnOnly(m.ownerGet))
	h.HandleIQ(local.ToBare, "set", NSOwner, "pubsub", NS+"#delete-nodes", local.OwnOnly(m.ownerSet))
	for _, f := range Features {
		h.AccountFeature(f)
	}
	m.caps.hook(h)
	// The bridges: XEP-0048's bookmarks in private XML are the XEP-0402
	// node's items; the vCard's PHOTO is the XEP-0084 avatar.
	private.SetBridge(h, NSLegacyBookmarks, bookmarksBridge{m})
	h.AccountFeature(NSBookmarksCompat)
	h.AccountFeature(NSBookmarksCompatPEP)
	m.hookAvatars(h)
	return nil
}

// owner is the account an iq to a bare JID (or without to) is for.
func owner(st *xmpp.Stanza) xmpp.JID {
	if st.To.IsZero() {
		return st.From.Bare()
	}
	return st.To.Bare()
}

// fail answers st with e and, when app is not empty, XEP-0060's
// pubsub-specific condition app.
func (m *module) fail(st *xmpp.Stanza, e *xmpp.StanzaError, app string) error {
	if app == "" {
		return e
	}
	reply := st.ErrorReply(e)
	if reply.From.IsZero() {
		reply.SetFrom(st.From.Bare())
	}
	reply.El.FindElement("error").AddChild(xmpp.NewElementNS(NSErrors, app))
	m.h.Route(reply)
	return local.ErrAnswered
}

// single returns the operation in the <pubsub/> of st: its first child
// other than <publish-options/>.
func single(st *xmpp.Stanza) *etree.Element {
	for _, c := range st.Payload().ChildElements() {
		if c.Tag != "publish-options" {
			return c
		}
	}
	return nil
}

// newItemID makes an item id for a publish without one (§7.1.2): random,
// so that it never names an item published before.
func newItemID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// pubsubSet answers publish and retract.
func (m *module) pubsubSet(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
	op := single(st)
	if op == nil {
		return nil, xmpp.NewStanzaError(xmpp.BadRequest, "no pubsub operation")
	}
	switch op.Tag {
	case "publish":
		return m.publish(ctx, st, op)
	case "retract":
		return m.retract(ctx, st, op)
	}
	return nil, m.unsupported(st, op.Tag)
}

// unsupported answers an operation of XEP-0060 the module does not do
// (§7.1.3.?: feature-not-implemented with <unsupported feature/>).
func (m *module) unsupported(st *xmpp.Stanza, op string) error {
	feature := map[string]string{"subscribe": "subscribe", "unsubscribe": "subscribe", "create": "create-nodes",
		"options": "subscription-options", "subscriptions": "retrieve-subscriptions",
		"affiliations": "retrieve-affiliations", "purge": "purge-nodes", "default": "retrieve-default"}[op]
	if feature == "" {
		return xmpp.NewStanzaError(xmpp.BadRequest, "unknown pubsub operation "+op)
	}
	reply := st.ErrorReply(xmpp.NewStanzaError(xmpp.FeatureNotImplemented, ""))
	if reply.From.IsZero() {
		reply.SetFrom(st.From.Bare())
	}
	u := xmpp.NewElementNS(NSErrors, "unsupported")
	u.CreateAttr("feature", feature)
	reply.El.FindElement("error").AddChild(u)
	m.h.Route(reply)
	return local.ErrAnswered
}

// publish answers XEP-0060 §7.1 for the owner: the node is made with the
// publish-options on the first publish, and its preconditions are checked
// against an existing node in the same transaction as the publish.
func (m *module) publish(ctx context.Context, st *xmpp.Stanza, op *etree.Element) (*etree.Element, error) {
	own := owner(st)
	if st.From.Bare() != own {
		return nil, m.fail(st, xmpp.NewStanzaError(xmpp.Forbidden, "only the owner publishes"), "")
	}
	node := op.SelectAttrValue("node", "")
	if node == "" {
		return nil, m.fail(st, xmpp.NewStanzaError(xmpp.BadRequest, ""), "nodeid-required")
	}
	items := op.SelectElements("item")
	if len(items) != 1 {
		return nil, m.fail(st, xmpp.NewStanzaError(xmpp.BadRequest, "publish one item"), "item-required")
	}
	item := items[0]
	payloads := item.ChildElements()
	if len(payloads) != 1 {
		return nil, m.fail(st, xmpp.NewStanzaError(xmpp.BadRequest, "an item has one payload"), "invalid-payload")
	}
	payload := payloads[0].Copy()
	if a := payload.SelectAttr("xmlns"); a == nil {
		// Inherited from <pubsub/>: kept explicit so that the stored
		// payload reads back in its namespace.
		payload.CreateAttr("xmlns", xmpp.NS(payloads[0]))
	}
	if node == NSLegacyBookmarks {
		return m.legacyPEPPublish(ctx, st, payload)
	}
	data := local.Serialize(payload)
	if len(data) > MaxItemSize {
		m.h.Refused("pep_item_size", "user", own.String(), "node", node, "bytes", len(data))
		return nil, m.fail(st, xmpp.NewStanzaError(xmpp.PolicyViolation,
			fmt.Sprintf("an item is at most %d bytes", MaxItemSize)), "payload-too-big")
	}
	id := item.SelectAttrValue("id", "")
	if id == "" {
		// §7.1.2: the service makes one.
		id = newItemID()
	}

	create := defaults
	var check func(storage.PubsubConfig) error
	if po := xmpp.Child(st.Payload(), NS, "publish-options"); po != nil {
		x := xmpp.Child(po, "jabber:x:data", "x")
		if x == nil {
			return nil, m.fail(st, xmpp.NewStanzaError(xmpp.BadRequest, "publish-options without a form"), "invalid-options")
		}
		typ, vals, err := formValues(x)
		if err == nil && typ != NSPubOptions {
			err = errForm("the form is not of " + NSPubOptions)
		}
		if err == nil {
			// §7.1.5: unknown fields reject the publish.
			err = applyForm(&create, vals)
		}
		if err != nil {
			return nil, m.fail(st, xmpp.NewStanzaError(xmpp.BadRequest, err.Error()), "invalid-options")
		}
		check = preconditions(create, vals)
	}
	it := storage.PubsubItem{ID: id, Publisher: st.From.String(), Payload: data}
	cfg, err := m.store.PublishPubsub(ctx, m.h.Name(), own.Local(), node, it,
		storage.PublishOptions{Create: &create, Check: check, MaxNodes: MaxNodes})
	var pre errPrecondition
	switch {
	case errors.As(err, &pre):
		return nil, m.fail(st, xmpp.NewStanzaError(xmpp.Conflict, pre.Error()), "precondition-not-met")
	case errors.Is(err, storage.ErrQuota):
		m.h.Refused("pep_nodes", "user", own.String())
		return nil, xmpp.NewStanzaError(xmpp.PolicyViolation, fmt.Sprintf("an account has at most %d nodes", MaxNodes))
	case err != nil:
		return nil, fmt.Errorf("publishing to %s of %s: %w", node, own, err)
	}
	m.notify(own, node, cfg, itemsEvent(node, id, payload))
	m.published(ctx, st.From, node, id, payload)

	res := xmpp.NewElementNS(NS, "pubsub")
	p := res.CreateElement("publish")
	p.CreateAttr("node", node)
	p.CreateElement("item").CreateAttr("id", id)
	return res, nil
}

// retract answers §7.2: the owner deletes an item; subscribers hear of it
// when the node says so, or the request's notify does.
func (m *module) retract(ctx context.Context, st *xmpp.Stanza, op *etree.Element) (*etree.Element, error) {
	own := owner(st)
	if st.From.Bare() != own {
		return nil, xmpp.NewStanzaError(xmpp.Forbidden, "only the owner retracts")
	}
	node := op.SelectAttrValue("node", "")
	if node == "" {
		return nil, m.fail(st, xmpp.NewStanzaError(xmpp.BadRequest, ""), "nodeid-required")
	}
	item := op.SelectElement("item")
	if item == nil || item.SelectAttrValue("id", "") == "" {
		return nil, m.fail(st, xmpp.NewStanzaError(xmpp.BadRequest, ""), "item-required")
	}
	id := item.SelectAttrValue("id", "")
	cfg, err := m.store.RetractPubsubItem(ctx, m.h.Name(), own.Local(), node, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, xmpp.NewStanzaError(xmpp.ItemNotFound, "")
	}
	if err != nil {
		return nil, fmt.Errorf("retracting from %s of %s: %w", node, own, err)
	}
	if n := op.SelectAttrValue("notify", ""); cfg.NotifyRetract || n == "1" || n == "true" {
		ev := xmpp.NewElementNS(NSEvent, "event")
		items := ev.CreateElement("items")
		items.CreateAttr("node", node)
		items.CreateElement("retract").CreateAttr("id", id)
		m.notify(own, node, cfg, ev)
	}
	m.retracted(ctx, st.From, node, id)
	return nil, nil
}

// put publishes payload as the item id of node of from's account for
// the server (a bridge from private XML or vcard-temp), the node made
// with create when new, and notifies as a publish does.
func (m *module) put(ctx context.Context, from xmpp.JID, node, id string, payload *etree.Element, create storage.PubsubConfig) error {
	own := from.Bare()
	data := local.Serialize(payload)
	if len(data) > MaxItemSize {
		m.h.Refused("pep_item_size", "user", own.String(), "node", node, "bytes", len(data))
		return xmpp.NewStanzaError(xmpp.PolicyViolation, fmt.Sprintf("an item is at most %d bytes", MaxItemSize))
	}
	it := storage.PubsubItem{ID: id, Publisher: from.String(), Payload: data}
	cfg, err := m.store.PublishPubsub(ctx, m.h.Name(), own.Local(), node, it,
		storage.PublishOptions{Create: &create, MaxNodes: MaxNodes})
	if errors.Is(err, storage.ErrQuota) {
		m.h.Refused("pep_nodes", "user", own.String())
		return xmpp.NewStanzaError(xmpp.PolicyViolation, fmt.Sprintf("an account has at most %d nodes", MaxNodes))
	}
	if err != nil {
		return fmt.Errorf("publishing to %s of %s: %w", node, own, err)
	}
	m.notify(own, node, cfg, itemsEvent(node, id, payload))
	return nil
}

// remove retracts the item id of node of from's account for the server,
// and notifies as a retract does; an item that is not there is no error.
func (m *module) remove(ctx context.Context, from xmpp.JID, node, id string) error {
	own := from.Bare()
	cfg, err := m.store.RetractPubsubItem(ctx, m.h.Name(), own.Local(), node, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("retracting from %s of %s: %w", node, own, err)
	}
	if cfg.NotifyRetract {
		ev := xmpp.NewElementNS(NSEvent, "event")
		items := ev.CreateElement("items")
		items.CreateAttr("node", node)
		items.CreateElement("retract").CreateAttr("id", id)
		m.notify(own, node, cfg, ev)
	}
	return nil
}

// itemsEvent is the <event/> of a published item.
func itemsEvent(node, id string, payload *etree.Element) *etree.Element {
	ev := xmpp.NewElementNS(NSEvent, "event")
	items := ev.CreateElement("items")
	items.CreateAttr("node", node)
	it := items.CreateElement("item")
	it.CreateAttr("id", id)
	it.AddChild(payload.Copy())
	return ev
}

// pubsubGet answers items (§6.5) to anyone the node's access model lets
// see them.
func (m *module) pubsubGet(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
	op := single(st)
	if op == nil {
		return nil, xmpp.NewStanzaError(xmpp.BadRequest, "no pubsub operation")
	}
	if op.Tag != "items" {
		return nil, m.unsupported(st, op.Tag)
	}
	own := owner(st)
	node := op.SelectAttrValue("node", "")
	if node == "" {
		return nil, m.fail(st, xmpp.NewStanzaError(xmpp.BadRequest, ""), "nodeid-required")
	}
	if node == NSLegacyBookmarks {
		return m.legacyPEPGet(ctx, st, own)
	}
	var ids []string
	for _, it := range op.SelectElements("item") {
		if id := it.SelectAttrValue("id", ""); id != "" {
			ids = append(ids, id)
		}
	}
	max := 0
	if v := op.SelectAttrValue("max_items", ""); v != "" && len(ids) == 0 {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, xmpp.NewStanzaError(xmpp.BadRequest, "max_items is a positive integer")
		}
		max = n
	}
	cfg, items, err := m.store.PubsubItems(ctx, m.h.Name(), own.Local(), node, ids, max)
	if errors.Is(err, storage.ErrNotFound) && node == NSBookmarks && st.From.Bare() == own {
		// Bookmarks an old client kept in private XML become the node.
		var moved bool
		if moved, err = private.MoveToBridge(ctx, m.h, st.From, NSLegacyBookmarks); err == nil && moved {
			cfg, items, err = m.store.PubsubItems(ctx, m.h.Name(), own.Local(), node, ids, max)
		} else if err == nil {
			err = storage.ErrNotFound
		}
	}
	if errors.Is(err, storage.ErrNotFound) {
		return nil, xmpp.NewStanzaError(xmpp.ItemNotFound, "")
	}
	if err != nil {
		return nil, fmt.Errorf("items of %s of %s: %w", node, own, err)
	}
	if e, app := m.mayRead(own, st.From, cfg); e != nil {
		return nil, m.fail(st, e, app)
	}
	res := xmpp.NewElementNS(NS, "pubsub")
	list := res.CreateElement("items")
	list.CreateAttr("node", node)
	for _, it := range items {
		el := list.CreateElement("item")
		el.CreateAttr("id", it.ID)
		p, err := xmpp.ParseElement(string(it.Payload), m.h.StoredLimits())
		if err != nil {
			return nil, fmt.Errorf("item %s of %s of %s: %w", it.ID, node, own, err)
		}
		el.AddChild(p)
	}
	return res, nil
}

// mayRead says whether who may see the items of a node of own with cfg:
// nil, or the error and XEP-0060's condition (§6.5.9).
func (m *module) mayRead(own, who xmpp.JID, cfg storage.PubsubConfig) (*xmpp.StanzaError, string) {
	if who.Bare() == own {
		return nil, ""
	}
	switch cfg.AccessModel {
	case "open":
		return nil, ""
	case "presence":
		if m.subscribed(own, who) {
			return nil, ""
		}
		return xmpp.NewStanzaError(xmpp.NotAuthorized, ""), "presence-subscription-required"
	}
	return xmpp.NewStanzaError(xmpp.NotAllowed, ""), "closed-node"
}

// subscribed reports whether who has a subscription to own's presence.
func (m *module) subscribed(own, who xmpp.JID) bool {
	sub, _ := m.h.Subscription(own.Local(), who)
	return sub == "from" || sub == "both"
}

// may is mayRead as a yes or no.
func (m *module) may(own, who xmpp.JID, cfg storage.PubsubConfig) bool {
	e, _ := m.mayRead(own, who, cfg)
	return e == nil
}

// ownerGet answers the configuration form (§8.2.1).
func (m *module) ownerGet(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
	op := single(st)
	if op == nil || op.Tag != "configure" {
		if op == nil {
			return nil, xmpp.NewStanzaError(xmpp.BadRequest, "no pubsub operation")
		}
		return nil, m.unsupported(st, op.Tag)
	}
	own := owner(st)
	node := op.SelectAttrValue("node", "")
	if node == "" {
		return nil, m.fail(st, xmpp.NewStanzaError(xmpp.BadRequest, ""), "nodeid-required")
	}
	cfg, err := m.store.PubsubConfigOf(ctx, m.h.Name(), own.Local(), node)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, xmpp.NewStanzaError(xmpp.ItemNotFound, "")
	}
	if err != nil {
		return nil, fmt.Errorf("configuration of %s of %s: %w", node, own, err)
	}
	res := xmpp.NewElementNS(NSOwner, "pubsub")
	c := res.CreateElement("configure")
	c.CreateAttr("node", node)
	c.AddChild(configForm(cfg))
	return res, nil
}

// ownerSet answers configure (§8.2.4) and delete (§8.4).
func (m *module) ownerSet(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
	op := single(st)
	if op == nil {
		return nil, xmpp.NewStanzaError(xmpp.BadRequest, "no pubsub operation")
	}
	own := owner(st)
	node := op.SelectAttrValue("node", "")
	if node == "" && (op.Tag == "configure" || op.Tag == "delete") {
		return nil, m.fail(st, xmpp.NewStanzaError(xmpp.BadRequest, ""), "nodeid-required")
	}
	switch op.Tag {
	case "delete":
		cfg, err := m.store.DeletePubsubNode(ctx, m.h.Name(), own.Local(), node)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, xmpp.NewStanzaError(xmpp.ItemNotFound, "")
		}
		if err != nil {
			return nil, fmt.Errorf("deleting %s of %s: %w", node, own, err)
		}
		if cfg.NotifyDelete {
			ev := xmpp.NewElementNS(NSEvent, "event")
			ev.CreateElement("delete").CreateAttr("node", node)
			m.notify(own, node, cfg, ev)
		}
		m.retracted(ctx, st.From, node, "")
		return nil, nil
	case "configure":
		x := xmpp.Child(op, "jabber:x:data", "x")
		if x == nil {
			return nil, xmpp.NewStanzaError(xmpp.BadRequest, "configure without a form")
		}
		if x.SelectAttrValue("type", "") == "cancel" {
			return nil, nil
		}
		cfg, err := m.store.PubsubConfigOf(ctx, m.h.Name(), own.Local(), node)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, xmpp.NewStanzaError(xmpp.ItemNotFound, "")
		}
		if err != nil {
			return nil, fmt.Errorf("configuration of %s of %s: %w", node, own, err)
		}
		typ, vals, err := formValues(x)
		if err == nil && typ != NSNodeConfig {
			err = errForm("the form is not of " + NSNodeConfig)
		}
		if err == nil {
			err = applyForm(&cfg, vals)
		}
		if err != nil {
			// §8.2.5.3: an invalid form.
			return nil, xmpp.NewStanzaError(xmpp.NotAcceptable, err.Error())
		}
		if err := m.store.ConfigurePubsubNode(ctx, m.h.Name(), own.Local(), node, cfg); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return nil, xmpp.NewStanzaError(xmpp.ItemNotFound, "")
			}
			return nil, fmt.Errorf("configuring %s of %s: %w", node, own, err)
		}
		return nil, nil
	}
	return nil, m.unsupported(st, op.Tag)
}

// notify sends ev about node of own to whoever wants the node and may see
// it (XEP-0163 §4.3): the owner's resources and the contacts whose
// entity capabilities say <node>+notify.
func (m *module) notify(own xmpp.JID, node string, cfg storage.PubsubConfig, ev *etree.Element) {
	to := m.caps.interested(own, node)
	if len(to) == 0 {
		return
	}
	msg := etree.NewElement("message")
	msg.CreateAttr("type", "headline")
	msg.AddChild(ev)
	id := "pep-" + strconv.FormatUint(m.ids.Add(1), 36)
	for _, j := range to {
		if j.Bare() != own && !m.may(own, j, cfg) {
			continue
		}
		st := &xmpp.Stanza{El: msg.Copy(), Kind: xmpp.KindMessage, Type: "headline", ID: id}
		st.El.CreateAttr("id", id)
		st.SetFrom(own)
		st.SetTo(j)
		m.h.Route(st)
	}
}

// sendLast sends to, a resource that newly wants nodes of own (the set
// nodes), the newest item of each of them that it may see (XEP-0163
// §4.3.4).
func (m *module) sendLast(own, to xmpp.JID, nodes map[string]bool) {
	if len(nodes) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), lastItemsTimeout)
	defer cancel()
	list, err := m.store.PubsubLastItems(ctx, m.h.Name(), own.Local())
	if err != nil {
		m.h.Logger().Error("pep: last items", "user", own, "err", err)
		return
	}
	for _, n := range list {
		if n.Last == nil || !nodes[n.Name] || n.Config.SendLast != "on_sub_and_presence" {
			continue
		}
		if to.Bare() != own && !m.may(own, to, n.Config) {
			continue
		}
		p, err := xmpp.ParseElement(string(n.Last.Payload), m.h.StoredLimits())
		if err != nil {
			m.h.Logger().Error("pep: stored item", "user", own, "node", n.Name, "err", err)
			continue
		}
		msg := etree.NewElement("message")
		msg.CreateAttr("type", "headline")
		id := "pep-" + strconv.FormatUint(m.ids.Add(1), 36)
		msg.CreateAttr("id", id)
		msg.AddChild(itemsEvent(n.Name, n.Last.ID, p))
		st := &xmpp.Stanza{El: msg, Kind: xmpp.KindMessage, Type: "headline", ID: id}
		st.SetFrom(own)
		st.SetTo(to)
		m.h.Route(st)
	}
}

// nodeOfFeature returns the node a "+notify" feature asks for.
func nodeOfFeature(f string) (string, bool) {
	return strings.CutSuffix(f, "+notify")
}

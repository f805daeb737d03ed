// Package private is the module of private XML storage (XEP-0049): a user
// keeps one element per namespace on the server (bookmarks, client
// settings), which only the user reads back. Elements are up to 64 KiB
// each, and an account's all within [limits] private_storage_bytes.
//
// Another module may keep one namespace itself (a [Bridge]): XEP-0048's
// bookmarks are answered from XEP-0402's PEP node by the pep module, so
// that old and new clients see one list.
package private

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// NS is XEP-0049's namespace, and its disco#info feature.
const NS = "jabber:iq:private"

const (
	// kind is the key the store keeps private XML under.
	kind = "private"
	// maxSize bounds one element.
	maxSize = 64 << 10
	// LimitKey is the [limits] key of the per-account quota, and the
	// name its refusals are counted under (parley_limit_refusals_total).
	LimitKey = "private_storage_bytes"
)

// Store is what the module needs of storage.
type Store interface {
	XML(ctx context.Context, host, user, kind, key string) ([]byte, error)
	PutXMLDocs(ctx context.Context, host, user, kind string, docs []storage.XMLDoc, quota int64) error
}

func init() {
	local.RegisterModule(local.Module{Name: "private", Start: start})
}

func start(h *local.Host) error {
	st, ok := h.Store().(Store)
	if !ok {
		return fmt.Errorf("the store (%T) cannot keep private XML", h.Store())
	}
	m := &module{h: h, store: st, quota: int64(h.Config().Limits.PrivateStorageBytes)}
	h.HandleIQ(local.ToBare, "get", NS, "query", NS, local.OwnOnly(m.get))
	h.HandleIQ(local.ToBare, "set", NS, "query", "", local.OwnOnly(m.set))
	return nil
}

type module struct {
	h     *local.Host
	store Store
	quota int64
}

// Bridge keeps the private XML of one namespace in place of the store.
type Bridge interface {
	// PrivateGet returns the user's element, or nil when the bridge
	// has none yet: the module then answers what the store kept from
	// before the bridge, and moves it over (PrivateSet).
	PrivateGet(ctx context.Context, user string) (*etree.Element, error)
	// PrivateSet replaces the element of from's account with el; an
	// *xmpp.StanzaError it returns is the answer.
	PrivateSet(ctx context.Context, from xmpp.JID, el *etree.Element) error
}

// bridges are each host's Bridges, by namespace (a *sync.Map: namespace
// → Bridge). The first of SetBridge and the module's start makes it.
var bridges = local.NewHostValue[*sync.Map]()

// SetBridge makes b keep the namespace ns of the host of h. A module
// calls it from its Start; the private module asks at each iq, so the
// order of the modules' starts does not matter.
func SetBridge(h *local.Host, ns string, b Bridge) {
	bridges.GetOrSet(h, new(sync.Map)).Store(ns, b)
}

// bridge returns the Bridge of ns on m's host, or nil.
func (m *module) bridge(ns string) Bridge {
	byNS, ok := bridges.Get(m.h)
	if !ok {
		return nil
	}
	if b, ok := byNS.Load(ns); ok {
		return b.(Bridge)
	}
	return nil
}

// namespaced reports whether an element may be stored: it needs a
// namespace of its own (XEP-0049 §3).
func namespaced(ns string) bool {
	return ns != "" && ns != NS && ns != xmpp.NSClient
}

// get answers the stored element of the asked namespace, or the empty
// element itself.
func (m *module) get(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
	kids := st.Payload().ChildElements()
	if len(kids) != 1 {
		return nil, xmpp.NewStanzaError(xmpp.BadRequest, "ask for exactly one element")
	}
	ns := xmpp.NS(kids[0])
	if !namespaced(ns) {
		return nil, xmpp.NewStanzaError(xmpp.NotAcceptable, "the element needs a namespace of its own")
	}
	q := xmpp.NewElementNS(NS, "query")
	b := m.bridge(ns)
	if b != nil {
		el, err := b.PrivateGet(ctx, st.From.Local())
		if err != nil {
			return nil, fmt.Errorf("reading private %s of %s: %w", ns, st.From.Bare(), err)
		}
		if el != nil {
			q.AddChild(el)
			return q, nil
		}
	}
	data, err := m.store.XML(ctx, m.h.Name(), st.From.Local(), kind, ns)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		q.AddChild(kids[0].Copy())
	case err != nil:
		return nil, fmt.Errorf("reading private XML of %s: %w", st.From.Bare(), err)
	default:
		el, err := xmpp.ParseElement(string(data), m.h.StoredLimits())
		if err != nil {
			return nil, fmt.Errorf("reading private XML of %s: %w", st.From.Bare(), err)
		}
		if b != nil && len(el.ChildElements()) > 0 {
			// Kept before the bridge: moved to it once, and the stored
			// copy emptied, so that the two never disagree.
			if err := m.moveToBridge(ctx, st.From, b, el); err != nil {
				return nil, err
			}
		}
		q.AddChild(el)
	}
	return q, nil
}

// moveToBridge hands el, the stored element of its namespace, to b and
// empties the stored one.
func (m *module) moveToBridge(ctx context.Context, from xmpp.JID, b Bridge, el *etree.Element) error {
	ns := xmpp.NS(el)
	if err := b.PrivateSet(ctx, from, el); err != nil {
		return fmt.Errorf("moving private %s of %s: %w", ns, from.Bare(), err)
	}
	empty := local.Serialize(xmpp.NewElementNS(ns, el.Tag))
	if err := m.store.PutXMLDocs(ctx, m.h.Name(), from.Local(), kind, []storage.XMLDoc{{Key: ns, XML: empty}}, 0); err != nil {
		return fmt.Errorf("emptying private %s of %s: %w", ns, from.Bare(), err)
	}
	m.h.Logger().Info("private XML moved to its bridge", "user", from.Bare().String(), "ns", ns)
	return nil
}

// set stores one element per namespace, all or nothing, within the
// account's quota.
func (m *module) set(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
	kids := st.Payload().ChildElements()
	if len(kids) == 0 {
		return nil, xmpp.NewStanzaError(xmpp.BadRequest, "store at least one element")
	}
	docs := make([]storage.XMLDoc, 0, len(kids))
	type bridged struct {
		b  Bridge
		el *etree.Element
	}
	var toBridges []bridged
	for _, k := range kids {
		ns := xmpp.NS(k)
		if !namespaced(ns) {
			return nil, xmpp.NewStanzaError(xmpp.NotAcceptable, "each element needs a namespace of its own")
		}
		c := k.Copy()
		if c.SelectAttr("xmlns") == nil {
			c.CreateAttr("xmlns", ns)
		}
		data := local.Serialize(c)
		if len(data) > maxSize {
			return nil, xmpp.NewStanzaError(xmpp.NotAcceptable, "an element is larger than 64 KiB")
		}
		if b := m.bridge(ns); b != nil {
			// The store keeps the empty element: what it kept from
			// before the bridge is then gone.
			toBridges = append(toBridges, bridged{b, c})
			data = local.Serialize(xmpp.NewElementNS(ns, c.Tag))
		}
		docs = append(docs, storage.XMLDoc{Key: ns, XML: data})
	}
	// All or nothing, within the account's quota (private_storage_bytes):
	// 400 elements of 60 KB each were taken before there was one.
	err := m.store.PutXMLDocs(ctx, m.h.Name(), st.From.Local(), kind, docs, m.quota)
	var qe *storage.QuotaError
	if errors.As(err, &qe) {
		m.h.Refused(LimitKey, "user", st.From.Local())
		return nil, xmpp.NewStanzaError(xmpp.NotAcceptable, fmt.Sprintf(
			"private storage is full: %s kept of %s; store less, or remove an element (store it empty) first",
			conf.Size(qe.Used), conf.Size(qe.Limit)))
	}
	if err != nil {
		return nil, fmt.Errorf("storing private XML of %s: %w", st.From.Bare(), err)
	}
	// After the store's transaction, which may refuse by quota: a bridge
	// cannot take part in it.
	for _, tb := range toBridges {
		if err := tb.b.PrivateSet(ctx, st.From, tb.el); err != nil {
			var se *xmpp.StanzaError
			if errors.As(err, &se) {
				return nil, se
			}
			return nil, fmt.Errorf("storing private %s of %s: %w", xmpp.NS(tb.el), st.From.Bare(), err)
		}
	}
	return nil, nil
}

// MoveToBridge moves what the store kept of the namespace ns for from's
// account before a Bridge took ns over (on the host of h) to that
// bridge, and reports whether there was anything. The bridge's module
// calls it when its own copy is missing: a client that asks it first
// still sees what an old client stored.
func MoveToBridge(ctx context.Context, h *local.Host, from xmpp.JID, ns string) (bool, error) {
	st, ok := h.Store().(Store)
	if !ok {
		return false, fmt.Errorf("the store (%T) cannot keep private XML", h.Store())
	}
	m := &module{h: h, store: st}
	b := m.bridge(ns)
	if b == nil {
		return false, nil
	}
	data, err := st.XML(ctx, h.Name(), from.Local(), kind, ns)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading private XML of %s: %w", from.Bare(), err)
	}
	el, err := xmpp.ParseElement(string(data), h.StoredLimits())
	if err != nil {
		return false, fmt.Errorf("reading private XML of %s: %w", from.Bare(), err)
	}
	if len(el.ChildElements()) == 0 {
		return false, nil
	}
	return true, m.moveToBridge(ctx, from, b, el)
}

// Package private is the module of private XML storage (XEP-0049): a user
// keeps one element per namespace on the server (bookmarks, client
// settings), which only the user reads back. Elements are up to 64 KiB
// each, and an account's all within [limits] private_storage_bytes.
package private

import (
	"context"
	"errors"
	"fmt"

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
		q.AddChild(el)
	}
	return q, nil
}

// set stores one element per namespace, all or nothing, within the
// account's quota.
func (m *module) set(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
	kids := st.Payload().ChildElements()
	if len(kids) == 0 {
		return nil, xmpp.NewStanzaError(xmpp.BadRequest, "store at least one element")
	}
	docs := make([]storage.XMLDoc, 0, len(kids))
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
	return nil, nil
}

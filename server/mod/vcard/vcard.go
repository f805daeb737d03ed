// Package vcard is the module of vcard-temp (XEP-0054): a user stores a
// vCard, and anyone may read it from the user's bare JID. The vCard is
// kept as the client sent it, up to 64 KiB.
package vcard

import (
	"context"
	"errors"
	"fmt"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// NS is vcard-temp's namespace, and its disco#info feature.
const NS = "vcard-temp"

const (
	// kind is the key the store keeps vCards under.
	kind = "vcard"
	// maxSize bounds one stored vCard: avatars belong in XEP-0084 or
	// upload, and this keeps one user from filling the disk.
	maxSize = 64 << 10
)

// Store is what the module needs of storage.
type Store interface {
	XML(ctx context.Context, host, user, kind, key string) ([]byte, error)
	PutXML(ctx context.Context, host, user, kind, key string, xml []byte) error
}

func init() {
	local.RegisterModule(local.Module{Name: "vcard", Start: start})
}

func start(h *local.Host) error {
	st, ok := h.Store().(Store)
	if !ok {
		return fmt.Errorf("the store (%T) cannot keep vCards", h.Store())
	}
	m := &module{h: h, store: st}
	h.HandleIQ(local.ToBare, "get", NS, "vCard", NS, m.get)
	h.HandleIQ(local.ToBare, "set", NS, "vCard", "", local.OwnOnly(m.set))
	return nil
}

type module struct {
	h     *local.Host
	store Store
}

// get answers anyone's request for a user's vCard: the stored one, or an
// empty one (XEP-0054 §3.1).
func (m *module) get(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
	target := st.To.Bare()
	if st.To.IsZero() {
		target = st.From.Bare()
	}
	data, err := m.store.XML(ctx, m.h.Name(), target.Local(), kind, "")
	if errors.Is(err, storage.ErrNotFound) {
		return xmpp.NewElementNS(NS, "vCard"), nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the vCard of %s: %w", target, err)
	}
	return xmpp.ParseElement(string(data), m.h.StoredLimits())
}

// set stores the user's own vCard.
func (m *module) set(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
	data := local.Serialize(st.Payload())
	if len(data) > maxSize {
		return nil, xmpp.NewStanzaError(xmpp.NotAcceptable, "the vCard is larger than 64 KiB")
	}
	if err := m.store.PutXML(ctx, m.h.Name(), st.From.Local(), kind, "", data); err != nil {
		return nil, fmt.Errorf("storing the vCard of %s: %w", st.From.Bare(), err)
	}
	return nil, nil
}

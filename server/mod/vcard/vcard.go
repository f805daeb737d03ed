// Package vcard is the module of vcard-temp (XEP-0054): a user stores a
// vCard, and anyone may read it from the user's bare JID. The vCard is
// kept as the client sent it, up to 64 KiB.
//
// The pep module keeps the vCard's PHOTO and the user's avatar (XEP-0084)
// one: it hears of each vCard set before it is stored ([OnSet]), and sets
// the PHOTO when an avatar is published ([SetPhoto]).
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

// Observer hears of the vCard a user sets, before it is stored; its
// error refuses the set (an *xmpp.StanzaError is the answer).
type Observer func(ctx context.Context, from xmpp.JID, vcard *etree.Element) error

// observers are each host's Observer.
var observers = local.NewHostValue[Observer]()

// OnSet makes f hear of each vCard set on the host of h. A module calls
// it from its Start.
func OnSet(h *local.Host, f Observer) {
	observers.Set(h, f)
}

// ErrTooLarge is SetPhoto's error when the vCard with the photo would
// be over the 64 KiB bound; the stored vCard is left as it was.
var ErrTooLarge = errors.New("the vCard would be larger than 64 KiB")

// SetPhoto replaces the PHOTO of the stored vCard of user on the host of
// h by photo (a <PHOTO/> of vcard-temp; nil removes it), without telling
// the OnSet observer: the avatar it comes from is already published.
// The read and the write are not one transaction: a vCard set in
// between is overwritten with its PHOTO replaced.
func SetPhoto(ctx context.Context, h *local.Host, user string, photo *etree.Element) error {
	st, ok := h.Store().(Store)
	if !ok {
		return fmt.Errorf("the store (%T) cannot keep vCards", h.Store())
	}
	v := xmpp.NewElementNS(NS, "vCard")
	data, err := st.XML(ctx, h.Name(), user, kind, "")
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return fmt.Errorf("reading the vCard of %s: %w", user, err)
	default:
		if v, err = xmpp.ParseElement(string(data), h.StoredLimits()); err != nil {
			return fmt.Errorf("reading the vCard of %s: %w", user, err)
		}
	}
	old := v.SelectElements("PHOTO")
	if len(old) == 0 && photo == nil {
		return nil
	}
	for _, p := range old {
		v.RemoveChild(p)
	}
	if photo != nil {
		v.AddChild(photo.Copy())
	}
	data = local.Serialize(v)
	if len(data) > maxSize {
		return ErrTooLarge
	}
	if err := st.PutXML(ctx, h.Name(), user, kind, "", data); err != nil {
		return fmt.Errorf("storing the vCard of %s: %w", user, err)
	}
	return nil
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
	if f, ok := observers.Get(m.h); ok {
		if err := f(ctx, st.From, st.Payload()); err != nil {
			var se *xmpp.StanzaError
			if errors.As(err, &se) {
				return nil, se
			}
			return nil, fmt.Errorf("the vCard of %s: %w", st.From.Bare(), err)
		}
	}
	if err := m.store.PutXML(ctx, m.h.Name(), st.From.Local(), kind, "", data); err != nil {
		return nil, fmt.Errorf("storing the vCard of %s: %w", st.From.Bare(), err)
	}
	return nil, nil
}

package local

import (
	"context"
	"errors"
	"slices"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// IQHandler answers one iq get or set: the payload of the result (nil for
// an empty result), or an error, which should be a *xmpp.StanzaError
// (any other is logged and answered <internal-server-error/>). ctx ends
// when the server shuts down or after handlerTimeout: a handler passes it
// to the store and to anything else that may wait.
type IQHandler func(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error)

type iqKey struct {
	typ       string // get or set
	ns, local string // of the payload
}

// iqMux dispatches iqs by type and payload. Every iq that no handler
// answers gets <service-unavailable/>, here and nowhere else.
type iqMux struct {
	handlers map[iqKey]IQHandler
	features []string // disco#info features, in registration order
	// forms are the extended disco#info forms (XEP-0128).
	forms []*etree.Element
	// identities are the modules' identities (category, type) after the
	// mux's own (Host.AccountIdentity).
	identities [][2]string
	// also is a mux whose features this one's disco#info lists too: the
	// host's lists those of the account's (see Host.HandleIQ).
	also *iqMux
}

// newIQMux returns a mux that answers disco#info itself, with one
// identity, the features of what is registered on it (in registration
// order) and its forms: the list can never claim what the mux does not
// answer.
func newIQMux(category, typ, name string) *iqMux {
	m := &iqMux{handlers: make(map[iqKey]IQHandler)}
	m.handle("get", xmpp.NSDiscoInfo, "query", xmpp.NSDiscoInfo, discoInfo(m, category, typ, name))
	return m
}

// feature lists f in disco#info, once.
func (m *iqMux) feature(f string) {
	if f != "" && !slices.Contains(m.features, f) {
		m.features = append(m.features, f)
	}
}

// handle registers h for iqs of type typ whose payload is <local xmlns=ns/>.
// feature, when not empty, is listed in disco#info. A nil handler or a
// second one for the same iqs is a mistake in the code that registers
// them, found at start: it panics, as net/http's ServeMux does.
func (m *iqMux) handle(typ, ns, local, feature string, h IQHandler) {
	k := iqKey{typ, ns, local}
	switch {
	case h == nil:
		panic("server: nil iq handler for " + typ + " {" + ns + "}" + local)
	case m.handlers[k] != nil:
		panic("server: a second iq handler for " + typ + " {" + ns + "}" + local)
	}
	m.handlers[k] = h
	m.feature(feature)
}

// answer runs the handler for an iq get or set and routes its result or
// error; results and errors themselves are dropped (they answer nothing
// the server asked).
func (h *localHost) answer(st *xmpp.Stanza, m *iqMux) {
	if st.Type != "get" && st.Type != "set" {
		return
	}
	p := st.Payload()
	handler := m.handlers[iqKey{st.Type, xmpp.NS(p), p.Tag}]
	if handler == nil {
		h.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, ""))
		return
	}
	ctx, cancel := h.router.StoreContext()
	payload, err := handler(ctx, st)
	cancel()
	if errors.Is(err, ErrAnswered) {
		return
	}
	if err != nil {
		var se *xmpp.StanzaError
		if !errors.As(err, &se) {
			h.log.Error("local: iq handler", "ns", xmpp.NS(p), "err", err)
			se = xmpp.NewStanzaError(xmpp.InternalServerError, "")
		}
		h.router.Bounce(st, se)
		return
	}
	h.router.Route(st.Result(payload))
}

// coreServices registers what the core itself answers or does that
// clients look for in disco#info.
func (h *localHost) coreServices() {
	// XEP-0160: messages to a user with no available resource are kept.
	h.server.feature(NSOffline)
}

// contactForm is the XEP-0157 extended disco#info form.
func contactForm(fields [][2]any) *etree.Element {
	x := xmpp.NewElementNS(NSDataForms, "x")
	x.CreateAttr("type", "result")
	ft := x.CreateElement("field")
	ft.CreateAttr("var", "FORM_TYPE")
	ft.CreateAttr("type", "hidden")
	ft.CreateElement("value").SetText(NSServerInfo)
	for _, f := range fields {
		field := x.CreateElement("field")
		field.CreateAttr("var", f[0].(string))
		for _, v := range f[1].([]string) {
			field.CreateElement("value").SetText(v)
		}
	}
	return x
}

// discoInfo answers disco#info with one identity, the mux's features (and
// those of m.also), sorted, and forms.
func discoInfo(m *iqMux, category, typ, name string) IQHandler {
	return func(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
		if st.Payload().SelectAttr("node") != nil {
			return nil, xmpp.NewStanzaError(xmpp.ItemNotFound, "no such node")
		}
		q := xmpp.NewElementNS(xmpp.NSDiscoInfo, "query")
		id := q.CreateElement("identity")
		id.CreateAttr("category", category)
		id.CreateAttr("type", typ)
		if name != "" {
			id.CreateAttr("name", name)
		}
		for _, i := range m.identities {
			id := q.CreateElement("identity")
			id.CreateAttr("category", i[0])
			id.CreateAttr("type", i[1])
		}
		// Sorted, as XEP-0115 §5.1 sorts them: the answer does not
		// depend on the order modules started in.
		features := slices.Clone(m.features)
		if m.also != nil {
			features = append(features, m.also.features...)
		}
		slices.Sort(features)
		features = slices.Compact(features)
		for _, f := range features {
			q.CreateElement("feature").CreateAttr("var", f)
		}
		for _, f := range m.forms {
			q.AddChild(f.Copy())
		}
		return q, nil
	}
}

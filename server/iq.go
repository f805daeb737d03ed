package server

import (
	"errors"
	"runtime"
	"strconv"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// IQHandler answers one iq get or set: the payload of the result (nil for
// an empty result), or an error, which should be a *xmpp.StanzaError.
type IQHandler func(st *xmpp.Stanza) (*etree.Element, error)

type iqKey struct {
	typ       string // get or set
	ns, local string // of the payload
}

// iqMux dispatches iqs by type and payload. Every iq that no handler
// answers gets <service-unavailable/>, here and nowhere else.
type iqMux struct {
	handlers map[iqKey]IQHandler
	features []string // disco#info features, in registration order
}

// newIQMux returns a mux that answers disco#info itself, with one
// identity, the features of what is registered on it (in registration
// order) and the extended forms given (may be nil): the list can never
// claim what the mux does not answer.
func newIQMux(category, typ, name string, forms []*etree.Element) *iqMux {
	m := &iqMux{handlers: make(map[iqKey]IQHandler)}
	m.handle("get", xmpp.NSDiscoInfo, "query", xmpp.NSDiscoInfo, discoInfo(m, category, typ, name, forms))
	return m
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
	if feature != "" {
		for _, f := range m.features {
			if f == feature {
				return
			}
		}
		m.features = append(m.features, feature)
	}
}

// answer runs the handler for an iq get or set and routes its result or
// error; results and errors themselves are dropped (they answer nothing
// the server asked).
func (r *Router) answer(st *xmpp.Stanza, m *iqMux) {
	if st.Type != "get" && st.Type != "set" {
		return
	}
	p := st.Payload()
	h := m.handlers[iqKey{st.Type, xmpp.NS(p), p.Tag}]
	if h == nil {
		r.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, ""))
		return
	}
	payload, err := h(st)
	if errors.Is(err, errAnswered) {
		return
	}
	if err != nil {
		var se *xmpp.StanzaError
		if !errors.As(err, &se) {
			r.log.Error("server: iq handler", "ns", xmpp.NS(p), "err", err)
			se = xmpp.NewStanzaError(xmpp.InternalServerError, "")
		}
		r.Bounce(st, se)
		return
	}
	r.Route(st.Result(payload))
}

// Version is Parley's version, reported by jabber:iq:version and
// `parley version`. Release builds set it with -ldflags.
var Version = "0.1.0-dev"

// serverServices are the iqs a local host's domain answers.
func (h *localHost) serverServices(components []string, registration bool, started time.Time) *iqMux {
	var forms []*etree.Element
	if len(h.contact) > 0 {
		forms = append(forms, contactForm(h.contact))
	}
	m := newIQMux("server", "im", "Parley", forms)
	m.handle("get", xmpp.NSDiscoItems, "query", xmpp.NSDiscoItems, func(st *xmpp.Stanza) (*etree.Element, error) {
		if st.Payload().SelectAttr("node") != nil {
			return nil, xmpp.NewStanzaError(xmpp.ItemNotFound, "no such node")
		}
		q := xmpp.NewElementNS(xmpp.NSDiscoItems, "query")
		for _, c := range components {
			q.CreateElement("item").CreateAttr("jid", c)
		}
		return q, nil
	})
	m.handle("get", xmpp.NSPing, "ping", xmpp.NSPing, func(*xmpp.Stanza) (*etree.Element, error) {
		return nil, nil
	})
	m.handle("get", xmpp.NSVersion, "query", xmpp.NSVersion, func(*xmpp.Stanza) (*etree.Element, error) {
		q := xmpp.NewElementNS(xmpp.NSVersion, "query")
		q.CreateElement("name").SetText("Parley")
		q.CreateElement("version").SetText(Version)
		q.CreateElement("os").SetText(runtime.GOOS)
		return q, nil
	})
	m.handle("get", xmpp.NSTime, "time", xmpp.NSTime, func(*xmpp.Stanza) (*etree.Element, error) {
		now := time.Now()
		q := xmpp.NewElementNS(xmpp.NSTime, "time")
		q.CreateElement("tzo").SetText(now.Format("-07:00"))
		q.CreateElement("utc").SetText(now.UTC().Format("2006-01-02T15:04:05.000Z"))
		return q, nil
	})
	m.handle("get", NSLast, "query", NSLast, func(*xmpp.Stanza) (*etree.Element, error) {
		// XEP-0012 §6: to a server, the time since it started.
		q := xmpp.NewElementNS(NSLast, "query")
		q.CreateAttr("seconds", strconv.FormatInt(int64(time.Since(started).Seconds()), 10))
		return q, nil
	})
	// Features answered for the users' accounts, which clients look for
	// on the server.
	m.features = append(m.features, NSOffline, NSBlocking, NSVCard, NSPrivate)
	if registration {
		// Post-login password changes and removals come to the domain
		// (XEP-0077 §3.2); the account's own handler serves them.
		m.handle("set", NSRegister, "query", NSRegister, func(st *xmpp.Stanza) (*etree.Element, error) {
			if st.From.Domain() != h.name || st.From.Local() == "" {
				return nil, xmpp.NewStanzaError(xmpp.NotAllowed, "")
			}
			return h.registerSet(st)
		})
	} else {
		m.handle("set", NSRegister, "query", "", func(st *xmpp.Stanza) (*etree.Element, error) {
			if st.From.Domain() != h.name || st.From.Local() == "" {
				return nil, xmpp.NewStanzaError(xmpp.NotAllowed, "")
			}
			return h.registerSet(st)
		})
	}
	return m
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

// discoInfo answers disco#info with one identity, the mux's features and
// extended forms (may be nil).
func discoInfo(m *iqMux, category, typ, name string, forms []*etree.Element) IQHandler {
	return func(st *xmpp.Stanza) (*etree.Element, error) {
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
		for _, f := range m.features {
			q.CreateElement("feature").CreateAttr("var", f)
		}
		for _, f := range forms {
			q.AddChild(f.Copy())
		}
		return q, nil
	}
}

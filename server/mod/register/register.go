// Package register is the module of what a logged-in user does with
// in-band registration (XEP-0077 §3.2, §3.3): change the account's
// password, or remove the account. (Creating accounts happens before
// login, on the stream: package c2s, with server's registrar.)
package register

import (
	"context"
	"fmt"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/c2s/sasl"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// NS is XEP-0077's namespace.
const NS = "jabber:iq:register"

// Store is what the module needs of storage.
type Store interface {
	SetCredentials(ctx context.Context, host, username string, sha1, sha256 storage.SCRAMKey) error
	DeleteAccount(ctx context.Context, host, username string) error
}

func init() {
	local.RegisterModule(local.Module{Name: "register", Start: start})
}

func start(h *local.Host) error {
	st, ok := h.Store().(Store)
	if !ok {
		return fmt.Errorf("the store (%T) cannot change accounts", h.Store())
	}
	m := &module{h: h, store: st, iterations: h.Config().Auth.SCRAMIterations}
	// To the user's own account (sent without to, or to the bare JID)...
	h.HandleIQ(local.ToBare, "set", NS, "query", "", local.OwnOnly(m.set))
	// ...or to the domain (XEP-0077 §3.2's examples). The feature is
	// listed where others may register.
	feature := ""
	if h.Options().Registration != local.RegistrationClosed {
		feature = NS
	}
	h.HandleIQ(local.ToHost, "set", NS, "query", feature, func(ctx context.Context, s *xmpp.Stanza) (*etree.Element, error) {
		if s.From.Domain() != h.Name() || s.From.Local() == "" {
			return nil, xmpp.NewStanzaError(xmpp.NotAllowed, "")
		}
		return m.set(ctx, s)
	})
	return nil
}

type module struct {
	h          *local.Host
	store      Store
	iterations int
}

// set changes the user's password or removes the account.
func (m *module) set(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
	q := st.Payload()
	user := st.From.Local()
	if q.SelectElement("remove") != nil {
		if err := m.store.DeleteAccount(ctx, m.h.Name(), user); err != nil {
			return nil, fmt.Errorf("removing %s: %w", st.From.Bare(), err)
		}
		// The result first, then the streams end (§3.3): the client
		// learns the removal worked before its stream closes.
		m.h.Route(st.Result(nil))
		for _, s := range m.h.Sessions(user) {
			s.Close(xmpp.NewStreamError(xmpp.StreamNotAuthorized, "the account was removed"))
		}
		return nil, local.ErrAnswered
	}
	name, pass := "", ""
	if u := q.SelectElement("username"); u != nil {
		name = u.Text()
	}
	if p := q.SelectElement("password"); p != nil {
		pass = p.Text()
	}
	if l, err := xmpp.NormalizeLocal(name); err != nil || l != user || pass == "" {
		return nil, xmpp.NewStanzaError(xmpp.BadRequest, "give your own username and a new password")
	}
	k1, k256, err := sasl.NewKeys(pass, m.iterations)
	if err != nil {
		return nil, xmpp.NewStanzaError(xmpp.NotAcceptable, "the password is not valid: "+err.Error())
	}
	if err := m.store.SetCredentials(ctx, m.h.Name(), user, k1, k256); err != nil {
		return nil, fmt.Errorf("changing the password of %s: %w", st.From.Bare(), err)
	}
	return nil, nil
}

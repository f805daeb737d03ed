package local

import (
	"context"
	"github.com/parley-im/parley/conf"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// Namespaces of the services a local host answers.
const (
	NSBlocking    = "urn:xmpp:blocking"
	NSBlockingErr = "urn:xmpp:blocking:errors"
	NSLast        = "jabber:iq:last"
	NSOffline     = "msgoffline"
	NSDataForms   = "jabber:x:data"
	NSServerInfo  = "http://jabber.org/network/serverinfo"
	NSRosterVer   = "urn:xmpp:features:rosterver"
	NSPreApproval = "urn:xmpp:features:pre-approval"
)

// own reports whether st comes from the account it addresses.
func own(st *xmpp.Stanza) bool {
	return st.To.IsZero() || st.To.Bare() == st.From.Bare()
}

// OwnOnly wraps an iq handler at ToBare so that only the account itself
// (an iq sent without to, or to the user's own bare JID) reaches f;
// anyone else gets <forbidden/>.
func OwnOnly(f IQHandler) IQHandler {
	return func(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
		if !own(st) {
			return nil, xmpp.NewStanzaError(xmpp.Forbidden, "only the account itself may do this")
		}
		return f(ctx, st)
	}
}

// accountServices are the iqs the server answers for a user's bare JID.
func (h *localHost) accountServices() *iqMux {
	m := newIQMux("account", "registered", "")
	m.handle("get", NSRoster, "query", "", OwnOnly(h.rosterGet))
	m.handle("set", NSRoster, "query", "", OwnOnly(h.rosterSet))
	return m
}

// blockedError is the error a user gets for writing to a contact they
// block (XEP-0191 §3.5).
func blockedError() *xmpp.StanzaError {
	return xmpp.NewStanzaError(xmpp.NotAcceptable, "you block this contact; unblock it first")
}

// Serialize renders an element for storage, as the server writes
// elements on a stream; StoredLimits-bound parsing reads it back.
func Serialize(el *etree.Element) []byte {
	return serializeStanza(&xmpp.Stanza{El: el})
}

// storedLimits bound what is parsed back from the store: what the
// server wrote itself, each stanza within the stanza limits when it came,
// plus what the server added (a delay, an xmlns). Twice the largest stanza
// a config allows, and at least 1 MiB: a fixed 1 MiB once dropped offline
// messages that a larger stanza_size had let in.
func storedLimits(l conf.Limits) xmpp.Limits {
	return xmpp.Limits{MaxStanza: max(1<<20, 2*int64(max(l.StanzaSize, l.S2SStanzaSize)))}
}

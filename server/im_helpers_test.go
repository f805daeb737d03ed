package server_test

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// imDomain is the local host of the IM tests.
const imDomain = "localhost"

// Namespaces the IM tests check, spelled out rather than taken from the
// server package, so that a renamed constant cannot make a test agree
// with a wrong server.
const (
	imNSRoster      = "jabber:iq:roster"
	imNSRosterVer   = "urn:xmpp:features:rosterver"
	imNSPreApproval = "urn:xmpp:features:pre-approval"
	imNSBlocking    = "urn:xmpp:blocking"
	imNSBlockingErr = "urn:xmpp:blocking:errors"
	imNSRegister    = "jabber:iq:register"
	imNSRegFeature  = "http://jabber.org/features/iq-register"
	imNSCaps        = "http://jabber.org/protocol/caps"
	imNSChatStates  = "http://jabber.org/protocol/chatstates"
)

// imPassword is the password the IM tests give local.
func imPassword(local string) string { return "pw-" + local }

// imBare is local's bare JID on imDomain.
func imBare(local string) xmpp.JID { return xmpp.MustParse(local + "@" + imDomain) }

// imUsers creates the accounts of locals on imDomain.
func imUsers(t *testing.T, s *parleytest.Server, locals ...string) {
	t.Helper()
	for _, l := range locals {
		s.AddUser(l+"@"+imDomain, imPassword(l))
	}
}

// imLogin logs local in as resource and does nothing more: no roster get,
// no presence.
func imLogin(t *testing.T, s *parleytest.Server, local, resource string) *parleytest.Conn {
	t.Helper()
	return s.Login(local+"@"+imDomain, imPassword(local), resource)
}

// imOnline logs local in the way a client does: it asks for the roster
// (so it gets roster pushes), sends initial presence with extra inside it,
// and reads what that brings (its echo, probe answers, waiting messages).
func imOnline(t *testing.T, s *parleytest.Server, local, resource, extra string) *parleytest.Conn {
	t.Helper()
	c := imLogin(t, s, local, resource)
	imRoster(t, c)
	c.Send("<presence>%s</presence>", extra)
	c.UntilSync()
	return c
}

// imPutItem writes user's roster item for contact with subscription sub
// straight to the store; it is for users who have not logged in yet.
func imPutItem(t *testing.T, s *parleytest.Server, user, contact, sub string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), parleytest.Timeout)
	defer cancel()
	if _, err := s.Store().PutRosterItem(ctx, imDomain, user, storage.RosterItem{JID: imBare(contact).String(), Subscription: sub}); err != nil {
		t.Fatalf("roster item %s of %s: %v", contact, user, err)
	}
}

// imBoth subscribes a and b to each other, in the store.
func imBoth(t *testing.T, s *parleytest.Server, a, b string) {
	t.Helper()
	imPutItem(t, s, a, b, "both")
	imPutItem(t, s, b, a, "both")
}

// imRosterQuery asks for the roster with a ver attribute (ver nil: none)
// and returns the answer and what came before it.
func imRosterQuery(t *testing.T, c *parleytest.Conn, ver *string) (*xmpp.Stanza, []*xmpp.Stanza) {
	t.Helper()
	q := "<query xmlns='" + imNSRoster + "'/>"
	if ver != nil {
		q = fmt.Sprintf("<query xmlns='%s' ver='%s'/>", imNSRoster, *ver)
	}
	return c.IQAll("get", "", q)
}

// imRoster asks for the roster and returns its items by JID; the session
// gets roster pushes from now on.
func imRoster(t *testing.T, c *parleytest.Conn) map[string]*etree.Element {
	t.Helper()
	st, _ := imRosterQuery(t, c, nil)
	c.ExpectResult(st, "roster get")
	items := map[string]*etree.Element{}
	q := xmpp.Child(st.El, imNSRoster, "query")
	if q == nil {
		t.Fatalf("roster get: got %s, want a query", c.String(st.El))
	}
	for _, it := range q.SelectElements("item") {
		items[it.SelectAttrValue("jid", "")] = it
	}
	return items
}

// imItemState describes a roster item the way the tests state it: the
// subscription, then "+ask" for ask='subscribe' and "+approved" for
// approved='true'; "absent" for no item (or a push that removes it).
func imItemState(it *etree.Element) string {
	if it == nil || it.SelectAttrValue("subscription", "") == "remove" {
		return "absent"
	}
	s := it.SelectAttrValue("subscription", "(no subscription)")
	switch ask := it.SelectAttrValue("ask", ""); ask {
	case "":
	case "subscribe":
		s += "+ask"
	default:
		s += "+ask=" + ask
	}
	switch ap := it.SelectAttrValue("approved", ""); ap {
	case "", "false":
	case "true":
		s += "+approved"
	default:
		s += "+approved=" + ap
	}
	return s
}

// imRosterPush returns the item of a roster push, nil when st is not one.
func imRosterPush(st *xmpp.Stanza) *etree.Element {
	if st.Kind != xmpp.KindIQ || st.Type != "set" {
		return nil
	}
	q := xmpp.Child(st.El, imNSRoster, "query")
	if q == nil {
		return nil
	}
	return q.SelectElement("item")
}

// imSeen sorts out what c got from contact (a bare JID): the presence
// stanzas, named by type ("available" for none), and the roster pushes of
// contact's item, as imItemState. A subscription stanza from a full JID,
// a presence notification from a bare one and a push from anyone but c's
// own account are marked, so that they never match a test's expectation.
func imSeen(c *parleytest.Conn, got []*xmpp.Stanza, contact xmpp.JID) (presence, pushes []string) {
	for _, st := range got {
		if st.Kind == xmpp.KindPresence && st.From.Bare() == contact {
			typ := st.Type
			switch typ {
			case "":
				typ = "available"
				fallthrough
			case "unavailable":
				if st.From.Resource() == "" {
					typ += "(from the bare JID)"
				}
			default:
				if st.From.Resource() != "" {
					typ += "(from " + st.From.String() + ")"
				}
			}
			presence = append(presence, typ)
		}
		if it := imRosterPush(st); it != nil && it.SelectAttrValue("jid", "") == contact.String() {
			s := imItemState(it)
			if !st.From.IsZero() && st.From != c.JID.Bare() {
				s += "(from " + st.From.String() + ")"
			}
			pushes = append(pushes, s)
		}
	}
	sort.Strings(presence)
	return presence, pushes
}

// imFromContact returns the stanzas of got that come from contact's
// account (any resource or the bare JID).
func imFromContact(got []*xmpp.Stanza, contact xmpp.JID) []*xmpp.Stanza {
	var out []*xmpp.Stanza
	for _, st := range got {
		if st.From.Bare() == contact.Bare() {
			out = append(out, st)
		}
	}
	return out
}

// imErrors returns the error stanzas of got.
func imErrors(got []*xmpp.Stanza) []*xmpp.Stanza {
	var out []*xmpp.Stanza
	for _, st := range got {
		if st.Type == "error" {
			out = append(out, st)
		}
	}
	return out
}

// imMessages returns the messages of got.
func imMessages(got []*xmpp.Stanza) []*xmpp.Stanza {
	var out []*xmpp.Stanza
	for _, st := range got {
		if st.Kind == xmpp.KindMessage {
			out = append(out, st)
		}
	}
	return out
}

// imByID returns the stanza of got with id, nil when none has it.
func imByID(got []*xmpp.Stanza, id string) *xmpp.Stanza {
	for _, st := range got {
		if st.ID == id {
			return st
		}
	}
	return nil
}

// imPresenceFrom reports whether st is available presence from exactly
// the full JID from.
func imPresenceFrom(st *xmpp.Stanza, from xmpp.JID) bool {
	return st.Kind == xmpp.KindPresence && st.Type == "" && st.From == from
}

// imRegister sends a XEP-0077 registration with username, password and,
// when not empty, key.
func imRegister(t *testing.T, c *parleytest.Conn, user, password, key string) *xmpp.Stanza {
	t.Helper()
	k := ""
	if key != "" {
		k = "<key>" + key + "</key>"
	}
	return c.IQNext("set", "", fmt.Sprintf("<query xmlns='%s'><username>%s</username><password>%s</password>%s</query>", imNSRegister, user, password, k))
}

// imCanLogin reports whether user@host can authenticate with password.
func imCanLogin(t *testing.T, s *parleytest.Server, host, user, password string) bool {
	t.Helper()
	c := s.DialSecure(host)
	defer c.Close()
	el := c.AuthPlain(user, password)
	switch el.Tag {
	case "success":
		return true
	case "failure":
		return false
	}
	t.Fatalf("auth as %s@%s: got %s", user, host, c.String(el))
	return false
}

// imInvite creates an invite token for imDomain valid for an hour.
func imInvite(t *testing.T, s *parleytest.Server, token string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), parleytest.Timeout)
	defer cancel()
	if err := s.Store().CreateInvite(ctx, imDomain, token, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("invite %s: %v", token, err)
	}
}

// imCapsVer computes the XEP-0115 §5.1 verification string of a
// disco#info query that has no extended forms.
func imCapsVer(t *testing.T, q *etree.Element) string {
	t.Helper()
	if len(q.SelectElements("x")) > 0 {
		t.Fatalf("imCapsVer does not handle extended forms")
	}
	var ids, feats []string
	for _, id := range q.SelectElements("identity") {
		ids = append(ids, id.SelectAttrValue("category", "")+"/"+id.SelectAttrValue("type", "")+"/"+
			id.SelectAttrValue("xml:lang", "")+"/"+id.SelectAttrValue("name", ""))
	}
	for _, f := range q.SelectElements("feature") {
		feats = append(feats, f.SelectAttrValue("var", ""))
	}
	sort.Strings(ids)
	sort.Strings(feats)
	var b strings.Builder
	for _, s := range append(ids, feats...) {
		b.WriteString(s + "<")
	}
	sum := sha1.Sum([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(sum[:])
}

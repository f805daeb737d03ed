// Package push is the module of Push Notifications (XEP-0357): a phone's
// client enables an app server (a pubsub service of its vendor, with a
// node for the device), and while that session cannot be reached at once
// — detached by stream management (XEP-0198) or inactive (XEP-0352) — a
// message that needs the user wakes the device: the server publishes a
// notification to the app server, which asks the phone's push service
// (APNs, FCM) to wake the app.
//
// Registrations are the account's, stored (several app servers: one per
// device), and each is tied to the session that enabled it, as Prosody's
// mod_cloud_notify does: a session pushes to its own app server alone.
//
// What wakes a device (Prosody's "important" stanzas): a message with a
// non-empty body, or encrypted (OMEMO, OpenPGP: its body is unknown), or a
// call (XEP-0353's propose); a carbon of a message received on another
// resource is judged by the message inside. Never a headline, an error, a
// group chat subject, a chat state, a receipt, or a carbon of what the
// user sent.
//
// How often: once per wake-up. A session that detaches pushes at once for
// what it holds unacknowledged (Host.OnDetach), and otherwise with the
// first message that needs waking; then no more until it is back
// (resumed, or active again) and gone again. push_max_per_minute bounds
// the pushes of one registration on top of that (a phone whose connection
// flaps).
//
// What a notification says: the summary form (FORM_TYPE
// urn:xmpp:push:summary) with message-count, the messages that needed
// waking so far this wake-up; last-message-sender and last-message-body
// only with the host's push_include_body (off by default: no body leaves
// the server). The client's publish options go with it (XEP-0357 §7).
//
// No session at all (the detached session expired, the app was killed):
// a message that needs waking and goes to offline storage — a chat or
// normal message for a user with no available resource, to the bare JID
// or to a resource that is gone — pushes to every registration of the
// account that no bound session holds, as Prosody's mod_cloud_notify
// does on message/offline/handle: each such message pushes (within
// push_max_per_minute), message-count counting those since the
// registration was enabled. The core tells the module once the message
// is stored (Host.OnOffline): one the offline quota refused was bounced
// and pushes nothing, and one a closing session handed back to the
// store pushes like any other.
//
// How many: push_max_devices registrations per account (5, Prosody's
// default); enabling one more drops the least recently enabled.
//
// Errors: an iq error from the app server disables the registration
// (XEP-0357 §7.1), unless its type is wait (Prosody's rule: a transient
// failure). Notifications go from the user's bare JID, as XEP-0357's
// examples do, so the answers come back to ToBare.
package push

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/server/mod/csi"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// Namespaces of the module.
const (
	// NS is XEP-0357's namespace and feature.
	NS = "urn:xmpp:push:0"
	// NSSummary is the FORM_TYPE of a notification's summary form.
	NSSummary = "urn:xmpp:push:summary"
	// NSPublishOptions is the FORM_TYPE of the publish options a client
	// gives with <enable/> (XEP-0060 §7.1.5).
	NSPublishOptions = "http://jabber.org/protocol/pubsub#publish-options"
	nsPubsub         = "http://jabber.org/protocol/pubsub"
	nsData           = "jabber:x:data"
	nsCarbons        = "urn:xmpp:carbons:2"
	nsForward        = "urn:xmpp:forward:0"
)

// answerTimeout is how long an app server's answer is waited for: an
// iq that gets none by then is forgotten.
const answerTimeout = time.Minute

func init() {
	local.RegisterModule(local.Module{Name: "push", Start: start})
}

// store is what the module needs of the host's store.
type store interface {
	PutPush(ctx context.Context, host, user string, r storage.PushRegistration) error
	DeletePush(ctx context.Context, host, user, jid, node string, all bool) (int, error)
	PushRegistrations(ctx context.Context, host, user string) ([]storage.PushRegistration, error)
}

// now is the module's clock: a registration's time, for push_max_devices.
// Tests set it.
var now = time.Now

// detacher is what c2s.Session says of stream management.
type detacher interface {
	Detached() bool
}

type module struct {
	h     *local.Host
	store store
	// stored carries the offline messages to push for, in the order
	// they were stored, to the one goroutine that reads the store and
	// pushes: a goroutine each let a later message's notification
	// overtake an earlier one's.
	stored      chan offlineJob
	includeBody bool
	perMinute   int
	maxDevices  int
	// reg is the registration a session enabled.
	reg local.SessionValue[*registration]

	mu sync.Mutex
	// sent are the notifications waiting for their answer, by iq id.
	sent map[string]sentPush
	// offline are the registrations no session holds that pushed for
	// offline messages, by offlineKey: their count and rate.
	offline map[string]*registration
}

// offlineKey names a stored registration of user.
func offlineKey(user, jid, node string) string { return user + "\x00" + jid + "\x00" + node }

// sentPush is a notification out, for its answer.
type sentPush struct {
	user string
	reg  *registration
	at   time.Time
}

// registration is an app server a session enabled.
type registration struct {
	jid     xmpp.JID
	node    string
	options *etree.Element // the publish-options form, or nil

	mu       sync.Mutex
	pushed   bool        // a notification went out this wake-up
	count    int         // messages that needed waking this wake-up
	spell    uint64      // the spell of inactivity (csi.Inactive) count is of
	recent   []time.Time // pushes of the last minute
	disabled bool        // the app server refused: no more pushes
}

func start(h *local.Host) error {
	st, ok := h.Store().(store)
	if !ok {
		return errors.New("push: the store keeps no push registrations")
	}
	m := &module{h: h, store: st, reg: local.NewSessionValue[*registration](h), sent: map[string]sentPush{},
		offline: map[string]*registration{}, maxDevices: 5}
	if o := h.Options(); o != nil {
		m.includeBody, m.perMinute = o.PushIncludeBody, o.PushMaxPerMinute
		if o.PushMaxDevices > 0 {
			m.maxDevices = o.PushMaxDevices
		}
	}
	h.HandleIQ(local.ToBare, "set", NS, "enable", NS, m.enable)
	h.HandleIQ(local.ToBare, "set", NS, "disable", "", m.disable)
	h.Observe(local.ToClient, xmpp.KindMessage, 0, m.toClient)
	m.stored = make(chan offlineJob, offlineQueue)
	h.Go(m.pushOffline)
	h.OnOffline(m.onOffline)
	h.Hook(local.ToBare, xmpp.KindIQ, 100, m.answer)
	h.OnDetach(m.detached)
	return nil
}

// own checks that an iq is the user's, about the user's own account.
func own(st *xmpp.Stanza) error {
	if !st.To.IsZero() && st.To.Bare() != st.From.Bare() {
		return xmpp.NewStanzaError(xmpp.Forbidden, "push notifications are for your own account")
	}
	return nil
}

// enable answers <enable jid node/> (XEP-0357 §5): the registration is
// stored, and tied to the session that sent it.
func (m *module) enable(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
	if err := own(st); err != nil {
		return nil, err
	}
	el := xmpp.Child(st.El, NS, "enable")
	jid, err := xmpp.Parse(el.SelectAttrValue("jid", ""))
	switch {
	case el.SelectAttrValue("jid", "") == "":
		return nil, xmpp.NewStanzaError(xmpp.BadRequest, "enable needs the jid of the app server")
	case err != nil:
		return nil, xmpp.NewStanzaError(xmpp.JIDMalformed, "the app server's jid is not a JID")
	case jid.Bare() == st.From.Bare():
		// Prosody's rule: notifications to oneself wake nobody.
		return nil, xmpp.NewStanzaError(xmpp.BadRequest, "the app server cannot be your own account")
	}
	r := &registration{jid: jid, node: el.SelectAttrValue("node", "")}
	var opts []byte
	if x := xmpp.Child(el, nsData, "x"); x != nil {
		if formType(x) != NSPublishOptions {
			return nil, xmpp.NewStanzaError(xmpp.BadRequest, "the form of enable is publish options: FORM_TYPE "+NSPublishOptions)
		}
		r.options = x.Copy()
		r.options.RemoveAttr("xmlns")
		r.options.CreateAttr("xmlns", nsData)
		doc := etree.NewDocument()
		doc.SetRoot(r.options.Copy())
		if opts, err = doc.WriteToBytes(); err != nil {
			return nil, fmt.Errorf("push: publish options: %w", err)
		}
	}
	s := m.h.Recipient(st.From)
	if s == nil {
		return nil, xmpp.NewStanzaError(xmpp.NotAllowed, "only a session of this server can enable push notifications")
	}
	user := st.From.Local()
	if err := m.store.PutPush(ctx, m.h.Name(), user, storage.PushRegistration{
		JID: jid.String(), Node: r.node, Options: opts, Created: now(),
	}); err != nil {
		return nil, fmt.Errorf("push: enable for %s: %w", user, err)
	}
	m.mu.Lock()
	// A new count for offline messages: the device came back.
	delete(m.offline, offlineKey(user, jid.String(), r.node))
	m.mu.Unlock()
	if err := m.bound(ctx, user, jid.String(), r.node); err != nil {
		return nil, err
	}
	if !m.reg.Set(s, r) {
		return nil, xmpp.NewStanzaError(xmpp.NotAllowed, "the session ended")
	}
	m.h.Logger().Info("push: enabled", "jid", st.From.String(), "app_server", jid.String(), "node", r.node)
	return nil, nil
}

// bound drops the least recently enabled registrations of user beyond
// push_max_devices (Prosody's push_max_devices keeps the most recent the
// same way); jid and node name the one just enabled, which stays.
func (m *module) bound(ctx context.Context, user, jid, node string) error {
	regs, err := m.store.PushRegistrations(ctx, m.h.Name(), user)
	if err != nil {
		return fmt.Errorf("push: registrations of %s: %w", user, err)
	}
	if len(regs) <= m.maxDevices {
		return nil
	}
	// Oldest first; the one just enabled last whatever its second.
	slices.SortStableFunc(regs, func(a, b storage.PushRegistration) int {
		an, bn := a.JID == jid && a.Node == node, b.JID == jid && b.Node == node
		switch {
		case an != bn:
			if an {
				return 1
			}
			return -1
		}
		return a.Created.Compare(b.Created)
	})
	for _, r := range regs[:len(regs)-m.maxDevices] {
		if _, err := m.store.DeletePush(ctx, m.h.Name(), user, r.JID, r.Node, false); err != nil {
			return fmt.Errorf("push: dropping a registration of %s: %w", user, err)
		}
		m.h.Logger().Info("push: too many registrations; dropped the oldest", "user", user, "app_server", r.JID, "node", r.Node, "max", m.maxDevices)
		m.forget(user, func(j xmpp.JID, n string) bool { return j.String() == r.JID && n == r.Node })
	}
	return nil
}

// forget makes the registrations of user that match push no more: those
// sessions hold, and those that pushed for offline messages.
func (m *module) forget(user string, match func(jid xmpp.JID, node string) bool) {
	m.untie(user, func(r *registration) bool { return match(r.jid, r.node) })
	m.mu.Lock()
	for k, r := range m.offline {
		if strings.HasPrefix(k, user+"\x00") && match(r.jid, r.node) {
			delete(m.offline, k)
		}
	}
	m.mu.Unlock()
}

// disable answers <disable jid [node]/> (XEP-0357 §6): the registrations
// of jid (of node only, when given) go, and the sessions tied to them
// push no more.
func (m *module) disable(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
	if err := own(st); err != nil {
		return nil, err
	}
	el := xmpp.Child(st.El, NS, "disable")
	if el == nil {
		return nil, xmpp.NewStanzaError(xmpp.BadRequest, "expected <disable/>")
	}
	jid, err := xmpp.Parse(el.SelectAttrValue("jid", ""))
	if el.SelectAttrValue("jid", "") == "" || err != nil {
		return nil, xmpp.NewStanzaError(xmpp.BadRequest, "disable needs the jid of the app server")
	}
	node, one := "", el.SelectAttr("node") != nil
	if one {
		node = el.SelectAttrValue("node", "")
	}
	user := st.From.Local()
	if _, err := m.store.DeletePush(ctx, m.h.Name(), user, jid.String(), node, !one); err != nil {
		return nil, fmt.Errorf("push: disable for %s: %w", user, err)
	}
	m.forget(user, func(j xmpp.JID, n string) bool { return j == jid && (!one || n == node) })
	return nil, nil
}

// untie makes the sessions of user whose registration match pushes no
// more.
func (m *module) untie(user string, match func(*registration) bool) {
	for _, s := range m.h.Sessions(user) {
		if r := m.reg.Get(s); r != nil && match(r) {
			r.mu.Lock()
			r.disabled = true
			r.mu.Unlock()
			m.reg.Set(s, nil)
		}
	}
}

// toClient watches what goes to a session: a message that needs waking,
// for a session that enabled push and is detached or inactive, pushes
// once per wake-up.
func (m *module) toClient(s local.Session, st *xmpp.Stanza) bool {
	r := m.reg.Get(s)
	if r == nil {
		return false
	}
	wakes, from, body := needsWaking(st)
	detached := false
	if d, ok := s.(detacher); ok {
		detached = d.Detached()
	}
	inactive, spell := csi.Inactive(m.h, s)
	r.mu.Lock()
	if !detached && !inactive {
		// The client is there: the next absence is a new wake-up.
		r.pushed, r.count = false, 0
		r.mu.Unlock()
		return false
	}
	if !detached && spell != r.spell {
		// A new spell of inactivity since the last push.
		r.pushed, r.count, r.spell = false, 0, spell
	}
	if !wakes {
		r.mu.Unlock()
		return false
	}
	r.count++
	iq := m.notifyLocked(s.JID().Bare(), r, from, body)
	r.mu.Unlock()
	if iq != nil {
		m.h.Route(iq)
	}
	return false
}

// offlineJob is an offline message to push for: its user, the
// registrations bound sessions hold, and what the notification may say.
type offlineJob struct {
	user xmpp.JID
	held []*registration
	from xmpp.JID
	body string
}

// offlineQueue bounds the offline messages waiting for their push; past
// it a push is dropped and logged (the message itself is stored).
const offlineQueue = 1024

// pushOffline pushes for the offline messages, in order, until the
// server ends.
func (m *module) pushOffline(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-m.stored:
			m.offlinePush(ctx, j.user, j.held, j.from, j.body)
		}
	}
}

// onOffline hears of a message the core stored for a user with no
// available resource (Host.OnOffline): one that needs waking pushes to
// the registrations no session holds. The store is read on the module's
// own goroutine (pushOffline): the handler must not block.
func (m *module) onOffline(st *xmpp.Stanza) {
	switch st.Type {
	case "", "normal", "chat":
	default:
		return
	}
	wakes, from, body := needsWaking(st)
	if !wakes {
		return
	}
	// The bound sessions' own registrations (an unavailable session):
	// they push for themselves when a message comes to them.
	var held []*registration
	for _, s := range m.h.Sessions(st.To.Local()) {
		if r := m.reg.Get(s); r != nil {
			held = append(held, r)
		}
	}
	select {
	case m.stored <- offlineJob{user: st.To.Bare(), held: held, from: from, body: body}:
	default:
		m.h.Logger().Warn("push: too many offline notifications waiting; one dropped", "user", st.To.Local())
	}
}

// offlinePush pushes to each registration of user that no session holds
// (held) for a message that went to offline storage.
func (m *module) offlinePush(ctx context.Context, user xmpp.JID, held []*registration, from xmpp.JID, body string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	regs, err := m.store.PushRegistrations(ctx, m.h.Name(), user.Local())
	if err != nil {
		m.h.Logger().Warn("push: registrations for an offline message", "user", user.Local(), "err", err)
		return
	}
next:
	for _, sr := range regs {
		jid, err := xmpp.Parse(sr.JID)
		if err != nil {
			continue
		}
		for _, h := range held {
			if h.jid == jid && h.node == sr.Node {
				continue next
			}
		}
		r := m.offlineRegistration(user.Local(), jid, sr)
		r.mu.Lock()
		// Each offline message pushes: nobody is there to have been
		// woken already.
		r.pushed = false
		r.count++
		iq := m.notifyLocked(user, r, from, body)
		r.mu.Unlock()
		if iq != nil {
			m.h.Route(iq)
		}
	}
}

// offlineRegistration returns the state of the stored registration sr of
// user for offline pushes, made at its first.
func (m *module) offlineRegistration(user string, jid xmpp.JID, sr storage.PushRegistration) *registration {
	k := offlineKey(user, sr.JID, sr.Node)
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.offline[k]; r != nil {
		return r
	}
	r := &registration{jid: jid, node: sr.Node}
	if len(sr.Options) > 0 {
		doc := etree.NewDocument()
		if err := doc.ReadFromBytes(sr.Options); err == nil && doc.Root() != nil {
			r.options = doc.Root()
		}
	}
	m.offline[k] = r
	return r
}

// detached pushes for what a session that just detached holds: its
// client saw none of it, or did not say so.
func (m *module) detached(s local.Session, pending []*xmpp.Stanza) {
	r := m.reg.Get(s)
	if r == nil {
		return
	}
	r.mu.Lock()
	r.pushed, r.count = false, 0
	var from xmpp.JID
	var body string
	for _, st := range pending {
		if st.Kind != xmpp.KindMessage {
			continue
		}
		if wakes, f, b := needsWaking(st); wakes {
			r.count++
			from, body = f, b
		}
	}
	var iq *xmpp.Stanza
	if r.count > 0 {
		iq = m.notifyLocked(s.JID().Bare(), r, from, body)
	}
	r.mu.Unlock()
	if iq != nil {
		m.h.Route(iq)
	}
}

// notifyLocked returns the notification to publish for r, or nil when
// this wake-up already had one, r is disabled, or the rate is spent; r.mu
// is held.
func (m *module) notifyLocked(user xmpp.JID, r *registration, from xmpp.JID, body string) *xmpp.Stanza {
	if r.pushed || r.disabled {
		return nil
	}
	now := time.Now()
	if m.perMinute > 0 {
		keep := r.recent[:0]
		for _, t := range r.recent {
			if now.Sub(t) < time.Minute {
				keep = append(keep, t)
			}
		}
		r.recent = keep
		if len(r.recent) >= m.perMinute {
			// Not pushed: a later message of this wake-up may.
			return nil
		}
		r.recent = append(r.recent, now)
	}
	r.pushed = true
	id := newID()
	m.mu.Lock()
	for k, p := range m.sent {
		if now.Sub(p.at) > answerTimeout {
			delete(m.sent, k)
		}
	}
	m.sent[id] = sentPush{user: user.Local(), reg: r, at: now}
	m.mu.Unlock()
	return m.notification(user, r, id, r.count, from, body)
}

// notification builds the publish of XEP-0357 §7.
func (m *module) notification(user xmpp.JID, r *registration, id string, count int, from xmpp.JID, body string) *xmpp.Stanza {
	pubsub := xmpp.NewElementNS(nsPubsub, "pubsub")
	publish := pubsub.CreateElement("publish")
	if r.node != "" {
		publish.CreateAttr("node", r.node)
	}
	n := publish.CreateElement("item").CreateElement("notification")
	n.CreateAttr("xmlns", NS)
	x := n.CreateElement("x")
	x.CreateAttr("xmlns", nsData)
	x.CreateAttr("type", "submit")
	field := func(name, value string) {
		f := x.CreateElement("field")
		f.CreateAttr("var", name)
		f.CreateElement("value").SetText(value)
	}
	field("FORM_TYPE", NSSummary)
	field("message-count", strconv.Itoa(count))
	if m.includeBody && !from.IsZero() {
		field("last-message-sender", from.String())
		if body != "" {
			field("last-message-body", body)
		}
	}
	if r.options != nil {
		pubsub.CreateElement("publish-options").AddChild(r.options.Copy())
	}
	return xmpp.NewIQ("set", id, user, r.jid, pubsub)
}

// answer takes the app server's answer to a notification: an error other
// than a transient one (type wait) disables the registration.
func (m *module) answer(_ local.Session, st *xmpp.Stanza) bool {
	if st.Type != "result" && st.Type != "error" {
		return false
	}
	m.mu.Lock()
	p, ok := m.sent[st.ID]
	if ok && p.reg.jid == st.From || ok && p.reg.jid == st.From.Bare() {
		delete(m.sent, st.ID)
	} else {
		ok = false
	}
	m.mu.Unlock()
	if !ok {
		return false
	}
	if st.Type == "result" {
		return true
	}
	e := xmpp.ParseStanzaError(st.El)
	if e != nil && e.Type == xmpp.ErrWait {
		return true
	}
	r := p.reg
	cond := ""
	if e != nil {
		cond = string(e.Condition)
	}
	m.h.Logger().Info("push: the app server refused a notification; disabled",
		"user", p.user, "app_server", r.jid.String(), "node", r.node, "condition", cond)
	r.mu.Lock()
	r.disabled = true
	r.mu.Unlock()
	m.untie(p.user, func(o *registration) bool { return o == r })
	m.mu.Lock()
	for k, o := range m.offline {
		if o == r {
			delete(m.offline, k)
		}
	}
	m.mu.Unlock()
	// The store is not waited for on the router's goroutine.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := m.store.DeletePush(ctx, m.h.Name(), p.user, r.jid.String(), r.node, false); err != nil {
			m.h.Logger().Warn("push: removing a refused registration", "user", p.user, "err", err)
		}
	}()
	return true
}

// needsWaking reports whether a message needs waking the user's device
// (the package doc says which), and its sender and body.
func needsWaking(st *xmpp.Stanza) (wakes bool, from xmpp.JID, body string) {
	el, typ := st.El, st.Type
	from = st.From
	if xmpp.Child(el, nsCarbons, "sent") != nil {
		// The user wrote it.
		return false, from, ""
	}
	if r := xmpp.Child(el, nsCarbons, "received"); r != nil {
		f := xmpp.Child(r, nsForward, "forwarded")
		if f == nil || f.SelectElement("message") == nil {
			return false, from, ""
		}
		el = f.SelectElement("message")
		typ = el.SelectAttrValue("type", "")
		if j, err := xmpp.Parse(el.SelectAttrValue("from", "")); err == nil {
			from = j
		}
	}
	switch typ {
	case "error", "headline":
		return false, from, ""
	}
	if b := el.SelectElement("body"); b != nil && strings.TrimSpace(b.Text()) != "" {
		return true, from, b.Text()
	}
	for _, c := range el.ChildElements() {
		switch ns := xmpp.NS(c); {
		case c.Tag == "encrypted" && (ns == "eu.siacs.conversations.axolotl" || strings.HasPrefix(ns, "urn:xmpp:omemo:")),
			c.Tag == "x" && ns == "jabber:x:encrypted",
			c.Tag == "openpgp" && ns == "urn:xmpp:openpgp:0",
			c.Tag == "propose" && (ns == "urn:xmpp:jingle-message:0" || ns == "urn:xmpp:jingle-message:1"):
			return true, from, ""
		}
	}
	return false, from, ""
}

// formType returns the FORM_TYPE of a data form.
func formType(x *etree.Element) string {
	for _, f := range x.SelectElements("field") {
		if f.SelectAttrValue("var", "") == "FORM_TYPE" {
			if v := f.SelectElement("value"); v != nil {
				return strings.TrimSpace(v.Text())
			}
		}
	}
	return ""
}

// newID is a notification's iq id: unguessable, so that nobody else can
// answer it and disable the registration.
func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "push-" + hex.EncodeToString(b[:])
}

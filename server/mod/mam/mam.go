// Package mam is the module of the message archive (XEP-0313
// urn:xmpp:mam:2 and #extended): each user's chat and normal messages with
// a body are kept in the user's own archive, sent and received, each with
// a stanza-id (XEP-0359) that the recipient's copy carries; the user
// queries the archive by contact, time and id, in pages (XEP-0059), and
// sets which contacts are archived.
//
// A message is handed to the store's archive writer on the sender's
// goroutine, with a stanza-id drawn at once, and goes on without waiting
// for the disk: the writer commits what waits in one transaction
// (storage.ArchiveAsync), so a thousand senders share a commit and none
// waits for it. A query first waits for what was queued before it
// (storage.SyncArchive), so a user sees the message just sent.
//
// The host's options turn the module off (archive = false: it registers
// nothing), set the policy of users without preferences, the page limit,
// and the retention: messages older than archive_expires_after are
// deleted at start and then hourly, until the store closes. With
// archive_search on, each archived message's bodies go to the store's
// full-text index in the same commit, and queries take XEP-0431's
// {urn:xmpp:fulltext:0}fulltext field.
package mam

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/server/mod/mam/mamquery"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// The namespaces the module speaks.
const (
	NS         = mamquery.NS
	NSExtended = mamquery.NSExtended
	NSSID      = mamquery.NSSID
	nsHints    = "urn:xmpp:hints"
	nsEME      = "urn:xmpp:eme:0"
)

// Full-text search in the archive (XEP-0431), with archive_search.
const (
	// NSFulltext is XEP-0431's feature, advertised with archive_search.
	NSFulltext = mamquery.NSFulltext
	// FieldFulltext is XEP-0431's form field.
	FieldFulltext = mamquery.FieldFulltext
)

const (
	// appendTimeout bounds how long a sender waits for room in the
	// archive writer's queue.
	appendTimeout = 10 * time.Second
	// expireBatch is how many expired messages one transaction deletes:
	// the writer waits for no longer than such a delete.
	expireBatch = 1000
)

// expireEvery is how often expired messages are deleted (Prosody's
// mod_mam cleans up daily; hourly keeps each run small). Tests shorten it.
var expireEvery = time.Hour

// Store is what the module needs of storage.
type Store interface {
	ArchiveAsync(ctx context.Context, host, user string, e storage.ArchiveEntry, notify func(error)) (string, error)
	SyncArchive(ctx context.Context) error
	QueryArchive(ctx context.Context, host, user string, q storage.ArchiveQuery) (storage.ArchivePage, error)
	ArchiveBounds(ctx context.Context, host, user string) (first, last storage.ArchivedMessage, ok bool, err error)
	ArchivePrefs(ctx context.Context, host, user string) (storage.ArchivePrefs, error)
	SetArchivePrefs(ctx context.Context, host, user string, p storage.ArchivePrefs) error
	ExpireArchive(ctx context.Context, host string, cutoff time.Time, batch int) (int64, error)
	RosterItem(ctx context.Context, host, user, jid string) (storage.RosterItem, error)
}

func init() {
	local.RegisterModule(local.Module{Name: "mam", Start: start})
}

func start(h *local.Host) error {
	st, ok := h.Store().(Store)
	if !ok {
		return fmt.Errorf("the store (%T) cannot keep an archive", h.Store())
	}
	opts := h.Options()
	if !opts.Archive {
		// Nothing registered: no hooks, no stanza-ids, no features.
		return nil
	}
	m := &module{h: h, store: st, log: h.Logger(), maxPage: opts.ArchiveMaxPage, policy: opts.ArchiveDefault, search: opts.ArchiveSearch}
	if keep := opts.ArchiveRetention(); keep > 0 {
		h.Go(func(ctx context.Context) { m.expire(ctx, keep, expireEvery) })
	}
	// Each HandleIQ lists one feature on the account (and the host): the
	// three the module has are spread over its iqs.
	h.HandleIQ(local.ToBare, "set", NS, "query", NS, local.OwnOnly(m.query))
	h.HandleIQ(local.ToBare, "get", NS, "query", NSExtended, local.OwnOnly(m.form))
	h.HandleIQ(local.ToBare, "get", NS, "metadata", NSSID, local.OwnOnly(m.metadata))
	h.HandleIQ(local.ToBare, "get", NS, "prefs", "", local.OwnOnly(m.getPrefs))
	h.HandleIQ(local.ToBare, "set", NS, "prefs", "", local.OwnOnly(m.setPrefs))
	if m.search {
		// XEP-0431 §2.1: the feature, where the archive's are (the
		// account, and the host that speaks for it).
		h.AccountFeature(NSFulltext)
	}
	m.unsynced = local.NewSessionValue[bool](h)
	h.BeforeAck(m.beforeAck)
	h.Hook(local.FromClient, xmpp.KindMessage, 0, m.sent)
	h.Hook(local.ToBare, xmpp.KindMessage, 0, m.received)
	h.Hook(local.ToFull, xmpp.KindMessage, 0, m.received)
	return nil
}

type module struct {
	h     *local.Host
	store Store
	log   interface {
		Warn(msg string, args ...any)
		Debug(msg string, args ...any)
	}
	// prefs caches each user's preferences, read once: they are asked
	// for on every message.
	prefs sync.Map // local part → storage.ArchivePrefs
	// unsynced is set on a session that sent an archived message since
	// its stanzas were last acknowledged (beforeAck).
	unsynced local.SessionValue[bool]
	// maxPage bounds a page: a larger max is clamped, as XEP-0313 §4.3.1
	// allows ("the server MAY simply return its limited results"). It is
	// also the most ids one query fetches (archive_max_page).
	maxPage int
	// policy applies to users who set no preferences (archive_default).
	policy string
	// search says that bodies are indexed and queries may search them
	// (archive_search).
	search bool
}

// expire deletes the host's archived messages older than keep, now and
// then every period, until ctx (the server's life) ends.
func (m *module) expire(ctx context.Context, keep, period time.Duration) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		n, err := m.store.ExpireArchive(ctx, m.h.Name(), time.Now().Add(-keep), expireBatch)
		switch {
		case err != nil && ctx.Err() == nil:
			m.log.Warn("expiring archived messages failed", "deleted", n, "err", err)
		case n > 0:
			m.log.Debug("expired archived messages", "deleted", n, "older_than", keep)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// beforeAck waits until what s sent is committed to the archive, so that
// an acknowledged message is on disk (issue #13: "an archived message is
// committed before it is acknowledged").
func (m *module) beforeAck(s local.Session) {
	if !m.unsynced.Get(s) {
		return
	}
	m.unsynced.Set(s, false)
	ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
	defer cancel()
	if err := m.store.SyncArchive(ctx); err != nil {
		m.log.Warn("waiting for the archive before an ack", "user", s.JID().Local(), "err", err)
	}
}

// shouldArchive says whether a user archive keeps st (XEP-0313 §7.1.1:
// chat and normal messages with a body; Prosody's rules beside it):
// never headlines, groupchat or errors, nor what carries a XEP-0334
// no-store or no-permanent-store hint; a store hint, a body, a subject
// or an encrypted payload (XEP-0380) is kept.
func shouldArchive(st *xmpp.Stanza) bool {
	switch st.Type {
	case "", "normal", "chat":
	default:
		return false
	}
	switch {
	case xmpp.Child(st.El, nsHints, "no-store") != nil, xmpp.Child(st.El, nsHints, "no-permanent-store") != nil:
		return false
	case xmpp.Child(st.El, nsHints, "store") != nil:
		return true
	}
	for _, c := range [][2]string{{xmpp.NSClient, "body"}, {xmpp.NSClient, "subject"}, {nsEME, "encryption"}} {
		if xmpp.Child(st.El, c[0], c[1]) != nil || (c[0] == xmpp.NSClient && xmpp.Child(st.El, "", c[1]) != nil) {
			return true
		}
	}
	return false
}

// stripStanzaIDs removes the stanza-ids whose by is by: only this server
// may claim them (XEP-0359 §5).
//
// A room's message shares its children with the other occupants' copies
// (its root is this recipient's alone): the copy gets a child list of
// its own, so that the others' are untouched.
func stripStanzaIDs(st *xmpp.Stanza, by func(string) bool) {
	xmpp.DropChildren(st.El, func(c *etree.Element) bool {
		return c.Tag == "stanza-id" && xmpp.NS(c) == NSSID && by(c.SelectAttrValue("by", ""))
	})
}

// sent archives what a user sends, in the sender's archive. A message to
// the user's own JID is archived once, when it arrives (received).
func (m *module) sent(from local.Session, st *xmpp.Stanza) bool {
	host := m.h.Name()
	stripStanzaIDs(st, func(by string) bool {
		j, err := xmpp.Parse(by)
		return err == nil && j.Domain() == host
	})
	if st.To.IsZero() || st.To.Bare() == st.From.Bare() || !shouldArchive(st) {
		return false
	}
	if _, ok := m.archive(st.From.Local(), st.To, true, st); ok && from != nil {
		m.unsynced.Set(from, true)
	}
	return false
}

// received archives what a user receives, in the recipient's archive, and
// adds its stanza-id to the copy that is delivered.
func (m *module) received(_ local.Session, st *xmpp.Stanza) bool {
	owner := st.To.Bare()
	// Parsed, not compared with owner.String(): every room message
	// carries a stanza-id, and a JID's String allocates; a forged "by" in
	// another case is the owner's too.
	stripStanzaIDs(st, func(by string) bool {
		j, err := xmpp.Parse(by)
		return err == nil && j == owner
	})
	if st.From.IsZero() || !shouldArchive(st) {
		return false
	}
	if id, ok := m.archive(st.To.Local(), st.From, false, st); ok {
		sid := xmpp.NewElementNS(NSSID, "stanza-id")
		sid.CreateAttr("by", owner.String())
		sid.CreateAttr("id", id)
		st.El.AddChild(sid)
	}
	return false
}

// archive queues st for owner's archive when owner's preferences let it,
// and returns its stanza-id. A failure to commit is logged: the message
// has gone on.
func (m *module) archive(owner string, with xmpp.JID, outgoing bool, st *xmpp.Stanza) (string, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
	defer cancel()
	if !m.allowed(ctx, owner, with.Bare().String()) {
		return "", false
	}
	e := storage.ArchiveEntry{
		With: with.Bare().String(), Resource: with.Resource(), Outgoing: outgoing, Stanza: local.Serialize(st.El),
	}
	if m.search {
		e.Body = bodyText(st)
	}
	id, err := m.store.ArchiveAsync(ctx, m.h.Name(), owner, e, func(err error) {
		// No such user: the core bounces the message.
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			m.log.Warn("archiving a message failed", "user", owner, "err", err)
		}
	})
	if err != nil {
		m.log.Warn("archiving a message failed", "user", owner, "err", err)
		return "", false
	}
	return id, true
}

// bodyText returns the text of st's bodies (every xml:lang's), one a
// line: what a full-text search looks in. Subjects and payloads are not
// searched, as XEP-0431's clients expect of a message's text.
func bodyText(st *xmpp.Stanza) string {
	var b strings.Builder
	for _, c := range st.El.ChildElements() {
		if c.Tag != "body" || c.Space != "" || xmpp.NS(c) != xmpp.NSClient && xmpp.NS(c) != "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(c.Text())
	}
	return b.String()
}

// userPrefs returns owner's preferences, from the cache or the store.
func (m *module) userPrefs(ctx context.Context, owner string) (storage.ArchivePrefs, error) {
	if p, ok := m.prefs.Load(owner); ok {
		return p.(storage.ArchivePrefs), nil
	}
	p, err := m.store.ArchivePrefs(ctx, m.h.Name(), owner)
	if errors.Is(err, storage.ErrNotFound) {
		p, err = storage.ArchivePrefs{Default: m.policy}, nil
	}
	if err != nil {
		return storage.ArchivePrefs{}, err
	}
	m.prefs.Store(owner, p)
	return p, nil
}

// allowed applies owner's preferences to a message with the bare JID with
// (XEP-0313 §6): never, then always, then the default.
func (m *module) allowed(ctx context.Context, owner, with string) bool {
	p, err := m.userPrefs(ctx, owner)
	if err != nil {
		m.log.Warn("reading archive preferences failed", "user", owner, "err", err)
		return false
	}
	for _, j := range p.Never {
		if j == with {
			return false
		}
	}
	for _, j := range p.Always {
		if j == with {
			return true
		}
	}
	switch p.Default {
	case "always":
		return true
	case "roster":
		_, err := m.store.RosterItem(ctx, m.h.Name(), owner, with)
		return err == nil
	}
	return false
}

// query answers an archive query: the page's messages go to the querying
// resource, then the iq result with <fin/>.
func (m *module) query(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
	q := st.Payload()
	sq, flip, err := mamquery.Parse(q, m.maxPage, m.search)
	if err != nil {
		return nil, err
	}
	if err := m.store.SyncArchive(ctx); err != nil {
		return nil, fmt.Errorf("waiting for the archive's writes: %w", err)
	}
	page, err := m.store.QueryArchive(ctx, m.h.Name(), st.From.Local(), sq)
	if err != nil {
		if serr := mamquery.StoreError(err); serr != nil {
			return nil, serr
		}
		return nil, fmt.Errorf("querying the archive of %s: %w", st.From.Bare(), err)
	}
	queryID := q.SelectAttrValue("queryid", "")
	order := page.Messages
	for i := range order {
		am := order[i]
		if flip {
			am = order[len(order)-1-i]
		}
		if err := m.sendResult(st, queryID, am); err != nil {
			return nil, err
		}
	}
	return mamquery.Fin(page), nil
}

// sendResult routes one archived message to the querying resource.
func (m *module) sendResult(st *xmpp.Stanza, queryID string, am storage.ArchivedMessage) error {
	orig, err := xmpp.ParseElement(string(am.Stanza), m.h.StoredLimits())
	if err != nil {
		return fmt.Errorf("reading archived message %s of %s: %w", am.ID, st.From.Bare(), err)
	}
	out := &xmpp.Stanza{El: mamquery.Result(queryID, am, orig, m.h.Name()), Kind: xmpp.KindMessage}
	out.SetFrom(st.From.Bare())
	out.SetTo(st.From)
	m.h.Route(out)
	return nil
}

// form answers the query form's request (§4.1.5): the fields supported.
func (m *module) form(context.Context, *xmpp.Stanza) (*etree.Element, error) {
	return mamquery.Form(m.search), nil
}

// metadata answers the archive's first and last messages (§5).
func (m *module) metadata(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
	if err := m.store.SyncArchive(ctx); err != nil {
		return nil, fmt.Errorf("waiting for the archive's writes: %w", err)
	}
	first, last, ok, err := m.store.ArchiveBounds(ctx, m.h.Name(), st.From.Local())
	if err != nil {
		return nil, fmt.Errorf("reading the archive bounds of %s: %w", st.From.Bare(), err)
	}
	return mamquery.Metadata(first, last, ok), nil
}

// getPrefs answers the user's preferences (§6).
func (m *module) getPrefs(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
	p, err := m.userPrefs(ctx, st.From.Local())
	if err != nil {
		return nil, fmt.Errorf("reading the archive preferences of %s: %w", st.From.Bare(), err)
	}
	return prefsElement(p), nil
}

func prefsElement(p storage.ArchivePrefs) *etree.Element {
	el := xmpp.NewElementNS(NS, "prefs")
	el.CreateAttr("default", p.Default)
	for _, l := range []struct {
		name string
		jids []string
	}{{"always", p.Always}, {"never", p.Never}} {
		le := el.CreateElement(l.name)
		for _, j := range l.jids {
			le.CreateElement("jid").SetText(j)
		}
	}
	return el
}

// setPrefs replaces the user's preferences and answers them as stored.
func (m *module) setPrefs(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
	el := st.Payload()
	p := storage.ArchivePrefs{Default: el.SelectAttrValue("default", "")}
	switch p.Default {
	case "always", "never", "roster":
	default:
		return nil, xmpp.NewStanzaError(xmpp.BadRequest, "default is always, never or roster")
	}
	for _, l := range []struct {
		name string
		dst  *[]string
	}{{"always", &p.Always}, {"never", &p.Never}} {
		le := xmpp.Child(el, NS, l.name)
		if le == nil {
			continue
		}
		for _, je := range le.SelectElements("jid") {
			j, err := xmpp.Parse(je.Text())
			if err != nil {
				return nil, xmpp.NewStanzaError(xmpp.JIDMalformed, "a jid of "+l.name+" is not a JID")
			}
			*l.dst = append(*l.dst, j.Bare().String())
		}
		if len(*l.dst) > 1000 {
			return nil, xmpp.NewStanzaError(xmpp.PolicyViolation, "at most 1000 JIDs in "+l.name)
		}
	}
	user := st.From.Local()
	if err := m.store.SetArchivePrefs(ctx, m.h.Name(), user, p); err != nil {
		return nil, fmt.Errorf("storing the archive preferences of %s: %w", st.From.Bare(), err)
	}
	m.prefs.Delete(user)
	stored, err := m.userPrefs(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("reading the archive preferences of %s: %w", st.From.Bare(), err)
	}
	return prefsElement(stored), nil
}

package pep

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/xmpp"
)

// Bounds of what the module keeps in memory about entity capabilities.
const (
	// capsCacheMax bounds the verified verification strings kept, each
	// with the nodes it wants; the oldest goes first.
	capsCacheMax = 4096
	// contactsMax bounds the contacts' resources tracked on a host; past
	// it, a new one is not tracked (it gets no notifications) until
	// others go unavailable.
	contactsMax = 100_000
	// pendingMax bounds the disco#info queries waiting for an answer.
	pendingMax = 1024
	// queryTimeout is when a query nobody answered is forgotten, so that
	// another resource with the same ver is asked.
	queryTimeout = 30 * time.Second
	// lastItemsTimeout bounds the store read of the last items.
	lastItemsTimeout = 10 * time.Second
)

// capsTracker knows which nodes each resource wants (XEP-0163 §4.3's
// filtered notifications): from the <c/> of its presence (XEP-0115), the
// verification string it names, and the +notify features of that
// string's disco#info, asked once and verified (§5.4).
type capsTracker struct {
	m      *module
	domain xmpp.JID // the host's, which asks and is answered
	// own is the ver of each of the host's sessions, from its broadcast
	// presence: the owner's resources.
	own local.SessionValue[string]

	mu sync.Mutex
	// known maps a verified ver to the nodes it wants; order is the
	// order they came, for eviction.
	known map[string]map[string]bool
	order []string
	// pending are the disco#info queries sent, by iq id; byVer the id of
	// the query for each ver.
	pending map[string]*capsQuery
	byVer   map[string]string
	// contacts maps an owner (local part) to the resources of contacts
	// that sent presence to the owner, each with its ver.
	contacts  map[string]map[xmpp.JID]string
	nContacts int
	seq       uint64
}

// capsQuery is a disco#info query for a ver, and who waits for it.
type capsQuery struct {
	ver, hash string
	to        xmpp.JID
	sent      time.Time
	waiters   []capsWaiter
}

// capsWaiter is a resource (who) that presented a ver to own.
type capsWaiter struct{ own, who xmpp.JID }

func newCapsTracker(m *module) *capsTracker {
	return &capsTracker{m: m, domain: xmpp.MustParse(m.h.Name()), known: map[string]map[string]bool{}, pending: map[string]*capsQuery{},
		byVer: map[string]string{}, contacts: map[string]map[xmpp.JID]string{}}
}

// hook registers the tracker's handlers: the owner's own presence as it
// leaves the session, contacts' presence as it reaches the owner, and the
// answers to the server's queries.
func (c *capsTracker) hook(h *local.Host) {
	c.own = local.NewSessionValue[string](h)
	h.Hook(local.FromClient, xmpp.KindPresence, 0, c.fromOwner)
	h.Hook(local.ToBare, xmpp.KindPresence, 0, c.fromContact)
	h.Hook(local.ToHost, xmpp.KindIQ, 0, c.answer)
}

// capsOf reads the <c/> of an available presence: its ver and hash, or
// ok false when it has none (or one of the legacy format, without hash).
func capsOf(st *xmpp.Stanza) (ver, hash string, ok bool) {
	el := xmpp.Child(st.El, local.NSCaps, "c")
	if el == nil {
		return "", "", false
	}
	ver, hash = el.SelectAttrValue("ver", ""), el.SelectAttrValue("hash", "")
	if ver == "" || hash == "" || len(ver) > 128 {
		return "", "", false
	}
	return ver, hash, true
}

// fromOwner follows the broadcast presence of the host's sessions.
func (c *capsTracker) fromOwner(s local.Session, st *xmpp.Stanza) bool {
	if s == nil || !st.To.IsZero() {
		return false
	}
	switch st.Type {
	case "":
		ver, hash, ok := capsOf(st)
		if !ok {
			// No caps: perhaps a client that leaves out what did not
			// change; what it said before holds.
			return false
		}
		old := c.own.Get(s)
		if old == ver || !c.own.Set(s, ver) {
			return false
		}
		c.changed(s.JID().Bare(), s.JID(), old, ver, hash)
	case "unavailable":
		c.own.Set(s, "")
	}
	return false
}

// fromContact follows the presence of contacts to a user's bare JID.
func (c *capsTracker) fromContact(_ local.Session, st *xmpp.Stanza) bool {
	own, who := st.To.Bare(), st.From
	if who.Resource() == "" || who.Bare() == own {
		return false
	}
	switch st.Type {
	case "":
		ver, hash, ok := capsOf(st)
		if !ok || !c.m.subscribed(own, who) {
			// Directed presence is no subscription (XEP-0163 §4.3.2
			// discourages it): only contacts get notifications.
			return false
		}
		c.mu.Lock()
		old, had := c.contacts[own.Local()][who]
		if old == ver || !had && c.nContacts >= contactsMax {
			c.mu.Unlock()
			return false
		}
		if c.contacts[own.Local()] == nil {
			c.contacts[own.Local()] = map[xmpp.JID]string{}
		}
		if !had {
			c.nContacts++
		}
		c.contacts[own.Local()][who] = ver
		c.mu.Unlock()
		c.changed(own, who, old, ver, hash)
	case "unavailable", "unsubscribed":
		c.forget(own, who)
	}
	return false
}

// forget stops tracking who for own: who, or every resource of who's
// bare JID when who is bare.
func (c *capsTracker) forget(own, who xmpp.JID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.contacts[own.Local()]
	for j := range m {
		if j == who || who.Resource() == "" && j.Bare() == who {
			delete(m, j)
			c.nContacts--
		}
	}
	if len(m) == 0 {
		delete(c.contacts, own.Local())
	}
}

// changed handles who (of own or a contact of own) presenting ver
// instead of old: with ver known, who gets the last items of the nodes it
// now wants and did not before; else ver is asked for, once.
func (c *capsTracker) changed(own, who xmpp.JID, old, ver, hash string) {
	c.mu.Lock()
	nodes, ok := c.known[ver]
	if !ok {
		q, iq := c.query(ver, hash, who)
		if q != nil {
			q.waiters = append(q.waiters, capsWaiter{own, who})
		}
		c.mu.Unlock()
		if iq != nil {
			c.m.h.Route(iq)
		}
		return
	}
	before := c.known[old]
	c.mu.Unlock()
	c.sendNew(own, who, nodes, before)
}

// sendNew sends who the last items of the nodes in now and not in before.
func (c *capsTracker) sendNew(own, who xmpp.JID, now, before map[string]bool) {
	added := map[string]bool{}
	for n := range now {
		if !before[n] {
			added[n] = true
		}
	}
	if len(added) > 0 {
		// The store read is not the sender's to wait for.
		go c.m.sendLast(own, who, added)
	}
}

// query returns the pending query for ver, and the iq to send when there
// was none (or the last one was never answered), to who. c.mu is held;
// the caller routes the iq after it releases it. q is nil when too many
// queries wait.
func (c *capsTracker) query(ver, hash string, who xmpp.JID) (q *capsQuery, iq *xmpp.Stanza) {
	if id, ok := c.byVer[ver]; ok {
		q := c.pending[id]
		if time.Since(q.sent) < queryTimeout {
			return q, nil
		}
		delete(c.pending, id)
		delete(c.byVer, ver)
	}
	if len(c.pending) >= pendingMax {
		c.expire()
		if len(c.pending) >= pendingMax {
			return nil, nil
		}
	}
	c.seq++
	id := "pep-caps-" + strconv.FormatUint(c.seq, 36)
	q = &capsQuery{ver: ver, hash: hash, to: who, sent: time.Now()}
	c.pending[id] = q
	c.byVer[ver] = id
	// Without the <c/>'s node: the answer is the same (§6.2), and its
	// hash is checked anyway.
	iq = xmpp.NewIQ("get", id, c.domain, who, xmpp.NewElementNS(xmpp.NSDiscoInfo, "query"))
	return q, iq
}

// expire drops the queries nobody answered in time. c.mu is held.
func (c *capsTracker) expire() {
	for id, q := range c.pending {
		if time.Since(q.sent) >= queryTimeout {
			delete(c.pending, id)
			if c.byVer[q.ver] == id {
				delete(c.byVer, q.ver)
			}
		}
	}
}

// answer takes the answers to the tracker's queries, which come to the
// host's domain.
func (c *capsTracker) answer(_ local.Session, st *xmpp.Stanza) bool {
	if st.Type != "result" && st.Type != "error" || !strings.HasPrefix(st.ID, "pep-caps-") {
		return false
	}
	c.mu.Lock()
	q, ok := c.pending[st.ID]
	if !ok || st.From != q.to {
		c.mu.Unlock()
		// Not ours, or from someone else than who was asked: a forged
		// answer must not teach the cache.
		return ok
	}
	delete(c.pending, st.ID)
	delete(c.byVer, q.ver)
	info := st.Payload()
	if st.Type != "result" || info == nil || info.Tag != "query" || xmpp.NS(info) != xmpp.NSDiscoInfo ||
		!verify(info, q.hash, q.ver) {
		c.mu.Unlock()
		if st.Type == "result" {
			c.m.h.Logger().Debug("pep: caps not verified", "from", st.From, "ver", q.ver)
		}
		return true
	}
	nodes := map[string]bool{}
	for _, f := range info.SelectElements("feature") {
		if n, ok := nodeOfFeature(f.SelectAttrValue("var", "")); ok && n != "" {
			nodes[n] = true
		}
	}
	if _, ok := c.known[q.ver]; !ok {
		c.order = append(c.order, q.ver)
		if len(c.order) > capsCacheMax {
			delete(c.known, c.order[0])
			c.order = c.order[1:]
		}
	}
	c.known[q.ver] = nodes
	// Who still presents ver gets the last items.
	var ready []capsWaiter
	for _, w := range q.waiters {
		if w.who.Bare() == w.own {
			if s := c.m.h.Recipient(w.who); s != nil && c.own.Get(s) == q.ver {
				ready = append(ready, w)
			}
		} else if c.contacts[w.own.Local()][w.who] == q.ver {
			ready = append(ready, w)
		}
	}
	c.mu.Unlock()
	for _, w := range ready {
		c.sendNew(w.own, w.who, nodes, nil)
	}
	return true
}

// interested returns the resources that want node of own: own's
// sessions and contacts' resources whose caps say <node>+notify.
func (c *capsTracker) interested(own xmpp.JID, node string) []xmpp.JID {
	var out []xmpp.JID
	sessions := c.m.h.Sessions(own.Local())
	vers := make([]string, len(sessions))
	for i, s := range sessions {
		if !s.Closing() {
			vers[i] = c.own.Get(s)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range sessions {
		if vers[i] != "" && c.known[vers[i]][node] {
			out = append(out, s.JID())
		}
	}
	for who, ver := range c.contacts[own.Local()] {
		if c.known[ver][node] {
			out = append(out, who)
		}
	}
	return out
}

// verify checks a disco#info answer against the ver it should hash to
// (XEP-0115 §5.4): well formed, and of that hash.
func verify(info *etree.Element, algo, ver string) bool {
	var h hash.Hash
	switch algo {
	case "sha-1":
		h = sha1.New()
	case "sha-256":
		h = sha256.New()
	default:
		// §5.4 2: a hash the server does not know is not cached.
		return false
	}
	s, ok := xmpp.CapsString(info)
	if !ok {
		return false
	}
	h.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(h.Sum(nil)) == ver
}

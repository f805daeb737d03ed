package local

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
	"weak"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// Namespaces of message processing hints (XEP-0334) and chat states.
const (
	nsHints      = "urn:xmpp:hints"
	nsChatStates = "http://jabber.org/protocol/chatstates"
)

// Offline delivery takes a user's messages from the store a page at a
// time, so that a login holds one page, not the whole store (1,000
// messages of 250 KB took one login from 14 to 822 MB), and each store
// call finishes well within its own deadline.
const (
	offlinePageMessages = 100
	offlinePageBytes    = 1 << 20
)

// offlineStall is how long offline delivery waits for a session whose
// queue stays full before it leaves the rest for the next login. The
// session's write timeout closes a client that reads nothing sooner.
const offlineStall = time.Minute

// storeOffline keeps a message for a user with no available resource
// (XEP-0160). It is committed before this returns; a full store is
// bounced. Messages with nothing to keep (only chat states) and messages
// that ask not to be stored are dropped.
func (h *localHost) storeOffline(st *xmpp.Stanza) {
	if !worthStoring(st) {
		return
	}
	ctx, cancel := h.router.StoreContext()
	defer cancel()
	q := storage.OfflineQuota{Messages: h.limits.offline, Bytes: h.limits.offlineBytes}
	err := h.store.StoreOffline(ctx, h.name, st.To.Local(), serializeStanza(st), q)
	var qe *storage.QuotaError
	switch {
	case errors.Is(err, storage.ErrNotFound):
		// The account went away since it was looked up.
		h.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, ""))
	case errors.As(err, &qe):
		h.counters.offlineFull.Add(1)
		h.logLimit("offline_"+qe.Unit, "user", st.To.Local())
		text := "the recipient is offline and has too many messages waiting"
		if qe.Unit == "bytes" {
			text = fmt.Sprintf("the recipient is offline and its offline storage is full (%s); send less, or wait until they log in",
				sizeText(qe.Limit))
		}
		h.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, text))
	case err != nil:
		h.log.Error("local: offline store", "user", st.To.Local(), "err", err)
		h.router.Bounce(st, xmpp.NewStanzaError(xmpp.InternalServerError, ""))
	default:
		for _, fn := range h.offline {
			fn(st)
		}
	}
}

// sizeText writes n bytes for a person: in MiB or KiB when it is a whole
// number of them.
func sizeText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

func worthStoring(st *xmpp.Stanza) bool {
	keep := false
	for _, c := range st.El.ChildElements() {
		switch ns := xmpp.NS(c); {
		case ns == nsHints && (c.Tag == "no-store" || c.Tag == "no-permanent-store"):
			return false
		case ns == nsChatStates, ns == nsHints:
		default:
			keep = true
		}
	}
	return keep
}

// deliverOffline hands s the messages kept for its user, oldest first,
// each with a XEP-0203 delay stamp, a page at a time: each page is taken
// from the store (and so deleted) in one call with its own deadline, then
// queued on s. Without stream management, a message counts as delivered
// once s queued it: s writes it, or, if its connection fails first, hands
// it back (Router.Undelivered), and then it goes back to the store in its
// place (offlineHandedBack). A message of a flush that failed may have
// reached the client all the same: that is the at most one duplicate.
// What the server holds only in a queue is lost if the process dies.
//
// When the queue of s is full, delivery waits for it to drain rather than
// bounce a message nobody is there to receive; what s cannot take (it is
// closing, or stays full for offlineStall) goes back to the store.
func (h *localHost) deliverOffline(local string, s Session) {
	for !s.Closing() {
		ctx, cancel := h.router.StoreContext()
		page, err := h.store.TakeOffline(ctx, h.name, local, offlinePageMessages, offlinePageBytes)
		cancel()
		if err != nil {
			h.log.Error("local: offline read", "user", local, "err", err)
			return
		}
		if len(page) == 0 {
			return
		}
		for i, m := range page {
			st, err := h.parseStored(m.Stanza)
			if err != nil {
				h.log.Error("local: offline message unreadable, dropped", "user", local, "seq", m.Seq, "err", err)
				continue
			}
			d := xmpp.NewDelay(h.name, m.Stored)
			d.SetText("Offline Storage")
			st.El.AddChild(d)
			h.inFlight.add(st.El, offlineRef{local: local, seq: m.Seq, stored: m.Stored})
			if !deliverWaiting(s, st.El) {
				h.inFlight.take(st.El)
				h.restoreOffline(local, page[i:])
				h.redeliverElsewhere(local, s)
				return
			}
			h.counters.offlineDelivered.Add(1)
		}
	}
	// s closed between two pages: the rest is another session's now.
	h.redeliverElsewhere(local, s)
}

// deliverWaiting queues el on s, waiting while the queue of s is full,
// and reports whether s took it: false when s is closing or its queue
// stayed full for offlineStall.
func deliverWaiting(s Session, el *etree.Element) bool {
	wait := time.Millisecond
	var since time.Time
	for !s.Deliver(el) {
		if s.Closing() {
			return false
		}
		if since.IsZero() {
			since = time.Now()
		} else if time.Since(since) > offlineStall {
			return false
		}
		time.Sleep(wait)
		wait = min(2*wait, 50*time.Millisecond)
	}
	return true
}

// restoreOffline puts messages taken from the store back in their place.
func (h *localHost) restoreOffline(local string, ms []storage.OfflineMessage) {
	if len(ms) == 0 {
		return
	}
	ctx, cancel := h.router.StoreContext()
	defer cancel()
	if err := h.store.RestoreOffline(ctx, h.name, local, ms); err != nil && !errors.Is(err, storage.ErrNotFound) {
		h.log.Error("local: offline messages lost: they could not be put back", "user", local, "messages", len(ms), "err", err)
		return
	}
	h.counters.offlineRestored.Add(int64(len(ms)))
}

// offlineHandedBack puts back in the store an offline message that the
// closing session s took but will never write, where it was, so that the
// next login gets it in order. Another available session of the user
// gets it now, as at its own login; it may then get the messages handed
// back out of their order (each has its delay stamp), since they come
// back one by one while delivery goes on.
func (h *localHost) offlineHandedBack(s Session, st *xmpp.Stanza, r offlineRef) {
	// The delay stamp is added at each delivery: the stored stanza is the
	// one without it.
	if d := st.El.ChildElements(); len(d) > 0 {
		if last := d[len(d)-1]; last.Tag == "delay" && xmpp.NS(last) == xmpp.NSDelay {
			st.El.RemoveChild(last)
		}
	}
	h.restoreOffline(r.local, []storage.OfflineMessage{{Seq: r.seq, Stanza: serializeStanza(st), Stored: r.stored}})
	h.redeliverElsewhere(r.local, s)
}

// redeliverElsewhere gives what s left in the user's offline storage to
// another available session of the user, if there is one, as at its own
// login: what s could not take (it closed while delivery waited) or took
// and handed back.
func (h *localHost) redeliverElsewhere(local string, s Session) {
	a := h.online(local)
	if a == nil {
		return
	}
	for _, o := range a.sessionList() {
		if o != s && !o.Closing() && o.Available() && o.Priority() >= 0 {
			h.redeliverOffline(a, o)
			return
		}
	}
}

// redeliverOffline delivers the user's offline messages to o in a
// goroutine of its own, one at a time per account: a session that hands
// back a hundred messages starts one delivery, which runs once more for
// those put back while it ran.
func (h *localHost) redeliverOffline(a *account, o Session) {
	a.mu.Lock()
	if a.redelivering {
		a.redeliverAgain = true
		a.mu.Unlock()
		return
	}
	a.redelivering = true
	a.mu.Unlock()
	go func() {
		for {
			h.deliverOffline(a.local, o)
			a.mu.Lock()
			if !a.redeliverAgain {
				a.redelivering = false
				a.mu.Unlock()
				return
			}
			a.redeliverAgain = false
			a.mu.Unlock()
		}
	}()
}

// offlineRef is where an offline message that a session took was in the
// store.
type offlineRef struct {
	local  string
	seq    int64
	stored time.Time
}

// offlineFlight remembers the offline messages that sessions took and may
// still hand back, so that one handed back goes back to the store in its
// place (offlineHandedBack), not to the end of it nor to a resource that
// the rules for a bare JID would pick. Nothing tells when a session wrote
// a stanza; once it did and let go of it, the element is collected, and
// so is its entry: the map holds weak pointers, and a cleanup removes the
// entry of an element that is gone.
type offlineFlight struct {
	mu sync.Mutex
	m  map[weak.Pointer[etree.Element]]offlineRef
}

func newOfflineFlight() *offlineFlight {
	return &offlineFlight{m: make(map[weak.Pointer[etree.Element]]offlineRef)}
}

// add remembers el, an offline message about to be queued on a session.
func (f *offlineFlight) add(el *etree.Element, r offlineRef) {
	p := weak.Make(el)
	f.mu.Lock()
	f.m[p] = r
	f.mu.Unlock()
	runtime.AddCleanup(el, f.forget, p)
}

func (f *offlineFlight) forget(p weak.Pointer[etree.Element]) {
	f.mu.Lock()
	delete(f.m, p)
	f.mu.Unlock()
}

// take returns and forgets where el was in the store, if it is an offline
// message a session took.
func (f *offlineFlight) take(el *etree.Element) (offlineRef, bool) {
	p := weak.Make(el)
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.m[p]
	delete(f.m, p)
	return r, ok
}

// len returns how many offline messages sessions took and may still hand
// back, for tests.
func (f *offlineFlight) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.m)
}

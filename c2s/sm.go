package c2s

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// Stream management (XEP-0198 v1.6, urn:xmpp:sm:3).
//
// Counting: the client's stanzas are counted (inH) once Router.Route
// returned for them, so an <a h/> never acknowledges a stanza that was not
// routed. The server's stanzas are counted when the writer takes them from
// the queue: from then on they wait in unacked, in order, until an <a h/>
// drops them. h is a uint32, so the counts wrap at 2^32 as §4 says.
//
// Asking: like Prosody's mod_smacks with its default
// smacks_max_unacked_stanzas = 0, the server keeps one <r/> outstanding at
// most. The writer appends an <r/> to a flush that wrote stanzas when none
// is outstanding, and an <a/> that leaves stanzas unacked asks again. A
// busy stream gets one <r/> per round trip, an idle one an <r/> after its
// last stanza.
//
// Resumption: a resumable session (enable with resume='true' and a
// ResumeTimeout) whose connection is gone (a read or write failed, or the
// idle timeout) detaches: its goroutine ends, no writer runs, and it stays
// bound, taking what is delivered to it into its queue within its bounds.
// A <resume/> on a new stream of the same user moves the new connection
// into the detached session (resumeFrom), which then writes <resumed/>,
// what the client did not acknowledge and the queue, and reads again. At
// ResumeTimeout a detached session expires: it unbinds, and what it never
// got acknowledged goes back to the router (Router.Undelivered).

// NSSM is the namespace of stream management (XEP-0198).
const NSSM = "urn:xmpp:sm:3"

// smState is a session's stream management, from <enable/> on; nil before.
type smState struct {
	id      string        // the resumption id; "" when the session is not resumable
	timeout time.Duration // how long the session may stay detached
	inH     uint32        // the client's stanzas handled; the session's goroutine's

	// Guarded by the session's qmu.
	unacked  []*etree.Element // stanzas taken by the writer and not acknowledged, in order
	sentAt   []int64          // when the writer took each of unacked (Unix ns), in step with it
	acked    uint32           // the last h the client acknowledged
	skip     int              // stanzas queued before <enabled/>, which are not counted
	asked    bool             // an <r/> is out and no <a/> came since
	detached bool             // the connection is gone; the session waits for a resume
	timer    *time.Timer      // expires a detached session
	since    time.Time        // when the session detached; zero when it is not detached
	untold   bool             // detached for a resume that was waiting: DetachRouter not told yet
	stopped  chan struct{}    // closed when the writer stops, for stopWriter
	gone     chan struct{}    // closed when the session detached or ended, for a resume
	errApp   *etree.Element   // the application condition of the stream error, if any

	// broken is set when the connection must not be used any more: no
	// writer starts, and the reader ends and detaches.
	broken atomic.Bool
}

// smInitialH is where both counts start; tests start it near 2^32 to
// see them wrap.
var smInitialH uint32

var (
	smRequest = xmpp.NewElementNS(NSSM, "r")

	errBroken       = errors.New("c2s: the connection was taken from the session")
	errTransplanted = errors.New("c2s: the connection went to a resumed session")
	errExpired      = errors.New("c2s: the detached session expired")
)

// smFeature is the <sm/> stream feature, offered with bind.
func smFeature(*Session) *etree.Element { return newElementNS(NSSM, "sm") }

// smFailed is <failed/> with a stanza error condition.
func smFailed(condition string) *etree.Element {
	el := newElementNS(NSSM, "failed")
	el.CreateElement(condition).CreateAttr("xmlns", xmpp.NSStanzas)
	return el
}

// smGoneFailed is the <failed/> answering a resume of a session that
// ended: item-not-found, with the session's count of the client's
// stanzas (XEP-0198 §5) so that the client resends only those the server
// never handled, as Prosody's mod_smacks answers.
func smGoneFailed(h uint32) *etree.Element {
	el := newElementNS(NSSM, "failed")
	el.CreateAttr("h", strconv.FormatUint(uint64(h), 10))
	el.CreateElement("item-not-found").CreateAttr("xmlns", xmpp.NSStanzas)
	return el
}

// smGoneMax is how many ended sessions' counts are kept per user, the
// most recent: Prosody's smacks_max_old_sessions default. A client
// resumes its last session, not one of eleven ago.
const smGoneMax = 10

// smGoneFor is how long an ended session's count is kept. Prosody keeps
// them in its store with no time bound; in memory, a day covers a phone
// switched off overnight and keeps the map from growing with every user
// who ever lost a connection.
const smGoneFor = 24 * time.Hour

// smGone remembers the inbound count (h) of resumable sessions that
// ended, by user and resumption id, until a resume asks for it once
// (XEP-0198 §5: "the server has to store the SM-ID/sequence number tuple
// past the time out of the actual session"). The zero value is ready.
type smGone struct {
	mu     sync.Mutex
	byUser map[string][]goneSM // by user@host, oldest first
	swept  time.Time           // when entries older than smGoneFor were last dropped
}

// goneSM is one ended session's count.
type goneSM struct {
	id string
	h  uint32
	at time.Time
}

// put remembers h for the session id of user, which ended at now.
func (g *smGone) put(user, id string, h uint32, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.byUser == nil {
		g.byUser = make(map[string][]goneSM)
	}
	if now.Sub(g.swept) > time.Minute {
		// Once a minute at most: a walk over every user.
		g.swept = now
		for u, l := range g.byUser {
			keep := l[:0]
			for _, e := range l {
				if now.Sub(e.at) < smGoneFor {
					keep = append(keep, e)
				}
			}
			if len(keep) == 0 {
				delete(g.byUser, u)
			} else {
				g.byUser[u] = keep
			}
		}
	}
	l := g.byUser[user]
	for i, e := range l {
		if e.id == id {
			// Counted again (a session that ended at shutdown): the
			// last count is the one.
			l = append(l[:i], l[i+1:]...)
			break
		}
	}
	if drop := len(l) - smGoneMax + 1; drop > 0 {
		l = append(l[:0], l[drop:]...)
	}
	g.byUser[user] = append(l, goneSM{id: id, h: h, at: now})
}

// take returns, and forgets, the count of the ended session id of user.
func (g *smGone) take(user, id string, now time.Time) (uint32, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.byUser[user]
	for i, e := range l {
		if e.id != id {
			continue
		}
		l = append(l[:i], l[i+1:]...)
		if len(l) == 0 {
			delete(g.byUser, user)
		} else {
			g.byUser[user] = l
		}
		return e.h, now.Sub(e.at) < smGoneFor
	}
	return 0, false
}

// rememberGoneLocked keeps the count of s, a resumable session ending now,
// for a resume that comes late; qmu is held, so that a resume that finds
// s ended finds its count too.
func (s *Session) rememberGoneLocked() {
	if sm := s.sm; sm != nil && sm.id != "" {
		s.srv.gone.put(s.username+"@"+s.host, sm.id, sm.inH, time.Now())
	}
}

// negotiateSM takes a stream management element before bind: a resume,
// or an enable that comes too early.
func (s *Session) negotiateSM(el *etree.Element) error {
	var reply *etree.Element
	switch el.Tag {
	case "resume":
		var err error
		reply, err = s.resume(el, nil)
		if err != nil {
			return err
		}
	default:
		// XEP-0198 §3: enabling before bind is an unexpected request.
		reply = smFailed("unexpected-request")
	}
	if err := s.w.WriteElement(reply); err != nil {
		return err
	}
	return s.flush()
}

// handleSM takes a stream management element of a bound stream.
func (s *Session) handleSM(el *etree.Element) error {
	sm := s.sm
	switch {
	case el.Tag == "enable":
		s.enableSM(el)
		return nil
	case sm == nil:
	case el.Tag == "r":
		s.beforeAck()
		a := newElementNS(NSSM, "a")
		a.CreateAttr("h", strconv.FormatUint(uint64(sm.inH), 10))
		s.enqueue(a)
		return nil
	case el.Tag == "a":
		h, err := strconv.ParseUint(el.SelectAttrValue("h", ""), 10, 32)
		if err != nil {
			return xmpp.NewStreamError(xmpp.BadFormat, "h is a number under 2^32")
		}
		return s.ack(uint32(h))
	case el.Tag == "resume":
		s.enqueue(smFailed("unexpected-request"))
		return nil
	}
	return xmpp.NewStreamError(xmpp.UnsupportedStanzaType, "<"+el.Tag+"/> is not expected here")
}

// beforeAck lets the router finish what must be done before the server
// acknowledges the stanzas the client sent (AckRouter).
func (s *Session) beforeAck() {
	if ar, ok := s.srv.cfg.Router.(AckRouter); ok {
		ar.BeforeAck(s)
	}
}

// enableSM answers <enable/>.
func (s *Session) enableSM(el *etree.Element) {
	if s.sm != nil {
		s.enqueue(smFailed("unexpected-request"))
		return
	}
	sm, enabled := s.newSM(el)
	// <enabled/> goes out after what is queued now, and so do the
	// stanzas the client counts: those queued ahead are skipped.
	s.qmu.Lock()
	for _, q := range s.queue {
		if xmpp.KindOf(q) != xmpp.KindNone {
			sm.skip++
		}
	}
	s.queue = append(s.queue, enabled)
	s.sm = sm
	start := s.claimWriter()
	s.qmu.Unlock()
	if start {
		s.srv.idle.write(s)
	}
}

// newSM makes the stream management state that <enable/> asks for, a
// resumable one registered under its id, and returns it with the
// <enabled/> to answer.
func (s *Session) newSM(el *etree.Element) (*smState, *etree.Element) {
	sm := &smState{inH: smInitialH, acked: smInitialH}
	enabled := newElementNS(NSSM, "enabled")
	if r := el.SelectAttrValue("resume", ""); (r == "true" || r == "1") && s.srv.cfg.ResumeTimeout > 0 {
		sm.timeout = s.srv.cfg.ResumeTimeout
		if m, err := strconv.ParseUint(el.SelectAttrValue("max", ""), 10, 32); err == nil && m > 0 {
			// The client's preference, when shorter (§5).
			sm.timeout = min(sm.timeout, time.Duration(m)*time.Second)
		}
		sm.id = resumeID()
		enabled.CreateAttr("id", sm.id)
		enabled.CreateAttr("resume", "true")
		enabled.CreateAttr("max", strconv.Itoa(int(max(sm.timeout/time.Second, 1))))
		if loc := s.srv.cfg.ResumeLocation; loc != "" {
			enabled.CreateAttr("location", loc)
		}
		s.srv.mu.Lock()
		if s.srv.resumable == nil {
			s.srv.resumable = make(map[string]*Session)
		}
		s.srv.resumable[sm.id] = s
		s.srv.mu.Unlock()
	}
	return sm, enabled
}

// resumeID is a resumption id: 128 random bits, unguessable, since it
// names a session to whoever logs in as its user.
func resumeID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ack takes the client's <a h/>: what it acknowledges leaves unacked. An h
// for stanzas never sent ends the stream (§4).
func (s *Session) ack(h uint32) error {
	sm := s.sm
	s.qmu.Lock()
	n := h - sm.acked // mod 2^32
	if uint64(n) > uint64(len(sm.unacked)) {
		sent := sm.acked + uint32(len(sm.unacked))
		s.qmu.Unlock()
		app := newElementNS(NSSM, "handled-count-too-high")
		app.CreateAttr("h", strconv.FormatUint(uint64(h), 10))
		app.CreateAttr("send-count", strconv.FormatUint(uint64(sent), 10))
		sm.errApp = app
		return xmpp.NewStreamError(xmpp.StreamUndefined, "you acknowledged stanzas that were never sent")
	}
	clear(sm.unacked[:n])
	sm.unacked = sm.unacked[n:]
	sm.sentAt = sm.sentAt[n:]
	if len(sm.unacked) == 0 {
		sm.unacked, sm.sentAt = nil, nil
	}
	sm.acked = h
	sm.asked = false
	var start bool
	if len(sm.unacked) > 0 && !sm.broken.Load() && !s.closing.Load() {
		// Written after the last <r/>: ask for them too.
		sm.asked = true
		s.queue = append(s.queue, smRequest)
		start = s.claimWriter()
	}
	s.qmu.Unlock()
	if start {
		s.srv.idle.write(s)
	}
	return nil
}

// trackLocked records the stanzas of a batch the writer took as unacked,
// and reports whether the flush should ask for an ack. qmu is held.
func (sm *smState) trackLocked(batch []*etree.Element) (ask bool) {
	n := 0
	var now int64
	for _, el := range batch {
		if xmpp.KindOf(el) == xmpp.KindNone {
			continue
		}
		if sm.skip > 0 {
			sm.skip--
			continue
		}
		if now == 0 {
			// One clock reading a batch: its stanzas were queued
			// within one flush of each other.
			now = time.Now().UnixNano()
		}
		sm.unacked = append(sm.unacked, el)
		sm.sentAt = append(sm.sentAt, now)
		n++
	}
	if n > 0 && !sm.asked {
		sm.asked = true
		return true
	}
	return false
}

// takeUnackedLocked removes and returns the stanzas not acknowledged and
// everything queued, each with its delay stamp (stampedLocked); qmu is
// held.
func (s *Session) takeUnackedLocked() []*etree.Element {
	els := s.takeSentLocked()
	for _, el := range s.queue {
		if xmpp.KindOf(el) != xmpp.KindNone {
			els = append(els, s.stampedLocked(el, time.Time{}))
		}
	}
	s.queue = nil
	return els
}

// takeSentLocked removes and returns the stanzas written and not
// acknowledged, each stamped with when it was first written; qmu is held.
func (s *Session) takeSentLocked() []*etree.Element {
	sm := s.sm
	if sm == nil {
		return nil
	}
	els := sm.unacked
	for i, el := range els {
		els[i] = s.stampedLocked(el, time.Unix(0, sm.sentAt[i]))
	}
	sm.unacked, sm.sentAt = nil, nil
	return els
}

// stampedLocked returns el as it is to be sent again or handed back: a
// message or presence the server delayed carries a XEP-0203 <delay/> from
// the server's domain with when it was first queued (XEP-0198 §4: "servers
// SHOULD add a delay element with the original (failed) delivery
// timestamp"; Prosody's mod_smacks stamps what it queues the same way).
// at is that time; zero means it was queued before the session detached
// and not written (stamped with the detach), or, when the session never
// detached, now. el may be in other sessions' queues too, so the stamp
// goes on a copy. One with a delay from this server already keeps it:
// the first time is the one that counts, and an offline message (stamped
// at its delivery) must stay the very element the router gave, which it
// recognizes when handed back. Iqs get none, as in Prosody: XEP-0203 is
// for messages and presence. qmu is held.
func (s *Session) stampedLocked(el *etree.Element, at time.Time) *etree.Element {
	switch xmpp.KindOf(el) {
	case xmpp.KindMessage, xmpp.KindPresence:
	default:
		return el
	}
	for _, t := range el.Child {
		if c, ok := t.(*etree.Element); ok && c.Tag == "delay" && xmpp.NS(c) == xmpp.NSDelay && c.SelectAttrValue("from", "") == s.host {
			return el
		}
	}
	if at.IsZero() {
		at = time.Now()
		if s.sm != nil && !s.sm.since.IsZero() {
			at = s.sm.since
		}
	}
	c := el.Copy()
	c.AddChild(xmpp.NewDelay(s.host, at))
	return c
}

// deliverDetachedLocked is what Deliver queues for a detached session in
// place of el: el stamped with the time it came (stampedLocked); qmu is
// held. Others are queued as they are: the writer takes them at once.
func (s *Session) deliverDetachedLocked(el *etree.Element) *etree.Element {
	if s.sm == nil || !s.sm.detached {
		return el
	}
	return s.stampedLocked(el, time.Now())
}

// writerStoppedLocked tells stopWriter that the writer is off; qmu is
// held.
func (s *Session) writerStoppedLocked() {
	if s.sm != nil && s.sm.stopped != nil {
		close(s.sm.stopped)
		s.sm.stopped = nil
	}
}

// stopWriter waits until no writer runs: it runs no more once broken is
// set and the connection closed.
func (s *Session) stopWriter() {
	s.qmu.Lock()
	if !s.writing || s.written {
		s.qmu.Unlock()
		return
	}
	ch := make(chan struct{})
	s.sm.stopped = ch
	s.qmu.Unlock()
	<-ch
}

// detachable reports whether a session whose reader ended with err is to
// detach rather than end: it is resumable and nobody closed it, and its
// connection is gone or was taken away.
func (s *Session) detachable(err error) bool {
	sm := s.sm
	if sm == nil || sm.id == "" || s.closing.Load() || err == errTransplanted {
		return false
	}
	if sm.broken.Load() {
		return true
	}
	var se *xmpp.StreamError
	switch {
	case err == nil, errors.As(err, &se), errors.Is(err, xmpp.ErrStreamClosed):
		// The client closed its stream, or we close it with an error.
		return false
	}
	// The connection failed, or its idle timeout passed.
	return true
}

// detach lets go of the session's connection and keeps the session bound
// for a resume, until its timeout. It reports false when the session was
// closed meanwhile: it then ends as one whose connection is lost.
func (s *Session) detach() bool {
	sm := s.sm
	sm.broken.Store(true)
	_ = s.conn.Close() // a writer blocked in a write fails now
	s.stopWriter()
	s.srv.idle.done(s)
	s.qmu.Lock()
	if s.closing.Load() {
		s.qmu.Unlock()
		return false
	}
	sm.detached = true
	sm.since = time.Now()
	sm.timer = time.AfterFunc(sm.timeout, s.expire)
	gone := sm.gone
	sm.gone = nil
	// A resume that waits for this detach (gone) takes the session at
	// once: nobody needs waking, unless that resume fails (untold).
	sm.untold = gone != nil
	var pending []*etree.Element
	if !sm.untold {
		pending = s.pendingLocked()
	}
	waiting := len(sm.unacked) + len(s.queue)
	s.qmu.Unlock()
	if gone != nil {
		close(gone)
	}
	s.log(slog.LevelInfo, "c2s: detached, waiting for a resume", "timeout", sm.timeout, "unacked", waiting)
	if pending != nil {
		s.tellDetached(pending)
	}
	return true
}

// pendingLocked returns, for a DetachRouter, the stanzas a detached
// session holds for its client; nil without one. qmu is held.
func (s *Session) pendingLocked() []*etree.Element {
	if _, ok := s.srv.cfg.Router.(DetachRouter); !ok {
		return nil
	}
	pending := make([]*etree.Element, 0, len(s.sm.unacked)+len(s.queue))
	pending = append(pending, s.sm.unacked...)
	for _, el := range s.queue {
		if xmpp.KindOf(el) != xmpp.KindNone {
			pending = append(pending, el)
		}
	}
	return pending
}

// tellDetached tells the DetachRouter that s detached holding pending.
// Without qmu: the router's hosts may deliver to s.
func (s *Session) tellDetached(pending []*etree.Element) {
	if dr, ok := s.srv.cfg.Router.(DetachRouter); ok {
		dr.Detached(s, pending)
	}
}

// Detached reports whether the session is detached: resumable, its
// connection gone, waiting for a resume (XEP-0198 §5). What is delivered
// to it meanwhile waits in its queue.
func (s *Session) Detached() bool {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return s.sm != nil && s.sm.detached
}

// endLost ends a resumable session whose connection is gone and that was
// closed (or never detached): it unbinds, and what it did not get
// acknowledged goes back to the router.
func (s *Session) endLost() {
	s.sm.broken.Store(true)
	_ = s.conn.Close()
	s.stopWriter()
	s.unbind()
	s.qmu.Lock()
	s.closing.Store(true)
	s.rememberGoneLocked()
	s.writing, s.written = true, true
	els := s.takeUnackedLocked()
	hooks := s.endContextLocked()
	gone := s.sm.gone
	s.sm.gone = nil
	s.qmu.Unlock()
	runHooks(hooks)
	if gone != nil {
		close(gone)
	}
	s.handBack(els, errLost)
}

// expire ends a detached session: at its timeout, or when it is closed
// (Shutdown, a conflicting bind).
func (s *Session) expire() {
	sm := s.sm
	s.qmu.Lock()
	if !sm.detached {
		s.qmu.Unlock()
		return
	}
	sm.detached = false
	s.closing.Store(true)
	s.rememberGoneLocked()
	s.writing, s.written = true, true
	els := s.takeUnackedLocked()
	hooks := s.endContextLocked()
	gone := sm.gone
	sm.gone = nil
	s.qmu.Unlock()
	runHooks(hooks)
	if gone != nil {
		close(gone)
	}
	sm.timer.Stop()
	s.log(slog.LevelInfo, "c2s: detached session expired", "undelivered", len(els))
	// Unbound first, as a session whose connection is lost: what comes
	// back for its full JID then goes to the bare JID's rules.
	s.unbind()
	s.handBack(els, errExpired)
	s.srv.ended(s)
}

// resume takes a <resume/> (§5) on a stream authenticated but not bound:
// the session it names, of the same user, takes this stream's connection.
// It returns the reply to write when the resume failed, or errTransplanted
// when it succeeded: the connection belongs to the resumed session, and
// this one ends without touching it.
//
// wrap, when not nil, makes the first element the resumed session writes
// out of its <resumed/> (SASL2's <success/>, XEP-0198 §7).
func (s *Session) resume(el *etree.Element, wrap func(o *Session, resumed *etree.Element) *etree.Element) (*etree.Element, error) {
	h, err := strconv.ParseUint(el.SelectAttrValue("h", ""), 10, 32)
	if err != nil {
		return smFailed("bad-request"), nil
	}
	id := el.SelectAttrValue("previd", "")
	s.srv.mu.Lock()
	o := s.srv.resumable[id]
	s.srv.mu.Unlock()
	if o == nil || o == s || o.username != s.username || o.host != s.host {
		// Another user's session is no more found than an unknown one,
		// and its count is not told: it is looked up by this user's name.
		return s.goneFailed(id), nil
	}
	ok, tooHigh := o.resumeFrom(s, uint32(h), wrap)
	if tooHigh != nil {
		return nil, tooHigh
	}
	if !ok {
		// It ended meanwhile, and left its count (rememberGoneLocked,
		// under the lock resumeFrom found it ended under).
		return s.goneFailed(id), nil
	}
	return nil, errTransplanted
}

// goneFailed answers a resume of id, which names no session of this
// user: with the count of the user's session id if it ended lately.
func (s *Session) goneFailed(id string) *etree.Element {
	if h, ok := s.srv.gone.take(s.username+"@"+s.host, id, time.Now()); ok {
		return smGoneFailed(h)
	}
	return smFailed("item-not-found")
}

// resumeFrom moves the connection of n, a new stream of the same user,
// into the session s, once s let go of its own (a resume on a session
// whose connection is still open takes it away first), and starts s's
// goroutine and writer on it. It reports false when s ended meanwhile,
// and a stream error when h acknowledges stanzas never sent.
func (s *Session) resumeFrom(n *Session, h uint32, wrap func(o *Session, resumed *etree.Element) *etree.Element) (bool, error) {
	sm := s.sm
	s.qmu.Lock()
	for !sm.detached {
		if s.closing.Load() || s.written {
			s.qmu.Unlock()
			return false, nil
		}
		if sm.gone == nil {
			sm.gone = make(chan struct{})
		}
		gone := sm.gone
		sm.broken.Store(true)
		s.qmu.Unlock()
		// Wake the old connection's reader, blocked or parked: it
		// finds broken and detaches.
		_ = s.tcp.SetReadDeadline(aLongTimeAgo)
		s.srv.idle.wake(s)
		<-gone
		s.qmu.Lock()
	}
	// The old connection routed its last stanza: <resumed h/> counts it,
	// so what the server must finish first (the archive's commits) is
	// finished before, without holding the queue's lock meanwhile.
	s.qmu.Unlock()
	s.beforeAck()
	s.qmu.Lock()
	if !sm.detached || s.closing.Load() {
		// Closed, or taken by another resume, meanwhile.
		s.qmu.Unlock()
		return false, nil
	}
	if d := h - sm.acked; uint64(d) > uint64(len(sm.unacked)) {
		// The new stream ends (§4); the session stays detached, its
		// timer running, for a resume that counts right or its
		// expiry. If it detached for this resume, it is detached for
		// good now: those it wakes (push) are told.
		sent := sm.acked + uint32(len(sm.unacked))
		var pending []*etree.Element
		if sm.untold {
			sm.untold = false
			pending = s.pendingLocked()
		}
		s.qmu.Unlock()
		if pending != nil {
			s.tellDetached(pending)
		}
		app := newElementNS(NSSM, "handled-count-too-high")
		app.CreateAttr("h", strconv.FormatUint(uint64(h), 10))
		app.CreateAttr("send-count", strconv.FormatUint(uint64(sent), 10))
		n.sm = &smState{errApp: app}
		return false, xmpp.NewStreamError(xmpp.StreamUndefined, "you acknowledged stanzas that were never sent")
	} else {
		clear(sm.unacked[:d])
		sm.unacked = sm.unacked[d:]
		sm.sentAt = sm.sentAt[d:]
		sm.acked = h
	}
	sm.detached = false
	sm.untold = false
	sm.timer.Stop()
	resumed := newElementNS(NSSM, "resumed")
	resumed.CreateAttr("h", strconv.FormatUint(uint64(sm.inH), 10))
	resumed.CreateAttr("previd", sm.id)
	// Everything not acknowledged goes out again, in order, then what
	// came while detached; all of it is counted again as it is written.
	// Each carries the time it was first queued (stampedLocked).
	q := make([]*etree.Element, 0, 1+len(sm.unacked)+len(s.queue))
	if wrap != nil {
		q = append(q, wrap(s, resumed))
	} else {
		q = append(q, resumed)
	}
	q = append(q, s.takeSentLocked()...)
	for _, el := range s.queue {
		q = append(q, s.stampedLocked(el, time.Time{}))
	}
	s.queue = q
	sm.since = time.Time{}
	sm.asked = false
	sm.skip = 0
	sm.errApp = nil
	// The new connection, with the state the idle-memory machinery
	// keeps of it.
	s.conn, s.tcp, s.r, s.w = n.conn, n.tcp, n.r, n.w
	if c, ok := s.conn.(*wsConn); ok {
		c.sess = s // its pongs now keep this session alive
	}
	s.state |= n.state & stateSecure
	s.sent = true
	s.idleState.reset()
	s.srv.idle.attach(s)
	sm.broken.Store(false)
	s.writing = false
	start := s.claimWriter()
	s.qmu.Unlock()
	if start {
		s.srv.idle.write(s)
	}
	s.log(slog.LevelInfo, "c2s: resumed", "h", h)
	go s.srv.serveSession(s)
	return true, nil
}

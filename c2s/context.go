package c2s

import (
	"context"
	"net"
	"sort"
	"strings"
	"syscall"
	"time"
)

// The session's context.
//
// Every session has a context.Context (Session.Context) that ends when
// the session is closed (Close, which Server.Shutdown calls for every
// session) or ends otherwise (the client closed its stream, a stream
// error, the idle timeout, a broken connection). The work a session
// starts uses it: a SASL account lookup, a registration, the TLS
// handshake; a router may use it for what it does on a session's behalf.
//
// An idle session must stay cheap (BENCHMARKS.md: about 9.5 KiB each, the
// Session struct at the top of its 352-byte size class), so the context is
// the Session itself seen as a context.Context, and costs no allocation
// until someone waits on it: Done makes a channel, which then lives as
// long as the session, and the AfterFunc method keeps its function only
// until it is stopped. The session's own work (opContext: the lookup, the
// handshake) calls AfterFunc directly, never Done, so a session that
// logged in holds nothing for its context once the lookup is over.

// storeTimeout bounds one call a session makes to the store for its
// client: a SASL account lookup, an invite check, a registration. Before
// bind, the stream's deadline (HandshakeTimeout after accept) bounds it too.
const storeTimeout = 10 * time.Second

// sessionContext is a Session seen as its context (Session.Context).
type sessionContext Session

// ctxState is what a session's context holds while it is watched: the
// channel Done made, and the functions AfterFunc registered. Guarded by
// the session's qmu; a session nobody watches has none.
type ctxState struct {
	done  chan struct{}
	hooks []*ctxHook
}

// ctxHook is one function registered by AfterFunc; a pointer, so that its
// stop finds it.
type ctxHook struct{ f func() }

// closedChan is the Done channel of a context that ended before anyone
// asked for one.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Context returns the session's context. It ends (its Err is
// context.Canceled) when the session is closed, by Close or by
// Server.Shutdown, or ends in any other way: the client closed its stream,
// a stream error, the idle timeout, a broken connection. Work done on the
// session's behalf (the router's, say) should use it, so that it stops
// when nobody is left to answer.
//
// It has no deadline and no values. It costs an idle session nothing
// until its Done is first called, which makes a channel (96 bytes) that
// the session then holds to its end; the context package calls Done for
// every context derived from this one (context.WithCancel,
// context.AfterFunc), and then registers through the context's AfterFunc
// method, which needs no goroutine. The session's own work avoids Done
// (opContext), so a session that only logged in holds no channel.
func (s *Session) Context() context.Context { return (*sessionContext)(s) }

// Deadline reports that the session's context has none.
func (c *sessionContext) Deadline() (time.Time, bool) { return time.Time{}, false }

// Done returns a channel closed when the session's context ends.
func (c *sessionContext) Done() <-chan struct{} {
	s := (*Session)(c)
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.over {
		return closedChan
	}
	if s.cx == nil {
		s.cx = new(ctxState)
	}
	if s.cx.done == nil {
		s.cx.done = make(chan struct{})
	}
	return s.cx.done
}

// Err returns context.Canceled once the session's context has ended.
func (c *sessionContext) Err() error {
	s := (*Session)(c)
	s.qmu.Lock()
	over := s.over
	s.qmu.Unlock()
	if over {
		return context.Canceled
	}
	return nil
}

// Value returns nil: the session's context carries no values.
func (c *sessionContext) Value(any) any { return nil }

// String names the session, for the context package's String of the
// contexts derived from this one.
func (c *sessionContext) String() string { return "c2s.Session(" + c.id + ").Context" }

// AfterFunc arranges for f to run once the session's context ends, on the
// goroutine that ends it (Close's caller, or the session's own), so f must
// not block; if it has ended already, f runs at once on a goroutine of its
// own. stop unregisters f and reports whether it did so before f ran.
// context.AfterFunc and the contexts derived from this one use it instead
// of a goroutine that waits on Done.
func (c *sessionContext) AfterFunc(f func()) (stop func() bool) {
	s := (*Session)(c)
	h := &ctxHook{f: f}
	s.qmu.Lock()
	if s.over {
		s.qmu.Unlock()
		go f()
		return func() bool { return false }
	}
	if s.cx == nil {
		s.cx = new(ctxState)
	}
	s.cx.hooks = append(s.cx.hooks, h)
	s.qmu.Unlock()
	return func() bool {
		s.qmu.Lock()
		defer s.qmu.Unlock()
		if s.cx == nil {
			return false
		}
		for i, o := range s.cx.hooks {
			if o == h {
				last := len(s.cx.hooks) - 1
				s.cx.hooks[i] = s.cx.hooks[last]
				s.cx.hooks[last] = nil
				s.cx.hooks = s.cx.hooks[:last]
				if last == 0 && s.cx.done == nil {
					// Nobody watches any more: an idle session holds
					// nothing for its context.
					s.cx = nil
				}
				return true
			}
		}
		return false
	}
}

// endContextLocked ends the session's context, once, with qmu held, and
// returns the AfterFunc functions to run once qmu is released.
func (s *Session) endContextLocked() []*ctxHook {
	if s.over {
		return nil
	}
	s.over = true
	cx := s.cx
	s.cx = nil
	if cx == nil {
		return nil
	}
	if cx.done != nil {
		close(cx.done)
	}
	return cx.hooks
}

// endContext ends the session's context (Close does it too).
func (s *Session) endContext() {
	s.qmu.Lock()
	hooks := s.endContextLocked()
	s.qmu.Unlock()
	runHooks(hooks)
}

func runHooks(hooks []*ctxHook) {
	for _, h := range hooks {
		h.f()
	}
}

// opContext returns a context for one piece of the session's own work
// (the TLS handshake, a store call), derived from the session's: it ends
// at deadline, or when the session's context does; the caller calls
// cancel when the work is over. It goes through AfterFunc, not Done, so
// the session holds nothing for it afterwards.
func (s *Session) opContext(deadline time.Time) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	stop := (*sessionContext)(s).AfterFunc(cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// storeContext returns the context of one call the session's goroutine
// makes to the store for its client (a SASL lookup, an invite check, a
// registration), and the function that ends it, which the caller defers.
// The context ends after storeTimeout, at the stream's deadline before
// bind, when the session's context ends (Close, Shutdown), or when the
// client hangs up meanwhile (watchHangUp): nobody is left to answer then,
// and a store that hangs must not hold the session, its goroutine and its
// place among the address's unauthenticated connections until the
// timeout.
func (s *Session) storeContext() (context.Context, func()) {
	deadline := time.Now().Add(storeTimeout)
	if s.state&stateBound == 0 {
		if by := time.Unix(0, s.preauthBy); by.Before(deadline) {
			deadline = by
		}
	}
	ctx, cancel := s.opContext(deadline)
	prev := s.doing.Swap(doStore)
	unwatch := s.watchHangUp(cancel)
	return ctx, func() {
		unwatch()
		cancel()
		s.doing.Store(prev)
	}
}

// watchHangUp calls cancel if the client hangs up (closes or resets its
// connection) before the returned function is called, which waits for the
// watch to be over. The session's goroutine does not read while it waits
// for the store, so a goroutine of its own watches the socket meanwhile,
// without reading from it: what the client sent is left for the session
// (hungUp only looks). The watch ends at the connection's read deadline,
// which stop, Close and the stream's deadline set; every read of the
// session sets its own deadline again first (setReadDeadline). Where the
// socket cannot be watched (not Linux, a pipe in tests), it returns at
// once and only the session's context and the timeout end the call.
func (s *Session) watchHangUp(cancel func()) (stop func()) {
	raw := rawConnOf(s.tcp)
	if raw == nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		gone := false
		err := raw.Read(func(fd uintptr) bool {
			gone = hungUp(fd)
			return gone
		})
		if err == nil && gone {
			cancel()
		}
	}()
	return func() {
		_ = s.tcp.SetReadDeadline(aLongTimeAgo)
		<-done
	}
}

// rawConnOf returns the socket beneath c's wrappers, or nil when hang-ups
// cannot be watched on it.
func rawConnOf(c net.Conn) syscall.RawConn {
	if !canWatchHangUp {
		return nil
	}
	switch w := c.(type) {
	case *sockConn:
		c = w.Conn
	case *liveConn:
		c = w.Conn
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// What a session's goroutine is doing, as Session.doing holds it, for
// Shutdown's report of the sessions that hold it up. From doReading on,
// the session is bound (or was), and its jidAddr no longer changes.
const (
	doNegotiating uint32 = iota // before bind: reading the client, answering it
	doHandshake                 // in a TLS handshake
	doStore                     // waiting on the store: a SASL lookup, a registration
	doReading                   // bound: waiting for the client, reading it
	doRouting                   // bound: in Router.Route
	doEnding                    // ending: telling the router, writing the stream's end
)

var doingNames = [...]string{
	doNegotiating: "negotiating",
	doHandshake:   "in the TLS handshake",
	doStore:       "waiting on the store",
	doReading:     "reading",
	doRouting:     "routing a stanza",
	doEnding:      "ending",
}

// describe names the session for Shutdown's report: its JID once bound,
// its remote address before, and what it is doing. It may be called from
// any goroutine.
func (s *Session) describe() string {
	d := s.doing.Load()
	name := s.tcp.RemoteAddr().String()
	// jidAddr was written before doing moved past doReading, and not
	// after (a session that never bound never writes it).
	if d >= doReading && s.jidAddr != "" {
		name = s.jidAddr
	}
	what := "?"
	if int(d) < len(doingNames) {
		what = doingNames[d]
	}
	s.qmu.Lock()
	writing := s.writing && !s.written
	s.qmu.Unlock()
	if writing {
		what += ", writing"
	}
	return name + " (" + what + ")"
}

// maxNamed is how many of the sessions that hold Shutdown up its report
// names; it counts them all.
const maxNamed = 20

// logHanging logs the sessions still open when Shutdown's context ended.
func (s *Server) logHanging(open []*Session) {
	names := make([]string, 0, min(len(open), maxNamed))
	for _, sess := range open[:min(len(open), maxNamed)] {
		names = append(names, sess.describe())
	}
	sort.Strings(names)
	list := strings.Join(names, ", ")
	if len(open) > maxNamed {
		list += ", ..."
	}
	s.cfg.Logger.Warn("c2s: shutdown: sessions still open", "count", len(open), "sessions", list)
}

package c2s

import (
	"crypto/tls"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Parking (part of the idle-memory machinery: idlemem.go): a bound session that has waited for its peer for about
// ParkAfter gives up its goroutine. Its socket is handed to the server's
// poller (an epoll set of our own, itself waited on in Go's poller) and the
// goroutine returns, freeing its stack: an idle session then costs its
// Session, its reader's and TLS's state, and no goroutine. When the socket
// becomes readable, or the session is closed, or it passes its idle
// timeout, a new goroutine resumes it where it left off (run's read loop).
//
// Who runs a session is decided by one atomic word, Session.wstate:
//
//	running  -> waiting    the session's goroutine, before it waits for the peer
//	waiting  -> running    the same goroutine, after the wait
//	waiting  -> parkReq    the sweeper, which then sets a past read deadline to end the wait
//	parkReq  -> running    the session's goroutine, when the wait ended (it then parks or goes on)
//	running  -> parked     the session's goroutine, just before it arms the poller and returns
//	parked   -> running    whoever wakes it (the poller, Close, a failed write, the sweeper
//	                       at the idle timeout), who then starts its new goroutine
//
// Only one CAS out of parked succeeds, so exactly one goroutine resumes a
// parked session. The sweeper's past deadline must not outlive the wait it
// was meant for: the sweeper sets it under parker.mu, and a goroutine that
// finds parkReq after its wait ended with bytes takes parker.mu once before
// it sets its own deadline again.
const (
	wsRunning uint32 = iota
	wsWaiting
	wsParkReq
	wsParked
)

// poller waits on parked sessions' sockets; it is made per system (epoll
// on Linux) and is nil where there is none, which turns parking off.
type poller interface {
	// track records s as the session of its socket, before it parks.
	track(s *Session) error
	// arm asks for one wake-up of s when its socket is readable, hung up
	// or failed.
	arm(s *Session) error
	// forget drops s; its socket is closed or about to be.
	forget(s *Session)
	// close stops the poller.
	close()
}

// parker parks and wakes the sessions of one Server.
type parker struct {
	srv      *Server
	poll     poller
	interval time.Duration
	// tick counts the sweeper's rounds: the sessions' coarse clock.
	tick atomic.Int64
	// parkTicks is how many rounds a wait lasts before the sweeper asks
	// the session to park; idleTicks, when positive, how many rounds a
	// parked session may stay silent.
	parkTicks, idleTicks int64
	// parks counts the sessions' parkings; released is its value at the
	// last release of memory to the system (releaseParked), at lastRelease.
	parks       atomic.Int64
	lastRound   int64 // parks at the end of the last round
	released    int64
	lastRelease time.Time
	free        func() // debug.FreeOSMemory; a test's counter otherwise

	// mu orders the sweeper's wake-up deadline before a waking session's
	// own deadline (see the states above).
	mu       sync.Mutex
	stopOnce sync.Once
	quit     chan struct{}
	done     chan struct{}
	log      *slog.Logger
}

// errParked is what run returns when the session parked: its goroutine
// ends, and the session does not.
var errParked = &parkedError{}

type parkedError struct{}

func (*parkedError) Error() string { return "c2s: session parked" }

// newParker starts the sweeper and the poller, or returns nil when parking
// is off (ParkAfter is zero) or the system has no poller.
func newParker(srv *Server) *parker {
	after := srv.cfg.ParkAfter
	if after <= 0 {
		return nil
	}
	poll, err := newPoller(srv)
	if err != nil {
		srv.cfg.Logger.Warn("c2s: idle sessions keep their goroutines", "err", err)
		return nil
	}
	if poll == nil {
		return nil
	}
	// Two rounds per ParkAfter: a session parks after waiting between
	// ParkAfter and one and a half times it.
	// At least a millisecond: a ticker needs a positive interval, and
	// a finer sweep would cost more than parking saves.
	interval := max(after/2, time.Millisecond)
	p := &parker{
		srv:       srv,
		poll:      poll,
		interval:  interval,
		parkTicks: 2,
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
		log:       srv.cfg.Logger,
		free:      debug.FreeOSMemory,
		// The spacing of releases counts from the start, so that
		// the logins of a first wave are not cut short by one.
		lastRelease: time.Now(),
	}
	if it := srv.cfg.IdleTimeout; it > 0 {
		p.idleTicks = int64((it + interval - 1) / interval)
	}
	go p.sweep()
	return p
}

// stop ends the sweeper and the poller. Sessions are woken by Close first.
// A second Shutdown calls it again, and it does nothing.
func (p *parker) stop() {
	p.stopOnce.Do(func() {
		close(p.quit)
		<-p.done
		p.poll.close()
	})
}

// sweep asks sessions that have waited long enough to park, and wakes
// parked sessions past their idle timeout.
func (p *parker) sweep() {
	defer close(p.done)
	t := time.NewTicker(p.interval)
	defer t.Stop()
	var list []*Session
	for {
		select {
		case <-p.quit:
			return
		case <-t.C:
		}
		now := p.tick.Add(1)
		list = p.srv.sessionList(list[:0])
		for _, s := range list {
			switch s.wstate.Load() {
			case wsWaiting:
				if now-s.waitSince.Load() >= p.parkTicks {
					p.mu.Lock()
					if s.wstate.CompareAndSwap(wsWaiting, wsParkReq) {
						_ = s.tcp.SetReadDeadline(aLongTimeAgo)
					}
					p.mu.Unlock()
				}
			case wsParked:
				// More than idleTicks: the wait began somewhere inside its
				// tick, so idleTicks whole rounds have passed only after
				// one more.
				if p.idleTicks > 0 && now-s.waitSince.Load() > p.idleTicks {
					s.wake(true)
				}
			}
		}
		clear(list)
		if l, ok := p.srv.idle.(*leanIdle); ok {
			// Before a release, so that their stacks go back too.
			l.writers.trimIdle()
		}
		p.releaseParked(time.Now())
	}
}

// After a wave of parking, what the parked sessions gave up (their
// goroutines' stacks, their TLS read buffers) is free in the Go heap but
// still the process's: the runtime returns free pages to the system only
// above about 1.1 times its next GC goal, which the logins before the wave
// set at twice what they kept alive, so a server whose sessions have gone
// idle would hold about twice the memory they use until its next few
// collections. releaseParked returns it at once: when releaseParks
// sessions have parked since the last release, and either a round went by
// with no session parking (the wave is over) or releaseEvery has passed
// (sessions keep parking: keepalives wake them; the runtime forces a
// collection that often anyway). A release is a full
// collection and the return of the free pages, which costs about as much
// CPU as a collection (tens of milliseconds for 10,000 sessions) and
// holds back allocation while the pages go.
const (
	releaseParks = 1024
	releaseEvery = 2 * time.Minute
)

// releaseParked runs at the end of each round of the sweeper, at now.
func (p *parker) releaseParked(now time.Time) {
	parks := p.parks.Load()
	settled := parks == p.lastRound
	p.lastRound = parks
	if parks-p.released < releaseParks || !settled && now.Sub(p.lastRelease) < releaseEvery {
		return
	}
	p.released, p.lastRelease = parks, now
	p.free()
	p.log.Debug("c2s: returned free memory to the system after parking", "parked", parks, "took", time.Since(now))
}

// waitPeer waits for the peer's next bytes in the session's goroutine and
// returns what sock.wait returns, or errParked when the session parked
// instead; p is nil when sessions do not park.
func (s *Session) waitPeer(p *parker) error {
	if p == nil || s.state&stateBound == 0 || s.noPark {
		return s.sock.wait()
	}
	if s.resumed {
		// Woken from parking: read what woke it, if anything. When the
		// probe took it all as keepalives (or nothing was there), the
		// session parks again without lingering.
		if s.sock.poke() {
			s.waitSince.Store(p.tick.Load())
			return nil
		}
		return s.park(p)
	}
	s.waitSince.Store(p.tick.Load())
	s.wstate.Store(wsWaiting)
	err := s.sock.wait()
	if s.wstate.CompareAndSwap(wsWaiting, wsRunning) {
		return err
	}
	// The sweeper asked us to park: wait until its deadline is set, so
	// that ours, set next, is the one that holds.
	p.mu.Lock()
	p.mu.Unlock()
	s.wstate.Store(wsRunning)
	if err != nil && isTimeout(err) && !s.closing.Load() {
		return s.park(p)
	}
	// The wait ended for its own reasons (bytes, the end of the stream,
	// Close): our deadline again, for the read that follows.
	if derr := s.setReadDeadline(); derr != nil {
		return derr
	}
	return err
}

// park hands the session to the poller and reports errParked, or nil when
// the poller refused it: the caller then waits in its goroutine, and the
// session is not parked again (noPark).
func (s *Session) park(p *parker) error {
	// Still resumed: woken by keepalives alone, so the reader has read
	// nothing since it was compacted when the session last parked.
	readSince := !s.resumed
	s.resumed = false
	if s.closing.Load() {
		return errClosing
	}
	if tc, ok := s.conn.(*tls.Conn); ok {
		// Nothing is buffered (probe said so before this wait), and no
		// Read is in progress: this goroutine is the only reader. (TLS
		// regrew its buffer for the keepalives' record, if any.)
		releaseTLSBuffers(tc)
	}
	if readSince {
		s.r.Compact()
	}
	err := p.poll.track(s)
	if err == nil {
		s.wstate.Store(wsParked)
		if err = p.poll.arm(s); err == nil {
			// A Close between the check above and parked being set
			// found the session running and woke nobody: take it back.
			if s.closing.Load() && s.wstate.CompareAndSwap(wsParked, wsRunning) {
				return errClosing
			}
			p.parks.Add(1)
			return errParked
		}
		if !s.wstate.CompareAndSwap(wsParked, wsRunning) {
			// Woken meanwhile: the new goroutine owns the session.
			return errParked
		}
	}
	// Not asked again: a session the poller refuses (epoll's watch limit,
	// say) waits in its goroutine from now on, under its idle timeout,
	// which this one wait extends by at most ParkAfter.
	s.noPark = true
	p.log.Warn("c2s: cannot park a session; it keeps its goroutine", "err", err)
	return s.setReadDeadline()
}

// wake resumes a parked session on a new goroutine; expired makes it end
// with the idle timeout (leanIdle.wait). It does nothing when the session
// is not parked.
func (s *Session) wake(expired bool) {
	if !s.wstate.CompareAndSwap(wsParked, wsRunning) {
		return
	}
	s.resumed = true
	s.expired = expired
	go s.srv.serveSession(s)
}

// errIdle is the error of a parked session woken at its idle timeout; it is
// a timeout, so the stream ends with <connection-timeout/>.
var errIdle error = os.ErrDeadlineExceeded

package c2s

import (
	"runtime"
	"sync/atomic"
)

// writers runs the writer loops of a server's sessions when the
// idle-memory machinery is on (leanIdle). A session has no writer
// goroutine of its own: when a stanza is queued for a session whose writer
// is not running, the session's loop is handed to a goroutine that waits
// here, or to a new one when none waits. The loop returns when the
// session's queue is empty, and the goroutine waits for the next session.
//
// Waiting goroutines are kept, rather than one goroutine started per
// burst, because a new goroutine's stack must grow to what a TLS write
// takes each time it starts: in a CPU profile of the message benchmark,
// starting one per delivery put about 6 % of the samples in
// runtime.newstack and runtime.newproc, while a handoff to a waiting
// goroutine costs what waking a session's own parked writer did. A writer
// blocked on a slow client holds only its own goroutine: the next session
// gets another. (With the machinery off, plainIdle starts one per burst.)
//
// Enough of them wait for a room's fan-out. Since Deliver writes a lone
// stanza itself when the socket takes it (Session.writeNow), the pool
// gets what a socket did not take, bursts, and the sessions that have no
// socket to try (WebSocket); for those a groupchat message still wakes a
// writer for each occupant at once, and with too few waiting (4 per CPU
// before) most of a 20-occupant room's copies started a goroutine that
// grew its stack for the TLS write and exited after: in a profile of the
// muc scenario at 1 msg/s per occupant, 8.5 % of the server's CPU was
// runtime.copystack under the writers and 5 % the scheduler ending
// goroutines. A waiting writer's stack is shrunk by the garbage
// collector while the server is busy; a server at rest collects
// rarely, so the parker's sweep ends the writers beyond 4 per CPU once a
// round went by without a write (trimIdle): with 10,000 idle sessions, 64
// writers kept grown stacks worth 0.4 KiB a session.
type writers struct {
	work    chan *Session // unbuffered: a send succeeds only to a waiting goroutine
	quit    chan struct{} // closed by Shutdown: waiting goroutines exit
	trim    chan struct{} // unbuffered: each send ends one waiting goroutine
	idle    atomic.Int32  // goroutines waiting on work, about
	maxIdle int32
	// base is how many may wait at rest; starts counts start's calls,
	// and lastStarts is its value at the sweeper's last round (only the
	// sweeper reads it).
	base       int32
	starts     atomic.Int64
	lastStarts int64
}

func newWriters() *writers {
	return &writers{
		work:    make(chan *Session),
		quit:    make(chan struct{}),
		trim:    make(chan struct{}),
		maxIdle: int32(max(64, 4*runtime.GOMAXPROCS(0))),
		base:    int32(4 * runtime.GOMAXPROCS(0)),
	}
}

// trimIdle ends the waiting writers beyond base when none was asked for
// since its last call: the server is at rest. The parker's sweeper calls
// it once a round.
func (w *writers) trimIdle() {
	n := w.starts.Load()
	busy := n != w.lastStarts
	w.lastStarts = n
	if busy {
		return
	}
	for w.idle.Load() > w.base {
		select {
		case w.trim <- struct{}{}:
		default:
			return
		}
	}
}

// start runs s.write on a writer goroutine. The caller has claimed
// the session's writing (claimWriter), so the loop runs once at a time.
func (w *writers) start(s *Session) {
	w.starts.Add(1)
	select {
	case w.work <- s:
	default:
		go w.run(s)
	}
}

// run writes for s, then for each session handed to it while it waits,
// unless enough goroutines wait already or the server shut down.
func (w *writers) run(s *Session) {
	for {
		s.write()
		if w.idle.Add(1) > w.maxIdle {
			w.idle.Add(-1)
			return
		}
		select {
		case s = <-w.work:
			w.idle.Add(-1)
		case <-w.quit:
			w.idle.Add(-1)
			return
		case <-w.trim:
			w.idle.Add(-1)
			return
		}
	}
}

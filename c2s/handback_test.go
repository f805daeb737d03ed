package c2s

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// handBackRouter is a Router that keeps what sessions hand back.
type handBackRouter struct {
	mu    sync.Mutex
	calls int
	got   []*etree.Element
}

func (r *handBackRouter) Route(*xmpp.Stanza)  {}
func (r *handBackRouter) Bind(*Session) error { return nil }
func (r *handBackRouter) Unbind(*Session)     {}

func (r *handBackRouter) Undelivered(s *Session, els []*etree.Element) {
	if !s.Closing() {
		// The router relies on it: a session that is not closing would
		// take the stanzas again.
		panic("Undelivered from a session that is not closing")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	r.got = append(r.got, els...)
}

// handedBack returns the tags and ids of what s handed back, in order,
// like "iq message#1", and how many calls brought them.
func handedBack(s *Session) (string, int) {
	r := s.srv.cfg.Router.(*handBackRouter)
	r.mu.Lock()
	defer r.mu.Unlock()
	var parts []string
	for _, el := range r.got {
		p := el.Tag
		if id := el.SelectAttrValue("id", ""); id != "" {
			p += "#" + id
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " "), r.calls
}

// waitWriteBlocked waits until a writer has taken its batch and is
// blocked writing it into a pipe that nobody reads.
func waitWriteBlocked(t *testing.T) {
	t.Helper()
	waitFor(t, "the writer blocks in a write", func() bool { return goroutinesIn("net.(*pipe).write") == 1 })
}

// awaitWritten fails the test unless s ends its writing within the guard.
func awaitWritten(t *testing.T, s *Session) {
	t.Helper()
	done := make(chan struct{})
	go func() { s.waitWritten(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the writing does not end")
	}
}

// readN reads exactly n bytes from c once start is closed, then closes
// c: a client whose connection dies after it read that much.
func readN(c net.Conn, n int, start <-chan struct{}) <-chan string {
	out := make(chan string, 1)
	go func() {
		<-start
		p := make([]byte, n)
		k, _ := io.ReadFull(c, p)
		c.Close()
		out <- string(p[:k])
	}()
	return out
}

// TestWhatADeadConnectionWillNotWriteGoesBackToTheRouter: nothing that
// Deliver took is lost when the connection fails; the router gets it back,
// in order, once.
func TestWhatADeadConnectionWillNotWriteGoesBackToTheRouter(t *testing.T) {
	tests := []struct {
		name string
		// run drives the session s, whose client end is c, to the end of
		// its writing; the client must not have read what is handed back.
		run      func(t *testing.T, s *Session, c net.Conn)
		want     string // handed back, in order
		readable string // what the client read, if it read
	}{{
		// The writer is blocked in a flush when the connection fails:
		// the batch it was writing (at least once: it may have partly
		// arrived) and what was queued behind it come back.
		name: "a flush fails",
		run: func(t *testing.T, s *Session, c net.Conn) {
			s.startWriter(etree.NewElement("iq")) // the client does not read: the write blocks
			waitWriteBlocked(t)
			for i := 1; i <= 3; i++ {
				if !s.Deliver(message(i)) {
					t.Fatalf("message %d refused", i)
				}
			}
			c.Close()
			awaitWritten(t, s)
			if !s.Closing() || s.Deliver(message(4)) {
				t.Fatal("a session whose write failed still takes stanzas; they would be lost")
			}
		},
		want: "iq message#1 message#2 message#3",
	}, {
		// Close (a conflict, a shutdown) writes the rest of the queue
		// and the end of the stream; that last flush fails.
		name: "the last flush after Close fails",
		run: func(t *testing.T, s *Session, c net.Conn) {
			release := make(chan struct{})
			got := readN(c, len("<iq/>"), release) // then the client is gone
			s.startWriter(etree.NewElement("iq"))
			waitWriteBlocked(t)
			for i := 1; i <= 2; i++ {
				if !s.Deliver(message(i)) {
					t.Fatalf("message %d refused", i)
				}
			}
			s.Close(xmpp.NewStreamError(xmpp.StreamConflict, ""))
			close(release)
			if got := <-got; got != "<iq/>" {
				t.Fatalf("the client read %q", got)
			}
			awaitWritten(t, s)
		},
		want: "message#1 message#2",
	}, {
		// The reader found the connection gone (EOF, reset): the queue
		// is not written into it, where a peer that sent FIN would
		// lose it without our write failing.
		name: "the reader finds the connection gone",
		run: func(t *testing.T, s *Session, c net.Conn) {
			r := readClient(c)
			// Queued after Router.Bind, before the writer starts: the
			// state in which a writer that has not run yet finds them.
			for i := 1; i <= 3; i++ {
				if !s.Deliver(message(i)) {
					t.Fatalf("message %d refused", i)
				}
			}
			s.qmu.Lock()
			s.queued = true
			s.qmu.Unlock()
			s.end(io.EOF) // returns once the writing ended
			<-r.done
			if out := r.String(); out != "" {
				t.Fatalf("written into the lost connection: %s", out)
			}
		},
		want: "message#1 message#2 message#3",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := boundSession(t, 10)
			tt.run(t, s, c)
			got, calls := handedBack(s)
			if got != tt.want {
				t.Fatalf("handed back [%s], want [%s]", got, tt.want)
			}
			if calls != 1 {
				t.Fatalf("handed back in %d calls, want 1", calls)
			}
		})
	}
}

// TestCloseOfALiveConnectionHandsNothingBack: what is written is the
// client's.
func TestCloseOfALiveConnectionHandsNothingBack(t *testing.T) {
	s, c := boundSession(t, 10)
	r := readClient(c)
	s.startWriter(etree.NewElement("iq"))
	s.Deliver(message(1))
	s.Close(nil)
	awaitWritten(t, s)
	<-r.done
	if out := r.String(); out != `<iq/><message id="1"/></stream:stream>` {
		t.Fatalf("the client got %s", out)
	}
	if got, calls := handedBack(s); calls != 0 {
		t.Fatalf("handed back [%s] from a live connection", got)
	}
}

// TestUnavailablePresenceKeepsThePriority: the router asks a session that
// went away at which priority it took messages to its bare JID, to know
// whether another resource got them too.
func TestUnavailablePresenceKeepsThePriority(t *testing.T) {
	s, _ := boundSession(t, 10)
	s.SetPresence(true, 5)
	s.SetPresence(false, 0) // unbind's unavailable presence
	if s.Available() || s.Priority() != 5 {
		t.Fatalf("after unavailable: available %v, priority %d; want false, 5", s.Available(), s.Priority())
	}
	s.SetPresence(true, -1)
	if !s.Available() || s.Priority() != -1 {
		t.Fatalf("after available: available %v, priority %d; want true, -1", s.Available(), s.Priority())
	}
}

package c2s

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// echoRouter sends every stanza back to the session it came from.
type echoRouter struct {
	s       *Session
	once    sync.Once
	unbound chan struct{}
}

func (r *echoRouter) Route(st *xmpp.Stanza) { r.s.Deliver(st.El) }
func (r *echoRouter) Bind(*Session) error   { return nil }
func (r *echoRouter) Unbind(*Session)       { r.once.Do(func() { close(r.unbound) }) }

func (r *echoRouter) Undelivered(*Session, []*etree.Element) {}

// servedPair is pairOn with the session bound and served by its server as
// Serve would, echoing what the client sends; parkAfter and idle are the
// server's ParkAfter and IdleTimeout.
func servedPair(t *testing.T, useTLS bool, parkAfter, idle time.Duration) (*Session, net.Conn, *clientReader, *echoRouter) {
	t.Helper()
	rt := &echoRouter{unbound: make(chan struct{})}
	s, client := pairOn(t, false, useTLS, Config{Router: rt, WriteTimeout: 5 * time.Second, ParkAfter: parkAfter, IdleTimeout: idle})
	rt.s = s
	s.jid = xmpp.MustParse("juliet@example.com/balcony")
	s.jidAddr = s.jid.String()
	srv := s.srv
	srv.idle.start()
	if parkerOf(srv) == nil {
		t.Skip("sessions do not park on this system")
	}
	s.queued = true
	srv.mu.Lock()
	srv.sessions[s] = struct{}{}
	srv.wg.Add(1)
	srv.mu.Unlock()
	go srv.serveSession(s)
	return s, client, readClient(client), rt
}

// parkerOf is srv's parker, nil when its sessions do not park.
func parkerOf(srv *Server) *parker {
	if l, ok := srv.idle.(*leanIdle); ok {
		return l.parker
	}
	return nil
}

// waitParked waits until s is parked and no goroutine serves it.
func waitParked(t *testing.T, s *Session) {
	t.Helper()
	waitFor(t, "the session parks", func() bool {
		return s.wstate.Load() == wsParked && goroutinesIn("(*Server).serveSession") == 0
	})
}

// waitEnded waits until the session is gone from its server and unbound.
func waitEnded(t *testing.T, s *Session, rt *echoRouter) {
	t.Helper()
	select {
	case <-rt.unbound:
	case <-time.After(10 * time.Second):
		t.Fatal("the session was never unbound")
	}
	waitFor(t, "the session ends", func() bool { return s.srv.Sessions() == 0 })
}

func TestParkedSessions(t *testing.T) {
	const park = 10 * time.Millisecond
	tests := []struct {
		name string
		idle time.Duration
		// run acts on the parked session and checks the outcome.
		run func(t *testing.T, s *Session, c net.Conn, got *clientReader, rt *echoRouter)
	}{
		{"a stanza wakes it, and it parks again", time.Minute, func(t *testing.T, s *Session, c net.Conn, got *clientReader, rt *echoRouter) {
			for i := range 3 {
				if _, err := fmt.Fprintf(c, "<message id='m%d'/>", i); err != nil {
					t.Fatal(err)
				}
				waitFor(t, fmt.Sprintf("echo %d", i), func() bool { return strings.Contains(got.String(), fmt.Sprintf(`id="m%d"`, i)) })
				waitParked(t, s)
			}
		}},
		{"keepalives wake it, restart its idle timeout, and it parks again", 300 * time.Millisecond, func(t *testing.T, s *Session, c net.Conn, got *clientReader, rt *echoRouter) {
			// Keepalives for three idle timeouts, then a stanza.
			for range 12 {
				if _, err := c.Write([]byte(" ")); err != nil {
					t.Fatal(err)
				}
				time.Sleep(75 * time.Millisecond)
			}
			waitParked(t, s)
			if _, err := c.Write([]byte("<message id='after'/>")); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the echo after the keepalives", func() bool { return strings.Contains(got.String(), `id="after"`) })
		}},
		{"the idle timeout ends it", 200 * time.Millisecond, func(t *testing.T, s *Session, c net.Conn, got *clientReader, rt *echoRouter) {
			waitEnded(t, s, rt)
			waitFor(t, "connection-timeout", func() bool { return strings.Contains(got.String(), "connection-timeout") })
		}},
		{"Close wakes it", time.Minute, func(t *testing.T, s *Session, c net.Conn, got *clientReader, rt *echoRouter) {
			// Read here, where nothing but Close (whose atomics order it
			// before the new goroutine) can wake the session.
			if s.r.Buffered() != 0 || !s.r.Idle() {
				t.Fatal("a parked session holds a read buffer")
			}
			if tc, ok := s.conn.(*tls.Conn); ok {
				checkTLSReleased(t, tc)
			}
			s.Close(xmpp.NewStreamError(xmpp.SystemShutdown, ""))
			waitEnded(t, s, rt)
			waitFor(t, "system-shutdown and the end", func() bool {
				out := got.String()
				return strings.Contains(out, "system-shutdown") && strings.HasSuffix(out, "</stream:stream>")
			})
		}},
		{"the client hanging up wakes it", time.Minute, func(t *testing.T, s *Session, c net.Conn, got *clientReader, rt *echoRouter) {
			c.Close()
			waitEnded(t, s, rt)
		}},
	}
	for _, tt := range tests {
		for _, useTLS := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s, TLS %v", tt.name, useTLS), func(t *testing.T) {
				s, c, got, rt := servedPair(t, useTLS, park, tt.idle)
				waitParked(t, s)
				tt.run(t, s, c, got, rt)
			})
		}
	}
}

// TestParkingLosesNoStanza has sessions that park and wake at random
// moments, the sweeper asking them to park every millisecond, while their
// clients send: every stanza must come back, in order.
func TestParkingLosesNoStanza(t *testing.T) {
	const sessions, stanzas = 8, 40
	var wg sync.WaitGroup
	parks := int64(0)
	for i := range sessions {
		s, c, got, _ := servedPair(t, i%2 == 0, 2*time.Millisecond, time.Minute)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range stanzas {
				if _, err := fmt.Fprintf(c, "<message id='%d-%d'/>", i, j); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
			}
		}()
		defer func() {
			last := fmt.Sprintf(`id="%d-%d"`, i, stanzas-1)
			waitFor(t, "the last echo of session "+fmt.Sprint(i), func() bool { return strings.Contains(got.String(), last) })
			out := got.String()
			at := 0
			for j := range stanzas {
				k := strings.Index(out[at:], fmt.Sprintf(`id="%d-%d"`, i, j))
				if k < 0 {
					t.Fatalf("session %d: stanza %d missing or out of order", i, j)
				}
				at += k
			}
			parks += parkerOf(s.srv).parks.Load()
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		if parks == 0 {
			t.Error("no session ever parked")
		}
	})
}

// TestParkerEdges: a ParkAfter of one nanosecond still gets a sweeper (with
// an interval of after/2, newParker panicked in time.NewTicker), and
// stopping the parker twice, as a second Shutdown does, is harmless (it
// panicked closing a closed channel).
func TestParkerEdges(t *testing.T) {
	srv := NewServer(Config{Router: &echoRouter{}, ParkAfter: time.Nanosecond})
	p := newParker(srv)
	if p == nil {
		t.Skip("sessions do not park on this system")
	}
	p.stop()
	p.stop()
}

// TestReleaseAfterParking: memory goes back to the system once a wave of
// at least releaseParks parkings is over, or every releaseEvery while
// sessions keep parking, and never for fewer parkings.
func TestReleaseAfterParking(t *testing.T) {
	const round = 5 * time.Second
	tests := []struct {
		name  string
		parks []int64 // parkings in each round
		want  []int   // the rounds (from 0) that release
	}{
		{"a wave, then quiet", []int64{400, 400, 400, 0, 0, 0}, []int{3}},
		{"too few to bother", []int64{300, 300, 300, 0, 0, 0, 100, 0}, nil},
		{"two waves", []int64{2000, 0, 0, 1500, 0}, []int{1, 4}},
		// 500 a round, never a quiet one: a release every releaseEvery.
		{"parking never stops", slices.Repeat([]int64{500}, int(2*releaseEvery/round)+2), []int{int(releaseEvery / round), int(2 * releaseEvery / round)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []int
			round0 := time.Now()
			i := 0
			p := &parker{log: slog.New(slog.DiscardHandler), lastRelease: round0, free: func() { got = append(got, i) }}
			for ; i < len(tt.parks); i++ {
				p.parks.Add(tt.parks[i])
				p.releaseParked(round0.Add(time.Duration(i) * round))
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("released in rounds %v, want %v", got, tt.want)
			}
		})
	}
}

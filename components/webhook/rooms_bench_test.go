package webhook_test

import (
	"fmt"
	"net/http"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/parley-im/parley/components/webhook"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/parleytest/webhooktest"
	"github.com/parley-im/parley/xmpp"
)

// BenchmarkRoomBotRoundTrip measures a mention of the bot in a room and
// its answer seen by the occupant who sent it (room), against a direct
// message to the bot and its reply (direct), one after the other, through
// TLS, the server, the muc host and a real HTTP webhook that answers at
// once. The room's way is longer: the message goes through the room to
// the bot (and back to its sender), the answer through the room to every
// occupant (the sender, another user, and the bot itself, which skips it).
func BenchmarkRoomBotRoundTrip(b *testing.B) {
	hook := webhooktest.New(b, func(w http.ResponseWriter, p *webhooktest.Post) {
		webhooktest.JSON(w, http.StatusOK, webhook.Reply{Body: "re: " + p.JSON.Body})
	})
	s := parleytest.Start(b, parleytest.WithBot(botHost, hook.URL, inRooms([]string{team}, nil)), withMUC())
	s.AddUser("alice@localhost", "pw-alice")
	s.AddUser("bob@localhost", "pw-bob")
	alice := s.Login("alice@localhost", "pw-alice", "a")
	alice.Send("<presence/>")
	bob := s.Login("bob@localhost", "pw-bob", "b")
	bob.Send("<presence/>")
	for _, arm := range []struct {
		name, to, typ, body string
	}{
		{"room", team, "groupchat", "bots: ping"},
		{"direct", "echo@" + botHost, "chat", "ping"},
	} {
		b.Run(arm.name, func(b *testing.B) {
			if arm.name == "room" {
				roomForBench(b, s, alice, bob)
			}
			var lat []time.Duration
			start, cpu0 := time.Now(), cpuTime()
			for i := 0; b.Loop(); i++ {
				t0 := time.Now()
				alice.Send("<message to='%s' type='%s' id='b%d'><body>%s %d</body></message>", arm.to, arm.typ, i, arm.body, i)
				want := fmt.Sprintf("re: %s %d", arm.body, i)
				for {
					st := alice.NextStanza()
					if st.Kind == xmpp.KindMessage && parleytest.Body(st) == want {
						break
					}
				}
				lat = append(lat, time.Since(t0))
			}
			elapsed, cpu := time.Since(start), cpuTime()-cpu0
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			if len(lat) > 0 {
				b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "roundtrips/s")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
				b.ReportMetric(float64(cpu)/float64(len(lat)), "cpu-ns/op")
			}
		})
	}
}

// cpuTime is the process's CPU time so far: the server, the webhook and
// the clients all run in it.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// roomForBench creates the room once, with alice and bob in it, and
// waits for the bot.
func roomForBench(b *testing.B, s *parleytest.Server, alice, bob *parleytest.Conn) {
	c := botComponent(b, s, botHost)
	if len(c.RoomsJoined()) > 0 {
		return
	}
	alice.Send("<presence to='%s/Alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>", team)
	alice.WaitFor("the room", func(st *xmpp.Stanza) bool { return xmpp.Child(st.El, "", "subject") != nil })
	alice.ExpectResult(alice.IQ("set", team, "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query>"), "instant")
	bob.Send("<presence to='%s/Bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>", team)
	bob.WaitFor("the room", func(st *xmpp.Stanza) bool { return xmpp.Child(st.El, "", "subject") != nil })
	b.Helper()
	deadline := time.Now().Add(parleytest.Timeout)
	for len(c.RoomsJoined()) == 0 {
		if time.Now().After(deadline) {
			b.Fatal("the bot did not join")
		}
		time.Sleep(5 * time.Millisecond)
	}
	go func() { // bob reads what the room sends him until his stream ends
		for {
			if _, err := bob.NextErr(); err != nil {
				return
			}
		}
	}()
}

package pep_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// BenchmarkPublishNotify20: the owner publishes an item (stored, max_items
// 1) and each of 20 contacts whose caps say +notify gets the event. An
// op ends when the owner has the result and all 20 events arrived.
func BenchmarkPublishNotify20(b *testing.B) {
	const n = 20
	s := parleytest.Start(b)
	s.AddUser("alice@localhost", "pw")
	for i := range n {
		c := fmt.Sprintf("c%d", i)
		s.AddUser(c+"@localhost", "pw")
		for _, pair := range [][2]string{{"alice", c}, {c, "alice"}} {
			if _, err := s.Store().PutRosterItem(b.Context(), "localhost", pair[0],
				storage.RosterItem{JID: pair[1] + "@localhost", Subscription: "both"}); err != nil {
				b.Fatal(err)
			}
		}
	}
	alice := login(s, "alice@localhost", "phone", features(), false)
	alice.Send("<presence/>")
	alice.UntilSync()
	var contacts []*client
	for i := range n {
		c := login(s, fmt.Sprintf("c%d@localhost", i), "x", features(tune), false)
		c.Send("<presence><c xmlns='%s' hash='sha-1' node='%s' ver='%s'/></presence>", nsCaps, ourNode, c.ver)
		contacts = append(contacts, c)
	}
	// The first contact's client answers the one query; the others share
	// its ver.
	for _, st := range contacts[0].UntilSync() {
		if st.Kind == xmpp.KindIQ && st.Type == "get" {
			contacts[0].Send("<iq type='result' id='%s' to='localhost'><query xmlns='%s'><identity category='client' type='pc' name='parleytest'/><feature var='%s'/><feature var='%s'/><feature var='%s+notify'/></query></iq>",
				st.ID, xmpp.NSDiscoInfo, xmpp.NSDiscoInfo, nsCaps, tune)
		}
	}
	contacts[0].UntilSync()
	alice.UntilSync()

	events := make(chan int, n*16)
	var wg sync.WaitGroup
	for _, c := range contacts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				el, err := c.NextErr()
				if err != nil {
					return
				}
				if el.Tag == "message" {
					events <- 1
				}
			}
		}()
	}
	payload := publish(tune, "current", item(tune, "a song"))
	b.ResetTimer()
	for b.Loop() {
		st := alice.IQ("set", "", payload)
		if st.Type != "result" {
			b.Fatalf("publish: %s", alice.String(st.El))
		}
		for range n {
			<-events
		}
	}
	b.StopTimer()
	for _, c := range contacts {
		c.Close()
	}
	wg.Wait()
}

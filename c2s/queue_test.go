package c2s

import (
	"net"
	"strconv"
	"testing"

	"github.com/beevik/etree"
)

func TestQueueIsBoundedOrderedAndFreesBursts(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srv := NewServer(Config{Queue: 100})
	s := newSession(srv, a, false)
	if cap(s.queue) != 0 {
		t.Fatalf("a new session holds a queue of %d", cap(s.queue))
	}
	for i := range 100 {
		el := etree.NewElement("m")
		el.CreateAttr("n", strconv.Itoa(i))
		if !s.Deliver(el) {
			t.Fatalf("stanza %d refused below the bound", i)
		}
	}
	if s.Deliver(etree.NewElement("over")) {
		t.Fatal("the 101st stanza was taken; want the bound of 100")
	}
	batch := s.takeBatch()
	for i, el := range batch {
		if el.SelectAttrValue("n", "") != strconv.Itoa(i) {
			t.Fatalf("position %d holds %s", i, el.SelectAttrValue("n", ""))
		}
	}
	s.returnBatch(batch)
	if s.spare != nil {
		t.Fatalf("a burst's array of %d is kept; want it released", cap(batch))
	}
	if !s.Deliver(etree.NewElement("again")) {
		t.Fatal("refused after the queue drained")
	}
	small := s.takeBatch()
	s.returnBatch(small)
	if s.spare == nil {
		t.Fatal("a small batch's array is not reused")
	}
}

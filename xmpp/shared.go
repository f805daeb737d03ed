package xmpp

import (
	"bufio"
	"bytes"
	"sync/atomic"
	"unsafe"

	"github.com/beevik/etree"
)

// A fan-out (a room's message to its N occupants) routes N small roots
// that share one array of children (components/muc's to). Each session's
// writer would serialize those children again, N times the same bytes.
// ShareChildren serializes them once; a Writer that writes a top-level
// element whose Child is that very array (same first element, same
// length) copies the bytes instead and writes only the root's tags, which
// carry the per-recipient to. The output is byte for byte what
// writeElement writes (shared_test.go): the serializer writes an element
// the same way wherever it stands, so the bytes are right for every
// stream kind, a byte stream's (jabber:client) or a framed one's, which
// declares its namespace on the root alone.
//
// Sessions queue *etree.Element, so the bytes cannot travel with the
// stanza: they wait in a small table, keyed by the array's address. An
// entry holds the array, so no other array can take that address while
// the entry can be found. It leaves the table when the last of its
// expected writes took it, or when another fan-out's entry takes its
// slot; a write that finds no entry serializes the tree as before, so a
// lost entry costs time, never bytes. This is correct only as long as a
// routed stanza's children do not change (Stanza's rule): whoever adds a
// child to one copy gets a new array (to cuts the slice to its length)
// and so no longer matches.

// sharedSlots is the size of the table: enough for the fan-outs of
// every room that sends within one write's time; the entries it holds
// when nothing is written are at most sharedMaxBytes each.
const sharedSlots = 256

// sharedMaxBytes is the largest serialization kept: a fan-out of bigger
// children writes them per session (their cost is the copy and the TLS
// record then, not the walk), and the table cannot pin more than
// sharedSlots times this.
const sharedMaxBytes = 16 << 10

// sharedKids is the serialization of one array of children.
type sharedKids struct {
	first *etree.Token // &kids[0]: holds the array, and is its identity
	n     int          // len(kids)
	b     []byte       // what writeElement writes for the children
	left  atomic.Int64 // writes expected still
}

var sharedTable [sharedSlots]atomic.Pointer[sharedKids]

// sharedSlot returns the slot of the array whose first element is first.
func sharedSlot(first *etree.Token) *atomic.Pointer[sharedKids] {
	h := uint64(uintptr(unsafe.Pointer(first))) * 0x9E3779B97F4A7C15
	return &sharedTable[h>>(64-8)]
}

// ShareChildren serializes kids once for the writes of the top-level
// elements that will share them: uses copies, each with kids as its
// Child (the same array, cut to its length). Call it before routing the
// copies; kids must not change afterwards. With fewer than two uses, no
// children or too many bytes, it does nothing, and the copies are
// written as any element.
func ShareChildren(kids []etree.Token, uses int) {
	if uses < 2 || len(kids) == 0 {
		return
	}
	// A room message's children (a body, an occupant-id) take a few
	// hundred bytes: one allocation for most.
	buf := bytes.NewBuffer(make([]byte, 0, 512))
	bw := writeBuffers.Get().(*bufio.Writer)
	bw.Reset(buf)
	o := newOut(bw)
	o.children(kids)
	o.flush()
	_ = bw.Flush()
	bw.Reset(nil)
	writeBuffers.Put(bw)
	if buf.Len() > sharedMaxBytes {
		return
	}
	e := &sharedKids{first: &kids[0], n: len(kids), b: buf.Bytes()}
	e.left.Store(int64(uses))
	sharedSlot(e.first).Store(e)
}

// sharedChildren returns the serialization of kids if ShareChildren made
// one that is still in the table, counting the write; nil otherwise.
func sharedChildren(kids []etree.Token) []byte {
	if len(kids) == 0 {
		return nil
	}
	first := &kids[0]
	slot := sharedSlot(first)
	e := slot.Load()
	if e == nil || e.first != first || e.n != len(kids) {
		return nil
	}
	if e.left.Add(-1) <= 0 {
		// The last expected write: nobody else needs the entry. (A
		// write beyond those, a resend, finds none and serializes.)
		slot.CompareAndSwap(e, nil)
	}
	return e.b
}

//go:build parley_tlsmem

package c2s

import (
	"bytes"
	"crypto/tls"
	"reflect"
	"unsafe"
)

// Releasing crypto/tls's read buffers while a session is parked: part of
// the idle-memory machinery (idlemem.go), built only with the build tag
// parley_tlsmem (go build -tags parley_tlsmem), because it reaches into
// crypto/tls's private fields; idlemem_tls_off.go is the default.
//
// A tls.Conn keeps the buffers its handshake grew for as long as it lives:
// rawInput (records as read, grown to hold the ClientHello: about 2 KiB
// with today's hybrid key shares) and hand (handshake messages), and input
// points into rawInput's array after the last record. That is about a
// third of what a parked session holds (BENCHMARKS.md), and crypto/tls
// offers no way to give it back. When all three are empty, which is what
// a session that parks has checked already (probe: nothing buffered), they
// can be set to their zero values: crypto/tls grows them again for the
// next record, as it does for the first one, and the arrays become
// garbage.
//
// The fields are private, so they are found once by name and type with
// reflect, and their values reached with unsafe. If a Go release renames
// them or changes their types, tlsFields.ok is false and nothing is
// released (TestTLSBuffersReleased fails, to say so). Only the
// connection's reader uses these fields (under its halfConn lock, taken
// only by Read and the handshake), and a parking session's goroutine is
// that reader: no other goroutine reads the connection.
var tlsFields = findTLSFields()

type tlsFieldOffsets struct {
	rawInput, input, hand uintptr
	ok                    bool
}

func findTLSFields() tlsFieldOffsets {
	t := reflect.TypeFor[tls.Conn]()
	buf, rd := reflect.TypeFor[bytes.Buffer](), reflect.TypeFor[bytes.Reader]()
	raw, ok1 := t.FieldByName("rawInput")
	in, ok2 := t.FieldByName("input")
	hand, ok3 := t.FieldByName("hand")
	if !ok1 || !ok2 || !ok3 || raw.Type != buf || in.Type != rd || hand.Type != buf {
		return tlsFieldOffsets{}
	}
	return tlsFieldOffsets{rawInput: raw.Offset, input: in.Offset, hand: hand.Offset, ok: true}
}

// releaseTLSBuffers drops c's read buffers when they hold nothing, and
// reports whether it did. The caller must be c's only reader, with no Read
// in progress.
func releaseTLSBuffers(c *tls.Conn) bool {
	f := tlsFields
	if !f.ok {
		return false
	}
	p := unsafe.Pointer(c)
	raw := (*bytes.Buffer)(unsafe.Add(p, f.rawInput))
	in := (*bytes.Reader)(unsafe.Add(p, f.input))
	hand := (*bytes.Buffer)(unsafe.Add(p, f.hand))
	if raw.Len() != 0 || in.Len() != 0 || hand.Len() != 0 {
		return false
	}
	*raw = bytes.Buffer{}
	*in = bytes.Reader{}
	*hand = bytes.Buffer{}
	return true
}

//go:build parley_tlsmem

package c2s

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"unsafe"

	"github.com/parley-im/parley/server/certs"
)

// tlsHeld is the capacity of c's read buffers (rawInput, input's array,
// hand), read the way releaseTLSBuffers reaches them.
func tlsHeld(t *testing.T, c *tls.Conn) int {
	t.Helper()
	f := tlsFields
	if !f.ok {
		t.Fatal("crypto/tls's rawInput, input and hand are not where releaseTLSBuffers looks: update c2s/tlsmem.go for this Go release")
	}
	p := unsafe.Pointer(c)
	return (*bytes.Buffer)(unsafe.Add(p, f.rawInput)).Cap() +
		int((*bytes.Reader)(unsafe.Add(p, f.input)).Size()) +
		(*bytes.Buffer)(unsafe.Add(p, f.hand)).Cap()
}

// checkTLSReleased fails t when the parked session's TLS connection c
// holds read buffers.
func checkTLSReleased(t *testing.T, c *tls.Conn) {
	t.Helper()
	if held := tlsHeld(t, c); held != 0 {
		t.Fatalf("a parked session's TLS holds %d bytes of read buffers", held)
	}
}

// TestTLSBuffersReleased (the tripwire of the build tag parley_tlsmem): after a handshake and some records both ways, a
// connection with nothing buffered gives its read buffers up and keeps
// working; one with a record half read keeps them, and loses nothing.
func TestTLSBuffersReleased(t *testing.T) {
	store := certs.NewStore()
	if err := store.LoadOrCreate("example.com", "", "", t.TempDir()); err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	client := tls.Client(a, &tls.Config{InsecureSkipVerify: true, ServerName: "example.com"})
	server := tls.Server(b, store.TLSConfig())
	defer client.Close()
	defer server.Close()

	// exchange sends msg from client to server and reads n bytes of it.
	exchange := func(msg string, n int) string {
		t.Helper()
		errc := make(chan error, 1)
		go func() { _, err := client.Write([]byte(msg)); errc <- err }()
		got := make([]byte, n)
		if _, err := io.ReadFull(server, got); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		return string(got)
	}
	if got := exchange("<presence/>", 11); got != "<presence/>" {
		t.Fatalf("got %q", got)
	}
	if held := tlsHeld(t, server); held < 1024 {
		t.Fatalf("before release, the handshake's buffers should be held; held %d bytes", held)
	}
	if !releaseTLSBuffers(server) {
		t.Fatal("nothing buffered, and the buffers were not released")
	}
	if held := tlsHeld(t, server); held != 0 {
		t.Fatalf("after release, %d bytes still held", held)
	}
	for range 3 {
		const msg = "<message><body>after</body></message>"
		if got := exchange(msg, len(msg)); got != msg {
			t.Fatalf("after release: got %q", got)
		}
		releaseTLSBuffers(server)
	}

	// Half a record's data read: the rest waits in input, which must stay.
	if got := exchange("<iq id='1'/>", 4); got != "<iq " {
		t.Fatalf("got %q", got)
	}
	if releaseTLSBuffers(server) {
		t.Fatal("released buffers that held unread data")
	}
	rest := make([]byte, 8)
	if _, err := io.ReadFull(server, rest); err != nil || string(rest) != "id='1'/>" {
		t.Fatalf("the rest of the record: %q, %v", rest, err)
	}
}

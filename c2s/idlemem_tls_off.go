//go:build !parley_tlsmem

package c2s

import "crypto/tls"

// releaseTLSBuffers would drop c's read buffers while its session is
// parked; without the build tag parley_tlsmem (idlemem_tls.go) it leaves
// them, and crypto/tls keeps what its handshake grew for the session's
// life.
func releaseTLSBuffers(*tls.Conn) bool { return false }

//go:build !parley_tlsmem

package c2s

import (
	"crypto/tls"
	"testing"
)

// checkTLSReleased checks nothing: without the build tag parley_tlsmem,
// parking leaves crypto/tls's buffers alone (idlemem_tls_off.go).
func checkTLSReleased(*testing.T, *tls.Conn) {}

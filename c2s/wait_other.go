//go:build !unix

package c2s

import "net"

// socketWait would wait for a socket to become readable without a buffer;
// here it does not wait, and the read that follows blocks instead.
type socketWait struct{}

func (w *socketWait) wait(net.Conn) {}

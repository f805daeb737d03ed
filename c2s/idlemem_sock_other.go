//go:build !unix

package c2s

import "net"

// waiter would wait for a socket without a buffer; here there is none, and
// sessions read as they always do.
type waiter struct{}

// wrapSock returns nil: idle sessions block in their read.
func wrapSock(net.Conn) *sockConn { return nil }

// wait returns at once.
func (c *sockConn) wait() error { return nil }

// poke reports nothing to read.
func (c *sockConn) poke() bool { return false }

// writeNow takes nothing: without a raw socket every byte waits for the
// writer pool.
func (c *sockConn) writeNow(*lateWrites, []byte) (int, error) { return 0, nil }

package external_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/components/external"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

const (
	gw     = "gw.localhost"
	secret = "s3cret&<'"
)

// withComponent adds the component host gw with secret and conflict.
func withComponent(name, conflict string) parleytest.Option {
	return func(c *conf.Config) {
		c.Hosts = append(c.Hosts, conf.Host{Name: name, Type: external.HostType,
			Options: &external.Options{Secret: secret, Conflict: conflict}})
	}
}

// start starts a server with a local host and the component host gw.
func start(t testing.TB, opts ...parleytest.Option) (*parleytest.Server, string) {
	t.Helper()
	s := parleytest.Start(t, append([]parleytest.Option{parleytest.WithHost("localhost", ""), withComponent(gw, "")}, opts...)...)
	addrs := s.TypeAddrs(external.HostType)
	if len(addrs) != 1 {
		t.Fatalf("the component listener has addresses %v, want one", addrs)
	}
	return s, addrs[0].String()
}

// raw is a component's connection written by hand.
type raw struct {
	t  testing.TB
	nc net.Conn
	r  *xmpp.Reader
	// Header is the server's stream header.
	Header xmpp.Header
}

// dial opens a component stream in namespace ns to domain and reads the
// server's header; the error is the server's refusal.
func dial(t testing.TB, addr, ns, domain string) (*raw, error) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &raw{t: t, nc: nc, r: xmpp.NewReader(nc, xmpp.Limits{})}
	c.Send("<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s' to='%s'>", ns, xmpp.NSStream, domain)
	_ = nc.SetReadDeadline(time.Now().Add(parleytest.Timeout))
	c.Header, err = c.r.ReadHeader()
	if err != nil {
		t.Fatalf("the server's header: %v", err)
	}
	return c, nil
}

// login opens the stream to domain and sends the handshake for key; it
// returns the server's answer: nil for <handshake/>, or its stream error.
func login(t testing.TB, addr, domain, key string) (*raw, error) {
	t.Helper()
	c, _ := dial(t, addr, xmpp.NSAccept, domain)
	sum := sha1.Sum([]byte(c.Header.ID + key))
	c.Send("<handshake>%s</handshake>", hex.EncodeToString(sum[:]))
	el, err := c.NextErr()
	if err != nil {
		return c, err
	}
	if el.Tag != "handshake" {
		t.Fatalf("the answer to the handshake is %s", str(el))
	}
	return c, nil
}

// Send writes a formatted string.
func (c *raw) Send(format string, args ...any) {
	c.t.Helper()
	if _, err := fmt.Fprintf(c.nc, format, args...); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// NextErr reads the next element; a stream error is the error.
func (c *raw) NextErr() (*etree.Element, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(parleytest.Timeout))
	el, err := c.r.ReadElement()
	if err != nil {
		return nil, err
	}
	if se := xmpp.ParseStreamError(el); se != nil {
		return el, se
	}
	return el, nil
}

// Next reads the next stanza.
func (c *raw) Next() *xmpp.Stanza {
	c.t.Helper()
	el, err := c.NextErr()
	if err != nil {
		c.t.Fatalf("component read: %v", err)
	}
	st, err := xmpp.NewStanza(el)
	if err != nil {
		c.t.Fatalf("component read %s: %v", str(el), err)
	}
	return st
}

// ExpectStreamError reads until a stream error and the closing tag.
func (c *raw) ExpectStreamError(want xmpp.StreamCondition) {
	c.t.Helper()
	parleytest.ExpectStreamError(c.t, c.NextErr, want, true)
}

func str(el *etree.Element) string {
	d := etree.NewDocument()
	d.SetRoot(el.Copy())
	s, _ := d.WriteToString()
	return s
}

// waitFor polls cond for a few seconds: what it waits for happens on
// another goroutine of the server.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), parleytest.Timeout)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func digest(id, key string) string {
	sum := sha1.Sum([]byte(id + key))
	return hex.EncodeToString(sum[:])
}

func upper(s string) string { return strings.ToUpper(s) }

func externalHost(s *parleytest.Server) (*external.Host, bool) {
	return external.HostOf(s.Server, gw)
}

// leave closes the component's stream and waits until the server has
// let the component go: the next connection for its domain is then not
// a second one (which is refused with conflict).
func (c *raw) leave(s *parleytest.Server) {
	c.t.Helper()
	c.Send("</stream:stream>")
	for {
		if _, err := c.NextErr(); err != nil {
			break
		}
	}
	h, _ := externalHost(s)
	waitFor(c.t, "the component gone", func() bool { return !h.Connected() })
}

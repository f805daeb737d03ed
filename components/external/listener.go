package external

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/xmpp"
)

// listener accepts component connections on [component] listen and
// hands each, once authenticated, to the host it named.
type listener struct {
	ls     []net.Listener
	hosts  map[string]*Host
	limits xmpp.Limits
	log    *slog.Logger

	mu      sync.Mutex
	closed  bool
	pending map[*conn]struct{} // not authenticated yet
	// stop is closed by Close: a handshake's held answer ends.
	stop    chan struct{}
	accepts sync.WaitGroup
}

// limitsOf are the reader's limits of a component stream: those of
// server streams, since a component, like a server, speaks for many.
func limitsOf(cfg *conf.Config) xmpp.Limits {
	l := cfg.Limits
	return xmpp.Limits{
		MaxStanza: int64(l.S2SStanzaSize),
		MaxDepth:  l.MaxDepth,
		MaxAttrs:  l.MaxAttributes,
		Rate:      int64(l.Rate),
		// The bucket must hold the largest stanza.
		Burst: int64(max(l.Burst, l.S2SStanzaSize)),
	}
}

func newListener(ctx context.Context, cfg *conf.Config, hosts map[string]*Host, log *slog.Logger) (*listener, error) {
	l := &listener{hosts: hosts, limits: limitsOf(cfg), log: log, pending: map[*conn]struct{}{}, stop: make(chan struct{})}
	var lc net.ListenConfig
	for _, a := range cfg.Component.Listen {
		nl, err := lc.Listen(ctx, "tcp", a)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("component: listen on %s: %w", a, err)
		}
		l.ls = append(l.ls, nl)
	}
	for _, nl := range l.ls {
		l.accepts.Add(1)
		go l.accept(nl)
		log.Info("component: listening", "addr", nl.Addr().String(), "hosts", len(hosts))
	}
	return l, nil
}

// Addrs returns the addresses listened on.
func (l *listener) Addrs() []net.Addr {
	out := make([]net.Addr, 0, len(l.ls))
	for _, nl := range l.ls {
		out = append(out, nl.Addr())
	}
	return out
}

// Close stops accepting and closes the connections that have not
// authenticated; the hosts drain the others (Host.Close).
func (l *listener) Close() error {
	l.mu.Lock()
	if !l.closed {
		close(l.stop)
	}
	l.closed = true
	for c := range l.pending {
		c.nc.Close()
	}
	l.mu.Unlock()
	var err error
	for _, nl := range l.ls {
		err = errors.Join(err, ignoreClosed(nl.Close()))
	}
	l.accepts.Wait()
	return err
}

func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func (l *listener) accept(nl net.Listener) {
	defer l.accepts.Done()
	for {
		nc, err := nl.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			l.log.Error("component: accept failed", "err", err)
			time.Sleep(100 * time.Millisecond) // out of descriptors: not a busy loop
			continue
		}
		go l.serve(nc)
	}
}

// serve negotiates a connection and, once it authenticated, runs it.
func (l *listener) serve(nc net.Conn) {
	c := newConn(nc, l.limits, l.log)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		nc.Close()
		return
	}
	l.pending[c] = struct{}{}
	l.mu.Unlock()
	_ = nc.SetDeadline(time.Now().Add(handshakeTimeout))
	sent, err := c.negotiate(l.hosts, l.stop)
	l.mu.Lock()
	delete(l.pending, c)
	l.mu.Unlock()
	if err != nil {
		c.refuse(sent, err)
		return
	}
	c.run()
}

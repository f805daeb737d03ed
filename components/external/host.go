package external

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/parley-im/parley/server"
	"github.com/parley-im/parley/xmpp"
)

// Host is the handler of one component host: it writes the stanzas
// routed to its domain to the component's stream, or bounces them while
// no component is connected.
type Host struct {
	name   string
	opts   *Options
	router *server.Router
	log    *slog.Logger
	srvLog *slog.Logger
	// isHost reports whether a domain is a host of this server: a
	// subdomain that is one is that host's, never the component's.
	isHost func(domain string) bool

	// mu orders attach and detach; conn is read without it on every
	// stanza.
	mu   sync.Mutex
	conn atomic.Pointer[conn]

	// guard holds the answers to handshakes while a secret is guessed.
	guard *handshakeGuard

	// Counts, for /metrics (metrics.go), tests and logs.
	bounced, refused, full atomic.Int64
	// in counts the stanzas the component sent that were routed, out
	// those written to it.
	in, out atomic.Int64
}

// Name returns the host's domain.
func (h *Host) Name() string { return h.name }

// Connected reports whether a component is connected and authenticated.
func (h *Host) Connected() bool {
	c := h.conn.Load()
	return c != nil && !c.isClosing()
}

// Bounced returns how many stanzas were bounced because no component was
// connected.
func (h *Host) Bounced() int64 { return h.bounced.Load() }

// Full returns how many stanzas were refused because the component's
// queue was full.
func (h *Host) Full() int64 { return h.full.Load() }

// HandleStanza writes st to the component's stream without waiting: it
// queues it, or bounces it (service-unavailable while no component is
// connected, resource-constraint when its queue is full).
func (h *Host) HandleStanza(st *xmpp.Stanza) {
	c := h.conn.Load()
	if c != nil {
		switch c.deliver(st.El) {
		case queued:
			return
		case queueFull:
			if n := h.full.Add(1); n&(n-1) == 0 {
				h.log.Warn("component: queue full, stanza bounced", "total", n)
			}
			h.router.Bounce(st, xmpp.NewStanzaError(xmpp.ResourceConstraint, "the component is not reading its stream"))
			return
		}
	}
	h.unavailable(st)
}

// unavailable bounces st as no component is connected: iqs and messages
// get service-unavailable, presence is dropped (nobody is there to be
// available or to take a subscription).
func (h *Host) unavailable(st *xmpp.Stanza) {
	if st.Kind == xmpp.KindPresence {
		return
	}
	h.bounced.Add(1)
	h.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, "the component "+h.name+" is not connected"))
}

// mayFrom reports whether the component may send from domain: its own,
// or a subdomain of it that is no host of this server.
func (h *Host) mayFrom(domain string) bool {
	if domain == h.name {
		return true
	}
	return strings.HasSuffix(domain, "."+h.name) && !h.isHost(domain)
}

// attach makes c the host's connection, after its handshake; it returns
// the stream error that refuses c.
func (h *Host) attach(c *conn) *xmpp.StreamError {
	h.mu.Lock()
	defer h.mu.Unlock()
	if old := h.conn.Load(); old != nil && !old.isClosing() {
		if h.opts.Conflict != ConflictReplace {
			h.refused.Add(1)
			h.log.Warn("component: a second connection refused", "addr", c.addr)
			return xmpp.NewStreamError(xmpp.StreamConflict, "a component is already connected for "+h.name)
		}
		h.log.Info("component: a new connection replaces the old one", "addr", c.addr, "old", old.addr)
		old.close(xmpp.NewStreamError(xmpp.StreamConflict, "replaced by a new connection"), false)
	}
	h.conn.Store(c)
	return nil
}

// detach forgets c, once it has ended; a connection that replaced it
// stays.
func (h *Host) detach(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.conn.CompareAndSwap(c, nil)
}

// Close drains the component's stream at shutdown (server.Drainer):
// what is queued is written, then <system-shutdown/>; what the
// component sends until it closes its side is routed.
func (h *Host) Close(ctx context.Context) error {
	c := h.conn.Load()
	if c == nil {
		return nil
	}
	c.close(xmpp.NewStreamError(xmpp.SystemShutdown, "the server is stopping"), true)
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		c.nc.Close()
		<-c.done
		return ctx.Err()
	}
}

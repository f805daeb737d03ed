package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/c2s"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// A host type (local, http_component, ...) is a plugin: its package
// registers it by name, with conf.RegisterHostType for its options and
// with RegisterHostType here for what runs its hosts, from an init
// function; the binary imports the packages of the types it runs (see
// package server/std). The server names no host type: it builds
// each [[host]] with its type's New and asks the handlers it gets for the
// optional interfaces below.

// HostType is what the server needs of a host type.
type HostType struct {
	// New builds the handler of one host of the type, which the router
	// then gives every stanza addressed to the host's domain. Required.
	// A handler that has work in flight at shutdown implements
	// [Drainer]; one that answers presence for its JIDs itself
	// implements [PresenceAnswerer].
	New func(env *HostEnv) (Handler, error)
	// Routes, when set, adds the type's routes to the HTTP listener's
	// mux, once per server whether or not it has hosts of the type;
	// hosts are the handlers New built, by host name.
	Routes func(mux *http.ServeMux, api *HTTPAPI, hosts map[string]Handler)
	// Metrics, when set, writes the type's metrics in the Prometheus
	// text format at the end of GET /metrics.
	Metrics func(w io.Writer, hosts map[string]Handler)
	// Listen, when set, opens the type's own listeners (the external
	// components' port) at Start, once per server that has hosts of the
	// type, and serves them in the background; hosts are the handlers
	// New built, by host name. An error fails Start. Shutdown closes
	// what it returns before the hosts drain, so that no new peer
	// arrives while they do.
	Listen func(ctx context.Context, cfg *conf.Config, hosts map[string]Handler) (Listener, error)
}

// Listener is a host type's own listener (HostType.Listen).
type Listener interface {
	// Addrs are the addresses it listens on.
	Addrs() []net.Addr
	// Close stops accepting and ends the connections that have not
	// reached a host yet; the hosts' Drainer ends the others.
	Close() error
}

// HostEnv is what the server gives a host type's New.
type HostEnv struct {
	// Host is the host's config, checked: its Options are the type's.
	Host *conf.Host
	// Config is the whole config, checked.
	Config *conf.Config
	// Router routes the stanzas the host sends.
	Router *Router
	// Store is the server's store.
	Store *storage.Store
	// Log is the server's logger.
	Log *slog.Logger
	// DataDir is where the host may keep files: "" for a server that
	// leaves nothing on disk (an in-memory store).
	DataDir string
	// Started is when the server was built.
	Started time.Time
}

// Drainer is a host's handler with work in flight that Shutdown lets
// finish, before the client sessions close (so that the last answers
// still find them), for a few seconds at most.
type Drainer interface {
	// Close finishes or fails the work in flight while ctx allows.
	Close(ctx context.Context) error
}

// SessionHost is a host's handler whose users log in with client streams
// (the local type): c2s binds their sessions to it and hands it what they
// send.
type SessionHost interface {
	Handler
	// Bind registers a session that completed resource binding; an
	// error refuses the bind (the session ends).
	Bind(s *c2s.Session) error
	// Unbind removes a session that ended.
	Unbind(s *c2s.Session)
	// FromClient takes a stanza a session of the host sent, its from
	// stamped with the session's full JID.
	FromClient(st *xmpp.Stanza)
	// Undelivered routes st, which the closing session s refused or
	// will never write, as if s had already gone.
	Undelivered(s Session, st *xmpp.Stanza)
	// StreamFeatures are the host's stream features that c2s only
	// announces, before and after authentication.
	StreamFeatures(authenticated bool) []*etree.Element
	// RegistrationMode says who may create accounts in-band
	// (c2s.RegistrationClosed, Open or Invite).
	RegistrationMode() string
	// Flush writes what the host batches (last activity): once a second,
	// and at Shutdown after the sessions ended.
	Flush(ctx context.Context)
}

// NonzaHost is a SessionHost that takes what its sessions send at the
// top level that is not a stanza (XEP-0352's <active/>): c2s.NonzaRouter.
type NonzaHost interface {
	// Nonza reports whether the host took el.
	Nonza(s *c2s.Session, el *etree.Element) bool
}

// AckHost is a SessionHost with work to finish before the server
// acknowledges what a session sent (c2s.AckRouter).
type AckHost interface {
	BeforeAck(s *c2s.Session)
}

// InlineHost is a SessionHost whose modules take features a Bind2
// request (XEP-0386) enables inline: c2s.InlineRouter.
type InlineHost interface {
	// InlineFeatures lists them (disco vars).
	InlineFeatures() []string
	// Inline hands the host one child of a bound session's Bind2
	// request; it reports whether the host took it.
	Inline(s *c2s.Session, el *etree.Element) bool
}

// DetachHost is a SessionHost told when one of its sessions detaches
// (XEP-0198), with what the session holds for its client: c2s.DetachRouter.
type DetachHost interface {
	Detached(s *c2s.Session, pending []*etree.Element)
}

// AccountHost is a host's handler that can tell whether an account
// exists; subscription requests to one that does not are refused
// (RFC 6121 §3.1.3).
type AccountHost interface {
	// MayExist reports whether the user local may have an account:
	// false only when it surely has none. It may read the store.
	MayExist(local string) bool
}

// PresenceAnswerer is a host's handler that answers presence for its JIDs
// itself, always available, and sends no unavailable presence when a user
// stops receiving it: the user's side shows it gone (RFC 6121 §3.3.3).
type PresenceAnswerer interface {
	// AnswersPresence reports whether the host does so.
	AnswersPresence() bool
}

var (
	serverTypesMu sync.RWMutex
	serverTypes   []namedHostType
)

type namedHostType struct {
	name string
	HostType
}

// RegisterHostType makes the server run hosts of the type name, which
// must also be registered with conf.RegisterHostType. It panics when name
// is empty or taken or when t has no New: these are mistakes in the
// program.
func RegisterHostType(name string, t HostType) {
	if name == "" || t.New == nil {
		panic("server: RegisterHostType needs a name and a New")
	}
	serverTypesMu.Lock()
	defer serverTypesMu.Unlock()
	for _, o := range serverTypes {
		if o.name == name {
			panic("server: host type " + name + " is registered twice")
		}
	}
	serverTypes = append(serverTypes, namedHostType{name, t})
}

// registeredTypes returns the registered host types, in the order of
// their registration.
func registeredTypes() []namedHostType {
	serverTypesMu.RLock()
	defer serverTypesMu.RUnlock()
	return append([]namedHostType(nil), serverTypes...)
}

func lookupType(name string) (HostType, bool) {
	for _, t := range registeredTypes() {
		if t.name == name {
			return t.HostType, true
		}
	}
	return HostType{}, false
}

// typesRunning says which host types this server runs, for an error.
func typesRunning() string {
	var quoted []string
	for _, name := range conf.HostTypes() { // the default type first
		if _, ok := lookupType(name); ok {
			quoted = append(quoted, strconv.Quote(name))
		}
	}
	switch len(quoted) {
	case 0:
		return "no host type (its main package imports none)"
	case 1:
		return quoted[0] + " hosts"
	}
	return strings.Join(quoted[:len(quoted)-1], ", ") + " and " + quoted[len(quoted)-1] + " hosts"
}

// hostsOfType returns the handlers of the hosts of type name.
func (s *Server) hostsOfType(name string) map[string]Handler {
	out := map[string]Handler{}
	for _, h := range s.cfg.Hosts {
		if h.Type == name {
			out[h.Name] = s.router.hosts[h.Name]
		}
	}
	return out
}

// buildHosts builds the handler of every host with its type's New.
func (s *Server) buildHosts(certDir string) error {
	started := time.Now()
	for i := range s.cfg.Hosts {
		h := &s.cfg.Hosts[i]
		t, _ := lookupType(h.Type)
		handler, err := t.New(&HostEnv{
			Host: h, Config: s.cfg, Router: s.router, Store: s.store, Log: s.log,
			DataDir: certDir, Started: started,
		})
		if err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
		s.router.hosts[h.Name] = handler
		if sh, ok := handler.(SessionHost); ok {
			s.sessionHosts[h.Name] = sh
		}
	}
	return nil
}

// Hosts returns the handlers of every host, by name; the map is the
// caller's.
func (s *Server) Hosts() map[string]Handler {
	out := make(map[string]Handler, len(s.router.hosts))
	for n, h := range s.router.hosts {
		out[n] = h
	}
	return out
}

// HostHandler returns the handler that serves the host name, as its
// type's New built it.
func (s *Server) HostHandler(name string) (Handler, bool) {
	h, ok := s.router.hosts[strings.ToLower(name)]
	return h, ok
}

// drainHosts lets the hosts with work in flight finish it while ctx
// allows; whatever is left is failed.
func (s *Server) drainHosts(ctx context.Context) {
	var wg sync.WaitGroup
	for name, h := range s.router.hosts {
		d, ok := h.(Drainer)
		if !ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.Close(ctx); err != nil {
				s.log.Warn("server: host did not drain", "host", name, "err", err)
			}
		}()
	}
	wg.Wait()
}

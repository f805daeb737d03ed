package external

import (
	"context"
	"log/slog"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/server"
)

// HostType is the name of the type in the config: type = "component".
const HostType = "component"

// Values of [Options.Conflict].
const (
	// ConflictRefuse refuses a second connection for a domain that has
	// one (Prosody's default, kick_new).
	ConflictRefuse = "refuse"
	// ConflictReplace closes the old connection for the new one
	// (Prosody's kick_old).
	ConflictReplace = "replace"
)

// defaultQueueBytes bounds what waits for one component by default: a
// gateway carries many users' traffic, so twice a client's.
const defaultQueueBytes = 16 * conf.MiB

// Options are the options of a component host.
type Options struct {
	// Secret authenticates the external component. Required.
	Secret string `toml:"secret"`
	// Conflict says what a second connection for the domain does:
	// ConflictRefuse (the default) or ConflictReplace.
	Conflict string `toml:"conflict"`
	// QueueBytes bounds the memory the stanzas waiting to be written to
	// the component may hold (as parsed); past it senders get
	// resource-constraint. Default 16MiB, at least 64KiB.
	QueueBytes conf.Size `toml:"queue_bytes"`
}

func init() {
	conf.RegisterHostType(HostType, conf.HostType[Options]{Check: checkOptions})
	server.RegisterHostType(HostType, server.HostType{New: newHost, Listen: listen, Metrics: writeMetrics})
}

func checkOptions(c *conf.HostCheck, o *Options) {
	if o.Secret == "" {
		c.Missing("secret", `secret is required for type = "component": the password the component connects with`)
	}
	switch o.Conflict {
	case "":
		if c.IsSet("conflict") {
			c.Errorf("conflict", `must not be empty; use "refuse" or "replace", or leave it out for "refuse"`)
		}
		o.Conflict = ConflictRefuse
	case ConflictRefuse, ConflictReplace:
	default:
		c.Errorf("conflict", `%q is not a policy; use "refuse" (a second connection is refused) or "replace" (it replaces the first)`, o.Conflict)
	}
	conf.AtLeast(c, "queue_bytes", &o.QueueBytes, defaultQueueBytes, 64*conf.KiB,
		"what waits for the component must hold a large stanza")
}

// OptionsOf returns the options of a component host; a host built in Go
// without options gets new ones (checked by Config.Validate).
func OptionsOf(h *conf.Host) *Options {
	if o, ok := h.Options.(*Options); ok {
		return o
	}
	o := &Options{}
	h.Options = o
	return o
}

// newHost builds the handler of one component host.
func newHost(env *server.HostEnv) (server.Handler, error) {
	o := OptionsOf(env.Host)
	cfg := env.Config
	return &Host{
		name:   env.Host.Name,
		opts:   o,
		router: env.Router,
		log:    env.Log.With("component", env.Host.Name),
		srvLog: env.Log,
		isHost: func(d string) bool { _, ok := cfg.Host(d); return ok },
		guard:  newHandshakeGuard(handshakeLimitsOf(cfg)),
	}, nil
}

// listen opens [component] listen for the server's component hosts.
func listen(ctx context.Context, cfg *conf.Config, hosts map[string]server.Handler) (server.Listener, error) {
	byName := make(map[string]*Host, len(hosts))
	var log *slog.Logger
	for name, h := range hosts {
		byName[name] = h.(*Host)
		log = h.(*Host).srvLog
	}
	return newListener(ctx, cfg, byName, log)
}

// HostOf returns the handler of the component host name of s.
func HostOf(s *server.Server, name string) (*Host, bool) {
	h, ok := s.HostHandler(name)
	if !ok {
		return nil, false
	}
	c, ok := h.(*Host)
	return c, ok
}

package local

import (
	"net/url"

	"github.com/parley-im/parley/c2s"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/server"
)

// HostLocal is the name of the local host type: a domain with users,
// rosters, presence and storage. It is the type of a [[host]] that names
// none.
const HostLocal = "local"

// Registration modes, the values of [LocalOptions.Registration].
const (
	RegistrationClosed = c2s.RegistrationClosed
	RegistrationOpen   = c2s.RegistrationOpen
	RegistrationInvite = c2s.RegistrationInvite
)

// LocalOptions are the options of a local host, the keys of its [[host]]
// table besides name, type, tls_cert and tls_key.
type LocalOptions struct {
	// Registration is who may create accounts with in-band registration
	// (XEP-0077): "closed" (the default: only `parley user add`), "open"
	// (anyone who can reach the server) or "invite" (with a token from
	// `parley invite`).
	Registration string `toml:"registration"`
	// Contact lists the host's contact addresses (XEP-0157), shown to
	// clients in the server's service discovery.
	Contact Contact `toml:"contact"`
}

// Contact is a [host.contact] table: URIs (xmpp:, mailto:, https:) for
// each kind of contact of XEP-0157.
type Contact struct {
	Abuse    []string `toml:"abuse"`
	Admin    []string `toml:"admin"`
	Feedback []string `toml:"feedback"`
	Sales    []string `toml:"sales"`
	Security []string `toml:"security"`
	Support  []string `toml:"support"`
	Status   []string `toml:"status"`
}

// Fields returns the XEP-0157 form fields and their addresses, in the
// XEP's order, leaving out empty ones.
func (c Contact) Fields() [][2]any {
	var out [][2]any
	for _, f := range []struct {
		name string
		v    []string
	}{
		{"abuse-addresses", c.Abuse}, {"admin-addresses", c.Admin}, {"feedback-addresses", c.Feedback},
		{"sales-addresses", c.Sales}, {"security-addresses", c.Security}, {"status-addresses", c.Status},
		{"support-addresses", c.Support},
	} {
		if len(f.v) > 0 {
			out = append(out, [2]any{f.name, f.v})
		}
	}
	return out
}

// LocalOptionsOf returns the options of a local host, for a config built
// in Go: when h has none yet it gets new ones, which [conf.Config.Validate]
// fills in. It returns nil when h has another type's options.
func LocalOptionsOf(h *conf.Host) *LocalOptions {
	if h.Options == nil {
		h.Options = &LocalOptions{}
	}
	o, _ := h.Options.(*LocalOptions)
	return o
}

func init() {
	conf.RegisterHostType(HostLocal, conf.HostType[LocalOptions]{Check: checkLocal, Default: true})
	server.RegisterHostType(HostLocal, server.HostType{New: newLocalType, Metrics: writeMetrics})
}

// checkLocal checks a local host's options and fills in the registration
// mode.
func checkLocal(c *conf.HostCheck, o *LocalOptions) {
	switch o.Registration {
	case "":
		o.Registration = RegistrationClosed
	case RegistrationClosed, RegistrationOpen, RegistrationInvite:
	default:
		c.Errorf("registration", "%q is not a registration mode; use %q (only `parley user add`), "+
			"%q (anyone may register) or %q (with a token from `parley invite`)",
			o.Registration, RegistrationClosed, RegistrationOpen, RegistrationInvite)
	}
	for _, f := range o.Contact.Fields() {
		for _, a := range f[1].([]string) {
			if u, err := url.Parse(a); err != nil || u.Scheme == "" || u.Opaque == "" && u.Host == "" {
				c.Errorf("contact", "%q is not a URI; write addresses like \"xmpp:admin@example.com\", "+
					"\"mailto:abuse@example.com\" or \"https://example.com/support\"", a)
			}
		}
	}
}

// newLocalType builds a local host. Its disco#items lists the server's
// other hosts, those of other types (bot domains, and later rooms and
// upload services).
func newLocalType(env *server.HostEnv) (server.Handler, error) {
	h := env.Host
	var components []string
	for _, o := range env.Config.Hosts {
		if o.Type != HostLocal {
			components = append(components, o.Name)
		}
	}
	opts := LocalOptionsOf(h)
	lh := newLocalHost(h.Name, env.Router, env.Store, hostLimitsOf(env.Config.Limits), env.Log)
	lh.cfg, lh.opts = env.Config, opts
	lh.stored = storedLimits(env.Config.Limits)
	if contact := opts.Contact.Fields(); len(contact) > 0 {
		lh.server.forms = append(lh.server.forms, contactForm(contact))
	}
	lh.services, lh.started = components, env.Started
	lh.coreServices()
	if err := lh.startModules(); err != nil {
		return nil, err
	}
	lh.caps = capsElement(lh.serverInfo())
	return lh, nil
}

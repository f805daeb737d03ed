package local

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

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
	// ExternalServices are the STUN and TURN servers the host tells its
	// users of (XEP-0215), one [[host.external_service]] table each. With
	// none, the host does not offer urn:xmpp:extdisco:2 at all.
	ExternalServices []ExternalService `toml:"external_service"`
	// TURNSecret is the secret shared with the TURN server (coturn's
	// static-auth-secret, with use-auth-secret): turn and turns services
	// without a static password get time-limited credentials made with it.
	// It is never logged nor put in an error message.
	TURNSecret string `toml:"turn_secret"`
	// TURNTTL is how long those credentials are valid: 24h by default, as
	// Prosody's external_service_ttl.
	TURNTTL conf.Duration `toml:"turn_ttl"`
	// PushIncludeBody puts the sender and the body of the last message in
	// push notifications (XEP-0357) to the app servers users enable. Off
	// by default: those servers are the client vendors', and no body
	// leaves the server (Prosody's push_notification_with_body).
	PushIncludeBody bool `toml:"push_include_body"`
	// PushMaxPerMinute bounds the push notifications to one app server
	// registration in a minute (a phone whose connection flaps): 10 by
	// default; 0 sets no bound.
	PushMaxPerMinute int `toml:"push_max_per_minute"`
	// PushMaxDevices bounds the app server registrations one account
	// keeps: 5 by default, as Prosody's push_max_devices; enabling one
	// more drops the least recently enabled.
	PushMaxDevices int `toml:"push_max_devices"`

	// Archive says whether the host keeps its users' message archives
	// (XEP-0313): true by default, as ejabberd (Conversations catches up
	// through it). False: the archive module registers nothing on the
	// host, no hooks and no features. A config built in Go turns it off
	// with [LocalOptions.SetArchive]: false is also what a Go config that
	// leaves it out has, and it gets the default.
	Archive bool `toml:"archive"`
	// archiveOff remembers archive = false across checks (the file's
	// keys are known to the first only).
	archiveOff bool
	// ArchiveExpiresAfter is how long archived messages are kept: a
	// number and a unit (ms, s, m, h, d for days, w for weeks), "1w" by
	// default as Prosody's archive_expires_after, at least "1h"; "never"
	// keeps them forever. [LocalOptions.ArchiveRetention] reads it.
	ArchiveExpiresAfter string `toml:"archive_expires_after"`
	// ArchiveDefault is the archiving policy of users who set no
	// preferences (XEP-0313 §6): "always" (the default), "roster" (only
	// messages with contacts) or "never".
	ArchiveDefault string `toml:"archive_default"`
	// ArchiveMaxPage is the most messages one archive query returns: a
	// larger RSM max is clamped to it. 100 by default, at most 1000.
	ArchiveMaxPage int `toml:"archive_max_page"`
	// ArchiveSearch keeps a full-text index of archived message bodies
	// and offers full-text search in archive queries (XEP-0431). Off by
	// default: the index costs disk and write time, and keeps the words
	// of every message in a second, searchable place. Messages archived
	// while it is off are not indexed when it is turned on.
	ArchiveSearch bool `toml:"archive_search"`
}

// ArchiveNever is the value of archive_expires_after that keeps archived
// messages forever.
const ArchiveNever = "never"

// maxArchivePage is the most archive_max_page may be: storage's
// MaxArchivePage, the most one store query returns.
const maxArchivePage = 1000

// SetArchive sets the archive option of a config built in Go.
func (o *LocalOptions) SetArchive(on bool) { o.Archive, o.archiveOff = on, !on }

// ArchiveRetention returns how long archived messages are kept, 0 for
// forever; the options must have been checked.
func (o *LocalOptions) ArchiveRetention() time.Duration {
	d, _ := parseRetention(o.ArchiveExpiresAfter)
	return d
}

// ParseRetention reads a retention such as archive_expires_after: "never"
// (0), or a number and a unit (h, d, w, or Go's). Other host types with
// an archive (muc) read theirs with it, so that the keys mean the same.
func ParseRetention(v string) (time.Duration, error) { return parseRetention(v) }

// parseRetention reads archive_expires_after: "never" (0), or a number
// and a unit, Go's (like "36h") or d and w (like "30d", "1w"), which
// time.ParseDuration lacks.
func parseRetention(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == ArchiveNever {
		return 0, nil
	}
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"d", 24 * time.Hour}, {"w", 7 * 24 * time.Hour}} {
		if n, ok := strings.CutSuffix(v, u.suffix); ok && n != "" && strings.Trim(n, "0123456789") == "" {
			var k int64
			for _, c := range n {
				k = k*10 + int64(c-'0')
				if k > 100*365 {
					return 0, fmt.Errorf("%q is more than a century; write \"never\" to keep messages forever", v)
				}
			}
			return time.Duration(k) * u.unit, nil
		}
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration; write a number and a unit (h, d or w), like \"1w\", \"30d\" or \"36h\", or \"never\"", v)
	}
	return d, nil
}

// ExternalService is one [[host.external_service]] table: a service
// outside XMPP (XEP-0215), with the attributes of its <service/> element.
type ExternalService struct {
	// Type is "stun", "turn" or "turns".
	Type string `toml:"type"`
	// Host is the service's domain name or IP address. Required.
	Host string `toml:"host"`
	// Port defaults to 3478 (stun, turn) or 5349 (turns), RFC 5766 and
	// RFC 7065's.
	Port int `toml:"port"`
	// Transport is "udp" (the default for stun and turn) or "tcp" (the
	// default for turns).
	Transport string `toml:"transport"`
	// Name is a label for people, optional.
	Name string `toml:"name"`
	// Restricted says that the service needs credentials. It is implied
	// by a static password and by a TURN service using turn_secret.
	Restricted bool `toml:"restricted"`
	// Username and Password are static credentials, both or neither;
	// they win over turn_secret.
	Username string `toml:"username"`
	Password string `toml:"password"`
}

// Service types and transports of [ExternalService].
const (
	ServiceSTUN  = "stun"
	ServiceTURN  = "turn"
	ServiceTURNS = "turns"
)

// IsTURN reports whether the service is a TURN relay (turn or turns),
// which turn_secret makes credentials for.
func (s ExternalService) IsTURN() bool { return s.Type == ServiceTURN || s.Type == ServiceTURNS }

// minTURNSecret is the shortest turn_secret accepted: anyone who guesses
// it relays through the TURN server at will.
const minTURNSecret = 16

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
	checkExternalServices(c, o)
	switch {
	case o.PushMaxPerMinute == 0 && !c.IsSet("push_max_per_minute"):
		o.PushMaxPerMinute = 10
	case o.PushMaxPerMinute < 0:
		c.Errorf("push_max_per_minute", "%d is negative; use a count of notifications, or 0 for no bound (default 10)", o.PushMaxPerMinute)
	}
	switch {
	case o.PushMaxDevices == 0 && !c.IsSet("push_max_devices"):
		o.PushMaxDevices = 5
	case o.PushMaxDevices < 1:
		c.Errorf("push_max_devices", "%d is not a count of devices; use 1 or more (default 5)", o.PushMaxDevices)
	}
	checkArchive(c, o)
	for _, f := range o.Contact.Fields() {
		for _, a := range f[1].([]string) {
			if u, err := url.Parse(a); err != nil || u.Scheme == "" || u.Opaque == "" && u.Host == "" {
				c.Errorf("contact", "%q is not a URI; write addresses like \"xmpp:admin@example.com\", "+
					"\"mailto:abuse@example.com\" or \"https://example.com/support\"", a)
			}
		}
	}
}

// CheckArchiveExpiry checks archive_expires_after, *v, and fills in its
// default, "1w": for a local host's archives and a muc host's rooms'.
func CheckArchiveExpiry(c *conf.HostCheck, v *string) {
	if *v == "" && !c.IsSet("archive_expires_after") {
		*v = "1w"
	}
	switch d, err := parseRetention(*v); {
	case err != nil:
		c.Errorf("archive_expires_after", "%v", err)
	case *v != ArchiveNever && d < time.Hour:
		// Under an hour the archive no longer does its job for the
		// users it exists for: a phone that syncs when it wakes would
		// find its messages gone ("0s" read as "forever" would delete
		// everything at the next run). Prosody takes any period.
		c.Errorf("archive_expires_after", "%q is less than an hour; use \"1h\" or more, or \"never\" to keep messages forever", *v)
	}
}

// checkArchive checks the archive's options and fills in their defaults.
func checkArchive(c *conf.HostCheck, o *LocalOptions) {
	if c.IsSet("archive") {
		o.archiveOff = !o.Archive
	}
	o.Archive = !o.archiveOff
	CheckArchiveExpiry(c, &o.ArchiveExpiresAfter)
	switch o.ArchiveDefault {
	case "":
		o.ArchiveDefault = "always"
	case "always", "roster", "never":
	default:
		c.Errorf("archive_default", `%q is not an archiving policy; use "always", "roster" (only contacts) or "never"`, o.ArchiveDefault)
	}
	switch {
	case o.ArchiveMaxPage == 0 && !c.IsSet("archive_max_page"):
		o.ArchiveMaxPage = 100
	case o.ArchiveMaxPage < 1 || o.ArchiveMaxPage > maxArchivePage:
		c.Errorf("archive_max_page", "%d is not a page size; use 1 to %d (default 100)", o.ArchiveMaxPage, maxArchivePage)
	}
}

// checkExternalServices checks the XEP-0215 services and the TURN
// credentials' settings, and fills in their defaults. No message names
// the value of turn_secret or of a password.
func checkExternalServices(c *conf.HostCheck, o *LocalOptions) {
	switch {
	case o.TURNTTL.Duration == 0 && !c.IsSet("turn_ttl"):
		o.TURNTTL.Duration = 24 * time.Hour
	case o.TURNTTL.Duration < time.Minute:
		c.Errorf("turn_ttl", "%s is too short for a call to set up; use \"1m\" or more (default \"24h\")", o.TURNTTL.Duration)
	}
	turns := 0
	for i := range o.ExternalServices {
		s := &o.ExternalServices[i]
		key := func(k string) string { return conf.JoinKey(conf.IndexKey("external_service", i), k) }
		switch s.Type {
		case ServiceSTUN, ServiceTURN:
			if s.Port == 0 {
				s.Port = 3478
			}
			if s.Transport == "" {
				s.Transport = "udp"
			}
		case ServiceTURNS:
			if s.Port == 0 {
				s.Port = 5349
			}
			if s.Transport == "" {
				s.Transport = "tcp"
			}
		case "":
			c.Errorf(key("type"), `an external service needs a type: "stun", "turn" or "turns"`)
		default:
			c.Errorf(key("type"), `%q is not a service type; use "stun", "turn" or "turns"`, s.Type)
		}
		if s.IsTURN() {
			turns++
		}
		if !validServiceHost(s.Host) {
			if s.Host == "" {
				c.Errorf(key("host"), "an external service needs a host: a domain name or an IP address")
			} else {
				c.Errorf(key("host"), "%q is not a domain name or an IP address (no port or scheme: port is a key of its own)", s.Host)
			}
		}
		if s.Port < 1 || s.Port > 65535 {
			c.Errorf(key("port"), "%d is not a port; use 1 to 65535", s.Port)
		}
		if s.Transport != "udp" && s.Transport != "tcp" {
			c.Errorf(key("transport"), `%q is not a transport; use "udp" or "tcp"`, s.Transport)
		}
		if (s.Username == "") != (s.Password == "") {
			c.Errorf(key("username"), "username and password go together: set both for static credentials, or neither")
		}
		if s.Restricted && s.Password == "" && !(s.IsTURN() && o.TURNSecret != "") {
			c.Errorf(key("restricted"), "a restricted service needs credentials: set username and password, "+
				"or turn_secret for a turn or turns service")
		}
	}
	if o.TURNSecret != "" {
		// A short secret lets anyone who saw one credential (any user,
		// or the network) guess the HMAC key and relay through the
		// TURN server at the operator's cost; coturn's docs ask for a
		// long random one.
		if n := len(o.TURNSecret); n < minTURNSecret {
			c.Errorf("turn_secret", "the secret is %d characters long; use %d or more random ones, "+
				"like the output of `openssl rand -hex 32`", n, minTURNSecret)
		}
		// Harmless in itself, but a secret nobody uses means the TURN
		// service the operator meant to offer is not listed: calls
		// behind NAT fail with nothing in the logs.
		if turns == 0 {
			c.Errorf("turn_secret", `no [[host.external_service]] has type "turn" or "turns" to use it`)
		}
	}
}

// validServiceHost reports whether h is an IP address or a domain name of
// letters, digits, hyphens and dots.
func validServiceHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	if h == "" || len(h) > 253 || strings.HasPrefix(h, ".") || strings.Contains(h, "..") {
		return false
	}
	return strings.Trim(strings.ToLower(h), "abcdefghijklmnopqrstuvwxyz0123456789-.") == ""
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

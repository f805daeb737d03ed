package conf

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/parley-im/parley/c2s"
	"github.com/parley-im/parley/c2s/sasl"
	"github.com/parley-im/parley/xmpp"
	"golang.org/x/net/http/httpguts"
)

// Validate checks c, reporting every problem at once as [Errors], and fills
// in the defaults of what c leaves zero where zero is not a valid setting:
// an empty DataDir or LogLevel, zero limits, a host's Type, and its
// Options (new ones when they are nil), as its type's check does. It
// lowercases host names. Zero values that are valid settings (RequireTLS,
// AllowPlain, IdleTimeout, ParkAfter, Rate) are kept, so a config built in Go
// should start from [New]. Errors carry no line: the config has no file.
//
// Validate is safe to call again on a config it has already checked.
func (c *Config) Validate() error {
	ch := &checker{file: c.File}
	ch.config(c)
	if len(ch.errs) == 0 {
		return nil
	}
	ch.errs.sort()
	return ch.errs
}

var logLevels = []string{"debug", "info", "warn", "error"}

func (ch *checker) config(c *Config) {
	if c.DataDir == "" {
		if ch.isSet("data_dir") {
			ch.errorf("data_dir", `must not be empty; leave it out for "data", or name a directory`)
		} else {
			c.DataDir = defaultDataDir
		}
	}
	if c.LogLevel == "" && !ch.isSet("log_level") {
		c.LogLevel = defaultLogLevel
	}
	if !slices.Contains(logLevels, c.LogLevel) {
		ch.errorf("log_level", "%q is not a log level; use debug, info, warn or error", c.LogLevel)
	}

	addrs := map[string]string{}
	ch.listen("c2s.listen", c.C2S.Listen, addrs)
	ch.listen("c2s.direct_tls", c.C2S.DirectTLS, addrs)
	ch.listen("s2s.listen", c.S2S.Listen, addrs)
	ch.listen("s2s.direct_tls", c.S2S.DirectTLS, addrs)
	ch.listen("http.listen", c.HTTP.Listen, addrs)
	if c.Component.Listen == nil && !ch.isSet("component.listen") {
		c.Component.Listen = []string{defaultComponentListen}
	}
	ch.listen("component.listen", c.Component.Listen, addrs)
	if c.C2S.IdleTimeout.Duration < 0 {
		ch.errorf("c2s.idle_timeout", `%v is negative; use a duration like "5m", or "0s" to never time out`,
			c.C2S.IdleTimeout.Duration)
	}
	if c.C2S.ParkAfter.Duration < 0 {
		ch.errorf("c2s.park_after", `%v is negative; use a duration like "10s", or "0s" to keep every stream's goroutine`,
			c.C2S.ParkAfter.Duration)
	}
	if c.C2S.ResumeTimeout.Duration < 0 {
		ch.errorf("c2s.resume_timeout", `%v is negative; use a duration like "5m", or "0s" to turn stream resumption off`,
			c.C2S.ResumeTimeout.Duration)
	}

	if l := c.C2S.ResumeLocation; l != "" {
		host, port, err := net.SplitHostPort(l)
		if err != nil {
			// A host alone (a bracketed IPv6 address needs a port).
			host, port, err = l, "", nil
		}
		if n, perr := strconv.Atoi(port); host == "" || strings.ContainsAny(host, " /[]@") || (port != "" && (perr != nil || n < 1 || n > 65535)) {
			// Sent to every client in <enabled/>: a location it
			// cannot connect to turns each resume into a failed
			// reconnect and a full login.
			ch.errorf("c2s.resume_location", "%q is not a host or host:port; write it like \"xmpp2.example.com:5222\"", l)
		}
	}

	ch.http(&c.HTTP)
	ch.limits(&c.Limits)
	ch.s2s(c)

	atLeast(ch, "auth.scram_iterations", &c.Auth.SCRAMIterations, sasl.DefaultIterations, 4096,
		"RFC 7677 asks for at least 4096")
	switch c.Auth.ChannelBinding {
	case "":
		c.Auth.ChannelBinding = ChannelBindingCompatible
	case ChannelBindingCompatible, ChannelBindingStrict:
	default:
		ch.errorf("auth.channel_binding", `%q is not a channel binding policy; use "compatible" (every client logs in) `+
			`or "strict" (SCRAM-*-PLUS offered, downgrades refused)`, c.Auth.ChannelBinding)
	}

	switch d := c.Auth.FastTokenLifetime.Duration; {
	case d == 0:
		c.Auth.FastTokenLifetime.Duration = c2s.DefaultTokenTTL
	case d < time.Minute:
		ch.errorf("auth.fast_token_lifetime", `%v is too short for a client to use its token; use a duration of at least "1m" (default "720h")`, d)
	}

	ch.hosts(c)
}

// listen checks listener addresses; seen maps each address already used to
// the path that uses it.
func (ch *checker) listen(path string, list []string, seen map[string]string) {
	for i, a := range list {
		p := indexPath(path, i)
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			ch.errorf(p, `%q is not host:port; write "[::]:5222" for every address, `+
				`"127.0.0.1:5222" or "[::1]:5222" for one, or ":5222"`, a)
			continue
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 0 || n > 65535 {
			ch.errorf(p, "%q: the port must be a number from 0 to 65535", a)
			continue
		}
		if strings.ContainsAny(host, " /") {
			ch.errorf(p, "%q: %q is not a host name or IP address", a, host)
			continue
		}
		if n == 0 {
			continue // a free port, different each time
		}
		if other, ok := seen[a]; ok {
			ch.errorf(p, "%q is already used by %s; give each listener its own address", a, other)
			continue
		}
		seen[a] = p
	}
}

// atLeast fills in def when v is zero and the file does not set it, and
// otherwise reports a v below least.
func atLeast[T ~int | ~int64](ch *checker, path string, v *T, def, least T, why string) {
	if *v == 0 && !ch.isSet(path) {
		*v = def
		return
	}
	if *v < least {
		ch.errorf(path, "%v is too low; use at least %v (%s)", *v, least, why)
	}
}

func (ch *checker) limits(l *Limits) {
	atLeast(ch, "limits.stanza_size", &l.StanzaSize, xmpp.DefaultMaxStanza, 10000,
		"RFC 6120 §13.12 requires servers to accept stanzas of 10000 bytes")
	atLeast(ch, "limits.s2s_stanza_size", &l.S2SStanzaSize, defaultS2SStanzaSize, 10000,
		"RFC 6120 §13.12 requires servers to accept stanzas of 10000 bytes")
	atLeast(ch, "limits.max_depth", &l.MaxDepth, xmpp.DefaultMaxDepth, 8,
		"common extensions nest elements that deep")
	atLeast(ch, "limits.max_attributes", &l.MaxAttributes, xmpp.DefaultMaxAttrs, 8,
		"common extensions use that many on one element")
	atLeast(ch, "limits.queue", &l.Queue, c2s.DefaultQueue, 1, "a session needs room for one stanza")
	atLeast(ch, "limits.queue_bytes", &l.QueueBytes, c2s.DefaultQueueBytes, 64*KiB, "a session needs room for a few stanzas")
	atLeast(ch, "limits.auth_failures", &l.AuthFailures, c2s.DefaultAuthFailures, 1,
		"a client needs one attempt")
	atLeast(ch, "limits.login_backoff_after", &l.LoginBackoffAfter, c2s.DefaultBackoffAfter, 1,
		"a user who mistypes needs an attempt or two")
	atLeast(ch, "limits.login_spray_accounts", &l.LoginSprayAccounts, c2s.DefaultSprayAccounts, 1,
		"count at least one account")
	atLeast(ch, "limits.login_account_failures", &l.LoginAccountFailures, c2s.DefaultAccountFailures, 1,
		"count at least one failure")
	atLeast(ch, "limits.registrations_per_ip", &l.RegistrationsPerIP, c2s.DefaultRegistrationsPerIP, 1,
		"a user needs one attempt")
	atLeast(ch, "limits.unauthenticated_per_ip", &l.UnauthenticatedPerIP, c2s.DefaultUnauthenticatedPerIP, 1,
		"a client needs one connection to log in")
	if !ch.isSet("limits.login_backoff_max") && (ch.fromFile() || l.LoginBackoffMax.Duration == 0) {
		l.LoginBackoffMax.Duration = c2s.DefaultBackoffMax
	}
	if d := l.LoginBackoffMax.Duration; d < 0 || d > maxBackoffMax {
		ch.errorf("limits.login_backoff_max", `%v is out of range; use a duration from "1s" to %q, or "0s" never to hold a login's answer `+
			"(a longer wait would outlast the stream's %v handshake timeout)", d, maxBackoffMax.String(), c2s.DefaultHandshakeTimeout)
	}
	if !ch.isSet("limits.login_window") && (ch.fromFile() || l.LoginWindow.Duration == 0) {
		l.LoginWindow.Duration = c2s.DefaultLoginWindow
	}
	if l.LoginWindow.Duration <= 0 {
		ch.errorf("limits.login_window", `%v is not a time to count failures over; use a duration like "15m"`, l.LoginWindow.Duration)
	}
	atLeast(ch, "limits.roster_size", &l.RosterSize, defaultRosterSize, 1, "a user needs room for one contact")
	atLeast(ch, "limits.offline_messages", &l.OfflineMessages, defaultOffline, 1,
		"a user needs room for one message")
	atLeast(ch, "limits.offline_bytes", &l.OfflineBytes, defaultOfflineBytes, 10000,
		"a user needs room for one stanza of the size every server must accept")
	atLeast(ch, "limits.sessions_per_account", &l.SessionsPerAccount, defaultSessionsPer, 1,
		"a user needs one session")
	atLeast(ch, "limits.private_storage_bytes", &l.PrivateStorageBytes, defaultPrivateBytes, 10000,
		"clients keep bookmarks and settings there")
	atLeast(ch, "limits.roster_changes_per_minute", &l.RosterChangesPerMinute, defaultRosterRate, 1,
		"a user needs to change a contact now and then")
	if l.Rate < 0 {
		ch.errorf("limits.rate", "%d is negative; use a size like \"1MiB\", or 0 for no limit", l.Rate)
	}
	largest := max(l.StanzaSize, l.S2SStanzaSize)
	if !ch.isSet("limits.burst") && (ch.fromFile() || l.Burst == 0) {
		l.Burst = max(defaultBurst, largest)
	}
	if l.Rate > 0 && l.Burst < largest {
		name := "stanza_size"
		if l.S2SStanzaSize > l.StanzaSize {
			name = "s2s_stanza_size"
		}
		ch.errorf("limits.burst", "%v is less than %s (%v); a connection must be able to send its "+
			"largest stanza at once, so use at least %v, or leave burst out", l.Burst, name, largest, largest)
	}
}

func (ch *checker) http(h *HTTP) {
	atLeast(ch, "http.token_failures", &h.TokenFailures, defaultTokenFailures, 1,
		"a user who mistypes a token needs an attempt")
	if !ch.isSet("http.read_timeout") && (ch.fromFile() || h.ReadTimeout.Duration == 0) {
		h.ReadTimeout.Duration = defaultHTTPRead
	}
	if h.ReadTimeout.Duration < time.Second {
		ch.errorf("http.read_timeout", `%v is too short; use a duration of at least "1s", like "30s": `+
			`a request's headers and body must arrive within it`, h.ReadTimeout.Duration)
	}
	if u := h.WebSocketURL; u != "" {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "ws" && p.Scheme != "wss") || p.Host == "" {
			ch.errorf("http.websocket_url", "%q is not a ws:// or wss:// URL, like \"wss://chat.example.com/xmpp-websocket\"", u)
		}
	}
	for _, o := range h.WebSocketOrigins {
		if _, err := path.Match(o, ""); err != nil || o == "" {
			ch.errorf("http.websocket_origins", "%q is not a host pattern, like \"chat.example.com\" or \"*.example.com\"", o)
		}
	}
	if strings.ContainsAny(h.MetricsToken, " \t") || !httpguts.ValidHeaderFieldValue(h.MetricsToken) {
		ch.errorf("http.metrics_token", "the token must be one word without spaces or control characters, "+
			"since clients send it as Authorization: Bearer <token>")
	}
}

func (ch *checker) hosts(c *Config) {
	if len(c.Hosts) == 0 {
		ch.errorf("host", `no host is configured; add a [[host]] table with name = "example.com", `+
			`the domain this server serves`)
		return
	}
	names := map[string]int{}
	for i := range c.Hosts {
		ch.host(i, &c.Hosts[i], names)
	}
}

func (ch *checker) host(i int, h *Host, names map[string]int) {
	p := indexPath("host", i)
	label := p
	if h.Name != "" {
		label = fmt.Sprintf("%s (%s)", p, h.Name)
	}

	switch {
	case h.Name == "":
		ch.report(p+".name", label, `name is required: the domain this host serves, like name = "example.com"`)
	case !isDomain(h.Name):
		ch.errorf(p+".name", "%q is not a domain name; use letters, digits and hyphens in labels "+
			`separated by dots, like "chat.example.com"`, h.Name)
	default:
		h.Name = strings.ToLower(h.Name)
		if j, ok := names[h.Name]; ok {
			ch.errorf(p+".name", "%q is already the name of host[%d]%s; each [[host]] needs its own name",
				h.Name, j, ch.lineNote(indexPath("host", j)+".name"))
		} else {
			names[h.Name] = i
		}
	}

	t := ch.hostType(p, h)
	if t == nil {
		return // the checks below depend on the type
	}

	if (h.TLSCert == "") != (h.TLSKey == "") {
		have, lacks := "tls_cert", "tls_key"
		if h.TLSCert == "" {
			have, lacks = lacks, have
		}
		ch.errorf(p+"."+have, "%s is missing; give both tls_cert and tls_key, or neither for a "+
			"self-signed pair in data_dir", lacks)
	}

	if h.Options != nil && ownerOf(h.Options) != t {
		// Only a config built in Go gets here: a file's host table is
		// decoded into its own type's options.
		if ch.foreignOptions(p, h) {
			return
		}
		h.Options = nil
	}
	if h.Options == nil {
		h.Options = reflect.New(t.opts).Interface()
	}
	if t.check != nil {
		t.check(&HostCheck{ch: ch, path: p, label: label, Host: h}, h.Options)
	}
}

// hostType sets the type of h when it names none and returns it, or
// reports the type as unknown and returns nil.
func (ch *checker) hostType(p string, h *Host) *hostType {
	if h.Type == "" && !ch.isSet(p+".type") {
		if d := defaultHostType(); d != nil {
			h.Type = d.name
		}
	}
	if t := lookupHostType(h.Type); t != nil {
		return t
	}
	names := HostTypes()
	msg := fmt.Sprintf("%q is not a host type; use one of %s", h.Type, strings.Join(names, ", "))
	if len(names) == 0 {
		msg = fmt.Sprintf("%q is not a host type; this program registers none "+
			"(its main package imports no host type)", h.Type)
	} else if best := closest(h.Type, names); best != "" {
		msg += "; did you mean " + best + "?"
	}
	ch.errorf(p+".type", "%s", msg)
	return nil
}

// foreignOptions reports the keys set in the options of a host built in
// Go whose options are another type's, and whether it found any: options
// with nothing set (a typed accessor's zero value) are only replaced.
func (ch *checker) foreignOptions(p string, h *Host) bool {
	rv := reflect.ValueOf(h.Options)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		ch.errorf(p, "options of type %T are no host type's; a host of type %q takes %v", h.Options, h.Type,
			reflect.PointerTo(lookupHostType(h.Type).opts))
		return true
	}
	v := rv.Elem()
	set := false
	for i := range v.NumField() {
		k := tomlKey(v.Type().Field(i))
		if k == "" || k == "-" || v.Field(i).IsZero() {
			continue
		}
		set = true
		ch.errorf(p+"."+k, "%s", onlyFor(k, h.Type))
	}
	return set
}

// onlyFor says which types a key of another host type belongs to.
func onlyFor(key, typ string) string {
	types := typesWithKey(key)
	quoted := make([]string, len(types))
	for j, t := range types {
		quoted[j] = strconv.Quote(t)
	}
	return fmt.Sprintf("only for type = %s; this host has type = %q", orList(quoted), typ)
}

// lineNote returns " (line N)" for the line of path, when there is one.
func (ch *checker) lineNote(path string) string {
	if ch.x == nil {
		return ""
	}
	if l := ch.x.line(path); l > 0 {
		return fmt.Sprintf(" (line %d)", l)
	}
	return ""
}

// isDomain reports whether s is a domain name: labels of letters, digits
// and hyphens, separated by dots. Letters may be upper case and need not be
// ASCII; the xmpp package applies IDNA and PRECIS.
func isDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if r != '-' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
				return false
			}
		}
	}
	return true
}

// isBareJID reports whether s is local@domain, with a localpart free of the
// characters RFC 7622 forbids there and no resource.
func isBareJID(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && len(local) <= 1023 &&
		!strings.ContainsAny(local, "\"&'/:<>@ \t") && isDomain(domain)
}

// s2s checks the [s2s] table. Remote domains are compared in lower case,
// as JIDs' domains are, so they are stored that way.
func (ch *checker) s2s(c *Config) {
	s := &c.S2S
	for _, d := range []struct {
		key string
		v   *Duration
	}{{"s2s.connect_timeout", &s.ConnectTimeout}, {"s2s.idle_timeout", &s.IdleTimeout}, {"s2s.ping_interval", &s.PingInterval}} {
		if d.v.Duration < 0 {
			ch.errorf(d.key, `%v is negative; use a duration like "30s"`, d.v.Duration)
		}
	}
	if s.ConnectTimeout.Duration == 0 && !ch.isSet("s2s.connect_timeout") {
		s.ConnectTimeout.Duration = defaultS2SConnect
	} else if s.ConnectTimeout.Duration == 0 {
		// Stanzas for an unreachable server would wait forever.
		ch.errorf("s2s.connect_timeout", `must be more than 0s: what waits for a remote server that never answers bounces after it; default "30s"`)
	}
	// A Config built in Go, not read from a file, may leave this zero:
	// the default. (Zero ping_interval and rate mean off.)
	if s.MaxStreamsPerDomain == 0 && !ch.isSet("s2s.max_streams_per_domain") {
		s.MaxStreamsPerDomain = defaultS2SPerDomain
	}
	if s.MaxStreamsPerDomain < 1 {
		ch.errorf("s2s.max_streams_per_domain", "%d: a remote domain needs at least one stream (and one more for each dialback verification); default %d", s.MaxStreamsPerDomain, defaultS2SPerDomain)
	}
	if s.Rate < 0 {
		ch.errorf("s2s.rate", `is negative; use a size like "10MiB", or 0 for no limit`)
	}
	local := map[string]bool{}
	for _, h := range c.Hosts {
		local[strings.ToLower(h.Name)] = true
	}
	routes := make(map[string]string, len(s.StaticRoutes))
	for dom, addr := range s.StaticRoutes {
		p := joinPath("s2s.static_routes", dom)
		d := strings.ToLower(dom)
		if !remoteDomain(d) {
			ch.errorf(p, "%q is not a domain name", dom)
			continue
		}
		if local[d] {
			ch.errorf(p, "%q is a [[host]] of this server; a static route is for a remote domain", dom)
			continue
		}
		// "tls://host:port" is a direct TLS route (XEP-0368), for a
		// peer whose _xmpps-server record the resolver cannot give.
		hostPort, _ := strings.CutPrefix(addr, DirectTLSRoute)
		host, port, err := net.SplitHostPort(hostPort)
		n, perr := strconv.Atoi(port)
		if err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			ch.errorf(p, `%q is not host:port; write it like "xmpp.example.net:5269" or "10.0.0.7:5269", or "tls://10.0.0.7:5270" for direct TLS`, addr)
			continue
		}
		routes[d] = addr
	}
	if s.StaticRoutes != nil {
		s.StaticRoutes = routes
	}
	for _, l := range []struct {
		key  string
		list []string
	}{{"s2s.allow", s.Allow}, {"s2s.deny", s.Deny}} {
		for i, d := range l.list {
			if !remoteDomain(strings.ToLower(d)) {
				ch.errorf(indexPath(l.key, i), "%q is not a domain name", d)
				continue
			}
			l.list[i] = strings.ToLower(d)
		}
	}
	if s.CAFile != "" {
		if _, err := os.Stat(s.CAFile); err != nil {
			ch.errorf("s2s.ca_file", "%v", err)
		}
	}
}

// remoteDomain reports whether d can be the domain of a remote server:
// a host name, without a port, a path or a trailing dot.
func remoteDomain(d string) bool {
	return d != "" && len(d) <= 253 && !strings.ContainsAny(d, " /:@\\\x00") &&
		!strings.HasPrefix(d, ".") && !strings.HasSuffix(d, ".") && !strings.Contains(d, "..")
}

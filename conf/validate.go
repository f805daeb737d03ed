package conf

import (
	"encoding/base64"
	"fmt"
	"golang.org/x/net/http/httpguts"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Validate checks c, reporting every problem at once as [Errors], and fills
// in the defaults of what c leaves zero where zero is not a valid setting:
// an empty DataDir or LogLevel, zero limits, a host's Type, and the
// PostStanzas, Timeout, Concurrency, Queue, QueueBytes, SenderQueue and
// SenderQueueBytes of an http_component host. It
// lowercases host names. Zero values that are valid settings (RequireTLS,
// AllowPlain, IdleTimeout, ParkAfter, Rate, Retries) are kept, so a config built in Go
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
	ch.listen("http.listen", c.HTTP.Listen, addrs)
	if c.C2S.IdleTimeout.Duration < 0 {
		ch.errorf("c2s.idle_timeout", `%v is negative; use a duration like "5m", or "0s" to never time out`,
			c.C2S.IdleTimeout.Duration)
	}
	if c.C2S.ParkAfter.Duration < 0 {
		ch.errorf("c2s.park_after", `%v is negative; use a duration like "10s", or "0s" to keep every stream's goroutine`,
			c.C2S.ParkAfter.Duration)
	}

	ch.http(&c.HTTP)
	ch.limits(&c.Limits)

	atLeast(ch, "auth.scram_iterations", &c.Auth.SCRAMIterations, defaultSCRAMIter, 4096,
		"RFC 7677 asks for at least 4096")
	switch c.Auth.ChannelBinding {
	case "":
		c.Auth.ChannelBinding = ChannelBindingCompatible
	case ChannelBindingCompatible, ChannelBindingStrict:
	default:
		ch.errorf("auth.channel_binding", `%q is not a channel binding policy; use "compatible" (every client logs in) `+
			`or "strict" (SCRAM-*-PLUS offered, downgrades refused)`, c.Auth.ChannelBinding)
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
	atLeast(ch, "limits.stanza_size", &l.StanzaSize, defaultStanzaSize, 10000,
		"RFC 6120 §13.12 requires servers to accept stanzas of 10000 bytes")
	atLeast(ch, "limits.s2s_stanza_size", &l.S2SStanzaSize, defaultS2SStanzaSize, 10000,
		"RFC 6120 §13.12 requires servers to accept stanzas of 10000 bytes")
	atLeast(ch, "limits.max_depth", &l.MaxDepth, defaultMaxDepth, 8,
		"common extensions nest elements that deep")
	atLeast(ch, "limits.max_attributes", &l.MaxAttributes, defaultMaxAttributes, 8,
		"common extensions use that many on one element")
	atLeast(ch, "limits.queue", &l.Queue, defaultQueue, 1, "a session needs room for one stanza")
	atLeast(ch, "limits.queue_bytes", &l.QueueBytes, defaultQueueBytes, 64*KiB, "a session needs room for a few stanzas")
	atLeast(ch, "limits.auth_failures", &l.AuthFailures, defaultAuthFailures, 1,
		"a client needs one attempt")
	atLeast(ch, "limits.login_backoff_after", &l.LoginBackoffAfter, defaultBackoffAfter, 1,
		"a user who mistypes needs an attempt or two")
	atLeast(ch, "limits.login_spray_accounts", &l.LoginSprayAccounts, defaultSprayAccounts, 1,
		"count at least one account")
	atLeast(ch, "limits.login_account_failures", &l.LoginAccountFailures, defaultAccountFails, 1,
		"count at least one failure")
	atLeast(ch, "limits.registrations_per_ip", &l.RegistrationsPerIP, defaultRegsPerIP, 1,
		"a user needs one attempt")
	atLeast(ch, "limits.unauthenticated_per_ip", &l.UnauthenticatedPerIP, defaultUnauthPerIP, 1,
		"a client needs one connection to log in")
	if !ch.isSet("limits.login_backoff_max") && (ch.fromFile() || l.LoginBackoffMax.Duration == 0) {
		l.LoginBackoffMax.Duration = defaultBackoffMax
	}
	if d := l.LoginBackoffMax.Duration; d < 0 || d > maxBackoffMax {
		ch.errorf("limits.login_backoff_max", `%v is out of range; use a duration from "1s" to %q, or "0s" never to hold a login's answer `+
			"(a longer wait would outlast the stream's 30s handshake timeout)", d, maxBackoffMax.String())
	}
	if !ch.isSet("limits.login_window") && (ch.fromFile() || l.LoginWindow.Duration == 0) {
		l.LoginWindow.Duration = defaultLoginWindow
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
	if strings.ContainsAny(h.MetricsToken, " \t") || !httpguts.ValidHeaderFieldValue(h.MetricsToken) {
		ch.errorf("http.metrics_token", "the token must be one word without spaces or control characters, "+
			"since clients send it as Authorization: Bearer <token>")
	}
}

// hostKey is a key of [[host]] that only some host types have.
type hostKey struct {
	key   string
	set   func(h *Host) bool // whether a config built in Go sets it
	types []string
}

var hostKeys = []hostKey{
	{"post_url", func(h *Host) bool { return h.PostURL != "" }, []string{HostHTTPComponent}},
	{"post_stanzas", func(h *Host) bool { return len(h.PostStanzas) > 0 }, []string{HostHTTPComponent}},
	{"secret", func(h *Host) bool { return h.Secret != "" }, []string{HostHTTPComponent, HostComponent}},
	{"timeout", func(h *Host) bool { return h.Timeout.Duration != 0 }, []string{HostHTTPComponent}},
	{"concurrency", func(h *Host) bool { return h.Concurrency != 0 }, []string{HostHTTPComponent}},
	{"queue", func(h *Host) bool { return h.Queue != 0 }, []string{HostHTTPComponent}},
	{"queue_bytes", func(h *Host) bool { return h.QueueBytes != 0 }, []string{HostHTTPComponent}},
	{"sender_queue", func(h *Host) bool { return h.SenderQueue != 0 }, []string{HostHTTPComponent}},
	{"sender_queue_bytes", func(h *Host) bool { return h.SenderQueueBytes != 0 }, []string{HostHTTPComponent}},
	{"follow_redirects", func(h *Host) bool { return h.FollowRedirects }, []string{HostHTTPComponent}},
	{"retries", func(h *Host) bool { return h.Retries != 0 }, []string{HostHTTPComponent}},
	{"headers", func(h *Host) bool { return len(h.Headers) > 0 }, []string{HostHTTPComponent}},
	{"rooms", func(h *Host) bool { return len(h.Rooms) > 0 }, []string{HostHTTPComponent}},
	{"api_token", func(h *Host) bool { return h.APIToken != "" }, []string{HostHTTPComponent}},
	{"api_rate", func(h *Host) bool { return h.APIRate != 0 }, []string{HostHTTPComponent}},
	{"api_burst", func(h *Host) bool { return h.APIBurst != 0 }, []string{HostHTTPComponent}},
	{"registration", func(h *Host) bool { return h.Registration != "" }, []string{HostLocal}},
	{"contact", func(h *Host) bool { return len(h.Contact.Fields()) > 0 }, []string{HostLocal}},
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
	missing := func(key, msg string) {
		ch.report(joinPath(p, key), label, msg)
	}

	switch {
	case h.Name == "":
		missing("name", `name is required: the domain this host serves, like name = "example.com"`)
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

	if h.Type == "" && !ch.isSet(p+".type") {
		h.Type = HostLocal
	}
	if !slices.Contains(hostTypes, h.Type) {
		msg := fmt.Sprintf("%q is not a host type; use one of %s", h.Type, strings.Join(hostTypes, ", "))
		if best := closest(h.Type, hostTypes); best != "" {
			msg += "; did you mean " + best + "?"
		}
		ch.errorf(p+".type", "%s", msg)
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

	for _, k := range hostKeys {
		given := k.set(h)
		if ch.fromFile() {
			given = ch.isSet(p + "." + k.key)
		}
		if given && !slices.Contains(k.types, h.Type) {
			quoted := make([]string, len(k.types))
			for j, t := range k.types {
				quoted[j] = strconv.Quote(t)
			}
			ch.errorf(p+"."+k.key, "only for type = %s; this host has type = %q", orList(quoted), h.Type)
		}
	}

	switch h.Type {
	case HostLocal:
		switch h.Registration {
		case "":
			h.Registration = RegistrationClosed
		case RegistrationClosed, RegistrationOpen, RegistrationInvite:
		default:
			ch.errorf(p+".registration", "%q is not a registration mode; use %q (only `parley user add`), "+
				"%q (anyone may register) or %q (with a token from `parley invite`)",
				h.Registration, RegistrationClosed, RegistrationOpen, RegistrationInvite)
		}
		for _, f := range h.Contact.Fields() {
			for _, a := range f[1].([]string) {
				if u, err := url.Parse(a); err != nil || u.Scheme == "" || u.Opaque == "" && u.Host == "" {
					ch.errorf(p+".contact", "%q is not a URI; write addresses like \"xmpp:admin@example.com\", "+
						"\"mailto:abuse@example.com\" or \"https://example.com/support\"", a)
				}
			}
		}
	case HostHTTPComponent:
		ch.httpComponent(p, h, missing)
	case HostComponent:
		if h.Secret == "" {
			missing("secret", `secret is required for type = "component": the password the component connects with`)
		}
	}
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

var stanzaKinds = []string{"message", "presence", "iq"}

// reservedHeaders are set by the http component itself.
var reservedHeaders = []string{"content-type", "content-length", "host",
	"transfer-encoding", "trailer", "user-agent",
	"webhook-id", "webhook-timestamp", "webhook-signature"}

// botQueueShares checks an http_component's queue_bytes, sender_queue and
// sender_queue_bytes, and fills in their defaults: 16 MiB, max(queue/8, 4)
// and queue_bytes/8, each at most the whole queue.
func (ch *checker) botQueueShares(p string, h *Host) {
	atLeast(ch, p+".queue_bytes", &h.QueueBytes, defaultHostQueueSize, 64*KiB,
		"the queue needs room for a few stanzas")
	if h.SenderQueue == 0 && !ch.isSet(p+".sender_queue") {
		h.SenderQueue = min(max(h.Queue/8, 4), max(h.Queue, 1))
	}
	switch {
	case h.SenderQueue < 1:
		ch.errorf(p+".sender_queue", "%d is too low; use at least 1 waiting stanza per sender", h.SenderQueue)
	case h.Queue >= 1 && h.SenderQueue > h.Queue:
		ch.errorf(p+".sender_queue", "%d is more than queue (%d); a sender's share is at most the whole queue, "+
			"so use at most %d, or leave sender_queue out for %d", h.SenderQueue, h.Queue, h.Queue, min(max(h.Queue/8, 4), h.Queue))
	}
	if h.SenderQueueBytes == 0 && !ch.isSet(p+".sender_queue_bytes") {
		h.SenderQueueBytes = max(h.QueueBytes/8, KiB)
	}
	switch {
	case h.SenderQueueBytes < KiB:
		ch.errorf(p+".sender_queue_bytes", "%v is too low; use at least 1KiB per sender", h.SenderQueueBytes)
	case h.QueueBytes >= 64*KiB && h.SenderQueueBytes > h.QueueBytes:
		ch.errorf(p+".sender_queue_bytes", "%v is more than queue_bytes (%v); a sender's share is at most the whole queue, "+
			"so use at most %v, or leave sender_queue_bytes out for %v", h.SenderQueueBytes, h.QueueBytes, h.QueueBytes, h.QueueBytes/8)
	}
}

func (ch *checker) httpComponent(p string, h *Host, missing func(key, msg string)) {
	if h.PostURL == "" {
		missing("post_url", `post_url is required for type = "http_component"; `+
			`write the webhook's URL, like post_url = "https://hooks.example.com/xmpp"`)
	} else if u, err := url.Parse(h.PostURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		ch.errorf(p+".post_url", `%q is not an absolute http or https URL; write it like "https://hooks.example.com/xmpp"`,
			h.PostURL)
	}

	if rest, ok := strings.CutPrefix(h.Secret, "whsec_"); ok {
		// A Standard Webhooks secret: the key is the base64 after the prefix.
		if k, err := base64.StdEncoding.DecodeString(rest); err != nil || len(k) == 0 {
			ch.errorf(p+".secret", "a secret starting with whsec_ is base64 of the signing key after the prefix, "+
				"and this one does not decode to a key; generate one with: echo whsec_$(head -c 24 /dev/urandom | base64)")
		}
	}

	if len(h.PostStanzas) == 0 && !ch.isSet(p+".post_stanzas") {
		h.PostStanzas = []string{"message"}
	}
	if len(h.PostStanzas) == 0 {
		ch.errorf(p+".post_stanzas", `is empty; list at least one of "message", "presence" and "iq", `+
			`or leave it out for ["message"]`)
	}
	for j, k := range h.PostStanzas {
		switch {
		case !slices.Contains(stanzaKinds, k):
			ch.errorf(indexPath(p+".post_stanzas", j), `%q is not a stanza kind; use "message", "presence" or "iq"`, k)
		case slices.Index(h.PostStanzas, k) < j:
			ch.errorf(indexPath(p+".post_stanzas", j), "%q is listed twice; list each kind once", k)
		}
	}

	if h.Timeout.Duration == 0 && !ch.isSet(p+".timeout") {
		h.Timeout.Duration = defaultHostTimeout
	}
	if h.Timeout.Duration <= 0 {
		ch.errorf(p+".timeout", `%v is not more than 0; use a duration like "10s"`, h.Timeout.Duration)
	}
	if h.Concurrency == 0 && !ch.isSet(p+".concurrency") {
		h.Concurrency = defaultConcurrency
	}
	if h.Concurrency < 1 || h.Concurrency > 1024 {
		ch.errorf(p+".concurrency", "%d is out of range; use 1 to 1024 requests in flight", h.Concurrency)
	}
	if h.Queue == 0 && !ch.isSet(p+".queue") {
		h.Queue = defaultHostQueue
	}
	if h.Queue < 1 {
		ch.errorf(p+".queue", "%d is too low; use at least 1 waiting stanza", h.Queue)
	}
	ch.botQueueShares(p, h)
	if ch.fromFile() && !ch.isSet(p+".retries") {
		h.Retries = defaultRetries
	}
	if h.Retries < 0 || h.Retries > 10 {
		ch.errorf(p+".retries", "%d is out of range; use 0 to 10 retries", h.Retries)
	}

	names := make([]string, 0, len(h.Headers))
	for name := range h.Headers {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		hp := joinPath(p+".headers", name)
		switch {
		case !httpguts.ValidHeaderFieldName(name):
			ch.errorf(hp, "%q is not an HTTP header name; use letters, digits and - only", name)
		case slices.Contains(reservedHeaders, strings.ToLower(name)):
			ch.errorf(hp, "%s is set by Parley on every request; remove it", name)
		case !httpguts.ValidHeaderFieldValue(h.Headers[name]):
			ch.errorf(hp, "the value must be one line, without line breaks or other control characters")
		}
	}

	atLeast(ch, p+".api_rate", &h.APIRate, defaultAPIRate, 1, "messages per second the send API accepts")
	atLeast(ch, p+".api_burst", &h.APIBurst, defaultAPIBurst, 1, "a request carries at least one message")

	for j, room := range h.Rooms {
		rp := indexPath(p+".rooms", j)
		switch {
		case !isBareJID(room):
			ch.errorf(rp, `%q is not a bare JID; write the room's address as room@domain, like "team@rooms.example.com"`, room)
		case slices.Index(h.Rooms, room) < j:
			ch.errorf(rp, "%q is listed twice; list each room once", room)
		}
	}
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

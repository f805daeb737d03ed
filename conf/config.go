package conf

import (
	"path/filepath"
	"strings"
	"time"

	"github.com/parley-im/parley/c2s"
	"github.com/parley-im/parley/c2s/sasl"
	"github.com/parley-im/parley/xmpp"
)

// Config is the whole of Parley's configuration: one TOML file.
//
// Use [New] for a config with every default, or [Load] and [Parse] for one
// read from a file. [Config.Validate] checks a config built in Go and fills
// in what it leaves zero.
type Config struct {
	// File is the file the config was read from: empty for the embedded
	// default and for configs built in Go.
	File string

	// DataDir holds the SQLite database, generated certificates and
	// uploads. Default "data", relative to the working directory.
	DataDir string `toml:"data_dir"`
	// Database is the SQLite file. Empty means <data_dir>/parley.db (see
	// [Config.DatabasePath]); ":memory:" keeps everything in memory, up to 1 GiB.
	Database string `toml:"database"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `toml:"log_level"`

	// C2S configures client connections.
	C2S C2S `toml:"c2s"`
	// S2S configures server-to-server connections.
	S2S S2S `toml:"s2s"`
	// HTTP configures the HTTP listener.
	HTTP HTTP `toml:"http"`
	// Component configures the listener of external components
	// (XEP-0114), the hosts of type "component".
	Component Component `toml:"component"`
	// Limits bound what one connection may cost the server.
	Limits Limits `toml:"limits"`
	// Auth configures SASL authentication.
	Auth Auth `toml:"auth"`
	// Hosts are the domains this server serves, one [[host]] table each.
	// A config needs at least one.
	Hosts []Host `toml:"host"`
}

// C2S is the [c2s] table: client-to-server listeners.
type C2S struct {
	// Listen are host:port addresses for STARTTLS streams.
	// Default ["[::]:5222"].
	Listen []string `toml:"listen"`
	// DirectTLS are host:port addresses for TLS from the first byte
	// (XEP-0368). Default ["[::]:5223"].
	DirectTLS []string `toml:"direct_tls"`
	// RequireTLS refuses to authenticate a stream before STARTTLS.
	// Default true. Because false is also the zero value, a config built
	// in Go should start from [New].
	RequireTLS bool `toml:"require_tls"`
	// IdleTimeout closes a stream that has sent nothing for this long.
	// Default 5m; 0 disables it.
	IdleTimeout Duration `toml:"idle_timeout"`
	// ParkAfter is how long a logged-in stream waits for its client with
	// a goroutine of its own; after that it waits in the server's poller,
	// which costs less memory (no goroutine, no TLS read buffers, and the
	// memory freed by a wave of parking returned to the system), until
	// the client sends again. Default 10s;
	// 0 keeps every stream's goroutine.
	ParkAfter Duration `toml:"park_after"`
	// ResumeTimeout is how long a stream-managed session (XEP-0198) whose
	// connection dropped stays bound, buffering what comes for it, for
	// its client to resume it. Default 5m; 0 turns resumption off.
	ResumeTimeout Duration `toml:"resume_timeout"`
	// ResumeLocation is where a client should reconnect to resume (the
	// location of XEP-0198's <enabled/>): a host name or address,
	// optionally with a port ("xmpp2.example.com:5222"), for a cluster
	// node a client must come back to. Default empty: no location, the
	// client resumes where it connected.
	ResumeLocation string `toml:"resume_location"`
}

// DirectTLSRoute starts a static route whose server streams use direct TLS
// (XEP-0368) instead of STARTTLS: "tls://host:port".
const DirectTLSRoute = "tls://"

// S2S is the [s2s] table: federation with other servers (RFC 6120 server
// streams, XEP-0220 dialback). Federation runs when Listen is set: the
// listener is where remote servers verify this server's dialback keys.
type S2S struct {
	// Listen are host:port addresses for server streams, usually
	// "[::]:5269". Default empty: no federation.
	Listen []string `toml:"listen"`
	// StaticRoutes maps a remote domain to the "host:port" its server
	// streams go to, before any DNS lookup: for tests and private
	// federations. "tls://host:port" (DirectTLSRoute) dials with TLS
	// from the first byte (XEP-0368), as an _xmpps-server record would.
	StaticRoutes map[string]string `toml:"static_routes"`
	// RequireTLS refuses a stream that has not negotiated TLS, both ways.
	// Default true.
	RequireTLS bool `toml:"require_tls"`
	// RequireValidCerts refuses a peer whose certificate does not
	// validate for its domain (RFC 6125), instead of falling back to
	// dialback. Default false.
	RequireValidCerts bool `toml:"require_valid_certs"`
	// CAFile is a PEM file of the certificate authorities that peers'
	// certificates are checked against, for a private federation.
	// Default empty: the system's roots.
	CAFile string `toml:"ca_file"`
	// Allow, when not empty, lists the only remote domains this server
	// federates with. Default empty: any.
	Allow []string `toml:"allow"`
	// Deny lists remote domains this server never federates with.
	Deny []string `toml:"deny"`
	// ConnectTimeout bounds connecting and authenticating an outbound
	// stream; what waits for it then bounces. Default 30s.
	ConnectTimeout Duration `toml:"connect_timeout"`
	// IdleTimeout closes a stream that carried nothing this long.
	// Default 10m; 0 never closes an idle stream.
	IdleTimeout Duration `toml:"idle_timeout"`
	// DirectTLS are host:port addresses for server streams with TLS from
	// the first byte (XEP-0368, ALPN xmpp-server), usually "[::]:5270".
	// Default empty.
	DirectTLS []string `toml:"direct_tls"`
	// PingInterval is how long an outbound stream may write nothing
	// before it pings the peer (XEP-0199): the traffic keeps NAT state
	// alive, and a peer that does not answer within connect_timeout is
	// taken for dead and its stream closed. Default 2m; 0 never pings.
	PingInterval Duration `toml:"ping_interval"`
	// MaxStreamsPerDomain bounds the inbound streams one remote domain
	// (the from of their headers; the address for streams without one)
	// may hold open at once. Default 20.
	MaxStreamsPerDomain int `toml:"max_streams_per_domain"`
	// Rate is the bytes per second one inbound stream may send, on
	// average: the reader paces a faster peer. Default 10MiB; 0 is no
	// limit.
	Rate Size `toml:"rate"`
}

// HTTP is the [http] table: the listener for the bot send API, metrics,
// WebSocket and uploads.
type HTTP struct {
	// Listen are host:port addresses, usually "[::]:5280". Default empty.
	Listen []string `toml:"listen"`
	// MetricsToken, when set, is the bearer token GET /metrics asks for,
	// from any address. Empty (the default): /metrics answers loopback
	// clients only.
	MetricsToken string `toml:"metrics_token"`
	// TokenFailures is how many requests with a wrong or missing token
	// (send API, /metrics with a metrics_token) one address may make in a
	// minute; past it its requests get 429 until the minute is over.
	// Default 5, at least 1.
	TokenFailures int `toml:"token_failures"`
	// ReadTimeout bounds reading one request, headers and body. Default
	// 30s, at least 1s.
	ReadTimeout Duration `toml:"read_timeout"`
	// TLS serves HTTPS on every listen address, with the hosts'
	// certificates picked by SNI, as c2s does. Default false: plain HTTP,
	// for loopback and for running behind a reverse proxy.
	TLS bool `toml:"tls"`
	// TrustForwarded believes a request's X-Forwarded-For (its last
	// address: the one the proxy saw) and X-Forwarded-Proto, set by a
	// reverse proxy in front. Default false: the headers are ignored,
	// since anyone can send them; turn it on only when the listener is
	// reachable by the proxy alone.
	TrustForwarded bool `toml:"trust_forwarded"`
	// WebSocketOrigins are the host patterns (path.Match, like
	// "chat.example.com" or "*.example.com") a browser's Origin must
	// match to open /xmpp-websocket. Default empty: any origin, as
	// Prosody does; the stream authenticates with SASL, not with the
	// browser's cookies, so a foreign page gains nothing from the
	// user's browser.
	WebSocketOrigins []string `toml:"websocket_origins"`
	// WebSocketInsecure lets clients authenticate over plain ws:// from
	// any address. Default false: over plain HTTP only loopback clients
	// (or, with trust_forwarded, those the proxy reached over HTTPS) may,
	// since STARTTLS cannot follow over WebSocket.
	WebSocketInsecure bool `toml:"websocket_insecure"`
	// WebSocketURL is the WebSocket address host-meta (XEP-0156)
	// announces, like "wss://chat.example.com/xmpp-websocket". Default
	// empty: built from the request (its scheme and Host).
	WebSocketURL string `toml:"websocket_url"`
	// WebClientDir is the directory holding Converse.js's dist files
	// (what `make webclient` fetches), served with a page configured for
	// the host at /chat. Default empty: "webclient" beside the parley
	// binary, where `make webclient` puts it for bin/parley. When the
	// directory has no Converse.js, /chat says how to fetch it.
	WebClientDir string `toml:"webclient_dir"`
}

// Component is the [component] table: where external components
// (XEP-0114) connect. The listener opens only when a host of type
// "component" is configured.
type Component struct {
	// Listen are host:port addresses. Default ["127.0.0.1:5347"]: the
	// component protocol has no TLS, and its handshake is a SHA-1 of the
	// secret that anyone on the path could record and guess at offline,
	// so the default keeps the secret and every stanza off the network
	// (components run beside the server, as Prosody's default too).
	Listen []string `toml:"listen"`
}

// Limits is the [limits] table. Every limit is on by default.
type Limits struct {
	// StanzaSize is the largest stanza a client may send. Default 256KiB,
	// at least 10000 bytes (RFC 6120 §13.12).
	StanzaSize Size `toml:"stanza_size"`
	// S2SStanzaSize is the largest stanza a server may send.
	// Default 512KiB, at least 10000 bytes.
	S2SStanzaSize Size `toml:"s2s_stanza_size"`
	// MaxDepth is how deeply elements may nest in one stanza.
	// Default 64, at least 8.
	MaxDepth int `toml:"max_depth"`
	// MaxAttributes is how many attributes one element may have.
	// Default 64, at least 8.
	MaxAttributes int `toml:"max_attributes"`
	// Rate is the bytes per second one connection may send, on average.
	// Default 1MiB; 0 means unlimited.
	Rate Size `toml:"rate"`
	// Burst is how many bytes a connection may send at once above Rate
	// (the token bucket's size). It must hold the largest stanza, so the
	// default is 1MiB or the larger of stanza_size and s2s_stanza_size
	// when that is more. Unused when Rate is 0.
	Burst Size `toml:"burst"`
	// Queue is how many outbound stanzas may wait for one session.
	// Default 1000.
	Queue int `toml:"queue"`
	// QueueBytes bounds the memory the stanzas waiting for one session
	// may hold (as parsed, which is more than their size on the wire: an
	// empty element takes about 120 bytes). Default 8MiB; at least 64KiB.
	QueueBytes Size `toml:"queue_bytes"`
	// AuthFailures is how many failed SASL attempts a stream gets before
	// it is closed. Default 3.
	AuthFailures int `toml:"auth_failures"`
	// LoginBackoffAfter is how many failed logins of one account from one
	// address are answered at once; after that its answers there wait 1s,
	// 2s, 4s... up to LoginBackoffMax. Default 3.
	LoginBackoffAfter int `toml:"login_backoff_after"`
	// LoginSprayAccounts is how many accounts may fail to log in from one
	// address before its logins to other accounts (not the ones that
	// logged in from there before) wait. Default 10.
	LoginSprayAccounts int `toml:"login_spray_accounts"`
	// LoginAccountFailures is how many failed logins one account may have
	// from all addresses before its logins from new addresses wait.
	// Default 30.
	LoginAccountFailures int `toml:"login_account_failures"`
	// LoginBackoffMax is the longest a login's answer waits. Default 10s,
	// at most 15s; "0s" never holds an answer.
	LoginBackoffMax Duration `toml:"login_backoff_max"`
	// LoginWindow is how long a failed login counts. Default 15m.
	LoginWindow Duration `toml:"login_window"`
	// RegistrationsPerIP is how many in-band registrations one address
	// may attempt per minute. Default 10.
	RegistrationsPerIP int `toml:"registrations_per_ip"`
	// UnauthenticatedPerIP is how many connections from one address may
	// be open and not logged in at once; past it new ones are closed.
	// Default 32.
	UnauthenticatedPerIP int `toml:"unauthenticated_per_ip"`
	// RosterSize is how many contacts one user may have. Default 1000.
	RosterSize int `toml:"roster_size"`
	// OfflineMessages is how many messages are kept for one user while
	// offline; past it senders get an error. Default 1000.
	OfflineMessages int `toml:"offline_messages"`
	// OfflineBytes is how many bytes of stanzas are kept for one user
	// while offline; past it senders get an error. Default 10MiB, at
	// least 10000 bytes.
	OfflineBytes Size `toml:"offline_bytes"`
	// SessionsPerAccount is how many sessions one account may have bound
	// at once; past it a bind fails with resource-constraint. Default 10,
	// where Prosody and ejabberd have no limit: it keeps one account (a
	// leaked password, a client reconnecting in a loop) from taking the
	// others' share of the server.
	SessionsPerAccount int `toml:"sessions_per_account"`
	// PrivateStorageBytes is how many bytes of private XML (XEP-0049) one
	// account may keep. Default 1MiB, at least 10000 bytes.
	PrivateStorageBytes Size `toml:"private_storage_bytes"`
	// RosterChangesPerMinute is how many roster sets and removals one
	// account may make per minute, with bursts of as many; past it they
	// fail with resource-constraint. Default 300.
	RosterChangesPerMinute int `toml:"roster_changes_per_minute"`
}

// Auth is the [auth] table.
type Auth struct {
	// SCRAMIterations is the PBKDF2 iteration count for new SCRAM keys.
	// Default 10000, at least 4096 (RFC 7677).
	SCRAMIterations int `toml:"scram_iterations"`
	// AllowPlain offers SASL PLAIN on TLS streams. Default true. Because
	// false is also the zero value, a config built in Go should start
	// from [New].
	AllowPlain bool `toml:"allow_plain"`
	// ChannelBinding is ChannelBindingCompatible (the default) or
	// ChannelBindingStrict.
	ChannelBinding string `toml:"channel_binding"`
	// FastTokenLifetime is how long a FAST token (XEP-0484) logs its
	// client in without the password; one used in the second half of
	// its life is replaced. Default 720h (30 days, as ejabberd's); at
	// least 1m.
	FastTokenLifetime Duration `toml:"fast_token_lifetime"`
}

// Values of [Auth.ChannelBinding].
const (
	// ChannelBindingCompatible offers no SCRAM-*-PLUS in the SASL
	// mechanisms, so that every client logs in at its first attempt:
	// slixmpp 1.8 (poezio, most Python bots) picks -PLUS whenever it is
	// offered, but binds only with tls-unique, which TLS 1.3 does not
	// have; refused, it falls back to plain SCRAM saying it can bind
	// ("y"), which a server offering -PLUS must refuse as a downgrade.
	ChannelBindingCompatible = "compatible"
	// ChannelBindingStrict offers -PLUS with its XEP-0440 list
	// (tls-exporter, tls-server-end-point) and refuses "y": the clients
	// that bind properly (mellium, Conversations, Gajim, Dino) are then
	// protected from a stripped mechanism list, and slixmpp 1.8 cannot
	// log in on TLS 1.3 except with PLAIN.
	ChannelBindingStrict = "strict"
)

// Host is one [[host]] table: a domain served by this server and what
// serves it. Package conf knows the keys every host has; the rest of the
// table belongs to the host's type (see [RegisterHostType]), which decodes
// it into Options.
type Host struct {
	// Name is the domain, stored in lower case. Required.
	Name string `toml:"name"`
	// Type is one of the registered host types ([HostTypes]); a host
	// that names none gets the type registered as the default.
	Type string `toml:"type"`
	// TLSCert and TLSKey are PEM files, given both or neither. With
	// neither, the server generates a self-signed pair in DataDir.
	TLSCert string `toml:"tls_cert"`
	// TLSKey is the private key of TLSCert.
	TLSKey string `toml:"tls_key"`

	// Options are the options of the host's type: a pointer to the
	// type's options struct, decoded from the rest of the host's table
	// and checked by the type. [Config.Validate] fills in new ones when
	// Options is nil; a type's package has a typed accessor for them.
	Options any `toml:"-"`
}

// Default values, the ones [New] and [Config.Validate] fill in. Those of
// the keys that configure package c2s, xmpp or sasl are written there,
// next to the code that uses them ([c2s.DefaultQueue] and the like), and
// New and Validate name them; these are the rest.
const (
	defaultDataDir       = "data"
	defaultLogLevel      = "info"
	defaultS2SStanzaSize = 512 * KiB
	defaultS2SConnect    = 30 * time.Second
	defaultS2SIdle       = 10 * time.Minute
	defaultS2SPing       = 2 * time.Minute
	defaultS2SPerDomain  = 20
	defaultS2SRate       = 10 * MiB
	defaultRate          = 1 * MiB
	defaultBurst         = 1 * MiB
	defaultRosterSize    = 1000
	defaultOffline       = 1000
	defaultOfflineBytes  = 10 * MiB
	defaultSessionsPer   = 10
	defaultPrivateBytes  = 1 * MiB
	defaultRosterRate    = 300
	defaultTokenFailures = 5
	defaultHTTPRead      = 30 * time.Second
	// defaultComponentListen is XEP-0114's usual port, on loopback.
	defaultComponentListen = "127.0.0.1:5347"
)

// maxBackoffMax is the longest login_backoff_max: c2s cuts a longer one to
// half its handshake timeout, so that a held answer comes before the
// stream times out.
const maxBackoffMax = c2s.DefaultHandshakeTimeout / 2

// New returns a config with every default and no hosts; File is empty.
// Add at least one [Host] before [Config.Validate].
func New() *Config {
	return &Config{
		DataDir:  defaultDataDir,
		LogLevel: defaultLogLevel,
		C2S: C2S{
			Listen:        []string{"[::]:5222"},
			DirectTLS:     []string{"[::]:5223"},
			RequireTLS:    true,
			IdleTimeout:   Duration{c2s.DefaultIdleTimeout},
			ParkAfter:     Duration{c2s.DefaultParkAfter},
			ResumeTimeout: Duration{c2s.DefaultResumeTimeout},
		},
		Component: Component{Listen: []string{defaultComponentListen}},
		S2S: S2S{
			RequireTLS:          true,
			ConnectTimeout:      Duration{defaultS2SConnect},
			IdleTimeout:         Duration{defaultS2SIdle},
			PingInterval:        Duration{defaultS2SPing},
			MaxStreamsPerDomain: defaultS2SPerDomain,
			Rate:                defaultS2SRate,
		},
		HTTP: HTTP{
			TokenFailures: defaultTokenFailures,
			ReadTimeout:   Duration{defaultHTTPRead},
		},
		Limits: Limits{
			StanzaSize:           xmpp.DefaultMaxStanza,
			S2SStanzaSize:        defaultS2SStanzaSize,
			MaxDepth:             xmpp.DefaultMaxDepth,
			MaxAttributes:        xmpp.DefaultMaxAttrs,
			Rate:                 defaultRate,
			Burst:                defaultBurst,
			Queue:                c2s.DefaultQueue,
			QueueBytes:           c2s.DefaultQueueBytes,
			AuthFailures:         c2s.DefaultAuthFailures,
			LoginBackoffAfter:    c2s.DefaultBackoffAfter,
			LoginSprayAccounts:   c2s.DefaultSprayAccounts,
			LoginAccountFailures: c2s.DefaultAccountFailures,
			LoginBackoffMax:      Duration{c2s.DefaultBackoffMax},
			LoginWindow:          Duration{c2s.DefaultLoginWindow},
			RegistrationsPerIP:   c2s.DefaultRegistrationsPerIP,
			UnauthenticatedPerIP: c2s.DefaultUnauthenticatedPerIP,
			RosterSize:           defaultRosterSize,
			OfflineMessages:      defaultOffline,

			// Per-account limits (issue #17).
			OfflineBytes:           defaultOfflineBytes,
			SessionsPerAccount:     defaultSessionsPer,
			PrivateStorageBytes:    defaultPrivateBytes,
			RosterChangesPerMinute: defaultRosterRate,
		},
		Auth: Auth{
			SCRAMIterations:   sasl.DefaultIterations,
			AllowPlain:        true,
			ChannelBinding:    ChannelBindingCompatible,
			FastTokenLifetime: Duration{c2s.DefaultTokenTTL},
		},
	}
}

// DatabasePath is the SQLite database to open: Database when it is set
// (":memory:" included), otherwise parley.db in DataDir.
func (c *Config) DatabasePath() string {
	if c.Database != "" {
		return c.Database
	}
	return filepath.Join(c.DataDir, "parley.db")
}

// Host returns the host with this name, compared without regard to case.
// The pointer is into c.Hosts.
func (c *Config) Host(name string) (*Host, bool) {
	for i := range c.Hosts {
		if strings.EqualFold(c.Hosts[i].Name, name) {
			return &c.Hosts[i], true
		}
	}
	return nil, false
}

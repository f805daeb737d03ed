package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/parley-im/parley/xmpp"
)

// usage is what `parley-load help` prints; the flags follow it.
const usage = `parley-load puts load on an XMPP server through client streams (STARTTLS,
SASL, resource binding) and reports what it measured: a summary, then one line
of JSON. It works against any XMPP server: Parley, Prosody, ejabberd.

Usage:

	parley-load <scenario> [flags]

Scenarios:

	login   log -n accounts in, -c at a time, and keep them connected until
	        the last is bound: logins/s, connect-to-bound p50/p99/max
	msg     log 2×-pairs accounts in; the two clients of a pair send each other
	        chat messages for -duration, each with at most -window messages not
	        yet received: delivered msgs/s, latency p50/p99/max, lost (must be 0);
	        -rate N offers N msgs/s in all, evenly spread, for latency below
	        saturation (default: as fast as the window allows); -stalled and
	        -hang-domain add slow consumers beside the pairs (a client that
	        never reads, a bot whose webhook never answers) and report the
	        errors their senders get and the server's peak RSS
	idle    log -n accounts in and hold them for -duration: the server's RSS
	        per connection (needs -pid or -pidfile)
	bot     log -n accounts in; each sends messages to -bot-user@-bot-domain, an
	        http_component host whose webhook this tool serves on
	        -webhook-addr, and waits for every reply: round trips/s, latency
	muc     log -rooms × -occupants accounts in; they fill the rooms load0,
	        load1, ... of the MUC service -muc-domain (the first occupant
	        creates each as an instant room) and every occupant sends
	        groupchat messages at -occupant-rate for -duration, each with at
	        most -window not yet reflected back; every occupant checks that it
	        gets each message of its room once: deliveries/s, latency,
	        lost and duplicated (both must be 0)
	s2s     log -pairs senders in to -addr (-domain) and as many receivers to
	        -peer-addr (-peer-domain), a server federating with the first;
	        sender i sends chat messages to receiver i for -duration, with at
	        most -window in flight, all across the one server-to-server
	        stream: msgs/s, latency, lost (must be 0), and with -pid and
	        -peer-pid msgs per CPU-second of each server and of both

The clients connect to c2s at -addr with STARTTLS, or with -transport ws
over XMPP over WebSocket (RFC 7395: the xmpp subprotocol, <open/> and
<close/>, one stanza per message) at -ws-url, ws:// or wss://; every
scenario but s2s runs on either, and -stalled on tcp only.

Accounts are -users with %d replaced by 0, 1, 2, ... on -domain, all with
-password; -create makes them first with in-band registration (XEP-0077).
With -pid or -pidfile of the server, the results include the server's CPU time
over the measured window (utime+stime from /proc/PID/stat) and the figures per
server CPU-second. The exit code is 0 when everything worked, 1 when anything
failed (a login, a lost message, a timeout), 2 for a usage error.

Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the flags of one run.
type options struct {
	Scenario string
	Addr     string
	// Transport is tcp (c2s with STARTTLS at Addr) or ws (XMPP over
	// WebSocket at WSURL).
	Transport   string
	WSURL       string
	Domain      string
	Users       string
	Password    string
	Create      bool
	N           int
	Concurrency int
	Pairs       int
	Window      int
	Size        int
	Rate        float64
	Duration    time.Duration
	Drain       time.Duration
	Timeout     time.Duration
	StepTimeout time.Duration
	PID         int
	PIDFile     string
	Insecure    bool
	CAFile      string
	Mech        string
	Presence    bool
	// SM enables stream management (XEP-0198) on every stream, which
	// then acknowledges every stanza the server asks about.
	SM          bool
	BotDomain   string
	BotUser     string
	WebhookAddr string

	// The muc scenario (muc.go).
	Rooms        int
	Occupants    int
	MUCDomain    string
	OccupantRate float64

	// The s2s scenario (s2s.go): the receiving server.
	PeerAddr   string
	PeerDomain string
	PeerPID    int

	// The slow consumers of msg (slow.go).
	Stalled      int
	StallSenders int
	StallRate    float64
	StallSize    int
	StallShape   string
	HangDomain   string
	HangAddr     string
	HangSenders  int
	HangRate     float64
	HangSize     int

	tls *tls.Config
	// httpClient dials the WebSockets of -transport ws.
	httpClient *http.Client
	// webhook, when set, serves the bot scenario's webhook instead of a
	// listener on WebhookAddr (tests listen on a free port first).
	webhook net.Listener
	// hangHook, when set, serves the hung webhook of -hang-domain instead
	// of a listener on HangAddr.
	hangHook net.Listener
	// progress receives what the run is doing, for people watching.
	progress io.Writer
}

// user returns the username of account i.
func (o *options) user(i int) string { return fmt.Sprintf(o.Users, i) }

func newFlagSet(o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("parley-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = io.WriteString(fs.Output(), usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.Addr, "addr", "127.0.0.1:5222", "the server's c2s (STARTTLS) `host:port`")
	fs.StringVar(&o.Transport, "transport", transportTCP, "tcp (c2s with STARTTLS at -addr) or ws (XMPP over WebSocket, RFC 7395, at -ws-url)")
	fs.StringVar(&o.WSURL, "ws-url", "ws://127.0.0.1:5280/xmpp-websocket", "-transport ws: the server's WebSocket `URL` (ws:// or wss://)")
	fs.StringVar(&o.Domain, "domain", "localhost", "the `domain` of the accounts")
	fs.StringVar(&o.Users, "users", "load%d", "the usernames: a `pattern` where %d is the account's number")
	fs.StringVar(&o.Password, "password", "load-password", "the `password` of every account")
	fs.BoolVar(&o.Create, "create", false, "create the accounts first with in-band registration (XEP-0077); existing ones are used as they are")
	fs.IntVar(&o.N, "n", 100, "login, idle, bot: how many clients")
	fs.IntVar(&o.Concurrency, "c", 50, "how many logins (and registrations) run at once")
	fs.IntVar(&o.Pairs, "pairs", 10, "msg: how many pairs of clients")
	fs.IntVar(&o.Window, "window", 10, "msg: how many messages each client may have sent and not yet seen received; muc: not yet seen reflected by the room")
	fs.IntVar(&o.Size, "size", 100, "msg, muc: the `bytes` of each message body")
	fs.Float64Var(&o.Rate, "rate", 0, "msg: send `N` messages per second over all the clients, each client at fixed times staggered from the others' (the window still caps what is in flight); 0 sends as fast as the window allows")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "msg, bot, muc: how long to send; idle: how long to hold the connections")
	fs.DurationVar(&o.Drain, "drain", 5*time.Second, "msg, muc: how long to wait for messages in flight after sending stops")
	fs.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "the whole run's limit; past it every connection is closed and the run fails")
	fs.DurationVar(&o.StepTimeout, "step-timeout", 30*time.Second, "the limit of one negotiation step, one write and one bot round trip")
	fs.IntVar(&o.PID, "pid", 0, "the server's process `id`, for its CPU time and memory (same machine only)")
	fs.StringVar(&o.PIDFile, "pidfile", "", "a `file` holding the server's process id, instead of -pid")
	fs.BoolVar(&o.Insecure, "insecure", true, "accept any TLS certificate (a load tool usually runs against a test server with a self-signed one); -ca turns verification on")
	fs.StringVar(&o.CAFile, "ca", "", "verify the server's certificate against the PEM certificates in this `file`")
	fs.StringVar(&o.Mech, "mech", "", "the SASL `mechanism` (SCRAM-SHA-256, SCRAM-SHA-1, PLAIN, or a -PLUS variant); default: the first of SCRAM-SHA-256, SCRAM-SHA-1, PLAIN the server offers")
	fs.BoolVar(&o.SM, "sm", false, "every client enables stream management (XEP-0198, no resumption) after bind and acknowledges every stanza the server asks about")
	fs.BoolVar(&o.Presence, "presence", true, "msg, idle, bot: send initial presence after binding, as a real client does (login never does: it measures to the bind)")
	fs.StringVar(&o.BotDomain, "bot-domain", "bots.localhost", "bot: the http_component `domain` whose post_url is this tool's webhook")
	fs.StringVar(&o.BotUser, "bot-user", "echo", "bot: the bot's local part: messages go to bot-user@bot-domain")
	fs.StringVar(&o.WebhookAddr, "webhook-addr", "127.0.0.1:18080", "bot: the `host:port` the webhook listens on; the server's post_url is http://host:port/")
	fs.IntVar(&o.Rooms, "rooms", 10, "muc: how many rooms")
	fs.IntVar(&o.Occupants, "occupants", 20, "muc: how many occupants in each room (each its own account)")
	fs.StringVar(&o.MUCDomain, "muc-domain", "rooms.localhost", "muc: the MUC service's `domain` (Parley: a host of type muc; Prosody: a Component of type \"muc\")")
	fs.Float64Var(&o.OccupantRate, "occupant-rate", 1, "muc: the groupchat messages per second each occupant sends, at fixed times staggered from the others' (-window still caps what each has not yet seen reflected); 0 sends as fast as the window allows")
	fs.StringVar(&o.PeerAddr, "peer-addr", "", "s2s: the receiving server's c2s (STARTTLS) `host:port`")
	fs.StringVar(&o.PeerDomain, "peer-domain", "", "s2s: the receivers' `domain`, served by -peer-addr and federated with -domain")
	fs.IntVar(&o.PeerPID, "peer-pid", 0, "s2s: the receiving server's process `id`, for its CPU time (same machine only)")
	fs.IntVar(&o.Stalled, "stalled", 0, "msg: also log in `N` clients that never read their stream, which -stall-senders other clients send messages to at -stall-rate; the errors they get back are counted, not failures")
	fs.IntVar(&o.StallSenders, "stall-senders", 2, "msg -stalled: how many clients send to the stalled ones")
	fs.Float64Var(&o.StallRate, "stall-rate", 10, "msg -stalled: messages per second to the stalled clients, over all their senders")
	fs.IntVar(&o.StallSize, "stall-size", 200000, "msg -stalled: the `bytes` of each message to a stalled client (its body, or its children with -stall-shape children)")
	fs.StringVar(&o.StallShape, "stall-shape", shapeBody, "msg -stalled: body (one body of -stall-size bytes) or children (empty child elements, 4 bytes each on the wire)")
	fs.StringVar(&o.HangDomain, "hang-domain", "", "msg: also send to hung@`domain`, an http_component host whose post_url is -hang-addr, where this tool accepts connections and never answers")
	fs.StringVar(&o.HangAddr, "hang-addr", "127.0.0.1:18081", "msg -hang-domain: the `host:port` of the webhook that hangs")
	fs.IntVar(&o.HangSenders, "hang-senders", 2, "msg -hang-domain: how many clients send to the hung bot")
	fs.Float64Var(&o.HangRate, "hang-rate", 100, "msg -hang-domain: messages per second to the hung bot, over all its senders")
	fs.IntVar(&o.HangSize, "hang-size", 2000, "msg -hang-domain: the `bytes` of each message body to the hung bot")
	return fs
}

// parse reads the scenario and flags of args into o. It returns ok false
// and the exit code when the run should not go on.
func parse(args []string, o *options, stdout, stderr io.Writer) (code int, ok bool) {
	fs := newFlagSet(o, stderr)
	if len(args) == 0 {
		fs.Usage()
		return 2, false
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fs.SetOutput(stdout)
		fs.Usage()
		return 0, false
	}
	o.Scenario = args[0]
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() > 0 {
		return usageError(stderr, "unexpected argument %q", fs.Arg(0)), false
	}
	if err := o.validate(); err != nil {
		return usageError(stderr, "%v", err), false
	}
	return 0, true
}

func usageError(stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, "parley-load: "+format+"\n(parley-load help shows the usage)\n", args...)
	return 2
}

// validate checks the options and fills in the TLS config and the PID.
func (o *options) validate() error {
	switch o.Scenario {
	case "login", "msg", "idle", "bot", "muc", "s2s":
	default:
		return fmt.Errorf("unknown scenario %q: use login, msg, idle, bot, muc or s2s", o.Scenario)
	}
	if o.Scenario == "s2s" {
		if o.PeerAddr == "" || o.PeerDomain == "" {
			return errors.New("s2s needs the receiving server: -peer-addr and -peer-domain")
		}
		if strings.EqualFold(o.PeerDomain, o.Domain) {
			return fmt.Errorf("-peer-domain %s is -domain: s2s measures two servers that federate", o.PeerDomain)
		}
		if o.PeerPID < 0 {
			return errors.New("-peer-pid is negative")
		}
	}
	if strings.Count(o.Users, "%") != 1 || !strings.Contains(o.Users, "%d") {
		return fmt.Errorf("-users %q: the pattern needs exactly one %%d, as in load%%d", o.Users)
	}
	if o.Password == "" {
		return errors.New("-password is empty")
	}
	positive := []struct {
		name string
		v    int
	}{{"-n", o.N}, {"-c", o.Concurrency}, {"-pairs", o.Pairs}, {"-window", o.Window},
		{"-rooms", o.Rooms}, {"-occupants", o.Occupants}}
	for _, p := range positive {
		if p.v <= 0 {
			return fmt.Errorf("%s must be at least 1", p.name)
		}
	}
	if o.Size < 16 {
		return errors.New("-size must be at least 16: the body carries the send time")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"-duration", o.Duration}, {"-timeout", o.Timeout}, {"-step-timeout", o.StepTimeout}} {
		if d.v <= 0 {
			return fmt.Errorf("%s must be positive", d.name)
		}
	}
	if o.Drain < 0 {
		return errors.New("-drain is negative")
	}
	if o.Rate < 0 || math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0) {
		return errors.New("-rate must be a number of messages per second, 0 for no pacing")
	}
	if o.OccupantRate < 0 || math.IsNaN(o.OccupantRate) || math.IsInf(o.OccupantRate, 0) {
		return errors.New("-occupant-rate must be a number of messages per second, 0 for no pacing")
	}
	if o.Scenario == "muc" {
		if _, err := xmpp.Parse(roomName(0) + "@" + o.MUCDomain); err != nil {
			return fmt.Errorf("-muc-domain %q: %w", o.MUCDomain, err)
		}
	}
	if err := o.validateSlow(); err != nil {
		return err
	}
	switch o.Transport {
	case transportTCP:
	case transportWS:
		u, err := url.Parse(o.WSURL)
		if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			return fmt.Errorf("-ws-url %q: give a ws:// or wss:// URL, as in ws://127.0.0.1:5280/xmpp-websocket", o.WSURL)
		}
		if o.Stalled > 0 {
			// A stalled client is a TCP socket with a small receive
			// buffer, kept alive with white space: neither is WebSocket's.
			return errors.New("-stalled needs -transport tcp")
		}
		if o.Scenario == "s2s" {
			// The receivers log in to the peer, and -ws-url is the
			// first server's: there is no -peer-ws-url.
			return errors.New("s2s needs -transport tcp: the receivers log in to -peer-addr")
		}
	default:
		return fmt.Errorf("-transport %q: use tcp or ws", o.Transport)
	}
	if o.Mech != "" {
		o.Mech = strings.ToUpper(o.Mech)
		if _, ok := mechanisms[o.Mech]; !ok {
			return fmt.Errorf("-mech %s: use SCRAM-SHA-256, SCRAM-SHA-1, PLAIN or a -PLUS variant", o.Mech)
		}
	}
	if o.PIDFile != "" {
		b, err := os.ReadFile(o.PIDFile)
		if err != nil {
			return fmt.Errorf("-pidfile: %w", err)
		}
		if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &o.PID); err != nil {
			return fmt.Errorf("-pidfile %s: no process id in it", o.PIDFile)
		}
	}
	if o.PID < 0 {
		return errors.New("-pid is negative")
	}
	if o.Scenario == "idle" && o.PID == 0 {
		return errors.New("idle measures the server's memory: give its -pid or -pidfile")
	}
	o.tls = &tls.Config{ServerName: o.Domain, MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.Insecure}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return fmt.Errorf("-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("-ca %s: no PEM certificate in it", o.CAFile)
		}
		o.tls.RootCAs = pool
		o.tls.InsecureSkipVerify = false
	}
	if o.Transport == transportWS {
		o.httpClient = wsClient(o.tls)
	}
	return nil
}

// report is the outcome of a scenario.
type report interface {
	// summary writes the results for people.
	summary(w io.Writer)
	// base returns the fields every scenario has.
	base() *common
}

// run is main without the process: it runs the scenario in args and
// returns the exit code. The run ends early when ctx does.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o := &options{progress: stderr}
	if code, ok := parse(args, o, stdout, stderr); !ok {
		return code
	}
	return runOptions(ctx, o, stdout)
}

// runOptions runs the scenario of o, prints its summary and its JSON line
// on stdout, and returns the exit code.
func runOptions(ctx context.Context, o *options, stdout io.Writer) int {
	if o.progress == nil {
		o.progress = io.Discard
	}
	ctx, cancel := context.WithTimeoutCause(ctx, o.Timeout, fmt.Errorf("the run took longer than -timeout %v", o.Timeout))
	defer cancel()
	var r report
	switch o.Scenario {
	case "login":
		r = runLogin(ctx, o)
	case "msg":
		r = runMsg(ctx, o)
	case "idle":
		r = runIdle(ctx, o)
	case "bot":
		r = runBot(ctx, o)
	case "muc":
		r = runMUC(ctx, o)
	case "s2s":
		r = runS2S(ctx, o)
	}
	c := r.base()
	c.Scenario, c.Server, c.Domain, c.Transport = o.Scenario, o.Addr, o.Domain, o.Transport
	if o.Transport == transportWS {
		c.Server = o.WSURL
	}
	c.OK = c.Error == "" && c.Errors == 0
	r.summary(stdout)
	if c.Error != "" {
		fmt.Fprintf(stdout, "  FAILED: %s\n", c.Error)
	} else if c.Errors > 0 {
		fmt.Fprintf(stdout, "  FAILED: %d errors\n", c.Errors)
	}
	line, err := json.Marshal(r)
	if err != nil {
		fmt.Fprintf(stdout, "parley-load: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", line)
	if !c.OK {
		return 1
	}
	return 0
}

// progressf tells people watching what the run is doing.
func (o *options) progressf(format string, args ...any) {
	fmt.Fprintf(o.progress, "parley-load: "+format+"\n", args...)
}

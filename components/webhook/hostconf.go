package webhook

import (
	"encoding/base64"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/xmpp"
	"golang.org/x/net/http/httpguts"
)

// HostType is the name of this package's host type in a [[host]] table.
const HostType = "http_component"

// The defaults of a component, for [Config] and for a host's [Options]
// alike: they are written here only.
const (
	defaultTimeout     = 10 * time.Second
	defaultConcurrency = 16
	defaultQueue       = 1000
	defaultQueueBytes  = 16 << 20
	defaultRetries     = 2 // in a file; a config built in Go keeps 0
	defaultAPIRate     = 20
	defaultAPIBurst    = 200
	maxConcurrency     = 1024
	maxRetries         = 10
)

// defaultSenderQueue is one sender's share of a queue of queue stanzas.
func defaultSenderQueue(queue int) int { return max(queue/8, 4) }

// defaultSenderQueueBytes is one sender's share of a queue of queueBytes.
func defaultSenderQueueBytes(queueBytes int64) int64 { return queueBytes / 8 }

// Options are the options of an http_component host: the keys of its
// [[host]] table besides name, type, tls_cert and tls_key. A file's
// defaults are filled in by the check conf runs; see [OptionsOf] for a
// config built in Go.
type Options struct {
	// PostURL is the webhook, an absolute http or https URL. Required.
	PostURL string `toml:"post_url"`
	// PostStanzas are the kinds of stanza posted to the webhook: any of
	// message, presence and iq. Default ["message"].
	PostStanzas []string `toml:"post_stanzas"`
	// Secret signs webhook requests (optional).
	Secret string `toml:"secret"`
	// Timeout bounds one webhook request. Default 10s.
	Timeout conf.Duration `toml:"timeout"`
	// Concurrency is how many webhook requests may be in flight, 1 to
	// 1024. Default 16.
	Concurrency int `toml:"concurrency"`
	// Queue is how many stanzas may wait for the webhook, at least 1.
	// Default 1000.
	Queue int `toml:"queue"`
	// QueueBytes bounds the memory the stanzas waiting for the webhook or
	// being posted may hold, at least 64 KiB. Default 16 MiB.
	QueueBytes conf.Size `toml:"queue_bytes"`
	// SenderQueue is how many of the waiting stanzas may come from one
	// sender (a bare JID), 1 to Queue. Default max(Queue/8, 4), at most
	// Queue.
	SenderQueue int `toml:"sender_queue"`
	// SenderQueueBytes is what one sender's stanzas may hold, 1 KiB to
	// QueueBytes. Default QueueBytes/8.
	SenderQueueBytes conf.Size `toml:"sender_queue_bytes"`
	// FollowRedirects follows the webhook's redirects to its own origin
	// (scheme, host and port), a few at most; never to another origin.
	// Default false: a redirect is a failure.
	FollowRedirects bool `toml:"follow_redirects"`
	// Retries is how many times a failed request is retried, 0 to 10.
	// Default 2 in a file; in a config built in Go, 0 is kept as 0 since
	// it is a valid setting.
	Retries int `toml:"retries"`
	// Headers are sent with every webhook request.
	Headers map[string]string `toml:"headers"`
	// Rooms are group chats (bare JIDs, room@domain) the bot joins at
	// start, as Nick, from bot@<host>/rooms (see rooms.go).
	Rooms []string `toml:"rooms"`
	// Nick is the bot's nick in rooms. Default the host's first label
	// ("bots" for bots.example.com).
	Nick string `toml:"nick"`
	// ReplyTo says which group-chat messages are posted: "mentions"
	// (default: those that mention the bot) or "all".
	ReplyTo string `toml:"reply_to"`
	// JoinOnInvite makes the bot join the rooms it is invited to
	// (XEP-0045 §7.8.2, XEP-0249), until the server stops. Default false.
	JoinOnInvite bool `toml:"join_on_invite"`
	// RejoinAfter is the first wait before a room is joined again after
	// a failed join or a kick; it doubles with each failure in a row, up
	// to 5 minutes (or RejoinAfter, when longer). Default 2s.
	RejoinAfter conf.Duration `toml:"rejoin_after"`
	// APIToken enables POST /api/bots/<host>/send with this bearer token.
	APIToken string `toml:"api_token"`
	// APIRate is how many messages per second the send API accepts for
	// the host, on average. Default 20, at least 1.
	APIRate int `toml:"api_rate"`
	// APIBurst is how many messages the send API accepts at once above
	// APIRate (the token bucket's size), and the most one request may
	// carry. Default 200, at least 1.
	APIBurst int `toml:"api_burst"`
}

// Posts reports whether stanzas of this kind (message, presence or iq) go
// to the webhook. It reads PostStanzas as it is, so on options that were
// not checked an empty list posts nothing; nil options post nothing.
func (o *Options) Posts(kind string) bool {
	return o != nil && slices.Contains(o.PostStanzas, kind)
}

// OptionsOf returns the options of an http_component host, for a config
// built in Go (a test's): when h has none yet it gets new ones, whose
// zero values [conf.Config.Validate] fills in. It returns nil when h has
// another type's options.
func OptionsOf(h *conf.Host) *Options {
	if h.Options == nil {
		h.Options = &Options{}
	}
	o, _ := h.Options.(*Options)
	return o
}

var stanzaKinds = []string{"message", "presence", "iq"}

// reservedHeaders are set by the component itself.
var reservedHeaders = []string{"content-type", "content-length", "host",
	"transfer-encoding", "trailer", "user-agent",
	"webhook-id", "webhook-timestamp", "webhook-signature"}

// checkOptions checks an http_component host's options and fills in their
// defaults.
func checkOptions(c *conf.HostCheck, o *Options) {
	if o.PostURL == "" {
		c.Missing("post_url", `post_url is required for type = "http_component"; `+
			`write the webhook's URL, like post_url = "https://hooks.example.com/xmpp"`)
	} else if u, err := url.Parse(o.PostURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		c.Errorf("post_url", `%q is not an absolute http or https URL; write it like "https://hooks.example.com/xmpp"`,
			o.PostURL)
	}

	if rest, ok := strings.CutPrefix(o.Secret, "whsec_"); ok {
		// A Standard Webhooks secret: the key is the base64 after the prefix.
		if k, err := base64.StdEncoding.DecodeString(rest); err != nil || len(k) == 0 {
			c.Errorf("secret", "a secret starting with whsec_ is base64 of the signing key after the prefix, "+
				"and this one does not decode to a key; generate one with: echo whsec_$(head -c 24 /dev/urandom | base64)")
		}
	}

	if len(o.PostStanzas) == 0 && !c.IsSet("post_stanzas") {
		o.PostStanzas = []string{"message"}
	}
	if len(o.PostStanzas) == 0 {
		c.Errorf("post_stanzas", `is empty; list at least one of "message", "presence" and "iq", `+
			`or leave it out for ["message"]`)
	}
	for j, k := range o.PostStanzas {
		switch {
		case !slices.Contains(stanzaKinds, k):
			c.Errorf(conf.IndexKey("post_stanzas", j), `%q is not a stanza kind; use "message", "presence" or "iq"`, k)
		case slices.Index(o.PostStanzas, k) < j:
			c.Errorf(conf.IndexKey("post_stanzas", j), "%q is listed twice; list each kind once", k)
		}
	}

	if o.Timeout.Duration == 0 && !c.IsSet("timeout") {
		o.Timeout.Duration = defaultTimeout
	}
	if o.Timeout.Duration <= 0 {
		c.Errorf("timeout", `%v is not more than 0; use a duration like "10s"`, o.Timeout.Duration)
	}
	if o.Concurrency == 0 && !c.IsSet("concurrency") {
		o.Concurrency = defaultConcurrency
	}
	if o.Concurrency < 1 || o.Concurrency > maxConcurrency {
		c.Errorf("concurrency", "%d is out of range; use 1 to %d requests in flight", o.Concurrency, maxConcurrency)
	}
	if o.Queue == 0 && !c.IsSet("queue") {
		o.Queue = defaultQueue
	}
	if o.Queue < 1 {
		c.Errorf("queue", "%d is too low; use at least 1 waiting stanza", o.Queue)
	}
	checkQueueShares(c, o)
	if c.FromFile() && !c.IsSet("retries") {
		o.Retries = defaultRetries
	}
	if o.Retries < 0 || o.Retries > maxRetries {
		c.Errorf("retries", "%d is out of range; use 0 to %d retries", o.Retries, maxRetries)
	}

	names := make([]string, 0, len(o.Headers))
	for name := range o.Headers {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		hk := conf.JoinKey("headers", name)
		switch {
		case !httpguts.ValidHeaderFieldName(name):
			c.Errorf(hk, "%q is not an HTTP header name; use letters, digits and - only", name)
		case slices.Contains(reservedHeaders, strings.ToLower(name)):
			c.Errorf(hk, "%s is set by Parley on every request; remove it", name)
		case !httpguts.ValidHeaderFieldValue(o.Headers[name]):
			c.Errorf(hk, "the value must be one line, without line breaks or other control characters")
		}
	}

	conf.AtLeast(c, "api_rate", &o.APIRate, defaultAPIRate, 1, "messages per second the send API accepts")
	conf.AtLeast(c, "api_burst", &o.APIBurst, defaultAPIBurst, 1, "a request carries at least one message")

	for j, room := range o.Rooms {
		rk := conf.IndexKey("rooms", j)
		switch {
		case !conf.IsBareJID(room):
			c.Errorf(rk, `%q is not a bare JID; write the room's address as room@domain, like "team@rooms.example.com"`, room)
		case slices.Index(o.Rooms, room) < j:
			c.Errorf(rk, "%q is listed twice; list each room once", room)
		}
	}
	checkRoomOptions(c, o)
}

// The values of reply_to.
const (
	replyMentions = "mentions"
	replyAll      = "all"
)

// defaultRejoinAfter is rejoin_after's default.
const defaultRejoinAfter = 2 * time.Second

// checkRoomOptions checks nick, reply_to and rejoin_after, and fills in
// their defaults.
func checkRoomOptions(c *conf.HostCheck, o *Options) {
	if o.Nick == "" && !c.IsSet("nick") {
		o.Nick = defaultNick(c.Host.Name)
	}
	if _, err := xmpp.NormalizeResource(o.Nick); err != nil || strings.TrimSpace(o.Nick) == "" {
		c.Errorf("nick", "%q is not a nick a room takes (a JID resourcepart, not blank); write one like \"helper\"", o.Nick)
	}
	switch o.ReplyTo {
	case "":
		o.ReplyTo = replyMentions
	case replyMentions, replyAll:
	default:
		c.Errorf("reply_to", `%q is not "mentions" (messages that mention the bot's nick) or "all"`, o.ReplyTo)
	}
	if o.RejoinAfter.Duration == 0 && !c.IsSet("rejoin_after") {
		o.RejoinAfter.Duration = defaultRejoinAfter
	}
	if o.RejoinAfter.Duration < 10*time.Millisecond {
		c.Errorf("rejoin_after", `%v is too short; use a duration like "2s"`, o.RejoinAfter.Duration)
	}
}

// defaultNick is a host's first label: "bots" for bots.example.com.
func defaultNick(host string) string {
	first, _, _ := strings.Cut(host, ".")
	return first
}

// checkQueueShares checks queue_bytes, sender_queue and sender_queue_bytes,
// and fills in their defaults: 16 MiB, max(queue/8, 4) and queue_bytes/8,
// each at most the whole queue.
func checkQueueShares(c *conf.HostCheck, o *Options) {
	conf.AtLeast(c, "queue_bytes", &o.QueueBytes, defaultQueueBytes, 64*conf.KiB,
		"the queue needs room for a few stanzas")
	share := min(defaultSenderQueue(o.Queue), max(o.Queue, 1))
	if o.SenderQueue == 0 && !c.IsSet("sender_queue") {
		o.SenderQueue = share
	}
	switch {
	case o.SenderQueue < 1:
		c.Errorf("sender_queue", "%d is too low; use at least 1 waiting stanza per sender", o.SenderQueue)
	case o.Queue >= 1 && o.SenderQueue > o.Queue:
		c.Errorf("sender_queue", "%d is more than queue (%d); a sender's share is at most the whole queue, "+
			"so use at most %d, or leave sender_queue out for %d", o.SenderQueue, o.Queue, o.Queue, share)
	}
	if o.SenderQueueBytes == 0 && !c.IsSet("sender_queue_bytes") {
		o.SenderQueueBytes = max(conf.Size(defaultSenderQueueBytes(int64(o.QueueBytes))), conf.KiB)
	}
	switch {
	case o.SenderQueueBytes < conf.KiB:
		c.Errorf("sender_queue_bytes", "%v is too low; use at least 1KiB per sender", o.SenderQueueBytes)
	case o.QueueBytes >= 64*conf.KiB && o.SenderQueueBytes > o.QueueBytes:
		c.Errorf("sender_queue_bytes", "%v is more than queue_bytes (%v); a sender's share is at most the whole queue, "+
			"so use at most %v, or leave sender_queue_bytes out for %v", o.SenderQueueBytes, o.QueueBytes, o.QueueBytes,
			conf.Size(defaultSenderQueueBytes(int64(o.QueueBytes))))
	}
}

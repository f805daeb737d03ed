// Package webhook is the http_component host: a domain of HTTP bots. Each
// stanza addressed to the domain (by default only messages) is POSTed as
// JSON to a webhook, and the webhook's JSON answer becomes the reply, as
// Prosody's mod_component_http does and shared/SEED.md specifies, without
// that module's defects: bounded queue, per-conversation order, timeouts,
// retries, signatures, replies refused unless they come from the bot's
// own domain, and every failure answered with a stanza error.
//
// It registers itself as the http_component host type (hosttype.go): its
// options, the send API and the demo echo webhook on the server's HTTP
// listener, the bots' metrics and the drain at shutdown. A binary runs it
// by importing the package (server/std does). The component
// does not route: it hands what it makes to the Router it was given.
package webhook

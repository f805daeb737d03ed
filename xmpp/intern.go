package xmpp

// Strings that most stanzas carry are not copied out of the stream: a
// lookup returns the constant, so that a stanza's common names and
// namespaces cost no bytes of its arena and keep no part of it alive. (A
// map index with string(b) does not allocate.)

// commonNames are element and attribute names.
var commonNames = stringSet(
	"message", "presence", "iq", "body", "subject", "thread", "error", "text", "query", "item", "group",
	"show", "status", "priority", "x", "c", "delay", "active", "composing", "paused", "inactive", "gone",
	"ping", "bind", "jid", "resource", "session", "starttls", "proceed", "auth", "success", "failure",
	"challenge", "response", "abort", "features", "mechanisms", "mechanism", "required", "enable",
	"enabled", "resume", "resumed", "r", "a", "request", "received", "sent", "forwarded", "result",
	"markable", "displayed", "acknowledged", "stanza-id", "origin-id", "nick", "html", "p", "span", "br",
	"em", "strong", "identity", "feature", "set", "first", "last", "count", "before", "after", "max", "fin",
	"vCard", "FN", "NICK", "PHOTO", "TYPE", "BINVAL", "photo", "pubsub", "event", "items", "publish",
	"retract", "subscribe", "unsubscribe", "options", "storage", "conference", "password", "reason",
	"invite", "decline", "destroy", "stream", "blocklist", "block", "unblock", "no-store", "no-copy",
	"store", "store-hint", "encryption", "field", "value", "option", "instructions", "title", "reported",
	"data", "headers", "header", "url", "desc", "replace", "reply", "reactions", "reaction", "fallback",
	"occupant-id", "openpgp", "encrypted", "key", "payload", "list", "device", "devices", "bad-request",
	"conflict", "feature-not-implemented", "forbidden", "internal-server-error", "item-not-found",
	"jid-malformed", "not-acceptable", "not-allowed", "not-authorized", "policy-violation",
	"recipient-unavailable", "remote-server-not-found", "remote-server-timeout", "resource-constraint",
	"service-unavailable", "subscription-required", "undefined-condition", "unexpected-request", "to",
	"from", "id", "type", "name", "subscription", "ask", "node", "ver", "hash", "category", "var", "code", "by",
	"stamp", "h", "xmlns", "lang", "action", "affiliation", "role", "seconds", "label", "version", "with",
	"start", "end", "queryid", "xml-lang", "jids", "mime", "size", "width", "height", "uri", "href", "src",
	"style", "alt", "sid", "approved", "ext",
)

// commonNS are namespace URIs.
var commonNS = stringSet(
	"jabber:client", "jabber:server", "jabber:component:accept", "jabber:server:dialback",
	"http://etherx.jabber.org/streams", "urn:ietf:params:xml:ns:xmpp-streams",
	"urn:ietf:params:xml:ns:xmpp-stanzas", "urn:ietf:params:xml:ns:xmpp-tls",
	"urn:ietf:params:xml:ns:xmpp-sasl", "urn:ietf:params:xml:ns:xmpp-bind",
	"urn:ietf:params:xml:ns:xmpp-session", "jabber:iq:roster", "jabber:iq:version", "jabber:iq:last",
	"jabber:iq:private", "jabber:iq:register", "jabber:iq:privacy", "jabber:iq:auth", "jabber:iq:oob",
	"jabber:x:data", "jabber:x:oob", "jabber:x:conference", "http://jabber.org/protocol/disco#info",
	"http://jabber.org/protocol/disco#items", "http://jabber.org/protocol/caps",
	"http://jabber.org/protocol/chatstates", "http://jabber.org/protocol/xhtml-im",
	"http://www.w3.org/1999/xhtml", "http://jabber.org/protocol/muc",
	"http://jabber.org/protocol/muc#user", "http://jabber.org/protocol/muc#admin",
	"http://jabber.org/protocol/muc#owner", "http://jabber.org/protocol/pubsub",
	"http://jabber.org/protocol/pubsub#event", "http://jabber.org/protocol/pubsub#owner",
	"http://jabber.org/protocol/nick", "http://jabber.org/protocol/address",
	"http://jabber.org/protocol/commands", "http://jabber.org/protocol/rsm", "urn:xmpp:ping",
	"urn:xmpp:time", "urn:xmpp:delay", "urn:xmpp:receipts", "urn:xmpp:carbons:2", "urn:xmpp:forward:0",
	"urn:xmpp:sm:3", "urn:xmpp:csi:0", "urn:xmpp:blocking", "urn:xmpp:mam:2", "urn:xmpp:chat-markers:0",
	"urn:xmpp:hints", "urn:xmpp:sid:0", "urn:xmpp:message-correct:0", "urn:xmpp:avatar:data",
	"urn:xmpp:avatar:metadata", "urn:xmpp:bookmarks:1", "urn:xmpp:http:upload:0", "urn:xmpp:eme:0",
	"urn:xmpp:sasl-cb:0", "urn:xmpp:sasl:2", "urn:xmpp:bind:0", "urn:xmpp:reply:0",
	"urn:xmpp:reactions:0", "urn:xmpp:fallback:0", "urn:xmpp:occupant-id:0", "urn:xmpp:omemo:2",
	"urn:xmpp:push:0", "urn:xmpp:features:dialback", "urn:xmpp:features:rosterver",
	"urn:xmpp:features:pre-approval", "urn:xmpp:mucsub:0", "eu.siacs.conversations.axolotl",
	"vcard-temp", "vcard-temp:x:update", "storage:bookmarks", "urn:xmpp:bookmarks-conversion:0",
	"http://www.w3.org/XML/1998/namespace",
)

func stringSet(s ...string) map[string]string {
	m := make(map[string]string, len(s))
	for _, v := range s {
		m[v] = v
	}
	return m
}

// internName returns the constant equal to b, a common element or
// attribute name, or "".
func internName(b []byte) string { return commonNames[string(b)] }

// internNS returns the constant equal to b, a common namespace URI, or "".
func internNS(b []byte) string { return commonNS[string(b)] }

package xmpp

// XML namespaces used across Parley.
const (
	NSStream     = "http://etherx.jabber.org/streams"
	NSClient     = "jabber:client"
	NSServer     = "jabber:server"
	NSAccept     = "jabber:component:accept"
	NSStreams    = "urn:ietf:params:xml:ns:xmpp-streams"
	NSStanzas    = "urn:ietf:params:xml:ns:xmpp-stanzas"
	NSTLS        = "urn:ietf:params:xml:ns:xmpp-tls"
	NSSASL       = "urn:ietf:params:xml:ns:xmpp-sasl"
	NSBind       = "urn:ietf:params:xml:ns:xmpp-bind"
	NSSession    = "urn:ietf:params:xml:ns:xmpp-session"
	NSSASLCB     = "urn:xmpp:sasl-cb:0"
	NSLimits     = "urn:xmpp:stream-limits:0"
	NSDiscoInfo  = "http://jabber.org/protocol/disco#info"
	NSDiscoItems = "http://jabber.org/protocol/disco#items"
	NSPing       = "urn:xmpp:ping"
	NSVersion    = "jabber:iq:version"
	NSTime       = "urn:xmpp:time"
	NSDelay      = "urn:xmpp:delay"
	NSXML        = "http://www.w3.org/XML/1998/namespace"
)

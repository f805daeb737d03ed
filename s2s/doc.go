// Package s2s is federation: server-to-server streams (RFC 6120) between
// this server's domains and remote ones.
//
// Outbound, one stream per pair of a local and a remote domain carries
// what the router cannot deliver itself ([Service.RouteRemote]). It is
// found by a static route, then DNS (SRV _xmpps-server and _xmpp-server,
// then the domain's addresses on 5269), secured by STARTTLS (or direct
// TLS), and authenticated by SASL EXTERNAL when the peer offers it, else
// by dialback (XEP-0220). Stanzas wait, bounded, while it connects, and
// bounce when it cannot.
//
// Inbound, a listener takes remote servers' streams: STARTTLS, then SASL
// EXTERNAL for a peer whose certificate validates for its domain (RFC
// 6125), or dialback, with this server as the receiving server (it asks
// the peer's authoritative server over a verify stream) and as the
// authoritative server (it answers db:verify for its own keys). A stanza
// is routed only for a domain pair the stream has authenticated.
//
// An outbound stream that wrote nothing for a while pings its peer
// (XEP-0199; the answer comes back on the peer's own stream), which keeps
// NAT state alive and finds a dead peer. Inbound streams are bounded per
// remote domain and paced in bytes per second; a listener may take
// direct TLS (XEP-0368) instead of STARTTLS.
//
// The package knows nothing of hosts: it asks its [Router] which domains
// are local, and hands it what remote servers send.
package s2s

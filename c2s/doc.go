// Package c2s serves client-to-server XMPP streams (RFC 6120): the
// listeners' accept loops, stream negotiation (STARTTLS, direct TLS, SASL,
// resource binding) and, once bound, a session that hands its user's
// stanzas to the router and writes what the router delivers to it through
// a bounded queue.
//
// It does not route, store or answer stanzas: that is the server package's
// job, reached through the Router interface declared here. SASL mechanisms
// live in the sasl subpackage.
package c2s

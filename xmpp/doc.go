// Package xmpp holds the protocol primitives every other part of Parley
// stands on: addresses (JID), namespaces, the stanza wrapper over an
// *etree.Element, typed stream and stanza errors with the condition names
// of RFC 6120, and the stream reader and writer.
//
// It is not a session layer: it knows nothing of sockets, TLS, SASL or
// routing. Those live in c2s, s2s, components and server, which import this
// package and never the other way round.
package xmpp

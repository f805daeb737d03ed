// Package server is Parley's core: New builds the store, the hosts and the
// router from a conf.Config and wires the listeners to them; Start and
// Shutdown run it. The router decides where each stanza goes, by domain,
// to the handler a host type built (RegisterHostType): the local type
// (package server/local) keeps users' sessions and the IM core; others
// are bots, and later rooms, uploads and components. The server names no
// host type.
//
// It is not where streams are parsed (c2s, xmpp), where data is kept
// (storage) or where the config is read (conf); and it never parses flags
// or waits for signals, so the same server runs inside a test
// (see parleytest).
package server

// Version is Parley's version, reported by jabber:iq:version and
// `parley version`. Release builds set it with -ldflags.
var Version = "0.1.0-dev"

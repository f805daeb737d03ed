// Package server is Parley itself: New builds the store, the hosts and the
// router from a conf.Config and wires the listeners to them; Start and
// Shutdown run it. The router decides where each stanza goes; the local
// hosts keep their users' sessions, apply the delivery rules of RFC 6121
// and answer the iqs addressed to the server.
//
// It is not where streams are parsed (c2s, xmpp), where data is kept
// (storage) or where the config is read (conf); and it never parses flags
// or waits for signals, so the same server runs inside a test
// (see parleytest).
package server

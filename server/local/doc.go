// Package local is the local host type: a domain whose users log in with
// client streams. It registers itself as "local", the default type of a
// [[host]] (server.RegisterHostType, conf.RegisterHostType), and gives the
// server its sessions' side (server.SessionHost): bind and unbind, what
// a client sends (FromClient), stream features, registration mode.
//
// It holds the IM core of RFC 6121 — the accounts' in-memory state (with
// the block list of XEP-0191 and the last logout of XEP-0012, which
// routing and probes read; their protocols are modules), the delivery
// rules of §8.5, presence and subscriptions, roster, offline storage — and the
// stanza pipeline on which modules register (RegisterModule, Host, Point):
// the standard ones are under server/mod, and server/std lists them.
// docs/ARCHITECTURE.md draws the pipeline's order and a worked example.
package local

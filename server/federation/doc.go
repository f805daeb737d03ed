// Package federation wires package s2s into a server: when [s2s] listen
// is set, it builds the s2s.Service from the config, makes it the
// router's Remote (what no host serves goes to it), opens the [s2s]
// listeners (STARTTLS and direct TLS, XEP-0368) at Start, writes the
// parley_s2s_* metrics and ends the service at Shutdown. It registers
// with server.RegisterService from an init; package server/std imports it.
//
// It is not federation itself (streams, dialback, SASL EXTERNAL, pings,
// limits: package s2s, which imports no server package) nor the router's
// choice of where a stanza goes (package server).
package federation

// Command parley-load puts load on an XMPP server through client streams
// and measures what the server does with it. It speaks c2s itself
// (STARTTLS, SASL with SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN from
// mellium.im/sasl, resource binding, the session iq where a server still
// requires it), so it runs against any XMPP server: Parley, Prosody,
// ejabberd.
//
//	parley-load login -n 1000 -c 50 -pid $(pidof parley)
//	parley-load msg -pairs 200 -window 10 -duration 20s -pid ...
//	parley-load msg -pairs 200 -duration 20s -stalled 1 -hang-domain hung.localhost -pid ...
//	parley-load idle -n 10000 -pid ...
//	parley-load bot -n 50 -bot-domain bots.localhost -webhook-addr 127.0.0.1:18080 -pid ...
//
// Every run is bounded by -timeout, closes every connection it opened, and
// ends with a summary and one line of JSON on standard output. With the
// server's -pid (same machine), results include its CPU time over the
// measured window, read from /proc/PID/stat, so that servers can be
// compared per CPU-second. README.md has the scenarios, what each figure
// means, and the server settings each one needs.
//
// It is not a test suite (it checks delivery, not protocol conformance)
// and not a client library: each connection does only what its scenario
// needs, with one reader goroutine.
package main

// Package interop tests Parley against real XMPP client libraries other
// than the mellium.im/xmpp the rest of the project's tests use: slixmpp
// (Python, Debian's python3-slixmpp), go-xmpp (github.com/xmppo/go-xmpp,
// the library under go-sendxmpp) and xmpp.js (npm @xmpp/client).
//
// It has no code outside its tests. Each test starts a server with
// parleytest, runs one library's client as a subprocess with a hard
// timeout (go-xmpp runs in a re-executed test binary, so that it too can be
// killed), and reads the one JSON line per step the client prints:
// {"step": ..., "ok": ..., "error": ..., "detail": {...}}. The steps are
// the same for every library: log in (with one SASL mechanism, or the
// library's own choice, over STARTTLS or direct TLS), a chat message each
// way with a second account that a raw parleytest.Conn plays, a roster
// get, a presence subscription that the peer approves, and the roster
// after it. A failure names the library and the step.
//
// The clients are scripts under testdata/interop: python/slixmpp_client.py
// (run with /usr/bin/python3, where Debian installs slixmpp) and
// node/client.mjs (with the node_modules that `npm ci --prefix
// testdata/interop/node` installs from the committed package-lock.json).
// They trust the server's generated certificate through a PEM file the
// test writes; no client turns verification off. When a client is missing
// the tests skip with what to install, except under CI (CI set and not
// "false"), where a missing client is a failure: .ci/run installs them.
//
// Group chat (the muc host) has its own cases: slixmpp's xep_0045 and
// xep_0313 on a room and a webhook bot brought in by a mediated
// invitation (slixmpp_muc_test.go, python/slixmpp_muc_client.py),
// go-xmpp's JoinMUC and LeaveMUC (goxmpp_muc_test.go),
// mellium.im/xmpp/muc (mellium_muc_test.go) and xmpp.js, which has no MUC
// plugin, with the stanzas an application sends (xmppjs_muc_test.go,
// node/muc.mjs: join with history, messages with stanza-id and
// occupant-id, a nick change, leave), each beside a raw occupant.
package interop

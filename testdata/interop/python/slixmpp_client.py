#!/usr/bin/python3
"""slixmpp client for Parley's interop tests (parleytest/interop).

Run by the Go tests with Debian's /usr/bin/python3 (python3-slixmpp):

    /usr/bin/python3 slixmpp_client.py '<config JSON>'

The config (see clientConfig in parleytest/interop/harness_test.go) names
the server, the account, the SASL mechanism ("" for slixmpp's own choice),
the transport ("starttls" or "direct"), the peer and the CA file that
verifies the server's certificate. The client prints one JSON line per
step, {"step", "ok", "error", "detail"}, stops at the first failed step and
exits 1 then, 0 when every step passed.
"""

import asyncio
import base64
import json
import logging
import re
import sys

import slixmpp


def emit(step, ok, error="", detail=None):
    print(json.dumps({"step": step, "ok": ok, "error": error, "detail": detail or {}}), flush=True)


class Wire(logging.Handler):
    """Keeps what slixmpp logs as SEND:/RECV:, for the login details and
    for error messages that show the server's answer."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        msg = record.getMessage()
        if msg.startswith(("SEND: ", "RECV: ")):
            self.lines.append(msg)

    def tail(self, n=6):
        return "\n".join(line[:600] for line in self.lines[-n:])

    def auths(self):
        """Every <auth/> sent: mechanism and the gs2 header of SCRAM."""
        out = []
        for line in self.lines:
            if not line.startswith("SEND: <auth"):
                continue
            mech = re.search(r'mechanism=["\']([^"\']+)', line)
            payload = re.search(r">([^<]*)</auth>", line)
            gs2 = ""
            if mech and mech.group(1).startswith("SCRAM") and payload:
                try:
                    first = base64.b64decode(payload.group(1)).decode("utf-8", "replace")
                    parts = first.split(",", 2)
                    gs2 = parts[0] + "," + parts[1] + "," if len(parts) == 3 else first
                except ValueError:
                    gs2 = "(bad base64)"
            out.append({"mechanism": mech.group(1) if mech else "?", "gs2": gs2})
        return out

    def failures(self):
        return [line[6:] for line in self.lines if line.startswith("RECV: <failure")]


class Client(slixmpp.ClientXMPP):
    def __init__(self, cfg, wire):
        super().__init__(cfg["jid"] + "/interop", cfg["password"])
        self.cfg = cfg
        self.wire = wire
        self.ca_certs = cfg["ca_file"]
        if cfg["mechanism"]:
            self["feature_mechanisms"].use_mech = cfg["mechanism"]
        self.peer = slixmpp.JID(cfg["peer"])
        loop = asyncio.get_event_loop()
        self.started = loop.create_future()
        self.messages = asyncio.Queue()
        self.subscribed = loop.create_future()
        self.roster_pushed = loop.create_future()
        self.add_event_handler("session_start", self.on_session_start)
        self.add_event_handler("failed_all_auth", lambda _: self.fail_login("every mechanism was refused"))
        self.add_event_handler("connection_failed", lambda e: self.fail_login("connection failed: %s" % e))
        self.add_event_handler("stream_error", lambda e: self.fail_login("stream error: %s" % e))
        self.add_event_handler("ssl_invalid_chain", lambda e: self.fail_login("invalid certificate chain: %s" % e))
        self.add_event_handler("disconnected", lambda e: self.fail_login("disconnected: %s" % e))
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("presence_subscribed", self.on_subscribed)
        self.add_event_handler("roster_update", self.on_roster_update)

    def fail_login(self, why):
        if not self.started.done():
            self.started.set_exception(RuntimeError(why))

    def on_session_start(self, _):
        # Initial presence, as every IM client sends: a resource that has
        # not sent it is not available and gets no presence (RFC 6121
        # 4.2), the subscription approval included.
        self.send_presence()
        if not self.started.done():
            self.started.set_result(True)

    def on_message(self, msg):
        self.messages.put_nowait(msg)

    def on_subscribed(self, pres):
        if pres["from"].bare == self.peer.bare and not self.subscribed.done():
            self.subscribed.set_result(pres)

    def on_roster_update(self, iq):
        # Pushes only (roster results come here too): an item for the
        # peer with subscription to or both.
        if iq["type"] != "set":
            return
        for jid, item in iq["roster"]["items"].items():
            if jid.bare == self.peer.bare and item["subscription"] in ("to", "both"):
                if not self.roster_pushed.done():
                    self.roster_pushed.set_result(item["subscription"])


async def main(cfg):
    wire = Wire()
    log = logging.getLogger("slixmpp")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.addHandler(wire)
    # slixmpp's own warnings go to stderr, which the test shows when a
    # step did not report.
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(logging.WARNING)
    log.addHandler(stderr)
    timeout = cfg["step_timeout"]
    xmpp = Client(cfg, wire)
    peer = xmpp.peer

    # login
    xmpp.connect((cfg["host"], cfg["port"]), use_ssl=cfg["tls"] == "direct", force_starttls=cfg["tls"] == "starttls",
                 disable_starttls=cfg["tls"] == "direct")
    try:
        await asyncio.wait_for(xmpp.started, timeout)
    except (RuntimeError, asyncio.TimeoutError) as e:
        why = str(e) or "no session within %gs" % timeout
        failures = wire.failures()
        if failures:
            why += "; server answered " + " then ".join(failures)
        emit("login", False, why + "\nlast on the wire:\n" + wire.tail(),
             {"attempts": wire.auths(), "gs2": (wire.auths() or [{}])[0].get("gs2", "")})
        return 1
    auths = wire.auths()
    tls_version = ""
    sock = xmpp.socket
    if hasattr(sock, "version"):
        tls_version = sock.version()
    emit("login", True, detail={
        "mechanism": xmpp["feature_mechanisms"].mech.name,
        "gs2": auths[-1]["gs2"] if auths else "",
        "attempts": auths,
        "refused": wire.failures(),
        "tls": tls_version,
        "jid": str(xmpp.boundjid),
    })

    # message: one out, the peer's answer in
    xmpp.send_message(mto=peer.bare, mbody=cfg["body"], mtype="chat")
    try:
        while True:
            msg = await asyncio.wait_for(xmpp.messages.get(), timeout)
            if msg["from"].bare != peer.bare:
                continue
            if msg["body"] != cfg["reply"]:
                emit("message", False, "the peer's answer has body %r, want %r" % (msg["body"], cfg["reply"]))
                return 1
            break
    except asyncio.TimeoutError:
        emit("message", False, "no answer from the peer within %gs\nlast on the wire:\n%s" % (timeout, wire.tail()))
        return 1
    emit("message", True)

    # roster get
    try:
        iq = await xmpp.get_roster(timeout=timeout)
    except (slixmpp.exceptions.IqError, slixmpp.exceptions.IqTimeout) as e:
        emit("roster get", False, "%s: %s" % (type(e).__name__, getattr(e, "iq", e)))
        return 1
    emit("roster get", True, detail={"items": len(iq["roster"]["items"])})

    # presence subscribe: the peer approves, the client sees the approval
    # and a roster push with subscription to.
    xmpp.send_presence_subscription(pto=peer.bare)
    try:
        await asyncio.wait_for(xmpp.subscribed, timeout)
    except asyncio.TimeoutError:
        emit("presence subscribe", False, "no <presence type='subscribed'/> from %s within %gs\nlast on the wire:\n%s"
             % (peer.bare, timeout, wire.tail()))
        return 1
    try:
        sub = await asyncio.wait_for(xmpp.roster_pushed, timeout)
    except asyncio.TimeoutError:
        emit("presence subscribe", False, "no roster push with subscription to for %s within %gs\nlast on the wire:\n%s"
             % (peer.bare, timeout, wire.tail()))
        return 1
    emit("presence subscribe", True, detail={"subscription": sub})

    # roster after subscribe
    try:
        iq = await xmpp.get_roster(timeout=timeout)
    except (slixmpp.exceptions.IqError, slixmpp.exceptions.IqTimeout) as e:
        emit("roster after subscribe", False, "%s: %s" % (type(e).__name__, getattr(e, "iq", e)))
        return 1
    # The roster as slixmpp keeps it: with roster versioning (RFC 6121
    # 2.6) the answer may be empty, the pushes having said it all.
    roster = xmpp.client_roster
    items = {str(j): roster[j]["subscription"] for j in roster.keys()}
    if items.get(peer.bare) not in ("to", "both"):
        emit("roster after subscribe", False, "roster is %r (answer %s), want %s with subscription to or both"
             % (items, iq, peer.bare))
        return 1
    emit("roster after subscribe", True, detail={"items": items, "answer_items": len(iq["roster"]["items"])})

    xmpp.disconnect()
    return 0


if __name__ == "__main__":
    config = json.loads(sys.argv[1])
    sys.exit(asyncio.run(main(config)))

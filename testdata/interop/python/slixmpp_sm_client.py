#!/usr/bin/python3
"""slixmpp stream management client for Parley's interop tests
(parleytest/interop/slixmpp_sm_test.go).

    /usr/bin/python3 slixmpp_sm_client.py '<config JSON>'

The client logs in over direct TLS (through the test's proxy, which cuts
the connection once), enables stream management with resumption
(slixmpp's xep_0198 plugin), and sends config["count"] chat messages to the
peer, one every config["interval"] seconds, with the bodies "c-0", "c-1",
...; meanwhile the peer sends "p-0", "p-1", ... When the connection drops,
the client connects again and slixmpp resumes the session. The client
prints one JSON line per step, {"step", "ok", "error", "detail"}:

  login       the session started
  enabled     <enabled/> came, with the resumption id
  disconnected, resumed   (events, ok true) as they happen
  flow        every message sent, the peer's all received, the server
              acknowledged everything: detail "received" counts each
              body of the peer's, "resent" is how many stanzas slixmpp
              sent again after <resumed/>

config["wire_log"], when set, is a file that gets everything slixmpp
logs. config["patch_resume_queue"] fixes the two defects of slixmpp 1.8's
plugin that lose the client's stanzas on a resume (patch_resume_queue
below says which).
"""

import asyncio
import json
import logging
import sys

import slixmpp
from slixmpp.stanza import Iq, Message, Presence
from slixmpp.plugins.xep_0198 import stanza as sm_stanza


def emit(step, ok, error="", detail=None):
    print(json.dumps({"step": step, "ok": ok, "error": error, "detail": detail or {}}), flush=True)


class Wire(logging.Handler):
    """Keeps the last lines slixmpp logs as SEND:/RECV:, for errors."""

    def __init__(self, path):
        super().__init__(logging.DEBUG)
        self.lines = []
        self.file = open(path, "a", encoding="utf-8") if path else None

    def emit(self, record):
        msg = record.getMessage()
        if self.file:
            # Everything slixmpp logs, for the test to show on a failure.
            self.file.write("%.3f %s %s\n" % (record.created, record.name, msg.replace("\n", " ")))
            self.file.flush()
        if msg.startswith(("SEND: ", "RECV: ")):
            self.lines.append(msg)
            del self.lines[:-40]

    def tail(self, n=12):
        return "\n".join(line[:400] for line in self.lines[-n:])


def patch_resume_queue(plugin):
    """Fixes two defects of slixmpp 1.8's XEP-0198 plugin that lose the
    client's stanzas on a resume, whatever the server does:

    1. _handle_outgoing empties unacked_queue when it sends <enable/> or
       <resume/>; XEP-0198 §5 wants what the server did not acknowledge
       sent again after <resumed/>, so on <resume/> keep the queue.
    2. A stanza the send loop takes after the connection is lost (the
       'disconnected' handler has set enabled_out to False) is neither
       counted nor kept, and send_raw drops it (NotConnectedError); while
       the session is resumable (sm_id set), keep it too.
    """
    original = plugin._handle_outgoing

    def outgoing(stanza):
        if isinstance(stanza, sm_stanza.Resume):
            plugin.enabled_out = True
            return stanza
        if not plugin.enabled_out and plugin.sm_id and isinstance(stanza, (Message, Presence, Iq)):
            plugin.enabled_out = True
            try:
                return original(stanza)
            finally:
                plugin.enabled_out = False
        return original(stanza)

    plugin.xmpp.del_filter('out_sync', original)
    plugin.xmpp.add_filter('out_sync', outgoing)


class Client(slixmpp.ClientXMPP):
    def __init__(self, cfg):
        super().__init__(cfg["jid"] + "/sm", cfg["password"])
        self.cfg = cfg
        self.ca_certs = cfg["ca_file"]
        self.register_plugin("xep_0198")
        self.sm = self["xep_0198"]
        if cfg.get("patch_resume_queue"):
            patch_resume_queue(self.sm)
        self.peer = slixmpp.JID(cfg["peer"])
        loop = asyncio.get_event_loop()
        self.started = loop.create_future()
        self.enabled = loop.create_future()
        self.received = {}
        self.got_all = asyncio.Event()
        self.finishing = False
        self.resent = 0
        self.events = []
        self.add_event_handler("session_start", self.on_session_start)
        self.add_event_handler("sm_enabled", self.on_enabled)
        self.add_event_handler("sm_failed", self.on_sm_failed)
        self.add_event_handler("session_resumed", self.on_resumed)
        self.add_event_handler("session_end", lambda _: self.note("session_end"))
        self.add_event_handler("disconnected", self.on_disconnected)
        self.add_event_handler("failed_all_auth", lambda _: self.fail("every mechanism was refused"))
        self.add_event_handler("stream_error", lambda e: self.fail("stream error: %s" % e))
        self.add_event_handler("message", self.on_message)

    def note(self, what):
        self.events.append(what)

    def fail(self, why):
        for f in (self.started, self.enabled):
            if not f.done():
                f.set_exception(RuntimeError(why))

    def reconnect_now(self):
        self.connect((self.cfg["host"], self.cfg["port"]), use_ssl=True, disable_starttls=True)

    def on_session_start(self, _):
        self.note("session_start")
        self.send_presence()
        if not self.started.done():
            self.started.set_result(True)

    def on_enabled(self, el):
        self.note("enabled")
        if not self.enabled.done():
            self.enabled.set_result({"id": el["id"], "resume": el["resume"]})

    def on_sm_failed(self, el):
        self.note("sm_failed")
        emit("resumed", False, "the server answered %s" % el)
        self.fail("sm failed: %s" % el)

    def on_resumed(self, el):
        self.note("resumed")
        # _handle_resumed has just sent again what remained unacked.
        self.resent = len(self.sm.unacked_queue)
        emit("resumed", True, detail={"h": str(el["h"]), "resent": self.resent})

    def on_disconnected(self, reason):
        self.note("disconnected")
        if self.finishing:
            return
        emit("disconnected", True, detail={"reason": str(reason)})
        # As a client on a phone does: connect again, and resume.
        asyncio.get_event_loop().call_later(0.1, self.reconnect_now)

    def on_message(self, msg):
        if msg["from"].bare != self.peer.bare or not msg["body"].startswith("p-"):
            return
        body = msg["body"]
        self.received[body] = self.received.get(body, 0) + 1
        if len(self.received) >= self.cfg["count"]:
            self.got_all.set()


async def main(cfg):
    wire = Wire(cfg.get("wire_log"))
    log = logging.getLogger("slixmpp")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.addHandler(wire)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(logging.WARNING)
    log.addHandler(stderr)
    timeout = cfg["step_timeout"]
    xmpp = Client(cfg)
    xmpp.reconnect_now()

    for step, fut in (("login", xmpp.started), ("enabled", xmpp.enabled)):
        try:
            result = await asyncio.wait_for(fut, timeout)
        except (RuntimeError, asyncio.TimeoutError) as e:
            emit(step, False, "%s\nlast on the wire:\n%s" % (str(e) or "nothing within %gs" % timeout, wire.tail()))
            return 1
        emit(step, True, detail=result if isinstance(result, dict) else {"jid": str(xmpp.boundjid)})

    # A steady flow: send while connected or not (slixmpp holds what is
    # sent while disconnected until the session resumes).
    for i in range(cfg["count"]):
        xmpp.send_message(mto=xmpp.peer, mbody="c-%d" % i, mtype="chat")
        await asyncio.sleep(cfg["interval"])
    try:
        await asyncio.wait_for(xmpp.got_all.wait(), timeout)
    except asyncio.TimeoutError:
        pass
    # Everything the client sent acknowledged: ask until the queue is empty.
    deadline = asyncio.get_event_loop().time() + timeout
    while xmpp.sm.unacked_queue and asyncio.get_event_loop().time() < deadline:
        if xmpp.is_connected():
            xmpp.sm.request_ack()
        await asyncio.sleep(0.2)
    detail = {"received": xmpp.received, "resent": xmpp.resent, "unacked": len(xmpp.sm.unacked_queue),
              "events": xmpp.events}
    ok = len(xmpp.received) >= cfg["count"] and not xmpp.sm.unacked_queue
    error = "" if ok else "got %d of the peer's %d messages, %d stanzas unacknowledged\nlast on the wire:\n%s" % (
        len(xmpp.received), cfg["count"], len(xmpp.sm.unacked_queue), wire.tail())
    emit("flow", ok, error, detail)
    xmpp.finishing = True
    await xmpp.disconnect()
    return 0 if ok else 1


if __name__ == "__main__":
    config = json.loads(sys.argv[1])
    sys.exit(asyncio.run(main(config)))

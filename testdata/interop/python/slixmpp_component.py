#!/usr/bin/python3
"""slixmpp external component (XEP-0114) for Parley's interop tests
(parleytest/interop/slixmpp_component_test.go).

Run by the Go test with Debian's /usr/bin/python3 (python3-slixmpp):

    /usr/bin/python3 slixmpp_component.py '<config JSON>'

The config names the component port, the component's domain and secret,
the user that talks to it and a JID outside the component's domain. One
JSON line per step, {"step", "ok", "error", "detail"}, on stdout:

  connect   slixmpp's ComponentXMPP connected and the handshake passed
  receive   a message from the user came for bot@<domain>; the component
            answers it from there with "re: " and the body
  foreign   the component sends a message from the foreign JID; the server
            must end the stream with <invalid-from/> (detail: the error
            seen on the wire)

It stops at the first failed step and exits 1 then, 0 when every step
passed.
"""

import asyncio
import json
import logging
import sys

from slixmpp.componentxmpp import ComponentXMPP


def emit(step, ok, error="", detail=None):
    print(json.dumps({"step": step, "ok": ok, "error": error, "detail": detail or {}}), flush=True)


class Wire(logging.Handler):
    """Keeps what slixmpp logs as RECV:, to see the server's stream error."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.received = []

    def emit(self, record):
        msg = record.getMessage()
        if msg.startswith("RECV: "):
            self.received.append(msg[len("RECV: "):])


def main():
    cfg = json.loads(sys.argv[1])
    wire = Wire()
    logging.getLogger("slixmpp").addHandler(wire)
    logging.getLogger("slixmpp").setLevel(logging.DEBUG)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    step_timeout = cfg["step_timeout"]

    comp = ComponentXMPP(cfg["domain"], cfg["secret"], cfg["host"], cfg["port"])
    loop = asyncio.get_event_loop()
    started = loop.create_future()
    got = loop.create_future()
    ended = loop.create_future()

    def on_start(_):
        if not started.done():
            started.set_result(True)

    def on_message(msg):
        if not got.done():
            got.set_result(msg)

    def on_end(_):
        if not ended.done():
            ended.set_result(True)

    comp.add_event_handler("session_start", on_start)
    comp.add_event_handler("message", on_message)
    comp.add_event_handler("disconnected", on_end)
    comp.add_event_handler("connection_failed", on_end)

    async def wait(fut, what):
        try:
            return await asyncio.wait_for(asyncio.shield(fut), step_timeout)
        except asyncio.TimeoutError:
            raise RuntimeError("no %s within %ss; last received: %s" % (what, step_timeout, wire.received[-3:]))

    async def steps():
        comp.connect()
        step = "connect"
        try:
            await wait(started, "handshake answer")
            emit(step, True, detail={"domain": cfg["domain"]})

            step = "receive"
            msg = await wait(got, "message")
            detail = {"from": str(msg["from"]), "to": str(msg["to"]), "body": msg["body"]}
            if msg["from"].bare != cfg["user"] or msg["to"].bare != "bot@" + cfg["domain"]:
                emit(step, False, "the message is not from the user to bot@domain", detail)
                return 1
            comp.send_message(mto=msg["from"], mfrom="bot@" + cfg["domain"], mbody="re: " + msg["body"],
                              mtype="chat")
            emit(step, True, detail=detail)

            step = "foreign"
            comp.send_message(mto=cfg["user"], mfrom=cfg["foreign"], mbody="spoofed", mtype="chat")
            await wait(ended, "end of the stream")
            errors = [r for r in wire.received if "stream:error" in r or "urn:ietf:params:xml:ns:xmpp-streams" in r]
            ok = any("invalid-from" in r for r in errors)
            emit(step, ok, "" if ok else "no <invalid-from/> stream error", {"stream_errors": errors})
            return 0 if ok else 1
        except Exception as e:  # noqa: BLE001 - every failure is a step's
            emit(step, False, "%s: %s" % (type(e).__name__, e))
            return 1

    code = loop.run_until_complete(steps())
    comp.disconnect()
    sys.exit(code)


if __name__ == "__main__":
    main()

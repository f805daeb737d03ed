#!/usr/bin/python3
"""slixmpp clients for the modern-client cases of Parley's interop tests
(parleytest/interop/slixmpp_modern_test.go): carbons, MAM, CSI and PEP
through slixmpp's own plugins, as an application calls them.

    /usr/bin/python3 slixmpp_modern_client.py '<config JSON>'

config["case"] picks the case; config["accounts"] maps a role to its
{"jid", "password", "resource"}. Every client connects over direct TLS and
trusts config["ca_file"]. The script prints one JSON line per step,
{"step", "ok", "error", "detail"}; the test reads them as they come (some
steps tell it to act: "ready" lets its raw peer send) and checks the
details. What a case does and reports is in its function's docstring.
"""

import asyncio
import json
import logging
import re
import sys

import slixmpp


def emit(step, ok, error="", detail=None):
    print(json.dumps({"step": step, "ok": ok, "error": error, "detail": detail or {}}), flush=True)


class Wire(logging.Handler):
    """Keeps the last lines slixmpp logs as SEND:/RECV:, for errors, and
    every <auth/> the clients sent (which SASL they used)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []
        self.auth = []
        # config["wire_log"]: a file that gets every line, for debugging.
        self.file = None

    def emit(self, record):
        msg = record.getMessage()
        if self.file:
            self.file.write("%.3f %s\n" % (record.created, msg.replace("\n", " ")))
            self.file.flush()
        if not msg.startswith(("SEND: ", "RECV: ")):
            return
        m = re.match(r'SEND: <(auth|authenticate) xmlns="([^"]+)" mechanism="([^"]+)"', msg)
        if m:
            # Which SASL: urn:ietf:params:xml:ns:xmpp-sasl or SASL2's.
            self.auth.append({"element": m.group(1), "xmlns": m.group(2), "mechanism": m.group(3)})
        self.lines.append(msg)
        del self.lines[:-40]

    def tail(self, n=12):
        return "\n".join(line[:400] for line in self.lines[-n:])


WIRE = Wire()


class Client(slixmpp.ClientXMPP):
    """One account's session, with the plugins its case names."""

    def __init__(self, cfg, role, plugins, presence=True):
        acct = cfg["accounts"][role]
        super().__init__(acct["jid"] + "/" + acct["resource"], acct["password"])
        self.cfg = cfg
        self.role = role
        self.ca_certs = cfg["ca_file"]
        for p in plugins:
            self.register_plugin(p)
        self.presence = presence
        loop = asyncio.get_event_loop()
        self.started = loop.create_future()
        self.messages = []  # ("direct"|"received"|"sent", peer JID, body)
        self.presences = []  # (from, show, status) of others' presence
        self.changed = asyncio.Event()
        self.add_event_handler("session_start", self.on_session_start)
        for ev in ("failed_all_auth", "connection_failed", "stream_error", "ssl_invalid_chain"):
            self.add_event_handler(ev, lambda e, ev=ev: self.fail("%s: %s" % (ev, e)))
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("carbon_received", self.on_carbon_received)
        self.add_event_handler("carbon_sent", self.on_carbon_sent)
        self.add_event_handler("presence", self.on_presence)

    def fail(self, why):
        if not self.started.done():
            self.started.set_exception(RuntimeError(why))

    async def on_session_start(self, _):
        if "xep_0115" in self.plugin:
            # The caps hash the presence carries must cover every
            # feature (+notify included) before the server asks for it.
            await self["xep_0115"].update_caps(broadcast=False)
        if self.presence:
            self.send_presence()
        if not self.started.done():
            self.started.set_result(True)

    def note(self):
        self.changed.set()

    def on_message(self, msg):
        # Carbons come here too, as a wrapper without a body.
        if msg["body"]:
            self.messages.append(("direct", str(msg["from"]), msg["body"]))
            self.note()

    def on_carbon_received(self, msg):
        inner = msg["carbon_received"]
        self.messages.append(("received", str(inner["from"]), inner["body"]))
        self.note()

    def on_carbon_sent(self, msg):
        inner = msg["carbon_sent"]
        self.messages.append(("sent", str(inner["to"]), inner["body"]))
        self.note()

    def on_presence(self, pres):
        if pres["from"].bare == self.boundjid.bare:
            return
        # type is the show for an available presence.
        self.presences.append((str(pres["from"]), pres["type"], pres["status"]))
        self.note()

    async def until(self, cond, what, timeout):
        """Waits until cond() holds, or fails with what after timeout."""
        end = asyncio.get_event_loop().time() + timeout
        while not cond():
            left = end - asyncio.get_event_loop().time()
            if left <= 0:
                raise RuntimeError("%s: no %s within %gs" % (self.boundjid, what, timeout))
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def sync(self):
        """A ping to the server and its answer: whatever the server sent
        before its answer has been read."""
        await self["xep_0199"].send_ping(self.boundjid.domain, timeout=self.cfg["step_timeout"])


async def login(cfg, *clients):
    for c in clients:
        c.connect((cfg["host"], cfg["port"]), use_ssl=True, disable_starttls=True)
    await asyncio.wait_for(asyncio.gather(*(c.started for c in clients)), cfg["step_timeout"])
    emit("login", True, detail={"jids": [str(c.boundjid) for c in clients], "auth": WIRE.auth})


async def case_carbons(cfg):
    """Two resources of alice, "phone" and "laptop", enable carbons
    (xep_0280). On "ready" the test's raw peer bob sends three chat
    messages to alice/phone: "to-phone", "to-phone-private" (with
    <private/>), "to-phone-last"; meanwhile the phone sends bob "from-phone",
    "from-phone-private" (with <private/>), "from-phone-last". Step
    "carbons" reports, for each resource, what it got in order: direct
    messages, received carbons and sent carbons, each (kind, JID, body). It
    waits for the "-last" ones on the laptop: order on the way means the
    private ones, sent before, would have come by then."""
    plugins = ["xep_0030", "xep_0199", "xep_0280"]
    phone = Client(cfg, "phone", plugins)
    laptop = Client(cfg, "laptop", plugins)
    await login(cfg, phone, laptop)
    t = cfg["step_timeout"]
    await asyncio.wait_for(asyncio.gather(phone["xep_0280"].enable(), laptop["xep_0280"].enable()), t)
    emit("ready", True, detail={"phone": str(phone.boundjid), "laptop": str(laptop.boundjid)})
    bob = cfg["peer"]
    for body, private in (("from-phone", False), ("from-phone-private", True), ("from-phone-last", False)):
        msg = phone.make_message(mto=bob, mbody=body, mtype="chat")
        if private:
            msg.enable("carbon_private")
        msg.send()

    def has(c, kind, body):
        return any(m[0] == kind and m[2] == body for m in c.messages)

    await laptop.until(lambda: has(laptop, "received", "to-phone-last") and has(laptop, "sent", "from-phone-last"),
                       "carbons of the last messages", t)
    await phone.until(lambda: has(phone, "direct", "to-phone-last"), "bob's last message", t)
    await asyncio.gather(phone.sync(), laptop.sync())
    emit("carbons", True, detail={"phone": phone.messages, "laptop": laptop.messages})
    return [phone, laptop]


async def case_mam(cfg):
    """alice queries her archive with xep_0313's iterate (RSM pages of
    config["page"]) forwards, then backwards (reverse=True). Steps
    "forward" and "backward" report every message as (from, to, body,
    archive id) in
    the order slixmpp yields them."""
    c = Client(cfg, "alice", ["xep_0030", "xep_0059", "xep_0199", "xep_0313"])
    await login(cfg, c)
    for step, reverse in (("forward", False), ("backward", True)):
        got = []

        async def collect():
            it = c["xep_0313"].iterate(with_jid=slixmpp.JID(cfg["peer"]), reverse=reverse,
                                       rsm={"max": cfg["page"]})
            async for msg in it:
                fwd = msg["mam_result"]["forwarded"]["stanza"]
                got.append((str(fwd["from"].bare), str(fwd["to"].bare), fwd["body"], msg["mam_result"]["id"]))

        await asyncio.wait_for(collect(), cfg["step_timeout"] * 3)
        emit(step, True, detail={"messages": got})
    return [c]


async def go_on():
    """Waits for the test's "next" line on stdin: the test has done what
    the last step asked of it."""
    line = await asyncio.get_event_loop().run_in_executor(None, sys.stdin.readline)
    if not line:
        raise RuntimeError("the test closed stdin")


async def case_csi(cfg):
    """alice (xep_0352) sends <inactive/> and a ping, so that the server
    has it before step "inactive" lets the test act: its raw peer bob
    changes his presence twice. Then alice pings and step "held" reports
    the presences from bob that came since she went inactive; bob sends a
    chat message "through"; step "body" reports what came with it, once it
    came; bob changes his presence twice more, alice pings, step "held
    again"; alice sends <active/> and a ping, step "active". Each step's
    "presences" are (from, show, status) of what came since the previous
    step."""
    c = Client(cfg, "alice", ["xep_0030", "xep_0199", "xep_0352"])
    await login(cfg, c)
    t = cfg["step_timeout"]
    # bob's presence answering alice's initial presence, before she is
    # inactive: it is not held.
    await c.until(lambda: any(p[2] == "initial" for p in c.presences), "bob's initial presence", t)
    await c.sync()
    if not c["xep_0352"].enabled:
        # send_inactive would send nothing: slixmpp saw no <csi/> feature.
        raise RuntimeError("the server offered no CSI stream feature")
    c["xep_0352"].send_inactive()
    await c.sync()
    mark = len(c.presences)

    def report(step, **extra):
        nonlocal mark
        emit(step, True, detail=dict(presences=c.presences[mark:], **extra))
        mark = len(c.presences)

    emit("inactive", True)
    await asyncio.wait_for(go_on(), t)
    await c.sync()
    report("held")
    await asyncio.wait_for(go_on(), t)
    await c.until(lambda: any(m[2] == "through" for m in c.messages), "bob's message", t)
    report("body", messages=c.messages)
    await asyncio.wait_for(go_on(), t)
    await c.sync()
    report("held again")
    c["xep_0352"].send_active()
    await c.sync()
    report("active")
    return [c]


async def case_pep(cfg):
    """alice publishes her nick (xep_0172); bob (xep_0172 registered: his
    caps have http://jabber.org/protocol/nick+notify) and carol (caps
    without it) are contacts subscribed to her presence. Step "published"
    is the publish's answer; step "notify" reports the nicks bob and carol
    got from alice, once bob has his and both have pinged the server."""
    base = ["xep_0030", "xep_0115", "xep_0163", "xep_0199"]
    alice = Client(cfg, "alice", base + ["xep_0172"])
    bob = Client(cfg, "bob", base + ["xep_0172"])
    carol = Client(cfg, "carol", base)
    got = {"bob": [], "carol": []}

    def on_nick(who, c):
        def handler(msg):
            if msg["from"].bare == alice.boundjid.bare:
                payload = msg["pubsub_event"]["items"]["item"]["payload"]
                got[who].append(payload.text if payload is not None else None)
                c.note()
        return handler

    bob.add_event_handler("user_nick_publish", on_nick("bob", bob))
    # carol has no nick plugin: catch any pubsub event from alice.
    carol.add_event_handler("pubsub_publish", on_nick("carol", carol))
    await login(cfg, bob, carol)
    await login(cfg, alice)
    t = cfg["step_timeout"]
    # Let the server ask bob's and carol's caps (it asks on their presence)
    # before the publish; a notification after, from the last item on
    # verified caps, would count too.
    await asyncio.gather(bob.sync(), carol.sync(), alice.sync())
    res = await asyncio.wait_for(alice["xep_0172"].publish_nick(cfg["nick"]), t)
    emit("published", True, detail={"type": res["type"]})
    await bob.until(lambda: got["bob"], "nick notification", t)
    await asyncio.gather(bob.sync(), carol.sync())
    emit("notify", True, detail=got)
    return [alice, bob, carol]


CASES = {"carbons": case_carbons, "mam": case_mam, "csi": case_csi, "pep": case_pep}


async def main(cfg):
    log = logging.getLogger("slixmpp")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.addHandler(WIRE)
    if cfg.get("wire_log"):
        WIRE.file = open(cfg["wire_log"], "a", encoding="utf-8")
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(logging.WARNING)
    log.addHandler(stderr)
    try:
        clients = await CASES[cfg["case"]](cfg)
    except Exception as e:  # every failure is reported as a step
        emit("failed", False, "%s: %s\nlast on the wire:\n%s" % (type(e).__name__, e, WIRE.tail()))
        return 1
    for c in clients:
        c.disconnect()
    emit("done", True)
    return 0


if __name__ == "__main__":
    config = json.loads(sys.argv[1])
    sys.exit(asyncio.run(main(config)))

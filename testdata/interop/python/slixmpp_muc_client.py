#!/usr/bin/python3
"""slixmpp's group chat (xep_0045) against Parley's muc host, for the
interop tests of parleytest/interop/slixmpp_muc_test.go: what an
application does with the plugin's own calls, and xep_0313 on a room.

    /usr/bin/python3 slixmpp_muc_client.py '<config JSON>'

The config is the modern cases' (slixmpp_modern_client.py, whose Client,
login and wire log this script uses) with config["room"], the room's bare
JID, and for the "invite" case config["invitee"]. One JSON line per step,
{"step", "ok", "error", "detail"}; a step the test must act on is followed
by a wait for its "next" line on stdin. What a case does and reports is in
its function's docstring.
"""

import asyncio
import json
import sys

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

import slixmpp_modern_client as modern
from slixmpp_modern_client import Client, emit, go_on, login

NS_MUC_USER = "{http://jabber.org/protocol/muc#user}"
PLUGINS = ["xep_0030", "xep_0004", "xep_0045", "xep_0059", "xep_0199", "xep_0313", "xep_0359", "xep_0421"]


class Room:
    """What one client saw of a room: every presence and group-chat
    message from it, in order."""

    def __init__(self, c, room):
        self.c = c
        self.room = slixmpp.JID(room)
        self.presences = []  # dicts, see on_presence
        self.messages = []  # dicts, see on_message
        # A stanza handler, not the plugin's groupchat_presence event: the
        # plugin stops reporting a room's presence once leave_muc has
        # forgotten the room (and the "presence" event skips rooms).
        c.register_handler(Callback("room presence " + room, StanzaPath("presence/muc"), self.on_presence))
        c.add_event_handler("groupchat_message", self.on_message)

    def on_presence(self, pres):
        if pres["from"].bare != self.room.bare:
            return
        x = pres.xml.find(NS_MUC_USER + "x")
        item = x.find(NS_MUC_USER + "item") if x is not None else None
        self.presences.append({
            "nick": pres["from"].resource,
            "type": pres["type"],
            "codes": sorted(int(s.get("code")) for s in x.findall(NS_MUC_USER + "status")) if x is not None else [],
            "item_nick": item.get("nick", "") if item is not None else "",
            "affiliation": item.get("affiliation", "") if item is not None else "",
            "role": item.get("role", "") if item is not None else "",
        })
        self.c.note()

    def on_message(self, msg):
        if msg["from"].bare != self.room.bare:
            return
        self.messages.append({
            "nick": msg["from"].resource,
            "id": msg["id"],
            "body": msg["body"],
            "stanza_id": msg["stanza_id"]["id"],
            "stanza_id_by": str(msg["stanza_id"]["by"]),
            "occupant_id": msg["occupant-id"]["id"],
        })
        self.c.note()

    def presence(self, nick, typ, code=None):
        """The last presence of nick of type typ (available is ""), with
        status code when given, or None."""
        for p in reversed(self.presences):
            if p["nick"] == nick and (p["type"] == "unavailable") == (typ == "unavailable") and \
                    (code is None or code in p["codes"]):
                return p
        return None

    async def wait_presence(self, nick, typ, code=None):
        await self.c.until(lambda: self.presence(nick, typ, code) is not None,
                           "%s presence of %s/%s%s" % (typ or "available", self.room, nick,
                                                       " with %s" % code if code else ""),
                           self.c.cfg["step_timeout"])
        return self.presence(nick, typ, code)

    async def say(self, body):
        """Sends body and waits for the room's echo (XEP-0045 §7.4: the
        sender gets its own message back, with its id)."""
        msg = self.c.make_message(self.room, mbody=body, mtype="groupchat")
        mid = msg["id"]
        msg.send()
        await self.c.until(lambda: any(m["id"] == mid for m in self.messages), "echo of " + mid,
                           self.c.cfg["step_timeout"])
        return [m for m in self.messages if m["id"] == mid][0]


def join_detail(res):
    pres, subject, occupants, history = res
    return {
        "from": str(pres["from"]),
        "codes": sorted(int(c) for c in pres["muc"]["status_codes"]),
        "affiliation": pres["muc"]["affiliation"],
        "role": pres["muc"]["role"],
        "subject": subject["subject"],
        "occupants": sorted(p["from"].resource for p in occupants),
        "history": [h["body"] for h in history],
    }


async def case_room(cfg):
    """alice, with xep_0045, in the room the test made ("lobby" there:
    config["lobby"], where its raw bob is, with a subject and two
    messages) and in one she creates (config["room"]):

      join     join_muc_wait on the lobby with maxstanzas=1: the
               self-presence's codes, affiliation, role, the subject, the
               occupants, the history
      create   join_muc_wait on the new room: codes (201), owner, moderator
      config   get_room_config, roomname and persistentroom set,
               set_room_config; detail: the form's vars, and the roomname
               and persistentroom of the form asked for again
      ready    waits for "next": bob has joined the room
      message  a groupchat message with markup; its echo (id, body,
               stanza-id and its by, occupant-id)
      nick     presence to room/Alicia: the unavailable self-presence (303
               and the new nick) and the new self-presence
      kick     set_role none on Bob: his unavailable presence (307)
      kicked   waits for "next": bob has joined again
      ban      set_affiliation outcast on bob's JID: his presence (301),
               and get_affiliation_list outcast
      archive  three more messages, then xep_0313 on the room in RSM pages
               of config["page"]: the pages' sizes and each message's
               (nick, body, archive id); then backwards (iterate with
               reverse=True): the archive ids as they came; the echoes'
               (body, stanza-id)
      leave    leave_muc: the unavailable self-presence (110)
    """
    t = cfg["step_timeout"]
    alice = Client(cfg, "alice", PLUGINS)
    await login(cfg, alice)
    muc = alice["xep_0045"]

    lobby = Room(alice, cfg["lobby"])
    res = await muc.join_muc_wait(lobby.room, "Alice", maxstanzas=1, timeout=t)
    emit("join", True, detail=join_detail(res))

    room = Room(alice, cfg["room"])
    res = await muc.join_muc_wait(room.room, "Alice", timeout=t)
    emit("create", True, detail=join_detail(res))

    form = await muc.get_room_config(room.room, timeout=t)
    fields = form.get_fields()
    vars_ = list(fields)
    fields["muc#roomconfig_roomname"]["value"] = "Team <&> room"
    fields["muc#roomconfig_persistentroom"]["value"] = True
    await muc.set_room_config(room.room, form, timeout=t)
    again = (await muc.get_room_config(room.room, timeout=t)).get_fields()
    emit("config", True, detail={"vars": vars_, "roomname": again["muc#roomconfig_roomname"]["value"],
                                 "persistent": again["muc#roomconfig_persistentroom"]["value"]})

    emit("ready", True)
    await asyncio.wait_for(go_on(), t)
    await room.wait_presence("Bob", "")

    echo = await room.say("hi <&> ☃")
    emit("message", True, detail=echo)

    alice.send_presence(pto="%s/%s" % (room.room, "Alicia"))
    gone = await room.wait_presence("Alice", "unavailable", 303)
    back = await room.wait_presence("Alicia", "", 110)
    muc.our_nicks[room.room] = "Alicia"
    emit("nick", True, detail={"unavailable": gone, "available": back})

    await muc.set_role(room.room, "Bob", "none", reason="kick test", timeout=t)
    kicked = await room.wait_presence("Bob", "unavailable", 307)
    emit("kick", True, detail=kicked)
    emit("kicked", True)
    await asyncio.wait_for(go_on(), t)
    await alice.until(lambda: room.presences[-1]["nick"] == "Bob" and room.presences[-1]["type"] != "unavailable",
                      "Bob back in the room", t)

    await muc.set_affiliation(room.room, "outcast", jid=slixmpp.JID(cfg["peer"]), reason="ban test", timeout=t)
    banned = await room.wait_presence("Bob", "unavailable", 301)
    outcasts = await muc.get_affiliation_list(room.room, "outcast", timeout=t)
    emit("ban", True, detail={"presence": banned, "outcasts": sorted(str(j) for j in outcasts)})

    echoes = [echo]
    for body in ("two", "three", "four"):
        echoes.append(await room.say(body))
    got, pages = [], []

    async def collect():
        it = alice["xep_0313"].retrieve(jid=room.room, iterator=True, rsm={"max": cfg["page"]})
        async for page in it:
            results = page["mam"]["results"]
            pages.append(len(results))
            for msg in results:
                fwd = msg["mam_result"]["forwarded"]["stanza"]
                got.append([fwd["from"].resource, fwd["body"], msg["mam_result"]["id"]])

    backward = []

    async def collect_backward():
        it = alice["xep_0313"].iterate(jid=room.room, reverse=True, rsm={"max": cfg["page"]})
        async for msg in it:
            backward.append(msg["mam_result"]["id"])

    await asyncio.wait_for(collect(), t * 3)
    await asyncio.wait_for(collect_backward(), t * 3)
    emit("archive", True, detail={"pages": pages, "messages": got, "backward": backward,
                                  "echoes": [[e["body"], e["stanza_id"]] for e in echoes]})

    muc.leave_muc(room.room, "Alicia")
    left = await room.wait_presence("Alicia", "unavailable", 110)
    emit("leave", True, detail=left)
    return [alice]


async def case_invite(cfg):
    """alice creates config["room"] (an instant room: the form she gets,
    submitted as it is), invites config["invitee"] through the room
    (xep_0045's invite, XEP-0045 §7.8.2) and waits for an occupant of the
    invitee's domain ("invited": its nick). She says "bots: hello <&>",
    then "bots: last", each after the answer to the one before, and step
    "answers" reports every group-chat body the room sent from the
    invitee's nick, once a ping has come back after the answer to "last"."""
    t = cfg["step_timeout"]
    alice = Client(cfg, "alice", PLUGINS)
    await login(cfg, alice)
    muc = alice["xep_0045"]
    room = Room(alice, cfg["room"])
    await muc.join_muc_wait(room.room, "Alice", timeout=t)
    form = await muc.get_room_config(room.room, timeout=t)
    await muc.set_room_config(room.room, form, timeout=t)
    emit("create", True)

    muc.invite(room.room, slixmpp.JID(cfg["invitee"]), reason="help us")
    await alice.until(lambda: any(p["nick"] not in ("Alice", "") and p["type"] != "unavailable" for p in room.presences),
                      "the invitee in the room", t)
    nick = [p["nick"] for p in room.presences if p["nick"] not in ("Alice", "")][0]
    emit("invited", True, detail={"nick": nick})

    for body in ("bots: hello <&>", "bots: last"):
        await room.say(body)
        await alice.until(lambda: any(m["nick"] == nick and m["body"] == "re: " + body for m in room.messages),
                          "the bot's answer to " + body, t)
    await alice.sync()
    emit("answers", True, detail={"bodies": [m["body"] for m in room.messages if m["nick"] == nick]})
    return [alice]


modern.CASES.update({"muc-room": case_room, "muc-invite": case_invite})

if __name__ == "__main__":
    sys.exit(asyncio.run(modern.main(json.loads(sys.argv[1]))))

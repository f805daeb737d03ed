// xmpp.js group-chat client for Parley's interop tests
// (parleytest/interop/xmppjs_muc_test.go).
//
//   NODE_EXTRA_CA_CERTS=ca.pem node muc.mjs '<config JSON>'
//
// xmpp.js 0.14 has no MUC plugin: an application joins, speaks and leaves
// with stanzas of its own (XEP-0045), as this script does. The config is
// clientConfig (parleytest/interop/harness_test.go) with the room, the
// nick and the nick to change to. It logs in over direct TLS with
// @xmpp/client's defaults and prints one JSON line per step, {"step", "ok",
// "error", "detail"}: login, join, message, nick, leave. It stops at the
// first failed step and exits 1 then, 0 when every step passed.

import dns from "node:dns";

import { client, xml } from "@xmpp/client";

const cfg = JSON.parse(process.argv[2]);
const NS_MUC = "http://jabber.org/protocol/muc";
const NS_MUC_USER = "http://jabber.org/protocol/muc#user";
const NS_SID = "urn:xmpp:sid:0";
const NS_OID = "urn:xmpp:occupant-id:0";
const NS_DELAY = "urn:xmpp:delay";

process.on("unhandledRejection", (err) => {
  process.stderr.write(`unhandled rejection: ${err?.stack || err}\n`);
});
const timeout = cfg.step_timeout * 1000;
dns.setDefaultResultOrder("ipv4first");

function emit(step, ok, error = "", detail = {}) {
  process.stdout.write(JSON.stringify({ step, ok, error, detail }) + "\n");
}

// Everything on the wire, both ways, for the errors.
const wire = [];
function tail(n = 8) {
  return wire
    .slice(-n)
    .map((l) => (l.length > 600 ? l.slice(0, 600) + "..." : l))
    .join("\n");
}

const xmpp = client({
  service: `xmpps://${cfg.domain}:${cfg.port}`,
  domain: cfg.domain,
  resource: "interop",
  username: cfg.jid.split("@")[0],
  password: cfg.password,
});
xmpp.reconnect.stop();
xmpp.on("send", (el) => wire.push("SEND: " + el.toString()));
xmpp.on("element", (el) => wire.push("RECV: " + el.toString()));
let lastError = null;
xmpp.on("error", (err) => {
  lastError = err;
});

// The stanzas received, in order; next waits for the first one after
// those already taken that match accepts, and returns it with the ones
// it passed over.
const inbox = [];
let taken = 0;
let wake = null;
xmpp.on("stanza", (st) => {
  inbox.push(st);
  wake?.();
});

function next(what, match) {
  return new Promise((resolve, reject) => {
    const passed = [];
    const timer = setTimeout(() => {
      wake = null;
      reject(new Error(`no ${what} within ${cfg.step_timeout}s`));
    }, timeout);
    const check = () => {
      while (taken < inbox.length) {
        const st = inbox[taken++];
        if (st.is("presence") && st.attrs.type === "error" && st.attrs.from?.startsWith(cfg.room)) {
          clearTimeout(timer);
          wake = null;
          reject(new Error(`waiting for ${what}, the room answered ${st.toString()}`));
          return;
        }
        if (match(st)) {
          clearTimeout(timer);
          wake = null;
          resolve({ st, passed });
          return;
        }
        passed.push(st);
      }
    };
    wake = check;
    check();
  });
}

// codes are the muc#user status codes of a stanza.
function codes(st) {
  const x = st.getChild("x", NS_MUC_USER);
  return x ? x.getChildren("status").map((s) => s.attrs.code) : [];
}

const bare = (j) => String(j ?? "").split("/")[0];
const isGroupchat = (st) => st.is("message") && st.attrs.type === "groupchat";

// step runs fn as the named step: it emits the step's result and throws
// on a failure, which ends the run.
async function step(name, fn) {
  let detail;
  try {
    detail = await fn();
  } catch (err) {
    let msg = String(err?.message || err);
    if (lastError && lastError !== err) msg += ` (${lastError.message || lastError})`;
    emit(name, false, `${msg}\nlast on the wire:\n${tail()}`);
    throw err;
  }
  emit(name, true, "", detail ?? {});
}

async function main() {
  await step("login", async () => {
    const online = new Promise((resolve) => xmpp.once("online", resolve));
    let timer;
    await Promise.race([
      Promise.all([xmpp.start(), online]),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("no session")), timeout);
      }),
    ]).finally(() => clearTimeout(timer));
    return { jid: String(xmpp.jid) };
  });

  let me = `${cfg.room}/${cfg.nick}`;

  // join: the occupants' presence, ours last with status 110 (XEP-0045
  // §7.2.3), then the history, delayed, then the subject (§7.2.15).
  await step("join", async () => {
    await xmpp.send(
      xml("presence", { to: me }, xml("x", { xmlns: NS_MUC }, xml("history", { maxstanzas: "5" }))),
    );
    const self = await next(`the self-presence from ${me}`, (st) => st.is("presence") && st.attrs.from === me);
    const { passed } = await next(
      `the subject of ${cfg.room}`,
      (st) => isGroupchat(st) && st.getChild("subject") && !st.getChild("body"),
    );
    const history = passed.filter((st) => isGroupchat(st) && st.getChild("body"));
    return {
      me,
      codes: codes(self.st),
      occupants: self.passed.filter((st) => st.is("presence") && bare(st.attrs.from) === cfg.room).map((st) => st.attrs.from),
      history: history.map((st) => st.getChildText("body")),
      stamped: history.every((st) => st.getChild("delay", NS_DELAY)),
    };
  });

  // message: ours comes back from our occupant JID with the room's
  // stanza-id; the other occupant's answer has a stanza-id and an
  // occupant-id.
  await step("message", async () => {
    await xmpp.send(xml("message", { to: cfg.room, type: "groupchat" }, xml("body", {}, cfg.body)));
    const echo = await next(
      "the echo of the message",
      (st) => isGroupchat(st) && st.attrs.from === me && st.getChildText("body") === cfg.body,
    );
    const reply = await next(
      `the answer of ${cfg.room}/Bob`,
      (st) => isGroupchat(st) && st.attrs.from === `${cfg.room}/Bob` && st.getChildText("body") === cfg.reply,
    );
    const sid = (st) => st.getChild("stanza-id", NS_SID)?.attrs ?? {};
    return {
      stanza_id: sid(echo.st).id ?? "",
      by: sid(echo.st).by ?? "",
      reply_stanza_id: sid(reply.st).id ?? "",
      reply_by: sid(reply.st).by ?? "",
      reply_occupant_id: reply.st.getChild("occupant-id", NS_OID)?.attrs.id ?? "",
    };
  });

  // nick: unavailable from the old occupant JID with 303 and the new nick
  // (§7.6), then available from the new one; both with 110.
  await step("nick", async () => {
    const to = `${cfg.room}/${cfg.new_nick}`;
    await xmpp.send(xml("presence", { to }));
    const gone = await next(
      `the unavailable presence of ${me}`,
      (st) => st.is("presence") && st.attrs.from === me && st.attrs.type === "unavailable",
    );
    const back = await next(`the presence of ${to}`, (st) => st.is("presence") && st.attrs.from === to);
    me = to;
    return {
      unavailable_codes: codes(gone.st),
      new_nick: gone.st.getChild("x", NS_MUC_USER)?.getChild("item")?.attrs.nick ?? "",
      codes: codes(back.st),
      type: back.st.attrs.type ?? "",
    };
  });

  // leave: our unavailable presence comes back with 110 (§7.14).
  await step("leave", async () => {
    await xmpp.send(xml("presence", { to: me, type: "unavailable" }));
    const { st } = await next(
      `the unavailable self-presence from ${me}`,
      (st) => st.is("presence") && st.attrs.from === me && st.attrs.type === "unavailable",
    );
    return { codes: codes(st) };
  });

  let timer;
  await Promise.race([
    xmpp.stop(),
    new Promise((resolve) => {
      timer = setTimeout(resolve, timeout);
    }),
  ])
    .catch(() => {})
    .finally(() => clearTimeout(timer));
  return 0;
}

process.exitCode = await main().catch(() => 1);
// Nothing left to wait for: a socket xmpp.js did not close must not keep
// the process alive.
process.exit();

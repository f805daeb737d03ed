// xmpp.js client for Parley's interop tests (parleytest/interop).
//
// Run by the Go tests with the node_modules that `npm ci` installs here
// from package-lock.json (@xmpp/client 0.14.0):
//
//   NODE_EXTRA_CA_CERTS=ca.pem node client.mjs '<config JSON>'
//
// The config (see clientConfig in parleytest/interop/harness_test.go) names
// the server, the account, the SASL mechanism ("" for xmpp.js's own
// choice), the transport ("starttls" or "direct") and the peer. The
// server's certificate is verified against NODE_EXTRA_CA_CERTS. The client
// prints one JSON line per step, {"step", "ok", "error", "detail"}, stops at
// the first failed step and exits 1 then, 0 when every step passed.

import dns from "node:dns";

import { client, xml, jid } from "@xmpp/client";
import { Client } from "@xmpp/client-core";
import createOnAuthenticate from "@xmpp/client/lib/createOnAuthenticate.js";
import _iqCallee from "@xmpp/iq/callee.js";
import _iqCaller from "@xmpp/iq/caller.js";
import _middleware from "@xmpp/middleware";
import _reconnect from "@xmpp/reconnect";
import _resourceBinding from "@xmpp/resource-binding";
import _sasl from "@xmpp/sasl";
import plain from "@xmpp/sasl-plain";
import scramsha1 from "@xmpp/sasl-scram-sha-1";
import _starttls from "@xmpp/starttls";
import _streamFeatures from "@xmpp/stream-features";
import _tcp from "@xmpp/tcp";
import _tls from "@xmpp/tls";
import SASLFactory from "saslmechanisms";

const cfg = JSON.parse(process.argv[2]);

// A promise xmpp.js rejects with nobody waiting (the socket closing under
// a write while the stream is shut down, say) would end Node with status 1
// after every step passed; the steps say what went wrong, this only logs.
process.on("unhandledRejection", (err) => {
  process.stderr.write(`unhandled rejection: ${err?.stack || err}\n`);
});
const timeout = cfg.step_timeout * 1000;

// The server listens on 127.0.0.1; "localhost" is the name its
// certificate has, and may resolve to ::1 first.
dns.setDefaultResultOrder("ipv4first");

function emit(step, ok, error = "", detail = {}) {
  process.stdout.write(JSON.stringify({ step, ok, error, detail }) + "\n");
}

// Everything on the wire, both ways, for the login details and for
// errors that show the server's answer.
const wire = [];
function tail(n = 6) {
  return wire
    .slice(-n)
    .map((l) => (l.length > 600 ? l.slice(0, 600) + "..." : l))
    .join("\n");
}

// auths lists every <auth/> (SASL) or <authenticate/> (SASL2, which
// xmpp.js 0.14 prefers when offered) sent: the mechanism and SCRAM's gs2
// header.
function auths() {
  const out = [];
  for (const line of wire) {
    const m = /^SEND: <(auth|authenticate) [^>]*mechanism="([^"]+)"[^>]*>(?:.*?<initial-response>)?([^<]*)/.exec(line);
    if (!m) continue;
    const [, element] = m;
    m.splice(1, 1);
    let gs2 = "";
    if (m[1].startsWith("SCRAM")) {
      const parts = Buffer.from(m[2], "base64").toString("utf8").split(",");
      if (parts.length >= 3) gs2 = parts[0] + "," + parts[1] + ",";
    }
    out.push({ mechanism: m[1], gs2, element });
  }
  return out;
}

function failures() {
  return wire.filter((l) => l.startsWith("RECV: <failure")).map((l) => l.slice(6));
}

// within rejects when p has not settled after the step timeout.
function within(p, what) {
  let timer;
  return Promise.race([
    p,
    new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no ${what} within ${cfg.step_timeout}s`)),
        timeout,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}

const service =
  cfg.tls === "direct"
    ? `xmpps://${cfg.domain}:${cfg.port}`
    : `xmpp://${cfg.host}:${cfg.port}`;
const [username] = cfg.jid.split("@");
const options = {
  service,
  domain: cfg.domain,
  resource: "interop",
  username,
  password: cfg.password,
};
if (cfg.mechanism) {
  // Forcing a mechanism: xmpp.js hands the offered ones it supports to a
  // credentials function, which picks.
  options.credentials = async (authenticate, mechanisms) => {
    if (!mechanisms.includes(cfg.mechanism)) {
      throw new Error(`${cfg.mechanism} is not among ${mechanisms.join(", ")}`);
    }
    await authenticate({ username, password: cfg.password }, cfg.mechanism);
  };
}

// classicClient is @xmpp/client's client() without SASL2 (XEP-0388),
// Bind2 and FAST, which 0.14 has no option to leave out: the same packages
// composed the same way (xmpp.js's packages are meant to be composed), so
// that it logs in with RFC 6120 SASL and binds with an iq whatever the
// server offers.
function classicClient({ resource, credentials, username, password, ...params }) {
  const entity = new Client(params);
  entity.jid = jid(username, params.domain);
  const reconnect = _reconnect({ entity });
  _tcp({ entity });
  _tls({ entity });
  const middleware = _middleware({ entity });
  const streamFeatures = _streamFeatures({ middleware });
  const iqCaller = _iqCaller({ middleware, entity });
  const iqCallee = _iqCallee({ middleware, entity });
  const saslFactory = new SASLFactory();
  scramsha1(saslFactory);
  plain(saslFactory);
  _starttls({ streamFeatures });
  _sasl({ streamFeatures, saslFactory }, createOnAuthenticate(credentials ?? { username, password }));
  _resourceBinding({ iqCaller, streamFeatures }, resource);
  iqCallee.get("urn:xmpp:ping", "ping", () => ({}));
  return Object.assign(entity, { entity, reconnect, middleware, streamFeatures, iqCaller, iqCallee });
}

const xmpp = cfg.sasl === "classic" ? classicClient(options) : client(options);
xmpp.reconnect.stop();
xmpp.on("send", (el) => wire.push("SEND: " + el.toString()));
xmpp.on("element", (el) => wire.push("RECV: " + el.toString()));
let lastError = null;
xmpp.on("error", (err) => {
  lastError = err;
});

const peer = cfg.peer;
const bare = (j) => String(j).split("/")[0];
const messages = [];
let onMessage = null;
let subscribed = null;
let onSubscribed = null;
const pushed = new Map(); // jid -> subscription, from roster pushes
let onPush = null;

xmpp.on("stanza", (st) => {
  if (st.is("message") && st.getChild("body")) {
    messages.push(st);
    onMessage?.();
  }
  if (st.is("presence") && st.attrs.type === "subscribed" && bare(st.attrs.from) === peer) {
    subscribed = st;
    onSubscribed?.();
  }
});
// Roster pushes (RFC 6121 2.1.6): xmpp.js answers the iq when the handler
// returns.
xmpp.iqCallee.set("jabber:iq:roster", "query", (ctx) => {
  for (const item of ctx.element.getChildren("item")) {
    pushed.set(item.attrs.jid, item.attrs.subscription);
  }
  onPush?.();
  return true;
});

function waitFor(cond, setHook) {
  return new Promise((resolve) => {
    const check = () => {
      if (cond()) {
        setHook(null);
        resolve();
      }
    };
    setHook(check);
    check();
  });
}

async function rosterGet() {
  const q = await within(
    xmpp.iqCaller.get(xml("query", { xmlns: "jabber:iq:roster" })),
    "roster result",
  );
  const items = {};
  for (const item of q.getChildren("item")) {
    items[item.attrs.jid] = item.attrs.subscription;
  }
  return items;
}

async function main() {
  // login: connect, TLS, SASL, bind; then initial presence.
  try {
    const online = new Promise((resolve) => xmpp.once("online", resolve));
    await within(Promise.all([xmpp.start(), online]), "session");
    await xmpp.send(xml("presence"));
  } catch (err) {
    let msg = String(err?.message || err);
    if (lastError && lastError !== err) msg += ` (${lastError.message || lastError})`;
    const f = failures();
    if (f.length) msg += "; server answered " + f.join(" then ");
    const a = auths();
    emit("login", false, msg + "\nlast on the wire:\n" + tail(), {
      attempts: a,
      gs2: a[0]?.gs2 ?? "",
    });
    return 1;
  }
  const a = auths();
  emit("login", true, "", {
    mechanism: a.at(-1)?.mechanism,
    gs2: a.at(-1)?.gs2 ?? "",
    attempts: a,
    tls: xmpp.socket?.socket?.getProtocol?.() ?? "",
    jid: String(xmpp.jid),
  });

  // message
  try {
    await xmpp.send(xml("message", { to: peer, type: "chat" }, xml("body", {}, cfg.body)));
    const fromPeer = () => messages.find((m) => bare(m.attrs.from) === peer);
    await within(waitFor(fromPeer, (h) => (onMessage = h)), "answer from the peer");
    const body = fromPeer().getChildText("body");
    if (body !== cfg.reply) {
      throw new Error(`the peer's answer has body ${JSON.stringify(body)}, want ${JSON.stringify(cfg.reply)}`);
    }
  } catch (err) {
    emit("message", false, `${err.message}\nlast on the wire:\n${tail()}`);
    return 1;
  }
  emit("message", true);

  // roster get
  try {
    const items = await rosterGet();
    emit("roster get", true, "", { items: Object.keys(items).length });
  } catch (err) {
    emit("roster get", false, `${err.message}\nlast on the wire:\n${tail()}`);
    return 1;
  }

  // presence subscribe: the peer approves; the client sees the approval
  // and a roster push with subscription to.
  try {
    await xmpp.send(xml("presence", { to: peer, type: "subscribe" }));
    await within(waitFor(() => subscribed, (h) => (onSubscribed = h)), `<presence type='subscribed'/> from ${peer}`);
    const to = () => ["to", "both"].includes(pushed.get(peer));
    await within(waitFor(to, (h) => (onPush = h)), `roster push with subscription to for ${peer}`);
  } catch (err) {
    emit("presence subscribe", false, `${err.message}\nlast on the wire:\n${tail()}`);
    return 1;
  }
  emit("presence subscribe", true);

  // roster after subscribe
  try {
    const items = await rosterGet();
    if (!["to", "both"].includes(items[peer])) {
      throw new Error(`roster is ${JSON.stringify(items)}, want ${peer} with subscription to or both`);
    }
    emit("roster after subscribe", true, "", { items });
  } catch (err) {
    emit("roster after subscribe", false, `${err.message}\nlast on the wire:\n${tail()}`);
    return 1;
  }
  await within(xmpp.stop(), "clean close").catch(() => {});
  return 0;
}

process.exitCode = await main().catch((err) => {
  emit("internal", false, String(err?.stack || err));
  return 2;
});
// Nothing left to wait for: a socket xmpp.js did not close must not keep
// the process alive.
process.exit();

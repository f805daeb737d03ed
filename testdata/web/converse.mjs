// Drives Converse.js at Parley's /chat in the system Chromium (headless),
// for parleytest/interop/converse_test.go: log in, open a chat with the
// peer, send a message, wait for the peer's answer to be rendered. The
// config is JSON in argv[2]; the result is one JSON line on stdout:
// {"ok":bool,"step":last step,"error":...,"login_ms":...,"round_trip_ms":...,
//  "csp_violations":[...],"console_errors":[...],"console":[...],"ws_frames":[...],
//  "remote_requests":[...]}: remote_requests are requests to other hosts than the page's.
// console is every console message and ws_frames every WebSocket frame the
// page sent or received (from the DevTools protocol's Network events), so
// that a failure shows where a message stopped: the test prints both when
// a run fails.
import puppeteer from "puppeteer-core";

const cfg = JSON.parse(process.argv[2]);
const out = { ok: false, step: "launch", csp_violations: [], console_errors: [], console: [], ws_frames: [], remote_requests: [] };
const timeout = cfg.step_timeout * 1000;
// Bounds on the trace, which a failure prints: a session of this test is a
// few dozen frames.
const maxTrace = 1000;
const maxFrame = 4000;
const t0Trace = performance.now();
const since = () => Math.round(performance.now() - t0Trace);
const trace = (list, entry) => {
  if (list.length < maxTrace) list.push(entry);
};
const frame = (dir) => (e) => {
  const data = e.response?.payloadData ?? e.errorMessage ?? "";
  trace(out.ws_frames, {
    ms: since(),
    dir,
    data: data.length > maxFrame ? data.slice(0, maxFrame) + `… (${data.length} bytes)` : data,
  });
};
let browser, page;
try {
  browser = await puppeteer.launch({
    executablePath: cfg.chromium,
    headless: true,
    args: ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  page = await browser.newPage();
  page.setDefaultTimeout(timeout);
  page.on("console", (m) => {
    if (m.type() === "error") out.console_errors.push(m.text());
    trace(out.console, `+${since()}ms ${m.type()}: ${m.text()}`);
  });
  const cdp = await page.createCDPSession();
  await cdp.send("Network.enable");
  cdp.on("Network.webSocketCreated", (e) => trace(out.ws_frames, { ms: since(), dir: "open", data: e.url }));
  cdp.on("Network.webSocketFrameSent", frame("sent"));
  cdp.on("Network.webSocketFrameReceived", frame("received"));
  cdp.on("Network.webSocketFrameError", frame("error"));
  cdp.on("Network.webSocketClosed", () => trace(out.ws_frames, { ms: since(), dir: "closed", data: "" }));
  page.on("response", (r) => {
    if (r.status() >= 400) out.console_errors.push(`HTTP ${r.status()} ${r.url()}`);
  });
  const pageHost = new URL(cfg.url).host;
  page.on("request", (r) => {
    const u = new URL(r.url());
    if ((u.protocol === "http:" || u.protocol === "https:") && u.host !== pageHost) out.remote_requests.push(r.url());
  });
  page.on("requestfailed", (r) => out.console_errors.push(`failed ${r.url()}: ${r.failure()?.errorText}`));
  page.on("pageerror", (e) => out.console_errors.push(String(e)));
  await page.evaluateOnNewDocument(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`CSP: ${e.violatedDirective} blocked ${e.blockedURI}`);
    });
  });

  out.step = "open /chat";
  await page.goto(cfg.url, { waitUntil: "load" });
  const jid = await page.waitForSelector('input[name="jid"]');
  out.step = "login";
  // The domain is locked: the form takes the local part only.
  await jid.type(cfg.user);
  await page.type('input[name="password"]', cfg.password);
  const t0 = performance.now();
  await page.click('button[type="submit"], input[type="submit"]');
  await page.waitForSelector("converse-roster");
  // The roster shows the peer once the session is set up (roster
  // fetched, presence sent); a message typed before that can stay queued.
  await page.waitForFunction(
    (name) => document.querySelector("converse-roster")?.textContent.includes(name),
    { timeout },
    cfg.peer_name,
  );
  out.login_ms = Math.round(performance.now() - t0);

  out.step = "open chat";
  await page.evaluate((peer) => {
    location.hash = `converse/chat?jid=${peer}`;
  }, cfg.peer);
  const textarea = await page.waitForSelector("textarea.chat-textarea");

  out.step = "message";
  await textarea.type(cfg.body);
  const t1 = performance.now();
  await textarea.press("Enter");
  out.step = "reply rendered";
  await page.waitForFunction(
    (reply) => [...document.querySelectorAll(".chat-msg__text")].some((e) => e.textContent.includes(reply)),
    { timeout },
    cfg.reply,
  );
  out.round_trip_ms = Math.round(performance.now() - t1);
  out.ok = true;
} catch (e) {
  out.error = String(e && e.message ? e.message : e);
} finally {
  if (page) {
    out.rendered = await page
      .evaluate(() => [...document.querySelectorAll(".chat-msg__text")].map((e) => e.textContent.trim()))
      .catch(() => []);
  }
  out.csp_violations = out.console_errors.filter((m) => m.startsWith("CSP:"));
  if (browser) await browser.close().catch(() => {});
  console.log(JSON.stringify(out));
}

// Drives Converse.js at Parley's /chat in the system Chromium (headless),
// for parleytest/interop/converse_test.go: log in, open a chat with the
// peer, send a message, wait for the peer's answer to be rendered. The
// config is JSON in argv[2]; the result is one JSON line on stdout:
// {"ok":bool,"step":last step,"error":...,"login_ms":...,"round_trip_ms":...,
//  "csp_violations":[...],"console_errors":[...]}.
import puppeteer from "puppeteer-core";

const cfg = JSON.parse(process.argv[2]);
const out = { ok: false, step: "launch", csp_violations: [], console_errors: [] };
const timeout = cfg.step_timeout * 1000;
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
  });
  page.on("response", (r) => {
    if (r.status() >= 400) out.console_errors.push(`HTTP ${r.status()} ${r.url()}`);
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

// Browser tests of the wagate console, as an operator would use it:
// playwright-core drives Debian's chromium headless against the real
// gateway binary (target/debug/wagate-scripted, whose scripted engine shows
// two QR codes and then pairs) and a real webhook receiver on 127.0.0.1.
// Screenshots go to target/console-screenshots/. Any failure exits non-zero.
//
//   (cd console-tests && npm ci && node run.mjs)
//
// Environment: WAGATE_BIN (default ../target/debug/wagate-scripted),
// CHROMIUM (default /usr/bin/chromium), CONSOLE_DATABASE_URL (default a
// fresh SQLite file; a PostgreSQL URL is used as given).
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const shots = path.join(root, "target", "console-screenshots");
mkdirSync(shots, { recursive: true });
const KEY = "console-test-admin-key";
const WITHIN = 20000;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function check(cond, what) {
  if (!cond) throw new Error("check failed: " + what);
  console.log("ok -", what);
}

// A webhook receiver that answers 204 and counts what it got.
const received = [];
const receiver = http.createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    received.push({ headers: req.headers, body: JSON.parse(body || "null") });
    res.statusCode = 204;
    res.end();
  });
});
await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
const hookUrl = `http://127.0.0.1:${receiver.address().port}/hook`;

const port = await freePort();
const dir = mkdtempSync(path.join(os.tmpdir(), "wagate-console-"));
const dbUrl = process.env.CONSOLE_DATABASE_URL || `sqlite://${dir}/console.db`;
const bin = process.env.WAGATE_BIN || path.join(root, "target", "debug", "wagate-scripted");
// The gateway refuses unknown WAGATE_* settings, and CI exports some of its
// own (WAGATE_TEST_PYTHON): pass on everything else.
const inherited = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.startsWith("WAGATE_")),
);
const server = spawn(bin, ["serve"], {
  env: {
    ...inherited,
    WAGATE_LISTEN: `127.0.0.1:${port}`,
    WAGATE_ADMIN_KEY: KEY,
    WAGATE_DATABASE__URL: dbUrl,
    DATABASE_URL: dbUrl,
    WAGATE_ALLOW_PRIVATE_TARGETS: "true",
    WAGATE_LOG: "warn",
    WAGATE_STREAMS__HEARTBEAT_SECS: "5",
    SCRIPTED_PAIR_AFTER_MS: "1500",
  },
  stdio: ["ignore", "inherit", "inherit"],
});
const base = `http://127.0.0.1:${port}`;

let browser;
let failed = false;
try {
  for (let n = 0; ; n++) {
    try {
      const r = await fetch(base + "/healthz");
      if (r.ok) break;
    } catch {}
    if (n > 300) throw new Error("the gateway did not start");
    await new Promise((r) => setTimeout(r, 100));
  }
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const problems = [];
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(m.text());
  });
  page.on("pageerror", (e) => problems.push(String(e)));
  page.on("dialog", (d) => d.accept());

  const resp = await page.goto(base + "/console");
  check(resp.status() === 200, "the console is served at /console");
  const csp = resp.headers()["content-security-policy"] || "";
  check(csp.includes("default-src 'none'") && csp.includes("script-src 'self'"), "under a strict CSP");

  // Keyboard: the key field is reachable with Tab, and every field is labelled.
  let reached = false;
  for (let n = 0; n < 6 && !reached; n++) {
    await page.keyboard.press("Tab");
    reached = await page.evaluate(() => document.activeElement && document.activeElement.id === "key");
  }
  check(reached, "the key field is reachable by keyboard");
  const unlabelled = await page.$$eval("input", (xs) => xs.filter((x) => !x.labels || x.labels.length === 0).map((x) => x.id));
  check(unlabelled.length === 0, "every input has a label " + JSON.stringify(unlabelled));

  await page.fill("#key", "wrong-key");
  await page.keyboard.press("Enter");
  await page.locator("#notice").filter({ hasText: /./ }).waitFor({ timeout: WITHIN });
  check(await page.locator("#signin").isVisible(), "a wrong key is refused");

  await page.fill("#key", KEY);
  await page.getByRole("button", { name: "Open console" }).click();
  await page.locator("#instances").waitFor({ state: "visible", timeout: WITHIN });
  check(await page.evaluate(() => sessionStorage.getItem("wagate.key") !== null && localStorage.length === 0),
    "the key is kept in session storage only");
  await page.locator("#live").filter({ hasText: "live" }).waitFor({ timeout: WITHIN });

  // Create, then pair by QR.
  await page.getByLabel("New instance name").fill("shop");
  await page.getByRole("button", { name: "Create instance" }).click();
  await page.locator("#detail-status").filter({ hasText: "created" }).waitFor({ timeout: WITHIN });
  await page.getByRole("button", { name: "Pair by QR code" }).click();
  const qr = page.locator("#qr");
  await qr.waitFor({ state: "visible", timeout: WITHIN });
  check((await qr.getAttribute("src")).startsWith("data:image/png;base64,"), "the QR code image appears");
  check(/expires in \d+ s/.test(await page.locator("#qr-expiry").textContent()), "with a countdown to expiry");
  await page.screenshot({ path: path.join(shots, "1-qr.png") });
  await page.locator("#qr[data-attempt='2']").waitFor({ timeout: WITHIN });
  check(true, "a new QR code replaces the first as it arrives");
  await page.locator("#detail-status").filter({ hasText: "online" }).waitFor({ timeout: WITHIN });
  check(await page.locator("#qr-box").isHidden(), "the QR code goes once paired");
  check(/as \+62812/.test(await page.locator("#detail-number").textContent()), "online with the number");
  const rowStatus = page.locator("#instance-rows td.status-online");
  check((await rowStatus.count()) === 1, "the list shows it online without a reload");
  await page.screenshot({ path: path.join(shots, "2-online.png") });

  // Pair code for another instance.
  await page.getByLabel("New instance name").fill("spare");
  await page.getByRole("button", { name: "Create instance" }).click();
  await page.locator("#detail-title").filter({ hasText: "spare" }).waitFor({ timeout: WITHIN });
  await page.getByLabel("Pair by code for number").fill("+62 812 9999 0000");
  await page.getByRole("button", { name: "Get pair code" }).click();
  await page.locator("#pair-code").filter({ hasText: "SCRP7K2Q" }).waitFor({ timeout: WITHIN });
  check(true, "a pair code is shown for a phone number");
  // Rename, then delete it.
  await page.getByLabel("Name", { exact: true }).fill("spare-renamed");
  await page.getByRole("button", { name: "Rename" }).click();
  await page.locator("#instance-rows").filter({ hasText: "spare-renamed" }).waitFor({ timeout: WITHIN });
  await page.getByRole("button", { name: "Delete" }).click();
  await page.locator("#detail").waitFor({ state: "hidden", timeout: WITHIN });
  check(!(await page.locator("#instance-rows").textContent()).includes("spare-renamed"), "rename and delete");

  // Webhooks: register, send a test event, see it succeed, replay it.
  await page.getByRole("button", { name: "Open shop" }).click();
  await page.locator("#detail-title").filter({ hasText: "shop" }).waitFor({ timeout: WITHIN });
  await page.locator("#events li:not(.empty)").nth(3).waitFor({ timeout: WITHIN });
  check((await page.locator("#events li:not(.empty)").count()) === 4 && (await page.locator("#events li.empty").count()) === 0,
    "recent events are listed (two QR codes, paired, connected)");
  await page.getByLabel("Webhook URL").fill(hookUrl);
  await page.getByRole("button", { name: "Register webhook" }).click();
  await page.locator("#hook-secret").filter({ hasText: "whsec_" }).waitFor({ timeout: WITHIN });
  await page.locator("#hooks .card").filter({ hasText: "Health: healthy" }).waitFor({ timeout: WITHIN });
  await page.getByRole("button", { name: "Send test event" }).click();
  await page.locator("#hooks li[data-status='succeeded']").filter({ hasText: "webhook.test" }).waitFor({ timeout: WITHIN });
  check(received.some((r) => r.body && r.body.type === "webhook.test"), "the receiver got the test event");
  const before = received.length;
  await page.getByRole("button", { name: "Replay delivery of webhook.test" }).click();
  for (let n = 0; received.length <= before; n++) {
    if (n > 200) throw new Error("the replay never arrived");
    await new Promise((r) => setTimeout(r, 100));
  }
  check(received[received.length - 1].headers["webhook-id"] === received[before - 1].headers["webhook-id"],
    "a replay arrives with the same webhook-id");
  await page.locator("#hooks li[data-status='succeeded']").first().getByRole("button", { name: "Attempts" }).click();
  await page.locator("#hooks li ul li").first().waitFor({ timeout: WITHIN });
  await page.getByRole("button", { name: "Rotate secret" }).click();
  await page.locator("#hook-secret").filter({ hasText: "New secret" }).waitFor({ timeout: WITHIN });
  await page.screenshot({ path: path.join(shots, "3-webhooks.png"), fullPage: true });

  // Log out: the number is released, live.
  await page.getByRole("button", { name: "Log out" }).click();
  await page.locator("#detail-status").filter({ hasText: "logged_out" }).waitFor({ timeout: WITHIN });
  check(true, "log out");

  // A phone-sized screen: nothing scrolls sideways.
  await page.setViewportSize({ width: 375, height: 812 });
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  check(wide <= 376, `fits a phone-sized screen (${wide}px wide)`);
  await page.screenshot({ path: path.join(shots, "4-phone.png"), fullPage: true });
  // The only expected error is the wrong key's 401 at the start.
  const unexpected = problems.filter((p) => !p.includes("status of 401"));
  check(unexpected.length === 0, "no script errors or CSP violations " + JSON.stringify(unexpected));
} catch (e) {
  failed = true;
  console.error("console tests FAILED:", e);
} finally {
  if (browser) await browser.close();
  server.kill("SIGTERM");
  receiver.close();
}
process.exit(failed ? 1 : 0);

// Shared fixtures of the dashboard's browser tests: a real pisync-local on a random
// port, its tokens, a device fleet written through the API, and a headless Chromium
// whose pages record console errors and every request's origin.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const here = new URL(".", import.meta.url).pathname;
const repo = resolve(here, "../../../..");

/// The runner binary (scripts/browser-tests.sh builds it) and the browser.
export const RUNNER = process.env.PISYNC_LOCAL_BIN || join(repo, "target/debug/pisync-local");
export const CHROMIUM = process.env.PISYNC_CHROMIUM || "/usr/bin/chromium";
export const SCREENSHOTS = process.env.PISYNC_SCREENSHOT_DIR || join(repo, "target/screenshots");

/// Short enough that a test can watch a device go silent.
export const SILENT_AFTER_S = 15;
/// The dashboard's own refresh period, plus slack for a loaded machine.
export const REFRESH_WAIT_MS = 45_000;

const HOUR_MS = 3_600_000;

/// A pisync-local with authentication on, listening on a random port, with its own
/// data directory. `link` is the sign-in link it prints at start.
export async function startRunner() {
  const dataDir = mkdtempSync(join(tmpdir(), "pisync-browser-"));
  const child = spawn(RUNNER, [
    "--addr", "127.0.0.1:0",
    "--data-dir", dataDir,
    "--silent-after", `${SILENT_AFTER_S}s`,
    "--silent-check-interval", "1s",
  ], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk) => { stderr += chunk; });
  const lines = createInterface({ input: child.stdout });
  const started = new Promise((resolveStart, rejectStart) => {
    let base = null;
    lines.on("line", (line) => {
      const listening = line.match(/^pisync-local listening on (http:\/\/\S+)$/);
      if (listening) base = listening[1];
      const dashboard = line.match(/^pisync-local dashboard: (\S+)$/);
      if (dashboard && base) resolveStart({ base, link: dashboard[1] });
    });
    child.on("exit", (code) => rejectStart(new Error(`pisync-local exited (${code}): ${stderr}`)));
    setTimeout(() => rejectStart(new Error(`pisync-local did not print its link: ${stderr}`)), 30_000);
  });
  const { base, link } = await started;
  const cli = (...args) => execFileSync(RUNNER, [...args, "--data-dir", dataDir], { encoding: "utf8" }).trim();
  return {
    base,
    /// A sign-in link: the one the runner printed first, then new ones (each works once).
    link: (() => {
      let printed = link;
      return () => {
        const fresh = printed ?? cli("sign-in", "--url", base).replace(/^pisync-local dashboard: /, "");
        printed = null;
        return fresh;
      };
    })(),
    adminToken: () => cli("token", "operator", "--admin"),
    /// A school operator of `schools` (admin or read).
    schoolToken: (schools, admin = false) =>
      cli("token", "operator", ...(admin ? ["--admin"] : []), ...schools.flatMap((s) => ["--school", s])),
    readToken: () => cli("token", "operator"),
    deviceToken: (id) => cli("token", "device", id),
    logs: () => stderr,
    stop() {
      child.kill("SIGKILL");
      rmSync(dataDir, { recursive: true, force: true });
    },
    kill: () => child.kill("SIGKILL"),
  };
}

/// A sync report `hoursAgo` before now (device time); `errors > 0` is a failed sync.
export function report(deviceId, hoursAgo, errors = 0, speed = 20) {
  return {
    device_id: deviceId,
    timestamp: new Date(Date.now() - hoursAgo * HOUR_MS).toISOString(),
    total_files_synced: errors ? 3 : 40 + Math.round(hoursAgo) % 17,
    total_errors: errors,
    internet_speed: Math.round(speed * 10) / 10,
  };
}

/// Uploads a device's reports with its own token, 100 per request; every item must be
/// created.
export async function upload(runner, deviceId, reports) {
  const token = runner.deviceToken(deviceId);
  for (let i = 0; i < reports.length; i += 100) {
    const response = await fetch(`${runner.base}/sync-events`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ events: reports.slice(i, i + 100) }),
    });
    const body = await response.json();
    if (response.status !== 200 || body.created !== Math.min(100, reports.length - i)) {
      throw new Error(`upload of ${deviceId} failed: ${response.status} ${JSON.stringify(body)}`);
    }
  }
}

/// GET with an operator token; the parsed body.
export async function read(runner, path, token) {
  const response = await fetch(`${runner.base}${path}`, { headers: { authorization: `Bearer ${token}` } });
  if (!response.ok) throw new Error(`GET ${path}: ${response.status}`);
  return response.json();
}

/// A request with a JSON body and an operator token; the status and parsed body.
export async function send(runner, method, path, body, token) {
  const response = await fetch(`${runner.base}${path}`, {
    method,
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: response.status === 204 ? null : await response.json() };
}

/// Polls until `check()` is truthy.
export async function eventually(what, check, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/// Headless Chromium. No sandbox: CI runs as root in a container.
export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"],
  });
}

/// A page that records what the tests forbid: console errors, uncaught exceptions,
/// and requests to any origin but the runner's.
export async function watchedPage(browser, base, viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport, colorScheme: "light" });
  const page = await context.newPage();
  const origin = new URL(base).origin;
  const problems = { consoleErrors: [], foreignRequests: [] };
  page.on("console", (message) => {
    if (message.type() === "error") problems.consoleErrors.push(message.text());
  });
  page.on("pageerror", (error) => problems.consoleErrors.push(`uncaught: ${error.message}`));
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (url.protocol !== "data:" && url.origin !== origin) problems.foreignRequests.push(request.url());
  });
  return { page, context, problems };
}

/// True when the canvas inside `selector` has drawn anything (a pixel that is not
/// transparent).
export function chartDrawn(page, selector) {
  return page.evaluate((sel) => {
    const canvas = document.querySelector(`${sel} canvas`);
    if (!canvas || !canvas.width || !canvas.height) return false;
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) return true;
    return false;
  }, selector);
}

/// The text of each row of the first table inside `selector`.
export function rows(page, selector) {
  return page.$$eval(`${selector} tbody tr`, (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent.trim())));
}

export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, name), fullPage: true });
}

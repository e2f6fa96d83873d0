// The operators' dashboard in a real headless Chromium against a real pisync-local.
// One runner and one fleet for the whole file; the tests run in order, each checking
// one behaviour, on one signed-in page (the operator's session) unless they need
// their own.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  REFRESH_WAIT_MS, chartDrawn, eventually, launchBrowser, read, report, rows, screenshot,
  startRunner, upload, watchedPage,
} from "./support.mjs";

const FAILING = "pibook-failing";
const QUIET = "pibox-quiet";
const HISTORY = "pibox-history";
const FLEET = ["pibook-01", "pibook-02", "pibox-03", "pibox-04", "pibook-05"];
const HISTORY_REPORTS = 45;

const section = (title) => `section[aria-labelledby=${title}-title]`;

describe("the dashboard", () => {
  let runner;
  let browser;
  let session; // { page, context, problems }: the operator signed in through the link
  let pageTwo; // the history's second page, as first shown

  before(async () => {
    runner = await startRunner();
    const reader = runner.readToken();
    // A device that reports once and then goes silent.
    await upload(runner, QUIET, [report(QUIET, 30)]);
    await eventually("the quiet device to turn silent", async () =>
      (await read(runner, "/devices?status=silent", reader)).devices.some((d) => d.device_id === QUIET));
    // The rest report now, so they are fresh (healthy or failing) when the tests look.
    await upload(runner, FAILING, [report(FAILING, 50), report(FAILING, 3, 2, 1.5), report(FAILING, 2, 4, 0.8), report(FAILING, 1, 1, 0.4)]);
    await upload(runner, HISTORY, Array.from({ length: HISTORY_REPORTS }, (_, i) =>
      report(HISTORY, 2 + i * 3.5, i % 6 === 3 ? 2 : 0, 12 + 8 * Math.sin(i / 3))));
    for (const [n, id] of FLEET.entries()) {
      await upload(runner, id, Array.from({ length: 28 }, (_, i) =>
        report(id, 1 + i * 12 + n, (i + n) % 9 === 0 ? 1 : 0, 25 + n * 4 + 6 * Math.cos(i))));
    }
    browser = await launchBrowser();
    session = await watchedPage(browser, runner.base);
  });

  after(async () => {
    await browser?.close();
    runner?.stop();
  });

  test("the printed sign-in link signs in and takes the token out of the address bar", async () => {
    const { page } = session;
    await page.goto(runner.link());
    await page.locator("h1", { hasText: "Fleet" }).waitFor();
    assert.equal(new URL(page.url()).hash, "#/");
    assert.ok(!page.url().includes("token"), page.url());
  });

  test("the overview lists the failing device, longest streak first, with its errors", async () => {
    const { page } = session;
    await page.locator(`${section("failing")} tbody tr`).first().waitFor();
    const failing = await rows(page, section("failing"));
    assert.deepEqual(failing.map((r) => r[0]), [FAILING]);
    const [, inARow, since, lastErrors] = failing[0];
    assert.equal(inARow, "3");
    assert.match(since, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
    assert.equal(lastErrors, "1");
    assert.equal(await page.textContent("[data-count=failing]"), "1");
  });

  test("the overview lists the silent device with when it was last seen", async () => {
    const { page } = session;
    const silent = await rows(page, section("silent"));
    assert.deepEqual(silent.map((r) => r[0]), [QUIET]);
    assert.match(silent[0][1], /UTC \(.+\)$/);
    assert.equal(await page.textContent("[data-count=silent]"), "1");
    assert.equal(await page.textContent("[data-count=healthy]"), String(FLEET.length + 1));
    assert.match(await page.textContent("#freshness"), /^Updated /);
    await screenshot(page, "overview.png");
  });

  test("the 14-day chart of syncs and failure rate is drawn", async () => {
    const { page } = session;
    assert.ok(await chartDrawn(page, section("days")), "the chart's canvas is empty");
    const legend = await page.textContent(`${section("days")} .u-legend`);
    assert.match(legend, /syncs/);
    assert.match(legend, /failure rate/);
  });

  test("the device search, reached with the / key, opens the device page", async () => {
    const { page } = session;
    await page.keyboard.press("/");
    assert.equal(await page.evaluate(() => document.activeElement?.id), "search-id");
    await page.keyboard.type(HISTORY);
    await page.keyboard.press("Enter");
    await page.locator("#device-title", { hasText: HISTORY }).waitFor();
    assert.equal(new URL(page.url()).hash, `#/device/${HISTORY}`);
    assert.match(await page.textContent("#device-title"), /healthy/);
    assert.match(await page.textContent(".facts"), new RegExp(`${HISTORY_REPORTS} syncs`));
  });

  test("the device's timeline chart is drawn", async () => {
    const { page } = session;
    await page.locator(`${section("timeline")} canvas`).waitFor();
    assert.ok(await chartDrawn(page, section("timeline")), "the timeline's canvas is empty");
    await screenshot(page, "device.png");
  });

  test("the history table pages through the API's cursors and back", async () => {
    const { page } = session;
    const history = section("history");
    const older = page.locator(history).getByRole("button", { name: "Older →" });
    const newer = page.locator(history).getByRole("button", { name: "← Newer" });
    const pageOne = await rows(page, history);
    assert.equal(pageOne.length, 20);
    assert.ok(await newer.isDisabled());
    await older.click();
    await page.locator(history, { hasText: "Page 2" }).waitFor();
    pageTwo = await rows(page, history);
    assert.equal(pageTwo.length, 20);
    await older.click();
    await page.locator(history, { hasText: "Page 3" }).waitFor();
    const pageThree = await rows(page, history);
    assert.equal(pageThree.length, HISTORY_REPORTS - 40);
    assert.ok(await older.isDisabled(), "no page after the last");
    const times = [...pageOne, ...pageTwo, ...pageThree].map((r) => r[0]);
    assert.equal(new Set(times).size, HISTORY_REPORTS, "every report on exactly one page");
    assert.deepEqual([...times].sort().reverse(), times, "newest first across pages");
    await newer.click();
    await page.locator(history, { hasText: "Page 2" }).waitFor();
    assert.deepEqual(await rows(page, history), pageTwo);
  });

  test("a failure posted now shows at the next refresh, without a reload, keeping the page", async () => {
    const { page } = session;
    await page.evaluate(() => { window.stillTheSamePage = true; });
    await upload(runner, HISTORY, [report(HISTORY, 0, 5, 0.3)]);
    await page.waitForFunction(
      (n) => document.querySelector(".facts")?.textContent.includes(`${n} syncs`),
      HISTORY_REPORTS + 1,
      { timeout: REFRESH_WAIT_MS },
    );
    assert.ok(await page.evaluate(() => window.stillTheSamePage), "the page was reloaded");
    // (Its status may be silent again by now: the runner's silent period is short.)
    assert.match(await page.textContent(".facts dd"), /^1 since /, "one failure in a row");
    const history = section("history");
    assert.match(await page.textContent(history), /Page 2/);
    await page.locator(history).getByRole("button", { name: "← Newer" }).click();
    await page.locator(history, { hasText: "Page 1" }).waitFor();
    const [newest] = await rows(page, history);
    assert.equal(newest[1], "▲ failure");
    assert.equal(newest[3], "5");
  });

  test("a used sign-in link shows the sign-in screen", async () => {
    const used = runner.link();
    const first = await watchedPage(browser, runner.base);
    await first.page.goto(used);
    await first.page.locator("h1", { hasText: "Fleet" }).waitFor();
    await first.context.close();
    const { page, context, problems } = await watchedPage(browser, runner.base);
    await page.goto(used);
    await page.getByRole("heading", { name: "Sign in to PiSync" }).waitFor();
    assert.match(await page.getByRole("alert").textContent(), /used already or has expired/);
    assert.ok(await page.locator("#search").isHidden(), "no search while signed out");
    // The 401 itself is the only error the browser reports.
    assert.ok(problems.consoleErrors.every((e) => e.includes("401")), problems.consoleErrors.join("\n"));
    await context.close();
  });

  test("an admin signs in with a pasted token and issues, then revokes, a device's token", async () => {
    const { page, context, problems } = await watchedPage(browser, runner.base);
    await page.goto(`${runner.base}/dashboard`);
    await page.getByLabel("Operator token").fill(runner.adminToken());
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("h1", { hasText: "Fleet" }).waitFor();
    await page.goto(`${runner.base}/dashboard#/device/${FLEET[0]}`);
    await page.locator("#device-title", { hasText: FLEET[0] }).waitFor();

    await page.getByRole("button", { name: "Issue a new device token" }).click();
    const issued = await page.getByRole("status").filter({ hasText: "New token" }).textContent();
    const token = issued.split(": ").pop().trim();
    const post = (t) => fetch(`${runner.base}/sync-event`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${t}` },
      body: JSON.stringify(report(FLEET[0], 0)),
    });
    assert.equal((await post(token)).status, 201, "the issued token records");

    await page.getByRole("button", { name: "Revoke its tokens" }).click();
    await page.getByRole("status").filter({ hasText: "no longer work" }).waitFor();
    assert.equal((await post(token)).status, 401, "the revoked token is refused");
    assert.deepEqual(problems.consoleErrors, []);
    await context.close();
  });

  test("a read operator is told that credentials need an admin", async () => {
    const { page, context } = await watchedPage(browser, runner.base);
    await page.goto(runner.link());
    await page.locator("h1", { hasText: "Fleet" }).waitFor();
    await page.evaluate((id) => { location.hash = `#/device/${id}`; }, FLEET[1]);
    await page.locator("#device-title", { hasText: FLEET[1] }).waitFor();
    await page.getByRole("button", { name: "Issue a new device token" }).click();
    assert.match(await page.getByRole("alert").textContent(), /needs an admin/);
    await context.close();
  });

  test("on a phone the overview fits the screen's width", async () => {
    const { page, context, problems } = await watchedPage(browser, runner.base, { width: 390, height: 844 });
    await page.goto(runner.link());
    await page.locator(`${section("silent")} tbody tr`).first().waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
    assert.ok(await chartDrawn(page, section("days")));
    await screenshot(page, "overview-phone.png");
    assert.deepEqual(problems.consoleErrors, []);
    await context.close();
  });

  test("the signed-in session logged no console error and asked no other origin", () => {
    assert.deepEqual(session.problems.consoleErrors, []);
    assert.deepEqual(session.problems.foreignRequests, []);
  });

  test("an unreachable API is shown, and what was on screen stays", async () => {
    const { page } = session;
    const before = await rows(page, section("history"));
    runner.kill();
    await page.waitForFunction(
      () => document.getElementById("freshness").textContent.startsWith("API unreachable"),
      null,
      { timeout: REFRESH_WAIT_MS },
    );
    assert.ok(await page.evaluate(() => document.getElementById("freshness").classList.contains("down")));
    assert.deepEqual(await rows(page, section("history")), before);
  });
});

// Analytics in the dashboard, in a real headless Chromium against a real pisync-local:
// the schools ranked by failure rate with their 14-day trends, and the analytics view's
// charts and table for the fleet and for one school. One runner for the file.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { chartDrawn, eventually, launchBrowser, read, report, rows, screenshot, send, startRunner, upload, watchedPage } from "./support.mjs";

const section = (title) => `section[aria-labelledby=${title}-title]`;

describe("analytics in the dashboard", () => {
  let runner;
  let browser;

  before(async () => {
    runner = await startRunner();
    const admin = runner.adminToken();
    for (const [id, name] of [["east", "East Academy"], ["north", "North High"], ["south", "South Primary"]]) {
      assert.equal((await send(runner, "PUT", `/schools/${id}`, { name, timezone: "UTC" }, admin)).status, 201);
    }
    for (const [device, school] of [["n-1", "north"], ["n-2", "north"], ["s-1", "south"]]) {
      assert.equal((await send(runner, "PUT", `/device/${device}/school`, { school_id: school }, admin)).status, 200);
    }
    // North: 4 syncs from two devices at 10–40 Mbit/s, one failed; south: 2 failed.
    await upload(runner, "n-1", [report("n-1", 0.4, 0, 10), report("n-1", 0.3, 1, 20)]);
    await upload(runner, "n-2", [report("n-2", 0.4, 0, 30), report("n-2", 0.3, 0, 40)]);
    await upload(runner, "s-1", [report("s-1", 0.4, 2, 0), report("s-1", 0.3, 3, 0)]);
    const reader = runner.readToken();
    await eventually("six syncs in the analytics", async () => {
      const days = (await read(runner, "/analytics/daily?days=2", reader)).days;
      return days.reduce((n, d) => n + d.syncs, 0) === 6;
    });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    runner?.stop();
  });

  async function signedIn(token, hash) {
    const session = await watchedPage(browser, runner.base);
    await session.page.goto(`${runner.base}/dashboard`);
    await session.page.getByLabel("Operator token").fill(token);
    await session.page.getByRole("button", { name: "Sign in" }).click();
    await session.page.locator("h1").first().waitFor();
    await session.page.evaluate((h) => { location.hash = h; }, hash);
    return session;
  }

  test("the schools page ranks schools by failure rate, each with its trend", async () => {
    const { page, context, problems } = await signedIn(runner.readToken(), "#/schools");
    await page.locator(`${section("ranking")} tbody tr`).first().waitFor();
    const ranked = await rows(page, section("ranking"));
    assert.deepEqual(ranked.map((r) => [r[0], r[1], r[2], r[3], r[4]]), [
      ["South Primary", "100.0%", "2", "2", "1"],
      ["North High", "25.0%", "4", "1", "2"],
      ["East Academy", "0.0%", "0", "0", "0"],
    ]);
    const trends = await page.$$eval(`${section("ranking")} svg.sparkline`, (s) => s.map((x) => x.getAttribute("aria-label")));
    assert.equal(trends.length, 3);
    assert.match(trends[0], /^Failure rate, last 14 days: (no syncs, ){12,13}100\.0%/);
    await screenshot(page, "schools-ranking.png");
    assert.deepEqual(problems.consoleErrors, []);
    assert.deepEqual(problems.foreignRequests, []);
    await context.close();
  });

  test("the analytics view charts the fleet's days and lists them", async () => {
    const { page, context, problems } = await signedIn(runner.readToken(), "#/analytics");
    await page.locator("h1", { hasText: "Fleet analytics" }).waitFor();
    await page.locator(`${section("analytics-days")} tbody tr`).first().waitFor();
    await page.waitForFunction(() => document.querySelectorAll(".chart canvas").length === 2);
    assert.ok(await chartDrawn(page, section("syncs")), "the syncs chart is drawn");
    assert.ok(await chartDrawn(page, section("speed")), "the speed chart is drawn");
    const days = await rows(page, section("analytics-days"));
    assert.equal(days.length, 30);
    const total = (column) => days.reduce((n, r) => n + Number(r[column]), 0);
    assert.equal(total(1), 6, "syncs");
    assert.equal(total(2), 3, "failures");
    const withSyncs = days.filter((r) => r[1] !== "0");
    assert.ok(withSyncs.every((r) => r[5] !== "—"), "a p50 on each day with syncs");
    assert.ok(days.filter((r) => r[1] === "0").every((r) => r[5] === "—"), "none without");
    await screenshot(page, "analytics-fleet.png");
    assert.deepEqual(problems.consoleErrors, []);
    await context.close();
  });

  test("choosing a school narrows the analytics to its days", async () => {
    const { page, context, problems } = await signedIn(runner.readToken(), "#/analytics");
    await page.locator("h1", { hasText: "Fleet analytics" }).waitFor();
    await page.selectOption("#school-picker", "north");
    await page.locator("h1", { hasText: "North High: analytics" }).waitFor();
    await page.waitForFunction(() => {
      const cells = [...document.querySelectorAll("section[aria-labelledby=analytics-days-title] tbody tr")]
        .map((tr) => Number(tr.cells[1].textContent));
      return cells.length === 30 && cells.reduce((a, b) => a + b, 0) === 4;
    });
    const days = await rows(page, section("analytics-days"));
    const reported = days.filter((r) => r[1] !== "0");
    assert.equal(reported.reduce((n, r) => n + Number(r[4]), 0) >= 2, true, "two devices reported");
    // The school's devices ran at 10–40 Mbit/s: every p50 and p90 among them (±1 %).
    for (const r of reported) {
      for (const cell of [r[5], r[6]]) assert.ok(Number(cell) >= 9.9 && Number(cell) <= 40.4, `${cell}`);
    }
    assert.deepEqual(problems.consoleErrors, []);
    await context.close();
  });

  test("a school operator's ranking holds its school only", async () => {
    const { page, context } = await signedIn(runner.schoolToken(["south"]), "#/schools");
    await page.locator(`${section("ranking")} tbody tr`).first().waitFor();
    const ranked = await rows(page, section("ranking"));
    assert.deepEqual(ranked.map((r) => r[0]), ["South Primary"]);
    await context.close();
  });
});

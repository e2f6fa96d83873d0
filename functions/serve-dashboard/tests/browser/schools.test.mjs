// Schools in the dashboard, in a real headless Chromium against a real pisync-local:
// the school picker, a school operator's landing and isolation, the schools page and
// its form, and moving a device to a school. One runner for the file; the tests run
// in order.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { eventually, launchBrowser, read, report, rows, screenshot, send, startRunner, upload, watchedPage } from "./support.mjs";

const section = (title) => `section[aria-labelledby=${title}-title]`;
const NORTH = ["north-01", "north-02"];
const SOUTH = "south-01";
const LOOSE = "loose-01";

describe("schools in the dashboard", () => {
  let runner;
  let browser;
  let admin;

  before(async () => {
    runner = await startRunner();
    admin = runner.adminToken();
    for (const [id, name] of [["north", "North High"], ["south", "South Primary"]]) {
      assert.equal((await send(runner, "PUT", `/schools/${id}`, { name, timezone: "Europe/London" }, admin)).status, 201);
    }
    for (const device of NORTH) assert.equal((await send(runner, "PUT", `/device/${device}/school`, { school_id: "north" }, admin)).status, 200);
    assert.equal((await send(runner, "PUT", `/device/${SOUTH}/school`, { school_id: "south" }, admin)).status, 200);
    await upload(runner, NORTH[0], [report(NORTH[0], 1)]);
    await upload(runner, NORTH[1], [report(NORTH[1], 3, 1), report(NORTH[1], 2, 1), report(NORTH[1], 1, 2)]);
    await upload(runner, SOUTH, [report(SOUTH, 1)]);
    await upload(runner, LOOSE, [report(LOOSE, 1)]);
    const reader = runner.readToken();
    await eventually("four devices listed", async () => (await read(runner, "/devices", reader)).devices.length === 4);
    // South has a daily digest at midnight, due at once: the runner's next check sends
    // it. Set only now, so that it counts south's device whatever the check's timing.
    const south = { name: "South Primary", timezone: "Europe/London", digest_at: "00:00" };
    assert.equal((await send(runner, "PUT", "/schools/south", south, admin)).status, 200);
    await eventually("south's digest sent", async () => (await read(runner, "/notices?type=school.digest", reader)).notices.length === 1);
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    runner?.stop();
  });

  /// A page signed in with `token` (pasted, as an operator would).
  async function signedIn(token) {
    const session = await watchedPage(browser, runner.base);
    await session.page.goto(`${runner.base}/dashboard`);
    await session.page.getByLabel("Operator token").fill(token);
    await session.page.getByRole("button", { name: "Sign in" }).click();
    await session.page.locator("h1").first().waitFor();
    return session;
  }

  test("the school picker narrows the overview to one school", async () => {
    const { page, context, problems } = await signedIn(runner.readToken());
    await page.locator("h1", { hasText: "Fleet" }).waitFor();
    await page.locator("[data-count=total]").waitFor();
    assert.equal(await page.textContent("[data-count=total]"), "4");
    const options = await page.$$eval("#school-picker option", (o) => o.map((x) => x.textContent));
    assert.deepEqual(options, ["All schools", "North High", "South Primary"]);
    await page.selectOption("#school-picker", "north");
    await page.locator("h1", { hasText: "North High" }).waitFor();
    await page.waitForFunction(() => document.querySelector("[data-count=total]")?.textContent === "2");
    assert.equal(await page.textContent("[data-count=failing]"), "1");
    const failing = await rows(page, section("failing"));
    assert.deepEqual(failing.map((r) => r[0]), [NORTH[1]]);
    await screenshot(page, "school-overview.png");
    assert.deepEqual(problems.consoleErrors, []);
    await context.close();
  });

  test("a school operator lands on its school, and another school's device is not there", async () => {
    const { page, context } = await signedIn(runner.schoolToken(["south"]));
    await page.locator("h1", { hasText: "South Primary" }).waitFor();
    assert.equal(await page.inputValue("#school-picker"), "south");
    const options = await page.$$eval("#school-picker option", (o) => o.map((x) => x.textContent));
    assert.deepEqual(options, ["All my schools", "South Primary"]);
    await page.waitForFunction(() => document.querySelector("[data-count=total]")?.textContent === "1");
    await page.evaluate((id) => { location.hash = `#/device/${id}`; }, NORTH[1]);
    await page.locator("#device-title", { hasText: NORTH[1] }).waitFor();
    assert.match(await page.textContent(section("device")), /never reported/);
    await context.close();
  });

  test("the schools page lists each school with its devices", async () => {
    const { page, context } = await signedIn(runner.readToken());
    await page.evaluate(() => { location.hash = "#/schools"; });
    await page.locator(`${section("schools")} tbody tr`).first().waitFor();
    const listed = await rows(page, section("schools"));
    assert.deepEqual(listed.map((r) => r.slice(0, 7)), [
      ["North High", "north", "Europe/London", "2", "1", "1", "0"],
      ["South Primary", "south", "Europe/London", "1", "1", "0", "0"],
    ]);
    assert.equal(await page.locator("form.school-form").count(), 0, "no form for a reader");
    await context.close();
  });

  test("an admin's school form lists every problem, then saves the school", async () => {
    const { page, context, problems } = await signedIn(admin);
    await page.evaluate(() => { location.hash = "#/schools"; });
    await page.locator("form.school-form").waitFor();
    await page.getByLabel("School id").fill("west");
    await page.getByLabel("Name", { exact: true }).fill("West Academy");
    await page.getByLabel(/^Timezone/).fill("Mars/Olympus");
    await page.getByLabel("Opens (HH:MM)").fill("16:00");
    await page.getByLabel("Closes (HH:MM)").fill("08:00");
    await page.getByRole("button", { name: "Save school" }).click();
    const alert = page.locator("form.school-form [role=alert]");
    await alert.waitFor();
    const text = await alert.textContent();
    assert.match(text, /timezone:/);
    assert.match(text, /hours:/);
    await page.getByLabel(/^Timezone/).fill("America/New_York");
    await page.getByLabel("Opens (HH:MM)").fill("08:00");
    await page.getByLabel("Closes (HH:MM)").fill("15:30");
    await page.getByLabel(/^Closures/).fill("2026-12-21 2027-01-01 Winter break");
    await page.getByRole("button", { name: "Save school" }).click();
    await page.getByRole("status").filter({ hasText: "Saved West Academy" }).waitFor();
    const saved = await read(runner, "/schools/west", admin);
    assert.deepEqual(saved.hours, { days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], open: "08:00", close: "15:30" });
    assert.deepEqual(saved.closures, [{ from: "2026-12-21", to: "2027-01-01", reason: "Winter break" }]);
    await page.locator(`${section("schools")} tbody tr`, { hasText: "West Academy" }).waitFor();
    await screenshot(page, "schools.png");
    assert.deepEqual(problems.consoleErrors.filter((e) => !e.includes("400")), []);
    await context.close();
  });

  test("an admin moves a device to a school from its page", async () => {
    const { page, context } = await signedIn(admin);
    await page.evaluate((id) => { location.hash = `#/device/${id}`; }, LOOSE);
    await page.locator("#device-title", { hasText: LOOSE }).waitFor();
    assert.match(await page.textContent(".facts"), /School\s*none/);
    await page.selectOption("#assign-school", "west");
    await page.getByRole("button", { name: "Move to this school" }).click();
    await page.getByRole("status").filter({ hasText: `${LOOSE} is now in west` }).waitFor();
    const device = await read(runner, `/device/${LOOSE}`, admin);
    assert.equal(device.school_id, "west");
    await context.close();
  });

  test("a school with devices is not deleted, and the page says why", async () => {
    const { page, context } = await signedIn(admin);
    await page.evaluate(() => { location.hash = "#/schools"; });
    await page.getByRole("button", { name: "Delete north" }).click();
    const alert = page.locator(`${section("schools")} [role=alert]`);
    await alert.waitFor();
    assert.match(await alert.textContent(), /still has devices/);
    await context.close();
  });

  test("the notices view lists every decision, by school; a device page shows its own", async () => {
    const { page, context, problems } = await signedIn(runner.readToken());
    await page.getByRole("link", { name: "Notices" }).click();
    await page.locator("h1", { hasText: "Notices" }).waitFor();
    await page.locator(`${section("notices")} tbody tr`).first().waitFor();
    await page.waitForFunction((s) => document.querySelectorAll(`${s} tbody tr`).length === 2, section("notices"));
    const listed = await rows(page, section("notices"));
    // decided, notice, device, school, what, sent
    const alert = ["repeated_sync_failures", NORTH[1], "north", "3 failures in a row", "published"];
    const digest = listed.map((r) => r.slice(1)).find((r) => r[0] === "school.digest");
    assert.deepEqual(listed.map((r) => r.slice(1)).filter((r) => r[0] !== "school.digest"), [alert]);
    // A digest is about its school: no device.
    assert.deepEqual([digest[1], digest[2], digest[4]], ["—", "south", "published"]);
    assert.match(digest[3], /^\d{4}-\d{2}-\d{2}: 0 failing, 0 silent of 1$/);
    await page.selectOption("#school-picker", "south");
    await page.waitForFunction((s) => document.querySelectorAll(`${s} tbody tr`).length === 1, section("notices"));
    assert.deepEqual((await rows(page, section("notices"))).map((r) => r.slice(1)), [digest]);
    await page.selectOption("#school-picker", "north");
    await page.waitForFunction(([s, device]) => {
      const shown = document.querySelectorAll(`${s} tbody tr`);
      return shown.length === 1 && shown[0].textContent.includes(device);
    }, [section("notices"), NORTH[1]]);
    assert.deepEqual((await rows(page, section("notices"))).map((r) => r.slice(1)), [alert]);
    await page.evaluate((id) => { location.hash = `#/device/${id}`; }, NORTH[1]);
    await page.locator(`${section("device-notices")} tbody tr`).first().waitFor();
    const own = await rows(page, section("device-notices"));
    assert.deepEqual(own.map((r) => r.slice(1)), [["repeated_sync_failures", "3 failures in a row", "published"]]);
    assert.deepEqual(problems.consoleErrors, []);
    await context.close();
  });

  test("an admin reads the audit trail; a reader has no audit view", async () => {
    const { page, context, problems } = await signedIn(admin);
    await page.getByRole("link", { name: "Audit" }).click();
    await page.locator("h1", { hasText: "Audit trail" }).waitFor();
    await page.locator(`${section("audit")} tbody tr`).first().waitFor();
    const listed = await rows(page, section("audit"));
    // Newest first: the move of the loose device, then the form's school, then setup.
    assert.deepEqual(listed[0].slice(1, 5), ["local-operator", "device.assigned", LOOSE, "west"]);
    assert.deepEqual(listed[1].slice(2, 4), ["school.created", "west"]);
    assert.equal(listed.filter((r) => r[2] === "school.created").length, 3);
    assert.deepEqual(problems.consoleErrors, []);
    await context.close();

    const reader = await signedIn(runner.readToken());
    await reader.page.locator("h1", { hasText: "Fleet" }).waitFor();
    assert.equal(await reader.page.getByRole("link", { name: "Audit" }).count(), 0);
    await reader.context.close();
  });
});

// The dashboard's notice history: every notice PiSync decided, published or held back
// (a late backlog's streak: "stale"; a flapping device: "flapping"), and each school's
// daily digest, newest first — the feed for the fleet or the chosen school, and one
// device's on its page.
import { deviceLink, el, problem, table, when } from "./dom.js";

const TYPES = [
  "device.repeated_sync_failures",
  "device.sync_recovered",
  "device.silent",
  "device.back_online",
  "device.flapping",
  "device.stable",
  "school.digest",
];

/// What the notice said, in a few words.
function gist(n) {
  switch (n.type) {
    case "device.repeated_sync_failures": return `${n.consecutive_failures} failures in a row`;
    case "device.sync_recovered": return `syncing again after ${n.failures_before_recovery} failures`;
    case "device.silent": return `no report for ${n.silent_after_hours} h`;
    case "device.back_online": return `reporting again, silent since ${when(n.silent_since)}`;
    case "device.flapping": return `${n.alerts_in_window} alerts in ${n.window_seconds / 3600} h`;
    case "device.stable": return `no alert since ${when(n.stable_since)}`;
    case "school.digest": return `${n.date}: ${n.devices.failing} failing, ${n.devices.silent} silent of ${n.devices.total}`;
    default: return "";
  }
}

/// A table of notices (`withDevice`: a column linking each to its device).
export function noticeTable(caption, notices, withDevice) {
  const columns = [
    ["decided", (n) => when(n.decided_at)],
    ["notice", (n) => n.type.replace("device.", "")],
  ];
  // A digest is about its school, not a device.
  if (withDevice) columns.push(["device", (n) => n.device_id ? deviceLink(n.device_id) : "—"], ["school", (n) => n.school_id ?? "—"]);
  columns.push(
    ["what", (n) => gist(n)],
    ["sent", (n) => n.published ? "published" : `held: ${n.reason}`],
  );
  return table(caption, notices, columns, "No notices.");
}

/// `#/notices`: the feed for the fleet or the chosen school, one type or all, and
/// "Older notices" for the next page.
export function noticesPage(ctx) {
  document.title = "PiSync — notices";
  const kind = el("select", { id: "notice-type" },
    el("option", { value: "" }, "All types"),
    ...TYPES.map((t) => el("option", { value: t }, t.replace("device.", ""))));
  const listBox = el("div", {}, el("p", { class: "loading" }, "Loading…"));
  const more = el("div", {});
  ctx.show(
    el("h1", {}, "Notices"),
    el("section", { class: "card wide", "aria-labelledby": "notices-title" },
      el("h2", { id: "notices-title" }, "Every notice decided, newest first"),
      el("p", {}, el("label", { for: "notice-type" }, "Type "), kind),
      listBox, more));
  const notices = [];
  const page = async (cursor) => {
    const query = new URLSearchParams(ctx.schoolQuery());
    query.set("limit", "50");
    if (kind.value) query.set("type", kind.value);
    if (cursor) query.set("cursor", cursor);
    const body = await ctx.api(`/notices?${query}`);
    notices.push(...body.notices);
    listBox.replaceChildren(noticeTable("Notices", notices, true));
    more.replaceChildren(body.next_cursor
      ? el("button", { type: "button", class: "quiet", onclick: () => page(body.next_cursor).catch((err) => more.replaceChildren(problem(err))) }, "Older notices")
      : "");
  };
  const first = async () => {
    notices.length = 0;
    await page(null);
  };
  kind.addEventListener("change", () => first().catch((err) => listBox.replaceChildren(problem(err))));
  return async (current) => {
    if (!current()) return;
    await first();
  };
}

// The dashboard's audit trail: every admin action, newest first, for admins (a school
// admin sees its schools' entries; the API decides).
import { el, problem, table, when } from "./dom.js";

/// `#/audit`: a page of entries, and "Older entries" for the next.
export function auditPage(ctx) {
  document.title = "PiSync — audit trail";
  const listBox = el("div", {}, el("p", { class: "loading" }, "Loading…"));
  const more = el("div", {});
  ctx.show(
    el("h1", {}, "Audit trail"),
    el("section", { class: "card wide", "aria-labelledby": "audit-title" },
      el("h2", { id: "audit-title" }, "Admin actions, newest first"), listBox, more));
  const entries = [];
  const render = () => {
    listBox.replaceChildren(table("Admin actions", entries, [
      ["when", (e) => when(e.at)],
      ["who", (e) => e.actor],
      ["action", (e) => e.action],
      ["target", (e) => e.target],
      ["school", (e) => e.previous_school_id ? `${e.previous_school_id} → ${e.school_id ?? "none"}` : (e.school_id ?? "—")],
      ["request", (e) => e.request_id],
    ], "No admin action recorded yet."));
  };
  const page = async (cursor) => {
    const body = await ctx.api(`/audit?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    entries.push(...body.entries);
    render();
    more.replaceChildren(body.next_cursor
      ? el("button", { type: "button", class: "quiet", onclick: () => page(body.next_cursor).catch((err) => more.replaceChildren(problem(err))) }, "Older entries")
      : "");
  };
  return async (current) => {
    if (!current()) return;
    entries.length = 0;
    await page(null);
  };
}

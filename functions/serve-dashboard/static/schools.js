// The dashboard's schools: the list with each school's devices, the form admins create
// and edit schools with, and a device's move to another school.
import { el, problem, table } from "./dom.js";

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Every school the caller may see, with its devices by status (at most 2,000).
export async function allSchools(api) {
  const schools = [];
  let cursor = null;
  do {
    const page = await api(`/schools?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    schools.push(...page.schools);
    cursor = page.next_cursor;
  } while (cursor && schools.length < 2000);
  return schools;
}

/// A school's body from the form; the API validates it (every problem at once).
function bodyOf(form) {
  const value = (name) => form.elements[name].value.trim();
  const optional = (name) => value(name) || null;
  const days = DAYS.filter((d) => form.elements[`day-${d}`].checked);
  const hours = value("open") || value("close") || days.length < 7
    ? { days, open: value("open"), close: value("close") }
    : null;
  const closures = value("closures").split("\n").map((line) => line.trim()).filter(Boolean).map((line) => {
    const [from, to, ...reason] = line.split(/\s+/);
    return { from, to: to || from, ...(reason.length ? { reason: reason.join(" ") } : {}) };
  });
  const threshold = value("failure_threshold");
  return {
    name: value("name"),
    timezone: value("timezone"),
    hours,
    closures,
    failure_threshold: threshold ? Number(threshold) : null,
    silent_after: optional("silent_after"),
    webhook_url: optional("webhook_url"),
    digest_at: optional("digest_at"),
  };
}

/// Fills the form with `school` (or empties it for a new one).
function fill(form, school) {
  const set = (name, v) => { form.elements[name].value = v ?? ""; };
  set("school_id", school?.school_id);
  form.elements.school_id.readOnly = Boolean(school);
  set("name", school?.name);
  set("timezone", school?.timezone ?? "UTC");
  for (const d of DAYS) form.elements[`day-${d}`].checked = school?.hours ? school.hours.days.includes(d) : true;
  set("open", school?.hours?.open);
  set("close", school?.hours?.close);
  set("closures", (school?.closures || []).map((c) => `${c.from} ${c.to}${c.reason ? ` ${c.reason}` : ""}`).join("\n"));
  set("failure_threshold", school?.failure_threshold);
  set("silent_after", school?.silent_after);
  set("webhook_url", school?.webhook_url);
  set("digest_at", school?.digest_at);
}

function schoolForm(ctx, onSaved) {
  const outcome = el("div", { "aria-live": "polite" });
  const field = (name, label, attrs = {}) => el("p", { class: "field" },
    el("label", { for: `school-${name}` }, label),
    el("input", { id: `school-${name}`, name, autocomplete: "off", ...attrs }));
  const form = el("form", { class: "school-form", "aria-labelledby": "school-form-title" },
    el("h2", { id: "school-form-title" }, "Add or edit a school"),
    field("school_id", "School id", { required: true, pattern: "[A-Za-z0-9_.\\-]{1,64}" }),
    field("name", "Name", { required: true }),
    field("timezone", "Timezone (IANA, e.g. Europe/London)", { required: true }),
    el("fieldset", {}, el("legend", {}, "Open days and hours (none: all day, every day)"),
      DAYS.map((d) => el("label", { class: "day" }, el("input", { type: "checkbox", name: `day-${d}`, checked: true }), d)),
      field("open", "Opens (HH:MM)", { placeholder: "08:00" }),
      field("close", "Closes (HH:MM)", { placeholder: "16:00" })),
    el("p", { class: "field" },
      el("label", { for: "school-closures" }, "Closures, one per line: from to reason"),
      el("textarea", { id: "school-closures", name: "closures", rows: 3, placeholder: "2026-12-19 2027-01-04 Winter break" })),
    field("failure_threshold", "Failures in a row that alert (empty: the fleet's)", { type: "number", min: 1, max: 100 }),
    field("silent_after", "Silent after, in open time (e.g. 16h)"),
    field("webhook_url", "Webhook URL (https://)"),
    field("digest_at", "Daily digest at (HH:MM)"),
    el("div", { class: "pager" },
      el("button", { type: "submit" }, "Save school"),
      el("button", { type: "button", class: "quiet", onclick: () => { fill(form, null); outcome.replaceChildren(); } }, "New school")),
    outcome);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const id = form.elements.school_id.value.trim();
    try {
      const saved = await ctx.api(`/schools/${encodeURIComponent(id)}`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(bodyOf(form)),
      });
      outcome.replaceChildren(el("p", { class: "notice", role: "status" }, `Saved ${saved.name} (${saved.school_id}).`));
      onSaved();
    } catch (err) {
      outcome.replaceChildren(err.status === 403 ? el("p", { class: "error", role: "alert" }, "Only an admin may change schools.") : problem(err));
    }
  });
  fill(form, null);
  return form;
}

/// `#/schools`: the schools ranked by failure rate, the schools with their devices;
/// admins add, edit and delete them.
export function schoolsPage(ctx) {
  document.title = "PiSync — schools";
  const rankingBox = el("div", {}, el("p", { class: "loading" }, "Loading…"));
  const listBox = el("div", {}, el("p", { class: "loading" }, "Loading…"));
  const outcome = el("div", { "aria-live": "polite" });
  let reload = () => {};
  const form = schoolForm(ctx, () => reload());
  const remove = async (school) => {
    try {
      await ctx.api(`/schools/${encodeURIComponent(school.school_id)}`, { method: "DELETE" });
      outcome.replaceChildren(el("p", { class: "notice", role: "status" }, `Deleted ${school.name}.`));
      reload();
    } catch (err) {
      outcome.replaceChildren(problem(err));
    }
  };
  ctx.show(
    el("h1", {}, "Schools"),
    el("div", { class: "grid" },
      el("section", { class: "card wide", "aria-labelledby": "ranking-title" },
        el("h2", { id: "ranking-title" }, "Which schools struggle: the last 7 days"), rankingBox),
      el("section", { class: "card wide", "aria-labelledby": "schools-title" },
        el("h2", { id: "schools-title" }, "Schools and their devices"), listBox, outcome),
      ctx.me.admin ? el("section", { class: "card wide" }, form) : null));
  const loader = async (current) => {
    const [schools, ranking] = await Promise.all([allSchools(ctx.api), ctx.ranking()]);
    if (!current()) return;
    rankingBox.replaceChildren(ranking);
    listBox.replaceChildren(table("Schools by id", schools, [
      ["school", (s) => el("a", { href: "#/", onclick: () => ctx.choose(s.school_id) }, s.name)],
      ["id", (s) => s.school_id],
      ["timezone", (s) => s.timezone],
      ["devices", (s) => s.devices.total, true],
      ["healthy", (s) => s.devices.healthy, true],
      ["failing", (s) => s.devices.failing, true],
      ["silent", (s) => s.devices.silent, true],
      ...(ctx.me.admin ? [["", (s) => el("span", { class: "actions" },
        el("button", { type: "button", class: "quiet", onclick: () => { fill(form, s); form.scrollIntoView(); } }, `Edit ${s.school_id}`),
        el("button", { type: "button", class: "quiet", onclick: () => remove(s) }, `Delete ${s.school_id}`))]] : []),
    ], "No school yet."));
  };
  reload = () => ctx.load(loader);
  return loader;
}

/// A device's school, and (for admins) the move to another.
export function assignBox(ctx, deviceId, schools, current) {
  const outcome = el("div", { "aria-live": "polite" });
  const select = el("select", { id: "assign-school" },
    el("option", { value: "" }, "No school"),
    schools.map((s) => el("option", { value: s.school_id, selected: s.school_id === current }, `${s.name} (${s.school_id})`)));
  const move = async () => {
    const school = select.value || null;
    try {
      await ctx.api(`/device/${encodeURIComponent(deviceId)}/school`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ school_id: school }),
      });
      outcome.replaceChildren(el("p", { class: "notice", role: "status" }, school ? `${deviceId} is now in ${school}.` : `${deviceId} is in no school now.`));
    } catch (err) {
      outcome.replaceChildren(err.status === 403 ? el("p", { class: "error", role: "alert" }, "Moving devices needs an admin of both schools.") : problem(err));
    }
  };
  return el("div", {},
    el("div", { class: "pager" }, el("label", { for: "assign-school" }, "School"), select,
      el("button", { type: "button", class: "quiet", onclick: move }, "Move to this school")),
    outcome);
}

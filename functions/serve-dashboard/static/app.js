// PiSync dashboard: the fleet (or one school) at a glance, the schools, the notices
// decided, and one device's history, from the API with the operator's token. Plain JavaScript modules;
// every value from the API reaches the page as text (never as HTML). Views refresh
// every 30 s in place, keeping the operator's place.
import { ago, deviceLink, el, statusBadge, table as devicesTable, when } from "./dom.js";
import { analyticsPage, rankingTable } from "./analytics.js";
import { auditPage } from "./audit.js";
import { noticesPage, noticeTable } from "./notices.js";
import { allSchools, assignBox, schoolsPage } from "./schools.js";

const REFRESH_MS = 30000;
const TOKEN_KEY = "pisync.token";
const SCHOOL_KEY = "pisync.school";
const VERIFIER_KEY = "pisync.pkce";
const WINDOW_DAYS = 7;
const DAY_MS = 86400000;

const main = document.getElementById("main");
const freshness = document.getElementById("freshness");
const search = document.getElementById("search");
const picker = document.getElementById("school-picker");
const nav = document.getElementById("nav");
let config = { sign_in: "token" };
let render = null; // the current view's refresh, or null
let generation = 0; // bumps on navigation: stale responses are dropped

function show(...nodes) {
  main.replaceChildren(...nodes);
}

// ---------------------------------------------------------------- sign-in

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/// What the token says about its holder, for the page's defaults only (the API
/// decides what it may see): the district, or some schools; admin or not. A local
/// token is `pisync_o.<kid>.<payload>.<mac>`; a Cognito one a JWT with groups.
function me() {
  const t = token() || "";
  const decode = (part) => atob(part.replace(/-/g, "+").replace(/_/g, "/"));
  try {
    if (t.startsWith("pisync_o.")) {
      const [scope, , , reach] = decode(t.split(".")[2]).split(" ");
      const schools = reach === "*" ? [] : reach.split(",");
      return { district: reach === "*", schools, admin: scope === "admin" };
    }
    const claims = JSON.parse(decode(t.split(".")[1]));
    let groups = claims[config.groups_claim || "cognito:groups"] || [];
    if (typeof groups === "string") groups = [groups];
    const schools = groups.map((g) => g.match(/^school-(.+)-(read|admin)$/)).filter(Boolean);
    return {
      district: groups.includes("pisync-read") || groups.includes("pisync-admin"),
      schools: [...new Set(schools.map((m) => m[1]))],
      admin: groups.includes("pisync-admin") || schools.some((m) => m[2] === "admin"),
    };
  } catch {
    return { district: true, schools: [], admin: true };
  }
}

/// The school the views narrow to ("" for every school the operator sees).
function chosenSchool() {
  return sessionStorage.getItem(SCHOOL_KEY) || "";
}

function schoolQuery() {
  const school = chosenSchool();
  return school ? `&school=${encodeURIComponent(school)}` : "";
}

function choose(school) {
  sessionStorage.setItem(SCHOOL_KEY, school);
  picker.value = school;
}

/// Fills the picker with the schools the operator sees; a school operator of one
/// school lands on it.
async function fillPicker() {
  const who = me();
  let schools = [];
  try {
    schools = await allSchools(api);
  } catch (err) {
    if (err instanceof SignedOut) throw err;
  }
  if (!sessionStorage.getItem(SCHOOL_KEY) && !who.district && schools.length === 1) {
    sessionStorage.setItem(SCHOOL_KEY, schools[0].school_id);
  }
  const every = who.district ? "All schools" : "All my schools";
  picker.replaceChildren(el("option", { value: "" }, every),
    ...schools.map((s) => el("option", { value: s.school_id }, s.name)));
  picker.value = chosenSchool();
  if (picker.value !== chosenSchool()) choose("");
  knownSchools = schools;
}
let knownSchools = [];

/// The school the picker names, as listed (`undefined`: all schools).
function chosenSchoolRecord() {
  return knownSchools.find((s) => s.school_id === chosenSchool());
}

function base64url(bytes) {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function startCognito() {
  const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  sessionStorage.setItem(VERIFIER_KEY, verifier);
  const params = new URLSearchParams({
    response_type: "code",
    client_id: config.client_id,
    redirect_uri: config.redirect_uri,
    scope: "openid email",
    code_challenge: base64url(digest),
    code_challenge_method: "S256",
  });
  location.assign(`${config.domain}/oauth2/authorize?${params}`);
}

async function finishCognito(code) {
  const verifier = sessionStorage.getItem(VERIFIER_KEY);
  sessionStorage.removeItem(VERIFIER_KEY);
  history.replaceState(null, "", location.pathname + "#/");
  if (!verifier) return false;
  const response = await fetch(`${config.domain}/oauth2/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      client_id: config.client_id,
      code,
      redirect_uri: config.redirect_uri,
      code_verifier: verifier,
    }),
  });
  if (!response.ok) return false;
  const tokens = await response.json();
  sessionStorage.setItem(TOKEN_KEY, tokens.access_token);
  return true;
}

/// A token handed over in the URL (the local runner's sign-in link) is kept for this
/// tab and removed from the address bar and history at once.
/// The local runner's sign-in link carries a one-time code in its fragment: exchanged
/// once for a session token. `false` when the link is used up or expired.
async function takeCodeFromLink() {
  const match = location.hash.match(/^#code=([0-9a-f]+)$/);
  if (!match) return true;
  history.replaceState(null, "", location.pathname + "#/");
  const response = await fetch("/dashboard/session", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ code: match[1] }),
  });
  if (!response.ok) return false;
  sessionStorage.setItem(TOKEN_KEY, (await response.json()).token);
  return true;
}

function signIn(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  render = null;
  search.hidden = true;
  nav.hidden = true;
  freshness.textContent = "";
  const box = el("section", { class: "card signin", "aria-labelledby": "signin-title" },
    el("h1", { id: "signin-title" }, "Sign in to PiSync"),
    message ? el("p", { class: "error", role: "alert" }, message) : null);
  if (config.sign_in === "cognito") {
    box.append(el("p", {}, "Operators sign in with their PiSync account."),
      el("button", { type: "button", onclick: () => startCognito() }, "Sign in"));
  } else {
    const form = el("form", {
      onsubmit: (e) => {
        e.preventDefault();
        const value = form.querySelector("input").value.trim();
        if (!value) return;
        sessionStorage.setItem(TOKEN_KEY, value);
        route();
      },
    },
    el("label", { for: "token" }, "Operator token"),
    el("input", { id: "token", type: "password", autocomplete: "off", required: true }),
    el("p", { class: "legend-note" },
      "Open the sign-in link pisync-local prints at start, or paste a token from `pisync-local token operator`."),
    el("button", { type: "submit" }, "Sign in"));
    box.append(form);
  }
  show(box);
}

// ---------------------------------------------------------------- the API

class Unreachable extends Error {}
class SignedOut extends Error {}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, {
      ...options,
      headers: { authorization: `Bearer ${token()}`, ...(options.headers || {}) },
      cache: "no-store",
    });
  } catch (err) {
    throw new Unreachable(err.message);
  }
  if (response.status === 401) throw new SignedOut();
  if (response.status === 204) return null;
  const body = await response.json().catch(() => null);
  if (response.status >= 500 || body === null) throw new Unreachable(`HTTP ${response.status}`);
  if (!response.ok) {
    const err = new Error(body.error ? body.error.message : `HTTP ${response.status}`);
    err.status = response.status;
    err.body = body;
    throw err;
  }
  return body;
}

function fresh() {
  const now = new Date();
  freshness.classList.remove("down");
  freshness.textContent = `Updated ${now.toLocaleTimeString()} · refreshes every 30 s`;
}

function down(err) {
  freshness.classList.add("down");
  freshness.textContent = `API unreachable (${err.message}); retrying every 30 s`;
}

/// Runs a view's loader; a refresh that fails keeps what is on screen.
async function load(loader) {
  const mine = generation;
  try {
    await loader(() => mine === generation);
    if (mine === generation) fresh();
  } catch (err) {
    if (err instanceof SignedOut) signIn("Your sign-in has expired or is not valid.");
    else if (err instanceof Unreachable) down(err);
    else throw err;
  }
}

// ---------------------------------------------------------------- charts

function chartWidth(host) {
  return Math.max(280, Math.min(host.clientWidth || 600, 1100));
}

function daysChart(host, days) {
  const xs = days.map((d) => Date.parse(`${d.date}T12:00:00Z`) / 1000);
  const syncs = days.map((d) => d.syncs);
  const rates = days.map((d) => (d.syncs ? Math.round(d.failure_rate * 1000) / 10 : null));
  const opts = {
    width: chartWidth(host),
    height: 220,
    title: "Syncs and failure rate, last 14 days (UTC)",
    // Bars start at zero; the legend names the series (values show in the table).
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max) * 1.1] }, rate: { range: [0, 100] } },
    legend: { live: false },
    axes: [
      {},
      { label: "syncs" },
      { scale: "rate", side: 1, label: "failure rate %", grid: { show: false } },
    ],
    series: [
      {},
      { label: "syncs", stroke: "#1f5fbf", fill: "rgba(31,95,191,.15)", paths: uPlot.paths.bars({ size: [0.6] }) },
      { label: "failure rate %", scale: "rate", stroke: "#b3261e", width: 2, points: { show: true } },
    ],
  };
  host.replaceChildren();
  return new uPlot(opts, [xs, syncs, rates], host);
}

function timelineChart(host, events, from, to) {
  const xs = events.map((e) => Date.parse(e.timestamp) / 1000);
  const speed = events.map((e) => e.internet_speed);
  const failed = events.map((e) => (e.outcome === "failure" ? e.internet_speed : null));
  const opts = {
    width: chartWidth(host),
    height: 220,
    title: "Syncs by device time: internet speed, failures marked ▲",
    scales: { x: { time: true, range: [from / 1000, to / 1000] }, y: { range: (u, min, max) => [0, Math.max(1, max) * 1.1] } },
    legend: { live: false },
    axes: [{}, { label: "Mbit/s" }],
    series: [
      {},
      { label: "internet speed (Mbit/s)", stroke: "#1f5fbf", width: 2, points: { show: true, size: 5 } },
      {
        label: "failed sync",
        stroke: "#b3261e",
        width: 0,
        paths: () => null,
        points: { show: true, size: 11, fill: "#b3261e" },
      },
    ],
  };
  host.replaceChildren();
  return new uPlot(opts, [xs, speed, failed], host);
}

// ---------------------------------------------------------------- overview



function overview() {
  const school = knownSchools.find((s) => s.school_id === chosenSchool());
  document.title = school ? `PiSync — ${school.name}` : "PiSync — fleet";
  const counts = el("dl", { class: "counts" });
  const chart = el("div", { class: "chart", role: "img", "aria-label": "Daily syncs and failure rate over the last 14 days" });
  const failingBox = el("div", {}, el("p", { class: "loading" }, "Loading…"));
  const silentBox = el("div", {}, el("p", { class: "loading" }, "Loading…"));
  const daysTable = el("details", {}, el("summary", {}, "The 14 days as a table"));
  show(
    el("h1", {}, school ? school.name : "Fleet"),
    el("div", { class: "grid" },
      el("section", { class: "card wide", "aria-labelledby": "counts-title" }, el("h2", { id: "counts-title" }, "Devices"), counts),
      el("section", { class: "card wide", "aria-labelledby": "days-title" }, el("h2", { id: "days-title" }, "Last 14 days"), chart, daysTable),
      el("section", { class: "card", "aria-labelledby": "failing-title" }, el("h2", { id: "failing-title" }, "Failing devices"), failingBox),
      el("section", { class: "card", "aria-labelledby": "silent-title" }, el("h2", { id: "silent-title" }, "Silent devices"), silentBox)));
  return (current) =>
    Promise.all([
      api(`/fleet/summary?days=14${schoolQuery()}`),
      api(`/devices?status=failing&limit=20${schoolQuery()}`),
      api(`/devices?status=silent&limit=20${schoolQuery()}`),
    ]).then(([summary, failing, silent]) => {
      if (!current()) return;
      const c = summary.devices;
      counts.replaceChildren(...[["total", c.total], ["healthy", c.healthy], ["failing", c.failing], ["silent", c.silent]]
        .map(([name, n]) => el("div", {}, el("dt", {}, name), el("dd", { "data-count": name }, n))));
      daysChart(chart, summary.days);
      daysTable.replaceChildren(el("summary", {}, "The 14 days as a table"),
        devicesTable("Daily syncs", summary.days, [
          ["date", (d) => d.date],
          ["syncs", (d) => d.syncs, true],
          ["failures", (d) => d.failures, true],
          ["failure rate", (d) => `${(d.failure_rate * 100).toFixed(1)}%`, true],
          ["mean Mbit/s", (d) => (d.mean_internet_speed === null ? "—" : d.mean_internet_speed.toFixed(1)), true],
        ], "No syncs."));
      failingBox.replaceChildren(devicesTable("Failing devices, longest streak first", failing.devices, [
        ["device", (d) => deviceLink(d.device_id)],
        ["failures in a row", (d) => d.consecutive_failures, true],
        ["since", (d) => when(d.streak_started_at)],
        ["last errors", (d) => (d.last_total_errors === null ? "—" : d.last_total_errors), true],
      ], "No device is failing."));
      silentBox.replaceChildren(devicesTable("Silent devices, longest silence first", silent.devices, [
        ["device", (d) => deviceLink(d.device_id)],
        ["last report", (d) => `${when(d.last_seen_at)} (${ago(d.last_seen_at)})`],
      ], "Every device has reported recently."));
    });
}

// ---------------------------------------------------------------- one device

function devicePage(id) {
  document.title = `PiSync — ${id}`;
  const card = el("section", { class: "card wide", "aria-labelledby": "device-title" }, el("p", { class: "loading" }, "Loading…"));
  const chart = el("div", { class: "chart", role: "img", "aria-label": `Syncs of ${id} over time` });
  const windowLabel = el("span", { "aria-live": "polite" });
  const earlier = el("button", { type: "button", class: "quiet" }, "← Earlier");
  const later = el("button", { type: "button", class: "quiet" }, "Later →");
  const tableBox = el("div", {});
  const noticesBox = el("div", {});
  const prev = el("button", { type: "button", class: "quiet" }, "← Newer");
  const next = el("button", { type: "button", class: "quiet" }, "Older →");
  const pageLabel = el("span", {});
  const admin = el("div", { class: "pager" });
  const adminOutcome = el("div", {});
  const schoolBox = el("div", {});
  // The operator's place: the chart's window and the table's page survive refreshes.
  const place = { windowEnd: null, cursors: [null] };

  const move = (days) => {
    place.windowEnd += days * DAY_MS;
    refreshNow();
  };
  earlier.addEventListener("click", () => move(-WINDOW_DAYS));
  later.addEventListener("click", () => move(WINDOW_DAYS));
  next.addEventListener("click", () => {
    place.cursors.push(next.dataset.cursor);
    refreshNow();
  });
  prev.addEventListener("click", () => {
    place.cursors.pop();
    refreshNow();
  });
  const credentials = async (method) => {
    try {
      const reply = await api(`/device/${encodeURIComponent(id)}/credentials`, { method });
      const text = method === "POST"
        ? `New token for ${id} (shown once; earlier tokens stop working): ${reply.token}`
        : `${id}'s tokens no longer work.`;
      adminOutcome.replaceChildren(el("p", { class: "notice", role: "status" }, text));
    } catch (err) {
      const text = err.status === 403 ? "Managing credentials needs an admin operator." : err.message;
      adminOutcome.replaceChildren(el("p", { class: "error", role: "alert" }, text));
    }
  };
  admin.append(
    el("button", { type: "button", class: "quiet", onclick: () => credentials("POST") }, "Issue a new device token"),
    el("button", { type: "button", class: "quiet", onclick: () => credentials("DELETE") }, "Revoke its tokens"));

  show(
    el("p", {}, el("a", { href: "#/" }, "← Fleet")),
    el("div", { class: "grid" },
      card,
      el("section", { class: "card wide", "aria-labelledby": "timeline-title" },
        el("h2", { id: "timeline-title" }, "Timeline"), chart,
        el("div", { class: "pager" }, earlier, windowLabel, later)),
      el("section", { class: "card wide", "aria-labelledby": "history-title" },
        el("h2", { id: "history-title" }, "Sync history, newest first"), tableBox,
        el("div", { class: "pager" }, prev, pageLabel, next)),
      el("section", { class: "card wide", "aria-labelledby": "device-notices-title" },
        el("h2", { id: "device-notices-title" }, "Notices, newest first"), noticesBox),
      el("section", { class: "card wide", "aria-labelledby": "admin-title" },
        el("h2", { id: "admin-title" }, "Credentials (admin)"), admin, adminOutcome),
      me().admin ? el("section", { class: "card wide", "aria-labelledby": "school-title" },
        el("h2", { id: "school-title" }, "School (admin)"), schoolBox) : null));
  let schoolShown = false;
  const showSchool = (current) => {
    if (schoolShown) return;
    schoolShown = true;
    schoolBox.replaceChildren(assignBox({ api }, id, knownSchools, current));
  };

  const path = `/device/${encodeURIComponent(id)}`;
  return async (current) => {
    let status;
    try {
      status = await api(path);
    } catch (err) {
      if (err.status === 404) {
        card.replaceChildren(el("h1", { id: "device-title" }, id), el("p", { class: "notice" }, "This device has never reported."));
        showSchool(null);
        return;
      }
      throw err;
    }
    if (place.windowEnd === null) {
      const newest = status.last_sync_at ? Date.parse(status.last_sync_at) : Date.now();
      place.windowEnd = Math.max(newest, Date.now() - WINDOW_DAYS * DAY_MS) + 60000;
    }
    const to = place.windowEnd;
    const from = to - WINDOW_DAYS * DAY_MS;
    const timeline = [];
    let cursor = null;
    do {
      const query = new URLSearchParams({ order: "asc", limit: "100", from: new Date(from).toISOString(), to: new Date(to).toISOString() });
      if (cursor) query.set("cursor", cursor);
      const page = await api(`${path}/sync-history?${query}`);
      timeline.push(...page.events);
      cursor = page.next_cursor;
    } while (cursor && timeline.length < 1000);
    const pageCursor = place.cursors[place.cursors.length - 1];
    const history = await api(`${path}/sync-history?limit=20${pageCursor ? `&cursor=${encodeURIComponent(pageCursor)}` : ""}`);
    const notices = await api(`${path}/notices?limit=20`);
    if (!current()) return;
    showSchool(status.school_id);
    const school = knownSchools.find((s) => s.school_id === status.school_id);

    card.replaceChildren(
      el("h1", { id: "device-title" }, id, " ", statusBadge(status.status)),
      el("dl", { class: "facts" },
        el("dt", {}, "Failures in a row"), el("dd", {}, status.consecutive_failures,
          status.streak_started_at ? ` since ${when(status.streak_started_at)}` : ""),
        el("dt", {}, "Last sync"), el("dd", {}, when(status.last_sync_at)),
        el("dt", {}, "Last success"), el("dd", {}, when(status.last_success_at)),
        el("dt", {}, "Last failure"), el("dd", {}, when(status.last_failure_at)),
        el("dt", {}, "Last report received"), el("dd", {}, `${when(status.last_seen_at)} (${ago(status.last_seen_at)})`),
        el("dt", {}, "First seen"), el("dd", {}, when(status.first_seen_at)),
        el("dt", {}, "Last internet speed"), el("dd", {}, status.last_internet_speed === null ? "—" : `${status.last_internet_speed} Mbit/s`),
        el("dt", {}, "Totals"), el("dd", {},
          `${status.totals.syncs} syncs, ${status.totals.failures} failed, ${status.totals.files_synced} files, ${status.totals.errors} errors`),
        el("dt", {}, "School"), el("dd", {}, status.school_id ? (school ? `${school.name} (${status.school_id})` : status.school_id) : "none")));
    windowLabel.textContent = `${when(new Date(from).toISOString())} – ${when(new Date(to).toISOString())}`;
    later.disabled = to > Date.now();
    if (timeline.length) timelineChart(chart, timeline, from, to);
    else chart.replaceChildren(el("p", { class: "empty" }, "No syncs in this window."));

    tableBox.replaceChildren(devicesTable("Sync history", history.events, [
      ["device time", (e) => when(e.timestamp)],
      ["outcome", (e) => el("span", { class: `outcome-${e.outcome}` }, e.outcome === "failure" ? "▲ failure" : "success")],
      ["files", (e) => e.total_files_synced, true],
      ["errors", (e) => e.total_errors, true],
      ["Mbit/s", (e) => e.internet_speed, true],
      ["received", (e) => when(e.received_at)],
    ], "No syncs."));
    noticesBox.replaceChildren(noticeTable("Notices", notices.notices, false));
    next.disabled = !history.next_cursor;
    next.dataset.cursor = history.next_cursor || "";
    prev.disabled = place.cursors.length < 2;
    pageLabel.textContent = `Page ${place.cursors.length}`;
  };
}

// ---------------------------------------------------------------- routing

function refreshNow() {
  if (render) load(render);
}

function route() {
  generation += 1;
  if (!token()) {
    signIn();
    return;
  }
  search.hidden = false;
  nav.hidden = false;
  document.getElementById("audit-link").hidden = !me().admin;
  const mine = generation;
  fillPicker().then(() => {
    if (mine !== generation) return;
    const match = location.hash.match(/^#\/device\/(.+)$/);
    let loader;
    if (match) loader = devicePage(decodeURIComponent(match[1]));
    else if (location.hash === "#/schools") loader = schoolsPage({ api, show, load, choose, me: me(), ranking: () => rankingTable(api, choose) });
    else if (location.hash === "#/audit" && me().admin) loader = auditPage({ api, show });
    else if (location.hash === "#/notices") loader = noticesPage({ api, show, schoolQuery });
    else if (location.hash === "#/analytics") loader = analyticsPage({ api, show, schoolQuery, school: chosenSchoolRecord });
    else loader = overview();
    render = loader;
    load(loader);
    main.focus({ preventScroll: true });
  }, (err) => {
    if (err instanceof SignedOut) signIn("Your sign-in has expired or is not valid.");
    else down(err);
  });
}

picker.addEventListener("change", () => {
  choose(picker.value);
  if (location.hash === "#/notices" || location.hash === "#/analytics") route();
  else if (location.hash.startsWith("#/device/") || location.hash === "#/schools" || location.hash === "#/audit") location.hash = "#/";
  else route();
});

search.addEventListener("submit", (e) => {
  e.preventDefault();
  const id = search.querySelector("input").value.trim();
  if (id) location.hash = `#/device/${encodeURIComponent(id)}`;
});
// "/" jumps to the device search, unless the operator is typing somewhere.
document.addEventListener("keydown", (e) => {
  const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement;
  if (e.key !== "/" || typing || search.hidden || e.ctrlKey || e.metaKey || e.altKey) return;
  e.preventDefault();
  search.querySelector("input").focus();
});
const USED_LINK = "That sign-in link was used already or has expired: run pisync-local sign-in for a new one, or paste a token.";
window.addEventListener("hashchange", async () => {
  if (!(await takeCodeFromLink())) signIn(USED_LINK);
  else route();
});
setInterval(refreshNow, REFRESH_MS);

async function start() {
  try {
    const response = await fetch("/dashboard/config.json", { cache: "no-store" });
    if (response.ok) config = await response.json();
  } catch {
    // Without the configuration, the local sign-in (a pasted token) still works.
  }
  if (!(await takeCodeFromLink())) {
    signIn(USED_LINK);
    return;
  }
  const code = new URLSearchParams(location.search).get("code");
  if (code && config.sign_in === "cognito" && !(await finishCognito(code))) {
    signIn("Sign-in did not complete; try again.");
    return;
  }
  route();
}

start();

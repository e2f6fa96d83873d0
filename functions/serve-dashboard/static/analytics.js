// The dashboard's analytics: per day (the chosen school's local days, or the fleet's
// UTC days) the syncs, failure rate and link speed's p50/p90, each chart with its
// table; and the schools ranked by failure rate, each with a 14-day trend.
import { el, table } from "./dom.js";

const DAYS = 30;
/// Schools whose 14-day trend is drawn (one request each).
const TRENDS = 50;

function chartWidth(host) {
  return Math.max(280, Math.min(host.clientWidth || 600, 1100));
}

const percent = (rate) => `${(rate * 100).toFixed(1)}%`;
const speed = (v) => (v === null || v === undefined ? "—" : v.toFixed(1));
const xsOf = (days) => days.map((d) => Date.parse(`${d.date}T12:00:00Z`) / 1000);

function syncsChart(host, days, calendar) {
  const rates = days.map((d) => (d.syncs ? Math.round(d.failure_rate * 1000) / 10 : null));
  host.replaceChildren();
  return new uPlot({
    width: chartWidth(host),
    height: 220,
    title: `Syncs and failure rate, last ${days.length} days (${calendar})`,
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max) * 1.1] }, rate: { range: [0, 100] } },
    legend: { live: false },
    axes: [{}, { label: "syncs" }, { scale: "rate", side: 1, label: "failure rate %", grid: { show: false } }],
    series: [
      {},
      { label: "syncs", stroke: "#1f5fbf", fill: "rgba(31,95,191,.15)", paths: uPlot.paths.bars({ size: [0.6] }) },
      { label: "failure rate %", scale: "rate", stroke: "#b3261e", width: 2, points: { show: true } },
    ],
  }, [xsOf(days), days.map((d) => d.syncs), rates], host);
}

function speedChart(host, days, calendar) {
  const of = (key) => days.map((d) => (d.internet_speed ? d.internet_speed[key] : null));
  host.replaceChildren();
  return new uPlot({
    width: chartWidth(host),
    height: 220,
    title: `Internet speed, median and slow tail (${calendar})`,
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max) * 1.1] } },
    legend: { live: false },
    axes: [{}, { label: "Mbit/s" }],
    series: [
      {},
      { label: "p50 (Mbit/s)", stroke: "#1f5fbf", width: 2, points: { show: true } },
      { label: "p90 (Mbit/s)", stroke: "#6b4fbb", width: 2, dash: [6, 4], points: { show: true } },
    ],
  }, [xsOf(days), of("p50"), of("p90")], host);
}

/// `#/analytics`: the last 30 days of the chosen school (or the fleet).
export function analyticsPage(ctx) {
  const school = ctx.school();
  document.title = school ? `PiSync — ${school.name} analytics` : "PiSync — analytics";
  const syncs = el("div", { class: "chart", role: "img", "aria-label": `Daily syncs and failure rate over the last ${DAYS} days` });
  const speeds = el("div", { class: "chart", role: "img", "aria-label": `Daily internet speed p50 and p90 over the last ${DAYS} days` });
  const days = el("div", {}, el("p", { class: "loading" }, "Loading…"));
  ctx.show(
    el("h1", {}, school ? `${school.name}: analytics` : "Fleet analytics"),
    el("div", { class: "grid" },
      el("section", { class: "card wide", "aria-labelledby": "syncs-title" }, el("h2", { id: "syncs-title" }, "Syncs and failures"), syncs),
      el("section", { class: "card wide", "aria-labelledby": "speed-title" }, el("h2", { id: "speed-title" }, "Link speed"), speeds),
      el("section", { class: "card wide", "aria-labelledby": "analytics-days-title" }, el("h2", { id: "analytics-days-title" }, "Each day"), days)));
  return async (current) => {
    const body = await ctx.api(`/analytics/daily?days=${DAYS}${ctx.schoolQuery()}`);
    if (!current()) return;
    syncsChart(syncs, body.days, body.timezone);
    speedChart(speeds, body.days, body.timezone);
    days.replaceChildren(table(`Each day (${body.timezone}), oldest first`, body.days, [
      ["date", (d) => d.date],
      ["syncs", (d) => d.syncs, true],
      ["failures", (d) => d.failures, true],
      ["failure rate", (d) => percent(d.failure_rate), true],
      ["devices reporting", (d) => d.devices_reporting, true],
      ["p50 Mbit/s", (d) => speed(d.internet_speed?.p50), true],
      ["p90 Mbit/s", (d) => speed(d.internet_speed?.p90), true],
      ["mean Mbit/s", (d) => speed(d.internet_speed?.mean), true],
    ], "No days."));
  };
}

/// A 14-day failure-rate trend as a small line (the ranking table holds the figures).
function sparkline(days) {
  const width = 112;
  const height = 24;
  const step = width / Math.max(1, days.length - 1);
  const points = days.map((d, i) => `${(i * step).toFixed(1)},${(height - 2 - d.failure_rate * (height - 4)).toFixed(1)}`);
  const label = `Failure rate, last ${days.length} days: ${days.map((d) => (d.syncs ? percent(d.failure_rate) : "no syncs")).join(", ")}`;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", String(width));
  svg.setAttribute("height", String(height));
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  svg.setAttribute("class", "sparkline");
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points.join(" "));
  svg.append(line);
  return svg;
}

/// The caller's schools, highest failure rate over the last 7 days first, each with
/// its 14-day trend.
export async function rankingTable(api, choose) {
  const ranked = (await api("/analytics/schools?days=7")).schools;
  const trends = await Promise.all(ranked.slice(0, TRENDS).map((s) =>
    api(`/analytics/daily?days=14&school=${encodeURIComponent(s.school_id)}`).then((b) => b.days)));
  return table("Schools by failure rate over the last 7 days, highest first", ranked, [
    ["school", (s) => el("a", { href: "#/analytics", onclick: () => choose(s.school_id) }, s.name)],
    ["failure rate", (s) => percent(s.failure_rate), true],
    ["syncs", (s) => s.syncs, true],
    ["failures", (s) => s.failures, true],
    ["devices reporting", (s) => s.devices_reporting, true],
    ["p50 Mbit/s", (s) => speed(s.internet_speed?.p50), true],
    ["p90 Mbit/s", (s) => speed(s.internet_speed?.p90), true],
    ["14 days", (s) => {
      const i = ranked.indexOf(s);
      return i < trends.length ? sparkline(trends[i]) : "—";
    }],
  ], "No school yet.");
}

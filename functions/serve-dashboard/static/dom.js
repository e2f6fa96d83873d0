// The dashboard's DOM helpers: every value from the API reaches the page as text
// (never as HTML).

/// An element with attributes (`on…` are listeners) and children (text or nodes).
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/// An API time as `YYYY-MM-DD HH:MM:SS UTC`.
export function when(iso) {
  if (!iso) return "—";
  return iso.replace("T", " ").replace(/\.\d{3}Z$/, " UTC");
}

export function ago(iso) {
  if (!iso) return "never";
  const minutes = Math.round((Date.now() - Date.parse(iso)) / 60000);
  if (minutes < 1) return "just now";
  if (minutes < 120) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.round(hours / 24)} days ago`;
}

export function statusBadge(status) {
  return el("span", { class: `status ${status}` }, status);
}

export function deviceLink(id) {
  return el("a", { href: `#/device/${encodeURIComponent(id)}` }, id);
}

/// A table of `rows`, one column per `[name, cell(row), numeric]`, or `emptyText`.
export function table(caption, rows, columns, emptyText) {
  if (!rows.length) return el("p", { class: "empty" }, emptyText);
  return el("table", {},
    el("caption", { class: "hide-narrow" }, caption),
    el("thead", {}, el("tr", {}, columns.map(([name, , numeric]) => el("th", { scope: "col", class: numeric ? "num" : null }, name)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, columns.map(([, cell, numeric]) => el("td", { class: numeric ? "num" : null }, cell(r)))))));
}

/// An API error as the operator reads it: the message and each problem listed.
export function problem(err) {
  const details = err.body?.error?.details || [];
  return el("div", { class: "error", role: "alert" },
    el("p", {}, err.message),
    details.length ? el("ul", {}, details.map((d) => el("li", {}, `${d.field}: ${d.message}`))) : null);
}

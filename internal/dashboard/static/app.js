// otafleet dashboard: a hash router, the products and firmware pages, and
// the helpers the batch page (batch.js) shares. Every page follows one
// Server-Sent Events stream of its view; the server pushes the whole view
// after each change, so the page only ever renders what it receives.
"use strict";

const $ = (sel, el = document) => el.querySelector(sel);

// h builds an element; strings become text nodes, so data from the cluster
// is never parsed as HTML.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

const fmt = (n) => (n || 0).toLocaleString("en-US");
const badge = (text) => h("span", { class: "badge " + (text || "") }, text || "—");
const when = (t) => (t ? new Date(t).toLocaleString() : "—");

function fmtBytes(n) {
  if (!n) return "—";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

// One stream at a time: the page being shown.
let stream = null;
function follow(view, name, onData) {
  if (stream) stream.close();
  const q = new URLSearchParams({ view });
  if (name) q.set("name", name);
  stream = new EventSource("/api/events?" + q);
  const live = $("#live");
  stream.onopen = () => { live.textContent = "live"; live.classList.add("on"); };
  stream.onerror = () => { live.textContent = "reconnecting…"; live.classList.remove("on"); };
  stream.onmessage = (e) => onData(JSON.parse(e.data));
}

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const page = parts[0] || "products";
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", a.dataset.nav === page || (page === "batches" && a.dataset.nav === "products"));
  }
  const view = $("#view");
  view.replaceChildren();
  if (page === "batches" && parts[1]) return showBatch(view, parts[1]);
  if (page === "firmwares") return follow("firmwares", "", (d) => renderFirmwares(view, d));
  return follow("products", "", (d) => renderProducts(view, d));
}

// versionChart draws a module's version distribution as horizontal bars.
function versionChart(mod) {
  const rows = mod.versions || [];
  const max = Math.max(1, ...rows.map((r) => r.devices));
  const total = rows.reduce((a, r) => a + r.devices, 0);
  const rowH = 22, labelW = 90, barW = 200;
  const svg = s("svg", { class: "chart", width: labelW + barW + 110, height: rowH * rows.length + 4,
    role: "img", "aria-label": `versions of module ${mod.module}` });
  rows.forEach((r, i) => {
    const y = i * rowH + 2, w = Math.max(2, (barW * r.devices) / max);
    svg.append(s("text", { x: 0, y: y + 15 }, r.version));
    const bar = s("rect", { class: "cbar", x: labelW, y: y + 3, width: w, height: rowH - 8, rx: 3,
      "data-version": r.version });
    bar.append(s("title", {}, `${r.version}: ${r.devices} devices`));
    svg.append(bar);
    const pct = total ? ` (${Math.round((100 * r.devices) / total)}%)` : "";
    svg.append(s("text", { class: "cnum", x: labelW + w + 6, y: y + 15 }, fmt(r.devices) + pct));
  });
  return svg;
}

function batchRow(b) {
  const c = b.counts || {};
  return h("tr", {},
    h("td", {}, h("a", { href: "#/batches/" + encodeURIComponent(b.name) }, b.name)),
    h("td", {}, b.product || "—"), h("td", {}, b.module ? `${b.module} → ${b.version}` : "—"),
    h("td", {}, badge(b.phase), b.paused && !b.finished ? " paused" : ""),
    h("td", { class: "num" }, `${fmt(c.succeeded)} / ${fmt(c.total)}`),
    h("td", { class: "num" }, fmt(c.failed)));
}

function batchTable(list, empty) {
  if (!list.length) return h("div", { class: "empty" }, empty);
  return h("table", { class: "batches" },
    h("thead", {}, h("tr", {}, h("th", {}, "Batch"), h("th", {}, "Product"), h("th", {}, "Module"),
      h("th", {}, "Phase"), h("th", { class: "num" }, "Succeeded / total"), h("th", { class: "num" }, "Failed"))),
    h("tbody", {}, list.map(batchRow)));
}

function renderProducts(view, d) {
  if (d.error) return view.replaceChildren(h("div", { class: "notice error" }, d.error));
  const cards = d.products.map((p) => h("section", { class: "card product", "data-product": p.name },
    h("h2", {}, p.displayName || p.name), h("div", { class: "muted" }, `productKey ${p.productKey}`),
    h("div", { class: "big devices-count" }, fmt(p.devices)), h("div", { class: "muted" }, "devices"),
    (p.modules || []).map((m) => [h("h3", {}, `module ${m.module}`), h("div", { class: "chart-box" }, versionChart(m))]),
    h("h3", {}, "active batches"), batchTable(p.activeBatches, "none")));
  view.replaceChildren(
    h("h1", {}, `Products in ${d.namespace}`),
    d.products.length ? h("div", { class: "cards" }, cards) : h("div", { class: "empty" }, "No products."),
    h("section", { class: "card", id: "batches" }, h("h2", {}, "All batches"), batchTable(d.batches, "No batches.")));
}

function firmwareCard(f) {
  const a = f.artifact || {};
  const v = f.verification || {};
  return h("section", { class: "card firmware", "data-firmware": f.name },
    h("div", { class: "header-row" }, h("h2", {}, f.name), badge(v.state || "Unverified"),
      f.ready ? badge("Ready") : h("span", { class: "muted" }, "not ready")),
    h("div", { class: "grid kv" },
      kv("product", f.product), kv("module", f.module), kv("version", f.version),
      kv("size", fmtBytes(a.size)), kv("sign method", f.signMethod || "—"),
      kv("signature", f.signed ? "Ed25519, checked" : "none"), kv("diff", f.diff ? "yes" : "full image"),
      kv("campaigns", `${fmt(f.usage.campaigns)} (${fmt(f.usage.activeCampaigns)} active)`)),
    h("h3", {}, "digests"),
    h("div", { class: "mono sha256" }, "sha256 " + (a.sha256 || "—")),
    h("div", { class: "mono md5" }, "md5 " + (a.md5 || "—")),
    f.description ? [h("h3", {}, "description"), h("div", {}, f.description)] : null,
    h("h3", {}, "verification"), v.message ? h("div", { class: "muted" }, v.message) : null,
    f.runs.length ? f.runs.map(runTable) : h("div", { class: "empty" }, "No verification runs."));
}

function runTable(r) {
  return h("div", { class: "run" }, h("div", {}, "run ", h("b", {}, r.name), " ", badge(r.phase)),
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Device"), h("th", {}, "State"), h("th", {}, "From"),
      h("th", {}, "Reason"))),
    h("tbody", {}, (r.devices || []).map((d) => h("tr", {}, h("td", { class: "mono" }, d.name),
      h("td", {}, badge(d.state)), h("td", {}, d.fromVersion || "—"),
      h("td", {}, [d.reason, d.message].filter(Boolean).join(": ") || "—"))))));
}

function kv(k, v) {
  return h("div", {}, h("div", { class: "k" }, k), h("div", {}, v ?? "—"));
}

function renderFirmwares(view, d) {
  if (d.error) return view.replaceChildren(h("div", { class: "notice error" }, d.error));
  view.replaceChildren(h("h1", {}, `Firmware in ${d.namespace}`),
    ...(d.firmwares.length ? d.firmwares.map(firmwareCard) : [h("div", { class: "empty" }, "No firmware.")]));
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", route);

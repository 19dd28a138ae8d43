// The batch page: phase, actions, counters, waves, failure reasons and the
// device table. The skeleton is built once; each pushed view refreshes the
// parts that show it, so the search box keeps its focus while counters move.
"use strict";

const STATES = ["CONFIRM", "QUEUED", "NOTIFIED", "IN_PROGRESS", "SOAKING", "SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELED"];
const COUNTERS = [["total", "total"], ["queued", "queued"], ["confirm", "confirm"], ["notified", "notified"],
  ["inProgress", "in progress"], ["soaking", "soaking"], ["succeeded", "succeeded"], ["failed", "failed"],
  ["reverted", "reverted"], ["timedOut", "timed out"], ["canceled", "canceled"]];
const ACTIONS = ["pause", "resume", "promote", "cancel", "retry"];

function showBatch(view, name) {
  const page = { name, table: { q: "", state: "", offset: 0, limit: 50, gen: -1, seq: 0 } };
  view.append(
    h("div", { class: "header-row" }, h("h1", { id: "batch-name" }, name), h("span", { id: "phase" }),
      h("span", { id: "paused-note", class: "muted" })),
    h("div", { class: "actions" }, ACTIONS.map((a) => h("button", { "data-action": a,
      class: a === "cancel" ? "danger" : null, onclick: () => act(page, a) }, a))),
    h("div", { id: "notice", class: "notice", role: "status" }),
    h("section", { class: "card" }, h("div", { id: "summary", class: "grid kv" })),
    h("section", { class: "card" }, h("h2", {}, "Devices by state"), h("div", { id: "overall" }),
      h("div", { id: "counters", class: "counters" })),
    h("section", { class: "card" }, h("h2", {}, "Waves"), h("div", { id: "waves" })),
    h("section", { class: "card" }, h("h2", {}, "Failure reasons"), h("div", { id: "reasons" })),
    deviceSection(page));
  follow("batch", name, (d) => renderBatch(page, d));
  loadDevices(page);
}

function renderBatch(page, d) {
  if (d.error) return notice("error", d.error);
  // The API leaves zero counters out of its JSON.
  d.counts = Object.fromEntries(COUNTERS.map(([k]) => [k, (d.counts || {})[k] || 0]));
  $("#phase").replaceChildren(badge(d.phase || "Pending"));
  $("#paused-note").textContent = d.canceled ? "canceled" : d.paused && !d.finished ? "paused by spec.paused" : "";
  for (const b of document.querySelectorAll("[data-action]")) b.disabled = !allowed(b.dataset.action, d);
  $("#summary").replaceChildren(...summary(d).map(([k, v]) => kv(k, v)));
  const c = d.counts;
  $("#overall").replaceChildren(bar(c.succeeded, c.failed + c.timedOut + c.canceled + (c.reverted || 0),
    c.queued + c.confirm + c.notified + c.inProgress + (c.soaking || 0), c.total));
  $("#counters").replaceChildren(...COUNTERS.map(([k, label]) => h("div", { class: "counter", id: "count-" + k },
    h("div", { class: "n" }, fmt(c[k])), h("div", { class: "l" }, label))));
  $("#waves").replaceChildren(...d.waves.map((w) => waveRow(w, d.currentWave)));
  $("#reasons").replaceChildren(reasons(d.failureReasons || []));
  if (d.devicesGen !== page.table.gen) loadDevices(page);
}

// allowed mirrors the plugin's own refusals, so buttons that would only
// earn an error are disabled; RBAC is left to the API server.
function allowed(action, d) {
  if (action === "retry") return d.finished && (d.counts.failed + d.counts.timedOut) > 0;
  if (d.finished) return false;
  if (action === "pause") return !d.paused && !d.canceled;
  if (action === "resume") return d.paused && !d.canceled;
  if (action === "promote") return d.currentWave > 0;
  return !d.canceled;
}

function summary(d) {
  const rate = observedRate(d);
  const sch = d.schedule || {};
  return [["firmware", d.firmware], ["target", d.module ? `${d.product} / ${d.module} → ${d.version}` : "—"],
    ["type", d.type], ["scope", d.scope], ["push rate", `${fmt(d.ratePerMinute)}/min`],
    ["observed rate", rate], ["timeout", d.timeout || "—"],
    ["retries", d.retry ? `${d.retry.count} every ${d.retry.interval || "—"}` : "none"],
    ["schedule", sch.start || sch.end ? `${when(sch.start)} → ${when(sch.end)}` : "immediately"],
    ["started", when(d.startTime)], ["finished", when(d.completionTime)],
    ["wave", d.currentWave ? `${d.currentWave} of ${d.waves.length}` : "not started"]];
}

// observedRate is finished devices per second since the first push.
function observedRate(d) {
  if (!d.startTime) return "—";
  const c = d.counts;
  const done = c.succeeded + c.failed + c.timedOut + c.canceled + (c.reverted || 0);
  const end = d.completionTime ? new Date(d.completionTime) : new Date();
  const secs = Math.max(1, (end - new Date(d.startTime)) / 1000);
  return `${(done / secs).toFixed(1)} devices/s`;
}

function bar(ok, bad, busy, total) {
  const pct = (n) => (total ? (100 * (n || 0)) / total : 0) + "%";
  return h("div", { class: "bar", title: `${fmt(ok)} ok, ${fmt(bad)} failed, ${fmt(busy)} active of ${fmt(total)}` },
    h("span", { class: "ok", style: "width:" + pct(ok) }), h("span", { class: "bad", style: "width:" + pct(bad) }),
    h("span", { class: "busy", style: "width:" + pct(busy) }));
}

function waveRow(w, current) {
  const of = Math.max(w.target, w.total);
  const finished = w.succeeded + w.failed;
  const rate = finished ? Math.round((100 * w.succeeded) / finished) : 0;
  const notes = [`${fmt(w.total)} of ${fmt(w.target)} pushed`, `${rate}% succeeded`];
  if (w.successThreshold) notes.push(`needs ${w.successThreshold}%`);
  if (w.pause) notes.push(`then pause ${w.pause}`);
  return h("div", { class: "wave" + (w.number === current ? " current" : ""), "data-wave": w.number },
    h("div", { class: "wl" }, `wave ${w.number} · ${w.percent}%`), bar(w.succeeded, w.failed, w.active, of),
    h("div", { class: "muted" }, notes.join(" · ")));
}

function reasons(list) {
  if (!list.length) return h("div", { class: "empty" }, "No failures.");
  return h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Code"), h("th", { class: "num" }, "Devices"),
    h("th", {}, "Example"))),
  h("tbody", {}, list.map((r) => h("tr", { "data-reason": r.reason }, h("td", {}, r.reason),
    h("td", { class: "num" }, fmt(r.count)), h("td", { class: "mono" }, r.example || "—")))));
}

function deviceSection(page) {
  const t = page.table;
  let timer = 0;
  const search = h("input", { id: "search", type: "search", placeholder: "device name contains…",
    oninput: (e) => { clearTimeout(timer); timer = setTimeout(() => { t.q = e.target.value; t.offset = 0; loadDevices(page); }, 200); } });
  // A state change also takes the search box as it is now: a search typed
  // or cleared just before is still waiting for its debounce.
  const state = h("select", { id: "state", onchange: (e) => { clearTimeout(timer); t.q = search.value; t.state = e.target.value; t.offset = 0; loadDevices(page); } },
    h("option", { value: "" }, "any state"), STATES.map((st) => h("option", { value: st }, st)));
  const move = (dir) => { t.offset = Math.max(0, t.offset + dir * t.limit); loadDevices(page); };
  return h("section", { class: "card" }, h("h2", {}, "Devices"),
    h("div", { class: "toolbar" }, search, state, h("span", { id: "matched", class: "muted" })),
    h("table", { id: "devices" }, h("thead", {}, h("tr", {}, ["Device", "State", "Wave", "Step", "Attempt", "From",
      "Reason", "Updated"].map((c) => h("th", {}, c)))), h("tbody", {})),
    h("div", { class: "pager" }, h("button", { id: "prev", onclick: () => move(-1) }, "‹ prev"),
      h("span", { id: "page-info", class: "muted" }), h("button", { id: "next", onclick: () => move(1) }, "next ›")));
}

// loadDevices fetches one page of the table; a late answer to an older
// query is dropped.
async function loadDevices(page) {
  const t = page.table;
  const seq = ++t.seq;
  const q = new URLSearchParams({ q: t.q, state: t.state, offset: t.offset, limit: t.limit });
  const res = await fetch(`/api/batches/${encodeURIComponent(page.name)}/devices?` + q);
  const d = await res.json();
  if (seq !== t.seq) return;
  if (!res.ok) return notice("error", d.error || res.statusText);
  t.gen = d.devicesGen;
  $("#devices tbody").replaceChildren(...d.rows.map((r) => h("tr", { "data-device": r.d },
    h("td", { class: "mono" }, r.d), h("td", {}, badge(r.s)), h("td", { class: "num" }, r.w || "—"),
    h("td", { class: "num" }, r.p || 0), h("td", { class: "num" }, r.a || 0), h("td", {}, r.fv || "—"),
    h("td", {}, [r.r, r.msg].filter(Boolean).join(": ") || "—"), h("td", {}, r.u ? when(r.u * 1000) : "—"))));
  const last = Math.min(d.offset + d.rows.length, d.matched);
  $("#matched").textContent = `${fmt(d.matched)} of ${fmt(d.total)} devices match`;
  $("#page-info").textContent = d.matched ? `${fmt(d.offset + 1)}–${fmt(last)} of ${fmt(d.matched)}` : "no devices";
  $("#prev").disabled = d.offset === 0;
  $("#next").disabled = last >= d.matched;
}

async function act(page, action) {
  if (action === "cancel" && !confirm(`Cancel batch ${page.name}? A canceled batch cannot be resumed.`)) return;
  const res = await fetch(`/api/batches/${encodeURIComponent(page.name)}/${action}`,
    { method: "POST", headers: { "X-OTA-Dashboard": "1" } });
  const d = await res.json().catch(() => ({ error: res.statusText }));
  if (res.ok) notice("ok", d.message);
  else notice("error", `${action} refused (${res.status}): ${d.error}`);
}

function notice(kind, text) {
  const n = $("#notice");
  n.className = "notice " + kind;
  n.textContent = text;
}

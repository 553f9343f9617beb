"""The teach page (``/teach``): draw regions on the live view, label, retrain, see the evidence, use, undo.

Every name it shows (regions, states, files) goes into the page as text
(``textContent``, ``fillText``, attribute values set from script), never as
HTML: a state called ``<img onerror=...>`` shows as those characters.
It uses only the JSON endpoints of :mod:`edgecam.studio.api`.
"""

from __future__ import annotations

from edgecam.outputs.http_page import TOKEN_JS

PAGE = b"""<!doctype html>
<html lang="en"><head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgecam: teach</title>
<style>
  body { margin: 0; font: 15px/1.4 system-ui, sans-serif; background: #111; color: #eee; }
  main { max-width: 980px; margin: 0 auto; padding: 8px; }
  a { color: #8cf; } h1 { font-size: 1.1em; margin: 4px 0 8px; } h2 { font-size: 1em; margin: 0 0 4px; }
  #stage { position: relative; max-width: 640px; }
  #view { display: block; width: 100%; background: #000; min-height: 120px; }
  #draw { position: absolute; left: 0; top: 0; width: 100%; height: 100%; cursor: crosshair; }
  form, .panel { background: #1b1b1b; border-radius: 4px; padding: 8px; margin: 8px 0; }
  input { font-size: 1em; margin: 2px 6px 2px 0; } button { margin: 3px 4px 0 0; padding: 5px 9px; font-size: .95em; }
  .muted { color: #999; font-size: .85em; } .bad { color: #f88; }
  .queue, .thumbs { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 6px; }
  .item { background: #222; padding: 4px; border-radius: 4px; width: 150px; font-size: .85em; }
  .item img, .thumbs img { width: 96px; height: 96px; object-fit: cover; display: block; }
  table { border-collapse: collapse; margin: 6px 0; } td, th { border: 1px solid #444; padding: 2px 6px; text-align: right; }
  td.diag { background: #264; } .bar { background: #2a6; height: 6px; }
</style></head>
<body><main>
<h1>edgecam: teach <span id="camera-name"></span> <a id="back" href="./">live page</a></h1>
<p class="muted">Drag a box on the picture to draw a region. Regions of the config file are shown read-only.</p>
<div id="stage"><img id="view" alt="live picture"><canvas id="draw"></canvas></div>
<form id="new" hidden>
  <b>Region</b> <span id="new-box" class="muted"></span><br>
  <label>name <input id="new-name" required maxlength="64" placeholder="garage"></label>
  <label>states <input id="new-states" required size="36" placeholder="empty, car, bike"></label>
  <button type="submit" id="save">save region</button> <button type="button" id="cancel">cancel</button>
  <div id="new-error" class="bad"></div>
</form>
<div id="message" class="bad"></div>
<div id="regions"></div>
<script>
""" + TOKEN_JS + b"""const auth = params.get("token") ? {"Authorization": "Bearer " + params.get("token")} : {};
const $ = id => document.getElementById(id);
const el = (tag, text, attrs) => { const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v); return e; };
const enc = encodeURIComponent;
let teach = {regions: [], pending: []}, latest = {}, drawing = null, box = null, editing = null;
const why = {}, evidence = {state: "idle"};
async function api(method, path, body, query) {
  const r = await fetch(url(path, query), {method, cache: "no-store",
    headers: Object.assign({"Content-Type": "application/json"}, auth), body: body ? JSON.stringify(body) : undefined});
  const data = await r.json().catch(() => ({}));
  $("message").textContent = r.ok ? "" : (data.error || ("HTTP " + r.status));
  return r.ok ? data : null;
}
// The live picture: a snapshot every half second, the regions drawn over it.
const view = $("view"), canvas = $("draw");
async function refreshPicture() {
  try { const r = await fetch(url("snapshot.jpg"), {cache: "no-store"});
    if (r.ok) { const old = view.src; view.src = URL.createObjectURL(await r.blob());
      if (old.startsWith("blob:")) URL.revokeObjectURL(old); } } catch (e) {}
  setTimeout(refreshPicture, 500);
}
function paint() {
  const w = canvas.width = canvas.clientWidth, h = canvas.height = canvas.clientHeight;
  const g = canvas.getContext("2d"); g.font = "14px sans-serif"; g.lineWidth = 2;
  for (const r of teach.regions) {
    const [x0, y0, x1, y1] = r.box; g.setLineDash(r.source === "config" ? [6, 4] : []);
    g.strokeStyle = r.source === "config" ? "#aaa" : "#3c6"; g.strokeRect(x0 * w, y0 * h, (x1 - x0) * w, (y1 - y0) * h);
    const s = (latest[r.name] || {}).label; g.fillStyle = g.strokeStyle;
    g.fillText(r.name + (s ? ": " + s : ""), x0 * w + 4, y0 * h + 16);
  }
  if (box) { g.setLineDash([]); g.strokeStyle = "#fc3";
    g.strokeRect(box[0] * w, box[1] * h, (box[2] - box[0]) * w, (box[3] - box[1]) * h); }
}
const at = e => { const b = canvas.getBoundingClientRect();
  return [Math.min(1, Math.max(0, (e.clientX - b.left) / b.width)), Math.min(1, Math.max(0, (e.clientY - b.top) / b.height))]; };
canvas.addEventListener("mousedown", e => { drawing = at(e); box = null; });
canvas.addEventListener("mousemove", e => { if (!drawing) return; const p = at(e);
  box = [Math.min(drawing[0], p[0]), Math.min(drawing[1], p[1]), Math.max(drawing[0], p[0]), Math.max(drawing[1], p[1])];
  paint(); });
canvas.addEventListener("mouseup", () => { drawing = null;
  if (!box || box[2] - box[0] < 0.02 || box[3] - box[1] < 0.02) { box = null; paint(); return; }
  box = box.map(v => Math.round(v * 10000) / 10000);
  $("new").hidden = false; $("new-box").textContent = "[" + box.join(", ") + "]";
  if (editing) { const r = teach.regions.find(r => r.name === editing);
    $("new-name").value = editing; $("new-states").value = r ? r.labels.join(", ") : ""; } });
$("cancel").onclick = () => { $("new").hidden = true; box = null; editing = null; paint(); };
$("new").onsubmit = async e => { e.preventDefault();
  const labels = $("new-states").value.split(",").map(s => s.trim()).filter(Boolean);
  const ok = await api("POST", "api/teach/regions", {name: $("new-name").value.trim(), box, labels});
  $("new-error").textContent = ok ? "" : $("message").textContent;
  if (ok) { $("new").hidden = true; box = null; editing = null; await poll(); } };
// One panel per region: its state, "this is" buttons, the review queue, retrain, evidence, why.
function panel(r, queue) {
  const p = el("div", null, {"class": "panel", "data-region": r.name});
  const st = latest[r.name] || {};
  p.append(el("h2", r.name + (r.source === "config" ? " (config file: read-only)" : "")),
    el("div", "now: " + (st.label || "-") + (st.label ? " " + (100 * (st.score || 0)).toFixed(0) + "%" : "") +
      "  model: " + r.model + (r.version ? " v" + r.version : ""), {"class": "muted state-now"}));
  const buttons = el("div");
  for (const s of r.labels) { const b = el("button", "this is: " + s + " (" + (r.examples[s] || 0) + ")",
      {"data-this": s}); b.onclick = () => api("POST", "api/examples", {region: r.name, label: s}).then(poll);
    buttons.append(b); }
  p.append(buttons);
  if (r.source === "drawn") {
    const tools = el("div");
    const mk = (text, act, fn) => { const b = el("button", text, {"data-action": act}); b.onclick = fn; tools.append(b); };
    mk("retrain", "retrain", () => api("POST", "api/teach/retrain", {region: r.name}).then(poll));
    mk("use this model", "use", () => api("POST", "api/teach/use", {region: r.name}).then(poll));
    mk("undo", "undo", () => api("POST", "api/teach/undo", {region: r.name}).then(poll));
    mk("move box", "move", () => { editing = r.name; $("message").textContent = "drag the new box on the picture"; });
    mk("delete", "delete", () => confirm("delete region " + r.name + "?") &&
      api("DELETE", "api/teach/regions/" + enc(r.name)).then(poll));
    p.append(tools, evidenceOf(r));
  }
  p.append(whyOf(r), reviewOf(r, queue));
  return p;
}
function evidenceOf(r) {
  const d = el("div", null, {"class": "evidence"}), e = evidence.region === r.name ? evidence : null;
  if (!e) return d;
  if (e.state === "running") { d.append(el("div", "retraining: " + e.done + " / " + e.total + " examples")); return d; }
  if (e.state === "failed") { d.append(el("div", "retrain failed: " + e.error, {"class": "bad"})); return d; }
  const v = e.evidence; if (!v) return d;
  d.append(el("div", (e.state === "used" ? "in use (v" + e.version + "): " : "candidate: ") + "cross-validated accuracy " +
    (100 * v.accuracy).toFixed(1) + "% (95% CI " + (100 * v.interval[0]).toFixed(1) + "-" + (100 * v.interval[1]).toFixed(1) +
    "%), " + v.n + " examples, " + v.folds + " folds, " + v.seconds + " s"));
  const t = el("table", null, {"class": "confusion"}), head = el("tr");
  head.append(el("th", "true \\\\ predicted"), ...v.states.map(s => el("th", s)), el("th", "accuracy (95% CI)"));
  t.append(head);
  v.states.forEach((s, i) => { const tr = el("tr"); tr.append(el("th", s));
    v.confusion[i].forEach((n, j) => tr.append(el("td", n, i === j ? {"class": "diag"} : {})));
    const ps = v.per_state[s]; tr.append(el("td", (100 * ps.accuracy).toFixed(0) + "% (" + (100 * ps.interval[0]).toFixed(0) +
      "-" + (100 * ps.interval[1]).toFixed(0) + ")")); t.append(tr); });
  d.append(t);
  if (v.misclassified.length) { d.append(el("div", "got wrong (click a state to relabel):", {"class": "muted"}));
    const th = el("div", null, {"class": "thumbs"});
    for (const m of v.misclassified) { const it = el("div", null, {"class": "item"});
      it.append(el("img", null, {src: url("api/teach/examples/" + enc(r.name) + "/" + m.file.split("/").map(enc).join("/"))}),
        el("div", m.true + " taken for " + m.predicted));
      for (const s of r.labels) if (s !== m.true) { const b = el("button", s, {"data-relabel": s});
        b.onclick = () => api("POST", "api/teach/relabel", {region: r.name, file: m.file, state: s}).then(() => { b.disabled = true; });
        it.append(b); }
      th.append(it); }
    d.append(th); }
  return d;
}
function whyOf(r) {
  const d = el("details", null, {"class": "why"}), w = why[r.name];
  if (w && w.open) d.open = true;
  d.append(el("summary", "why this state"));
  d.ontoggle = () => { const was = (why[r.name] || {}).open;
    why[r.name] = Object.assign(why[r.name] || {}, {open: d.open}); if (d.open && !was) loadWhy(r.name); };
  if (w && w.labels) {
    w.labels.slice(0, 8).forEach((s, i) => { const row = el("div", s + " " + (100 * w.scores[i]).toFixed(1) + "%");
      const bar = el("div", null, {"class": "bar"}); bar.style.width = (100 * w.scores[i]).toFixed(1) + "%"; d.append(row, bar); });
    const th = el("div", null, {"class": "thumbs"});
    for (const n of w.nearest || []) th.append(el("img", null, {title: n.file + " (" + n.similarity + ")",
      src: url("api/teach/examples/" + enc(r.name) + "/" + n.file.split("/").map(enc).join("/"))}));
    if ((w.nearest || []).length) d.append(el("div", "nearest examples of " + w.state + ":", {"class": "muted"}), th);
  }
  return d;
}
async function loadWhy(name) {
  const w = await api("GET", "api/teach/why", null, "region=" + enc(name));
  if (w) { why[name] = Object.assign(w, {open: true}); render(true); }
}
function reviewOf(r, queue) {
  const d = el("div"), items = queue.filter(q => q.region === r.name);
  d.append(el("div", "review queue: " + items.length + " unsure", {"class": "muted"}));
  const list = el("div", null, {"class": "queue"});
  for (const q of items.slice(0, 24)) { const it = el("div", null, {"class": "item", "data-item": q.id});
    it.append(el("img", null, {src: url("api/teach/review/" + enc(q.id) + ".png")}),
      el("div", "guess: " + (q.guess || "-") + " (" + q.reason + ")"));
    for (const s of r.labels) { const b = el("button", s, {"data-file": s});
      b.onclick = () => api("POST", "api/teach/review/" + enc(q.id), {state: s}).then(poll); it.append(b); }
    const x = el("button", "discard", {"data-discard": "1"});
    x.onclick = () => api("POST", "api/teach/review/" + enc(q.id), {discard: true}).then(poll); it.append(x);
    list.append(it); }
  d.append(list); return d;
}
let queue = [], shown = "";
function render(force) {
  const key = JSON.stringify([teach, queue, latest, evidence]);
  if (!force && key === shown) return; shown = key;
  const waiting = (teach.pending || []).map(r => r.name);
  $("regions").replaceChildren(...teach.regions.map(r => panel(r, queue)), ...(waiting.length ? [el("div",
    "saved; the camera starts again with its regions (a few seconds; this page comes back): " + waiting.join(", "),
    {"class": "panel muted", id: "pending"})] : []));
  paint();
}
async function poll() {
  const [t, q, l] = await Promise.all([api("GET", "api/teach"), api("GET", "api/teach/review"),
    fetch(url("api/latest"), {cache: "no-store"}).then(r => r.ok ? r.json() : {}).catch(() => ({}))]);
  if (t) { teach = t; Object.keys(evidence).forEach(k => delete evidence[k]); Object.assign(evidence, t.retrain); }
  if (q) queue = q.items;
  latest = (l && l.regions) || {};
  render(false);
  for (const name of Object.keys(why)) if (why[name].open) loadWhy(name);
}
const camera = /\\/camera\\/([^/]+)\\/teach$/.exec(location.pathname);
if (camera) $("camera-name").textContent = decodeURIComponent(camera[1]);
$("back").href = url("./");
refreshPicture(); poll(); setInterval(poll, 1000);
</script></main></body></html>
"""

"""The live view's page (served at ``/``, or a hub's camera's at ``/camera/<name>/``): the picture, the labels,
the regions' teach buttons; and a hub's page of every camera (:data:`GRID_PAGE`).

Both use relative URLs only (``stream.mjpg``, ``api/latest``), so that a camera's page works under its prefix.
"""

#: Both pages' first lines of script: the token (if any) comes from the page's own URL, since <img src> cannot
#: send headers, and ``url(path, extra)`` adds it to every request the page makes.
TOKEN_JS = b"""const params = new URLSearchParams(location.search);
const q = params.get("token") ? "token=" + encodeURIComponent(params.get("token")) : "";
const url = (p, extra) => p + "?" + [q, extra].filter(Boolean).join("&");
"""

PAGE = b"""<!doctype html>
<html lang="en"><head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgecam</title>
<style>
  body { margin: 0; font: 16px/1.4 system-ui, sans-serif; background: #111; color: #eee; }
  main { max-width: 960px; margin: 0 auto; padding: 8px; }
  h1 { font-size: 1.1em; margin: 4px 0 8px; }
  img { display: block; width: 100%; height: auto; max-height: 70vh; object-fit: contain;
        background: #000; min-height: 120px; }
  ol { list-style: none; padding: 0; margin: 10px 0; }
  li { position: relative; margin: 4px 0; padding: 6px 8px; background: #222; border-radius: 4px; }
  li span.bar { position: absolute; left: 0; top: 0; bottom: 0; background: #2a6; opacity: .35; border-radius: 4px; }
  li b { position: relative; } li i { position: relative; float: right; font-style: normal; }
  #status { color: #999; font-size: .85em; }
  .region { display: flex; gap: 10px; align-items: flex-start; margin: 10px 0; padding: 8px;
            background: #1b1b1b; border-radius: 4px; }
  .region img { width: 160px; min-height: 0; max-height: 160px; }
  .region button { margin: 3px 4px 0 0; padding: 6px 10px; font-size: 1em; }
</style></head>
<body><main>
<h1><a id="all-link" href="../../" hidden style="color:#9cf; font-weight: normal">&larr; all cameras</a>
edgecam <span id="camera-name"></span>
<a id="events-link" href="events" hidden style="color:#9cf; font-weight: normal">events</a>
<a id="teach-link" href="teach" hidden style="color:#9cf; font-weight: normal">teach</a></h1>
<img id="view" alt="live picture">
<ol id="labels"></ol>
<div id="regions"></div>
<div id="status">waiting for a result...</div>
</main>
<script>
""" + TOKEN_JS + b"""const view = document.getElementById("view");
// One camera of several (/camera/<name>/): its name, and the way back to them all.
const camera = /\\/camera\\/([^/]+)\\/(index\\.html)?$/.exec(location.pathname);
if (camera) {
  const name = decodeURIComponent(camera[1]), all = document.getElementById("all-link");
  document.getElementById("camera-name").textContent = name;
  document.title = "edgecam: " + name;
  all.href = url("../../"); all.hidden = false;
}
// The list shows the result drawn on the picture shown (each picture names it: X-Edgecam-Result),
// in the overlay's label form ("tabby", the full label on hover), so the two never disagree.
function show(jpeg, result) {
  const old = view.src;
  view.src = URL.createObjectURL(new Blob([jpeg], {type: "image/jpeg"}));
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
  if (!result || !result.top_k) return;
  view.dataset.frame = result.frame;
  const ol = document.getElementById("labels");
  ol.dataset.frame = result.frame;
  ol.replaceChildren(...result.top_k.map(l => {
    const li = document.createElement("li"), bar = document.createElement("span");
    const b = document.createElement("b"), i = document.createElement("i");
    bar.className = "bar"; bar.style.width = (100 * l.score).toFixed(1) + "%";
    b.textContent = l.label.split(",")[0]; b.title = l.label; i.textContent = (100 * l.score).toFixed(1) + " %";
    li.append(bar, b, i); return li;
  }));
}
const parse = h => { try { return JSON.parse(h); } catch (e) { return null; } };
let snapTimer = null;
function snapshots() {  // poll single pictures: ?snapshot=1, or when the stream is refused
  if (snapTimer) return;
  const next = async () => { const r = await fetch(url("snapshot.jpg"), {cache: "no-store"});
    if (r.ok) show(await r.arrayBuffer(), parse(r.headers.get("X-Edgecam-Result"))); };
  next().catch(() => {}); snapTimer = setInterval(() => next().catch(() => {}), 1000);
}
async function stream() {  // the MJPEG stream read part by part: each picture with its result
  const r = await fetch(url("stream.mjpg"), {cache: "no-store"});
  if (!r.ok || !r.body) throw new Error("stream " + r.status);
  const reader = r.body.getReader(), text = new TextDecoder();
  let buf = new Uint8Array(0);
  const more = async () => { const {value, done} = await reader.read(); if (done) throw new Error("stream ended");
    const b = new Uint8Array(buf.length + value.length); b.set(buf); b.set(value, buf.length); buf = b; };
  for (;;) {
    let end;
    while ((end = buf.findIndex((x, i) => x === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10)) < 0)
      await more();
    const head = text.decode(buf.subarray(0, end)), n = +(/Content-Length: *(\\d+)/i.exec(head) || [0, 0])[1];
    while (buf.length < end + 4 + n) await more();
    const meta = /X-Edgecam-Result: *(.*)/i.exec(head);
    show(buf.slice(end + 4, end + 4 + n), meta && parse(meta[1]));
    buf = buf.slice(end + 4 + n);
  }
}
if (params.get("snapshot")) snapshots();
else stream().catch(snapshots);
// Regions: each one's live crop and a "this is: <state>" button per state, saving the crop as an example.
const auth = params.get("token") ? {"Authorization": "Bearer " + params.get("token")} : {};
async function teach(region, label, note) {
  const r = await fetch(url("api/examples"), {method: "POST", cache: "no-store",
    headers: {...auth, "Content-Type": "application/json"}, body: JSON.stringify({region, label})});
  const d = await r.json();
  note.textContent = r.ok ? `saved: ${d.examples} examples of ${label}` : `not saved: ${d.error}`;
}
async function regions() {
  const r = await fetch(url("api/regions"), {cache: "no-store"});
  if (!r.ok) return;
  const box = document.getElementById("regions");
  for (const reg of (await r.json()).regions) {
    const div = document.createElement("div"), img = document.createElement("img");
    const side = document.createElement("div"), title = document.createElement("b");
    const note = document.createElement("div");
    div.className = "region"; div.id = "region-" + reg.name; title.textContent = reg.name;
    img.alt = reg.name; note.className = "note";
    const refresh = () => { img.src = url("region/" + encodeURIComponent(reg.name) + ".jpg", "t=" + Date.now()); };
    refresh(); setInterval(refresh, 2000);
    const state = document.createElement("div"); state.className = "state";
    side.append(title, state);
    for (const label of reg.labels) {
      const b = document.createElement("button");
      b.textContent = "this is: " + label; b.dataset.label = label;
      b.onclick = () => teach(reg.name, label, note);
      side.append(b);
    }
    side.append(note); div.append(img, side); box.append(div);
  }
}
regions();
// With event rules: a link to their page (/events answers only then).
fetch(url("api/teach"), {cache: "no-store"}).then(r => { if (r.ok) {  // the teach page (edgecam.studio)
  const a = document.getElementById("teach-link"); a.href = url("teach"); a.hidden = false; } });
fetch(url("api/events", "limit=1"), {cache: "no-store"}).then(r => { if (r.ok) {
  const a = document.getElementById("events-link"); a.href = url("events"); a.hidden = false; } });
async function poll() {
  try {
    const r = await fetch(url("api/latest"), {cache: "no-store"});
    const d = await r.json();
    if (!r.ok) throw new Error(d.error || r.status);
    for (const [name, st] of Object.entries(d.regions || {})) {
      const el = document.querySelector("#region-" + CSS.escape(name) + " .state");
      if (el) el.textContent = `${st.label} ${(100 * st.score).toFixed(0)} %`;
    }
    const s = d.stats;
    document.getElementById("status").textContent =
      `${s.inference_fps.toFixed(1)} inferences/s, ${s.capture_fps.toFixed(1)} fps, ` +
      `inference ${d.inference_ms} ms, result ${d.age_s.toFixed(1)} s old, ${d.model}`;
  } catch (e) {
    document.getElementById("status").textContent = "no result: " + e.message;
  }
}
poll(); setInterval(poll, 1000);
</script>
</body></html>
"""

GRID_PAGE = b"""<!doctype html>
<html lang="en"><head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgecam: cameras</title>
<style>
  body { margin: 0; font: 16px/1.4 system-ui, sans-serif; background: #111; color: #eee; }
  main { max-width: 1400px; margin: 0 auto; padding: 8px; }
  h1 { font-size: 1.1em; margin: 4px 0 8px; }
  #grid { display: grid; gap: 8px; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); }
  .tile { display: block; color: inherit; text-decoration: none; background: #1b1b1b; border-radius: 4px;
          padding: 6px; border: 2px solid transparent; }
  .tile:hover { border-color: #2a6; }
  .tile img { display: block; width: 100%; aspect-ratio: 4 / 3; object-fit: contain; background: #000; }
  .tile .name { font-weight: bold; margin-top: 4px; }
  .tile .label, .tile .meta { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
  .tile .meta { color: #999; font-size: .85em; }
  .tile.down, .tile.failed, .tile.ended, .tile.stalled, .tile.reconnecting { border-color: #a33; }
  .tile.down .meta, .tile.failed .meta, .tile.stalled .meta, .tile.reconnecting .meta { color: #f77; }
  #status { color: #999; font-size: .85em; margin-top: 8px; }
</style></head>
<body><main>
<h1>edgecam</h1>
<div id="grid"></div>
<div id="status">waiting for the cameras...</div>
</main>
<script>
""" + TOKEN_JS + b"""const base = name => "camera/" + encodeURIComponent(name) + "/";
const tiles = new Map();
function tile(cam) {  // one per camera, made once: a link to its page, its picture, its label and figures
  let t = tiles.get(cam.name);
  if (t) return t;
  const a = document.createElement("a"), img = document.createElement("img");
  const name = document.createElement("div"), label = document.createElement("div");
  const meta = document.createElement("div");
  a.href = url(base(cam.name)); a.dataset.camera = cam.name; img.alt = cam.name;
  name.className = "name"; name.textContent = cam.name; label.className = "label"; meta.className = "meta";
  a.append(img, name, label, meta);
  document.getElementById("grid").append(a);
  t = {a, img, label, meta, loading: false};
  tiles.set(cam.name, t);
  return t;
}
async function picture(name, t) {  // its newest picture, swapped in whole (a camera that stops keeps its last)
  if (t.loading) return;
  t.loading = true;
  try {
    const r = await fetch(url(base(name) + "snapshot.jpg"), {cache: "no-store"});
    if (!r.ok) return;
    const old = t.img.src;
    t.img.src = URL.createObjectURL(await r.blob());
    if (old.startsWith("blob:")) URL.revokeObjectURL(old);
  } finally { t.loading = false; }
}
function show(cam) {
  const t = tile(cam);
  t.a.className = "tile " + cam.state;
  const score = cam.score ? ` ${(100 * cam.score).toFixed(0)} %` : "";
  t.label.textContent = cam.label ? cam.label + score : "no result yet";
  t.label.title = cam.label || "";
  const age = cam.age_s === null ? "no result yet" : `result ${cam.age_s.toFixed(1)} s old`;
  t.meta.textContent = cam.state === "running" ? `${cam.fps.toFixed(1)} fps, ${age}`
    : cam.state + (cam.reason ? ": " + cam.reason : "") + (cam.age_s === null ? "" : ", " + age);
  if (cam.state !== "down") picture(cam.name, t).catch(() => {});
}
async function poll() {
  try {
    const r = await fetch(url("api/cameras"), {cache: "no-store"});
    if (!r.ok) throw new Error((await r.text()).trim() || r.status);
    const cams = (await r.json()).cameras;
    cams.forEach(show);
    const up = cams.filter(c => c.state === "running").length;
    document.getElementById("status").textContent = `${up} of ${cams.length} cameras running`;
  } catch (e) {
    document.getElementById("status").textContent = "no answer: " + e.message;
  }
}
poll(); setInterval(poll, 1000);
</script>
</body></html>
"""

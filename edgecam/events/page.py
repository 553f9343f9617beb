"""The /events page (one HTML file: the list at /events, an event at /events/<id>), fed by /api/events."""

PAGE = b"""<!doctype html>
<html lang="en"><head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgecam events</title>
<style>
  body { margin: 0; font: 16px/1.4 system-ui, sans-serif; background: #111; color: #eee; }
  main { max-width: 980px; margin: 0 auto; padding: 8px; }
  h1 { font-size: 1.1em; margin: 4px 0 8px; } h1 a { color: #9cf; text-decoration: none; }
  form { display: flex; flex-wrap: wrap; gap: 6px; margin: 0 0 8px; }
  select, input, button { font: inherit; background: #222; color: #eee; border: 1px solid #444;
                          border-radius: 4px; padding: 4px 6px; }
  ul { list-style: none; padding: 0; margin: 0; }
  li a { display: flex; gap: 10px; align-items: center; margin: 6px 0; padding: 6px; background: #1b1b1b;
         border-radius: 4px; color: inherit; text-decoration: none; }
  li img { width: 160px; height: 120px; object-fit: cover; background: #000; flex: none; }
  li b { font-size: 1.05em; } .meta { color: #aaa; font-size: .9em; }
  .status-active { color: #6d6; } .status-interrupted { color: #d96; }
  #detail img, #detail video { display: block; width: 100%; max-height: 70vh; object-fit: contain;
                               background: #000; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; }
  dt { color: #aaa; } dd { margin: 0; }
  #status { color: #999; font-size: .85em; margin: 8px 0; }
  nav { float: right; } nav a { color: #9cf; }
  #empty li { margin: 6px 0; padding: 6px; background: #1b1b1b; border-radius: 4px; }
</style></head>
<body><main>
<nav><a id="live" href="./">&larr; live view</a></nav>
<h1><a id="home" href="events">edgecam events</a></h1>
<section id="list" hidden>
  <form id="filters">
    <select name="rule"><option value="">every rule</option></select>
    <select name="label"><option value="">every label</option></select>
    <select name="camera" hidden><option value="">every camera</option></select>
    <input type="date" name="day">
    <button type="submit">show</button>
  </form>
  <ul id="events"></ul>
  <div id="empty" hidden><p>No events yet. The rules watching for them:</p><ul id="rules"></ul></div>
  <button id="more" hidden>older events</button>
</section>
<section id="detail" hidden></section>
<div id="status">loading...</div>
</main>
<script>
// The token (if any) comes from this page's own URL: <img> and <video> cannot send headers.
const params = new URLSearchParams(location.search);
const token = params.get("token");
const withToken = (u, extra) => { const q = [token ? "token=" + encodeURIComponent(token) : "", extra]
  .filter(Boolean).join("&"); return q ? u + (u.includes("?") ? "&" : "?") + q : u; };
const root = location.pathname.replace(/\\/events(\\/.*)?$/, "");  // behind a proxy path too
const status = t => { document.getElementById("status").textContent = t; };
const el = (tag, props, ...kids) => { const e = Object.assign(document.createElement(tag), props || {});
  e.append(...kids); return e; };
const when = iso => iso ? iso.replace("T", " ").slice(0, 19) : "going on";
const duration = ev => ev.duration_s === null ? "going on" : ev.duration_s.toFixed(1) + " s";
document.getElementById("home").href = withToken(root + "/events");
document.getElementById("live").href = withToken(root + "/");
// "ibex", not "ibex: ibex": the rule's name only when the label says something more
const title = ev => (ev.rule === ev.label || ev.rule === ev.label.split(",")[0].trim() ? ev.label
  : ev.rule + ": " + ev.label) + (ev.region ? " (" + ev.region + ")" : "");

async function api(path) {
  const r = await fetch(withToken(root + path), {cache: "no-store"});
  const d = await r.json();
  if (!r.ok) throw new Error(d.error || r.status);
  return d;
}

function row(ev) {
  const img = el("img", {alt: ev.label, loading: "lazy"});
  if (ev.thumb) img.src = withToken(root + ev.thumb);
  const text = el("div", {},
    el("b", {}, title(ev)),
    el("div", {className: "meta"}, (ev.camera ? "camera " + ev.camera + ", " : "") + when(ev.start) + ", " +
       duration(ev) + ", peak " +
       (100 * ev.peak_score).toFixed(0) + " %" + (ev.clip ? ", clip" : "")),
    el("div", {className: "meta status-" + ev.status}, ev.status));
  const a = el("a", {href: withToken(root + "/events/" + ev.id)}, img, text);
  return el("li", {id: "event-" + ev.id}, a);
}

let next = null;
async function list(reset) {
  const form = new FormData(document.getElementById("filters"));
  const q = new URLSearchParams([...form].filter(([, v]) => v));
  const d = await api(reset || !next ? "/api/events?" + q : next);
  const ul = document.getElementById("events");
  if (reset) ul.replaceChildren();
  ul.append(...d.events.map(row));
  for (const [name, values] of [["rule", d.rules], ["label", d.labels], ["camera", d.cameras]]) {
    const sel = document.querySelector(`select[name=${name}]`);
    if (sel.options.length === 1) sel.append(...values.map(v => el("option", {value: v}, v)));
  }
  document.querySelector("select[name=camera]").hidden = !d.cameras.length;  // one camera: no such filter
  next = d.next;
  document.getElementById("more").hidden = !next;
  // An empty history says which rules are active and what would make each fire.
  const empty = d.total === 0 && !q.toString();
  document.getElementById("empty").hidden = !empty;
  document.getElementById("rules").replaceChildren(...(d.active_rules.length ? d.active_rules.map(r =>
    el("li", {}, el("b", {}, (r.camera ? r.camera + " " : "") + r.name), ": fires when " + r.fires_when)) :
    [el("li", {}, "none: add rules under events.rules in the config")]));
  status(`${d.total} event(s)` + (d.total ? `, newest first` : ""));
}

async function detail(id) {
  const ev = await api("/api/events/" + id);
  const box = document.getElementById("detail");
  let media;
  if (ev.clip && ev.clip_stream) {  // Motion-JPEG AVI: its frames streamed at its rate, the snapshot first
    media = el("img", {id: "clip", alt: "clip of event " + ev.id});
    if (ev.snapshot) media.src = withToken(root + ev.snapshot);
    const play = el("button", {id: "play", textContent: "play the clip"});
    play.onclick = () => { media.src = withToken(root + ev.clip_stream, "t=" + Date.now()); };
    box.append(media, play);
    setTimeout(() => play.click(), 300);
  } else if (ev.clip) {
    media = el("video", {id: "clip", controls: true, autoplay: true, muted: true, playsInline: true});
    if (ev.snapshot) media.poster = withToken(root + ev.snapshot);
    media.append(el("source", {src: withToken(root + ev.clip), type: ev.clip_type}));
    box.append(media);
  } else if (ev.snapshot) {
    box.append(el("img", {id: "snapshot", alt: "snapshot of event " + ev.id, src: withToken(root + ev.snapshot)}));
  }
  const facts = [...(ev.camera ? [["camera", ev.camera]] : []),
    ["rule", ev.rule], ["label", ev.label], ["region", ev.region || "whole picture"],
    ["start", when(ev.start)], ["end", when(ev.end)], ["duration", duration(ev)],
    ["peak score", (100 * ev.peak_score).toFixed(1) + " %"], ["status", ev.status],
    ["frames", ev.start_frame + " to " + (ev.end_frame ?? "...")]];
  const dl = el("dl", {});
  for (const [k, v] of facts) dl.append(el("dt", {}, k), el("dd", {}, String(v)));
  const links = el("div", {className: "meta"});
  for (const [name, url] of [["snapshot", ev.snapshot], ["clean snapshot", ev.snapshot_clean], ["clip file", ev.clip]])
    if (url) links.append(el("a", {href: withToken(root + url), style: "color:#9cf; margin-right: 12px"}, name));
  box.append(el("h2", {style: "font-size:1em"}, `event ${ev.id}: ${title(ev)}`), dl, links);
  box.hidden = false;
  status(ev.clip ? (ev.clip_stream ? "clip: Motion-JPEG, streamed" : "clip: " + ev.clip_type) : "no clip");
}

const m = location.pathname.match(/\\/events\\/(\\d+)$/);
(m ? detail(m[1]) : (document.getElementById("list").hidden = false, list(true)))
  .catch(e => status("cannot load: " + e.message));
document.getElementById("filters").onsubmit = e => { e.preventDefault(); list(true).catch(x => status(x.message)); };
document.getElementById("more").onclick = () => list(false).catch(x => status(x.message));
</script>
</body></html>
"""

"""The HTTP side of :class:`edgecam.sinks.http.HttpSink`: server, request handler, page.

The handler only uses the sink's public view (``authorized``, ``health``,
``latest_json``, ``metrics_text``, ``latest_jpeg``, the stream slots and
waits); the sink's locks and counters stay the sink's.
"""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from edgecam.errors import EdgecamError

logger = logging.getLogger("edgecam.sinks.http")  # one logger for the whole HTTP output

BOUNDARY = "edgecamframe"

_TOKEN_IN_URL = re.compile(r"(token=)[^&\s\"]*")

class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # listen() backlog: the default 5 makes the sixth connect of a burst (a
    # page's parallel requests, Prometheus with several viewers) wait for TCP
    # retransmits whenever the accept loop is a moment behind.
    request_queue_size = 128

    def __init__(self, address, handler, sink):  # sink: the HttpSink whose view it serves
        self.sink = sink
        self._n = 0
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def server_bind(self):
        # HTTPServer.server_bind() calls socket.getfqdn(), a DNS lookup that
        # can hang on a Pi without network; we never need the name.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request, client_address):
        # Like ThreadingMixIn's, but with named threads.
        self._n += 1
        t = threading.Thread(target=self.process_request_thread, args=(request, client_address),
                             name=f"http-client-{self._n}", daemon=True)
        t.start()

    def handle_error(self, request, client_address):
        logger.warning("http: error serving %s", client_address[0], exc_info=True)


class _DeadlineReader(io.RawIOBase):
    """The request's socket, read against a deadline for the whole request head.

    Each read waits at most until ``deadline`` (then raises TimeoutError);
    ``deadline = None`` lifts it once the headers are in.
    """

    def __init__(self, sock: socket.socket, deadline: float, read_timeout: float):
        self.sock = sock
        self.deadline: float | None = deadline
        self.read_timeout = read_timeout
        self.expired = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.deadline is None:
            self.sock.settimeout(self.read_timeout)
        else:
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.expired = True
                raise TimeoutError("request headers too slow")
            self.sock.settimeout(min(left, self.read_timeout))
        try:
            return self.sock.recv_into(buffer)
        except TimeoutError:
            self.expired = self.deadline is not None and time.monotonic() >= self.deadline
            raise


class Handler(BaseHTTPRequestHandler):
    """One connection: routes GET/HEAD to the sink's view; the stream is served from this thread."""

    server: Server
    server_version = "edgecam"
    sys_version = ""

    def setup(self):
        # A send timeout: a client that stops reading is dropped, not waited on.
        sink = self.server.sink
        self.timeout = sink.send_timeout_s
        super().setup()
        self.rfile.close()  # the plain socket file setup() made; ours replaces it
        self._reader = _DeadlineReader(self.connection, time.monotonic() + sink.header_timeout_s, self.timeout)
        self.rfile = io.BufferedReader(self._reader)

    def parse_request(self) -> bool:
        ok = super().parse_request()  # reads the headers
        self._reader.deadline = None
        return ok

    def handle_one_request(self):
        super().handle_one_request()  # logs a TimeoutError at debug and asks to close
        if self._reader.expired:
            try:
                body = b"408 request timeout: send the whole request at once\n"
                self.wfile.write(b"HTTP/1.0 408 Request Timeout\r\nConnection: close\r\n"
                                 b"Content-Type: text/plain; charset=utf-8\r\n"
                                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            except OSError:
                pass
            self.close_connection = True

    def do_HEAD(self):
        self.do_GET()  # _send and _stream leave the body out for HEAD

    def log_message(self, format, *args):
        logger.debug("http: %s %s", self.address_string(), _TOKEN_IN_URL.sub(r"\1***", format % args))

    def do_GET(self):
        sink = self.server.sink
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        if not sink.authorized(self.headers, query, path):
            self._send(401, b"401 unauthorized: send 'Authorization: Bearer <token>'\n",
                       extra={"WWW-Authenticate": "Bearer"})
            return
        route = {
            "/": self._page,
            "/index.html": self._page,
            "/stream.mjpg": self._stream,
            "/snapshot.jpg": self._snapshot,
            "/api/latest": self._latest,
            "/healthz": self._healthz,
            "/metrics": self._metrics,
            "/api/regions": self._regions,
        }.get(path)
        if route is None and path.startswith("/region/") and path.endswith(".jpg"):
            route = lambda: self._region_jpeg(path[len("/region/"):-len(".jpg")])  # noqa: E731
        if route is None and sink.events is not None and sink.events.handles(path):
            route = lambda: sink.events.handle(self, path, query)  # noqa: E731
        if route is None:
            self._send(404, f"404 not found: {path}\n".encode())
            return
        try:
            route()
        except OSError as e:  # the client left, stopped reading, or we are closing
            logger.debug("http: %s left (%s)", self.address_string(), e)
            self.close_connection = True

    def do_POST(self):
        """``POST /api/examples`` with JSON ``{"region": NAME, "label": STATE}``: save the region's crop as an example.

        Only JSON bodies: a page of another site cannot send one without the
        browser asking this server first (which it never agrees to), so a
        button elsewhere cannot fill the examples folder.
        """
        sink = self.server.sink
        url = urlsplit(self.path)
        if not sink.authorized(self.headers, {}, url.path):  # the header only: no ?token= for a POST
            self._send(401, b"401 unauthorized: send 'Authorization: Bearer <token>'\n",
                       extra={"WWW-Authenticate": "Bearer"})
            return
        if url.path != "/api/examples" or sink.teacher is None:
            self._send(404, f"404 not found: POST {url.path}\n".encode())
            return
        length = self.headers.get("Content-Length", "")
        if not self.headers.get("Content-Type", "").startswith("application/json") or not length.isdigit() \
                or int(length) > 4096:
            self._send(400, b'{"error": "send a JSON body (Content-Type: application/json) under 4 KB"}\n',
                       "application/json")
            return
        try:
            body = json.loads(self.rfile.read(int(length)) or b"{}")
            path, count = sink.teacher.save(str(body.get("region")), str(body.get("label")))
        except (ValueError, AttributeError) as e:
            self._json(400, {"error": f"not a JSON object with region and label ({e})"})
        except KeyError as e:
            self._json(404, {"error": e.args[0]})
        except LookupError as e:
            self._json(503, {"error": str(e)})
        except EdgecamError as e:
            self._json(507, {"error": e.message})
        else:
            self._json(201, {"saved": str(path), "examples": count})

    def _json(self, code: int, data: dict):
        self._send(code, json.dumps(data).encode() + b"\n", "application/json")

    def _regions(self):
        teacher = self.server.sink.teacher
        self._json(200, {"regions": teacher.describe() if teacher is not None else []})

    def _region_jpeg(self, name: str):
        teacher = self.server.sink.teacher
        jpeg = teacher.crop_jpeg(name) if teacher is not None else None
        if jpeg is None:
            known = teacher is not None and name in teacher.regions
            self._send(503 if known else 404, b"503 no picture yet\n" if known else b"404 no such region\n")
        else:
            self._send(200, jpeg, "image/jpeg")

    def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8", extra: dict | None = None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _page(self):
        self._send(200, PAGE, "text/html; charset=utf-8",
                   extra={"Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"})

    def _snapshot(self):
        _, jpeg, result = self.server.sink.latest_picture()
        if jpeg is None:
            self._send(503, b"503 no frame yet\n", extra={"Retry-After": "1"})
        else:
            self._send(200, jpeg, "image/jpeg", extra={"X-Edgecam-Result": result.decode()})

    def _latest(self):
        data = self.server.sink.latest_json()
        if data is None:
            self._send(503, b'{"error": "no result yet"}\n', "application/json", extra={"Retry-After": "1"})
        else:
            self._send(200, json.dumps(data).encode() + b"\n", "application/json")

    def _healthz(self):
        ok, reason = self.server.sink.health()
        self._send(200 if ok else 503, reason.encode() + b"\n")

    def _metrics(self):
        self._send(200, self.server.sink.metrics_text().encode(), "text/plain; version=0.0.4; charset=utf-8")

    def _stream(self):
        sink = self.server.sink
        if self.command == "HEAD":  # what a stream would be, without taking a client slot
            self.send_response(200 if not sink.closing else 503)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.close_connection = True
            return
        refused = sink.join_stream(self.connection)
        if refused == "full":
            self._send(503, f"503 too many stream clients (http.max_clients = {sink.cfg.max_clients}); "
                            f"try again later or use /snapshot.jpg\n".encode(), extra={"Retry-After": "5"})
            return
        if refused == "closing":
            self._send(503, b"503 shutting down\n")
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self._stream_frames(sink)
        finally:
            sink.leave_stream(self.connection)
            self.close_connection = True

    def _stream_frames(self, sink):
        interval = 1.0 / sink.cfg.stream_fps
        sent, result = 0, b"{}"  # sequence number of the picture this client has, and its result
        while True:
            # Skip whatever came in between: we want the newest only.
            fresh = sink.wait_for_picture(sent, timeout=sink.keepalive_s)
            if sink.closing:
                return
            if fresh:
                seq, jpeg, result = sink.latest_picture()
            else:
                seq, jpeg = sent, sink.cached_jpeg()  # idle: re-send, to notice a client that left
            if jpeg is None:
                continue
            t0 = time.monotonic()
            # Each part names the result drawn on it (X-Edgecam-Result), for the live page's list.
            self.wfile.write(
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n".encode()
                + b"X-Edgecam-Result: " + result + b"\r\n\r\n" + jpeg + b"\r\n"
            )
            sent = seq
            # Pace to stream_fps; close() wakes us at once.
            if sink.wait_closed(max(0.0, interval - (time.monotonic() - t0))):
                return


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
<h1>edgecam <a id="events-link" href="events" hidden style="color:#9cf; font-weight: normal">events</a></h1>
<img id="view" alt="live picture">
<ol id="labels"></ol>
<div id="regions"></div>
<div id="status">waiting for a result...</div>
</main>
<script>
// The token (if any) comes from this page's own URL, since <img src> cannot send headers.
const params = new URLSearchParams(location.search);
const q = params.get("token") ? "token=" + encodeURIComponent(params.get("token")) : "";
const url = (p, extra) => p + "?" + [q, extra].filter(Boolean).join("&");
const view = document.getElementById("view");
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

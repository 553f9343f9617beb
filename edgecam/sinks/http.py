"""Live view and metrics over HTTP (standard library only).

Endpoints::

    /               a small page: live picture + latest labels (phone friendly)
    /stream.mjpg    MJPEG of the annotated frames, at most ``stream_fps``
    /snapshot.jpg   the newest annotated frame
    /api/latest     the latest result as JSON
    /healthz        200 "ok" while frames flow, else 503 and why (no token needed)
    /metrics        Prometheus text format 0.0.4

The pipeline only hands over references (:meth:`HttpSink.on_frame` stores the
newest picture and bumps a sequence number). JPEG encoding is lazy and shared:
the first client that needs a newer picture encodes it, every other client
reuses those bytes, and nobody encodes anything while nobody watches. Each
stream client runs in its own thread, waits for a newer sequence number and
skips whatever it missed, so a slow client costs the pipeline nothing; a
client that stops reading is dropped after ``send_timeout_s``, and one that
has not sent its whole request within ``header_timeout_s`` (however it
trickles it) gets 408 and is dropped too. ``HEAD`` answers like ``GET``
without the body.
"""

from __future__ import annotations

import errno
import hmac
import io
import json
import logging
import math
import re
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from edgecam.config import HttpConfig
from edgecam.errors import ConfigError, NetworkError
from edgecam.frame import Frame
from edgecam.result import Classification
from edgecam.sinks.base import Sink, iso_time
from edgecam.stats import Stats

logger = logging.getLogger(__name__)

BOUNDARY = "edgecamframe"

# Paths a browser opens by itself (<img src>, the page, its fetch() calls).
# A browser cannot put an Authorization header on an <img src>, so these also
# accept the token as ``?token=``. The trade-off: a token in a URL can end up
# in browser history, bookmarks and proxy logs. We keep it out of our own
# access log (redacted) and out of Referer headers (Referrer-Policy), and keep
# /metrics header-only since Prometheus can send a bearer token.
_QUERY_TOKEN_PATHS = {"/", "/index.html", "/stream.mjpg", "/snapshot.jpg", "/api/latest"}

_TOKEN_IN_URL = re.compile(r"(token=)[^&\s\"]*")

_BIND_REASONS = {
    errno.EADDRINUSE: "address already in use (set http.port)",
    errno.EACCES: "permission denied (ports below 1024 need root; set http.port)",
    errno.EADDRNOTAVAIL: "no such address on this machine (set http.host)",
}


class HttpSink(Sink):
    """Serves the live view, the latest result, health and metrics.

    Args:
        cfg: the ``http`` section of the config.
        stats: the pipeline's live counters (read only).
        stall_timeout_s: /healthz reports 503 when no frame came for this long.
        top_k: how many labels /api/latest reports.
        threshold: labels scoring below it are left out of /api/latest (``model.threshold``,
            as in the overlay, the log and MQTT).
    """

    name = "http"
    wants_frames = True
    #: A stream client that accepts no data for this long is dropped.
    send_timeout_s = 10.0
    #: A client must have sent its whole request line and headers this soon
    #: after connecting; a per-read timeout alone lets one byte every few
    #: seconds hold a server thread for ever.
    header_timeout_s = 10.0
    #: An idle stream re-sends its last picture this often, so that a client
    #: that went away is noticed (and its slot freed) even while no frame comes.
    keepalive_s = 5.0

    def __init__(self, cfg: HttpConfig, stats: Stats, stall_timeout_s: float = 5.0, top_k: int = 3,
                 threshold: float = 0.0):
        self.cfg = cfg
        self.stats = stats
        self.stall_timeout_s = stall_timeout_s
        self.top_k = top_k
        self.threshold = threshold
        self.port: int | None = None
        #: how many times a JPEG was encoded (tests prove once per frame with it)
        self.encode_count = 0
        self._token: bytes | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._closing = False
        self._closed = threading.Event()
        # _cond guards the newest picture, its sequence number and the client
        # bookkeeping; it is never held while encoding or writing to a socket.
        self._cond = threading.Condition()
        self._image: np.ndarray | None = None
        self._seq = 0
        self._clients = 0
        self._client_socks: set[socket.socket] = set()
        # _jpeg_lock guards the shared encoded picture.
        self._jpeg_lock = threading.Lock()
        self._jpeg: bytes | None = None
        self._jpeg_seq = 0
        self._result: Classification | None = None
        self._result_wall = 0.0
        self._result_mono = 0.0

    # ---------------------------------------------------------------- Sink API

    def start(self) -> None:
        """Read the token file, bind the port and serve on a daemon thread."""
        if self.cfg.token_file:
            self._token = _read_token(self.cfg.token_file)
        host, port = self.cfg.host, self.cfg.port
        try:
            self._server = _Server((host, port), _Handler, self)
        except OSError as e:
            if isinstance(e, socket.gaierror):
                reason = "unknown host (set http.host)"
            else:
                reason = _BIND_REASONS.get(e.errno, (e.strerror or str(e)).lower())
            raise NetworkError(f"http: cannot listen on {host}:{port}: {reason}") from None
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="http-server", daemon=True
        )
        self._thread.start()
        logger.info("http: serving on http://%s:%d/%s", _url_host(host), self.port,
                    " (token required)" if self._token else "")

    def on_frame(self, frame: Frame, annotated: np.ndarray | None, result: Classification | None) -> None:
        """Keep a reference to the newest picture; costs the pipeline nothing.

        The caller must not draw into ``annotated`` afterwards (the overlay
        makes a new picture for every frame).
        """
        image = annotated if annotated is not None else frame.image
        with self._cond:
            self._image = image
            self._seq += 1
            self._cond.notify_all()

    def on_result(self, result: Classification) -> None:
        self._result_wall = time.time()
        self._result_mono = time.monotonic()
        self._result = result

    def close(self) -> None:
        """Stop serving and let every client thread exit (within a second)."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
            socks = list(self._client_socks)
        self._closed.set()
        # A client thread blocked in send() wakes up when its socket is shut.
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        with self._cond:
            self._cond.wait_for(lambda: self._clients == 0, timeout=1.0)

    # ----------------------------------------------------------------- helpers

    @property
    def stream_clients(self) -> int:
        """Number of connected /stream.mjpg clients."""
        return self._clients

    def latest_jpeg(self) -> tuple[int, bytes | None]:
        """(sequence number, JPEG bytes) of the newest picture; (0, None) before any.

        Encodes at most once per picture, however many threads ask.
        """
        with self._cond:
            image, seq = self._image, self._seq
        if image is None:
            return 0, None
        with self._jpeg_lock:
            if self._jpeg_seq < seq:
                data = self._encode(image)
                if data is not None:
                    self._jpeg, self._jpeg_seq = data, seq
            return self._jpeg_seq, self._jpeg

    def _encode(self, image: np.ndarray) -> bytes | None:
        self.encode_count += 1
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(self.cfg.jpeg_quality)])
        if not ok:
            logger.warning("http: cannot encode a %s picture as JPEG", getattr(image, "shape", "?"))
            return None
        return buf.tobytes()

    def _check_token(self, headers, query: dict, path: str) -> bool:
        if self._token is None or path == "/healthz":
            return True
        given = b""
        auth = headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            given = auth[7:].strip().encode("utf-8", "replace")
        elif path in _QUERY_TOKEN_PATHS and "token" in query:
            given = query["token"][0].encode("utf-8", "replace")
        return hmac.compare_digest(given, self._token)

    def _health(self) -> tuple[bool, str]:
        if self.stats.flowing(self.stall_timeout_s):
            return True, "ok"
        last = self.stats.last_frame_time
        if not last:
            return False, "starting"
        return False, f"stalled: no frame for {time.monotonic() - last:.1f} s"

    def _latest_json(self) -> dict | None:
        result = self._result
        if result is None:
            return None
        out = result.to_dict(k=self.top_k, threshold=self.threshold)
        wall = result.wall_time or self._result_wall
        made = result.result_time or self._result_mono
        snap = self.stats.snapshot()
        out["timestamp"] = iso_time(wall)
        out["age_s"] = round(max(0.0, time.monotonic() - made), 3)
        out["stats"] = {
            "capture_fps": round(snap["capture_fps"], 2),
            "inference_fps": round(snap["inference_fps"], 2),
            "output_fps": round(snap["output_fps"], 2),
            "source_state": snap["source_state"],
            "frames_inferred": snap["frames_inferred"],
        }
        return out

    def metrics_text(self) -> str:
        """The Prometheus text exposition (format 0.0.4) of the current stats."""
        s = self.stats.snapshot()
        lines: list[str] = []

        def metric(name: str, kind: str, help_: str, samples: list[tuple[str, object]]):
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} {kind}")
            for suffix_labels, value in samples:
                lines.append(f"{name}{suffix_labels} {_num(value)}")

        metric("edgecam_frames_captured_total", "counter", "Frames the source produced.",
               [("", s["frames_captured"])])
        metric("edgecam_frames_dropped_total", "counter", "Frames captured but never classified.",
               [("", s["frames_dropped"])])
        metric("edgecam_frames_output_dropped_total", "counter",
               "Frames captured but never drawn (the outputs fell behind a live source).",
               [("", s.get("frames_output_dropped", 0))])
        metric("edgecam_frames_inferred_total", "counter", "Frames classified.",
               [("", s["frames_inferred"])])
        metric("edgecam_frames_output_total", "counter", "Frames handed to the outputs.",
               [("", s["frames_output"])])
        metric("edgecam_capture_fps", "gauge", "Capture rate, frames per second.", [("", s["capture_fps"])])
        metric("edgecam_inference_fps", "gauge", "Inference rate, results per second.",
               [("", s["inference_fps"])])
        metric("edgecam_output_fps", "gauge", "Output rate, frames per second.", [("", s["output_fps"])])
        buckets = [(f'_bucket{{le="{_num(float(le))}"}}', n) for le, n in s["inference_ms_buckets"]]
        buckets.append(('_bucket{le="+Inf"}', s["inference_ms_count"]))
        buckets += [("_sum", float(s["inference_ms_sum"])), ("_count", s["inference_ms_count"])]
        metric("edgecam_inference_ms", "histogram", "Interpreter invoke() time in milliseconds.", buckets)
        metric("edgecam_reconnects_total", "counter", "Times the source was reopened.", [("", s["reconnects"])])
        metric("edgecam_source_up", "gauge", "1 while frames arrive, else 0.",
               [("", self.stats.flowing(self.stall_timeout_s))])
        if s["current_label"]:
            metric("edgecam_label_info", "gauge", "The current top label.",
                   [(f'{{label="{_escape_label(s["current_label"])}"}}', 1)])
        metric("edgecam_label_score", "gauge", "Score of the current top label (0..1).",
               [("", float(s["current_score"]))])
        metric("edgecam_http_stream_clients", "gauge", "Connected /stream.mjpg clients.", [("", self._clients)])
        for sink_name, values in sorted(s["extra"].items()):
            for key, value in sorted(values.items()):
                if not isinstance(value, (bool, int, float)):
                    continue
                name = _metric_name(f"edgecam_{sink_name}_{key}")
                metric(name, "gauge", f"{sink_name} status: {key}.", [("", value)])
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------- server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # listen() backlog: the default 5 makes the sixth connect of a burst (a
    # page's parallel requests, Prometheus with several viewers) wait for TCP
    # retransmits whenever the accept loop is a moment behind.
    request_queue_size = 128

    def __init__(self, address, handler, sink: HttpSink):
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


class _Handler(BaseHTTPRequestHandler):
    server: _Server
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
        if not sink._check_token(self.headers, query, path):
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
        }.get(path)
        if route is None:
            self._send(404, f"404 not found: {path}\n".encode())
            return
        try:
            route()
        except OSError as e:  # the client left, stopped reading, or we are closing
            logger.debug("http: %s left (%s)", self.address_string(), e)
            self.close_connection = True

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
        _, jpeg = self.server.sink.latest_jpeg()
        if jpeg is None:
            self._send(503, b"503 no frame yet\n", extra={"Retry-After": "1"})
        else:
            self._send(200, jpeg, "image/jpeg")

    def _latest(self):
        data = self.server.sink._latest_json()
        if data is None:
            self._send(503, b'{"error": "no result yet"}\n', "application/json", extra={"Retry-After": "1"})
        else:
            self._send(200, json.dumps(data).encode() + b"\n", "application/json")

    def _healthz(self):
        ok, reason = self.server.sink._health()
        self._send(200 if ok else 503, reason.encode() + b"\n")

    def _metrics(self):
        self._send(200, self.server.sink.metrics_text().encode(), "text/plain; version=0.0.4; charset=utf-8")

    def _stream(self):
        sink = self.server.sink
        if self.command == "HEAD":  # what a stream would be, without taking a client slot
            self.send_response(200 if not sink._closing else 503)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.close_connection = True
            return
        with sink._cond:
            full = sink._clients >= sink.cfg.max_clients
            if not full and not sink._closing:
                sink._clients += 1
                sink._client_socks.add(self.connection)
        if full:
            self._send(503, f"503 too many stream clients (http.max_clients = {sink.cfg.max_clients}); "
                            f"try again later or use /snapshot.jpg\n".encode(), extra={"Retry-After": "5"})
            return
        if sink._closing:
            self._send(503, b"503 shutting down\n")
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self._stream_frames(sink)
        finally:
            with sink._cond:
                sink._clients -= 1
                sink._client_socks.discard(self.connection)
                sink._cond.notify_all()
            self.close_connection = True

    def _stream_frames(self, sink: HttpSink):
        interval = 1.0 / sink.cfg.stream_fps
        sent = 0  # sequence number of the picture this client has
        while True:
            with sink._cond:
                # Skip whatever came in between: we want the newest only.
                fresh = sink._cond.wait_for(lambda: sink._closing or sink._seq > sent, timeout=sink.keepalive_s)
                if sink._closing:
                    return
            if fresh:
                seq, jpeg = sink.latest_jpeg()
            else:
                seq, jpeg = sent, sink._jpeg  # idle: re-send, to notice a client that left
            if jpeg is None:
                continue
            t0 = time.monotonic()
            self.wfile.write(
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                + jpeg + b"\r\n"
            )
            sent = seq
            # Pace to stream_fps; close() sets _closed and wakes us at once.
            if sink._closed.wait(max(0.0, interval - (time.monotonic() - t0))):
                return


# -------------------------------------------------------------------- helpers


def _read_token(path: str) -> bytes:
    try:
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
    except OSError as e:
        raise ConfigError(f"http.token_file: cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"http.token_file: {path} is not UTF-8 text; put a plain token in it") from None
    if not token:
        raise ConfigError(f"http.token_file: {path} is empty; put a token in it (e.g. openssl rand -hex 16)")
    return token.encode("utf-8")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _num(value) -> str:
    """A sample value as the text format wants it."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _metric_name(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


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
</style></head>
<body><main>
<h1>edgecam</h1>
<img id="view" alt="live picture">
<ol id="labels"></ol>
<div id="status">waiting for a result...</div>
</main>
<script>
// The token (if any) comes from this page's own URL, since <img src> cannot send headers.
const params = new URLSearchParams(location.search);
const q = params.get("token") ? "token=" + encodeURIComponent(params.get("token")) : "";
const url = (p, extra) => p + "?" + [q, extra].filter(Boolean).join("&");
const view = document.getElementById("view");
let snapTimer = null;
function snapshots() {  // poll single pictures: ?snapshot=1, or when the stream is refused
  if (snapTimer) return;
  const next = () => { view.src = url("snapshot.jpg", "t=" + Date.now()); };
  view.onerror = null; next(); snapTimer = setInterval(next, 1000);
}
if (params.get("snapshot")) snapshots();
else { view.onerror = snapshots; view.src = url("stream.mjpg"); }
async function poll() {
  try {
    const r = await fetch(url("api/latest"), {cache: "no-store"});
    const d = await r.json();
    if (!r.ok) throw new Error(d.error || r.status);
    const ol = document.getElementById("labels");
    ol.replaceChildren(...d.top_k.map(l => {
      const li = document.createElement("li"), bar = document.createElement("span");
      const b = document.createElement("b"), i = document.createElement("i");
      bar.className = "bar"; bar.style.width = (100 * l.score).toFixed(1) + "%";
      b.textContent = l.label; i.textContent = (100 * l.score).toFixed(1) + " %";
      li.append(bar, b, i); return li;
    }));
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

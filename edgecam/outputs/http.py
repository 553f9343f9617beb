"""Live view and metrics over HTTP (standard library only).

Endpoints::

    /               a small page: live picture + latest labels (phone friendly)
    /stream.mjpg    MJPEG of the annotated frames, at most ``stream_fps``
    /snapshot.jpg   the newest annotated frame
    /api/latest     the latest result as JSON
    /healthz        200 "ok" while frames flow, else 503 and why (no token needed)
    /metrics        Prometheus text format 0.0.4
    /events ...     with event rules: the events' page and API, mounted by edgecam.events (mount)

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

This file is the sink and the view of its state the server reads;
``http_server.py`` is the server and the request handler, ``http_page.py`` the
page. A run of several cameras serves them all from one server:
``http_hub.py`` (:class:`edgecam.outputs.http_hub.HttpHub`), whose cameras are
HttpSinks without a server of their own, sharing the hub's stream slots
(:class:`edgecam.outputs.http_slots.StreamSlots`).
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import threading
import time
from collections.abc import Callable

import cv2
import numpy as np

from edgecam.config.schema import HttpConfig
from edgecam.errors import NetworkError
from edgecam.camera.frame import Frame
from edgecam.result import Classification
from edgecam.outputs import http_metrics
from edgecam.outputs.base import Sink, iso_time, refusals
from edgecam.outputs.http_guard import HostGuard, token_ok, warn_if_open
from edgecam.outputs.http_page import PAGE
from edgecam.outputs.http_server import Handler, Refused, Server
from edgecam.outputs.http_slots import StreamSlots
from edgecam.outputs.teach import Teacher, examples_dir
from edgecam.config.secret_file import read_secret
from edgecam.stats import Stats

logger = logging.getLogger(__name__)

_BIND_REASONS = {
    errno.EADDRINUSE: "address already in use (set http.port)",
    errno.EACCES: "permission denied (ports below 1024 need root; set http.port)",
    errno.EADDRNOTAVAIL: "no such address on this machine (set http.host)",
}


def listen(site, cfg: HttpConfig) -> tuple[Server, threading.Thread]:
    """Bind ``cfg.host``:``cfg.port`` and serve ``site`` (an :class:`HttpSink`, or a hub) on a daemon thread.

    Raises one :class:`NetworkError` (exit code 5) when the address cannot be had (a port in use).
    """
    host, port = cfg.host, cfg.port
    try:
        server = Server((host, port), Handler, site)
    except OSError as e:
        if isinstance(e, socket.gaierror):
            reason = "unknown host (set http.host)"
        else:
            reason = _BIND_REASONS.get(e.errno, (e.strerror or str(e)).lower())
        raise NetworkError(f"http: cannot listen on {host}:{port}: {reason}") from None
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="http-server",
                              daemon=True)
    thread.start()
    return server, thread


class HttpSink(Sink):
    """Serves the live view, the latest result, health and metrics.

    Args:
        cfg: the ``http`` section of the config.
        stats: the pipeline's live counters (read only).
        stall_timeout_s: /healthz reports 503 when no frame came for this long.
        top_k: how many labels /api/latest reports.
        threshold: labels scoring below it are left out of /api/latest (``model.threshold``,
            as in the overlay, the log and MQTT).
        slots: the stream slots to take from (a hub's, shared by its cameras); None: its own.
    """

    name = "http"
    #: The paths it answers (``/region/<name>.jpg`` and what is mounted besides) -> the
    #: :class:`edgecam.outputs.http_server.Handler` method that answers each.
    routes = {"/": "_page", "/index.html": "_page", "/stream.mjpg": "_stream", "/snapshot.jpg": "_snapshot",
              "/api/latest": "_latest", "/healthz": "_healthz", "/metrics": "_metrics", "/api/regions": "_regions"}
    #: The page served at ``/``.
    page = PAGE
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
                 threshold: float = 0.0, regions: tuple = (), examples_dir=None, slots: StreamSlots | None = None):
        self.cfg = cfg
        self.stats = stats
        self.stall_timeout_s = stall_timeout_s
        self.top_k = top_k
        self.threshold = threshold
        self.port: int | None = None
        #: how many times a JPEG was encoded (tests prove once per frame with it)
        self.encode_count = 0
        self._token: bytes | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._closing = False
        self._closed = threading.Event()
        # _cond guards the newest picture, its sequence number and the client
        # bookkeeping; it is never held while encoding or writing to a socket.
        self._cond = threading.Condition()
        self._image: np.ndarray | None = None
        self._image_result: Classification | None = None
        self._seq = 0
        #: the stream slots its viewers take (:class:`StreamSlots`)
        self.slots = slots if slots is not None else StreamSlots(cfg.max_clients)
        # _jpeg_lock guards the shared encoded picture.
        self._jpeg_lock = threading.Lock()
        self._jpeg: bytes | None = None
        self._jpeg_result = b""  # the compact JSON of the result drawn on self._jpeg (picture_result)
        self._jpeg_seq = 0
        self._result: Classification | None = None
        #: the Host and Origin checks every request passes (edgecam.outputs.http_guard)
        self.guard = HostGuard(cfg.host, cfg.allowed_hosts)
        self._result_wall = 0.0
        self._result_mono = 0.0
        #: With regions: their crops and the "this is" buttons' examples (edgecam.outputs.teach.Teacher).
        self.teacher = None
        if regions:
            self.teacher = Teacher(regions, examples_dir or "examples", cfg.jpeg_quality)
        #: Paths other parts of edgecam answer (:meth:`mount`): prefix -> handler.
        self.mounts: dict[str, Callable] = {}
        #: The camera's teaching (edgecam.studio.core.Studio: /teach, /api/teach/...), once attached.
        self.studio = None

    @classmethod
    def from_config(cls, cfg, ctx) -> HttpSink:
        return cls(cfg.http, ctx.stats, stall_timeout_s=cfg.source.timeout_s, top_k=cfg.model.top_k,
                   threshold=cfg.model.threshold, regions=ctx.regions, examples_dir=examples_dir(cfg))

    @classmethod
    def check(cls, cfg) -> list[str]:
        """An empty or unreadable token file."""
        if not (cfg.http.enabled and cfg.http.token_file):
            return []
        return refusals(lambda: _read_token(cfg.http.token_file))

    def mount(self, prefix: str, handle: Callable) -> None:
        """Answer ``prefix`` (``/events``) and every path below it (``/events/...``) with
        ``handle(request, path, query)``, behind the same token and Host checks as the rest (the events
        output mounts its page and API this way). ``request`` is the
        :class:`edgecam.outputs.http_server.Handler`: its ``_send`` and ``_json`` answer."""
        self.mounts[prefix.rstrip("/")] = handle

    def attach_studio(self, studio) -> None:
        """Serve the teach page and its endpoints (an edgecam.studio.core.Studio) and feed its review queue."""
        self.studio = studio
        studio.attach(self)

    def view_for(self, path: str) -> tuple[HttpSink, str]:
        """Who answers ``path``, and the path it answers: this sink, ``path`` (a hub: one of its cameras)."""
        return self, path

    def mounted(self, path: str) -> Callable | None:
        """The handler :meth:`mount` gave for ``path``; None when none did."""
        for prefix, handle in self.mounts.items():
            if path == prefix or path.startswith(prefix + "/"):
                return handle
        return None

    # ---------------------------------------------------------------- Sink API

    def start(self) -> None:
        """Read the token file, bind the port and serve on a daemon thread."""
        self._token = read_token(self.cfg)
        self._server, self._thread = listen(self, self.cfg)
        self.port = self._server.server_address[1]
        announce(self.cfg.host, self.port, self._token)

    def on_frame(self, frame: Frame, annotated: np.ndarray | None, result: Classification | None) -> None:
        """Keep a reference to the newest picture; costs the pipeline nothing.

        The caller must not draw into ``annotated`` afterwards (the overlay
        makes a new picture for every frame).
        """
        image = annotated if annotated is not None else frame.image
        if self.teacher is not None:
            self.teacher.on_frame(frame.image, frame.wall_time)
        if self.studio is not None:
            self.studio.feeder.on_frame(frame.image, frame.wall_time)
        with self._cond:
            self._image = image
            self._image_result = result  # the result the overlay drew: the live page lists it beside the picture
            self._seq += 1
            self._cond.notify_all()

    def on_result(self, result: Classification) -> None:
        self._result_wall = time.time()
        self._result_mono = time.monotonic()
        self._result = result
        if self.studio is not None:
            self.studio.feeder.on_result(result)

    def close(self) -> None:
        """Stop serving and let every client thread exit (within a second)."""
        if not self.end_streams():
            return
        if self.studio is not None:
            self.studio.close()
        self.slots.shut()
        stop_serving(self._server, self._thread)
        self.slots.wait_empty(1.0)

    def end_streams(self) -> bool:
        """Wake every stream and wait on this sink's picture, and let them end; False when done before.

        :meth:`close` does it; a hub does it for each of its cameras when it closes.
        """
        with self._cond:
            if self._closing:
                return False
            self._closing = True
            self._cond.notify_all()
        self._closed.set()
        return True

    # ------------------------------------------- the view the HTTP handler uses

    @property
    def stream_clients(self) -> int:
        """Number of connected /stream.mjpg clients (a hub's cameras: of them all)."""
        return self.slots.clients

    @property
    def streams_refused(self) -> int:
        """Stream requests refused because every slot was taken (/metrics)."""
        return self.slots.refused

    @property
    def closing(self) -> bool:
        """True once :meth:`close` began: streams end, new ones are refused."""
        return self._closing

    def join_stream(self, sock: socket.socket) -> Refused | None:
        """Take a /stream.mjpg slot for the client on ``sock``: None, or why not."""
        if self._closing:
            return Refused.CLOSING
        return self.slots.join(sock)

    def leave_stream(self, sock: socket.socket) -> None:
        """Give back the slot :meth:`join_stream` gave."""
        self.slots.leave(sock)

    def wait_for_picture(self, seen: int, timeout: float) -> bool:
        """Wait until there is a picture newer than sequence number ``seen`` (True) or ``timeout`` passed
        (False); returns at once when closing."""
        with self._cond:
            return self._cond.wait_for(lambda: self._closing or self._seq > seen, timeout=timeout) \
                and not self._closing

    def wait_closed(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; True (at once) when the sink closes meanwhile."""
        return self._closed.wait(timeout)

    def cached_jpeg(self) -> bytes | None:
        """The last picture encoded, without encoding a newer one."""
        with self._jpeg_lock:
            return self._jpeg

    def latest_jpeg(self) -> tuple[int, bytes | None]:
        """(sequence number, JPEG bytes) of the newest picture; (0, None) before any.

        Encodes at most once per picture, however many threads ask.
        """
        seq, jpeg, _ = self.latest_picture()
        return seq, jpeg

    def latest_picture(self) -> tuple[int, bytes | None, bytes]:
        """:meth:`latest_jpeg` and the result drawn on that very picture (:meth:`picture_result`)."""
        with self._cond:
            image, seq, result = self._image, self._seq, self._image_result
        if image is None:
            return 0, None, b""
        with self._jpeg_lock:
            if self._jpeg_seq < seq:
                data = self._encode(image)
                if data is not None:
                    self._jpeg, self._jpeg_seq = data, seq
                    self._jpeg_result = self.picture_result(result)
            return self._jpeg_seq, self._jpeg, self._jpeg_result

    def picture_result(self, result: Classification | None) -> bytes:
        """The result a picture was drawn with, as one line of JSON (the X-Edgecam-Result header of its
        stream part and of /snapshot.jpg): the live page lists exactly what the picture's overlay shows,
        not a result of another moment. ASCII, no line breaks: a valid header value."""
        if result is None:
            return b"{}"
        out = result.to_dict(k=self.top_k, threshold=self.threshold)
        return json.dumps({k: out[k] for k in ("frame", "top_k", "regions") if k in out},
                          separators=(",", ":")).encode()

    def _encode(self, image: np.ndarray) -> bytes | None:
        self.encode_count += 1
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(self.cfg.jpeg_quality)])
        if not ok:
            logger.warning("http: cannot encode a %s picture as JPEG", getattr(image, "shape", "?"))
            return None
        return buf.tobytes()

    def authorized(self, headers, query: dict, path: str) -> bool:
        """Whether a request for ``path`` may be answered (the token, when one is set; /healthz always)."""
        return token_ok(self._token, headers, query, path)

    def health(self) -> tuple[bool, str]:
        """(frames flow, why not): what /healthz answers."""
        if self.stats.flowing(self.stall_timeout_s):
            return True, "ok"
        last = self.stats.last_frame_time
        if not last:
            return False, "starting"
        return False, f"stalled: no frame for {time.monotonic() - last:.1f} s"

    @property
    def result_made(self) -> float | None:
        """When the newest result was made (monotonic seconds); None before the first."""
        result = self._result
        return None if result is None else self._made(result)

    def _made(self, result: Classification) -> float:
        return result.result_time or self._result_mono

    def latest_json(self) -> dict | None:
        """The latest result as /api/latest serves it; None before the first."""
        result = self._result
        if result is None:
            return None
        out = result.to_dict(k=self.top_k, threshold=self.threshold)
        wall = result.wall_time or self._result_wall
        made = self._made(result)
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
        """The Prometheus text exposition (format 0.0.4) of the current stats (:mod:`.http_metrics`)."""
        camera, others = self.camera_metrics()
        server = http_metrics.server_metrics(self.slots, self._server)
        return http_metrics.render(camera + server + others)

    def camera_metrics(self) -> tuple[list, list]:
        """This camera's metrics: (its pipeline's and its label's, its other outputs'); /metrics puts the
        server's own between the two."""
        s = self.stats.snapshot()
        out = http_metrics.pipeline_metrics(s, self.stats.flowing(self.stall_timeout_s))
        out += http_metrics.label_metrics(s)
        others = []
        for source in list(getattr(self.stats, "metric_sources", ())):  # the events output's, ...
            others += source()
        others += http_metrics.status_metrics(s["extra"])
        return out, others


# -------------------------------------------------------------------- helpers

def _read_token(path: str) -> bytes:
    return read_secret("http.token_file", path, hint="put a plain token in it (e.g. openssl rand -hex 16)").encode()


def read_token(cfg: HttpConfig) -> bytes | None:
    """The token ``http.token_file`` holds; None without one (a ConfigError when it is empty or unreadable)."""
    return _read_token(cfg.token_file) if cfg.token_file else None


def announce(host: str, port: int, token: bytes | None) -> None:
    """Log where the server listens, and warn when it is open to other machines without a token."""
    logger.info("http: serving on http://%s:%d/%s", _url_host(host), port, " (token required)" if token else "")
    if token is None:
        warn_if_open(host, port)


def stop_serving(server: Server | None, thread: threading.Thread | None) -> None:
    """Stop the server :func:`listen` started (None: none was) and wait for its thread."""
    if server is not None:
        server.shutdown()
        server.server_close()
    if thread is not None:
        thread.join(timeout=2.0)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host

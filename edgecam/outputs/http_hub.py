"""One HTTP server for every camera of a run (issue 25): a page of live tiles, each camera's page below it.

Paths (the token and Host rules of the HTTP output apply to each, as with one camera)::

    /                         a grid of tiles, one per camera: its picture (refreshed each second), its label,
                              rate and the age of its newest result, or why it is down; each links to its page
    /api/cameras              every camera as JSON: name, url, state, reason, label, score, fps, age_s
    /camera/<name>/           that camera's live page, as one camera's ``/``; below it every path of one
                              camera's server but /metrics (stream.mjpg, snapshot.jpg, api/latest, healthz,
                              api/regions, region/<r>.jpg, POST api/examples, and with event rules its
                              events and api/events)
    /healthz                  200 "ok" while every camera's frames flow; 200 and which do not while some
                              do; 503 when none does (no token needed)
    /metrics                  every camera's series with a ``camera="<name>"`` label, the server's own once

The cameras share the ``http.max_clients`` stream slots: the limit counts every
viewer of every camera (and event clips) together. Each camera is a
:class:`CameraView`, an :class:`edgecam.outputs.http.HttpSink` without a server
of its own, fed by its camera's output loop as one camera's sink is.
"""

from __future__ import annotations

import threading
import time

from edgecam.config.schema import HttpConfig
from edgecam.outputs import http_metrics
from edgecam.outputs.http import HttpSink, announce, listen, read_token, stop_serving
from edgecam.outputs.http_guard import HostGuard, token_ok
from edgecam.outputs.http_page import GRID_PAGE
from edgecam.outputs.http_slots import StreamSlots
from edgecam.outputs.teach import examples_dir
from edgecam.stats import SourceState, Stats

#: Source states a tile shows as they are (the others: running, stalled or starting, from the frames' flow).
_SHOWN_STATES = (SourceState.ENDED, SourceState.FAILED, SourceState.RECONNECTING, SourceState.STALLED)


class CameraView(HttpSink):
    """One camera of an :class:`HttpHub`: its picture, result and counters, answered under ``/camera/<name>/``.

    A sink of its camera's outputs like one camera's HttpSink, but the hub
    serves it: :meth:`start` and :meth:`close` leave the server alone, and
    its stream slots are the hub's. Its /metrics is the hub's.
    """

    routes = {path: method for path, method in HttpSink.routes.items() if path != "/metrics"}

    def __init__(self, hub: HttpHub, camera: str, stats: Stats, **kwargs):
        super().__init__(hub.cfg, stats, slots=hub.slots, **kwargs)
        #: the camera's name (letters, digits, _ and -)
        self.camera = camera
        #: why the camera could not start (:meth:`HttpHub.mark_down`); None while it could
        self.down: str | None = None

    def start(self) -> None:
        """Nothing to open: the hub serves every camera (:meth:`HttpHub.start`)."""

    def close(self) -> None:
        """Nothing to close: the camera ended, its page goes on showing its last picture until the hub closes."""

    def health(self) -> tuple[bool, str]:
        """As one camera's, and "down: why" for a camera that could not start."""
        if self.down is not None:
            return False, f"down: {self.down}"
        return super().health()

    def latest_json(self) -> dict | None:
        """As one camera's, with the camera's name (``"camera"``)."""
        out = super().latest_json()
        if out is not None:
            out["camera"] = self.camera
        return out

    def state(self) -> str:
        """down, ended, failed, reconnecting, stalled, running or starting."""
        if self.down is not None:
            return "down"
        state = self.stats.source_state
        if state in _SHOWN_STATES:
            return str(state)
        if self.stats.flowing(self.stall_timeout_s):
            return "running"
        return "stalled" if self.stats.last_frame_time else "starting"

    def summary(self) -> dict:
        """The camera as /api/cameras lists it."""
        s = self.stats.snapshot()
        made = self.result_made
        return {"name": self.camera, "url": f"/camera/{self.camera}/", "state": self.state(), "reason": self.down,
                "label": s["current_label"] or None, "score": round(float(s["current_score"]), 4),
                "fps": round(s["inference_fps"], 2), "capture_fps": round(s["capture_fps"], 2),
                "age_s": None if made is None else round(max(0.0, time.monotonic() - made), 3)}


class HttpHub:
    """The one HTTP server of a run of several cameras (see the module docstring).

    ``cfg``: the ``http`` section (the first camera's config's: the run's).
    :meth:`sink` gives each camera its :class:`CameraView`, to add to its
    outputs; :meth:`start` listens, :meth:`close` stops. What the request
    handler reads of it is the site's side of :class:`edgecam.outputs.http.HttpSink`
    (``guard``, ``authorized``, ``view_for``) and a view's (``routes``, ``page``,
    ``health``, ``metrics_text``, ``cameras_json``).
    """

    routes = {"/": "_page", "/index.html": "_page", "/api/cameras": "_cameras", "/healthz": "_healthz",
              "/metrics": "_metrics"}
    page = GRID_PAGE
    teacher = None
    send_timeout_s = HttpSink.send_timeout_s
    header_timeout_s = HttpSink.header_timeout_s
    keepalive_s = HttpSink.keepalive_s

    def __init__(self, cfg: HttpConfig):
        self.cfg = cfg
        #: the port it listens on, once started
        self.port: int | None = None
        #: the Host and Origin checks every request passes (edgecam.outputs.http_guard)
        self.guard = HostGuard(cfg.host, cfg.allowed_hosts)
        #: the stream slots every camera's viewers share
        self.slots = StreamSlots(cfg.max_clients)
        #: the cameras, by name, in the order they were given
        self.views: dict[str, CameraView] = {}
        self._token: bytes | None = None
        self._server = None
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    def sink(self, name: str, cfg, stats: Stats, regions: tuple = ()) -> CameraView:
        """The output that feeds camera ``name`` into the hub; ``cfg`` its config (the labels listed:
        ``model.top_k`` and ``model.threshold``; /healthz: ``source.timeout_s``), ``stats`` its counters,
        ``regions`` its regions (:class:`edgecam.outputs.base.RegionInfo`: their crops and teach buttons)."""
        view = CameraView(self, name, stats, stall_timeout_s=cfg.source.timeout_s, top_k=cfg.model.top_k,
                          threshold=cfg.model.threshold, regions=regions, examples_dir=examples_dir(cfg))
        self.views[name] = view
        return view

    def mark_down(self, name: str, reason: str) -> None:
        """Camera ``name`` could not start: its tile and /api/cameras say so, with ``reason`` (one line)."""
        self.views[name].down = reason

    def start(self) -> None:
        """Read the token file, bind the port and serve on a daemon thread; a port in use is one
        :class:`edgecam.errors.NetworkError` (exit code 5)."""
        self._token = read_token(self.cfg)
        self._server, self._thread = listen(self, self.cfg)
        self.port = self._server.server_address[1]
        announce(self.cfg.host, self.port, self._token)

    def close(self) -> None:
        """Stop serving and let every client thread exit (within a second); safe to call more than once."""
        if self._closed.is_set():
            return
        self._closed.set()
        for view in self.views.values():
            view.end_streams()
        self.slots.shut()
        stop_serving(self._server, self._thread)
        self._server = self._thread = None
        self.slots.wait_empty(1.0)

    # ------------------------------------------- the view the HTTP handler uses

    @property
    def closing(self) -> bool:
        """True once :meth:`close` began."""
        return self._closed.is_set()

    def wait_closed(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; True (at once) when the hub closes meanwhile."""
        return self._closed.wait(timeout)

    def view_for(self, path: str) -> tuple[HttpHub | CameraView, str]:
        """Who answers ``path``: the camera and the path below ``/camera/<name>`` ("" when nothing follows
        the name, not even a slash), else the hub and ``path``."""
        if path.startswith("/camera/"):
            name, slash, rest = path[len("/camera/"):].partition("/")
            view = self.views.get(name)
            if view is not None:
                return view, slash + rest
        return self, path

    def mounted(self, path: str):
        """Nothing is mounted on the hub itself (the events are each camera's: :meth:`CameraView.mount`)."""
        return None

    def authorized(self, headers, query: dict, path: str) -> bool:
        """The token rule of one camera's server, for the path below a camera's prefix (/healthz needs none,
        /metrics wants the header); /api/cameras takes ``?token=`` as /api/latest does."""
        view, below = self.view_for(path)
        return token_ok(self._token, headers, query, path if view is self else below or "/",
                        query_paths=frozenset({"/api/cameras"}))

    def cameras_json(self) -> dict:
        """What /api/cameras answers: every camera's :meth:`CameraView.summary`, in the order given."""
        return {"cameras": [view.summary() for view in self.views.values()]}

    def health(self) -> tuple[bool, str]:
        """(some camera's frames flow, which do not): what /healthz answers."""
        states = {name: view.health() for name, view in self.views.items()}
        bad = [f"{name}: {why}" for name, (ok, why) in states.items() if not ok]
        if not bad:
            return True, "ok"
        return len(bad) < len(states), "; ".join(bad)

    def metrics_text(self) -> str:
        """Every camera's metrics labelled ``camera="<name>"`` (one HELP and TYPE per family), then the
        server's own (streams of every camera, refusals), unlabelled."""
        families = []
        for name, view in self.views.items():
            camera, others = view.camera_metrics()
            families += http_metrics.labelled(camera + others, "camera", name)
        return http_metrics.render(http_metrics.merged(families)
                                   + http_metrics.server_metrics(self.slots, self._server))

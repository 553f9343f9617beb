"""Outputs of the pipeline: the :class:`Sink` interface (``base.py``), the sinks
a config can ask for (:data:`SINKS`, one list of :class:`SinkPlugin`) and the
fan-out that feeds them so that one failing sink never stops the others.

``display.py`` the window, ``jsonlog.py`` the JSON Lines log, ``record.py``
the annotated video, ``http.py`` (+ ``http_server.py``) the live view and
metrics, ``mqtt.py`` (+ ``mqtt_messages.py``, and ``mqtt_hub.py`` its connection, one for a run of
several cameras) MQTT with Home Assistant discovery, ``stdout.py`` the label changes of a run with no other
output.

May import the package root, config, registry, camera, model and health; never
:mod:`edgecam.events` (which uses this package: it registers its own output here,
and mounts its pages on the HTTP output with :meth:`HttpSink.mount`).

Adding an output (docs/events.md, "Add a sink"): one module with a :class:`Sink`
subclass (:meth:`Sink.from_config`, and :meth:`Sink.check` for what ``edgecam
check-config`` must refuse), plus one :class:`SinkPlugin` line in :data:`SINKS`
(or a :func:`register` call from the package that owns it).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgecam.errors import EdgecamError
from edgecam.outputs.base import Sink, SinkContext

if TYPE_CHECKING:
    from edgecam.config.schema import Config

logger = logging.getLogger(__name__)

__all__ = ["Sink", "FanOut", "SinkContext", "SinkPlugin", "SINKS", "register", "unregister", "build_sinks",
           "check_sinks"]


@dataclass(frozen=True)
class SinkPlugin:
    """One output a config can ask for, declared without importing it (the HTTP server's module alone
    costs a Pi about 9 MB of memory: only what is wanted is imported).

    ``key`` its name (:attr:`Sink.name`); ``section`` the :class:`edgecam.config.schema.Config`
    attribute it reads; ``enabled(cfg, ctx)`` whether this config (and run) asks for it; ``target``
    ``"module:Class"``, its :class:`Sink` subclass (built with :meth:`Sink.from_config`, checked with
    :meth:`Sink.check`).
    """

    key: str
    section: str
    enabled: Callable[[Config, SinkContext], bool]
    target: str

    def load(self) -> type[Sink]:
        """The Sink subclass (its module imported now)."""
        module, cls = self.target.split(":")
        return getattr(importlib.import_module(module), cls)


#: The outputs a config can ask for, in the order they are fed. The events output
#: (:mod:`edgecam.events`) registers itself first: the outputs after it see its
#: starts and ends on each result (:data:`edgecam.result.Extra.RULE_EVENTS`, MQTT and the log).
SINKS: list[SinkPlugin] = [
    SinkPlugin("window", "display", lambda cfg, ctx: ctx.display, "edgecam.outputs.display:WindowSink"),
    SinkPlugin("log", "log", lambda cfg, ctx: bool(cfg.log.path), "edgecam.outputs.jsonlog:JsonLogSink"),
    SinkPlugin("record", "record", lambda cfg, ctx: bool(cfg.record.path), "edgecam.outputs.record:RecordSink"),
    SinkPlugin("http", "http", lambda cfg, ctx: cfg.http.enabled, "edgecam.outputs.http:HttpSink"),
    SinkPlugin("mqtt", "mqtt", lambda cfg, ctx: cfg.mqtt.enabled, "edgecam.outputs.mqtt:MqttSink"),
]


def register(plugin: SinkPlugin, first: bool = False) -> None:
    """Add ``plugin`` to :data:`SINKS` (again: replaced in place); ``first``: fed before every other output."""
    for i, known in enumerate(SINKS):
        if known.key == plugin.key:
            SINKS[i] = plugin
            return
    if first:
        SINKS.insert(0, plugin)
    else:
        SINKS.append(plugin)


def unregister(key: str) -> None:
    """Take the output ``key`` out of :data:`SINKS` (a test's toy output)."""
    SINKS[:] = [p for p in SINKS if p.key != key]


def build_sinks(cfg, stats, on_quit, display: bool, source_fps: float | None, regions: tuple = (),
                labels: tuple = (), camera: str | None = None, shared_outputs=None, extra: tuple = (),
                model: str | None = None) -> list[Sink]:
    """The outputs ``cfg`` asks for (see :data:`SINKS`), built but not started, then ``extra`` (outputs built
    elsewhere: a hub's camera), each told of the others.

    ``camera``: the camera's name in a run of several, ``shared_outputs`` what its outputs share with the other
    cameras' (see :class:`SinkContext`)."""
    ctx = SinkContext(stats=stats, on_quit=on_quit, display=display, source_fps=source_fps, regions=regions,
                      labels=labels, camera=camera, shared_outputs=shared_outputs, model=model)
    sinks = [plugin.load().from_config(cfg, ctx) for plugin in SINKS if plugin.enabled(cfg, ctx)] + list(extra)
    for sink in sinks:
        sink.connect(sinks)
    return sinks


def check_sinks(cfg) -> list[str]:
    """What each registered output refuses in ``cfg`` (:meth:`Sink.check`), every problem, in :data:`SINKS` order."""
    return [problem for plugin in SINKS for problem in plugin.load().check(cfg)]


class FanOut:
    """Calls every sink in turn; a sink that raises is logged once and switched off.

    Errors in ``start()`` are not caught: a sink that cannot start (unwritable
    log folder, port in use) is bad input, reported before the camera opens.
    """

    def __init__(self, sinks: list[Sink], stats=None):
        self.sinks = list(sinks)
        self.all_sinks = list(sinks)  # switched-off ones included
        self.stats = stats
        self.wants_frames = any(s.wants_frames for s in self.sinks)
        self.wants_overlay = any(s.wants_frames and s.wants_overlay for s in self.sinks)
        #: The first user-facing error that switched a sink off; the run ends
        #: with its exit code (the others went on, but the output was lost).
        self.failure: EdgecamError | None = None

    def start(self) -> None:
        started = []
        try:
            for sink in self.sinks:
                sink.start()
                started.append(sink)
        except BaseException:
            for sink in started:
                self._safe(sink, "close")
            raise

    def _safe(self, sink: Sink, method: str, *args) -> None:
        try:
            getattr(sink, method)(*args)
        except Exception as e:  # one bad sink must not take the others down
            if isinstance(e, EdgecamError):  # said in one line: no traceback
                logger.error("output %s is switched off: %s", sink.name, e.message)
                e.logged = True
                self.failure = self.failure or e
            else:
                logger.exception("output %s failed in %s and is switched off: %s", sink.name, method, e)
            if self.stats is not None:
                self.stats.sink_errors[sink.name] = f"{type(e).__name__}: {e}"
            if sink in self.sinks:
                self.sinks.remove(sink)
                self.wants_frames = any(s.wants_frames for s in self.sinks)
                self.wants_overlay = any(s.wants_frames and s.wants_overlay for s in self.sinks)
                try:
                    sink.close()
                except Exception:
                    pass

    def on_result(self, result) -> None:
        for sink in list(self.sinks):
            self._safe(sink, "on_result", result)

    def on_frame(self, frame, annotated, result) -> None:
        for sink in list(self.sinks):
            self._safe(sink, "on_frame", frame, annotated, result)

    def on_event(self, event) -> None:
        for sink in list(self.sinks):
            self._safe(sink, "on_event", event)

    def on_health(self, health) -> None:
        for sink in list(self.sinks):
            self._safe(sink, "on_health", health)

    def close(self) -> None:
        for sink in sorted(self.sinks, key=lambda s: not s.closes_first):  # stable: else in their order
            try:
                sink.close()
            except Exception as e:
                logger.error("output %s failed to close: %s", sink.name, e)
        for sink in self.all_sinks:
            # A sink that kept going but lost what it was for (a log where no
            # line could be written) says so in close() and sets ``failure``.
            if sink.failure is not None and self.failure is None:
                self.failure = sink.failure

    def fatal(self) -> tuple[Sink, EdgecamError] | None:
        """The first sink that cannot go on, with its :attr:`Sink.fatal_error`; None while all can."""
        for sink in self.sinks:
            if sink.fatal_error is not None:
                return sink, sink.fatal_error
        return None

    def source_opened(self, source) -> None:
        for sink in list(self.sinks):
            self._safe(sink, "source_opened", source)

    def reconfigure(self, top_k: int, threshold: float) -> None:
        for sink in list(self.sinks):
            self._safe(sink, "reconfigure", top_k, threshold)

    def attach_control(self, control, cfg) -> None:
        for sink in list(self.sinks):
            sink.attach_control(control, cfg)
        self.wants_frames = any(s.wants_frames for s in self.sinks)  # MQTT's snapshot command wants them
        self.wants_overlay = any(s.wants_frames and s.wants_overlay for s in self.sinks)

    def enable_rules(self, switches: dict[str, bool]) -> None:
        for sink in list(self.sinks):
            self._safe(sink, "enable_rules", switches)

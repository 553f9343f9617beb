"""One camera's pipeline: its source, capture, regions, smoothing, live settings, outputs and event rules.

A run is built from parts that are shared and parts that belong to a camera.
:class:`SharedParts` are given to a camera, never built by it: the model
loader (and so the interpreters, loaded once per model), the run's counters,
the service notifier, how to stop the run, and the outputs every camera feeds.
:class:`CameraPipeline` builds the rest for its camera, in the start-up order
that gives each bad input its own exit code: the model's view (regions, class
rules, exit 2), the outputs (log folder 4, HTTP port 5), the source
(camera 3), then the :class:`edgecam.pipeline.loop.Pipeline`.

Several cameras run side by side in :mod:`edgecam.pipeline.cameras`, each a
CameraPipeline of its own with its own counters, on one inference stage per
model. The run serves every camera from one HTTP server
(:class:`edgecam.outputs.http_hub.HttpHub`) and one MQTT connection
(:class:`edgecam.outputs.mqtt_hub.MqttHub`): each camera's part of them is
passed to :meth:`CameraPipeline.open_outputs` (``sinks``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from edgecam import camera as camera_mod
from edgecam.camera.capture import DropPolicy
from edgecam.model import regions as regions_mod
from edgecam.native_stderr import captured
import edgecam.events  # noqa: F401 (registers the events output in edgecam.outputs.SINKS)
from edgecam.outputs import FanOut, build_sinks
from edgecam.outputs.base import RegionInfo
from edgecam.outputs.stdout import LabelChangesSink
from edgecam.pipeline.live import LiveHolder, LiveSettings
from edgecam.pipeline.loop import Pipeline, PipelineOptions
from edgecam.stats import Stats
from edgecam.outputs.teach import examples_dir
from edgecam.studio import live as studio_live
from edgecam.studio.core import Studio

logger = logging.getLogger(__name__)


def choose_policy(src_cfg, source) -> DropPolicy:
    """``auto``: cameras (and paced files, which behave as one) keep only the latest frame."""
    if src_cfg.policy != "auto":
        return DropPolicy(src_cfg.policy)
    return DropPolicy.LATEST if (source.live or source.realtime or src_cfg.realtime) else DropPolicy.EVERY_FRAME


@dataclass(frozen=True)
class SharedParts:
    """What every camera of a run shares, passed in.

    ``load(model_section, camera=False)``: the loaded classifier for a model
    section (retried while the network comes up under systemd). ``stats``: the
    run's counters. ``notifier``: sd_notify (a camera that classifies, the AI
    Camera, pings it while its firmware loads). ``on_quit``: stops the run (the
    window's q key). ``sinks``: outputs fed by every camera, besides its own.
    ``shared_outputs``: what this camera's outputs share with other cameras', by
    output key (see :class:`edgecam.outputs.base.SinkContext`).
    """

    load: Callable
    stats: Stats
    notifier: object
    on_quit: Callable[[], None]
    sinks: tuple = ()
    shared_outputs: Mapping[str, object] | None = None
    #: starts the run again in this process (:func:`edgecam.pipeline.app.run_restarting`), saying why; None:
    #: a change that needs it waits for the next start
    on_restart: Callable[[str], None] | None = None


class CameraPipeline:
    """Everything of one camera, built in steps; :attr:`pipeline` runs it.

    Built: the model's view of the camera (the whole picture's classifier,
    or the regions and their tracker) and the :attr:`live` settings. Then
    :meth:`open_outputs`, :meth:`open_source` and :meth:`build_pipeline`, in
    that order; :meth:`close` undoes what was opened when a later step fails.
    """

    def __init__(self, cfg, shared: SharedParts, name: str = "main", served: bool | None = None, control=None):
        """``name``: the camera's (its drawn regions and review queue are kept under it); ``served``: whether
        its page is served (None: ``http.enabled``; a run of several cameras serves them from its hub);
        ``control``: the camera's :class:`edgecam.control.live.Control` (commands; None: none)."""
        self.control = control
        inference = control.store.inference if control is not None else True
        self.cfg = cfg
        self.shared = shared
        self.name = name
        self.tracker = None
        self.region_info: tuple = ()
        #: with the HTTP output: teaching from its page (edgecam.studio; regions drawn there, heads taught)
        served = cfg.http.enabled if served is None else served
        self.studio = Studio(cfg, name, examples_dir(cfg), self.request_reload) if served else None
        self.classifier = self._load_model()
        labels = None if self.tracker is not None else tuple(self.classifier.labels)
        self.live = LiveHolder(LiveSettings.from_config(cfg, labels, inference))
        self.outputs: FanOut | None = None
        self.source = None
        self.source_note: str | None = None
        self.policy: DropPolicy | None = None
        self.pipeline: Pipeline | None = None
        self._reopen = None
        self.taught_pending = False  # the page asked for a reload (request_reload) that has not run yet

    def _load_model(self):
        """The whole picture's classifier, or the regions' (each box classified on its own; docs/custom-states.md)."""
        cfg, load = self.cfg, self.shared.load
        follow = cfg.smoothing.window if cfg.smoothing.mode == "ema" else 1
        drawn = studio_live.drawn_regions(self.studio, follow) if self.studio is not None else []
        if not cfg.regions and not drawn:
            return load(cfg.model, camera=cfg.source.type in ("auto", "picamera2"))
        built = (regions_mod.build(cfg, load) if cfg.regions else []) + drawn
        if self.studio is not None:
            self.studio.live = {r.name: r for r in built}
        self.tracker = regions_mod.RegionTracker(built, dataclasses.replace(cfg.smoothing))
        self.region_info = tuple(RegionInfo(r.name, r.box, r.labels, r.cfg.on_label) for r in built)
        return regions_mod.RegionClassifier(built, "+".join(dict.fromkeys(r.classifier.name for r in built)))

    @property
    def rules(self):
        """The whole picture's class rules (model.allow / deny / thresholds) now, or None."""
        return self.live.settings.rules

    def classifiers(self) -> list:
        """The classifiers this camera uses (the regions' models, or the one for the whole picture)."""
        if self.tracker is not None:
            return list({id(r.classifier): r.classifier for r in self.tracker.regions.values()}.values())
        return [self.classifier]

    def open_outputs(self, display: bool, changes_to=None, name: str | None = None, sinks: tuple = ()) -> FanOut:
        """The camera's outputs (window, log, record, HTTP, MQTT, events) and the shared ones, started.

        ``changes_to``: a text stream that gets one line per label change when
        no other output is configured, so a headless run still shows what it sees.
        ``name``: the camera's name in a run of several (its outputs say which camera).
        ``sinks``: more outputs of this camera, built by the run once its regions are known
        (:attr:`region_info`): its part of the run's HTTP hub and MQTT connection; like the shared ones,
        they are told of the others (the events mount their pages on the hub's camera).
        """
        cfg, shared = self.cfg, self.shared
        sinks = build_sinks(cfg, shared.stats, shared.on_quit, display, cfg.source.fps, regions=self.region_info,
                            labels=() if self.tracker is not None else tuple(self.classifier.labels), camera=name,
                            shared_outputs=shared.shared_outputs, extra=tuple(shared.sinks) + tuple(sinks),
                            model=getattr(self.classifier, "name", None))
        if not sinks and changes_to is not None:
            logger.info("no output configured (no window, --log, HTTP or MQTT): "
                        "printing each label change to stdout")
            sinks.append(LabelChangesSink(changes_to, camera=name))
        self.outputs = FanOut(sinks, shared.stats)
        if self.studio is not None:
            for sink in sinks:
                if hasattr(sink, "attach_studio"):
                    sink.attach_studio(self.studio)
        if self.control is not None:
            self.outputs.attach_control(self.control, cfg)  # before start: commands from the first connect
        self.outputs.start()
        return self.outputs

    def request_restart(self, reason: str) -> bool:
        """Ask the run to start again in this process (a change its parts cannot take live); whether it will."""
        if self.shared.on_restart is None:
            return False
        self.shared.on_restart(reason)
        return True

    def request_reload(self) -> None:
        """Ask the output loop to reload (what SIGHUP does): the page changed a region or a head."""
        self.taught_pending = True
        if self.pipeline is not None:
            self.pipeline.reload_requested = True

    def reload_taught(self) -> None:
        """In the output loop, on a reload: the regions drawn on the page and the heads in use, applied."""
        self.taught_pending = False
        if self.studio is not None and self.pipeline is not None:
            studio_live.apply(self.studio, self)

    def set_region_info(self, info: tuple) -> None:
        """The regions a reload left, for the outputs that list them (the page's crops and buttons)."""
        self.region_info = info
        for sink in self.outputs.sinks if self.outputs is not None else ():
            teacher = getattr(sink, "teacher", None)
            if teacher is not None:
                teacher.regions = {r.name: r for r in info}

    def _open(self):
        """The configured source, opened (again, on a reconnect)."""
        cfg = self.cfg
        own_source = getattr(self.classifier, "open_source", None)  # a camera that classifies (AI Camera)
        with captured("source"):  # libcamera's and FFmpeg's own lines: DEBUG log, not the terminal
            if own_source is not None:
                return own_source(cfg.source, notifier=self.shared.notifier)
            # the ISP scales to where the crop is the model's size
            return camera_mod.open_source(cfg.source, self.classifier.view_size, model_dir=cfg.model.dir)

    def open_source(self, demo_fallback: bool = False, on_source_note=None):
        """Open the source; with ``demo_fallback`` and ``source: auto``, the demo when no camera is found.

        The fallback is for the first open only (an interactive first run):
        a reconnect never falls back. :attr:`source_note` then says which
        source was taken, and ``on_source_note`` gets it as soon as it is known.
        """
        cfg = self.cfg
        if demo_fallback and cfg.source.type == "auto" and getattr(self.classifier, "open_source", None) is None:
            with captured("source"):  # OpenCV's "Camera index out of range" while auto probes
                source, self.source_note = camera_mod.open_camera_or_demo(
                    cfg.source, self.classifier.view_size, model_dir=cfg.model.dir)
            if on_source_note is not None:
                on_source_note(self.source_note)
        else:
            source = self._open()
        self.source = source
        self.outputs.source_opened(source)
        self._reopen = self._open if (source.live and cfg.source.reconnect) else None
        self.policy = choose_policy(cfg.source, source)
        return source

    def build_pipeline(self, plan=None, *, timings: bool = False, tickers=None, stage=None,
                       name: str = "main") -> Pipeline:
        """The pipeline of this camera; ``plan``: the interpreter layout the run decided (None: as loaded).

        ``stage``: with several cameras, the run's :class:`edgecam.model.scheduler.SharedStage` for this
        camera's model; the camera's frames go to its lane ``name`` there.
        """
        src = self.cfg.source
        options = PipelineOptions(policy=self.policy, overlay=self.cfg.display.overlay,
                                  reconnect_max_s=src.reconnect_max_s, stall_timeout_s=src.timeout_s,
                                  timings=timings)
        self.pipeline = Pipeline(self.classifier, self.source, self.outputs, options, live=self.live,
                                 stats=self.shared.stats, reopen=self._reopen, plan=plan, regions=self.tracker,
                                 tickers=tickers, stage=stage, camera=name)
        # A reload applies what the page taught; a run's own reload (App.reload) calls reload_taught too.
        self.pipeline.on_reload = self.reload_taught
        return self.pipeline

    def apply(self, settings: LiveSettings) -> None:
        """New live settings (a reload), for every reader in one step.

        Called from the output loop: the swap and the sinks' copies change
        between two results, so no result or frame is handled with half of them.
        """
        self.live.swap(settings)
        if self.outputs is not None:
            self.outputs.reconfigure(settings.top_k, settings.threshold)  # log, HTTP, MQTT list labels

    def close(self) -> None:
        """Close what was opened (the outputs) when start-up fails after them."""
        if self.outputs is not None:
            self.outputs.close()
        if self.studio is not None:
            self.studio.close()


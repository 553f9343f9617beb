"""Builds a pipeline from a :class:`edgecam.config.schema.Config` and runs it with signal handling.

Start-up order is chosen so that bad input fails fast with its own exit code
and nothing half-opened is left behind: config (2) -> model (2) -> outputs
(log folder 4, HTTP port 5) -> source (camera 3).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from pathlib import Path

from edgecam.config import schema as config_mod
from edgecam.camera.capture import DropPolicy
from edgecam.errors import EdgecamError
from edgecam.native_stderr import captured
from edgecam.stats import SourceState

logger = logging.getLogger(__name__)


class StartupStopped(BaseException):
    """SIGTERM or SIGINT came while edgecam was starting (loading the model, opening the camera).

    A BaseException, like KeyboardInterrupt, so that nothing on the way
    swallows it; everything already opened is closed as it unwinds.
    """


@contextlib.contextmanager
def startup_signals():
    """Until :meth:`App.run` takes over: SIGTERM/SIGINT stop start-up cleanly (exit 0), SIGHUP waits.

    Without this, SIGTERM during a model download or load killed the process
    (exit 143) and SIGHUP (``systemctl reload``) did too. Yields a dict whose
    ``"hup"`` says a reload was asked for meanwhile; set ``"starting"`` to
    False once the pipeline runs (later signals are the pipeline's).
    """
    state = {"hup": False, "starting": True}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def on_stop(signum, _frame):
        if state["starting"]:
            raise StartupStopped(signal.Signals(signum).name)

    def on_hup(_signum, _frame):
        state["hup"] = True

    previous = {sig: signal.signal(sig, handler) for sig, handler in
                ((signal.SIGTERM, on_stop), (signal.SIGINT, on_stop), (signal.SIGHUP, on_hup))}
    try:
        yield state
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def choose_policy(src_cfg, source) -> DropPolicy:
    """``auto``: cameras (and paced files, which behave as one) keep only the latest frame."""
    if src_cfg.policy != "auto":
        return DropPolicy(src_cfg.policy)
    return DropPolicy.LATEST if (source.live or source.realtime or src_cfg.realtime) else DropPolicy.EVERY_FRAME


def _write_dirs(cfg) -> list[str]:
    """The folders edgecam writes to (the log's, the events'): their free space is watched."""
    out = [str(Path(cfg.log.path).parent)] if cfg.log.path else []
    if cfg.events.rules:
        from edgecam.events.history import default_dir

        out.append(str(default_dir(cfg)))
    return out


def want_display(mode: str) -> bool:
    if mode == "none":
        return False
    from edgecam.outputs.display import display_available

    available = display_available()
    if mode == "window" and not available:
        raise EdgecamError(
            "display window: no display here (DISPLAY is not set or its X server cannot be reached, "
            "or OpenCV was built without GUI); "
            "use --display none, or run on the desktop", exit_code=4)
    return available


class App:
    """One run of ``edgecam run``: owns the pipeline, the signals and config reloads."""

    def __init__(self, cfg: config_mod.Config, *, extra_sinks=None, tickers=None, timings: bool = False,
                 display_override: bool | None = None, overrides: dict | None = None, changes_to=None,
                 demo_fallback: bool = False, on_source_note=None):
        """``changes_to``: a text stream (the CLI's stdout) that gets one line per
        label change when no other output is configured, so a headless run with
        no window, log, HTTP or MQTT still shows what it sees.

        ``demo_fallback``: with ``source: auto``, play the demo when no camera is
        found at start (an interactive first run: ``make run``); :attr:`source_note`
        then says which source was taken and how to choose one, and
        ``on_source_note`` (the CLI's printer) gets it as soon as it is known."""
        from edgecam.measure import calibration
        from edgecam.model.backends import load_classifier
        from edgecam.model.classifier import Classifier
        import edgecam.events  # noqa: F401 (registers the events output in edgecam.outputs.SINKS)
        from edgecam.outputs import FanOut, build_sinks
        from edgecam.camera import open_camera_or_demo, open_source
        from edgecam.stats import Stats
        from edgecam.pipeline.loop import Pipeline

        from edgecam.service.notify import WatchdogGate
        from edgecam.service.retry import retry_transient

        import cv2

        # The pipeline's own threads give the parallelism; OpenCV's worker pool
        # on top only adds hand-offs (measured: 0.4 ms of CPU per frame on 2 cores).
        cv2.setNumThreads(1)
        self.cfg = cfg
        # The command-line flags cfg was built with: a reload re-applies them,
        # else every SIGHUP would see --log, --display... as changed keys.
        self.overrides = dict(overrides or {})
        self.stats = Stats()
        # sd_notify: silent unless systemd gave us $NOTIFY_SOCKET.
        self.watchdog = WatchdogGate()
        # A model still to download may meet a network that is not up yet:
        # under systemd that is retried with back-off (edgecam/service/retry.py).
        def load(model_cfg, camera=False):
            return retry_transient(lambda: load_classifier(model_cfg, camera=camera), self.watchdog.notifier,
                                   "model download")

        self.tracker = None
        region_info: tuple = ()
        if cfg.regions:
            # Regions: each box classified on its own; the whole picture is not (docs/custom-states.md, "Regions").
            from edgecam.model import regions as regions_mod
            from edgecam.outputs.base import RegionInfo

            built = regions_mod.build(cfg, load)
            self.classifier = regions_mod.RegionClassifier(built, "+".join(dict.fromkeys(
                r.classifier.name for r in built)))
            self.tracker = regions_mod.RegionTracker(built, cfg.smoothing)
            region_info = tuple(RegionInfo(r.name, r.box, r.labels, r.cfg.on_label) for r in built)
        else:
            self.classifier = load(cfg.model, camera=cfg.source.type in ("auto", "picamera2"))
        self.rules = self._rules(cfg)
        display = want_display(cfg.display.mode) if display_override is None else display_override
        self.pipeline = None
        self.plan = None
        self.source_note: str | None = None
        sinks = build_sinks(cfg, self.stats, self._quit, display, cfg.source.fps, regions=region_info,
                            labels=() if cfg.regions else tuple(self.classifier.labels)) + list(extra_sinks or [])
        if not sinks and changes_to is not None:
            from edgecam.outputs.stdout import LabelChangesSink

            logger.info("no output configured (no window, --log, HTTP or MQTT): "
                        "printing each label change to stdout")
            sinks.append(LabelChangesSink(changes_to))
        self.outputs = FanOut(sinks, self.stats)
        self.outputs.start()
        try:
            size = self.classifier.view_size  # the ISP scales to where the crop is the model's size

            own_source = getattr(self.classifier, "open_source", None)  # a camera that classifies (AI Camera)

            def opened():
                with captured("source"):  # libcamera's and FFmpeg's own lines: DEBUG log, not the terminal
                    if own_source is not None:
                        return own_source(cfg.source, notifier=self.watchdog.notifier)
                    return open_source(cfg.source, size, model_dir=cfg.model.dir)

            if demo_fallback and cfg.source.type == "auto" and own_source is None:  # the first open only: a reconnect never falls back
                with captured("source"):  # OpenCV's "Camera index out of range" while auto probes
                    source, self.source_note = open_camera_or_demo(cfg.source, size, model_dir=cfg.model.dir)
                if on_source_note is not None:
                    on_source_note(self.source_note)
            else:
                source = opened()
            self.outputs.source_opened(source)
            reopen = opened if (source.live and cfg.source.reconnect) else None
            policy = choose_policy(cfg.source, source)
            # How many interpreters and threads: as configured, cached for this machine, or measured in the run.
            self.plan = calibration.plan(cfg.model, self.classifier, policy, source.fps) \
                if isinstance(self.classifier, Classifier) and self.classifier.backend == "cpu" else None
            self.pipeline = Pipeline(
                self.classifier, source, self.outputs,
                policy=policy, smoothing=cfg.smoothing,
                top_k=cfg.model.top_k, threshold=cfg.model.threshold, overlay=cfg.display.overlay,
                reopen=reopen, reconnect_max_s=cfg.source.reconnect_max_s, stall_timeout_s=cfg.source.timeout_s,
                stats=self.stats, timings=timings, tickers=tickers,
                layout=self.plan.layout if self.plan else None,
                calibration=self.plan.calibration if self.plan else None, regions=self.tracker,
                rules=self.rules,
            )
        except BaseException:
            self.outputs.close()
            raise
        self.pipeline.on_reload = self.reload
        self.pipeline.tickers.append(self._systemd_tick)
        # The board: temperature, throttling, memory, disk (edgecam.health; docs/pi-health.md).
        from edgecam.health.monitor import HealthMonitor

        self.health = HealthMonitor.from_config(cfg, disk_paths=_write_dirs(cfg),
                                                rate=lambda: self.stats.inference_rate.rate())
        self.pipeline.work_limit = self.health.governor
        self.stats.metric_sources.append(self.health.metrics)
        self._health_seq = 0
        self.pipeline.tickers.append(self._health_tick)
        logger.info("running %s on %s (%s policy)", self.classifier.name, source.name, self.pipeline.policy)

    def _rules(self, cfg):
        """model.allow / deny / thresholds for the whole picture (regions take theirs in regions.build)."""
        if cfg.regions:
            return None
        from edgecam.errors import ConfigError
        from edgecam.model.regions import rule_problems
        from edgecam.model.rules import ClassRules

        problems = rule_problems(cfg, lambda m: self.classifier.labels)  # what check-config checks too
        if problems:
            raise ConfigError(problems, cfg.path)
        m = cfg.model
        return ClassRules.build(self.classifier.labels, m.allow, m.deny, m.thresholds, m.threshold)[0]

    def _systemd_tick(self, pipeline, now: float) -> None:
        """READY=1 after the first result; WATCHDOG=1 only while frames flow; STATUS= with fps and label."""
        st = self.stats
        if st.frames_inferred:
            self.watchdog.first_result()
        flowing = st.flowing(self.cfg.source.timeout_s, now)
        if st.source_state == SourceState.RUNNING and st.frames_inferred and st.region_states:
            text = f"{st.capture_rate.rate(now):.1f} fps, " + ", ".join(
                f"{name} {label}" for name, (label, _) in st.region_states.items())
        elif st.source_state == SourceState.RUNNING and st.frames_inferred:
            text = f"{st.inference_rate.rate(now):.1f} fps, {st.current_label.split(',')[0]} {st.current_score:.0%}"
        else:
            text = f"source {st.source_state}, {st.reconnects} reconnect(s)"
        problem = self.health.status_problem()  # only when something is wrong: UNDER-VOLTAGE, throttled...
        if problem:
            text += f" — {problem}"
        self.watchdog.tick(now, flowing, text)

    def _health_tick(self, pipeline, now: float) -> None:
        """A new reading of the board goes to the outputs (MQTT), from this loop as every other call."""
        if self.health.seq != self._health_seq and self.health.latest is not None:
            self._health_seq = self.health.seq
            self.outputs.on_health(self.health.latest)

    def _quit(self) -> None:
        if self.pipeline is not None:
            self.pipeline.stop()

    def reload(self) -> None:
        """SIGHUP: re-read the config file; apply what can change live, name what needs a restart."""
        self.watchdog.notifier.reloading()
        try:
            self._reload()
        finally:
            self.watchdog.reloaded()

    def _classifiers(self) -> list:
        """The classifiers the run uses (the regions' models, or the one for the whole picture)."""
        if self.tracker is not None:
            return list({id(r.classifier): r.classifier for r in self.tracker.regions.values()}.values())
        return [self.classifier]

    def _reload_heads(self) -> None:
        """Custom models learned again since they were loaded: the new head, without a restart."""
        from edgecam.model import custom_models

        for clf in self._classifiers():
            path = getattr(clf, "custom_path", None)
            if path is None:
                continue
            try:
                new = custom_models.load(path)
            except EdgecamError as e:
                logger.error("reload: %s; keeping the running head of %s", e.message, clf.name)
                continue
            old = clf.custom
            if new.meta() == old.meta() and all(
                    (new.head.arrays[k] == old.head.arrays.get(k)).all() for k in new.head.arrays):
                continue
            if (new.base, new.base_sha256) != (old.base, old.base_sha256):
                logger.error("reload: %s was learned again on another base model (%s); that needs a restart "
                             "(systemctl restart edgecam); keeping the running head", path, new.base)
                continue
            clf.swap_head(new.head)
            clf.custom = new
            logger.warning("reload: %s: new head from %s (%s: %s)", clf.name, path, new.head.method,
                           ", ".join(new.labels))

    def _reload(self) -> None:
        self._reload_heads()
        path = self.cfg.path
        if not path:
            logger.warning("reload: no config file was given, nothing to reload")
            return
        try:
            new = config_mod.apply_overrides(config_mod.load(path), self.overrides)
        except EdgecamError as e:
            logger.error("reload: %s; keeping the running config", e.message.replace("\n", " "))
            return
        p = self.pipeline
        live = {"model.top_k", "model.threshold", "smoothing", "log_level"}
        old_d, new_d = config_mod.to_dict(self.cfg), config_mod.to_dict(new)
        changed = [f"{s}.{k}" for s in old_d if isinstance(old_d[s], dict)
                   for k in old_d[s] if old_d[s][k] != new_d[s][k]]
        if old_d["log_level"] != new_d["log_level"]:
            changed.append("log_level")
        need_restart = [k for k in changed if k not in live and not k.startswith("smoothing.")]
        p.top_k, p.threshold = new.model.top_k, new.model.threshold
        self.outputs.reconfigure(new.model.top_k, new.model.threshold)  # log, HTTP, MQTT list labels
        if new.smoothing != self.cfg.smoothing:
            from edgecam.model.smoothing import Smoother

            p.smoother = Smoother(new.smoothing, new.model.threshold, p.rules.floors if p.rules else None)
        logging.getLogger().setLevel(new.log_level)
        applied = [k for k in changed if k not in need_restart]
        self.cfg.model.top_k, self.cfg.model.threshold = new.model.top_k, new.model.threshold
        self.cfg.smoothing, self.cfg.log_level = new.smoothing, new.log_level
        logger.warning("reload: applied %s", ", ".join(applied) or "nothing (no live-changeable key changed)")
        if need_restart:
            logger.warning("reload: %s changed but need a restart (systemctl restart edgecam)", ", ".join(need_restart))

    def run(self) -> int:
        """Run with SIGTERM/SIGINT/SIGHUP handled; returns the exit code."""
        p = self.pipeline
        previous = {}

        def on_stop(signum, _frame):
            logger.info("%s received, stopping", signal.Signals(signum).name)
            p.stop()

        def on_hup(_signum, _frame):
            p.reload_requested = True  # done by the output loop, not in the handler

        if threading.current_thread() is threading.main_thread():
            for sig, handler in ((signal.SIGTERM, on_stop), (signal.SIGINT, on_stop), (signal.SIGHUP, on_hup)):
                previous[sig] = signal.signal(sig, handler)
        try:
            self.health.start()
            code = p.run()
            self.watchdog.stopping()
            return code
        finally:
            self.health.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

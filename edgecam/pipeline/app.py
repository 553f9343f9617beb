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
from collections.abc import Callable
from pathlib import Path

import cv2

from edgecam.config import schema as config_mod
from edgecam.config.cameras import MAIN, camera_configs
from edgecam.control.live import Control
from edgecam.errors import ConfigError, EdgecamError
from edgecam.health.monitor import HealthMonitor
from edgecam.model.calibration import decide_layout
from edgecam.model import backends, custom_models
from edgecam.fleet.node import RunCamera, start_node
from edgecam.outputs.mqtt import MqttSink
from edgecam.pipeline.camera import CameraPipeline, SharedParts
from edgecam.pipeline.model_switch import command_model
from edgecam.pipeline.live import apply_config, changed_keys  # noqa: F401 (changed_keys: app's, as before)
from edgecam.pipeline.model_swap import swap_learned
from edgecam.service.notify import WatchdogGate
from edgecam.service.retry import retry_transient
from edgecam.stats import SourceState, Stats

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


def run_restarting(build: Callable[[], object], again: Callable[[], object] | None = None, first=None) -> int:
    """Run the app ``build()`` makes (``first``: one already built) until it ends without asking to start again.

    A change the running parts cannot take in place (the first region drawn on a camera that classified the
    whole picture, a model its regions or shared stage must be built for) ends the run with
    :attr:`App.restart_reason` set; the next run is built by ``again`` (default ``build``) the way a start
    builds it, in this process: systemd sees no restart, the page comes back on the same port. Each build
    runs under :func:`startup_signals` (SIGTERM during it: exit 0; SIGHUP: a reload once it runs).
    """
    app, make = first, build
    while True:
        if app is None:
            with startup_signals() as early:
                try:
                    app = make()
                except StartupStopped as stopped:
                    logger.info("%s received during start-up, stopping", stopped)
                    return 0
                if early["hup"]:  # systemctl reload while starting: done once it runs
                    pipeline = getattr(app, "pipeline", None)
                    if pipeline is not None:
                        pipeline.reload_requested = True  # by the output loop
                    else:
                        app.reload()
                early["starting"] = False
        code = app.run()
        reason = getattr(app, "restart_reason", None)
        if reason is None:
            return code
        logger.warning("starting again: %s", reason)
        app, make = None, again or build


def write_dirs(cfg) -> list[str]:
    """The folders edgecam writes to (the log's, the events'): their free space is watched."""
    out = [str(Path(cfg.log.path).parent)] if cfg.log.path else []
    if cfg.events.rules:
        # Here: importing the events' history (sqlite3) costs about 1 MB of RSS that a run
        # without event rules never needs (resource.getrusage, AMD EPYC).
        from edgecam.events.history import default_dir

        out.append(str(default_dir(cfg)))
    return out


def want_display(mode: str) -> bool:
    if mode == "none":
        return False
    # Here: only when a window may be wanted (a service runs with --display none).
    from edgecam.outputs.display import display_available

    available = display_available()
    if mode == "window" and not available:
        raise EdgecamError(
            "display window: no display here (DISPLAY is not set or its X server cannot be reached, "
            "or OpenCV was built without GUI); "
            "use --display none, or run on the desktop", exit_code=4)
    return available


def one_camera(cfg: config_mod.Config) -> config_mod.Config:
    """The config of the one camera an :class:`App` runs: ``cfg`` itself, or that of its only camera under ``cameras:``.

    Several cameras are run by :class:`edgecam.pipeline.cameras.CamerasApp` (``edgecam run`` chooses).
    """
    cameras = camera_configs(cfg)
    if len(cameras) > 1:
        raise ConfigError(f"cameras: {len(cameras)} cameras configured ({', '.join(c.name for c in cameras)}); "
                          "this command runs one camera: give it one --source, or use edgecam run")
    return cameras[0].config


class App:
    """One run of ``edgecam run``: owns the camera's pipeline, the signals, config reloads and the service's ticks.

    Built in steps, each a method: the shared parts (counters, sd_notify, the
    model loader), the camera (model, class rules, live settings), its
    outputs, its source, the interpreter layout, the pipeline, then the
    service (reload, systemd) and health hooks.
    """

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
        cfg = one_camera(cfg)  # before anything opens
        # What commands set (edgecam.control), laid over the file's settings; the file wins for a key it changed.
        self.control = Control(cfg, MAIN)
        cfg = self.control.effective()
        # The pipeline's own threads give the parallelism; OpenCV's worker pool
        # on top only adds hand-offs (measured: 0.4 ms of CPU per frame on 2 cores).
        cv2.setNumThreads(1)
        self.cfg = cfg
        # The command-line flags cfg was built with: a reload re-applies them,
        # else every SIGHUP would see --log, --display... as changed keys.
        self.overrides = dict(overrides or {})
        self.restart_reason: str | None = None  # set: the run ends to start again (request_restart)
        self._hup = False  # a SIGHUP came (App.reload then re-reads the config, not only what the page taught)
        self.pipeline = None
        self.plan = None
        self.fleet = None  # the node info (edgecam fleet), while running with MQTT
        self.camera = CameraPipeline(cfg, self._shared_parts(extra_sinks), control=self.control)
        display = want_display(cfg.display.mode) if display_override is None else display_override
        self.camera.open_outputs(display, changes_to)
        try:
            source = self.camera.open_source(demo_fallback, on_source_note)
            self.plan = self._interpreters(source)
            self.pipeline = self.camera.build_pipeline(self.plan, timings=timings, tickers=tickers)
        except BaseException:
            self.camera.close()
            raise
        self._hook_service()
        self._hook_health()
        logger.info("running %s on %s (%s policy)", self.classifier.name, source.name, self.pipeline.policy)

    def _shared_parts(self, extra_sinks) -> SharedParts:
        """The run's counters, sd_notify and model loader: what the camera is given."""
        self.stats = Stats()
        # sd_notify: silent unless systemd gave us $NOTIFY_SOCKET.
        self.watchdog = WatchdogGate()

        # A model still to download may meet a network that is not up yet:
        # under systemd that is retried with back-off (edgecam/service/retry.py).
        def load(model_cfg, camera=False):
            return retry_transient(lambda: backends.load_classifier(model_cfg, camera=camera),
                                   self.watchdog.notifier, "model download")

        return SharedParts(load=load, stats=self.stats, notifier=self.watchdog.notifier, on_quit=self._quit,
                           sinks=tuple(extra_sinks or ()), on_restart=self.request_restart)

    def _interpreters(self, source):
        """The interpreter layout, decided in one place, and each model's interpreter built once, with it.

        A CPU model of the whole picture gets the plan's threads (configured,
        cached for this machine, or the first a calibration measures); any
        other (regions, a model whose interpreter is built at load) keeps its own.
        """
        plan = decide_layout(self.cfg.model, self.classifier, self.camera.policy, source.fps)
        for clf in self.camera.classifiers():
            build = getattr(clf, "build", None)  # accelerators' classifiers are ready at load
            if build is not None:
                build(plan.layout.threads if plan is not None and clf is self.classifier else None)
        return plan

    def _hook_service(self) -> None:
        """SIGHUP reloads from the output loop; sd_notify's READY, WATCHDOG and STATUS from its ticks."""
        self.pipeline.on_reload = self._on_reload
        self.control.wake = self._wake
        self.pipeline.tickers.append(self._systemd_tick)

    def _hook_health(self) -> None:
        """The board: temperature, throttling, memory, disk (edgecam.health; docs/pi-health.md)."""
        self.health = HealthMonitor.from_config(self.cfg, disk_paths=write_dirs(self.cfg),
                                                rate=lambda: self.stats.inference_rate.rate())
        self.pipeline.work_limit = self.health.governor
        self.stats.metric_sources.append(self.health.metrics)
        self._health_seq = 0
        self.pipeline.tickers.append(self._health_tick)

    # What the camera holds, by the names the CLI, bench and tests use.
    @property
    def classifier(self):
        return self.camera.classifier

    @property
    def outputs(self):
        return self.camera.outputs

    @property
    def tracker(self):
        return self.camera.tracker

    @property
    def rules(self):
        return self.camera.rules

    @property
    def source_note(self) -> str | None:
        return self.camera.source_note

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

    def _start_fleet(self):
        """The node info on the MQTT output's connection (edgecam fleet; docs/fleet.md); None without MQTT."""
        hub = next((s.hub for s in self.outputs.sinks if isinstance(s, MqttSink)), None)
        me = RunCamera(None, self.control, lambda: self.classifier.name, self.stats)
        return start_node(hub, self.cfg, lambda: [me], lambda: self.health.latest)

    def _quit(self) -> None:
        if self.pipeline is not None:
            self.pipeline.stop()

    def request_restart(self, reason: str) -> None:
        """Any thread: end this run so that :func:`run_restarting` starts a new one (the config read again)."""
        self.restart_reason = reason
        self._quit()

    def reload(self, file: bool = True) -> None:
        """SIGHUP: re-read the config file (``file``); apply it and the commands waiting; name what needs a restart."""
        self.watchdog.notifier.reloading()
        try:
            self._reload(file)
        finally:
            self.watchdog.reloaded()

    def _reload_heads(self) -> None:
        """Custom models learned again since they were loaded: the new head, without a restart."""
        for clf in self.camera.classifiers():
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

    def _wake(self) -> None:
        """A command is waiting (any thread): the output loop applies it as a reload, without re-reading the file."""
        if self.pipeline is not None:
            self.pipeline.reload_requested = True

    def _on_reload(self) -> None:
        """From the output loop: a SIGHUP re-reads the file; commands and what the teach page saved do not."""
        hup, self._hup = self._hup, False
        taught = self.camera.taught_pending
        if taught and not hup:
            self.camera.reload_taught()  # the page's regions and heads, alone
            if not self.control.pending:
                return
        self.reload(file=hup or not (self.control.pending or taught))

    def _reload(self, file: bool = True) -> None:
        if file:
            self._reload_heads()
            self.camera.reload_taught()  # regions drawn and heads taught on the page
            path = self.cfg.path
            if not path:
                logger.warning("reload: no config file was given, nothing to reload")
            else:
                try:
                    self.control.file_cfg = one_camera(config_mod.apply_overrides(config_mod.load(path),
                                                                                  self.overrides))
                except EdgecamError as e:
                    logger.error("reload: %s; keeping the running config", e.message.replace("\n", " "))
        outcomes = self.control.drain()
        new = self.control.effective()  # the file's settings, the overrides that still hold laid over them
        swap_learned(self.camera, self.cfg, new)  # a learned model on the running base: its head, live (cheap)
        outcomes, new, restart = command_model(self.camera, self.plan, self.cfg, new, outcomes, self.control)
        # One new LiveSettings, swapped in at once: the class rules (allow, deny, thresholds) need a restart.
        applied, need_restart = apply_config(self.camera, self.cfg, new, self.control.store.inference)
        logging.getLogger().setLevel(new.log_level)
        self.cfg.log_level = new.log_level
        self.control.answer(outcomes)
        if restart:  # a model this camera takes by starting again (regions, the AI Camera): answered, then done
            self.request_restart(restart)
        if file or applied:
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
            self._hup = True
            p.reload_requested = True  # done by the output loop, not in the handler

        if threading.current_thread() is threading.main_thread():
            for sig, handler in ((signal.SIGTERM, on_stop), (signal.SIGINT, on_stop), (signal.SIGHUP, on_hup)):
                previous[sig] = signal.signal(sig, handler)
        try:
            self.health.start()
            self.fleet = self._start_fleet()
            code = p.run()
            self.watchdog.stopping()
            return code
        finally:
            self.health.stop()
            if self.fleet is not None:
                self.fleet.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

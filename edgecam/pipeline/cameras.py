"""A run of several cameras: one inference stage per model, a pipeline per camera, faults kept to their camera.

Each camera is a :class:`edgecam.pipeline.camera.CameraPipeline` of its own,
with its own counters, outputs and source. Cameras that classify the whole
picture with the same model share one loaded classifier and one
:class:`edgecam.model.scheduler.SharedStage` (fair turns between them; the
interpreter layout decided once, for the whole load). A camera with regions
keeps its own models and stage: its region classifiers are not shared with
another camera's thread.

Faults stay local: a camera that cannot open at start is logged and shown as
down while the others run (the run fails only when none opens); a camera
that stalls or vanishes later reconnects on its own schedule (its capture
thread). The systemd watchdog is kicked while at least one camera delivers,
and the status line gives every camera's rate ("3 cameras, 29.8/30.0/14.9 fps").

Events: each camera's rules are its own (its config's ``events.rules``), and
the cameras that keep their events in one folder share one history, lock and
/events view through an :class:`edgecam.events.hub.EventsHub`, built here
before the cameras and closed once every camera has ended.

HTTP: when the first camera's config turns it on, the run has one server for
all (:class:`edgecam.outputs.http_hub.HttpHub`, built from that ``http``
section): a grid of the cameras at ``/``, each camera's page at
``/camera/<name>/``. The cameras' own ``http`` sections are turned off, so
that no camera builds a server of its own.

MQTT is one connection for the run (:class:`edgecam.outputs.mqtt_hub.MqttHub`, built from the run's
``mqtt`` section): one availability topic and Last Will, and each camera an MQTT output on it that publishes
under ``<prefix>/<camera>/`` as a Home Assistant device of its own. The connection is closed (``offline``)
when the run ends.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from dataclasses import dataclass, field

import cv2

from edgecam.errors import EdgecamError
from edgecam.events import hub as events_hub
from edgecam.fleet.node import RunCamera, start_node
from edgecam.health.monitor import HealthMonitor
from edgecam.model import backends
from edgecam.model.calibration import decide_layout
from edgecam.model.scheduler import SharedStage
from edgecam.config import schema as config_mod
from edgecam.config.cameras import camera_configs
from edgecam.config.state import state_dir
from edgecam.control.live import Control
from edgecam.pipeline.app import write_dirs
from edgecam.pipeline.live import apply_config
from edgecam.pipeline.model_swap import swap_learned
from edgecam.pipeline.model_switch import command_model
from edgecam.outputs.mqtt import MqttSink
from edgecam.outputs.mqtt_hub import MqttHub
from edgecam.pipeline.camera import CameraPipeline, SharedParts
from edgecam.service.notify import WatchdogGate
from edgecam.service.retry import retry_transient
from edgecam.stats import SourceState, Stats

logger = logging.getLogger(__name__)

TICK_S = 0.1
MOSAIC_S = 1 / 30  # the mosaic window is redrawn this often


@dataclass
class Camera:
    """One camera of the run: its name, its parts, and why it is down when it could not start."""

    name: str
    cfg: object
    stats: Stats = field(default_factory=Stats)
    parts: CameraPipeline | None = None
    down: str | None = None  # why it could not start (one line)
    code: int | None = None  # its pipeline's exit code, once ended
    control: Control | None = None  # what commands set, over its config file's settings (edgecam.control)

    @property
    def pipeline(self):
        return None if self.parts is None else self.parts.pipeline


class CamerasApp:
    """``edgecam run`` with several cameras: build every camera, share the models, run until all end or a stop.

    ``cameras``: ``(name, Config)`` pairs, each a whole config for its camera.
    ``sinks_for``: ``name -> [Sink]``, extra outputs per camera (bench counts frames with one).
    ``display``: one window with a mosaic of the cameras (:mod:`edgecam.outputs.mosaic`).
    :attr:`hub`: the run's HTTP server (None without ``http.enabled`` in the first camera's config).
    ``mqtt``: the run's ``mqtt`` section (default: the first camera's); when enabled, the run's one
    connection (:attr:`mqtt_hub`) with each camera's MQTT output on it, instead of one per camera.
    """

    def __init__(self, cameras: list[tuple[str, object]], *, sinks_for=None, timings: bool = False,
                 changes_to=None, display: bool = False, mqtt=None, overrides: dict | None = None):
        cv2.setNumThreads(1)  # as App: the pipeline's threads give the parallelism
        # The command-line flags the configs were built with: a reload applies them again (as App's).
        self.overrides = dict(overrides or {})
        self._hup = False
        self.restart_reason: str | None = None  # set: the run ends to start again (request_restart)
        self.stop_event = threading.Event()
        self.watchdog = WatchdogGate()
        cameras = self._hubs(cameras, mqtt)
        controls = [Control(cfg, name) for name, cfg in cameras]
        self.cameras = [Camera(c.camera, c.effective(), control=c) for c in controls]
        sinks_for = self._window(display, sinks_for)
        self._classifiers: dict[tuple, object] = {}
        self.stages: list[SharedStage] = []
        self.events_hubs: dict[str, events_hub.EventsHub] = {}  # camera name -> its events folder's hub
        try:
            self.events_hubs = events_hub.EventsHub.for_cameras(cameras)
            if self.mqtt_hub is not None:
                self.mqtt_hub.start()  # connects in the background; a bad password file is bad input now
            for cam in self.cameras:
                self._build(cam, sinks_for(cam.name), changes_to)
            if self.mqtt_hub is not None:
                self.mqtt_hub.settled()  # every camera on it: the devices of cameras no longer configured go
            up = [cam for cam in self.cameras if cam.down is None]
            if not up:
                raise EdgecamError("cameras: none could start: " + "; ".join(
                    f"{cam.name}: {cam.down}" for cam in self.cameras), exit_code=3)
            if self.hub is not None:
                self.hub.start()  # a port in use: one NetworkError, exit code 5
            self._build_stages(up, timings)
            self._hook_health(up)
        except BaseException:
            self.close()
            raise
        for cam in up:
            logger.info("camera %s: %s on %s (%s policy)", cam.name, cam.parts.classifier.name,
                        cam.parts.source.name, cam.pipeline.policy)

    # -- building ---------------------------------------------------------------

    def _hubs(self, cameras: list[tuple[str, object]], mqtt) -> list[tuple[str, object]]:
        """The run's HTTP server and MQTT connection (each None when off); the cameras' configs without their own."""
        self.hub = _hub(cameras[0][1].http) if cameras else None
        if self.hub is not None:  # no camera serves HTTP itself: the hub serves them all
            cameras = [(name, dataclasses.replace(cfg, http=dataclasses.replace(cfg.http, enabled=False)))
                       for name, cfg in cameras]
        mqtt = mqtt if mqtt is not None else (cameras[0][1].mqtt if cameras else None)
        #: The run's MQTT connection (None without MQTT); each camera's own is switched off in its config.
        on = mqtt is not None and mqtt.enabled
        self.mqtt_hub = MqttHub(mqtt, state_dir=state_dir(cameras[0][1].state_dir)) if on else None
        return [(name, self._own_config(name, cfg)) for name, cfg in cameras]

    def _window(self, display: bool, sinks_for):
        """The mosaic window (with ``display``); returns ``sinks_for`` with each camera's tile added."""
        extra = sinks_for or (lambda _name: [])
        self.mosaic = None
        if not display:
            return extra
        # Here: only a desktop run draws a window.
        from edgecam.outputs.mosaic import Mosaic

        self.mosaic = Mosaic([cam.name for cam in self.cameras], self.cameras[0].cfg.display.title,
                             on_quit=self.stop, on_restart=self.stop)
        self.mosaic.start()
        return lambda name: [*extra(name), self.mosaic.tile(name)]

    def _own_config(self, name: str, cfg):
        """A camera's config as its pipeline takes it: with the run's MQTT connection, no connection of its own."""
        if self.mqtt_hub is None:
            return cfg
        if cfg.mqtt != self.mqtt_hub.cfg:
            logger.warning("camera %s: its own mqtt section is not used; the run has one MQTT connection", name)
        return dataclasses.replace(cfg, mqtt=dataclasses.replace(cfg.mqtt, enabled=False))

    def _load(self, cam: Camera):
        """The model loader of one camera: a whole-picture model is loaded once for every camera that uses it."""

        def load(model_cfg, camera=False):
            key = (repr(model_cfg), camera)
            if not cam.cfg.regions and key in self._classifiers:
                return self._classifiers[key]
            clf = retry_transient(lambda: backends.load_classifier(model_cfg, camera=camera),
                                  self.watchdog.notifier, "model download")
            # A sensor that classifies (the AI Camera) is its camera's own; regions' models run in their stage.
            if not cam.cfg.regions and getattr(clf, "open_source", None) is None:
                self._classifiers[key] = clf
            return clf

        return load

    def _build(self, cam: Camera, sinks, changes_to) -> None:
        """The camera's model view, outputs and source; a source that cannot open marks the camera down."""
        hub = self.events_hubs.get(cam.name)
        shared = SharedParts(load=self._load(cam), stats=cam.stats, notifier=self.watchdog.notifier,
                             on_quit=self.stop, on_restart=self.stop, sinks=tuple(sinks),
                             shared_outputs=None if hub is None else {events_hub.KEY: hub})
        cam.parts = CameraPipeline(cam.cfg, shared, name=cam.name, served=self.hub is not None, control=cam.control)
        served = () if self.hub is None else (
            self.hub.sink(cam.name, cam.cfg, cam.stats, regions=cam.parts.region_info),)
        if self.mqtt_hub is not None:
            served += (MqttSink.on_hub(self.mqtt_hub, cam.name, cam.cfg, cam.stats, cam.parts.region_info,
                                       model=cam.parts.classifier.name),)
        cam.parts.open_outputs(display=False, changes_to=changes_to, name=cam.name, sinks=served)
        try:
            cam.parts.open_source()
        except EdgecamError as e:
            cam.down = e.message
            logger.error("camera %s: %s; the other cameras go on without it", cam.name, e.message)
            cam.parts.close()
            if self.hub is not None:
                self.hub.mark_down(cam.name, e.message)

    def _build_stages(self, up: list[Camera], timings: bool) -> None:
        """One stage per classifier, its layout decided once for all the cameras it serves."""
        groups: dict[int, list[Camera]] = {}
        for cam in up:
            groups.setdefault(id(cam.parts.classifier), []).append(cam)
        for cams in groups.values():
            first = cams[0].parts
            clf = first.classifier
            holder: dict = {}  # the stage, made with the plan: the calibration counts its lanes' frames

            def offered(holder=holder) -> int:
                return sum(c.offered for c in holder["stage"].frames.counters().values())

            plan = decide_layout(cams[0].cfg.model, clf, first.policy, None, cameras=len(cams), offered=offered)
            for c in first.classifiers():
                build = getattr(c, "build", None)
                if build is not None:
                    build(plan.layout.threads if plan is not None and c is clf else None)
            stage = holder["stage"] = SharedStage(clf, self.stop_event, plan)
            self.stages.append(stage)
            for cam in cams:
                p = cam.parts.build_pipeline(plan, timings=timings, stage=stage, name=cam.name)
                p.on_reload = lambda cam=cam: self._apply(cam)  # a reload or a command, in its output loop
                cam.control.wake = lambda p=p: setattr(p, "reload_requested", True)

    def _hook_health(self, up: list[Camera]) -> None:
        """The board (edgecam.health): one monitor for the run; its governor limits every camera alike."""
        cfg = up[0].cfg
        dirs = sorted({d for cam in up for d in write_dirs(cam.cfg)})
        self.health = HealthMonitor.from_config(cfg, disk_paths=dirs, rate=lambda: sum(
            cam.stats.inference_rate.rate() for cam in up))
        self._health_seq = 0
        for cam in up:
            cam.pipeline.work_limit = self.health.governor
            cam.stats.metric_sources.append(self.health.metrics)

    def _health_tick(self) -> None:
        """A new reading of the board goes to every camera's outputs (MQTT says it once per connection)."""
        if self.health.seq != self._health_seq and self.health.latest is not None:
            self._health_seq = self.health.seq
            for cam in self.cameras:
                if cam.pipeline is not None:
                    cam.parts.outputs.on_health(self.health.latest)

    # -- running ----------------------------------------------------------------

    def stop(self, restart: str | None = None) -> None:
        """Stop every camera (safe from signal handlers and other threads); ``restart``: why the run is to start
        again, in this process (:func:`edgecam.pipeline.app.run_restarting`)."""
        self.restart_reason = restart or self.restart_reason
        self.stop_event.set()
        for cam in self.cameras:
            if cam.pipeline is not None:
                cam.pipeline.stop()

    def camera(self, name: str) -> Camera:
        """The camera of that name."""
        return next(cam for cam in self.cameras if cam.name == name)

    def run(self, on_tick=None) -> int:
        """Every camera's output loop in a thread of its own, the service's ticks here; returns the exit code.

        ``on_tick(now)``: called with the service's ticks, about every 0.1 s (bench samples staleness).
        """
        previous = {}
        if threading.current_thread() is threading.main_thread():
            def on_stop(signum, _frame):
                logger.info("%s received, stopping", signal.Signals(signum).name)
                self.stop()

            def on_hup(_signum, _frame):
                self._hup = True  # done between two ticks, not in the handler

            for sig, handler in ((signal.SIGTERM, on_stop), (signal.SIGINT, on_stop), (signal.SIGHUP, on_hup)):
                previous[sig] = signal.signal(sig, handler)
        threads = [threading.Thread(target=self._run_camera, args=(cam,), name=f"edgecam-camera-{cam.name}",
                                    daemon=True) for cam in self.cameras if cam.pipeline is not None]
        self.health.start()
        self.fleet = start_node(self.mqtt_hub, self.cameras[0].cfg, lambda: [
            RunCamera(cam.name, cam.control, lambda cam=cam: cam.parts.classifier.name, cam.stats)
            for cam in self.cameras if cam.pipeline is not None], lambda: self.health.latest)
        try:
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                now = time.monotonic()
                self._tick(now)
                self._health_tick()
                if self._hup:
                    self._hup = False
                    self.reload()
                if on_tick is not None:
                    on_tick(now)
                self._wait(threads, now + TICK_S)
            self.watchdog.stopping()
        finally:
            self.stop_event.set()
            self.health.stop()
            if self.fleet is not None:
                self.fleet.close()
            for stage in self.stages:
                stage.thread.join(2.0)
            if self.mosaic is not None:
                self.mosaic.close()
            if self.hub is not None:
                self.hub.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._close_events()  # after every camera's outputs: what they handed over is written
            if self.mqtt_hub is not None:
                self.mqtt_hub.close()  # what the cameras queued, then offline on the one availability topic
        return self.exit_code()

    def reload(self) -> None:
        """SIGHUP: re-read the config; each camera applies what can change live, from its own output loop.

        The cameras themselves (their names, sources, models) need a restart, as a
        single camera's source does; the log says which keys did not apply.
        """
        self.watchdog.notifier.reloading()
        try:
            self._reload()
        finally:
            self.watchdog.reloaded()

    def _reload(self) -> None:
        path = self.cameras[0].cfg.path
        if not path:
            logger.warning("reload: no config file was given, nothing to reload")
            return
        try:
            new = {c.name: c.config for c in camera_configs(
                config_mod.apply_overrides(config_mod.load(path), self.overrides))}
        except EdgecamError as e:
            logger.error("reload: %s; keeping the running config", e.message.replace("\n", " "))
            return
        if list(new) != [cam.name for cam in self.cameras]:
            logger.warning("reload: the cameras changed (%s -> %s); that needs a restart (systemctl restart "
                           "edgecam)", ", ".join(cam.name for cam in self.cameras), ", ".join(new))
            return
        for cam in self.cameras:
            if cam.pipeline is not None:
                cam.control.file_cfg = self._own_config(cam.name, new[cam.name])
                cam.pipeline.reload_requested = True

    def _apply(self, cam: Camera) -> None:
        """In the camera's output loop: the commands waiting, the file's settings and what the page taught."""
        taught_only = cam.parts.taught_pending and not cam.control.pending  # the page asked, nothing else
        outcomes = cam.control.drain()
        new = cam.control.effective()
        swap_learned(cam.parts, cam.cfg, new)  # a learned model on the running base: its head, live
        outcomes, new, restart = command_model(cam.parts, None, cam.cfg, new, outcomes, cam.control)
        applied, later = apply_config(cam.parts, cam.cfg, new, cam.control.store.inference)
        cam.control.answer(outcomes)
        cam.parts.reload_taught()
        if restart:  # a model its shared stage or its regions take by the run starting again: answered first
            self.stop(restart=restart)
        if applied or not taught_only:
            logger.warning("reload: camera %s: applied %s", cam.name, ", ".join(applied) or "nothing changed live")
        if later:
            logger.warning("reload: camera %s: %s changed but need a restart (systemctl restart edgecam)", cam.name,
                           ", ".join(later))

    def _wait(self, threads, until: float) -> None:
        """Until the next tick: join the cameras' threads, or show the mosaic at ~30 frames/s meanwhile."""
        while (left := until - time.monotonic()) > 0 and any(t.is_alive() for t in threads):
            if self.mosaic is not None:
                self.mosaic.show()
                time.sleep(min(left, MOSAIC_S))
            else:
                next(t for t in threads if t.is_alive()).join(left)

    def _run_camera(self, cam: Camera) -> None:
        try:
            cam.code = cam.pipeline.run()
        except BaseException as e:  # run() logs and returns; this is the last resort
            logger.exception("camera %s failed: %s", cam.name, e)
            cam.code = 1
        if cam.code:
            logger.error("camera %s ended with exit code %d", cam.name, cam.code)

    def exit_code(self) -> int:
        """The first camera's failure (in config order), else 0."""
        return next((cam.code for cam in self.cameras if cam.code), 0)

    def status_text(self, now: float) -> str:
        """One line for ``systemctl status``: every camera's rate, and which are down."""
        rates, ages, down = [], [], []
        for cam in self.cameras:
            if cam.pipeline is None:
                down.append(f"{cam.name} down ({cam.down})")
                continue
            st = cam.stats
            rates.append(f"{st.inference_rate.rate(now):.1f}")
            ages.append(f"{max(0.0, now - st.last_result_capture) * 1000:.0f}" if st.last_result_capture else "-")
            if st.source_state != SourceState.RUNNING:
                down.append(f"{cam.name} {st.source_state}")
        text = f"{len(self.cameras)} cameras, {'/'.join(rates)} fps, results {'/'.join(ages)} ms old"
        text += f"; {', '.join(down)}" if down else ""
        problem = self.health.status_problem() if getattr(self, "health", None) else None
        return text + (f" — {problem}" if problem else "")

    def _tick(self, now: float) -> None:
        """READY=1 after any camera's first result; WATCHDOG=1 while at least one camera delivers."""
        live = [cam for cam in self.cameras if cam.pipeline is not None]
        if any(cam.stats.frames_inferred for cam in live):
            self.watchdog.first_result()
        flowing = any(cam.stats.flowing(cam.cfg.source.timeout_s, now) for cam in live)
        self.watchdog.tick(now, flowing, self.status_text(now))

    def close(self) -> None:
        """Close what start-up opened (when it fails part way)."""
        for cam in self.cameras:
            if cam.parts is not None and cam.pipeline is None:
                cam.parts.close()
        if self.mosaic is not None:
            self.mosaic.close()
        if self.hub is not None:
            self.hub.close()
        if self.mqtt_hub is not None:
            self.mqtt_hub.close()
        self._close_events()

    def _close_events(self) -> None:
        for hub in {id(h): h for h in self.events_hubs.values()}.values():
            hub.close()


def _hub(http_cfg):
    """The run's HTTP hub, built from the first camera's ``http`` section; None when it is off."""
    if not http_cfg.enabled:
        return None
    # Here, not at the top: the HTTP server's modules cost ~9 MB of memory (ru_maxrss after the import, AMD
    # EPYC; see edgecam.events.sink), loaded only for a run that serves HTTP.
    from edgecam.outputs.http_hub import HttpHub

    return HttpHub(http_cfg)

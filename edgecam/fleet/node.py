"""The node's side of the fleet, on the run's one MQTT connection (:class:`edgecam.outputs.mqtt_hub.MqttHub`).

:class:`FleetNode` publishes the node info (``<prefix>/node``, retained: :mod:`edgecam.fleet.messages`) at each
connect, when a camera's model changes and every :data:`edgecam.fleet.messages.INFO_EVERY_S` seconds, from a
thread of its own (``edgecam-fleet``) that never touches the pipeline. With ``mqtt.commands: true`` it also
takes push requests (:class:`edgecam.fleet.receive.Receiver`).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from edgecam import __version__
from edgecam.fleet import messages as fm
from edgecam.fleet.model_files import ModelSums, model_path
from edgecam.fleet.receive import Receiver
from edgecam.fleet.switch import ControlSwitch, Switchable
from edgecam.outputs import mqtt_health
from edgecam.outputs.base import iso_time
from edgecam.outputs.mqtt_messages import Item, ItemKind
from edgecam.outputs.mqtt_state import Channel

logger = logging.getLogger(__name__)

FIRST_AGAIN_S = 5.0


@dataclass(frozen=True)
class CameraView:
    """One camera as the node info shows it: its name (None: the one camera of a run), model, counters."""

    name: str | None
    model: str
    stats: object = None  # edgecam.stats.Stats


def metrics_url(http_cfg, hostname: str) -> str:
    """The node's ``/metrics`` address when it serves HTTP, else ""."""
    if not http_cfg.enabled:
        return ""
    host = http_cfg.host if http_cfg.host not in ("0.0.0.0", "::", "") else hostname
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{http_cfg.port}/metrics"


class InfoChannel(Channel):
    """The node info on the hub: sent again at each connect (its birth) and when :meth:`publish` is given one."""

    def __init__(self, hub, names):
        super().__init__(hub, names)
        self.info: dict | None = None

    def discovery_configs(self) -> dict[str, dict]:
        return {}

    def birth_items(self) -> list[Item]:
        """(lock held) The newest info, unless one is queued."""
        queued = any(True for _ in self._queue)
        return [self._item()] if self.info is not None and not queued else []

    def _item(self) -> Item:
        return Item(ItemKind.RAW, (fm.topic(self.prefix, fm.INFO), json.dumps(self.info), True))

    def publish(self, info: dict) -> None:
        with self._cond:
            self.info = info
        self._enqueue(ItemKind.RAW, self._item().data)


class FleetNode:
    """The node info (and with ``mqtt.commands``, the push receiver) of one run.

    Args:
        hub: the run's MQTT connection.
        cfg: the run's config (``mqtt``, ``http``, ``model.dir``, ``state_dir``).
        cameras: callable giving the :class:`CameraView` of each camera now.
        health: callable giving the newest :class:`edgecam.health.board.BoardHealth`, or None.
        switch: ``switch(model_name)`` switches every camera to that model live (raises an EdgecamError when
            it cannot: the cameras keep theirs); None: this run cannot switch, it takes no push.
    """

    def __init__(self, hub, cfg, cameras, health=lambda: None, switch=None, every_s: float = fm.INFO_EVERY_S):
        self.hub, self.cfg, self.cameras, self.health = hub, cfg, cameras, health
        self.every_s = every_s
        self.channel = InfoChannel(hub, hub.names)
        self.sums = ModelSums()
        self.receiver = None
        if getattr(cfg.mqtt, "commands", False) and switch is not None:

            self.receiver = Receiver(self, switch)
        self._stop = threading.Event()
        self._poke = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_models: tuple = ()

    def info(self) -> dict:
        """The node info now (see :mod:`edgecam.fleet.messages`)."""

        names = self.hub.names
        cams = []
        for cam in self.cameras():
            fps = cam.stats.inference_rate.rate() if cam.stats is not None else None
            cams.append({"name": cam.name or "", "model": cam.model,
                         "model_sha256": self.sums.of(model_path(cam.model, self.cfg.model.dir)),
                         "fps": round(fps, 2) if fps is not None else None})
        health = self.health()
        board = mqtt_health.payload(health) if health is not None else {}
        return {"node": names.node_id, "host": names.hostname, "version": __version__, "prefix": names.prefix,
                "availability": names.topics["availability"], "cameras": cams,
                "metrics_url": metrics_url(self.cfg.http, names.hostname),
                "temperature_c": board.get("temperature_c"), "throttled": board.get("throttled"),
                "under_voltage": board.get("under_voltage"), "push": self.receiver is not None,
                "time": iso_time(0)}

    def start(self) -> None:
        """Publish the info now and then, and listen for push requests (with ``mqtt.commands``)."""
        self.hub.join(self.channel, birth=False)
        self._publish()
        if self.receiver is not None:
            self.receiver.start()
        self._thread = threading.Thread(target=self._run, name="edgecam-fleet", daemon=True)
        self._thread.start()

    def changed(self) -> None:
        """Something the info shows changed (a model): publish it soon."""
        self._poke.set()

    def _publish(self) -> None:
        info = self.info()
        self._last_models = tuple((c["name"], c["model"], c["model_sha256"]) for c in info["cameras"])
        self.channel.publish(info)

    def _run(self) -> None:
        every = min(FIRST_AGAIN_S, self.every_s)  # the first info had no fps yet: the next comes soon
        while not self._stop.is_set():
            # A model switched by other means (a reload) shows within a few seconds; the rest every every_s.
            waited, step = 0.0, min(5.0, every)
            while waited < every and not self._stop.is_set() and not self._poke.is_set():
                self._poke.wait(step)
                waited += step
                if self._models_changed():
                    break
            if self._stop.is_set():
                return
            self._poke.clear()
            every = self.every_s
            try:
                self._publish()
            except Exception:  # the info must never stop the run
                logger.exception("fleet: could not make the node info")

    def _models_changed(self) -> bool:
        return tuple((c.name or "", c.model) for c in self.cameras()) != tuple(m[:2] for m in self._last_models)

    def close(self) -> None:
        """Stop the thread and the receiver (the hub, closed after, says ``offline``)."""
        self._stop.set()
        self._poke.set()
        if self.receiver is not None:
            self.receiver.close()
        if self._thread is not None:
            self._thread.join(2.0)


@dataclass(frozen=True)
class RunCamera:
    """What a run tells the fleet of one camera: its name (None: the one camera of a run), its control
    (:class:`edgecam.control.live.Control`), the name of the model it runs now, its counters."""

    name: str | None
    control: object
    running: Callable[[], str]
    stats: object = None


def start_node(hub, cfg, cameras: Callable[[], list[RunCamera]], health=lambda: None) -> FleetNode | None:
    """The run's :class:`FleetNode` on ``hub`` (the node info; pushes switch through each camera's control),
    started; None without MQTT (``hub`` None)."""
    if hub is None:
        return None
    switch = ControlSwitch(lambda: [Switchable(c.name or c.control.camera, c.control, c.running) for c in cameras()])
    node = FleetNode(hub, cfg, lambda: [CameraView(c.name, c.running(), c.stats) for c in cameras()], health, switch)
    node.start()
    return node

"""Publish predictions to an MQTT broker, with Home Assistant discovery: the MQTT output of one camera.

The pipeline never waits on the network: the ``on_*`` methods only append to the camera's bounded queue
(the oldest message is dropped when it is full) and the connection's worker thread
(:class:`edgecam.outputs.mqtt_hub.MqttHub`) hands messages to paho, only while connected and only a few at a
time, so nothing piles up inside paho while the broker is away. The topics and what each message holds:
:mod:`edgecam.outputs.mqtt_messages`.

With one camera the sink makes and owns its connection (``<prefix>/state``, one Home Assistant device).
With several (:class:`edgecam.pipeline.cameras.CamerasApp`) the run has one :class:`MqttHub` and each camera
a sink on it (:meth:`MqttSink.on_hub`): ``<prefix>/<camera>/state``, a device per camera, one availability.
"""

from __future__ import annotations

import socket
import time

from edgecam.config.schema import MqttConfig
from edgecam.config.state import state_dir
from edgecam.result import Classification, Extra, LabelChange, RegionChange
from edgecam.outputs import mqtt_messages as messages
from edgecam.outputs.base import Sink, refusals
from edgecam.outputs.mqtt_control import MqttControl
from edgecam.outputs.mqtt_hub import MqttHub
from edgecam.outputs.mqtt_messages import Item, ItemKind
from edgecam.outputs.mqtt_state import Channel, MqttNames
from edgecam.stats import Stats

__all__ = ["MqttSink", "MqttHub"]


class MqttSink(MqttControl, Channel, Sink):
    """Publishes a camera's results, label changes, region states and events to an MQTT broker.

    Args:
        cfg: the ``mqtt`` section of the config.
        model_name: shown in ``/result`` and as the HA device's model.
        top_k: how many classes ``/result`` lists.
        threshold: classes scoring below it are left out of ``/result`` (``model.threshold``,
            as in the overlay, the log and HTTP).
        stats: when given, ``stats.extra["mqtt"]`` is kept equal to :meth:`status`.
        hostname: names the default topic prefix and client id (default: this host).
        regions: :class:`edgecam.outputs.base.RegionInfo` per region: a state topic and HA sensor each.
        event_rules: rules with ``mqtt: true``: their events (``result.extra[Extra.RULE_EVENTS]``) go out too.
        hub: the run's connection with several cameras (see :meth:`on_hub`); None: a connection of its own,
            started by :meth:`start` and closed by :meth:`close`, with ``availability`` under the prefix.
        state_dir: with a connection of its own, where what discovery announced is remembered, so that what the
            config no longer has is removed from Home Assistant (:mod:`edgecam.outputs.mqtt_announced`).
        camera: with ``hub``, the camera's name: its topics under ``<prefix>/<camera>/``, its own HA device.

    After bad credentials the connection stops retrying and :attr:`fatal_error` is a
    :class:`NetworkError` (exit code 5); the pipeline may stop on it.
    """

    name = "mqtt"

    def __init__(self, cfg: MqttConfig, model_name: str, top_k: int = 3, stats: Stats | None = None,
                 hostname: str | None = None, threshold: float = 0.0, regions: tuple = (), event_rules: tuple = (),
                 *, hub: MqttHub | None = None, camera: str | None = None, state_dir=None):
        self._owns_hub = hub is None
        if hub is None:
            hub = MqttHub(cfg, hostname or socket.gethostname(), state_dir=state_dir)
        elif camera is None:
            raise ValueError("MqttSink on a shared hub needs its camera's name")
        super().__init__(hub, hub.names if camera is None else hub.names_for(camera))
        self.model_name = model_name
        self.top_k = top_k
        self.threshold = threshold
        self.stats = stats
        self.regions, self.event_rules = tuple(regions), tuple(event_rules)
        self.wants_frames = self.cfg.snapshot
        self.wants_overlay = self.cfg.snapshot  # a commanded snapshot alone takes the frame as it is
        self._closed = False

    #: The connection's fatal error (bad credentials), shared by every camera on it.
    fatal_error = property(lambda self: self.hub.fatal_error)

    @classmethod
    def from_config(cls, cfg, ctx) -> MqttSink:
        rules = tuple(r.name for r in cfg.events.rules if r.mqtt)
        # The device's model: what the camera runs (regions' learned models too), not only model.name.
        return cls(cfg.mqtt, model_name=ctx.model or cfg.model.name, top_k=cfg.model.top_k, stats=ctx.stats,
                   threshold=cfg.model.threshold, regions=ctx.regions, event_rules=rules,
                   state_dir=state_dir(cfg.state_dir))

    @classmethod
    def on_hub(cls, hub: MqttHub, camera: str, cfg, stats: Stats | None = None, regions: tuple = (),
               model: str | None = None) -> MqttSink:
        """The sink of ``camera`` (its whole config ``cfg``: model, events; the ``mqtt`` section is the hub's)
        on the run's connection ``hub``. ``regions``: the camera's (:class:`edgecam.outputs.base.RegionInfo`);
        ``model``: the models it runs (its classifier's name; default ``model.name``)."""
        rules = tuple(r.name for r in cfg.events.rules if r.mqtt)
        return cls(hub.cfg, model_name=model or cfg.model.name, top_k=cfg.model.top_k, stats=stats,
                   threshold=cfg.model.threshold, regions=regions, event_rules=rules, hub=hub, camera=camera)

    # ------------------------------------------------------------------ setup

    @classmethod
    def check(cls, cfg) -> list[str]:
        """paho-mqtt missing, an empty or unreadable password file, a CA file TLS cannot load."""
        if not cfg.mqtt.enabled:
            return []
        problems = refusals(messages.import_paho) + refusals(lambda: MqttNames.of(cfg.mqtt, "check-config"))
        problems += refusals(lambda: messages.read_password(cfg.mqtt))
        return problems + refusals(lambda: messages.check_ca_file(cfg.mqtt))

    def start(self) -> None:
        """Connect in the background (or join the run's connection); returns at once."""
        if self._closed:
            return
        self.hub.join(self)
        if self._owns_hub:
            self.hub.settled()
        self.hub.start()
        self.update_stats()

    # ------------------------------------------------------ pipeline side

    def _accepting(self) -> bool:
        return not self._closed and self.hub.accepting()

    def on_result(self, result: Classification) -> None:
        """Remember the result; in ``every`` mode queue it, at most ``max_rate_hz``."""
        if not self._accepting():
            return
        latest = self._latest
        latest.result = result
        self.on_rule_events(result.extra.get(Extra.RULE_EVENTS, ()))
        if self.cfg.publish != "every":
            return
        now = time.monotonic()
        if now < latest.next_result_t:
            latest.rate_skipped += 1
            return
        latest.next_result_t = now + 1.0 / self.cfg.max_rate_hz
        self._enqueue(ItemKind.RESULT, result)  # formatted by the worker, off the pipeline thread

    def on_rule_events(self, events) -> None:
        """A rule's events (with ``mqtt: true``): ``<prefix>/event``, and ``start``/``end`` on its trigger topic
        (an interrupted end too: an automation waiting for the end gets it)."""
        if not self._accepting():
            return
        for event in events:
            if event.rule in self.event_rules:
                self._enqueue(ItemKind.EVENT, event.payload)
                self._enqueue(ItemKind.TRIGGER, event.payload)

    def on_frame(self, frame, annotated, result) -> None:
        """Keep a reference to the newest picture, encoded only for a snapshot."""
        if self.cfg.snapshot:
            self._latest.picture = annotated if annotated is not None else frame.image
        if self._snapshot_now and self._accepting() and self.snapshot_due():  # a snapshot command
            self._enqueue(ItemKind.SNAPSHOT, annotated if annotated is not None else frame.image)

    def on_event(self, event: LabelChange | RegionChange) -> None:
        """On a label change: queue ``/state``, and ``/result`` and ``/snapshot`` as configured;
        on a region's change, its ``/region/<name>/state``."""
        if not self._accepting():
            return
        if isinstance(event, RegionChange):
            self._change(event.region, messages.region_payload(event))
        else:
            self._change(None, messages.state_payload(event, self._latest.result))

    def _change(self, key: str | None, payload: dict, now: float | None = None) -> None:
        """A state change of the label (``key`` None) or of a region: sent now, or held back until its turn
        (at most ``max_changes_hz`` per topic; a newer change replaces the one held)."""
        latest, now = self._latest, time.monotonic() if now is None else now
        with self._cond:  # the hub's worker sends a held change when its turn comes (release_held)
            if now < latest.next_change_t.get(key, 0.0):
                latest.held[key] = payload
                self._cond.notify_all()
                return
        latest.held.pop(key, None)
        payload = {**payload, "previous": latest.sent_label.get(key, payload["previous"])}
        if payload["label"] == payload["previous"] and key in latest.sent_label:
            return  # it changed and changed back within the gap: nothing to tell
        latest.next_change_t[key] = now + 1.0 / self.cfg.max_changes_hz
        latest.sent_label[key] = payload["label"]
        with self._cond:
            if key is None:
                latest.state = payload
            else:
                latest.regions[key] = payload
        if key is not None:
            self._enqueue(ItemKind.REGION, payload)
            return
        self._enqueue(ItemKind.STATE, payload)
        if self.cfg.publish == "changes" and latest.result is not None:
            self._enqueue(ItemKind.RESULT, latest.result)
        if self.cfg.snapshot and latest.picture is not None:
            self._enqueue(ItemKind.SNAPSHOT, latest.picture)

    def release_held(self, now: float | None = None) -> float | None:
        """(the hub's worker, lock held; or at close) Send the changes held back whose turn came (``now`` None:
        all of them); returns how long until the next one is due (None: none is held)."""
        latest = self._latest
        for key, payload in list(latest.held.items()):
            if now is None or now >= latest.next_change_t.get(key, 0.0):
                latest.next_change_t[key] = 0.0
                self._change(key, payload, now)
        due = [latest.next_change_t.get(key, 0.0) for key in latest.held]
        return None if not due or now is None else max(0.0, min(due) - now)

    def on_health(self, health) -> None:
        """The board's health: ``<prefix>/health`` when there is news; the first adds its HA entities. With
        several cameras, once for the run (:meth:`MqttHub.on_health`), not per camera."""
        if self.names.camera is not None:
            if not self._closed:
                self.hub.on_health(health)
            return
        super().on_health(health)

    # ------------------------------------------------------------ payloads

    def result_payload(self, result: Classification) -> dict:
        """The JSON published on ``<prefix>/result``."""
        return messages.result_payload(result, self.top_k, self.threshold, self.model_name)

    def discovery_configs(self) -> dict[str, dict]:
        """Home Assistant discovery topic -> config: label and score, or a sensor per region; board health."""
        out = messages.discovery_for(self)
        return out | self.control_discovery(next(iter(out.values()))["device"])

    def health_discovery(self) -> dict[str, dict]:
        """The board's entities of :meth:`discovery_configs` (one camera alone: on its device)."""
        return messages.health_discovery_for(self)

    def birth_items(self) -> list[Item]:
        """(lock held) What to send right after each connect, after ``online``: discovery, the newest states."""
        latest = self._latest
        items = self._discovery_items()
        if latest.state is not None and self._queue.states == 0:
            # The broker may have restarted without its retained messages.
            items.append(Item(ItemKind.STATE, latest.state))
        items += [Item(ItemKind.HEALTH, latest.health)] if latest.health is not None else []
        queued = {item.data["region"] for item in self._queue if item.kind is ItemKind.REGION}
        items += [Item(ItemKind.REGION, state) for name, state in latest.regions.items() if name not in queued]
        return items + self.control_items()

    # ------------------------------------------------------------- status

    def update_stats(self) -> None:
        """``stats.extra["mqtt"]``: :meth:`status` (connected, state, queued, dropped, published, reconnects,
        last_error; the queue's counts are this camera's, the rest the connection's)."""
        if self.stats is not None:
            self.stats.extra["mqtt"] = self.status()

    def close(self) -> None:
        """Take no more messages. Alone on its connection: send what is queued (up to ~1 s), publish ``offline``,
        disconnect; on the run's connection, what is queued goes on until the run closes it. Idempotent."""
        if self._closed:
            return
        if self._latest.held and self._accepting():
            with self._cond:
                self.release_held()  # the last state the camera showed, not one held back
        if self._owns_hub:
            self.hub.close()
        self._closed = True
        self.update_stats()

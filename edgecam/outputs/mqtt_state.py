"""The MQTT output's state, in small parts: its names, its queue of typed items, its connection and counts,
and the channels that publish over one connection.

The connection (:class:`edgecam.outputs.mqtt_hub.MqttHub`) holds the :class:`Link`; each of its
:class:`Channel` (a camera's :class:`edgecam.outputs.mqtt.MqttSink`, or the node's board health with several
cameras) its names, its queue and its newest messages. Every part that threads share is read and written
under the hub's one lock (``MqttHub._cond``, which each channel and sink holds as ``_cond``).
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from edgecam.errors import ConfigError
from edgecam.names import identifier_problem
from edgecam.outputs import mqtt_health
from edgecam.outputs import mqtt_messages as messages
from edgecam.outputs.mqtt_messages import Item, ItemKind

logger = logging.getLogger("edgecam.outputs.mqtt")  # one logger for the whole MQTT output


@dataclass(frozen=True)
class MqttNames:
    """Who the sink is on the broker: its host, client id, HA node id, topic prefixes, topics.

    ``camera``: in a run of several cameras, the camera these names are of (:meth:`for_camera`); None for the
    run itself, and for the one camera of a run of one.
    """

    hostname: str
    client_id: str
    node_id: str
    prefix: str
    discovery_prefix: str
    broker: str
    topics: dict[str, str]
    camera: str | None = None

    @classmethod
    def of(cls, cfg, hostname: str) -> MqttNames:
        """The names ``cfg`` (the ``mqtt`` section) gives on host ``hostname``; a ConfigError for a bad topic."""
        host_slug = messages.slug(hostname)
        client_id = cfg.client_id or f"edgecam-{host_slug}"
        prefix = messages.check_topic("mqtt.topic_prefix", cfg.topic_prefix or f"edgecam/{host_slug}")
        return cls(hostname, client_id, messages.slug(client_id), prefix,
                   messages.check_topic("mqtt.discovery_prefix", cfg.discovery_prefix), f"{cfg.host}:{cfg.port}",
                   {k: f"{prefix}/{k}" for k in ("state", "result", "availability", "snapshot")})

    def for_camera(self, camera: str) -> MqttNames:
        """The names of ``camera`` in a run of several: its topics under ``<prefix>/<camera>/``, its HA node id
        ``<node_id>_<camera>``; the run's client id and availability topic. A ConfigError for a bad name."""
        problem = identifier_problem(camera)
        if problem:
            raise ConfigError(f"cameras: got the camera name {camera!r}, expected {problem}")
        prefix = f"{self.prefix}/{camera}"
        topics = {k: f"{prefix}/{k}" for k in ("state", "result", "snapshot")}
        return MqttNames(self.hostname, self.client_id, f"{self.node_id}_{camera}", prefix, self.discovery_prefix,
                         self.broker, {**topics, "availability": self.topics["availability"]}, camera)


class Pending:
    """The items waiting to be published, oldest first, at most ``size``: a full queue drops its oldest, counted."""

    def __init__(self, size: int):
        self.size = size
        self.items: deque[Item] = deque()
        self.states = 0  # how many STATE items it holds (the birth re-sends the last state only without one)
        self.dropped = 0

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def push(self, item: Item) -> None:
        if len(self.items) >= self.size:
            self.states -= self.items.popleft().kind is ItemKind.STATE
            self.dropped += 1
        self.items.append(item)
        self.states += item.kind is ItemKind.STATE

    def push_front(self, item: Item) -> None:
        """Put ``item`` back at the head (it could not be sent); a full queue drops it, counted."""
        if len(self.items) >= self.size:
            self.dropped += 1
            return
        self.items.appendleft(item)
        self.states += item.kind is ItemKind.STATE

    def pop(self) -> Item:
        item = self.items.popleft()
        self.states -= item.kind is ItemKind.STATE
        return item


class LinkState(Enum):
    """The connection's state, as ``status()["state"]`` (and /api/status) name it."""

    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    AUTH_FAILED = "auth_failed"  # bad credentials: not retrying
    FAILED = "failed"  # the worker died (see the log)
    CLOSED = "closed"


@dataclass
class Link:
    """The connection as the sink sees it, and what was sent over it."""

    connected: bool = False
    need_birth: bool = False  # connected: send availability, discovery and the last states first
    ever_connected: bool = False
    down_logged: bool = False  # the outage was logged (once per outage)
    closing: bool = False
    flush_deadline: float = 0.0
    state: LinkState = LinkState.NEW
    last_error: str = ""
    published: int = 0
    reconnects: int = 0


@dataclass
class Latest:
    """The newest of each thing a reconnect re-sends or a label change publishes."""

    state: dict | None = None  # the newest /state JSON enqueued
    regions: dict[str, dict] = field(default_factory=dict)  # region -> its newest state JSON
    health: dict | None = None  # the newest board health sent (mqtt_health), and when
    health_at: float = 0.0
    result: object = None  # the newest Classification
    picture: object = None  # the newest annotated frame (a reference, never copied)
    next_result_t: float = 0.0  # publish: every: the next result goes out no earlier (max_rate_hz)
    rate_skipped: int = 0
    # The state topics' cap (mqtt.max_changes_hz), per topic key (None: the label, else a region's name):
    next_change_t: dict = field(default_factory=dict)  # the next change goes out no earlier
    held: dict = field(default_factory=dict)  # the newest change held back, to go out then
    sent_label: dict = field(default_factory=dict)  # the label last sent (a held change's "previous")


class Channel:
    """What publishes on a hub: its names, its bounded queue, its newest messages (what a reconnect sends again).

    Everything here is read and written under the hub's lock (``_cond``). A subclass says what its birth is
    (:meth:`birth_items`) and which discovery configs it has.
    """

    def __init__(self, hub, names: MqttNames):
        self.hub, self.cfg, self.names = hub, hub.cfg, names
        self._cond = hub._cond
        self._queue = Pending(self.cfg.queue_size)
        self._latest = Latest()
        # mids handed to paho, not yet published -> their queued item (None: re-sent at each connect)
        self._outstanding: dict[int, Item | None] = {}

    # The names the payload helpers (mqtt_messages, mqtt_health) and the tests read.
    hostname = property(lambda self: self.names.hostname)
    client_id = property(lambda self: self.names.client_id)
    node_id = property(lambda self: self.names.node_id)
    prefix = property(lambda self: self.names.prefix)
    discovery_prefix = property(lambda self: self.names.discovery_prefix)
    broker = property(lambda self: self.names.broker)
    topics = property(lambda self: self.names.topics)
    #: The newest board health sent (:func:`edgecam.outputs.mqtt_health.payload`); None before the first.
    health = property(lambda self: self._latest.health)

    def _enqueue(self, kind: ItemKind, data) -> None:
        with self._cond:
            self._queue.push(Item(kind, data))
            self._cond.notify_all()

    def _accepting(self) -> bool:
        return self.hub.accepting()

    def on_health(self, health) -> None:
        """The board's health: ``<prefix>/health`` when there is news; the first adds its HA entities."""
        new, now = mqtt_health.payload(health), time.monotonic()
        latest = self._latest
        if not self._accepting() or not mqtt_health.due(latest.health, latest.health_at, new, now):
            return
        with self._cond:
            first, latest.health, latest.health_at = latest.health is None, new, now
        configs = self.health_discovery() if first and self.cfg.discovery else {}
        with self._cond:
            self.hub.announced.add(self.node_id, dict.fromkeys(configs, True))
        for topic, conf in configs.items():
            self._enqueue(ItemKind.RAW, (topic, json.dumps(conf), True))  # its entities, now that a reading says which
        self._enqueue(ItemKind.HEALTH, new)

    def release_held(self, now: float | None = None) -> float | None:
        """(lock held) Queue the state changes held back whose turn came; seconds until the next (None: none)."""
        return None

    def discovery_configs(self) -> dict[str, dict]:
        """Home Assistant discovery topic -> config of this channel's entities."""
        raise NotImplementedError

    def health_discovery(self) -> dict[str, dict]:
        """Only the board's entities of :meth:`discovery_configs`."""
        topic = mqtt_health.health_topic(self.prefix)
        return {t: c for t, c in self.discovery_configs().items() if c.get("state_topic") == topic}

    def birth_items(self) -> list[Item]:
        """(lock held) What to send right after each connect, after ``online``: discovery, the newest states."""
        raise NotImplementedError

    def _discovery_items(self) -> list[Item]:
        """(lock held) The discovery configs, after clearing those announced before that this device no longer has
        (:mod:`edgecam.outputs.mqtt_announced`); with discovery off, all of them are cleared."""
        configs = self.discovery_configs() if self.cfg.discovery else {}
        health = mqtt_health.health_topic(self.prefix)
        stale = self.hub.announced.renew(self.node_id, {t: c.get("state_topic") == health for t, c in configs.items()},
                                         health_known=self.health is not None or not self.cfg.discovery)
        if stale:
            logger.info("MQTT: removing %d Home Assistant entities the config no longer has (%s)", len(stale),
                        ", ".join(stale[:5]) + (", ..." if len(stale) > 5 else ""))
        return [Item(ItemKind.RAW, (topic, "", True)) for topic in stale] + [
            Item(ItemKind.RAW, (topic, json.dumps(conf), True)) for topic, conf in configs.items()]

    def encode(self, item: Item) -> tuple[str, bytes | str, bool] | None:
        """(topic, payload, retain) of one of this channel's items; None to skip it."""
        return messages.encode(self, item.kind, item.data)

    def status(self) -> dict:
        """The connection's state and counts (the hub's), with this channel's queue."""
        with self._cond:
            return self.hub.link_status() | {"queued": len(self._queue), "dropped": self._queue.dropped,
                                             "rate_skipped": self._latest.rate_skipped}

    def update_stats(self) -> None:
        """Show :meth:`status` where the run's counters are (a camera's sink does)."""


class NodeChannel(Channel):
    """The run's own messages with several cameras: the board's health on ``<prefix>/health``, its entities on
    an "edgecam <hostname>" device of their own (each camera has its device; the board is one, under them all)."""

    def discovery_configs(self) -> dict[str, dict]:
        """The board's entities, once a reading told which it has; none before."""
        if self.health is None:
            return {}
        device = messages.device_info(self.node_id, f"edgecam {self.hostname}")
        return mqtt_health.discovery_configs(self, self.health, device)

    def birth_items(self) -> list[Item]:
        """(lock held) The board's entities and its newest health (unless one is queued)."""
        health, queued = self._latest.health, any(item.kind is ItemKind.HEALTH for item in self._queue)
        return self._discovery_items() + ([Item(ItemKind.HEALTH, health)] if health is not None and not queued else [])

"""The MQTT output's state, in small parts: its names, its queue of typed items, its connection and counts.

:class:`edgecam.outputs.mqtt.MqttSink` holds one of each; every part that threads share is read and
written under the sink's one lock (``MqttSink._cond``), as before.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from edgecam.outputs import mqtt_messages as messages
from edgecam.outputs.mqtt_messages import Item, ItemKind


@dataclass(frozen=True)
class MqttNames:
    """Who the sink is on the broker: its host, client id, HA node id, topic prefixes, topics."""

    hostname: str
    client_id: str
    node_id: str
    prefix: str
    discovery_prefix: str
    broker: str
    topics: dict[str, str]

    @classmethod
    def of(cls, cfg, hostname: str) -> MqttNames:
        """The names ``cfg`` (the ``mqtt`` section) gives on host ``hostname``; a ConfigError for a bad topic."""
        host_slug = messages.slug(hostname)
        client_id = cfg.client_id or f"edgecam-{host_slug}"
        prefix = messages.check_topic("mqtt.topic_prefix", cfg.topic_prefix or f"edgecam/{host_slug}")
        return cls(hostname, client_id, messages.slug(client_id), prefix,
                   messages.check_topic("mqtt.discovery_prefix", cfg.discovery_prefix), f"{cfg.host}:{cfg.port}",
                   {k: f"{prefix}/{k}" for k in ("state", "result", "availability", "snapshot")})


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

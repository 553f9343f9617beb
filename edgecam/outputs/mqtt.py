"""Publish predictions to an MQTT broker, with Home Assistant discovery.

The pipeline never waits on the network: the ``on_*`` methods only append to a
bounded queue (the oldest message is dropped when it is full) and a worker
thread hands messages to paho, only while connected and only a few at a time,
so nothing piles up inside paho while the broker is away. The topics and what
each message holds: :mod:`edgecam.outputs.mqtt_messages`.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
import time

from edgecam.config.schema import MqttConfig
from edgecam.errors import ConfigError, EdgecamError, NetworkError
from edgecam.result import Classification, Extra, LabelChange, RegionChange
from edgecam.outputs import mqtt_health
from edgecam.outputs import mqtt_messages as messages
from edgecam.outputs.base import Sink, refusals
from edgecam.outputs.mqtt_messages import OFFLINE, ONLINE, Item, ItemKind
from edgecam.outputs.mqtt_state import Latest, Link, LinkState, MqttNames, Pending
from edgecam.stats import Stats

logger = logging.getLogger(__name__)

# Messages handed to paho but not yet written (QoS 0) or acknowledged (QoS 1/2).
# Small, so that a stalled connection keeps messages in our bounded queue.
WINDOW = 16
CLOSE_FLUSH_S = 1.0
# CONNACK reasons that retrying with the same settings cannot fix.
_AUTH_REASONS = {"Bad user name or password", "Not authorized", "Banned", "Bad authentication method"}


class MqttSink(Sink):
    """Publishes results, label changes and availability to an MQTT broker.

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

    After bad credentials the sink stops retrying and sets :attr:`fatal_error`
    to a :class:`NetworkError` (exit code 5); the pipeline may stop on it.
    """

    name = "mqtt"

    def __init__(self, cfg: MqttConfig, model_name: str, top_k: int = 3, stats: Stats | None = None,
                 hostname: str | None = None, threshold: float = 0.0, regions: tuple = (), event_rules: tuple = ()):
        self.cfg = cfg
        self.model_name = model_name
        self.top_k = top_k
        self.threshold = threshold
        self.stats = stats
        self.names = MqttNames.of(cfg, hostname or socket.gethostname())
        self.regions, self.event_rules = tuple(regions), tuple(event_rules)
        self.wants_frames = cfg.snapshot
        self.fatal_error: EdgecamError | None = None
        # _cond guards everything below that the worker, paho's thread and the pipeline share.
        self._cond = threading.Condition()
        self._queue = Pending(cfg.queue_size)
        self._link = Link()
        self._latest = Latest()  # re-sent after a reconnect, published at a label change
        # mids handed to paho, not yet published -> their queued item (None: re-sent at each connect)
        self._outstanding: dict[int, Item | None] = {}
        self._early: set[int] = set()  # mids whose on_publish ran before publish() returned
        self._closed = False
        self._client = None
        self._mqtt = None
        self._thread: threading.Thread | None = None

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

    @classmethod
    def from_config(cls, cfg, ctx) -> MqttSink:
        rules = tuple(r.name for r in cfg.events.rules if r.mqtt)
        return cls(cfg.mqtt, model_name=cfg.model.name, top_k=cfg.model.top_k, stats=ctx.stats,
                   threshold=cfg.model.threshold, regions=ctx.regions, event_rules=rules)

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
        """Configure the client and connect in the background; returns at once."""
        if self._client is not None or self._closed:
            return
        mqtt = self._mqtt = messages.import_paho()
        cfg = self.cfg
        password = messages.read_password(cfg)
        if password is not None and not cfg.username:
            raise ConfigError("mqtt.username: null, expected the user name that goes with mqtt.password_file")
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id)
        if cfg.username:
            client.username_pw_set(cfg.username, password)
        if cfg.tls:
            try:
                client.tls_set(ca_certs=cfg.ca_file)
            except (OSError, ValueError) as e:
                raise ConfigError(f"mqtt.ca_file: cannot load {cfg.ca_file!r} ({e})") from None
        client.will_set(self.topics["availability"], OFFLINE, qos=cfg.qos, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_queued_messages_set(WINDOW)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._client = client
        self._set_state(LinkState.CONNECTING)
        logger.info("MQTT: publishing to %s under %s/ as %s", self.broker, self.prefix, self.client_id)
        # connect_async + loop_start: the network thread connects and
        # reconnects (1..30 s back-off) without ever blocking the caller.
        client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive)
        client.loop_start()
        self._thread = threading.Thread(target=self._run, name="edgecam-mqtt", daemon=True)
        self._thread.start()

    # ------------------------------------------------------ pipeline side

    def _enqueue(self, kind: ItemKind, data) -> None:
        with self._cond:
            self._queue.push(Item(kind, data))
            self._cond.notify()

    def _accepting(self) -> bool:
        return not self._link.closing and self.fatal_error is None

    def on_result(self, result: Classification) -> None:
        """Remember the result; in ``every`` mode queue it, at most ``max_rate_hz``."""
        if not self._accepting():
            return
        latest = self._latest
        latest.result = result
        for event in result.extra.get(Extra.RULE_EVENTS, ()):
            if event.rule in self.event_rules:  # <prefix>/event, and the rule's trigger topic
                self._enqueue(ItemKind.EVENT, event.payload)
                self._enqueue(ItemKind.TRIGGER, event.payload)
        if self.cfg.publish != "every":
            return
        now = time.monotonic()
        if now < latest.next_result_t:
            latest.rate_skipped += 1
            return
        latest.next_result_t = now + 1.0 / self.cfg.max_rate_hz
        self._enqueue(ItemKind.RESULT, result)  # formatted by the worker, off the pipeline thread

    def on_frame(self, frame, annotated, result) -> None:
        """Keep a reference to the newest picture, encoded only for a snapshot."""
        if self.cfg.snapshot:
            self._latest.picture = annotated if annotated is not None else frame.image

    def on_event(self, event: LabelChange | RegionChange) -> None:
        """On a label change: queue ``/state``, and ``/result`` and ``/snapshot`` as configured;
        on a region's change, its ``/region/<name>/state``."""
        if not self._accepting():
            return
        latest = self._latest
        if isinstance(event, RegionChange):
            payload = messages.region_payload(event)
            with self._cond:
                latest.regions[event.region] = payload
            self._enqueue(ItemKind.REGION, payload)
            return
        state = messages.state_payload(event, latest.result)
        with self._cond:
            latest.state = state
        self._enqueue(ItemKind.STATE, state)
        if self.cfg.publish == "changes" and latest.result is not None:
            self._enqueue(ItemKind.RESULT, latest.result)
        if self.cfg.snapshot and latest.picture is not None:
            self._enqueue(ItemKind.SNAPSHOT, latest.picture)

    def on_health(self, health) -> None:
        """The board's health: ``<prefix>/health`` when there is news; the first adds its HA entities."""
        new, now = mqtt_health.payload(health), time.monotonic()
        latest = self._latest
        if not self._accepting() or not mqtt_health.due(latest.health, latest.health_at, new, now):
            return
        with self._cond:
            first, latest.health, latest.health_at = latest.health is None, new, now
        for topic, conf in (messages.health_discovery_for(self) if first and self.cfg.discovery else {}).items():
            self._enqueue(ItemKind.RAW, (topic, json.dumps(conf), True))  # its entities, now that a reading says which
        self._enqueue(ItemKind.HEALTH, new)

    # ------------------------------------------------------------ payloads

    def result_payload(self, result: Classification) -> dict:
        """The JSON published on ``<prefix>/result``."""
        return messages.result_payload(result, self.top_k, self.threshold, self.model_name)

    def discovery_configs(self) -> dict[str, dict]:
        """Home Assistant discovery topic -> config: label and score, or a sensor per region; board health."""
        return messages.discovery_for(self)

    # -------------------------------------------------------------- worker

    def _run(self) -> None:
        try:
            self._work()
        except Exception:  # keep the pipeline alive; report through status()
            logger.exception("MQTT worker failed; MQTT publishing stopped")
            with self._cond:
                self._link.last_error = "worker failed (see log)"
                self._link.state = LinkState.FAILED
            self._update_stats()

    def _next_items(self) -> list[Item] | None:
        """(lock held) Wait for what to send next: the birth after a connect, else the oldest item; None: done."""
        link = self._link
        while True:
            has_work = link.need_birth or bool(self._queue)
            if has_work and link.connected and len(self._outstanding) < WINDOW:
                break
            if link.closing and (not has_work or not link.connected or time.monotonic() > link.flush_deadline):
                return None
            # on_connect, on_publish, _enqueue and close() all notify.
            self._cond.wait(0.5)
        if link.need_birth:
            link.need_birth = False
            return self._birth_items()
        return [self._queue.pop()]

    def _work(self) -> None:
        while True:
            with self._cond:
                items = self._next_items()
            if items is None:
                return
            for item in items:
                raw = item.kind is ItemKind.RAW
                msg = item.data if raw else messages.encode(self, item.kind, item.data)  # (topic, payload, retain)
                if msg is not None and not self._send(*msg, item=None if raw else item):
                    if not raw:
                        with self._cond:
                            self._queue.push_front(item)
                    break
            self._update_stats()

    def _birth_items(self) -> list[Item]:
        """What to send right after each connect (called with the lock held)."""
        latest = self._latest
        items = [Item(ItemKind.RAW, (self.topics["availability"], ONLINE, True))]
        if self.cfg.discovery:
            items += [Item(ItemKind.RAW, (topic, json.dumps(conf), True))
                      for topic, conf in self.discovery_configs().items()]
        if latest.state is not None and self._queue.states == 0:
            # The broker may have restarted without its retained messages.
            items.append(Item(ItemKind.STATE, latest.state))
        items += [Item(ItemKind.HEALTH, latest.health)] if latest.health is not None else []
        queued = {item.data["region"] for item in self._queue if item.kind is ItemKind.REGION}
        items += [Item(ItemKind.REGION, state) for name, state in latest.regions.items() if name not in queued]
        return items

    def _send(self, topic: str, payload, retain: bool, item: Item | None = None) -> bool:
        """Hand one message to paho; False when paho did not take it (connection gone)."""
        # Never call paho while holding our lock: paho runs on_publish with
        # its own locks held, and on_publish takes ours.
        info = self._client.publish(topic, payload, qos=self.cfg.qos, retain=retain)
        if info.rc != self._mqtt.MQTT_ERR_SUCCESS:
            if info.rc == self._mqtt.MQTT_ERR_NO_CONN and self.cfg.qos > 0:
                # paho keeps QoS>0 messages and resends them on reconnect.
                self._track(info.mid, item)
                return True
            with self._cond:  # the connection just went; on_disconnect follows
                self._cond.wait(0.05)
            return False
        self._track(info.mid, item)
        return True

    def _track(self, mid: int, item: Item | None) -> None:
        with self._cond:
            if mid in self._early:
                self._early.discard(mid)
            else:
                self._outstanding[mid] = item

    # ----------------------------------------------------- paho callbacks

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._cond:
            if mid in self._outstanding:
                del self._outstanding[mid]
            else:
                self._early.add(mid)
            self._link.published += 1
            self._cond.notify_all()
        self._update_stats()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            reason = reason_code.getName()
            if reason in _AUTH_REASONS:
                who = f"user {self.cfg.username!r}" if self.cfg.username else "an anonymous client"
                msg = (f"MQTT broker {self.broker} refused {who}: {reason}; "
                       "check mqtt.username and mqtt.password_file (not retrying)")
                logger.error(msg)
                with self._cond:
                    self.fatal_error = NetworkError(msg)
                    self.fatal_error.logged = True  # just above
                    self._link.last_error = reason
                    self._link.state = LinkState.AUTH_FAILED
                    self._cond.notify_all()
                self._update_stats()
                client.disconnect()  # ends paho's retry loop
                return
            self._went_down(f"refused: {reason}")
            return
        link = self._link
        with self._cond:
            link.connected = link.need_birth = True
            link.down_logged = False
            self._early.clear()  # a new session: no stale mids
            if link.ever_connected:
                link.reconnects += 1
                logger.info("MQTT reconnected to %s (%d messages queued)", self.broker, len(self._queue))
            else:
                logger.info("MQTT connected to %s", self.broker)
            link.ever_connected = True
            link.state = LinkState.CONNECTED
            self._cond.notify_all()
        self._update_stats()

    def _on_connect_fail(self, client, userdata) -> None:
        # paho calls this inside its ``except OSError`` block, so the error is
        # still the one being handled.
        err = sys.exc_info()[1]
        self._went_down(f"unreachable: {err}" if err else "unreachable")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        reason = reason_code.getName()
        if not flags.is_disconnect_packet_from_server and reason == "Unspecified error":
            reason = "connection lost"
        self._went_down(reason)

    def _went_down(self, reason: str) -> None:
        link = self._link
        with self._cond:
            was_connected, link.connected = link.connected, False
            if self.cfg.qos == 0 and self._outstanding:
                # QoS 0 messages paho had not written yet die with the socket
                # (paho clears its packet queue on reconnect): queue them again,
                # in their order, ahead of what came after them.
                for kind, data in reversed([i for i in self._outstanding.values() if i is not None]):
                    self._queue.push_front(Item(ItemKind(kind), data))
                self._outstanding.clear()
            if link.closing or link.state is LinkState.AUTH_FAILED:
                return
            link.state, link.last_error = LinkState.DISCONNECTED, reason
            log, link.down_logged = not link.down_logged, True
            self._cond.notify_all()
        if log:
            if was_connected:
                logger.warning(
                    "MQTT disconnected from %s (%s); reconnecting in the background, queueing up to %d messages",
                    self.broker, reason, self.cfg.queue_size,
                )
            else:
                logger.warning("MQTT broker %s %s; retrying in the background", self.broker, reason)
        self._update_stats()

    # ------------------------------------------------------------- status

    def _set_state(self, state: LinkState) -> None:
        with self._cond:
            self._link.state = state
        self._update_stats()

    def status(self) -> dict:
        """A snapshot: connected, state, queued, dropped, published, reconnects, last_error."""
        link = self._link
        with self._cond:
            return {"connected": link.connected, "state": link.state.value, "broker": self.broker,
                    "queued": len(self._queue), "dropped": self._queue.dropped, "published": link.published,
                    "reconnects": link.reconnects, "rate_skipped": self._latest.rate_skipped,
                    "last_error": link.last_error}

    def _update_stats(self) -> None:
        if self.stats is not None:
            self.stats.extra["mqtt"] = self.status()

    # -------------------------------------------------------------- close

    def close(self) -> None:
        """Send what is queued (up to ~1 s), publish ``offline``, disconnect. Idempotent."""
        if self._closed:
            return
        self._closed = True
        link = self._link
        with self._cond:
            link.closing = True
            link.flush_deadline = time.monotonic() + CLOSE_FLUSH_S
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(CLOSE_FLUSH_S + 1.0)
        client = self._client
        if client is not None:
            if link.connected:
                self._send(self.topics["availability"], OFFLINE, True)
                with self._cond:
                    self._cond.wait_for(lambda: not self._outstanding or not link.connected, 0.5)
            client.disconnect()
            client.loop_stop()
        with self._cond:
            link.connected = False
            if link.state is not LinkState.AUTH_FAILED:
                link.state = LinkState.CLOSED
        self._update_stats()

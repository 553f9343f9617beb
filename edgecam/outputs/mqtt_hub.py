"""One MQTT connection for a run: the paho client, its availability topic and Last Will, the worker that publishes.

The pipeline never waits on the network: what publishes (a :class:`edgecam.outputs.mqtt_state.Channel`:
a camera's :class:`edgecam.outputs.mqtt.MqttSink`, or the node's board health) only appends to its own
bounded queue (the oldest message is dropped when it is full) and the hub's worker thread hands messages to
paho, only while connected and only a few at a time (:data:`WINDOW`), so nothing piles up inside paho while
the broker is away. The worker takes the channels' queues in turn, one message each, so that a busy camera
never holds back another's. After each connect it first sends the birth: ``online`` on the availability
topic, then each channel's discovery configs and newest states (the broker may have restarted without them).

A run of one camera: its :class:`edgecam.outputs.mqtt.MqttSink` makes and owns a hub of its own. A run of
several (:class:`edgecam.pipeline.cameras.CamerasApp`): one hub for the run and a sink per camera on it
(:meth:`edgecam.outputs.mqtt.MqttSink.on_hub`).
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time

from edgecam.config.schema import MqttConfig
from edgecam.errors import ConfigError, EdgecamError, NetworkError
from edgecam.outputs import mqtt_messages as messages
from edgecam.outputs.mqtt_announced import Announced
from edgecam.outputs.mqtt_messages import OFFLINE, ONLINE, Item, ItemKind
from edgecam.outputs.mqtt_state import Channel, Link, LinkState, MqttNames, NodeChannel

logger = logging.getLogger("edgecam.outputs.mqtt")  # one logger for the whole MQTT output

# Messages handed to paho but not yet written (QoS 0) or acknowledged (QoS 1/2).
# Small, so that a stalled connection keeps messages in our bounded queues.
WINDOW = 16
CLOSE_FLUSH_S = 1.0
# CONNACK reasons that retrying with the same settings cannot fix.
_AUTH_REASONS = {"Bad user name or password", "Not authorized", "Banned", "Bad authentication method"}


class MqttHub:
    """The run's one MQTT connection, shared by its channels (one per camera, and the node's).

    Args:
        cfg: the ``mqtt`` section of the config.
        hostname: names the default topic prefix and client id (default: this host).

    :meth:`start` connects in the background and returns at once; :meth:`close` sends what is queued (up to
    ~1 s), publishes ``offline`` on the availability topic and disconnects. After bad credentials the hub
    stops retrying and sets :attr:`fatal_error` to a :class:`NetworkError` (exit code 5), which every
    camera's sink reports.
    """

    def __init__(self, cfg: MqttConfig, hostname: str | None = None, state_dir=None):
        """``state_dir``: where what was announced is remembered (None: not remembered, nothing cleared)."""
        self.cfg = cfg
        self.names = MqttNames.of(cfg, hostname or socket.gethostname())
        self.announced = Announced(state_dir, self.names.node_id)
        self._orphans: list[str] = []  # the discovery topics of devices gone (settled()), to clear
        self._nodes: set[str] = {self.names.node_id}  # the devices of this run (names_for)
        self.fatal_error: EdgecamError | None = None
        # _cond guards everything below (and the channels' state) that the worker, paho's thread and the
        # pipelines share.
        self._cond = threading.Condition()
        self._link = Link()
        self._channels: list[Channel] = []
        self._joined: list[Channel] = []  # joined while connected: their birth is due
        self._turn = 0  # the channel whose queue the worker takes from next
        self._node: NodeChannel | None = None
        self._cameras: set[str] = set()  # the names given to cameras' channels (names_for)
        self._outstanding: dict[int, None] = {}  # mids of the hub's own messages (availability)
        self._early: set[int] = set()  # mids whose on_publish ran before publish() returned
        self._subs: dict[str, object] = {}  # topic filter -> on_message(topic, payload): subscribed at each connect
        self._closed = False
        self._client = None
        self._mqtt = None
        self._thread: threading.Thread | None = None

    broker = property(lambda self: self.names.broker)
    #: The availability topic of the run (its Last Will): ``online`` / ``offline``.
    availability = property(lambda self: self.names.topics["availability"])

    def names_for(self, camera: str) -> MqttNames:
        """The names of ``camera`` on this connection (:meth:`MqttNames.for_camera`); a ConfigError for a name
        that is no identifier or was given already (two cameras would publish on one topic, as one device)."""
        names = self.names.for_camera(camera)
        with self._cond:
            if camera in self._cameras:
                raise ConfigError(f"cameras: two cameras named {camera!r}; expected distinct names")
            self._cameras.add(camera)
            self._nodes.add(names.node_id)
        return names

    def settled(self) -> None:
        """Every camera of the run has its channel: the Home Assistant devices announced before that are none
        of them (a camera removed from the config) are cleared, every entity (:mod:`edgecam.outputs.mqtt_announced`)."""
        with self._cond:
            self._orphans += self.announced.orphans(self._nodes | {c.node_id for c in self._channels})
            self._cond.notify_all()

    def _orphan_items(self) -> list[tuple[None, Item]]:
        """(lock held) The clears of :meth:`settled`, once."""
        items, self._orphans = [(None, Item(ItemKind.RAW, (t, "", True))) for t in self._orphans], []
        return items

    def join(self, channel: Channel, birth: bool = True) -> None:
        """Publish ``channel``'s messages over this connection: its birth (:meth:`Channel.birth_items`) at each
        connect, and now if connected (``birth``: False when it has nothing to announce yet)."""
        with self._cond:
            if channel in self._channels:
                return
            self._channels.append(channel)
            if self._link.connected and birth:
                self._joined.append(channel)
            self._cond.notify_all()

    def accepting(self) -> bool:
        """Whether new messages are taken: not closing, no fatal error."""
        return not self._link.closing and self.fatal_error is None

    def on_health(self, health) -> None:
        """The board's health, once for the run (the cameras' sinks of a run of several hand it here)."""
        with self._cond:
            if self._node is None:
                self._node = NodeChannel(self, self.names)
                self.join(self._node, birth=False)  # its first reading queues its entities and itself
        self._node.on_health(health)

    def subscribe(self, topic: str, on_message) -> None:
        """Call ``on_message(topic, payload)`` for every message on ``topic`` (a filter: wildcards allowed),
        subscribed again at each connect (QoS 1: a retained request or chunk is not lost to a reconnect).
        ``on_message`` runs on paho's network thread: it must only hand the message on."""
        with self._cond:
            self._subs[topic] = on_message
            client, connected = self._client, self._link.connected
        if client is not None:
            self._listen(client, topic, on_message)
            if connected:
                client.subscribe(topic, qos=1)

    def unsubscribe(self, topic: str) -> None:
        """Stop :meth:`subscribe`'s delivery of ``topic``."""
        with self._cond:
            had = self._subs.pop(topic, None) is not None
            client = self._client
        if had and client is not None:
            client.message_callback_remove(topic)
            client.unsubscribe(topic)

    @staticmethod
    def _listen(client, topic: str, on_message) -> None:
        client.message_callback_add(topic, lambda _c, _u, msg: on_message(msg.topic, bytes(msg.payload)))

    # ------------------------------------------------------------------ setup

    def start(self) -> None:
        """Configure the client and connect in the background; returns at once. Idempotent."""
        if self._client is not None or self._closed:
            return
        self._mqtt = messages.import_paho()
        cfg = self.cfg
        client = messages.new_client(cfg, self.names.client_id)
        client.will_set(self.availability, OFFLINE, qos=cfg.qos, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_queued_messages_set(WINDOW)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message  # the commands; subscribe()'s filters have their own callbacks
        with self._cond:
            self._client = client
            for topic, on_message in self._subs.items():
                self._listen(client, topic, on_message)
        self._set_state(LinkState.CONNECTING)
        logger.info("MQTT: publishing to %s under %s/ as %s", self.broker, self.names.prefix, self.names.client_id)
        # connect_async + loop_start: the network thread connects and
        # reconnects (1..30 s back-off) without ever blocking the caller.
        client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive)
        client.loop_start()
        self._thread = threading.Thread(target=self._run, name="edgecam-mqtt", daemon=True)
        self._thread.start()

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

    def _in_flight(self) -> int:
        return len(self._outstanding) + sum(len(c._outstanding) for c in self._channels)

    def _queued(self) -> int:
        return sum(len(c._queue) for c in self._channels)

    def _pop(self) -> tuple[Channel, Item]:
        """(lock held, some queue not empty) The oldest item of the next channel in turn that has one."""
        n = len(self._channels)
        for k in range(n):
            channel = self._channels[(self._turn + k) % n]
            if channel._queue:
                self._turn = (self._turn + k + 1) % n
                return channel, channel._queue.pop()
        raise AssertionError("no channel has an item")

    def _next_items(self) -> list[tuple[Channel | None, Item]] | None:
        """(lock held) Wait for what to send next: a birth, else one channel's oldest item; None: done."""
        link = self._link
        while True:
            now = time.monotonic()
            waits = [w for w in (c.release_held(now) for c in self._channels) if w is not None]
            has_work = link.need_birth or bool(self._joined) or bool(self._orphans) or self._queued() > 0
            if has_work and link.connected and self._in_flight() < WINDOW:
                break
            if link.closing and (not has_work or not link.connected or time.monotonic() > link.flush_deadline):
                return None
            # on_connect, on_publish, the channels' enqueues and close() all notify; a held change is due later.
            self._cond.wait(min([0.5, *waits]) + 0.001)
        if link.need_birth or self._joined:
            born = self._channels if link.need_birth else self._joined
            items = [(None, Item(ItemKind.RAW, (self.availability, ONLINE, True)))] if link.need_birth else []
            items += [(channel, item) for channel in born for item in channel.birth_items()]
            link.need_birth, self._joined = False, []
            return items + self._orphan_items()
        if self._orphans:
            return self._orphan_items()
        return [self._pop()]

    def _work(self) -> None:
        while True:
            with self._cond:
                items = self._next_items()
            if items is None:
                return
            for channel, item in items:
                raw = item.kind is ItemKind.RAW
                msg = item.data if raw else channel.encode(item)  # (topic, payload, retain)
                if msg is not None and not self._send(*msg, channel=channel, item=None if raw else item):
                    if not raw:
                        with self._cond:
                            channel._queue.push_front(item)
                    break
            self._update_stats()

    def _send(self, topic: str, payload, retain: bool, channel: Channel | None = None,
              item: Item | None = None) -> bool:
        """Hand one message to paho; False when paho did not take it (connection gone)."""
        # Never call paho while holding our lock: paho runs on_publish with
        # its own locks held, and on_publish takes ours.
        info = self._client.publish(topic, payload, qos=self.cfg.qos, retain=retain)
        if info.rc != self._mqtt.MQTT_ERR_SUCCESS:
            if info.rc == self._mqtt.MQTT_ERR_NO_CONN and self.cfg.qos > 0:
                # paho keeps QoS>0 messages and resends them on reconnect.
                self._track(info.mid, channel, item)
                return True
            with self._cond:  # the connection just went; on_disconnect follows
                self._cond.wait(0.05)
            return False
        self._track(info.mid, channel, item)
        return True

    def _track(self, mid: int, channel: Channel | None, item: Item | None) -> None:
        with self._cond:
            if mid in self._early:
                self._early.discard(mid)
            else:
                (self._outstanding if channel is None else channel._outstanding)[mid] = item

    # ----------------------------------------------------- paho callbacks

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._cond:
            for outstanding in [self._outstanding] + [c._outstanding for c in self._channels]:
                if mid in outstanding:
                    del outstanding[mid]
                    break
            else:
                self._early.add(mid)
            self._link.published += 1
            self._cond.notify_all()
        self._update_stats()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            reason = reason_code.getName()
            if reason in _AUTH_REASONS:
                self._refused(client, reason)
                return
            self._went_down(f"refused: {reason}")
            return
        link = self._link
        with self._cond:
            link.connected = link.need_birth = True
            self._joined = []  # the birth of every channel
            link.down_logged = False
            self._early.clear()  # a new session: no stale mids
            if link.ever_connected:
                link.reconnects += 1
                logger.info("MQTT reconnected to %s (%d messages queued)", self.broker, self._queued())
            else:
                logger.info("MQTT connected to %s", self.broker)
            link.ever_connected = True
            link.state = LinkState.CONNECTED
            subs = list(self._subs)
            self._cond.notify_all()
        if self.cfg.commands:  # a clean session each time: subscribe again (the run's and each camera's)
            prefix, qos = self.names.prefix, self.cfg.qos
            client.subscribe([(f"{prefix}/set/#", qos), (f"{prefix}/+/set/#", qos)])
        if subs:  # the broker sends each filter's retained messages now: a request made while we were away
            client.subscribe([(topic, 1) for topic in subs])
        self._update_stats()

    def _on_message(self, client, userdata, msg) -> None:
        """A command (``mqtt.commands``): to the channel of the camera whose ``<prefix>/set/`` it is under."""
        for channel in list(self._channels):
            head = f"{channel.prefix}/set/"
            if msg.topic.startswith(head) and hasattr(channel, "on_command"):
                channel.on_command(msg.topic[len(head):], bytes(msg.payload), bool(msg.retain))
                return

    def _refused(self, client, reason: str) -> None:
        """Bad credentials: say so once, stop retrying, and let the pipelines stop on :attr:`fatal_error`."""
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
            if self.cfg.qos == 0:
                # QoS 0 messages paho had not written yet die with the socket
                # (paho clears its packet queue on reconnect): queue them again,
                # in their order, ahead of what came after them.
                for channel in self._channels:
                    for kind, data in reversed([i for i in channel._outstanding.values() if i is not None]):
                        channel._queue.push_front(Item(ItemKind(kind), data))
                    channel._outstanding.clear()
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

    def link_status(self) -> dict:
        """The connection: connected, state, broker, published, reconnects, last_error (lock held or not)."""
        link = self._link
        with self._cond:
            return {"connected": link.connected, "state": link.state.value, "broker": self.broker,
                    "queued": self._queued(), "dropped": sum(c._queue.dropped for c in self._channels),
                    "published": link.published, "reconnects": link.reconnects,
                    "rate_skipped": sum(c._latest.rate_skipped for c in self._channels), "last_error": link.last_error}

    def _update_stats(self) -> None:
        with self._cond:
            channels = list(self._channels)
        for channel in channels:
            channel.update_stats()

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
                self._send(self.availability, OFFLINE, True)
                with self._cond:
                    self._cond.wait_for(lambda: not self._in_flight() or not link.connected, 0.5)
            client.disconnect()
            client.loop_stop()
        with self._cond:
            link.connected = False
            if link.state is not LinkState.AUTH_FAILED:
                link.state = LinkState.CLOSED
        self._update_stats()

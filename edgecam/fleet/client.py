"""The ``edgecam fleet`` command's MQTT connection: connect (credentials and TLS as the ``mqtt`` section says),
subscribe, hand each message to a callback, publish and wait for the broker to take it."""

from __future__ import annotations

import logging
import os
import threading

from edgecam.errors import EXIT_TEMPFAIL, NetworkError
from edgecam.outputs import mqtt_messages as messages

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0


class FleetClient:
    """A paho client for one ``edgecam fleet`` command; ``on_message(topic, payload, retained)`` per message."""

    def __init__(self, cfg, on_message):
        self._mqtt = messages.import_paho()
        self.cfg = cfg
        self.broker = f"{cfg.host}:{cfg.port}"
        client = messages.new_client(cfg, f"edgecam-fleet-{os.getpid()}")
        self._connected = threading.Event()
        self._refused: str | None = None
        self._subacks: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = lambda _c, _u, msg: on_message(msg.topic, bytes(msg.payload), bool(msg.retain))
        self.client = client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refused = reason_code.getName()
        self._connected.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        with self._lock:  # the SUBACK may come before subscribe() returned its mid
            self._subacks.setdefault(mid, threading.Event()).set()

    def connect(self) -> None:
        """Connect, or one line: the broker refused us (exit 5) or cannot be reached (exit 75: try later)."""
        try:
            self.client.connect(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive)
        except OSError as e:
            raise NetworkError(f"MQTT broker {self.broker} unreachable ({e.strerror or e}); check --broker "
                               "and that the broker runs", exit_code=EXIT_TEMPFAIL) from None
        self.client.loop_start()
        if not self._connected.wait(CONNECT_TIMEOUT_S):
            self.close()
            raise NetworkError(f"MQTT broker {self.broker} did not answer within {CONNECT_TIMEOUT_S:.0f} s",
                               exit_code=EXIT_TEMPFAIL)
        if self._refused:
            self.close()
            raise NetworkError(f"MQTT broker {self.broker} refused us: {self._refused}; check --username and "
                               "--password-file (or the config's mqtt section)")

    def subscribe(self, topics: list[str]) -> None:
        """Subscribe (QoS 1) and wait for the broker's answer: its retained messages are on their way then."""
        rc, mid = self.client.subscribe([(t, 1) for t in topics])
        with self._lock:
            event = self._subacks.setdefault(mid, threading.Event())
        if rc == self._mqtt.MQTT_ERR_SUCCESS and not event.wait(CONNECT_TIMEOUT_S):
            raise NetworkError(f"MQTT broker {self.broker} did not confirm the subscription", exit_code=EXIT_TEMPFAIL)

    def publish(self, topic: str, payload, retain: bool = True) -> None:
        """Publish (QoS 1) and wait until the broker has it."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        try:
            info.wait_for_publish(CONNECT_TIMEOUT_S)
        except (RuntimeError, ValueError) as e:
            raise NetworkError(f"MQTT broker {self.broker}: publishing on {topic} failed ({e})",
                               exit_code=EXIT_TEMPFAIL) from None
        if not info.is_published():
            raise NetworkError(f"MQTT broker {self.broker} did not take the message on {topic} within "
                               f"{CONNECT_TIMEOUT_S:.0f} s", exit_code=EXIT_TEMPFAIL)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

"""What ``edgecam fleet`` finds on the broker: every node's info, whether it is online, its last push answer.

The nodes' messages are retained, so a listener gets them all at once after subscribing: it listens for a
short window (``--wait``), then shows a table, JSON, or writes a Prometheus file_sd targets file.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from edgecam.fleet import messages as fm

#: Silence after which the retained messages are taken to be all there (they come in one burst).
QUIET_S = 0.3


@dataclass
class Node:
    """One node as the broker shows it."""

    prefix: str
    info: dict = field(default_factory=dict)
    online: bool | None = None  # None: no availability message seen
    ack: dict | None = None  # its newest push answer

    @property
    def name(self) -> str:
        return str(self.info.get("node") or self.prefix)

    def matches(self, who: str) -> bool:
        """Whether ``who`` (a name given to --to) is this node: its node id, host or topic prefix."""
        return who in (self.name, self.info.get("host"), self.prefix)


class Collector:
    """Collects the nodes' messages (a :class:`edgecam.fleet.client.FleetClient`'s callback)."""

    def __init__(self, pattern: str = fm.DEFAULT_PATTERN):
        self.pattern = pattern.rstrip("/")
        self.nodes: dict[str, Node] = {}
        self.lock = threading.Condition()
        self.extra: list[str] = []  # availability topics outside the pattern, to subscribe to as well
        self.on_ack = None  # called with (node, ack dict) for each answer, off the lock
        self._last = 0.0  # when the newest message came (monotonic)

    def topics(self) -> list[str]:
        return [fm.topic(self.pattern, w) for w in (fm.INFO, "availability", fm.ACK)]

    def on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        for suffix in (fm.ACK, fm.INFO, "availability"):
            if topic.endswith("/" + suffix):
                self._take(topic[: -len(suffix) - 1], suffix, payload)
                return

    def _take(self, prefix: str, what: str, payload: bytes) -> None:
        if what == "availability":
            with self.lock:
                self.nodes.setdefault(prefix, Node(prefix)).online = payload == b"online"
                self._last = time.monotonic()
                self.lock.notify_all()
            return
        try:
            data = json.loads(payload) if payload else None
        except (UnicodeDecodeError, ValueError):
            return
        if not isinstance(data, dict):
            return
        with self.lock:
            node = self.nodes.setdefault(prefix, Node(prefix))
            if what == fm.INFO:
                node.info = data
            else:
                node.ack = data
            self._last = time.monotonic()
            self.lock.notify_all()
        if what == fm.ACK and self.on_ack is not None:
            self.on_ack(node, data)

    def known(self) -> list[Node]:
        """The nodes that said what they are (an availability topic alone is no edgecam node), by name."""
        with self.lock:
            return sorted((n for n in self.nodes.values() if n.info), key=lambda n: n.name)

    def wait_quiet(self, window_s: float, quiet_s: float = QUIET_S) -> list[Node]:
        """The nodes found once nothing came for ``quiet_s`` (the broker sends the retained messages at once,
        after the subscription), or after ``window_s`` at most."""
        now = time.monotonic()
        end, self._last = now + window_s, now
        with self.lock:
            while True:
                now = time.monotonic()
                if now >= end or now - self._last >= quiet_s:
                    break
                self.lock.wait(min(end, self._last + quiet_s) - now)
        return self.known()


def _age(iso: str, now: float) -> str:
    try:
        s = max(0.0, now - datetime.fromisoformat(iso).timestamp())
    except (TypeError, ValueError):
        return "?"
    return f"{s:.0f} s ago" if s < 120 else f"{s / 60:.0f} min ago" if s < 7200 else f"{s / 3600:.0f} h ago"


def status(node: Node) -> str:
    return "online" if node.online else "offline" if node.online is False else "unknown"


def rows(nodes: list[Node], now: float | None = None) -> list[list[str]]:
    """One row per camera: node, host, status, version, camera, model, sha256 (12), fps, temp, throttled, seen."""
    now = time.time() if now is None else now
    out = []
    for node in nodes:
        i = node.info
        temp = f"{i['temperature_c']:.1f}" if isinstance(i.get("temperature_c"), int | float) else "-"
        throttled = {True: "yes", False: "no"}.get(i.get("throttled"), "-")
        for cam in i.get("cameras") or [{}]:
            fps = cam.get("fps")
            out.append([node.name, str(i.get("host", "")), status(node), str(i.get("version", "")),
                        cam.get("name") or "-", str(cam.get("model", "")), (cam.get("model_sha256") or "-")[:12],
                        f"{fps:.1f}" if isinstance(fps, int | float) else "-", temp, throttled,
                        _age(i.get("time", ""), now)])
    return out


HEADER = ["NODE", "HOST", "STATUS", "VERSION", "CAMERA", "MODEL", "SHA256", "FPS", "TEMP", "THROTTLED", "LAST SEEN"]


def table(nodes: list[Node], now: float | None = None) -> str:
    """The nodes as a text table (one line per camera)."""
    lines = [HEADER] + rows(nodes, now)
    widths = [max(len(line[k]) for line in lines) for k in range(len(HEADER))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)


def as_json(nodes: list[Node]) -> list[dict]:
    """The nodes as JSON: the node info, with ``online`` and the newest push answer."""
    return [{**n.info, "online": n.online, "last_push": n.ack} for n in nodes]


def loopback_only(node: Node) -> bool:
    """Whether the node serves ``/metrics`` on its loopback address only (``http.host: 127.0.0.1``, the
    default): no other machine can scrape it."""
    host = urlsplit(node.info.get("metrics_url") or "").hostname or ""
    return host == "localhost" or host == "::1" or host.startswith("127.")


def file_sd(nodes: list[Node]) -> list[dict]:
    """Prometheus file_sd targets: one group per node that serves ``/metrics`` to other machines, labelled with
    node and host."""
    out = []
    for n in nodes:
        url = urlsplit(n.info.get("metrics_url") or "")
        if not url.netloc or loopback_only(n):
            continue
        labels = {"node": n.name, "host": str(n.info.get("host", "")), "edgecam_version": str(n.info.get("version"))}
        if url.path and url.path != "/metrics":
            labels["__metrics_path__"] = url.path
        out.append({"targets": [url.netloc], "labels": labels})
    return out

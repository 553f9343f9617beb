"""``edgecam fleet push``: send a model (or a rollback) to nodes, and follow each node's answer.

The order matters: the file's chunks first (retained, once for the whole fleet), then each target's
request (retained on ``<prefix>/push``), the answers listened for before any request goes out. A node that
is offline gets its request when it connects again; the command does not wait for it (its answer shows
later in ``edgecam fleet --json``'s ``last_push``).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from edgecam import registry
from edgecam.errors import ConfigError
from edgecam.fleet import messages as fm
from edgecam.fleet.listing import Collector, Node, status
from edgecam.fleet.messages import PushKind, PushRequest
from edgecam.model import custom_models
from edgecam.outputs.base import iso_time
from edgecam.registry.store import sha256_file


class Outcome(Enum):
    """How one node ended a push."""

    OK = "ok"
    FAILED = "failed"
    PENDING = "pending"  # offline: it applies the request when it reconnects
    SKIPPED = "skipped"  # --to all: a node that takes no push (mqtt.commands: false)


@dataclass
class Target:
    node: Node
    outcome: Outcome | None = None
    line: str = ""
    #: online when its request went out: waited for even if it goes offline meanwhile (a node whose run
    #: starts again to take the model is away for a moment, then answers)
    sent_online: bool = False


def pick(nodes: list[Node], to: list[str]) -> list[Node]:
    """The nodes ``--to`` names (``all``: every node found); a ConfigError naming what was not found."""
    if to == ["all"]:
        if not nodes:
            raise ConfigError("--to all: no edgecam node found on the broker (edgecam fleet lists them)")
        return nodes
    missing = [w for w in to if not any(n.matches(w) for n in nodes)]
    if missing:
        known = ", ".join(n.name for n in nodes) or "none"
        raise ConfigError(f"--to: no node named {', '.join(missing)} on the broker (nodes: {known})")
    return [n for n in nodes if any(n.matches(w) for w in to)]


def request_for(model: str | None, rollback: bool, blob_root: str) -> tuple[PushRequest, bytes]:
    """The request (and a file's bytes) for MODEL: a learned model file, a registry name, or --rollback."""
    rid, when = uuid.uuid4().hex[:16], iso_time(0)
    if rollback:
        return PushRequest(rid, PushKind.ROLLBACK, time=when), b""
    if not model:
        raise ConfigError("fleet push: give MODEL (a learned model file or a registry name) or --rollback")
    path = Path(model)
    if path.is_file():
        return _file_request(rid, when, path, blob_root)

    if model not in registry.load_registry():
        raise ConfigError(f"fleet push: {model!r} is neither a file nor a registry model name "
                          "(edgecam models list names them; a learned model is pushed as its .head.npz file)")
    return PushRequest(rid, PushKind.REGISTRY, model=model, time=when), b""


def _file_request(rid: str, when: str, path: Path, blob_root: str) -> tuple[PushRequest, bytes]:
    size = path.stat().st_size
    if size > fm.MAX_BYTES:
        raise ConfigError(f"fleet push: {path} is {size} bytes, more than the {fm.MAX_BYTES} a push carries; "
                          "a .tflite model goes out by its registry name")
    model = custom_models.load(path)  # a ModelError line when it is not a learned model
    data, sha = path.read_bytes(), sha256_file(path)
    return PushRequest(rid, PushKind.FILE, model=model.name, sha256=sha, size=len(data),
                       chunks=fm.chunk_count(len(data)), blob=f"{blob_root}/{sha}", time=when), data


class Push:
    """One push to ``targets``, over ``client`` (a :class:`edgecam.fleet.client.FleetClient` whose messages go to
    ``collector``). ``say(line)`` prints progress."""

    def __init__(self, client, collector: Collector, targets: list[Node], req: PushRequest, data: bytes, say,
                 skip_unable: bool = False):
        """``skip_unable``: a node that takes no push is skipped (``--to all``), not failed (a node named)."""
        self.client, self.collector, self.req, self.data, self.say = client, collector, req, data, say
        self.skip_unable = skip_unable
        self.targets = {t.prefix: Target(t) for t in targets}
        self.started = time.monotonic()
        collector.on_ack = self._on_ack

    def _on_ack(self, node: Node, ack: dict) -> None:
        with self.collector.lock:
            target = self.targets.get(node.prefix)
            if target is None or ack.get("id") != self.req.id or target.outcome in (Outcome.OK, Outcome.FAILED):
                return
            took = time.monotonic() - self.started
            sha = str(ack.get("sha256") or "")
            if ack.get("ok") and self.req.kind is PushKind.FILE and sha != self.req.sha256:
                target.outcome, why = Outcome.FAILED, f"answered sha256 {sha[:12]}, expected {self.req.sha256[:12]}"
            elif ack.get("ok"):
                target.outcome, why = Outcome.OK, ""
            else:
                target.outcome, why = Outcome.FAILED, str(ack.get("error") or "no reason given")
            running = f"running {ack.get('model')} (sha256 {sha[:12] or '?'})"
            target.line = (f"{node.name}: ok, {running} after {took:.2f} s" if not why else
                           f"{node.name}: FAILED after {took:.2f} s: {why}; still {running}")
            self.collector.lock.notify_all()
        self.say(target.line)

    def send(self) -> None:
        """The chunks, then each target's request (answers are listened for already)."""
        req = self.req
        if req.kind is PushKind.FILE:
            self.say(f"sending {req.model} ({req.size} bytes, {req.chunks} chunk(s), sha256 {req.sha256[:12]}) "
                     f"to {len(self.targets)} node(s)")
            for i in range(req.chunks):
                self.client.publish(f"{req.blob}/{i}", self.data[i * fm.CHUNK_BYTES:(i + 1) * fm.CHUNK_BYTES])
        else:
            what = "a rollback" if req.kind is PushKind.ROLLBACK else f"registry model {req.model}"
            self.say(f"sending {what} to {len(self.targets)} node(s)")
        for prefix, target in self.targets.items():
            if not target.node.info.get("push"):
                target.outcome = Outcome.SKIPPED if self.skip_unable else Outcome.FAILED
                target.line = (f"{target.node.name}: {'skipped' if self.skip_unable else 'FAILED'}: it takes no "
                               "push (mqtt.commands: false)")
                self.say(target.line)
                continue
            self.client.publish(fm.topic(prefix, fm.PUSH), req.to_json())
            target.sent_online = target.node.online
            if not target.node.online:
                self.say(f"{target.node.name}: {status(target.node)}; it applies the push when it reconnects")

    def wait(self, timeout_s: float) -> list[Target]:
        """Until every online target answered (or ``timeout_s``); the ones that did not are failed."""
        deadline = self.started + timeout_s
        with self.collector.lock:
            while True:
                waiting = [t for t in self.targets.values()
                           if t.outcome is None and (t.node.online or t.sent_online)]
                if not waiting or time.monotonic() >= deadline:
                    break
                self.collector.lock.wait(min(0.2, max(0.0, deadline - time.monotonic())))
            for t in self.targets.values():
                if t.outcome is None and t.node.online:
                    t.outcome, t.line = Outcome.FAILED, f"{t.node.name}: FAILED: no answer within {timeout_s:.0f} s"
                elif t.outcome is None:
                    t.outcome = Outcome.PENDING
        for t in waiting:
            self.say(t.line)
        return list(self.targets.values())

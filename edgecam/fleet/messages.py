"""The fleet's topics and messages, shared by the nodes and ``edgecam fleet``.

Per node, under its topic prefix (``edgecam/<host>`` unless ``mqtt.topic_prefix`` says otherwise):

- ``<prefix>/node``: the node info (retained JSON, :func:`node_info`), at each connect, when it changes and
  every :data:`INFO_EVERY_S` seconds (its ``fps`` and ``time``: "last seen").
- ``<prefix>/availability``: ``online`` / ``offline`` (the Last Will), as for Home Assistant.
- ``<prefix>/push``: the newest push request for this node (retained, :class:`PushRequest`): a node that was
  offline gets it when it connects again.
- ``<prefix>/push/ack``: the node's answer to it (retained JSON, :func:`ack`).

A learned model's bytes go once for the whole fleet, on ``<blob topic>/<i>`` (retained, :data:`CHUNK_BYTES`
each; the request names the blob topic, its size and its SHA-256), so that a push to 10,000 nodes sends the
file once, not 10,000 times.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from enum import Enum

from edgecam.names import model_name_problem

INFO = "node"
PUSH = "push"
ACK = "push/ack"
#: The default wildcard ``edgecam fleet`` listens on: the default prefixes ``edgecam/<host>``.
DEFAULT_PATTERN = "edgecam/+"
#: Where ``edgecam fleet push`` puts a file's chunks by default: ``<root>/<sha256>/<i>``.
BLOB_ROOT = "edgecam/fleet/blob"
CHUNK_BYTES = 128 * 1024  # well under every broker's default message limit (Mosquitto: 256 MB)
#: The largest model file a push may carry: a learned model is a few kB; a whole .tflite goes by registry name.
MAX_BYTES = 8 * 1024 * 1024
INFO_EVERY_S = 60.0


class PushKind(Enum):
    """What a push request asks for."""

    FILE = "file"  # a learned model (edgecam learn), its bytes on the blob topic
    REGISTRY = "registry"  # a registry model name: the node fetches and verifies it as `models fetch` does
    ROLLBACK = "rollback"  # back to the model before the last push


@dataclass(frozen=True)
class PushRequest:
    """One push request, as published on ``<prefix>/push`` (JSON of its fields)."""

    id: str
    kind: PushKind
    model: str = ""  # the model's name (a learned model's name, or a registry name); rollback: ""
    sha256: str = ""  # a file's SHA-256 (hex)
    size: int = 0  # a file's size in bytes
    chunks: int = 0  # how many chunks on ``blob``
    blob: str = ""  # the topic under which the chunks are: ``<blob>/<i>``
    time: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self) | {"kind": self.kind.value})

    @classmethod
    def parse(cls, payload: bytes) -> PushRequest:
        """The request in ``payload``; ValueError with one line saying what is wrong."""
        try:
            raw = json.loads(payload)
        except (UnicodeDecodeError, ValueError):
            raise ValueError("not JSON") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
            raise ValueError("expected a JSON object with an id")
        try:
            kind = PushKind(raw.get("kind"))
        except ValueError:
            raise ValueError(f"kind {raw.get('kind')!r}: expected one of "
                             + ", ".join(k.value for k in PushKind)) from None
        fields = {k: raw[k] for k in ("model", "sha256", "blob", "time") if isinstance(raw.get(k), str)}
        ints = {k: raw[k] for k in ("size", "chunks") if isinstance(raw.get(k), int) and raw[k] >= 0}
        req = cls(id=raw["id"][:64], kind=kind, **fields, **ints)
        problem = req.problem()
        if problem:
            raise ValueError(problem)
        return req

    def problem(self) -> str | None:
        """What makes this request unusable, or None."""
        if self.kind is PushKind.ROLLBACK:
            return None
        if model_name_problem(self.model):
            return f"model {self.model!r}: not a model name"
        if self.kind is PushKind.FILE:
            if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
                return "sha256: expected 64 lowercase hex digits"
            if not 0 < self.size <= MAX_BYTES:
                return f"size {self.size}: expected 1 to {MAX_BYTES} bytes"
            if self.chunks != chunk_count(self.size) or not self.blob or "+" in self.blob or "#" in self.blob:
                return "chunks/blob: do not match the size"
        return None


def chunk_count(size: int) -> int:
    return max(1, math.ceil(size / CHUNK_BYTES))


def topic(prefix: str, which: str) -> str:
    """``<prefix>/<which>``: which is :data:`INFO`, :data:`PUSH`, :data:`ACK` or ``availability``."""
    return f"{prefix}/{which}"


def ack(request_id: str, ok: bool, model: str, sha256: str, error: str = "", previous: str = "",
        when: str = "") -> str:
    """The JSON of ``<prefix>/push/ack``: the request it answers, and the model the node runs now."""
    return json.dumps({"id": request_id, "ok": ok, "model": model, "sha256": sha256, "error": error,
                       "previous": previous, "time": when})

"""A node taking push requests (``mqtt.commands: true``): verify, store, switch live, acknowledge.

A request (``<prefix>/push``, retained) is handled on a thread of its own (``edgecam-fleet-push``), never on
paho's: a learned model's chunks are gathered from the blob topic, their size and SHA-256 checked, the file
read as a learned model (:func:`edgecam.model.custom_models.load`) before it is stored in the model folder; a
registry name is fetched and verified as ``edgecam models fetch`` does. Then every camera is switched to it
live (the run's switch: the overrides store and the reload path); the answer goes on ``<prefix>/push/ack``
(retained) with the SHA-256 of the model the node runs now. A request that fails changes nothing (a file it
had replaced is put back) and its answer says why.

What a node did is kept in the state directory (``fleet/state.json``): the last request answered (a retained
request is not done twice, after a restart either), the model before the last push and, when a push replaced
a learned model's file, that file (``fleet/previous.head.npz``), for ``--rollback``.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time

from edgecam.atomic import write_atomic
from edgecam.config.state import feature_dir
from edgecam.errors import EdgecamError
from edgecam.fleet import install
from edgecam.fleet import messages as fm
from edgecam.fleet.install import PushFailed
from edgecam.fleet.messages import PushKind, PushRequest
from edgecam.fleet.model_files import model_path
from edgecam.outputs.base import iso_time
from edgecam.outputs.mqtt_messages import ItemKind
from edgecam.registry.store import new_sha256

logger = logging.getLogger(__name__)

CHUNKS_TIMEOUT_S = 60.0  # a file's chunks all arrived within this, else the push fails (and may be sent again)


class Receiver:
    """Takes the push requests of one node (see the module docstring)."""

    def __init__(self, node, switch):
        self.node, self.switch = node, switch
        self.restarting = False  # the last switch is taken by the run starting again (install.switch_to)
        self.hub = node.hub
        prefix = self.hub.names.prefix
        self.request_topic, self.ack_topic = fm.topic(prefix, fm.PUSH), fm.topic(prefix, fm.ACK)
        self.dir = feature_dir(node.cfg.state_dir, "fleet")
        self.state = self._read_state()
        self._requests: queue.Queue = queue.Queue()
        self._chunks: dict[int, bytes] = {}
        self._chunks_cond = threading.Condition()
        self._blob, self._expected = "", 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- state ----------------------------------------------------------------

    def _read_state(self) -> dict:
        try:
            state = json.loads((self.dir / "state.json").read_text())
            return state if isinstance(state, dict) else {}
        except (OSError, ValueError):
            return {}

    def _write_state(self) -> None:
        try:
            write_atomic(self.dir / "state.json", json.dumps(self.state, indent=1).encode())
        except OSError as e:
            logger.error("fleet: cannot write %s (%s); a retained push may be applied again after a restart",
                         self.dir / "state.json", e.strerror or e)

    # -- receiving --------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="edgecam-fleet-push", daemon=True)
        self._thread.start()
        self.hub.subscribe(self.request_topic, self._on_request)

    def _on_request(self, _topic: str, payload: bytes) -> None:
        if payload:  # an empty retained message clears the request
            self._requests.put(payload)

    def _on_chunk(self, topic: str, payload: bytes) -> None:
        tail = topic.rsplit("/", 1)[-1]
        if tail.isdigit() and len(payload) <= fm.CHUNK_BYTES:
            with self._chunks_cond:
                # Only the chunks the request announced: what else arrives there cannot fill the memory.
                if topic.startswith(self._blob + "/") and int(tail) < self._expected:
                    self._chunks[int(tail)] = payload
                    self._chunks_cond.notify_all()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                payload = self._requests.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self._handle(payload)
            except Exception:  # one bad request must not end the node's pushes
                logger.exception("fleet: push request failed")

    def _handle(self, payload: bytes) -> None:
        try:
            req = PushRequest.parse(payload)
        except ValueError as e:
            logger.error("fleet: push request on %s refused: %s", self.request_topic, e)
            self._ack("", False, f"bad request: {e}")
            return
        if req.id == self.state.get("done"):
            return  # answered already (the broker sends the retained request again at each connect)
        pending = self.state.pop("pending", None)
        if pending and pending.get("id") == req.id:  # applied by the last run, which started again to take it
            self._answer_pending(req, pending["model"])
            return
        logger.warning("fleet: push %s: %s %s", req.id, req.kind.value, req.model or "(previous model)")
        self.restarting = False
        try:
            model, sha = self._apply(req)
        except (PushFailed, EdgecamError) as e:
            why = e.message if isinstance(e, EdgecamError) else str(e)
            logger.error("fleet: push %s failed, keeping the running model: %s", req.id, why)
            self.state["done"] = req.id
            self._write_state()
            self._ack(req.id, False, why)
            return
        if self.restarting:  # the run starts again with it: the next run answers (kept in the state)
            logger.warning("fleet: push %s: %s taken; the run starts again with it", req.id, model)
            self.state["pending"] = {"id": req.id, "model": model}
            self._write_state()
            return
        logger.warning("fleet: push %s applied: now running %s (sha256 %s)", req.id, model, sha[:12])
        self.state["done"] = req.id
        self._write_state()
        self._ack(req.id, True, "", model, sha)
        self.node.changed()

    def _answer_pending(self, req, model: str) -> None:
        """The push the last run took by starting again: answered now that this run shows what it runs."""
        self.state["done"] = req.id
        self._write_state()
        running, sha = self._current()
        if running == model:
            logger.warning("fleet: push %s applied: now running %s (sha256 %s)", req.id, model, sha[:12])
            self._ack(req.id, True, "", model, sha)
            self.node.changed()
        else:
            logger.error("fleet: push %s: the run started again with %s, not %s", req.id, running, model)
            self._ack(req.id, False, f"the run started again with {running}, not {model}")

    def _ack(self, request_id: str, ok: bool, error: str, model: str = "", sha: str = "") -> None:
        if not ok:
            model, sha = self._current()
        previous = (self.state.get("previous") or {}).get("model", "")
        payload = fm.ack(request_id, ok, model, sha, error, previous, iso_time(0))
        self.node.channel._enqueue(ItemKind.RAW, (self.ack_topic, payload, True))

    # -- applying ---------------------------------------------------------------

    def _current(self) -> tuple[str, str]:
        cams = self.node.cameras()
        name = cams[0].model if cams else ""
        return name, self.node.sums.of(model_path(name, self.node.cfg.model.dir)) if name else ""

    def _apply(self, req: PushRequest) -> tuple[str, str]:
        before = self._current()
        if req.kind is PushKind.ROLLBACK:
            prev = self.state.get("previous")
            if not prev:
                raise PushFailed("nothing to roll back to: no push was applied here")
            restore = install.saved_previous(self.dir, prev, self.node.cfg.model.dir)
            name, sha = install.switch_to(self, prev["model"], restore)
        elif req.kind is PushKind.REGISTRY:
            name, sha = install.switch_to(self, req.model, install.fetch_registry(self.node.cfg, req.model))
        else:
            data = self._gather(req)
            name, sha = install.switch_to(self, req.model, install.stage_file(self, req, data))
        if before[0] and (before[0], before[1]) != (name, sha):
            self.state["previous"] = {"model": before[0], "sha256": before[1]}
        return name, sha

    def _gather(self, req: PushRequest) -> bytes:
        """The file's bytes from its chunks (retained on the blob topic), checked; PushFailed when not."""
        with self._chunks_cond:
            self._chunks, self._blob, self._expected = {}, req.blob, req.chunks
        self.hub.subscribe(f"{req.blob}/+", self._on_chunk)
        try:
            deadline = time.monotonic() + CHUNKS_TIMEOUT_S
            with self._chunks_cond:
                while len(self._chunks) < req.chunks and not self._stop.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise PushFailed(f"only {len(self._chunks)} of {req.chunks} chunks arrived on "
                                         f"{req.blob}/ within {CHUNKS_TIMEOUT_S:.0f} s; push again")
                    self._chunks_cond.wait(min(left, 0.5))
                data = b"".join(self._chunks.get(i, b"") for i in range(req.chunks))
        finally:
            self.hub.unsubscribe(f"{req.blob}/+")
            with self._chunks_cond:
                self._expected = 0

        if len(data) != req.size:
            raise PushFailed(f"got {len(data)} bytes, the request says {req.size}; push again")
        digest = new_sha256()
        digest.update(data)
        if digest.hexdigest() != req.sha256:
            raise PushFailed(f"checksum mismatch: got sha256 {digest.hexdigest()}, expected {req.sha256}")
        return data

    def close(self) -> None:
        self._stop.set()
        with self._chunks_cond:
            self._chunks_cond.notify_all()
        if self._thread is not None:
            self._thread.join(2.0)

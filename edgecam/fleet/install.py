"""Putting a pushed model in place on a node, so that a failed switch leaves everything as it was.

A learned model's file goes into the model folder under its name (``<name>.head.npz``); when it replaces a
file of that name with other bytes, those are kept in the state directory (``fleet/previous-<name>.head.npz``)
for ``--rollback``, and put back if the switch fails.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from edgecam.atomic import write_atomic
from edgecam.errors import EdgecamError, OutputError
from edgecam.fleet.model_files import model_path
from edgecam.model import custom_models
from edgecam.registry.download import fetch
from edgecam.registry.store import models_dir, new_sha256

logger = logging.getLogger(__name__)


class PushFailed(Exception):
    """One line saying why a push request was not applied."""


class Staged:
    """A model file written in place (or nothing written: ``dest`` None), and how to undo it."""

    def __init__(self, dest: Path | None = None, old: bytes | None = None):
        self.dest, self.old = dest, old

    def undo(self) -> None:
        if self.dest is None:
            return
        try:
            if self.old is None:
                self.dest.unlink(missing_ok=True)
            else:
                write_atomic(self.dest, self.old)
        except OSError as e:
            logger.error("fleet: cannot put %s back (%s)", self.dest, e.strerror or e)


def _saved_path(state: Path, name: str) -> Path:
    return state / f"previous-{name}.head.npz"


def _sha(data: bytes) -> str:
    h = new_sha256()
    h.update(data)
    return h.hexdigest()


def place(state: Path, dest: Path, data: bytes) -> Staged:
    """Write ``data`` as ``dest``; other bytes it replaces are kept as ``previous-<name>`` (for a rollback)."""
    try:
        old = dest.read_bytes() if dest.is_file() else None
    except OSError:
        old = None
    if old == data:
        return Staged()
    try:
        if old is not None:
            write_atomic(_saved_path(state, dest.name[: -len(".head.npz")]), old)
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(dest, data)
    except OSError as e:
        raise OutputError(f"cannot write {dest}: {e.strerror or e}") from None
    return Staged(dest, old)


def stage_file(receiver, req, data: bytes) -> Staged:
    """Check that ``data`` is the learned model ``req.model`` and put it in the model folder."""

    with tempfile.NamedTemporaryFile(dir=receiver.dir, suffix=custom_models.SUFFIX) as tmp:
        tmp.write(data)
        tmp.flush()
        model = custom_models.load(tmp.name)  # a ModelError line when it is not a learned model
    if model.name != req.model:
        raise PushFailed(f"the file is the learned model {model.name!r}, the request names {req.model!r}")
    return place(receiver.dir, custom_models.path_for(model.name, models_dir(receiver.node.cfg.model.dir)), data)


def fetch_registry(cfg, name: str) -> Staged:
    """Fetch and verify registry model ``name`` (as ``edgecam models fetch``; $EDGECAM_MODEL_MIRROR honoured)."""

    fetch(name, dest_dir=cfg.model.dir, progress=False)
    return Staged()  # a verified registry file is kept: other cameras or a later push may use it


def saved_previous(state: Path, prev: dict, models_folder: str | None) -> Staged:
    """For a rollback: the kept file of the previous learned model back in place when it was replaced."""

    saved = _saved_path(state, prev["model"])
    try:
        data = saved.read_bytes()
    except OSError:
        return Staged()  # a registry model, or a learned model whose file was never replaced
    if _sha(data) != prev.get("sha256"):
        return Staged()
    return place(state, custom_models.path_for(prev["model"], models_dir(models_folder)), data)


def switch_to(receiver, name: str, staged: Staged) -> tuple[str, str]:
    """Switch every camera to ``name``; on failure undo ``staged`` and raise. Returns (name, its sha256)."""
    try:
        receiver.restarting = bool(receiver.switch(name))  # True: the next run answers (see receive.py)
    except EdgecamError:
        staged.undo()
        raise
    except Exception as e:  # the switch failed in a way we did not foresee: the model is not in use
        staged.undo()
        raise EdgecamError(f"switching to {name} failed: {type(e).__name__}: {e}") from None
    return name, receiver.node.sums.of(model_path(name, receiver.node.cfg.model.dir))

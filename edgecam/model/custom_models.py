"""Custom models learned on the device: a head on a registry MobileNet's embedding, stored by name.

``edgecam learn DIR --name garage`` writes ``garage.head.npz`` into the model
folder. One file (NumPy's npz: arrays only, read without pickle) holds:

* the head (:class:`edgecam.model.heads.Head`: method, class names, its arrays,
  the ``unknown`` distance);
* the base model's registry name and the SHA-256 of the file it was learned
  on (a different file would give other embeddings: loading then fails and
  says to learn again);
* the preprocessing the examples went through (``crop``), so that ``run``,
  ``classify`` and ``eval`` feed pictures exactly as ``learn`` did;
* what it was learned from (examples per class) and its cross-validated accuracy.

``--model garage`` then works wherever a model name does (:func:`find`).
The file is replaced atomically, so a ``systemctl reload`` during ``learn``
reads the old head or the new one, never half of one.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecam import registry
from edgecam.atomic import write_atomic
from edgecam.errors import ModelError, OutputError
from edgecam.model.heads import METHODS, Head
from edgecam.names import MODEL_NAME_RULE, model_name_problem
from edgecam.registry.store import sha256_file

SUFFIX = ".head.npz"
#: ``edgecam learn --force`` keeps the model it replaces as ``NAME.head.npz.previous`` (one generation).
BACKUP_SUFFIX = ".previous"
FORMAT = 1


@dataclass
class CustomModel:
    """A learned head and what it needs to run (see the module docstring)."""

    name: str
    base: str
    base_sha256: str
    head: "Head"  # edgecam.model.heads.Head
    crop: str = "stretch"
    crop_fraction: float = 0.875
    examples: dict[str, int] = field(default_factory=dict)
    cv: dict = field(default_factory=dict)
    created: str = ""

    @property
    def labels(self) -> tuple[str, ...]:
        return self.head.labels

    def meta(self) -> dict:
        return {"format": FORMAT, "name": self.name, "base": self.base, "base_sha256": self.base_sha256,
                "method": self.head.method, "labels": list(self.head.labels),
                "unknown_distance": self.head.unknown_distance, "crop": self.crop,
                "crop_fraction": self.crop_fraction, "examples": self.examples, "cv": self.cv,
                "created": self.created}


def check_name(name: str) -> str:
    """``name`` if it can be a custom model's name (letters, digits, ``_ . -``), else a ModelError."""
    if model_name_problem(name):
        raise ModelError(f"--name {name!r}: a model name may only use {MODEL_NAME_RULE}")
    return name


def path_for(name: str, folder: str | os.PathLike) -> Path:
    return Path(folder) / f"{name}{SUFFIX}"


def find(name: str, folder: str | os.PathLike) -> Path | None:
    """The custom model file for ``name`` in ``folder``, or None."""
    if model_name_problem(name):
        return None
    p = path_for(name, folder)
    return p if p.is_file() else None


def list_models(folder: str | os.PathLike) -> list[Path]:
    """Every custom model file in ``folder``, by name."""
    try:
        return sorted(p for p in Path(folder).glob(f"*{SUFFIX}") if p.is_file() and not p.name.startswith("."))
    except OSError:
        return []


def save(model: CustomModel, folder: str | os.PathLike, keep_previous: bool = False) -> Path:
    """Write ``model`` as ``<folder>/<name>.head.npz``, atomically; ``keep_previous``: a file it replaces
    becomes ``<name>.head.npz.previous`` (a hard link, so the name never points at nothing meanwhile)."""

    path = path_for(check_name(model.name), folder)
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        if keep_previous and path.is_file():
            backup = path.with_name(path.name + BACKUP_SUFFIX)
            backup.unlink(missing_ok=True)
            try:
                os.link(path, backup)
            except OSError:  # a file system without hard links (FAT)
                import shutil

                shutil.copyfile(path, backup)
        write(model, path)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}; choose another model folder with --dir") \
            from None
    return path


def write(model: CustomModel, path: str | os.PathLike) -> None:
    """Write ``model`` to the file ``path``, atomically (OSError when it cannot be)."""
    arrays = {f"head_{k}": v for k, v in model.head.arrays.items()}
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(json.dumps(model.meta())), **arrays)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buf.getvalue())


def load(path: str | os.PathLike) -> CustomModel:
    """Read a custom model file; one ModelError line when it is not one."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {k[len("head_"):]: data[k] for k in data.files if k.startswith("head_")}
    except FileNotFoundError:
        raise ModelError(f"custom model {path}: not found; learn it with 'edgecam learn DIR --name NAME'") from None
    except (OSError, ValueError, KeyError) as e:
        raise ModelError(f"custom model {path}: cannot read it ({e}); learn it again with 'edgecam learn'") from None
    problems = []
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelError(f"custom model {path}: format {meta.get('format') if isinstance(meta, dict) else '?'} "
                         f"is not {FORMAT}; learn it again with this edgecam")
    if meta.get("method") not in METHODS:
        problems.append(f"method {meta.get('method')!r}")
    labels = meta.get("labels")
    if not (isinstance(labels, list) and len(labels) >= 2 and all(isinstance(x, str) for x in labels)):
        problems.append("labels")
    if "means" not in arrays or (isinstance(labels, list) and arrays["means"].shape[0] != len(labels)):
        problems.append("class means")
    if problems:
        raise ModelError(f"custom model {path}: bad {', '.join(problems)}; learn it again with 'edgecam learn'")
    head = Head(meta["method"], tuple(labels), arrays, float(meta.get("unknown_distance", float("inf"))))
    return CustomModel(name=meta["name"], base=meta["base"], base_sha256=meta["base_sha256"], head=head,
                       crop=meta.get("crop", "stretch"), crop_fraction=float(meta.get("crop_fraction", 0.875)),
                       examples=dict(meta.get("examples") or {}), cv=dict(meta.get("cv") or {}),
                       created=meta.get("created", ""))


def base_sha256(model_dir, base: str, reg) -> str:
    """The SHA-256 of the base model file ``base`` (a registry name) that embeddings are made with."""
    entry = reg[base]
    if entry.sha256:
        return entry.sha256  # resolve() verified the file against it
    return sha256_file(registry.models_dir(model_dir) / entry.file)

"""From the ``model.name`` setting (a registry name or a path to a ``.tflite``
file) to a model file and a labels file, and the labels themselves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from edgecam.errors import ModelError
from edgecam.registry.download import fetch
from edgecam.registry.schema import ModelEntry, load
from edgecam.registry.store import models_dir

LABEL_CANDIDATES = ("labels.txt", "{stem}_labels.txt", "{stem}.txt", "imagenet_labels.txt")


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to load: its file, its labels file and, for a registry
    name, its registry entry (``None`` for a model given as a path).
    ``labels_path`` is None for a model file that carries its labels (an AI
    Camera ``.rpk``) when no labels file was given."""

    name: str
    model_path: Path
    labels_path: Path | None
    entry: ModelEntry | None


def labels_file(path: str | os.PathLike) -> Path:
    """``path`` (``model.labels``) as an existing file; ModelError when it is not there."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ModelError(f"labels file {p} not found; check model.labels / --labels")
    return p


def resolve(
    model: str,
    labels: str | os.PathLike | None = None,
    dest_dir: str | os.PathLike | None = None,
    fetch_missing: bool = True,
    registry: Mapping[str, ModelEntry] | str | os.PathLike | None = None,
) -> ResolvedModel:
    """Turn a model setting into a model file and a labels file.

    A registry name gives its files in the model folder, fetched (and
    verified) first when ``fetch_missing`` (``$EDGECAM_MODEL_MIRROR`` is
    honoured). Anything ending in ``.tflite``, or an existing path, is used as
    is; its labels are ``labels`` or else the first of ``labels.txt``,
    ``<stem>_labels.txt``, ``<stem>.txt``, ``imagenet_labels.txt`` beside it.
    ``labels`` always overrides a registry model's labels.

    Raises ModelError (unknown name, missing file, no labels file) or, while
    fetching, RegistryError / OutputError.
    """
    reg = load(registry)
    if model in reg:
        entry = reg[model]
        dest = models_dir(dest_dir)
        labels_path = labels_file(labels) if labels is not None else \
            dest / entry.labels_file if entry.labels_file else None
        if fetch_missing:
            model_path = fetch(model, dest_dir=dest, registry=reg, labels=labels is None)
        else:
            model_path = dest / entry.file
            for p in (model_path, labels_path):
                if p is not None and not p.is_file():
                    raise ModelError(
                        f"model {model}: {p} is missing; run 'edgecam models fetch {model}' "
                        f"(offline: add --from DIR)"
                    )
        return ResolvedModel(model, model_path, labels_path, entry)

    path = Path(model).expanduser()
    if not (model.endswith((".tflite", ".rpk", ".hef")) or path.exists()):
        raise ModelError(
            f"unknown model {model!r}: not a registry name and no such file; "
            f"known models: {', '.join(reg)} (or give the path of a .tflite, .rpk or .hef file)"
        )
    if not path.is_file():
        raise ModelError(f"model file {path} not found; check model.name / --model")
    if labels is not None:
        return ResolvedModel(path.stem, path, labels_file(labels), None)
    if path.suffix == ".rpk":  # an AI Camera package carries its labels
        return ResolvedModel(path.stem, path, None, None)
    names = [c.format(stem=path.stem) for c in LABEL_CANDIDATES]
    for candidate in names:
        if (path.parent / candidate).is_file():
            return ResolvedModel(path.stem, path, path.parent / candidate, None)
    raise ModelError(
        f"no labels file for model {path}: none of {', '.join(names)} is in {path.parent}; "
        f"set model.labels / --labels FILE"
    )


def read_labels(path: str | os.PathLike) -> list[str]:
    """Read a labels file: one class name per line, in class-index order.

    Lines are stripped and trailing empty lines dropped (inner empty lines are
    kept, so indices stay aligned). Raises ModelError if the file cannot be
    read or has no labels.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise ModelError(f"cannot read labels file {p}: {e.strerror or e}; check model.labels / --labels") from None
    except UnicodeDecodeError as e:
        raise ModelError(
            f"labels file {p} is not UTF-8 text ({e.reason} at byte {e.start}); is it really a labels file?"
        ) from None
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise ModelError(f"labels file {p} is empty; it needs one class name per line")
    return lines

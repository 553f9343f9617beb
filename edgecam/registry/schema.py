"""The registry file: which models exist and where they come from (``models/models.yaml``).

:func:`load_registry` reads and checks it: every problem of the file is
reported at once, in one line naming the file. A :class:`ModelEntry` names a
model's upstream URL (and the archive member, for a ``.tgz``), the SHA-256 of
its ``.tflite`` file, its labels file and input size; the files to fetch for
it are its :class:`Artifact` s.

An entry may name the accelerator its file is built for (``backend:``
``edgetpu``, ``imx500`` or ``hailo``; default ``cpu``) and the CPU model it
is a build of (``cpu_twin:``), so that ``model.backend`` can take the twin of
the model named. An AI Camera package (``.rpk``) carries its own labels:
``labels_url: null``.

The same file lists, under ``photos:``, the photos the ``demo`` source plays
(:class:`PhotoEntry`, :func:`load_photos`; fetched like models by
:func:`edgecam.registry.download.fetch_photos`).
"""

from __future__ import annotations

import os
import re
import sys
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgecam.config.yaml_text import yaml_problem
from edgecam.errors import RegistryError

DEFAULT_MODEL = "mobilenet_v3_small"

ENV_REGISTRY = "EDGECAM_REGISTRY"  # path of an alternative models.yaml
PHOTO_SUBDIR = "demo"  # where the registry's photos are kept, inside the model folder

HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ARCHIVE_SUFFIXES = (".tgz", ".tar.gz")
_FIELDS = {
    "description", "url", "member", "file", "sha256",
    "labels_url", "labels_sha256", "labels_file", "input_size", "preprocess", "backend", "cpu_twin",
}  # fmt: skip
#: What a model file may be built for (``backend:`` of an entry; edgecam.model.backends runs them).
BACKENDS = ("cpu", "edgetpu", "imx500", "hailo")
_REQUIRED = ("description", "url", "file", "sha256", "labels_url", "labels_sha256", "input_size")
_PHOTO_FIELDS = ("description", "url", "file", "sha256")  # all required
_TOP_LEVEL = ("models", "photos")


@dataclass(frozen=True)
class ModelEntry:
    """One model of the registry.

    ``sha256`` is of the ``.tflite`` file itself (of the archive member when
    ``url`` is a ``.tgz``); ``None`` means unknown (trust on first use).
    ``file`` and ``labels_file`` are the plain file names the model and labels
    are stored under, in the model folder and in a mirror folder;
    ``labels_url`` is None when the model file carries its labels (an AI
    Camera ``.rpk``). ``backend`` is what the file runs on, ``cpu_twin`` the
    CPU model it is a build of (None: none in the registry).
    """

    name: str
    description: str
    url: str
    file: str
    sha256: str | None
    labels_url: str | None
    labels_sha256: str | None
    labels_file: str | None
    input_size: int
    member: str | None = None
    preprocess: Mapping[str, Any] = field(default_factory=dict)
    backend: str = "cpu"
    cpu_twin: str | None = None


@dataclass(frozen=True)
class PhotoEntry:
    """One photo of the registry's ``photos:`` section (the ``demo`` source's slides).

    ``sha256`` is required: a photo is never trusted on first use.
    """

    name: str
    description: str
    url: str
    file: str
    sha256: str


@dataclass(frozen=True)
class Artifact:
    """One file to fetch and check: a model or its labels."""

    model: str  # registry name, for messages
    file: str
    url: str
    sha256: str | None
    member: str | None = None

    @property
    def source(self) -> str:
        return f"{self.url} (member {self.member})" if self.member else self.url


def _repo_models_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "models"  # edgecam/registry/schema.py -> the checkout


def registry_path() -> Path:
    """Return the registry file in use.

    ``$EDGECAM_REGISTRY`` if set, else ``models/models.yaml`` of the source
    checkout this package runs from, else the copy installed under
    ``sys.prefix/share/edgecam/models.yaml``.
    """
    env = os.environ.get(ENV_REGISTRY)
    if env:
        return Path(env).expanduser()
    in_repo = _repo_models_dir() / "models.yaml"
    if in_repo.is_file():
        return in_repo
    return Path(sys.prefix) / "share" / "edgecam" / "models.yaml"


def _plain_file_name(value: Any) -> bool:
    # File names become paths in the model folder and the mirror: no folders,
    # no "..", and no leading dot (our temporary files are hidden).
    return (
        isinstance(value, str)
        and value != ""
        and not value.startswith(".")
        and "/" not in value
        and "\\" not in value
    )


def _url_ok(value: Any) -> bool:
    return isinstance(value, str) and urllib.parse.urlparse(value).scheme in ("http", "https", "file")


def _sha_ok(value: Any) -> bool:
    return value is None or (isinstance(value, str) and bool(HEX64.match(value)))


def _shape_problems(where: str, name: Any, raw: Any, known, required) -> list[str]:
    """What is wrong with an entry's name and its set of fields (before any field's value is looked at)."""
    if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", name):
        return [f"{where}: a name may only use letters, digits, '_', '.', '-'"]
    if not isinstance(raw, dict):
        return [f"{where}: expected a mapping of fields, got {type(raw).__name__}"]
    problems = [f"{where}: unknown field {k!r}" for k in raw if k not in known]
    return problems + [f"{where}: missing field {k!r}" for k in required if k not in raw]


def _parse_entry(name: Any, raw: Any) -> tuple[ModelEntry | None, list[str]]:
    where = f"model {name!r}"
    problems = _shape_problems(where, name, raw, _FIELDS, _REQUIRED)
    if problems:
        return None, problems
    url, labels_url = raw["url"], raw["labels_url"]
    member = raw.get("member")
    labels_file = raw.get("labels_file")
    if labels_file is None and isinstance(labels_url, str):
        labels_file = urllib.parse.urlparse(labels_url).path.rsplit("/", 1)[-1]
    backend = raw.get("backend", "cpu")
    embedded = labels_url is None  # the model file carries its labels
    checks = [
        (isinstance(raw["description"], str), "description must be a string"),
        (_url_ok(url), "url must be an http(s):// or file:// URL"),
        (embedded or _url_ok(labels_url), "labels_url must be an http(s):// or file:// URL"),
        (not embedded or backend == "imx500",
         "labels_url may only be null for an AI Camera package (backend: imx500), which carries its labels"),
        (not embedded or (raw.get("labels_file") is None and raw["labels_sha256"] is None),
         "labels_file and labels_sha256 go with a labels_url"),
        (_plain_file_name(raw["file"]), "file must be a plain file name (no folders, no leading dot)"),
        (embedded or _plain_file_name(labels_file), "labels_file must be a plain file name (no folders, no leading dot)"),
        (backend in BACKENDS, f"backend must be one of {', '.join(BACKENDS)}"),
        (raw.get("cpu_twin") is None or isinstance(raw.get("cpu_twin"), str), "cpu_twin must be a model name"),
        (_sha_ok(raw["sha256"]), "sha256 must be 64 lowercase hex digits or null"),
        (_sha_ok(raw["labels_sha256"]), "labels_sha256 must be 64 lowercase hex digits or null"),
        (
            isinstance(raw["input_size"], int) and not isinstance(raw["input_size"], bool) and raw["input_size"] > 0,
            "input_size must be a positive integer",
        ),
        (isinstance(raw.get("preprocess", {}), dict), "preprocess must be a mapping"),
        (member is None or (isinstance(member, str) and member != ""), "member must be a path inside the archive"),
    ]
    problems = [f"{where}: {msg}" for ok, msg in checks if not ok]
    if isinstance(url, str):
        is_archive = urllib.parse.urlparse(url).path.endswith(_ARCHIVE_SUFFIXES)
        if is_archive and member is None:
            problems.append(f"{where}: url is a .tgz archive, so 'member' (the .tflite inside it) is required")
        if not is_archive and member is not None:
            problems.append(f"{where}: 'member' is only valid when url is a .tgz archive")
    if problems:
        return None, problems
    return (
        ModelEntry(
            name=name,
            description=raw["description"],
            url=url,
            file=raw["file"],
            sha256=raw["sha256"],
            labels_url=labels_url,
            labels_sha256=raw["labels_sha256"],
            labels_file=labels_file,
            input_size=raw["input_size"],
            member=member,
            preprocess=dict(raw.get("preprocess") or {}),
            backend=backend,
            cpu_twin=raw.get("cpu_twin"),
        ),
        [],
    )


def _parse_photo(name: Any, raw: Any) -> tuple[PhotoEntry | None, list[str]]:
    where = f"photo {name!r}"
    problems = _shape_problems(where, name, raw, _PHOTO_FIELDS, _PHOTO_FIELDS)
    if problems:
        return None, problems
    checks = [
        (isinstance(raw["description"], str), "description must be a string"),
        (_url_ok(raw["url"]), "url must be an http(s):// or file:// URL"),
        (_plain_file_name(raw["file"]), "file must be a plain file name (no folders, no leading dot)"),
        (raw["sha256"] is not None and _sha_ok(raw["sha256"]), "sha256 must be 64 lowercase hex digits"),
    ]
    problems = [f"{where}: {msg}" for ok, msg in checks if not ok]
    if problems:
        return None, problems
    return PhotoEntry(name, raw["description"], raw["url"], raw["file"], raw["sha256"]), []


def load_registry(path: str | os.PathLike | None = None) -> dict[str, ModelEntry]:
    """Read and check the registry (default: :func:`registry_path`).

    Returns the model entries by name, in file order. Any problem (in the
    ``photos:`` section too) raises :class:`RegistryError` with one line naming
    the file and every problem.
    """
    return _load(path)[0]


def load_photos(path: str | os.PathLike | None = None) -> dict[str, PhotoEntry]:
    """The registry's ``photos:`` entries by name, in file order (empty when it has none).

    Checked like :func:`load_registry` (which see).
    """
    return _load(path)[1]


def _load(path: str | os.PathLike | None) -> tuple[dict[str, ModelEntry], dict[str, PhotoEntry]]:
    p = Path(path).expanduser() if path is not None else registry_path()
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(
            f"model registry {p} not found; reinstall edgecam or point {ENV_REGISTRY} at a models.yaml"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise RegistryError(f"model registry {p} cannot be read: {e}") from None
    except yaml.YAMLError as e:
        line, _, problem = yaml_problem(e)
        at = f" at line {line}" if line else ""
        raise RegistryError(f"model registry {p} is not valid YAML{at}: {problem}") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict) or not data["models"]:
        raise RegistryError(f"model registry {p} must have a non-empty 'models:' mapping of name -> fields")
    extra = [k for k in data if k not in _TOP_LEVEL]
    problems = [f"unknown top-level key {k!r}" for k in extra]
    entries: dict[str, ModelEntry] = {}
    for name, raw in data["models"].items():
        entry, errs = _parse_entry(name, raw)
        problems += errs
        if entry is not None:
            entries[name] = entry
    for entry in entries.values():
        twin = entries.get(entry.cpu_twin) if entry.cpu_twin else None
        if entry.cpu_twin and (twin is None or twin.backend != "cpu"):
            problems.append(f"model {entry.name!r}: cpu_twin {entry.cpu_twin!r} is not a CPU model of this registry")
    if PHOTO_SUBDIR in data["models"]:  # `edgecam models fetch demo` fetches the photos
        problems.append(f"model {PHOTO_SUBDIR!r}: this name is reserved for the demo's photos")
    photos: dict[str, PhotoEntry] = {}
    raw_photos = data.get("photos")
    if raw_photos is not None and not isinstance(raw_photos, dict):
        problems.append("'photos:' must be a mapping of name -> fields")
    for name, raw in (raw_photos or {}).items() if isinstance(raw_photos, dict) else ():
        photo, errs = _parse_photo(name, raw)
        problems += errs
        if photo is not None:
            photos[name] = photo
    if problems:
        raise RegistryError(f"model registry {p}: " + "; ".join(problems))
    return entries, photos


def load(registry: Mapping[str, ModelEntry] | str | os.PathLike | None) -> Mapping[str, ModelEntry]:
    if registry is None or isinstance(registry, (str, os.PathLike)):
        return load_registry(registry)
    return registry


def get_entry(reg: Mapping[str, ModelEntry], name: str) -> ModelEntry:
    try:
        return reg[name]
    except KeyError:
        raise RegistryError(f"unknown model {name!r}; known models: {', '.join(reg)}") from None


def artifacts(entry: ModelEntry, labels: bool = True) -> list[Artifact]:
    arts = [Artifact(entry.name, entry.file, entry.url, entry.sha256, entry.member)]
    if labels and entry.labels_url is not None:
        arts.append(Artifact(entry.name, entry.labels_file, entry.labels_url, entry.labels_sha256))
    return arts

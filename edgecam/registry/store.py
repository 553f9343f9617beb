"""Where models are kept, and whether the files there are the right ones.

:func:`models_dir` is the model folder. Every file is checked against its
SHA-256 (:func:`new_sha256`): the registry's, or for a model whose checksum is
unknown (``sha256: null``) the one recorded on first use in ``<file>.sha256``
beside it (same format as ``sha256sum``). :func:`verify` reports each model's
state.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from edgecam.atomic import write_atomic
from edgecam.errors import OutputError, RegistryError
from edgecam.registry import schema
from edgecam.registry.schema import HEX64, Artifact, ModelEntry, artifacts, load

ENV_MODEL_DIR = "EDGECAM_MODEL_DIR"  # where models are stored
DIR_HINT = f"choose another folder with --dir DIR or {ENV_MODEL_DIR}=DIR"
_RECORD_SUFFIX = ".sha256"  # trust-on-first-use record beside the file


def models_dir(configured: str | os.PathLike | None = None) -> Path:
    """Return the folder models are stored in (it may not exist yet).

    ``configured`` (``model.dir`` / ``--dir``), else ``$EDGECAM_MODEL_DIR``,
    else the checkout's ``models/`` folder when it exists and is writable, else
    ``$XDG_CACHE_HOME/edgecam/models`` (``~/.cache/edgecam/models``).
    """
    if configured:
        return Path(configured).expanduser()
    env = os.environ.get(ENV_MODEL_DIR)
    if env:
        return Path(env).expanduser()
    repo = schema._repo_models_dir()
    # models.yaml marks it as our folder, not some other package's "models".
    if (repo / "models.yaml").is_file() and os.access(repo, os.W_OK):
        return repo
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "edgecam" / "models"


def photos_dir(dest_dir: str | os.PathLike | None = None) -> Path:
    """Where the registry's photos are kept: ``demo/`` in the model folder (see :func:`models_dir`)."""
    return models_dir(dest_dir) / schema.PHOTO_SUBDIR


def new_sha256():
    """A SHA-256 hasher that does not initialise OpenSSL.

    Every run checks its model file at start. ``import hashlib`` initialises
    OpenSSL's libcrypto for that, which costs 3.6 MB of peak RSS in ``edgecam
    bench`` (104.2 vs 100.6 MB, medians of 6 interleaved runs each; issue
    10's note), for the life of the process; CPython's own SHA-256, the one
    hashlib itself falls back to, hashes a model in ~10 ms. Its module is
    private and was renamed once (``_sha256`` in 3.11, ``_sha2`` from 3.12):
    where neither exists, hashlib it is.
    """
    # which module exists depends on the Python version; hashlib (OpenSSL: memory, above) only as the last resort
    try:
        from _sha2 import sha256  # Python 3.12+
    except ImportError:
        try:
            from _sha256 import sha256  # Python 3.11
        except ImportError:  # pragma: no cover - other interpreters
            from hashlib import sha256
    return sha256()


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, in hex (raises OSError)."""
    h = new_sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def record_path(dest: Path, file: str) -> Path:
    return dest / (file + _RECORD_SUFFIX)


def read_record(dest: Path, file: str) -> str | None:
    """The hash recorded on first use of ``file``, or None if there is none."""
    rec = record_path(dest, file)
    try:
        text = rec.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise RegistryError(f"cannot read checksum record {rec}: {e}; delete it and fetch again") from None
    digest = text.split()[0].lower() if text.split() else ""
    if not HEX64.match(digest):
        raise RegistryError(
            f"checksum record {rec} is malformed; delete it and {file}, then fetch again with --trust-on-first-use"
        )
    return digest


def write_record(dest: Path, file: str, digest: str) -> None:
    # Same format as sha256sum, so `sha256sum -c FILE.sha256` works too.
    path = record_path(dest, file)
    try:
        write_atomic(path, f"{digest}  {file}\n".encode("ascii"))
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}; {DIR_HINT}") from None


def expected_hash(art: Artifact, dest: Path) -> tuple[str | None, str]:
    """The hash ``art`` must have, and where that expectation comes from."""
    if art.sha256:
        return art.sha256, "registry"
    recorded = read_record(dest, art.file)
    if recorded:
        return recorded, f"recorded on first use in {record_path(dest, art.file)}"
    return None, ""


def has_checksum(entry: ModelEntry, dest_dir: str | os.PathLike | None = None) -> bool:
    """True when ``entry``'s model file can be verified: its checksum is in the
    registry or was recorded on first use in the model folder."""
    return entry.sha256 is not None or record_path(models_dir(dest_dir), entry.file).is_file()


def check(art: Artifact, dest: Path) -> tuple[str, str]:
    """(status, detail) of the copy of ``art`` in ``dest``."""
    path = dest / art.file
    if not path.is_file():
        return "missing", f"{art.file} not in {dest}"
    try:
        expected, origin = expected_hash(art, dest)
    except RegistryError as e:
        return "mismatch", e.message
    if expected is None:
        hint = f"'edgecam models fetch {art.model} --trust-on-first-use' records one"
        return "unverified", f"{path}: no known checksum; {hint}"
    try:
        got = sha256_file(path)
    except OSError as e:
        return "mismatch", f"{path} cannot be read: {e.strerror or e}"
    if got != expected:
        return "mismatch", f"{path} has sha256 {got}, expected {expected} ({origin})"
    return "ok", str(path)


def ensure_dir(dest: Path) -> None:
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create model folder {dest}: {e.strerror or e}; {DIR_HINT}") from None
    if not os.access(dest, os.W_OK | os.X_OK):
        raise OutputError(f"model folder {dest} is not writable; {DIR_HINT}")


def verify(
    dest_dir: str | os.PathLike | None = None,
    registry: Mapping[str, ModelEntry] | str | os.PathLike | None = None,
) -> list[tuple[str, str, str]]:
    """Check every registry model's files in the model folder.

    Returns ``(name, status, detail)`` per model, status one of ``ok``,
    ``missing`` (model or labels file not there), ``mismatch`` (a file does
    not match its checksum) or ``unverified`` (present, but no checksum is
    known or recorded). The worst status of the model and labels files wins.
    """
    reg = load(registry)
    dest = models_dir(dest_dir)
    rank = {"ok": 0, "missing": 1, "unverified": 2, "mismatch": 3}
    seen: dict[tuple[str, str | None], tuple[str, str]] = {}  # labels are shared: hash once
    out = []
    for entry in reg.values():
        results = []
        for art in artifacts(entry):
            key = (art.file, art.sha256)
            if key not in seen:
                seen[key] = check(art, dest)
            results.append(seen[key])
        worst = max(range(len(results)), key=lambda i: rank[results[i][0]])  # ties: the model file
        status, detail = results[worst]
        if worst == 1:
            detail = f"labels: {detail}"
        out.append((entry.name, status, detail))
    return out

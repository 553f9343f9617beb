"""Model registry: which models exist, where they come from, where they are kept.

``models/models.yaml`` names every model edgecam can download: its upstream URL
(and the archive member, for a ``.tgz``), the SHA-256 of the ``.tflite`` file,
its labels file and input size. :func:`fetch` downloads a model and its labels
(or copies them from a local mirror folder, for a Pi without network) and only
ever keeps files whose checksum matches: bytes are written to a hidden
``.part`` file beside the destination, hashed, and moved into place with
``os.replace``, so an interrupted or corrupted download never leaves a file
that looks valid and never replaces a good one.

A model whose checksum is unknown (``sha256: null``) is only downloaded with
``trust_on_first_use=True``; the hash of what was received is then recorded in
``<file>.sha256`` beside it and later copies are checked against that record.

:func:`resolve` turns the ``model.name`` setting (a registry name or a path to
a ``.tflite`` file) into a model file and a labels file.

The same file lists, under ``photos:``, the photos the ``demo`` source plays
(:func:`fetch_photos`): fetched, checked and mirrored exactly like models, into
the ``demo`` folder inside the model folder.

A mirror (``--from`` / ``$EDGECAM_MODEL_MIRROR``) may be several folders
separated by ``:`` (``os.pathsep``); each file is taken from the first one
that has it (:func:`mirror_dirs`).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from edgecam import __version__
from edgecam.errors import ModelError, OutputError, RegistryError

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "mobilenet_v3_small"

ENV_REGISTRY = "EDGECAM_REGISTRY"  # path of an alternative models.yaml
ENV_MODEL_DIR = "EDGECAM_MODEL_DIR"  # where models are stored
ENV_MIRROR = "EDGECAM_MODEL_MIRROR"  # local folder(s), ':'-separated, to copy models from instead of downloading
PHOTO_SUBDIR = "demo"  # where the registry's photos are kept, inside the model folder

# Generous: a Pi on Wi-Fi can stall for a while; this bounds each socket
# operation (connect, one read), not the whole download.
TIMEOUT_S = 30.0
_CHUNK = 64 * 1024
_RECORD_SUFFIX = ".sha256"  # trust-on-first-use record beside the file
_MIRROR_HINT = (f"on an offline Pi, set {ENV_MIRROR}=DIR or use --from DIR with a folder holding the files "
                "(several folders: DIR1:DIR2)")
_DIR_HINT = f"choose another folder with --dir DIR or {ENV_MODEL_DIR}=DIR"

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ARCHIVE_SUFFIXES = (".tgz", ".tar.gz")
_FIELDS = {
    "description", "url", "member", "file", "sha256",
    "labels_url", "labels_sha256", "labels_file", "input_size", "preprocess",
}  # fmt: skip
_REQUIRED = ("description", "url", "file", "sha256", "labels_url", "labels_sha256", "input_size")
_PHOTO_FIELDS = ("description", "url", "file", "sha256")  # all required
_TOP_LEVEL = ("models", "photos")


@dataclass(frozen=True)
class ModelEntry:
    """One model of the registry.

    ``sha256`` is of the ``.tflite`` file itself (of the archive member when
    ``url`` is a ``.tgz``); ``None`` means unknown (trust on first use).
    ``file`` and ``labels_file`` are the plain file names the model and labels
    are stored under, in the model folder and in a mirror folder.
    """

    name: str
    description: str
    url: str
    file: str
    sha256: str | None
    labels_url: str
    labels_sha256: str | None
    labels_file: str
    input_size: int
    member: str | None = None
    preprocess: Mapping[str, Any] = field(default_factory=dict)


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
class ResolvedModel:
    """A model ready to load: its file, its labels file and, for a registry
    name, its registry entry (``None`` for a model given as a path)."""

    name: str
    model_path: Path
    labels_path: Path
    entry: ModelEntry | None


@dataclass(frozen=True)
class _Artifact:
    """One file to fetch and check: a model or its labels."""

    model: str  # registry name, for messages
    file: str
    url: str
    sha256: str | None
    member: str | None = None

    @property
    def source(self) -> str:
        return f"{self.url} (member {self.member})" if self.member else self.url


# --------------------------------------------------------------------------- paths


def _repo_models_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "models"


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
    repo = _repo_models_dir()
    # models.yaml marks it as our folder, not some other package's "models".
    if (repo / "models.yaml").is_file() and os.access(repo, os.W_OK):
        return repo
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "edgecam" / "models"


# ------------------------------------------------------------------------ registry


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
    return value is None or (isinstance(value, str) and bool(_HEX64.match(value)))


def _parse_entry(name: Any, raw: Any) -> tuple[ModelEntry | None, list[str]]:
    where = f"model {name!r}"
    if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", name):
        return None, [f"{where}: a name may only use letters, digits, '_', '.', '-'"]
    if not isinstance(raw, dict):
        return None, [f"{where}: expected a mapping of fields, got {type(raw).__name__}"]
    problems = [f"{where}: unknown field {k!r}" for k in raw if k not in _FIELDS]
    problems += [f"{where}: missing field {k!r}" for k in _REQUIRED if k not in raw]
    if problems:
        return None, problems
    url, labels_url = raw["url"], raw["labels_url"]
    member = raw.get("member")
    labels_file = raw.get("labels_file")
    if labels_file is None and isinstance(labels_url, str):
        labels_file = urllib.parse.urlparse(labels_url).path.rsplit("/", 1)[-1]
    checks = [
        (isinstance(raw["description"], str), "description must be a string"),
        (_url_ok(url), "url must be an http(s):// or file:// URL"),
        (_url_ok(labels_url), "labels_url must be an http(s):// or file:// URL"),
        (_plain_file_name(raw["file"]), "file must be a plain file name (no folders, no leading dot)"),
        (_plain_file_name(labels_file), "labels_file must be a plain file name (no folders, no leading dot)"),
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
        ),
        [],
    )


def _parse_photo(name: Any, raw: Any) -> tuple[PhotoEntry | None, list[str]]:
    where = f"photo {name!r}"
    if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", name):
        return None, [f"{where}: a name may only use letters, digits, '_', '.', '-'"]
    if not isinstance(raw, dict):
        return None, [f"{where}: expected a mapping of fields, got {type(raw).__name__}"]
    problems = [f"{where}: unknown field {k!r}" for k in raw if k not in _PHOTO_FIELDS]
    problems += [f"{where}: missing field {k!r}" for k in _PHOTO_FIELDS if k not in raw]
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
        from edgecam.yaml_text import yaml_problem

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


def _registry(registry: Mapping[str, ModelEntry] | str | os.PathLike | None) -> Mapping[str, ModelEntry]:
    if registry is None or isinstance(registry, (str, os.PathLike)):
        return load_registry(registry)
    return registry


def _entry(reg: Mapping[str, ModelEntry], name: str) -> ModelEntry:
    try:
        return reg[name]
    except KeyError:
        raise RegistryError(f"unknown model {name!r}; known models: {', '.join(reg)}") from None


def _artifacts(entry: ModelEntry, labels: bool = True) -> list[_Artifact]:
    arts = [_Artifact(entry.name, entry.file, entry.url, entry.sha256, entry.member)]
    if labels:
        arts.append(_Artifact(entry.name, entry.labels_file, entry.labels_url, entry.labels_sha256))
    return arts


# ------------------------------------------------------------------------- hashing


def _sha256():
    """A SHA-256 hasher that doesn't load OpenSSL.

    ``hashlib`` maps OpenSSL's libcrypto at import (~5 MB of RSS for the life
    of the process) just to check a few MB at start; CPython's built-in
    implementation does the same job at ~10 ms for a model.
    """
    try:
        from _sha2 import sha256  # Python 3.12+
    except ImportError:
        try:
            from _sha256 import sha256  # Python 3.11
        except ImportError:  # pragma: no cover - other interpreters
            from hashlib import sha256
    return sha256()


def _sha256_file(path: Path) -> str:
    h = _sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _record_path(dest: Path, file: str) -> Path:
    return dest / (file + _RECORD_SUFFIX)


def _read_record(dest: Path, file: str) -> str | None:
    """The hash recorded on first use of ``file``, or None if there is none."""
    rec = _record_path(dest, file)
    try:
        text = rec.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise RegistryError(f"cannot read checksum record {rec}: {e}; delete it and fetch again") from None
    digest = text.split()[0].lower() if text.split() else ""
    if not _HEX64.match(digest):
        raise RegistryError(
            f"checksum record {rec} is malformed; delete it and {file}, then fetch again with --trust-on-first-use"
        )
    return digest


def _write_record(dest: Path, file: str, digest: str) -> None:
    # Same format as sha256sum, so `sha256sum -c FILE.sha256` works too.
    _atomic_write_bytes(_record_path(dest, file), f"{digest}  {file}\n".encode("ascii"), file)


def _expected(art: _Artifact, dest: Path) -> tuple[str | None, str]:
    """The hash ``art`` must have, and where that expectation comes from."""
    if art.sha256:
        return art.sha256, "registry"
    recorded = _read_record(dest, art.file)
    if recorded:
        return recorded, f"recorded on first use in {_record_path(dest, art.file)}"
    return None, ""


def has_checksum(entry: ModelEntry, dest_dir: str | os.PathLike | None = None) -> bool:
    """True when ``entry``'s model file can be verified: its checksum is in the
    registry or was recorded on first use in the model folder."""
    return entry.sha256 is not None or _record_path(models_dir(dest_dir), entry.file).is_file()


def _check(art: _Artifact, dest: Path) -> tuple[str, str]:
    """(status, detail) of the copy of ``art`` in ``dest``."""
    path = dest / art.file
    if not path.is_file():
        return "missing", f"{art.file} not in {dest}"
    try:
        expected, origin = _expected(art, dest)
    except RegistryError as e:
        return "mismatch", e.message
    if expected is None:
        hint = f"'edgecam models fetch {art.model} --trust-on-first-use' records one"
        return "unverified", f"{path}: no known checksum; {hint}"
    try:
        got = _sha256_file(path)
    except OSError as e:
        return "mismatch", f"{path} cannot be read: {e.strerror or e}"
    if got != expected:
        return "mismatch", f"{path} has sha256 {got}, expected {expected} ({origin})"
    return "ok", str(path)


# ------------------------------------------------------------------------ fetching


def _size(n: float) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.0f} kB"


class _Progress:
    """A one-line ``\\r`` progress display on a terminal, else log lines."""

    def __init__(self, label: str, total: int | None, enabled: bool):
        self.label, self.total = label, total
        self.tty = enabled and sys.stderr.isatty()
        self._last = 0.0
        if not self.tty:
            size = f" ({_size(total)})" if total else ""
            logger.info("%s: downloading%s", label, size)

    def update(self, done: int) -> None:
        now = time.monotonic()
        if not self.tty or now - self._last < 0.1:
            return
        self._last = now
        pct = f"{100 * done // self.total:3d}% " if self.total else ""
        total = f" of {_size(self.total)}" if self.total else ""
        sys.stderr.write(f"\r{self.label}: {pct}{_size(done)}{total}  ")
        sys.stderr.flush()

    def finish(self, done: int) -> None:
        if self.tty:
            self._last = 0.0
            self.update(done)
            sys.stderr.write("\n")
            sys.stderr.flush()
        else:
            logger.info("%s: downloaded %s", self.label, _size(done))


def _copy_stream(
    read: Callable[[int], bytes],
    out: BinaryIO,
    art: _Artifact,
    source: str,
    progress: _Progress | None = None,
) -> tuple[str, int]:
    """Copy chunks from ``read`` to ``out``; return (sha256 hex, byte count).

    A failure to read is the source's fault (RegistryError); a failure to
    write is the destination's (OutputError), e.g. a full SD card.
    """
    # Network and archive modules are imported only when a download happens:
    # they (ssl above all) cost ~10 MB of RSS that a running camera never needs.
    import http.client
    import tarfile
    import zlib

    h = _sha256()
    n = 0
    while True:
        try:
            chunk = read(_CHUNK)
        except (OSError, EOFError, zlib.error, tarfile.TarError, http.client.HTTPException) as e:
            raise RegistryError(
                f"{art.model}: reading {source} failed after {n} bytes: {e}; try again, or {_MIRROR_HINT}"
            ) from None
        if not chunk:
            break
        try:
            out.write(chunk)
        except OSError as e:
            raise OutputError(
                f"{art.model}: cannot write {art.file} to {Path(out.name).parent}: {e.strerror or e}; "
                f"free some space or {_DIR_HINT}"
            ) from None
        h.update(chunk)
        n += len(chunk)
        if progress:
            progress.update(n)
    try:
        out.flush()
        os.fsync(out.fileno())  # the data is on disk before the rename makes it visible
    except OSError as e:
        raise OutputError(
            f"{art.model}: cannot write {art.file}: {e.strerror or e}; free some space or {_DIR_HINT}"
        ) from None
    return h.hexdigest(), n


def _temp_file(dest: Path, file: str, art: _Artifact) -> Path:
    """Create an empty hidden ``.part`` file in ``dest`` (same file system, so
    that ``os.replace`` is atomic)."""
    try:
        import tempfile

        fd, name = tempfile.mkstemp(dir=dest, prefix=f".{file}.", suffix=".part")
        os.close(fd)
        # mkstemp makes it 0600; a service running as another user must read the model.
        os.chmod(name, 0o644)
    except OSError as e:
        raise OutputError(f"{art.model}: cannot write to model folder {dest}: {e.strerror or e}; {_DIR_HINT}") from None
    return Path(name)


def _atomic_write_bytes(path: Path, data: bytes, what: str) -> None:
    tmp = _temp_file(path.parent, path.name, _Artifact(what, path.name, "", None))
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {e.strerror or e}; {_DIR_HINT}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _http_get(art: _Artifact, out: BinaryIO, progress: bool) -> tuple[str, int]:
    """Download ``art.url`` into ``out``; return (sha256, size)."""
    import http.client
    import urllib.error
    import urllib.request

    req = urllib.request.Request(art.url, headers={"User-Agent": f"edgecam/{__version__}"})
    try:
        resp = urllib.request.urlopen(req, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        e.close()
        raise RegistryError(
            f"{art.model}: download of {art.url} failed: HTTP {e.code} {e.reason}; "
            f"check the model's url in the registry (models.yaml), or {_MIRROR_HINT}"
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", None) or e
        raise RegistryError(f"{art.model}: cannot download {art.url}: {reason}; {_MIRROR_HINT}") from None
    with resp:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        bar = _Progress(f"{art.model}: {urllib.parse.urlparse(art.url).path.rsplit('/', 1)[-1]}", total, progress)
        digest, n = _copy_stream(resp.read, out, art, art.url, bar)
        # http.client does not complain when the peer closes early; a short
        # body must not pass as a (possibly checksum-less) complete file.
        if total is not None and n != total:
            raise RegistryError(
                f"{art.model}: download of {art.url} was cut off after {n} of {total} bytes; "
                f"try again, or {_MIRROR_HINT}"
            )
        bar.finish(n)
    return digest, n


def _extract_member(art: _Artifact, archive: Path, out: BinaryIO) -> str:
    """Copy ``art.member`` of the .tgz ``archive`` into ``out``; return its sha256."""
    import tarfile
    import zlib

    assert art.member is not None
    try:
        with tarfile.open(archive, "r:*") as tar:
            try:
                info = tar.getmember(art.member)
            except KeyError:
                raise RegistryError(
                    f"{art.model}: archive {art.url} has no member {art.member}; the archive changed upstream: "
                    f"fix 'member' in the registry (models.yaml), or {_MIRROR_HINT}"
                ) from None
            src = tar.extractfile(info) if info.isfile() else None
            if src is None:
                raise RegistryError(
                    f"{art.model}: {art.member} in {art.url} is not a regular file; "
                    "fix 'member' in the registry (models.yaml)"
                )
            with src:
                return _copy_stream(src.read, out, art, f"{art.member} in {art.url}")[0]
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        # Write failures were already turned into OutputError by _copy_stream.
        raise RegistryError(
            f"{art.model}: {art.url} is not a readable .tgz archive: {e}; try again, or {_MIRROR_HINT}"
        ) from None


def _in_mirror(art: _Artifact, mirrors: list[Path]) -> Path:
    """The copy of ``art`` in the first mirror folder that has one."""
    for folder in mirrors:
        if (folder / art.file).is_file():
            return folder / art.file
    where = f"mirror folder {mirrors[0]} has" if len(mirrors) == 1 else \
        f"none of the mirror folders {', '.join(map(str, mirrors))} has"
    raise RegistryError(
        f"{art.model}: {where} no {art.file}; copy it there (upstream: {art.source}) "
        f"or fetch without --from / {ENV_MIRROR}"
    )


def _obtain(art: _Artifact, dest: Path, tmp: Path, mirrors: list[Path], progress: bool) -> tuple[str, str]:
    """Write the bytes of ``art`` into ``tmp``; return (sha256, source description)."""
    if mirrors:
        src = _in_mirror(art, mirrors)
        try:
            fin = open(src, "rb")
        except OSError as e:
            raise RegistryError(f"{art.model}: cannot read {src}: {e.strerror or e}") from None
        with fin, open(tmp, "wb") as out:
            logger.info("%s: copying %s from %s", art.model, art.file, src.parent)
            return _copy_stream(fin.read, out, art, str(src))[0], str(src)
    if art.member is None:
        with open(tmp, "wb") as out:
            return _http_get(art, out, progress)[0], art.url
    archive = _temp_file(dest, art.file + ".tgz", art)
    try:
        with open(archive, "wb") as out:
            _http_get(art, out, progress)
        with open(tmp, "wb") as out:
            return _extract_member(art, archive, out), art.source
    finally:
        archive.unlink(missing_ok=True)


def _fetch_one(art: _Artifact, dest: Path, mirrors: list[Path], trust_on_first_use: bool, progress: bool) -> Path:
    final = dest / art.file
    expected, origin = _expected(art, dest)
    if final.is_file():
        try:
            current = _sha256_file(final)
        except OSError as e:
            raise OutputError(
                f"{art.model}: cannot read {final}: {e.strerror or e}; delete it or {_DIR_HINT}"
            ) from None
        if expected is not None:
            if current == expected:
                logger.debug("%s: %s present and verified", art.model, final)
                return final
            # A corrupt copy is replaced only once a good one has been obtained.
            logger.warning("%s: %s does not match its checksum (%s); fetching it again", art.model, final, origin)
        elif trust_on_first_use:
            _write_record(dest, art.file, current)
            logger.warning("%s: trusting existing %s on first use; recorded sha256 %s", art.model, final, current)
            return final
    if expected is None and not trust_on_first_use:
        have = f" ({final} exists but cannot be verified)" if final.is_file() else ""
        raise RegistryError(
            f"{art.model}: no checksum is known for {art.file}{have}; run 'edgecam models fetch {art.model} "
            f"--trust-on-first-use' to accept the file obtained now and check later copies against it"
        )
    tmp = _temp_file(dest, art.file, art)
    try:
        digest, source = _obtain(art, dest, tmp, mirrors, progress)
        if expected is not None and digest != expected:
            kept = f"; the existing {final} was left as it was" if final.exists() else ""
            raise RegistryError(
                f"{art.model}: checksum mismatch for {art.file} from {source}: got sha256 {digest}, "
                f"expected {expected} ({origin}); the file was not kept{kept}. The upstream file may have "
                f"changed or been tampered with: get a trusted copy and use --from DIR"
            )
        try:
            os.replace(tmp, final)
        except OSError as e:
            raise OutputError(f"{art.model}: cannot write {final}: {e.strerror or e}; {_DIR_HINT}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if expected is None:
        _write_record(dest, art.file, digest)
        logger.warning(
            "%s: no known checksum for %s; trusting it on first use and recording sha256 %s in %s",
            art.model, art.file, digest, _record_path(dest, art.file),
        )  # fmt: skip
    logger.info("%s: %s ready", art.model, final)
    return final


def _ensure_dir(dest: Path) -> None:
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create model folder {dest}: {e.strerror or e}; {_DIR_HINT}") from None
    if not os.access(dest, os.W_OK | os.X_OK):
        raise OutputError(f"model folder {dest} is not writable; {_DIR_HINT}")


def mirror_dirs(mirror: str | os.PathLike | None = None) -> list[Path]:
    """The mirror folders to copy from: ``mirror`` (``--from``), else ``$EDGECAM_MODEL_MIRROR``.

    Several folders are separated by ``os.pathsep`` (``:``), as in ``PATH``:
    ``../shared/models:../shared/images``; each file comes from the first
    folder that has it. Empty means download. Every folder named must exist
    (a typo must not silently turn an offline fetch into a download attempt):
    RegistryError otherwise.
    """
    if mirror is None:
        mirror = os.environ.get(ENV_MIRROR) or None
    if mirror is None:
        return []
    parts = [mirror] if isinstance(mirror, os.PathLike) else str(mirror).split(os.pathsep)
    folders = [Path(part).expanduser() for part in parts if str(part).strip()]
    for folder in folders:
        if not folder.is_dir():
            raise RegistryError(f"mirror folder {folder} does not exist; check --from / {ENV_MIRROR}")
    return folders


def fetch(
    name: str,
    dest_dir: str | os.PathLike | None = None,
    mirror: str | os.PathLike | None = None,
    trust_on_first_use: bool = False,
    progress: bool = True,
    registry: Mapping[str, ModelEntry] | str | os.PathLike | None = None,
    *,
    labels: bool = True,
) -> Path:
    """Make sure model ``name`` and its labels are in the model folder; return the model path.

    Files already present and verified are not fetched again. ``mirror`` is a
    local folder holding the files under their registry file names, or several
    (see :func:`mirror_dirs`; default: ``$EDGECAM_MODEL_MIRROR``); without one,
    files are downloaded from their
    URLs (``.tgz`` archives are unpacked to the ``member`` file). Every file is
    verified against its SHA-256 before it is moved into place; a model with no
    known checksum needs ``trust_on_first_use`` (see the module docstring).
    ``registry`` is a loaded registry, or the path of a registry file.
    ``labels=False`` fetches the model file only.

    Raises RegistryError (unknown name, download failed, checksum mismatch,
    member missing) or OutputError (model folder not writable, disk full).
    """
    reg = _registry(registry)
    entry = _entry(reg, name)
    dest = models_dir(dest_dir)
    _ensure_dir(dest)
    try:
        mirrors = mirror_dirs(mirror)
    except RegistryError as e:
        raise RegistryError(f"{name}: {e.message}") from None
    paths = [_fetch_one(a, dest, mirrors, trust_on_first_use, progress) for a in _artifacts(entry, labels)]
    return paths[0]


def photos_dir(dest_dir: str | os.PathLike | None = None) -> Path:
    """Where the registry's photos are kept: ``demo/`` in the model folder (see :func:`models_dir`)."""
    return models_dir(dest_dir) / PHOTO_SUBDIR


def fetch_photos(
    dest_dir: str | os.PathLike | None = None,
    mirror: str | os.PathLike | None = None,
    progress: bool = True,
    registry: str | os.PathLike | None = None,
) -> list[Path]:
    """Make sure every photo of the registry is in :func:`photos_dir`; return their paths in registry order.

    Fetched exactly like a model's file (see :func:`fetch`): from the mirror
    folders or the photo's URL, kept only when its SHA-256 matches. Raises
    RegistryError (no photos in the registry, download failed, checksum
    mismatch) or OutputError (folder not writable).
    """
    photos = load_photos(registry)
    if not photos:
        where = registry if registry is not None else registry_path()
        raise RegistryError(f"model registry {where} lists no photos (a 'photos:' section), which the demo needs")
    dest = photos_dir(dest_dir)
    _ensure_dir(dest)
    mirrors = mirror_dirs(mirror)
    return [_fetch_one(_Artifact(f"demo photo {p.name}", p.file, p.url, p.sha256), dest, mirrors, False, progress)
            for p in photos.values()]


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
    reg = _registry(registry)
    dest = models_dir(dest_dir)
    rank = {"ok": 0, "missing": 1, "unverified": 2, "mismatch": 3}
    seen: dict[tuple[str, str | None], tuple[str, str]] = {}  # labels are shared: hash once
    out = []
    for entry in reg.values():
        results = []
        for art in _artifacts(entry):
            key = (art.file, art.sha256)
            if key not in seen:
                seen[key] = _check(art, dest)
            results.append(seen[key])
        worst = max(range(len(results)), key=lambda i: rank[results[i][0]])  # ties: the model file
        status, detail = results[worst]
        if worst == 1:
            detail = f"labels: {detail}"
        out.append((entry.name, status, detail))
    return out


# ----------------------------------------------------------------------- resolving

LABEL_CANDIDATES = ("labels.txt", "{stem}_labels.txt", "{stem}.txt", "imagenet_labels.txt")


def _labels_file(path: str | os.PathLike) -> Path:
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
    reg = _registry(registry)
    if model in reg:
        entry = reg[model]
        dest = models_dir(dest_dir)
        labels_path = _labels_file(labels) if labels is not None else dest / entry.labels_file
        if fetch_missing:
            model_path = fetch(model, dest_dir=dest, registry=reg, labels=labels is None)
        else:
            model_path = dest / entry.file
            for p in (model_path, labels_path):
                if not p.is_file():
                    raise ModelError(
                        f"model {model}: {p} is missing; run 'edgecam models fetch {model}' "
                        f"(offline: add --from DIR)"
                    )
        return ResolvedModel(model, model_path, labels_path, entry)

    path = Path(model).expanduser()
    if not (model.endswith(".tflite") or path.exists()):
        raise ModelError(
            f"unknown model {model!r}: not a registry name and no such file; "
            f"known models: {', '.join(reg)} (or give the path of a .tflite file)"
        )
    if not path.is_file():
        raise ModelError(f"model file {path} not found; check model.name / --model")
    if labels is not None:
        return ResolvedModel(path.stem, path, _labels_file(labels), None)
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

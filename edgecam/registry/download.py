"""Getting a model's files: downloaded (HTTP(S), ``.tgz`` archives unpacked) or
copied from a local mirror folder, for a Pi without network.

:func:`fetch` only ever keeps files whose checksum matches: bytes go to a
hidden ``.part`` file beside the destination (:func:`edgecam.atomic.atomic_write`),
are hashed on the way, and replace the destination only when the hash is the
expected one, so an interrupted or corrupted download never leaves a file that
looks valid and never replaces a good one. A model with no known checksum is
only fetched with ``trust_on_first_use`` (:mod:`edgecam.registry.store`).

A mirror (``--from`` / ``$EDGECAM_MODEL_MIRROR``) may be several folders
separated by ``:`` (``os.pathsep``); each file is taken from the first one
that has it (:func:`mirror_dirs`), in the folder itself or one of its
subfolders (one level: ``../shared`` holding ``models/`` and ``images/``). The registry's photos (the demo's slides)
are fetched, checked and mirrored exactly like models (:func:`fetch_photos`).

The network and archive modules (``urllib``, ``http.client``, ``ssl``,
``tarfile``) are imported only when a download happens, not for a mirror copy:
they cost memory that a running camera never needs.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

from edgecam import __version__
from edgecam.atomic import atomic_write
from edgecam.errors import DownloadError, OutputError, RegistryError
from edgecam.registry.schema import Artifact, ModelEntry, artifacts, get_entry, load, load_photos, registry_path
from edgecam.registry.store import (DIR_HINT, ensure_dir, expected_hash, models_dir, new_sha256, photos_dir,
                                    record_path, sha256_file, write_record)

logger = logging.getLogger("edgecam.registry")

ENV_MIRROR = "EDGECAM_MODEL_MIRROR"  # local folder(s), ':'-separated, to copy models from instead of downloading

# Generous: a Pi on Wi-Fi can stall for a while; this bounds each socket
# operation (connect, one read), not the whole download.
TIMEOUT_S = 30.0
_CHUNK = 64 * 1024
MIRROR_HINT = (f"on an offline machine, set {ENV_MIRROR}=DIR or use --from DIR with a folder holding the files, "
               "in it or one subfolder down (several folders: DIR1:DIR2)")


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
    art: Artifact,
    source: str,
    progress: _Progress | None = None,
    read_errors: tuple[type[BaseException], ...] = (OSError,),
    read_error: type[RegistryError] = RegistryError,
) -> tuple[str, int]:
    """Copy chunks from ``read`` to ``out``; return (sha256 hex, byte count).

    A failure to read (one of ``read_errors``: the caller's source knows its
    own) is the source's fault (``read_error``: DownloadError for a network
    stream, whose failure may pass); a failure to write is the destination's
    (OutputError), e.g. a full SD card.
    """
    h = new_sha256()
    n = 0
    while True:
        try:
            chunk = read(_CHUNK)
        except read_errors as e:
            raise read_error(
                f"{art.model}: reading {source} failed after {n} bytes: {e}; try again, or {MIRROR_HINT}"
            ) from None
        if not chunk:
            break
        try:
            out.write(chunk)
        except OSError as e:
            raise OutputError(
                f"{art.model}: cannot write {art.file} to {Path(out.name).parent}: {e.strerror or e}; "
                f"free some space or {DIR_HINT}"
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
            f"{art.model}: cannot write {art.file}: {e.strerror or e}; free some space or {DIR_HINT}"
        ) from None
    return h.hexdigest(), n


# HTTP statuses that say "not now" rather than "not here": retrying may work.
_TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}


def _http_get(art: Artifact, out: BinaryIO, progress: bool) -> tuple[str, int]:
    """Download ``art.url`` into ``out``; return (sha256, size).

    Failures that may pass by themselves (no network yet, DNS, refused or
    timed-out connection, a connection cut midway, HTTP 5xx/408/429) raise
    DownloadError (exit 75: a supervisor retries); a wrong URL (other HTTP
    errors, a missing file:// path) raises RegistryError.
    """
    # import cost: 43 ms of every `edgecam --help` and start, for a download that is rare
    import http.client
    import urllib.error
    import urllib.request

    network = urllib.parse.urlparse(art.url).scheme in ("http", "https")
    transient = DownloadError if network else RegistryError
    req = urllib.request.Request(art.url, headers={"User-Agent": f"edgecam/{__version__}"})
    try:
        resp = urllib.request.urlopen(req, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code in _TRANSIENT_HTTP:
            raise DownloadError(
                f"{art.model}: download of {art.url} failed: HTTP {e.code} {e.reason}; "
                f"the server may be busy or down: try again later, or {MIRROR_HINT}"
            ) from None
        raise RegistryError(
            f"{art.model}: download of {art.url} failed: HTTP {e.code} {e.reason}; "
            f"check the model's url in the registry (models.yaml), or {MIRROR_HINT}"
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", None) or e
        raise transient(f"{art.model}: cannot download {art.url}: {reason}; {MIRROR_HINT}") from None
    with resp:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        bar = _Progress(f"{art.model}: {urllib.parse.urlparse(art.url).path.rsplit('/', 1)[-1]}", total, progress)
        digest, n = _copy_stream(resp.read, out, art, art.url, bar,
                                 read_errors=(OSError, http.client.HTTPException), read_error=transient)
        # http.client does not complain when the peer closes early; a short
        # body must not pass as a (possibly checksum-less) complete file.
        if total is not None and n != total:
            raise transient(
                f"{art.model}: download of {art.url} was cut off after {n} of {total} bytes; "
                f"try again, or {MIRROR_HINT}"
            )
        bar.finish(n)
    return digest, n


def _extract_member(art: Artifact, archive: Path, out: BinaryIO) -> str:
    """Copy ``art.member`` of the .tgz ``archive`` into ``out``; return its sha256."""
    # memory: tarfile imports shutil, which loads bz2 and lzma (as edgecam.atomic says); only for an archive
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
                    f"fix 'member' in the registry (models.yaml), or {MIRROR_HINT}"
                ) from None
            src = tar.extractfile(info) if info.isfile() else None
            if src is None:
                raise RegistryError(
                    f"{art.model}: {art.member} in {art.url} is not a regular file; "
                    "fix 'member' in the registry (models.yaml)"
                )
            with src:
                return _copy_stream(src.read, out, art, f"{art.member} in {art.url}",
                                    read_errors=(OSError, EOFError, zlib.error, tarfile.TarError))[0]
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        # Write failures were already turned into OutputError by _copy_stream.
        raise RegistryError(
            f"{art.model}: {art.url} is not a readable .tgz archive: {e}; try again, or {MIRROR_HINT}"
        ) from None


def _candidates(folder: Path, file: str) -> list[Path]:
    """``folder/file``, then ``folder/*/file`` (subfolders in name order): one folder such as
    ``../shared``, with ``models/`` and ``images/`` in it, is a whole mirror."""
    found = [folder / file] if (folder / file).is_file() else []
    try:
        subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        subs = []
    return found + [sub / file for sub in subs if (sub / file).is_file()]


def _in_mirror(art: Artifact, mirrors: list[Path]) -> Path:
    """The copy of ``art`` in the first mirror folder (or one of its subfolders) that has one."""
    for folder in mirrors:
        found = _candidates(folder, art.file)
        if found:
            return found[0]
    where = f"mirror folder {mirrors[0]} has" if len(mirrors) == 1 else \
        f"none of the mirror folders {', '.join(map(str, mirrors))} has"
    # A mirror naming ../shared/models when the photos are in ../shared/images:
    # say the one value that covers both, rather than only what is missing.
    for folder in mirrors:
        beside = _candidates(folder.parent, art.file) if folder.parent != folder else []
        if beside:
            value = os.pathsep.join(str(m) for m in mirrors if m != folder and m != folder.parent)
            value = f"{folder.parent}{os.pathsep}{value}" if value else str(folder.parent)
            raise RegistryError(
                f"{art.model}: {where} no {art.file} (nor its subfolders), but {beside[0]} is there: "
                f"set {ENV_MIRROR}={value} (a folder is searched with its subfolders, one level down)"
            )
    raise RegistryError(
        f"{art.model}: {where} no {art.file} (nor its subfolders); copy it there (upstream: {art.source}) "
        f"or fetch without --from / {ENV_MIRROR}"
    )


def _obtain(art: Artifact, dest: Path, out: BinaryIO, mirrors: list[Path], progress: bool) -> tuple[str, str]:
    """Write the bytes of ``art`` into ``out``; return (sha256, source description)."""
    if mirrors:
        src = _in_mirror(art, mirrors)
        try:
            fin = open(src, "rb")
        except OSError as e:
            raise RegistryError(f"{art.model}: cannot read {src}: {e.strerror or e}") from None
        with fin:
            logger.info("%s: copying %s from %s", art.model, art.file, src.parent)
            return _copy_stream(fin.read, out, art, str(src))[0], str(src)
    if art.member is None:
        return _http_get(art, out, progress)[0], art.url
    import tempfile  # memory: it imports shutil, bz2 and lzma (edgecam.atomic); only for an archive

    try:
        archive = tempfile.NamedTemporaryFile(dir=dest, prefix=f".{art.file}.tgz.", suffix=".part")
    except OSError as e:
        raise OutputError(f"{art.model}: cannot write to model folder {dest}: {e.strerror or e}; {DIR_HINT}") from None
    with archive:  # removed when closed
        _http_get(art, archive, progress)
        return _extract_member(art, Path(archive.name), out), art.source


def _fetch_one(art: Artifact, dest: Path, mirrors: list[Path], trust_on_first_use: bool, progress: bool) -> Path:
    final = dest / art.file
    expected, origin = expected_hash(art, dest)
    if final.is_file():
        try:
            current = sha256_file(final)
        except OSError as e:
            raise OutputError(
                f"{art.model}: cannot read {final}: {e.strerror or e}; delete it or {DIR_HINT}"
            ) from None
        if expected is not None:
            if current == expected:
                logger.debug("%s: %s present and verified", art.model, final)
                return final
            # A corrupt copy is replaced only once a good one has been obtained.
            logger.warning("%s: %s does not match its checksum (%s); fetching it again", art.model, final, origin)
        elif trust_on_first_use:
            write_record(dest, art.file, current)
            logger.warning("%s: trusting existing %s on first use; recorded sha256 %s", art.model, final, current)
            return final
    if expected is None and not trust_on_first_use:
        have = f" ({final} exists but cannot be verified)" if final.is_file() else ""
        raise RegistryError(
            f"{art.model}: no checksum is known for {art.file}{have}; run 'edgecam models fetch {art.model} "
            f"--trust-on-first-use' to accept the file obtained now and check later copies against it"
        )
    try:
        # 0644: a service running as another user must read the model. The
        # bytes replace `final` only if the block ends without an exception.
        with atomic_write(final, 0o644) as out:
            digest, source = _obtain(art, dest, out, mirrors, progress)
            if expected is not None and digest != expected:
                kept = f"; the existing {final} was left as it was" if final.exists() else ""
                raise RegistryError(
                    f"{art.model}: checksum mismatch for {art.file} from {source}: got sha256 {digest}, "
                    f"expected {expected} ({origin}); the file was not kept{kept}. The upstream file may have "
                    f"changed or been tampered with: get a trusted copy and use --from DIR"
                )
    except OSError as e:  # the temporary file could not be made, written or renamed (the copy reports its own)
        raise OutputError(f"{art.model}: cannot write {final} in the model folder: {e.strerror or e}; "
                          f"{DIR_HINT}") from None
    if expected is None:
        write_record(dest, art.file, digest)
        logger.warning(
            "%s: no known checksum for %s; trusting it on first use and recording sha256 %s in %s",
            art.model, art.file, digest, record_path(dest, art.file),
        )  # fmt: skip
    logger.info("%s: %s ready", art.model, final)
    return final


def mirror_dirs(mirror: str | os.PathLike | None = None) -> list[Path]:
    """The mirror folders to copy from: ``mirror`` (``--from``), else ``$EDGECAM_MODEL_MIRROR``.

    Several folders are separated by ``os.pathsep`` (``:``), as in ``PATH``:
    ``../shared/models:../shared/images``; each file comes from the first
    folder that has it, in the folder or one of its subfolders (so
    ``../shared`` alone covers both). Empty means download. Every folder named must exist
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

    Raises RegistryError (unknown name, wrong URL, checksum mismatch, member
    missing), its subclass DownloadError when the download failed in a way
    that may pass (network down, timeout, HTTP 5xx: exit 75, retried by the
    service), or OutputError (model folder not writable, disk full).
    """
    reg = load(registry)
    entry = get_entry(reg, name)
    dest = models_dir(dest_dir)
    ensure_dir(dest)
    try:
        mirrors = mirror_dirs(mirror)
    except RegistryError as e:
        raise RegistryError(f"{name}: {e.message}") from None
    paths = [_fetch_one(a, dest, mirrors, trust_on_first_use, progress) for a in artifacts(entry, labels)]
    return paths[0]


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
    ensure_dir(dest)
    mirrors = mirror_dirs(mirror)
    return [_fetch_one(Artifact(f"demo photo {p.name}", p.file, p.url, p.sha256), dest, mirrors, False, progress)
            for p in photos.values()]

"""The review queue: crops the model was unsure of, on disk, within a size cap (oldest out first).

Each item is ``<folder>/<region>/<id>.png`` (the crop, lossless: it may become
an example) and ``<id>.json`` (the model's guess, why it was unsure, its
scores). Ids sort by time (``20260501-120001.234-000042``). The queue counts
the bytes of both files and, before writing an item, removes the oldest until
the new one fits: its size on disk never goes over ``cap_bytes``. An item is
filed (moved into ``<examples>/<region>/<state>/``, the folders ``collect`` and
the "this is" buttons write) or discarded.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
from collections import OrderedDict
from pathlib import Path

from edgecam.names import identifier_problem

logger = logging.getLogger(__name__)

ITEM_ID = re.compile(r"\d{8}-\d{6}\.\d{3}-\d{6}")
DEFAULT_CAP_BYTES = 50 * 1024 * 1024
LISTED = 60  # newest items listed per region


class ReviewQueue:
    """A bounded queue of crops on disk (see the module docstring); safe to use from several threads."""

    def __init__(self, folder: str | Path, cap_bytes: int = DEFAULT_CAP_BYTES):
        self.folder = Path(folder)
        self.cap_bytes = int(cap_bytes)
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[str, int]] = OrderedDict()  # id -> (region, bytes), oldest first
        self.total = 0
        self._n = 0
        self.dropped = 0  # items removed to make room
        self._scan()

    def _scan(self) -> None:
        """Index what a previous run left (and bring it within the cap, should the cap have shrunk)."""
        found = []
        for png in self.folder.glob("*/*.png"):
            region, item = png.parent.name, png.stem
            if identifier_problem(region) or not ITEM_ID.fullmatch(item):
                continue
            meta = png.with_suffix(".json")
            size = _size(png) + _size(meta)
            found.append((item, region, size))
        for item, region, size in sorted(found):
            self._items[item] = (region, size)
            self.total += size
        with self._lock:
            self._make_room(0)

    def add(self, region: str, png: bytes, meta: dict, when: float | None = None) -> str | None:
        """Keep one crop (``png``: its encoded bytes) with ``meta``; its id, or None when it is bigger than the cap."""
        when = time.time() if when is None else when
        body = json.dumps({**meta, "region": region, "time": round(when, 3)}).encode()
        size = len(png) + len(body)
        if size > self.cap_bytes or identifier_problem(region):
            return None
        with self._lock:
            self._n += 1
            stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(when)) + f".{int(when * 1000) % 1000:03d}"
            item = f"{stamp}-{self._n % 1_000_000:06d}"
            self._make_room(size)
            folder = self.folder / region
            try:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{item}.json").write_bytes(body)
                (folder / f"{item}.png").write_bytes(png)
            except OSError as e:
                logger.warning("review queue: cannot write into %s: %s", folder, e.strerror or e)
                _remove(folder / f"{item}.json", folder / f"{item}.png")
                return None
            self._items[item] = (region, size)
            self.total += size
        return item

    def _make_room(self, size: int) -> None:
        """Remove the oldest items until ``size`` more bytes fit under the cap (the lock held)."""
        while self._items and self.total + size > self.cap_bytes:
            item, (region, bytes_) = self._items.popitem(last=False)
            _remove(*self._files(region, item))
            self.total -= bytes_
            self.dropped += 1

    def _files(self, region: str, item: str) -> tuple[Path, Path]:
        return self.folder / region / f"{item}.png", self.folder / region / f"{item}.json"

    def region_of(self, item: str) -> str | None:
        """The region of item ``item``; None when there is no such item (or the id is malformed)."""
        with self._lock:
            entry = self._items.get(item) if ITEM_ID.fullmatch(item or "") else None
        return entry[0] if entry else None

    def picture(self, item: str) -> Path | None:
        """The crop's file of item ``item``, or None."""
        region = self.region_of(item)
        return None if region is None else self._files(region, item)[0]

    def items(self, region: str | None = None) -> list[dict]:
        """The newest items (of ``region``; None: of every region), newest first, each its meta and ``id``."""
        with self._lock:
            ids = [(i, r) for i, (r, _) in reversed(self._items.items()) if region is None or r == region]
        out = []
        for item, r in ids[:LISTED]:
            try:
                meta = json.loads(self._files(r, item)[1].read_text(encoding="utf-8"))
            except (OSError, ValueError):
                meta = {"region": r}
            out.append({**meta, "id": item})
        return out

    def counts(self) -> dict[str, int]:
        """How many items each region has."""
        with self._lock:
            out: dict[str, int] = {}
            for region, _ in self._items.values():
                out[region] = out.get(region, 0) + 1
        return out

    def take(self, item: str, dest: Path) -> Path | None:
        """Move item ``item``'s crop to ``dest`` (a file path; folders made) and forget it; None: no such item."""
        with self._lock:
            entry = self._items.pop(item, None) if ITEM_ID.fullmatch(item or "") else None
            if entry is None:
                return None
            self.total -= entry[1]
            png, meta = self._files(entry[0], item)
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(png, dest)
            except OSError:  # another file system
                shutil.copyfile(png, dest)
            _remove(png, meta)
        return dest

    def discard(self, item: str) -> bool:
        """Remove item ``item``; False when there is none."""
        with self._lock:
            entry = self._items.pop(item, None) if ITEM_ID.fullmatch(item or "") else None
            if entry is None:
                return False
            self.total -= entry[1]
            _remove(*self._files(entry[0], item))
        return True

    def disk_bytes(self) -> int:
        """The bytes the queue's files take now, counted on disk (what the cap bounds; for checks)."""
        return sum(_size(p) for p in self.folder.glob("*/*") if p.suffix in (".png", ".json"))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _remove(*paths: Path) -> None:
    for p in paths:
        try:
            p.unlink()
        except FileNotFoundError:
            pass
        except OSError as e:
            logger.warning("review queue: cannot remove %s: %s", p, e.strerror or e)

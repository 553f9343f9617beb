"""Regions drawn on the page, kept in the state directory (the config file stays read-only).

One JSON file per camera, ``<state_dir>/regions/<camera>.json``: a list of
``{"name", "box", "labels"}``, written atomically. A region of the config file
with the same name wins: the page shows it as read-only, and a drawn one
cannot take its name.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from edgecam.atomic import write_atomic
from edgecam.names import identifier_problem, labels_problem

logger = logging.getLogger(__name__)

MAX_REGIONS = 16  # per camera: each is one more invoke per frame
MAX_STATES = 16
MIN_SIDE = 0.02  # a box narrower than 2 % of the picture is a slip of the mouse


class BadRegion(ValueError):
    """A drawn region that cannot be kept: the message says what and what to do (a 400 on the page)."""


@dataclass(frozen=True)
class DrawnRegion:
    """A region drawn on the page: its name (an identifier), its box (fractions x0, y0, x1, y1), its states."""

    name: str
    box: tuple[float, float, float, float]
    labels: tuple[str, ...]

    def to_json(self) -> dict:
        return {"name": self.name, "box": list(self.box), "labels": list(self.labels)}

    @classmethod
    def parse(cls, data) -> DrawnRegion:
        """A region from a request's or the file's JSON; BadRegion naming the field that is wrong."""
        if not isinstance(data, dict):
            raise BadRegion("a region is a JSON object with name, box and labels")
        name = data.get("name")
        if not isinstance(name, str) or identifier_problem(name):
            raise BadRegion(f"name: expected {identifier_problem('')}")
        box = data.get("box")
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
            raise BadRegion("box: expected four numbers [x0, y0, x1, y1], fractions of the picture")
        x0, y0, x1, y1 = (round(float(v), 4) for v in box)
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1) or x1 - x0 < MIN_SIDE or y1 - y0 < MIN_SIDE:
            raise BadRegion(f"box: expected 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, sides of {MIN_SIDE} or more")
        labels = data.get("labels")
        if not (isinstance(labels, list) and all(isinstance(v, str) for v in labels)):
            raise BadRegion("labels: expected a list of state names")
        if not 2 <= len(labels) <= MAX_STATES:
            raise BadRegion(f"labels: expected 2 to {MAX_STATES} states")
        problem = labels_problem(labels)
        if problem:
            raise BadRegion(f"labels: expected {problem}")
        return cls(name, (x0, y0, x1, y1), tuple(labels))


class RegionStore:
    """The drawn regions of one camera, in ``<folder>/<camera>.json`` (see the module docstring)."""

    def __init__(self, folder: str | Path, camera: str = "main"):
        self.path = Path(folder) / f"{camera}.json"
        self._lock = threading.Lock()

    def load(self) -> list[DrawnRegion]:
        """The regions kept; a damaged file or entry is logged once and left out (never a failed start)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as e:
            logger.error("drawn regions: cannot read %s (%s); none are used until the page saves them again",
                         self.path, e)
            return []
        out = []
        for item in data if isinstance(data, list) else []:
            try:
                out.append(DrawnRegion.parse(item))
            except BadRegion as e:
                logger.error("drawn regions: %s: an entry is left out: %s", self.path, e)
        return out[:MAX_REGIONS]

    def put(self, region: DrawnRegion, config_names=()) -> list[DrawnRegion]:
        """Add or replace ``region`` (by name); BadRegion when a config region has its name or too many."""
        if region.name in config_names:
            raise BadRegion(f"name: {region.name} is a region of the config file, which the page cannot change; "
                            "choose another name")
        with self._lock:
            regions = [r for r in self.load() if r.name != region.name]
            if len(regions) >= MAX_REGIONS:
                raise BadRegion(f"a camera has at most {MAX_REGIONS} drawn regions; delete one first")
            regions.append(region)
            self._write(regions)
        return regions

    def delete(self, name: str) -> bool:
        """Remove region ``name``; False when there was none."""
        with self._lock:
            regions = self.load()
            kept = [r for r in regions if r.name != name]
            if len(kept) == len(regions):
                return False
            self._write(kept)
        return True

    def _write(self, regions: list[DrawnRegion]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps([r.to_json() for r in regions], indent=1).encode())

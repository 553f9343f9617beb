"""Teaching from the web page: each region's live crop, and "this is: <state>" saving it as an example.

The HTTP output (:mod:`edgecam.outputs.http`) holds one :class:`Teacher` when
regions are configured. It keeps a reference to the newest camera frame (the
picture itself, without the overlay) and, on request:

* :meth:`Teacher.crop_jpeg`: the region's crop of it as a JPEG
  (``GET /region/<name>.jpg``);
* :meth:`Teacher.save`: writes that crop, lossless, to
  ``<examples_dir>/<region>/<state>/<time>.png`` (``POST /api/examples``):
  the layout ``edgecam learn`` reads (``edgecam learn <examples_dir>/garage
  --name garage``), the same files ``edgecam collect`` writes.

Only states the region knows can be saved (its ``labels``, else its model's
classes), so a request cannot name a folder of its own choosing.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from edgecam import registry
from edgecam.errors import ConfigError, OutputError
from edgecam.names import label_problem
from edgecam.pictures import shown, write_image
from edgecam.model.regions import crop

logger = logging.getLogger("edgecam.outputs.http")

#: A region with more states than this (a model's 1,001 classes) lists none on the page: see Teacher.describe.
MAX_BUTTONS = 64


def example_name(when: float, n: int) -> str:
    """A file name that sorts by time: ``20250501-120001.234-0003.png``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(when)) + f".{int(when * 1000) % 1000:03d}"
    return f"{stamp}-{n:04d}.png"


def example_folder(root: str | Path, *names: str) -> Path:
    """``root/<region or rule>/<label>``: each name checked as one folder name (an OutputError when one is not).

    The config refuses such names where it sees them; this is the last check, at the write, for names that
    come from elsewhere (a model's labels file, a request).
    """
    for name in names:
        problem = label_problem(name)
        if problem:
            raise OutputError(f"examples: {name!r} cannot name a folder in {shown(root)}; expected {problem}")
    return Path(root).joinpath(*names)


def examples_dir(cfg) -> str:
    """Where the web page saves examples: ``examples_dir``, else ``examples/`` beside the model folder."""
    if cfg.examples_dir:
        return cfg.examples_dir
    return str(registry.models_dir(cfg.model.dir).parent / "examples")


def check_examples_dir(examples: str | Path, media: str | Path) -> None:
    """A ConfigError when the examples folder ``examples`` lies in ``media``, a folder whose files are deleted
    at every start unless something names them (the events' media folder: its history's repair)."""
    media = Path(media).resolve()
    where = Path(examples).resolve()
    if where == media or media in where.parents:
        raise ConfigError(f"examples_dir: {shown(examples)} is inside the events' media folder {shown(media)}, "
                          "whose files no event names are deleted at every start; choose a folder outside it")


def save_example(region: np.ndarray, folder: Path, when: float, n: int) -> Path:
    """Write one region crop into ``folder`` (created); an OutputError naming the folder when it cannot."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = write_image(folder / example_name(when, n), region)
    except OSError as e:
        raise OutputError(f"examples: cannot write into {shown(folder)}: {getattr(e, 'strerror', None) or e}; "
                          "check examples_dir (or --dir) is writable") from None
    return path


class Teacher:
    """The regions' crops and example saving (see the module docstring).

    ``regions``: :class:`edgecam.outputs.base.RegionInfo` objects; ``folder``:
    where examples go (one subfolder per region).
    """

    def __init__(self, regions, folder: str | Path, jpeg_quality: int = 85):
        self.regions = {r.name: r for r in regions}
        self.folder = Path(folder)
        self.jpeg_quality = jpeg_quality
        self._lock = threading.Lock()
        self._image: np.ndarray | None = None
        self._wall = 0.0
        self._saved = 0

    def on_frame(self, image: np.ndarray, wall_time: float) -> None:
        """Keep a reference to the newest camera picture (costs the pipeline nothing)."""
        self._image, self._wall = image, wall_time

    def crop(self, name: str) -> np.ndarray | None:
        image = self._image
        region = self.regions.get(name)
        if image is None or region is None:
            return None
        return crop(image, region.box)

    def crop_jpeg(self, name: str) -> bytes | None:
        """The region's crop of the newest picture as JPEG; None before the first picture or for no such region."""
        region = self.crop(name)
        if region is None:
            return None
        ok, buf = cv2.imencode(".jpg", region, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        return buf.tobytes() if ok else None

    def count(self, name: str, label: str) -> int:
        """How many examples of state ``label`` of region ``name`` are saved."""
        folder = self.folder / name / label
        return sum(1 for p in folder.glob("*.png")) if not label_problem(label) and folder.is_dir() else 0

    def counts(self, name: str) -> dict[str, int]:
        """How many examples of each state of region ``name`` are saved."""
        return {label: self.count(name, label) for label in self.regions[name].labels}

    def describe(self) -> list[dict]:
        """What the page shows: each region, its states (a button each) and how many examples each has.

        A region without ``labels:`` has its model's classes as states: past :data:`MAX_BUTTONS` of them (the
        1,001 ImageNet classes made /api/regions 26 MB with 500 regions) none are listed, ``states`` says how
        many there are; give the region ``labels:`` to teach it from the page.
        """
        out = []
        for name, region in self.regions.items():
            shown = list(region.labels) if len(region.labels) <= MAX_BUTTONS else []
            out.append({"name": name, "labels": shown, "states": len(region.labels),
                        "examples": {label: self.count(name, label) for label in shown}})
        return out

    def save(self, name: str, label: str) -> tuple[Path, int]:
        """Save region ``name``'s crop of the newest picture as an example of ``label``: (path, examples now).

        Raises KeyError (no such region or state) or LookupError (no picture yet).
        """
        region = self.regions.get(name)
        if region is None:
            raise KeyError(f"no region {name!r}; regions: {', '.join(self.regions)}")
        if label not in region.labels or label_problem(label):
            raise KeyError(f"region {name} has no state {label!r} that can name a folder; its states: "
                           f"{', '.join(region.labels)}")
        picture = self.crop(name)
        if picture is None:
            raise LookupError("no picture yet")
        with self._lock:
            self._saved += 1
            path = save_example(np.ascontiguousarray(picture), example_folder(self.folder, name, label),
                                self._wall or time.time(), self._saved)
        logger.info("examples: saved %s", path)
        return path, self.count(name, label)

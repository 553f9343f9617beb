"""One camera's teaching: what the page's endpoints (:mod:`edgecam.studio.api`) act on.

:class:`Studio` holds the camera's drawn regions (:mod:`.drawn`), its review
queue (:mod:`.review`, fed by :mod:`.feeder`), the heads of each drawn region
(:mod:`.versions`) and the retrain in progress (:mod:`.trainer`). What changes
the running camera (a region drawn, moved or deleted; a head put in use or
undone) is written to the state directory first, then applied by the camera's
reload (``request_reload``: what SIGHUP does), from its output loop
(:func:`edgecam.studio.live.apply`).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from edgecam import registry
from edgecam.config.state import feature_dir
from edgecam.errors import EdgecamError
from edgecam.model import custom_models
from edgecam.model.classifier import load_classifier
from edgecam.names import label_problem
from edgecam.outputs.teach import example_folder, example_name
from edgecam.studio import api
from edgecam.studio.drawn import DrawnRegion, RegionStore
from edgecam.studio.feeder import Feeder
from edgecam.studio.review import ReviewQueue
from edgecam.studio.live import base_config
from edgecam.studio.trainer import BASE, Embedder, Retrain, examples, lowest_priority
from edgecam.studio.versions import Versions

logger = logging.getLogger(__name__)

NEAREST = 3  # examples shown for "why this state"
NEAREST_POOL = 60  # of the newest examples of the state
WARM_S = 2.0  # how often new examples are looked for, to embed them ahead of a retrain


class Studio:
    """The teaching side of one camera (see the module docstring).

    ``cfg``: the camera's config; ``camera``: its name; ``examples_dir``: where
    examples go; ``request_reload``: asks the camera's output loop to reload.
    """

    def __init__(self, cfg, camera: str, examples_dir, request_reload=None, gap_s: float = 1.0):
        self.cfg = cfg
        self.camera = camera
        self.examples = Path(examples_dir)
        self.store = RegionStore(feature_dir(cfg.state_dir, "regions"), camera)
        self.review = ReviewQueue(feature_dir(cfg.state_dir, "review") / camera,
                                  int(cfg.http.review_cap_mb * 1024 * 1024))
        self.models = feature_dir(cfg.state_dir, "models") / camera
        self.config_names = frozenset(r.name for r in cfg.regions or ())
        self.embedder = Embedder(cfg.model)
        self.request_reload = request_reload or (lambda: None)
        #: the regions running now, by name (:class:`edgecam.model.regions.Region`), set by live.apply
        self.live: dict = {}
        self.feeder = Feeder(self.review, lambda: self.live, gap_s)
        self.teacher = None  # the HTTP output's Teacher (its crops of the newest picture)
        self._job: Retrain | None = None
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._warmer: threading.Thread | None = None
        self._ready: dict = {}  # new drawn region -> its classifier, loaded ahead of the reload

    # ------------------------------------------------------------ regions

    def versions(self, region: str) -> Versions:
        return Versions(self.models / region)

    def describe(self) -> dict:
        """Every region (config's read-only, drawn ones editable), its states, examples, heads; the queue."""
        queue = self.review.counts()
        out = []
        drawn = {d.name: d for d in self.store.load()}
        for name, region in self.live.items():
            source = "config" if name in self.config_names else "drawn"
            labels = drawn[name].labels if name in drawn and source == "drawn" else tuple(region.labels)
            labels = labels if len(labels) <= 64 else ()
            v = self.versions(name)
            out.append({"name": name, "box": list(region.box), "labels": list(labels), "source": source,
                        "examples": {s: len(f) for s, f in examples(self.examples, name, labels).items()},
                        "review": queue.get(name, 0), "model": region.classifier.name,
                        "version": v.current() if source == "drawn" else None,
                        "versions": v.kept() if source == "drawn" else []})
        pending = [d.to_json() for n, d in drawn.items() if n not in self.live and n not in self.config_names]
        return {"camera": self.camera, "regions": out, "pending": pending,
                "review": {"bytes": self.review.total, "cap_bytes": self.review.cap_bytes},
                "retrain": self.retrain_status()}

    def put_region(self, data) -> DrawnRegion:
        region = DrawnRegion.parse(data)
        self.store.put(region, self.config_names)
        if self.live and region.name not in self.live and region.name not in self._ready:  # live: regions run
            # its classifier loaded and built here (the request's thread), not in the camera's output loop
            clf = self.load_base()
            clf.build()
            self._ready[region.name] = clf
        self.request_reload()
        return region

    def delete_region(self, name: str) -> bool:
        if name in self.config_names:
            raise PermissionError(f"{name} is a region of the config file; edit the config to remove it")
        gone = self.store.delete(name)
        if gone:
            self.request_reload()
        return gone

    def base_for(self, name: str):
        """The classifier a new drawn region ``name`` runs: the one :meth:`put_region` loaded, else a new one."""
        clf = self._ready.pop(name, None)
        return clf if clf is not None else self.load_base()

    def load_base(self):
        """A new classifier of the base model with its embedding: each drawn region runs one of its own."""
        return load_classifier(base_config(self.cfg), embedding=True)

    # ------------------------------------------------------------ review queue

    def states_of(self, region: str) -> tuple[str, ...]:
        live = self.live.get(region)
        if live is None:
            raise KeyError(f"no region {region!r}")
        return tuple(live.labels)

    def file_item(self, item: str, state: str) -> Path:
        """File review item ``item`` as an example of ``state`` of its region; KeyError: no such item or state."""
        region = self.review.region_of(item)
        if region is None:
            raise KeyError(f"no review item {item!r} (filed or discarded already?)")
        if state not in self.states_of(region) or label_problem(state):
            raise KeyError(f"region {region} has no state {state!r}")
        folder = example_folder(self.examples, region, state)
        with self._lock:
            dest = folder / f"review-{item}.png"
            taken = self.review.take(item, dest)
        if taken is None:
            raise KeyError(f"no review item {item!r}")
        return taken

    def relabel(self, region: str, file: str, state: str) -> Path:
        """Move example ``file`` (``<state>/<name>``, as the evidence names it) of ``region`` to ``state``."""
        if state not in self.states_of(region) or label_problem(state):
            raise KeyError(f"region {region} has no state {state!r}")
        src = self.example_path(region, file)
        folder = example_folder(self.examples, region, state)
        folder.mkdir(parents=True, exist_ok=True)
        dest = folder / src.name
        if dest.exists():
            dest = folder / f"relabelled-{example_name(src.stat().st_mtime, 0)}"
        src.replace(dest)
        return dest

    def example_path(self, region: str, file: str) -> Path:
        """The example file ``<state>/<name>`` of ``region``; KeyError when it is not one."""
        state, _, name = file.partition("/")
        if region not in self.live or label_problem(state) or label_problem(name) or not name:
            raise KeyError(f"no example {file!r} of region {region!r}")
        path = self.examples / region / state / name
        if not path.is_file():
            raise KeyError(f"no example {file!r} of region {region!r}")
        return path

    # ------------------------------------------------------------ retrain, use, undo

    def retrain(self, region: str) -> dict:
        """Start retraining drawn region ``region`` in the background; its status (LookupError: one runs)."""
        if region in self.config_names or region not in self.live:
            raise KeyError(f"no drawn region {region!r} (a config region's model is the config's)")
        with self._lock:
            if self._job is not None and self._job.thread.is_alive():
                raise LookupError(f"a retrain of {self._job.region} is running; wait for it")
            self._job = Retrain(self.embedder, self.examples, region, self.states_of(region),
                                self.versions(region).candidate, self._base_sha256)
            self._job.thread.start()
        return self.retrain_status()

    def _base_sha256(self) -> str:
        return custom_models.base_sha256(self.cfg.model.dir, BASE, registry.load_registry())

    def retrain_status(self) -> dict:
        job = self._job
        return {"state": "idle"} if job is None else dict(job.status)

    def use(self, region: str) -> int:
        """Put region ``region``'s candidate head in use (live, by a reload); its version number."""
        if region in self.config_names or region not in self.live:
            raise KeyError(f"no drawn region {region!r}")
        job = self._job
        if job is not None and job.region == region and job.thread.is_alive():
            raise LookupError("the retrain is still running; wait for its evidence")
        try:
            version = self.versions(region).use_candidate()
        except FileNotFoundError:
            raise LookupError("no candidate: retrain first") from None
        if job is not None and job.region == region:
            job.status = {**job.status, "state": "used", "version": version}
        self.request_reload()
        return version

    def undo(self, region: str) -> int | None:
        """Go back to the head used before (None: the base model's classes), live, by a reload."""
        if region in self.config_names or region not in self.live:
            raise KeyError(f"no drawn region {region!r}")
        version = self.versions(region).undo()
        self.request_reload()
        return version

    # ------------------------------------------------------------ why this state

    def why(self, region: str) -> dict:
        """The region's latest scores of every state, and the stored examples nearest the crop now."""
        if region not in self.live:
            raise KeyError(f"no region {region!r}")
        latest = self.feeder.latest(region)
        state = latest.get("state")
        nearest = []
        picture = self.teacher.crop(region) if self.teacher is not None else None
        if state and picture is not None and not label_problem(state):
            files = examples(self.examples, region, [state])[state][-NEAREST_POOL:]
            if files:
                here = _unit(self.embedder.picture(np.ascontiguousarray(picture)))
                sims = []
                for f in files:
                    v = self.embedder.file(f)
                    if v is not None:
                        sims.append((float(here @ _unit(v)), f))
                sims.sort(key=lambda t: -t[0])
                nearest = [{"file": f"{state}/{f.name}", "similarity": round(s, 4)} for s, f in sims[:NEAREST]]
        return {"region": region, **latest, "nearest": nearest}

    def attach(self, sink) -> None:
        """Serve the page and its reads on ``sink`` (an HTTP output: its ``mount``) and take its crops."""
        self.teacher = sink.teacher
        if self._warmer is None:
            self._warmer = threading.Thread(target=self._warm, name="teach-embed", daemon=True)
            self._warmer.start()
        for prefix in ("/teach", "/api/teach"):
            sink.mount(prefix, lambda request, path, query: api.read(request, self, path, query))

    def write(self, request, path: str) -> None:
        """Answer a POST or DELETE below /api/teach/ (``request``: the HTTP handler, checks passed)."""
        api.write(request, self, path)

    def _warm(self) -> None:
        """Embed each new example of the drawn regions as it comes (lowest priority, every WARM_S): a retrain
        then only fits and cross-validates, in well under a second."""
        lowest_priority()
        while not self._closed.wait(WARM_S):
            for name, region in list(self.live.items()):
                if name in self.config_names:
                    continue
                for files in examples(self.examples, name, region.labels).values():
                    for path in files:
                        if self._closed.is_set():
                            return
                        try:
                            self.embedder.file(path)
                        except EdgecamError as e:  # the base model cannot be had: said once, retrain says it again
                            logger.warning("teach: cannot embed examples: %s", e.message)
                            return
            self.embedder.forget_missing()

    def close(self) -> None:
        self._closed.set()
        self.feeder.close()


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32).reshape(-1)
    return v / max(float(np.linalg.norm(v)), 1e-12)

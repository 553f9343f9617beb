"""Retraining a drawn region from its examples, in a background thread at the lowest priority.

What ``edgecam learn`` does (:mod:`edgecam.commands.learn`): each example's
embedding on the base model, :func:`edgecam.model.heads.cross_validate`, then
:func:`edgecam.model.heads.fit`; here on a classifier of its own (one thread,
its own interpreter: the camera's are never borrowed) and with the
embeddings cached by file, so a retrain embeds only the examples added since
the last one. The result is a candidate head and its evidence: the
cross-validated accuracy of each state with its 95 % interval, the confusion
matrix and the examples the cross-validation got wrong. Nothing goes live
until "use" (:mod:`edgecam.studio.versions`).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import threading
import time
from pathlib import Path

import numpy as np

from edgecam.errors import EdgecamError
from edgecam.model.interval import wilson_interval
from edgecam.model import custom_models, heads
from edgecam.model.classifier import load_classifier
from edgecam.names import label_problem
from edgecam.pictures import PictureError, read_image

logger = logging.getLogger(__name__)

BASE = "mobilenet_v3_small"  # the base model every page-taught head is learned on (learn's default)
METHOD = "logreg"  # learn's default: the best held-out accuracy on the scene tests
MIN_EXAMPLES = 2  # per state (cross-validation); 10 or more are advised
SUFFIXES = {".png", ".jpg", ".jpeg"}


class Embedder:
    """The base model's embedding of pictures, on a classifier of its own, cached per file (thread-safe)."""

    def __init__(self, model_cfg):
        self.model_cfg = dataclasses.replace(model_cfg, name=BASE, labels=None, crop="stretch", threads=1)
        self._clf = None
        self._lock = threading.Lock()
        self._cache: dict[Path, tuple[float, np.ndarray]] = {}

    @property
    def classifier(self):
        with self._lock:
            if self._clf is None:
                self._clf = load_classifier(self.model_cfg, embedding=True)
            return self._clf

    def picture(self, image: np.ndarray) -> np.ndarray:
        """The embedding of one picture (BGR)."""
        clf = self.classifier
        with self._lock:
            return clf.embed(image)

    def file(self, path: Path) -> np.ndarray | None:
        """The embedding of the picture in ``path`` (cached while the file is unchanged); None if unreadable."""
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        hit = self._cache.get(path)
        if hit is not None and hit[0] == mtime:
            return hit[1]
        try:
            vector = self.picture(read_image(path))
        except PictureError as e:
            logger.warning("retrain: %s is left out: %s", path, e.message)
            return None
        self._cache[path] = (mtime, vector)
        return vector


    def forget_missing(self) -> None:
        """Drop the cached embeddings of files that are gone (filed elsewhere, deleted)."""
        for path in [p for p in self._cache if not p.exists()]:
            self._cache.pop(path, None)


def examples(root: Path, region: str, labels) -> dict[str, list[Path]]:
    """The example files of each of ``labels`` (``root/<region>/<label>/*.png``), by name."""
    out = {}
    for label in labels:
        folder = root / region / label
        if label_problem(label) or not folder.is_dir():
            out[label] = []
            continue
        out[label] = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
    return out


class Retrain:
    """One retrain of one region: :meth:`run` it (a thread); :attr:`status` is what the page polls."""

    def __init__(self, embedder: Embedder, root: Path, region: str, labels, candidate: Path, base_sha256):
        self.embedder, self.root, self.region, self.labels = embedder, Path(root), region, tuple(labels)
        self.candidate = candidate
        self.base_sha256 = base_sha256  # () -> the SHA-256 of the base model's file
        self.status: dict = {"state": "running", "region": region, "done": 0, "total": 0}
        self.thread = threading.Thread(target=self.run, name=f"retrain-{region}", daemon=True)

    def run(self) -> None:
        lowest_priority()
        started = time.perf_counter()
        try:
            evidence = self._train(started)
        except (EdgecamError, ValueError, OSError) as e:
            message = getattr(e, "message", None) or str(e)
            logger.warning("retrain %s: %s", self.region, message)
            self.status = {**self.status, "state": "failed", "error": message}
            return
        self.status = {**self.status, "state": "done", "evidence": evidence}
        logger.info("retrain %s: accuracy %.3f in %.2f s", self.region, evidence["accuracy"], evidence["seconds"])

    def _train(self, started: float) -> dict:
        files = examples(self.root, self.region, self.labels)
        classes = [s for s in self.labels if len(files[s]) >= MIN_EXAMPLES]
        if len(classes) < 2:
            raise ValueError(f"give at least two states {MIN_EXAMPLES} examples or more each (10 are advised); "
                             f"now: {', '.join(f'{s} {len(f)}' for s, f in files.items())}")
        todo = [(p, i) for i, s in enumerate(classes) for p in files[s]]
        self.status = {**self.status, "total": len(todo)}
        rows, targets, used = [], [], []
        for n, (path, i) in enumerate(todo, 1):
            vector = self.embedder.file(path)
            if vector is not None:
                rows.append(vector)
                targets.append(i)
                used.append(path)
            self.status = {**self.status, "done": n}
        x = np.stack(rows)
        counts = np.bincount(targets, minlength=len(classes))
        if counts.min() < MIN_EXAMPLES:
            raise ValueError("too few readable examples of " + ", ".join(
                c for c, n in zip(classes, counts) if n < MIN_EXAMPLES))
        cv = heads.cross_validate(x, targets, classes, METHOD)
        head = heads.fit(x, targets, classes, METHOD, cv.unknown_distance())
        evidence = _evidence(cv, used, self.root / self.region)
        model = custom_models.CustomModel(
            name=f"page-{self.region}", base=BASE, base_sha256=self.base_sha256(), head=head, crop="stretch",
            examples={c: int(n) for c, n in zip(classes, counts)},
            cv={"method": METHOD, "folds": cv.n_folds, "n": cv.n, "accuracy": round(cv.accuracy, 4),
                "interval": evidence["interval"], "confusion": evidence["confusion"]},
            created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
        custom_models.write(model, self.candidate)
        evidence["seconds"] = round(time.perf_counter() - started, 3)
        return evidence


def _evidence(cv: heads.CrossValidation, used: list[Path], folder: Path) -> dict:
    """What the page shows before anything goes live: per state accuracy and interval, matrix, mistakes."""
    per_state = {}
    for i, state in enumerate(cv.labels):
        mine = cv.targets == i
        n, correct = int(mine.sum()), int((cv.predicted[mine] == i).sum())
        lo, hi = wilson_interval(correct, n)
        per_state[state] = {"n": n, "correct": correct, "accuracy": round(correct / n, 4) if n else 0.0,
                            "interval": [round(lo, 4), round(hi, 4)]}
    lo, hi = wilson_interval(cv.correct, cv.n)
    wrong = [{"file": str(used[j].relative_to(folder)), "true": cv.labels[int(cv.targets[j])],
              "predicted": cv.labels[int(cv.predicted[j])]}
             for j in np.flatnonzero(cv.targets != cv.predicted)]
    return {"states": list(cv.labels), "n": cv.n, "folds": cv.n_folds, "accuracy": round(cv.accuracy, 4),
            "interval": [round(lo, 4), round(hi, 4)], "per_state": per_state,
            "confusion": cv.confusion().tolist(), "misclassified": wrong[:100]}


def lowest_priority() -> None:
    """This thread at nice 19 (Linux threads have their own), so the camera's threads go first."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError) as e:
        logger.debug("retrain: cannot lower its priority: %s", e)

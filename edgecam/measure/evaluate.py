"""Accuracy on labelled photos, with its uncertainty, and paired comparisons.

A labelled photo set comes in one of two layouts:

* a folder of photos and a CSV with the columns ``file`` and ``label_index``
  (and optionally ``label``, the class name: then the name decides, so one CSV
  serves models with 1000 or 1001 classes);
* a folder with one subfolder per class (``photos/tabby cat/1.jpg``), the
  layout most tools write. A folder name matches a label when it equals the
  whole label, its first name or any other of its comma-separated names
  (``tabby cat`` -> ``tabby, tabby cat``), ignoring case, ``_`` and ``-``.
  A folder named by a class index (``283`` or ``283_tabby``) is that index.

:func:`evaluate` runs one or more classifiers over the same photos (each photo
decoded once) and keeps, per photo, whether each got it right, so that two
settings can be compared photo by photo (:func:`compare`, McNemar's test).
Top-1 counts a photo as right when the best label is the expected one and
scores at least ``model.threshold`` (below it the classifier shows nothing).
"""

from __future__ import annotations

import csv
import difflib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecam.errors import EXIT_CONFIG, EdgecamError
from edgecam.pictures import PictureError, read_image
from edgecam.measure.significance import McNemar, mcnemar, paired_difference_interval, wilson_interval

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})


class EvalError(EdgecamError):
    """The photo set or its labels cannot be used as given."""

    exit_code = EXIT_CONFIG


# -- labels ---------------------------------------------------------------------------


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[_\-]+", " ", text).lower().split())


def _names(label: str) -> tuple[str, list[str]]:
    """(first name, every name) of a label such as ``tabby, tabby cat`` or ``Aramus guarauna (Limpkin)``."""
    parts = [p for p in label.split(",") if p.strip()]
    names = []
    for p in parts:
        names.append(p)
        m = re.match(r"^(.*?)\s*\((.+)\)\s*$", p)
        if m:
            names += [m.group(1), m.group(2)]
    first = _norm(parts[0]) if parts else ""
    return first, [_norm(n) for n in names if n.strip()]


def match_label(name: str, labels: Sequence[str]) -> int:
    """The index of the label that ``name`` designates (see the module docstring).

    Raises :class:`EvalError` when none or several match.
    """
    m = re.match(r"^(\d+)(?:[ _\-].*)?$", name.strip())
    if m:
        index = int(m.group(1))
        if index >= len(labels):
            raise EvalError(f"class {name!r}: index {index} is past the model's {len(labels)} labels")
        return index
    want = _norm(name)
    full = [_norm(label) for label in labels]
    names = [_names(label) for label in labels]
    tiers = (
        [i for i, f in enumerate(full) if f == want],
        [i for i, (first, _) in enumerate(names) if first == want],
        [i for i, (_, every) in enumerate(names) if want in every],
    )
    for found in tiers:
        if len(found) == 1:
            return found[0]
        if found:
            which = ", ".join(f"{i} {labels[i]!r}" for i in found[:5])
            raise EvalError(
                f"class {name!r} matches {len(found)} labels ({which}); name it by its index, e.g. '{found[0]}_{want}'"
            )
    close = difflib.get_close_matches(want, full, n=3, cutoff=0.6)
    hint = f" (closest: {', '.join(repr(labels[full.index(c)]) for c in close)})" if close else ""
    raise EvalError(f"class {name!r} is not one of the model's {len(labels)} labels{hint}")


# -- photo sets -----------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledPhoto:
    """One photo and what it shows: a class index, a class name, or both (CSV with ``label``)."""

    path: Path
    label_index: int | None
    label: str | None


@dataclass(frozen=True)
class PhotoSet:
    """Labelled photos read from a CSV or from class subfolders; ``origin`` says which."""

    photos: tuple[LabelledPhoto, ...]
    origin: str

    def __len__(self) -> int:
        return len(self.photos)

    def targets(self, labels: Sequence[str]) -> list[int]:
        """The expected class index of each photo for a model with these ``labels``."""
        out = []
        cache: dict[str, int] = {}
        for photo in self.photos:
            idx = photo.label_index
            if photo.label is not None:
                if idx is not None and idx < len(labels) and _norm(labels[idx]) == _norm(photo.label):
                    out.append(idx)
                    continue
                if photo.label not in cache:
                    try:
                        cache[photo.label] = match_label(photo.label, labels)
                    except EvalError as e:
                        raise EvalError(f"{self.origin}: {e.message}") from None
                out.append(cache[photo.label])
                continue
            assert idx is not None
            if idx >= len(labels):
                raise EvalError(
                    f"{self.origin}: label_index {idx} ({photo.path.name}) is past the model's {len(labels)} labels; "
                    "is the CSV for another model?"
                )
            out.append(idx)
        return out


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def load_csv(images_dir: str | Path, expected_csv: str | Path) -> PhotoSet:
    """Photos in ``images_dir`` listed in ``expected_csv`` (columns ``file``, ``label_index``, optional ``label``)."""
    images = Path(images_dir)
    if not images.is_dir():
        raise EvalError(f"--images {images}: not a folder")
    try:
        with open(expected_csv, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise EvalError(f"--expected {expected_csv}: cannot read it ({e.strerror})") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise EvalError(f"--expected {expected_csv}: not a CSV file ({e})") from None
    if not rows or not {"file", "label_index"} <= set(rows[0]):
        raise EvalError(f"--expected {expected_csv}: needs the columns file and label_index")
    has_label = "label" in rows[0]
    photos = []
    for line, row in enumerate(rows, start=2):
        raw = (row.get("label_index") or "").strip()
        if not raw.isdigit():
            raise EvalError(f"--expected {expected_csv}: line {line}: label_index {raw!r} is not a class number")
        label = (row.get("label") or "").strip() if has_label else ""
        photos.append(LabelledPhoto(images / (row.get("file") or ""), int(raw), label or None))
    return PhotoSet(tuple(photos), f"--expected {expected_csv}")


def load_folders(images_dir: str | Path) -> PhotoSet:
    """Photos in one subfolder per class (the subfolder's name is the class)."""
    root = Path(images_dir)
    if not root.is_dir():
        raise EvalError(f"--images {root}: not a folder")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    photos = [
        LabelledPhoto(f, None, cls.name)
        for cls in classes
        for f in sorted(cls.iterdir())
        if _is_image(f)
    ]
    if not photos:
        loose = sum(1 for p in root.iterdir() if _is_image(p))
        what = f"{loose} photo{'s' if loose > 1 else ''} but no class subfolders" if loose else "no class subfolders with photos"
        raise EvalError(
            f"--images {root}: {what}; put each class's photos in a subfolder named after its label "
            "(e.g. 'tabby cat/1.jpg'), or give --expected CSV"
        )
    return PhotoSet(tuple(photos), f"--images {root}")


def load_photos(images_dir: str | Path, expected_csv: str | Path | None = None) -> PhotoSet:
    """The CSV layout when ``expected_csv`` is given, else the class-subfolder layout."""
    return load_csv(images_dir, expected_csv) if expected_csv else load_folders(images_dir)


# -- results --------------------------------------------------------------------------


@dataclass
class EvalResult:
    """One setting's answers over a photo set: per photo, right or wrong at top-1 and top-5."""

    setting: dict[str, Any]
    files: list[str] = field(default_factory=list)
    top1: list[bool] = field(default_factory=list)
    top5: list[bool] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.top1)

    def accuracy(self, k: int = 1) -> float:
        hits = self.top1 if k == 1 else self.top5
        return sum(hits) / len(hits) if hits else 0.0

    def interval(self, k: int = 1) -> tuple[float, float]:
        """The 95% Wilson interval of the top-``k`` accuracy."""
        hits = self.top1 if k == 1 else self.top5
        return wilson_interval(sum(hits), len(hits))

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.setting,
            "n": self.n,
            "top1": round(self.accuracy(1), 4),
            "top1_interval": [round(v, 4) for v in self.interval(1)],
            "top5": round(self.accuracy(5), 4),
            "top5_interval": [round(v, 4) for v in self.interval(5)],
        }


def describe(clf, threshold: float = 0.0) -> dict[str, Any]:
    """What identifies a classifier's setting in a report."""
    pre = clf.preprocessor
    d = {"model": clf.name, "runtime": clf.runtime, "crop": pre.crop}
    if pre.crop == "center_fraction":
        d["crop_fraction"] = pre.fraction
    if threshold:
        d["threshold"] = threshold
    return d


def setting_text(setting: dict[str, Any]) -> str:
    """``mobilenet_v2 (litert, crop center_fraction 0.875)`` for a :func:`describe` dict."""
    crop = setting["crop"] + (f" {setting['crop_fraction']:g}" if "crop_fraction" in setting else "")
    extra = f", threshold {setting['threshold']:g}" if setting.get("threshold") else ""
    return f"{setting['model']} ({setting['runtime']}, crop {crop}{extra})"


def evaluate(classifiers: Sequence, photos: PhotoSet, thresholds: Sequence[float] | None = None) -> list[EvalResult]:
    """Classify every photo with each classifier; one :class:`EvalResult` each.

    Photos are decoded once. A photo that cannot be read is left out for all
    classifiers (so their results stay paired) and counted in a warning.
    """
    thresholds = list(thresholds) if thresholds is not None else [0.0] * len(classifiers)
    targets = [photos.targets(clf.labels) for clf in classifiers]
    results = [EvalResult(describe(clf, t)) for clf, t in zip(classifiers, thresholds)]
    missing = []
    for i, photo in enumerate(photos.photos):
        try:
            image = read_image(photo.path)
        except PictureError as e:
            missing.append(e.message)
            continue
        for clf, res, want, threshold in zip(classifiers, results, targets, thresholds):
            ranked = [label.index for label in clf.classify(image).top_k(5, threshold)]
            res.files.append(str(photo.path))
            res.top1.append(bool(ranked) and ranked[0] == want[i])
            res.top5.append(want[i] in ranked)
    if missing:
        logger.warning("%d of %d photos could not be read and were left out (first: %s)",
                       len(missing), len(photos), missing[0])
    if not results or results[0].n == 0:
        raise EvalError(f"{photos.origin}: none of the {len(photos)} photos could be read")
    return results


# -- comparing two settings -----------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """B minus A at top-k over the same photos, with its interval and McNemar's test."""

    k: int
    difference: float
    interval: tuple[float, float]
    test: McNemar
    a_only: tuple[str, ...]  # photos only A got right
    b_only: tuple[str, ...]  # photos only B got right

    def verdict(self) -> str:
        t = self.test
        p = f"McNemar {'exact ' if t.method == 'exact' else ''}p = {t.p_value:.3g}"
        if t.discordant == 0:
            return f"{p}: both got the same photos right; no difference"
        if t.significant:
            better = "B" if self.difference > 0 else "A"
            return f"{p} < 0.05: a real difference, {better} is better"
        return f"{p} >= 0.05: not shown to be real on these photos (it could be chance)"

    def to_dict(self) -> dict[str, Any]:
        t = self.test
        return {
            "difference": round(self.difference, 4),
            "interval": [round(v, 4) for v in self.interval],
            "only_a_right": len(self.a_only),
            "only_b_right": len(self.b_only),
            "mcnemar": {"method": t.method, "p_value": t.p_value,
                        "statistic": None if t.statistic is None else round(t.statistic, 4)},
            "significant": t.significant,
            "only_a_right_files": list(self.a_only),
            "only_b_right_files": list(self.b_only),
        }


def compare(a: EvalResult, b: EvalResult, k: int = 1) -> Difference:
    """Compare two results over the same photos at top-``k`` (B - A)."""
    if a.files != b.files:
        raise ValueError("the two results are not over the same photos")
    ha, hb = (a.top1, b.top1) if k == 1 else (a.top5, b.top5)
    both = sum(x and y for x, y in zip(ha, hb))
    a_only = tuple(f for f, x, y in zip(a.files, ha, hb) if x and not y)
    b_only = tuple(f for f, x, y in zip(a.files, ha, hb) if y and not x)
    neither = a.n - both - len(a_only) - len(b_only)
    lo, hi = paired_difference_interval(both, len(b_only), len(a_only), neither)  # B - A
    return Difference(k, b.accuracy(k) - a.accuracy(k), (lo, hi), mcnemar(len(a_only), len(b_only)), a_only, b_only)


# -- --compare KEY=VALUE ----------------------------------------------------------------

# setting name on the command line -> model config key
COMPARE_KEYS = {
    "model": "name", "labels": "labels", "crop": "crop", "crop_fraction": "crop_fraction",
    "threshold": "threshold", "runtime": "runtime", "threads": "threads",
}  # fmt: skip


def parse_compare(text: str) -> dict[str, Any]:
    """``crop=center_fraction,model=mobilenet_v2`` -> config overrides ``{"model.crop": ...}``."""
    out: dict[str, Any] = {}
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        key, sep, value = part.partition("=")
        key, value = key.strip().replace("-", "_"), value.strip()
        if not sep or not value:
            raise EvalError(f"--compare {text}: expected KEY=VALUE[,KEY=VALUE...], got {part!r}")
        if key not in COMPARE_KEYS:
            raise EvalError(f"--compare {text}: unknown setting {key!r}; use one of {', '.join(COMPARE_KEYS)}")
        if key in ("crop_fraction", "threshold"):
            try:
                value = float(value)
            except ValueError:
                raise EvalError(f"--compare {text}: {key} must be a number, got {value!r}") from None
        elif key == "threads" and value != "auto":
            if not value.isdigit():
                raise EvalError(f"--compare {text}: threads must be a number or auto, got {value!r}")
            value = int(value)
        out[f"model.{COMPARE_KEYS[key]}"] = value
    if not out:
        raise EvalError(f"--compare {text!r}: expected KEY=VALUE, e.g. crop=square or model=mobilenet_v2")
    return out


# -- text -----------------------------------------------------------------------------


def _pct_interval(lo: float, hi: float) -> str:
    return f"{lo:.3f}-{hi:.3f}"


def result_line(res: EvalResult) -> str:
    """One line: setting, top-1 and top-5 with their 95% intervals, photo count."""
    return (f"{setting_text(res.setting)}: top-1 {res.accuracy(1):.3f} (95% CI {_pct_interval(*res.interval(1))})  "
            f"top-5 {res.accuracy(5):.3f} (95% CI {_pct_interval(*res.interval(5))})  over {res.n} photos")


def difference_line(d: Difference) -> str:
    lo, hi = d.interval
    return (f"B - A top-{d.k}: {d.difference:+.3f} (95% CI {lo:+.3f} to {hi:+.3f}); "
            f"{_photos(len(d.b_only))} only B got right, {len(d.a_only)} only A; {d.verdict()}")


def _photos(n: int) -> str:
    return f"{n} photo{'' if n == 1 else 's'}"

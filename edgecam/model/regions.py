"""Regions of the picture, each classified on its own: a state per region.

``regions:`` in the config (:class:`edgecam.config.schema.RegionConfig`) names boxes
of the picture (fractions of its width and height, so that they survive a
resolution change). Each is cropped from the full-resolution frame (never the
model-sized lores stream) and fed whole to its model (the ``stretch`` crop:
the box is what the user drew, and what ``edgecam collect`` saves).

Three parts, one per thread of the pipeline:

* :meth:`RegionClassifier.prepare` (capture thread): which regions are due on
  this frame (``interval_s``: at most every N seconds; ``motion``: only when
  the box changed since its last classification, by more than
  ``motion_threshold`` grey levels on average, measured on a 32x32 thumbnail),
  and their model inputs;
* :meth:`RegionClassifier.classify_prepared` (inference thread): one invoke
  per due region; the raw results ride in the frame's
  :class:`edgecam.result.Classification` (``extra["region_results"]``);
* :class:`RegionTracker` (output loop): per region, EMA and hysteresis
  (the ``smoothing`` section), the class rules (``allow``, ``deny``,
  ``threshold``, ``thresholds``; below them, or far from every state a
  custom model was taught, the state is :data:`UNKNOWN`), and an event when
  a region's state changes. The states go into the result's ``regions``:
  the one place every output (overlay, log, HTTP, MQTT) reads them from.

With no regions configured none of this runs: the whole picture is
classified by the model, as it always was.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass

import cv2
import numpy as np

from edgecam.errors import ConfigError
from edgecam.model.preprocess import Preprocessor
from edgecam.result import UNKNOWN, Classification, Extra, RegionChange, RegionState
from edgecam.model.rules import ClassRules, some
from edgecam.model.smoothing import Smoother

logger = logging.getLogger(__name__)

THUMB = (32, 32)  # the motion check's thumbnail: averages away sensor noise, costs ~0.04 ms


def box_pixels(box, width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) in pixels of a fractional box on a ``width`` x ``height`` picture (at least 1 pixel)."""
    x0, y0 = int(round(box[0] * width)), int(round(box[1] * height))
    x1, y1 = int(round(box[2] * width)), int(round(box[3] * height))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def crop(image: np.ndarray, box) -> np.ndarray:
    """The region ``box`` of ``image`` (a view, no copy)."""
    x0, y0, x1, y1 = box_pixels(box, image.shape[1], image.shape[0])
    return image[y0:y1, x0:x1]


def thumbnail(region: np.ndarray) -> np.ndarray:
    """A small grey picture of a region, for the motion check.

    Bilinear to 64x64 (reads only the pixels it samples), then averaged 2x2
    down to 32x32: sensor noise of sigma 6 changes it by ~1.3 grey levels on
    average, well under the default threshold of 4; 0.04 ms for a 290x310 box
    of a fresh frame here, against 0.16 ms averaging every pixel.
    """
    small = cv2.resize(region, (2 * THUMB[0], 2 * THUMB[1]), interpolation=cv2.INTER_LINEAR)
    small = cv2.resize(small, THUMB, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.int16)


def change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two thumbnails, in grey levels."""
    return float(np.abs(a - b).mean())


class Region:
    """One configured region with the classifier it uses and what its last classification saw."""

    def __init__(self, cfg, classifier, follow: int = 0):
        self.cfg = cfg
        # motion: after a change, classify this many more frames (the EMA needs a few readings to
        # settle, and a video codec's first frames after a cut are still half the old picture).
        self.follow = follow
        self._following = 0
        self._rules: tuple | None = None  # (labels, ClassRules): the output loop's
        self.name = cfg.name
        self.box = tuple(float(v) for v in cfg.box)
        self.classifier = classifier
        # Its own preprocessor (scratch buffers are not shared between regions): the whole box, stretched.
        self.preprocessor = Preprocessor(classifier.input_spec, "stretch")
        # What its last classification saw (the inference thread alone reads and writes these).
        self.last_thumb: np.ndarray | None = None
        self.last_time: float | None = None
        self.classified = 0
        self.skipped_motion = 0
        self.skipped_interval = 0

    def rules_for(self, labels) -> ClassRules:
        """Its class rules in indices of ``labels`` (made again when a reload changed the classes)."""
        if self._rules is None or self._rules[0] != tuple(labels):
            cfg = self.cfg
            self._rules = (tuple(labels), ClassRules.build(labels, cfg.allow, cfg.deny, cfg.thresholds,
                                                           cfg.threshold)[0])
        return self._rules[1]

    @property
    def labels(self) -> tuple[str, ...]:
        """The states a user can teach it: ``labels`` from the config, else its model's classes."""
        return tuple(self.cfg.labels) if self.cfg.labels else tuple(self.classifier.labels)

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """The model input of this region of ``image``."""
        spec = self.classifier.input_spec
        tensor = np.empty((spec.height, spec.width, 3), spec.dtype)
        self.preprocessor(crop(image, self.box), tensor, "bgr")
        return tensor

    def due(self, timestamp: float, thumb: np.ndarray | None) -> bool:
        """Whether to classify the frame taken at ``timestamp`` (``thumb``: its thumbnail, with ``motion``).

        Decided in the inference thread, against what the last classification
        saw: frames queued meanwhile, or dropped by the ``latest`` policy,
        cannot make it skip a change or classify one twice.
        """
        cfg = self.cfg
        if self.last_time is not None and cfg.interval_s > 0 and timestamp - self.last_time < cfg.interval_s:
            self.skipped_interval += 1
            return False
        if thumb is None:
            return True
        if self.last_thumb is None or change(thumb, self.last_thumb) > cfg.motion_threshold:
            self._following = self.follow
            return True
        if self._following > 0:
            self._following -= 1
            return True
        self.skipped_motion += 1
        return False


@dataclass
class Prepared:
    """What the capture thread made of a frame for each region: (region, model input or None, thumbnail or None).

    A region classified on every frame gets its model input here, overlapping
    the previous frame's inference; one with ``motion`` or ``interval_s`` only
    its thumbnail (``motion``): most frames it is not classified at all.
    """

    items: list


class RegionClassifier:
    """Classifies the regions of a frame; what the pipeline's stages call instead of a whole-picture classifier.

    ``regions``: :class:`Region` objects; ``name``: what results call the model.
    One interpreter per model, shared by the regions that use it; the layout
    is not calibrated (``threads`` as configured).
    """

    def __init__(self, regions: list[Region], name: str = "regions"):
        self.regions = regions
        self.name = name
        self.labels: tuple[str, ...] = ()
        first = regions[0].classifier
        self.runtime = first.runtime
        self.threads = first.threads
        self.view_size = first.view_size

    def prepare(self, frame) -> Prepared:
        """Model inputs of the regions classified on every frame, thumbnails for motion (capture thread)."""
        items = []
        for region in self.regions:
            cfg = region.cfg
            every = not cfg.motion and cfg.interval_s == 0
            thumb = thumbnail(crop(frame.image, region.box)) if cfg.motion else None
            items.append((region, region.preprocess(frame.image) if every else None, thumb))
        return Prepared(items)

    def classify_prepared(self, prepared: Prepared, frame, preprocess_ms: float = 0.0) -> Classification:
        """Invoke each due region's model (inference thread); the raw results go in ``extra["region_results"]``."""
        results = {}
        invoke_ms = 0.0
        for region, tensor, thumb in prepared.items:
            if not region.due(frame.timestamp, thumb):
                continue
            if tensor is None:
                t0 = time.perf_counter()
                tensor = region.preprocess(frame.image)
                preprocess_ms += (time.perf_counter() - t0) * 1000
            r = region.classifier.classify_prepared(tensor, frame)
            invoke_ms += r.inference_ms
            results[region.name] = r
            region.last_time = frame.timestamp
            if thumb is not None:
                region.last_thumb = thumb
            region.classified += 1
        return Classification(
            scores=np.zeros(0, np.float32), labels=(), model=self.name, frame_index=frame.index,
            capture_time=frame.timestamp, wall_time=frame.wall_time, result_time=time.monotonic(),
            inference_ms=invoke_ms, preprocess_ms=preprocess_ms, extra={Extra.REGION_RESULTS: results},
        )


class RegionTracker:
    """Turns each frame's raw region results into region states and state-change events (output loop)."""

    def __init__(self, regions: list[Region], smoothing):
        self.regions = {r.name: r for r in regions}
        self.smoothing = smoothing
        self.smoothers = {r.name: Smoother(smoothing, 0.0) for r in regions}
        self.states: dict[str, RegionState] = {
            r.name: RegionState(name=r.name, box=r.box, label=None, score=0.0, index=None, frame=-1, wall_time=0.0,
                                classified=False)
            for r in regions
        }

    def retune(self, smoothing) -> None:
        """A reload's smoothing section: each region's smoothing starts again with it (states are kept)."""
        if smoothing != self.smoothing:
            self.smoothing = smoothing
            self.smoothers = {name: Smoother(smoothing, 0.0) for name in self.regions}

    def set_regions(self, regions: list[Region]) -> None:
        """The regions a reload left (drawn on the page, moved, deleted): the ones kept keep their state and
        smoothing, a new one starts unclassified (output loop)."""
        self.regions = {r.name: r for r in regions}
        self.smoothers = {r.name: self.smoothers.get(r.name) or Smoother(self.smoothing, 0.0) for r in regions}
        self.states = {r.name: dataclasses.replace(self.states[r.name], box=r.box) if r.name in self.states else
                       RegionState(name=r.name, box=r.box, label=None, score=0.0, index=None, frame=-1,
                                   wall_time=0.0, classified=False) for r in regions}

    def state_of(self, region: Region, result: Classification, frame: int, wall_time: float) -> RegionState:
        """The state one raw result gives ``region``: rules on the (smoothed) scores."""
        labels = list(result.labels)
        rules = region.rules_for(labels)
        masked = dataclasses.replace(result, scores=rules.mask(np.asarray(result.scores, np.float32)))
        smoothed, _ = self.smoothers[region.name].update(masked)
        index = self.smoothers[region.name].label_index
        score = float(smoothed.scores[index]) if index is not None else float(smoothed.scores.max(initial=0.0))
        label = labels[index] if index is not None else UNKNOWN
        if index is not None and (not rules.passes(index, score) or result.extra.get(Extra.UNKNOWN)):
            label, index = UNKNOWN, None
        return RegionState(name=region.name, box=region.box, label=label, score=score, index=index, frame=frame,
                           wall_time=wall_time, classified=True, previous=self.states[region.name].label)

    def update(self, result: Classification) -> tuple[dict[str, RegionState], list[RegionChange]]:
        """The states after ``result`` (every region; the ones not classified now keep theirs) and the events."""
        raw = result.extra.get(Extra.REGION_RESULTS) or {}
        events = []
        states = {}
        for name, old in self.states.items():
            r = raw.get(name)
            if r is None:
                states[name] = dataclasses.replace(old, classified=False) if old.classified else old
                continue
            new = self.state_of(self.regions[name], r, result.frame_index, result.wall_time)
            if new.label != old.label:
                events.append(RegionChange(name, new.label, old.label, new.score, result.frame_index,
                                           result.wall_time))
            else:
                new = dataclasses.replace(new, previous=old.previous)
            states[name] = new
        self.states = states
        return states, events


def build(cfg, load) -> list[Region]:
    """The :class:`Region` objects of ``cfg.regions``; ``load(model_config)`` loads a classifier.

    Regions that name the same model share one classifier (one interpreter).
    """
    loaded: dict[str, object] = {}
    regions = []
    for rc in cfg.regions:
        mcfg = model_config(cfg, rc)
        if mcfg.name not in loaded:
            loaded[mcfg.name] = load(mcfg)
        # With EMA, a change takes about `window` readings to show: follow a motion that long.
        follow = cfg.smoothing.window if cfg.smoothing.mode == "ema" else 1
        regions.append(Region(region_config(cfg, rc), loaded[mcfg.name], follow=follow))
    problems = rule_problems(cfg, lambda m: loaded[m.name].labels)
    if problems:
        raise ConfigError(problems, cfg.path)
    return regions


def model_config(cfg, rc):
    """The model section region ``rc`` runs with: its own model, else the main one (with its labels file)."""
    return dataclasses.replace(cfg.model, name=rc.model or cfg.model.name,
                               labels=cfg.model.labels if rc.model is None else None)


def region_config(cfg, rc):
    """Region ``rc`` with the main model's rules as the default of a region that uses the main model."""
    if rc.model is not None:
        return rc
    m = cfg.model
    return dataclasses.replace(rc, allow=rc.allow if rc.allow is not None else m.allow,
                               deny=rc.deny if rc.deny is not None else m.deny,
                               thresholds=rc.thresholds if rc.thresholds is not None else m.thresholds)


def rule_problems(cfg, labels_of) -> list[str]:
    """What ``run`` refuses in the class rules, one line each: ``model.allow``/``deny``/``thresholds`` for the
    whole picture, or each region's (and its ``on_label``), against the classes of the model each applies to.

    ``labels_of(model_section)`` gives those classes (None: not known here, not checked). ``run`` passes the
    loaded models', ``check-config`` the ones on disk: the same names are accepted and refused
    (:func:`edgecam.model.rules.find_label`: a whole label or its first name).
    """
    if not cfg.regions:
        m = cfg.model
        labels = labels_of(m)
        if labels is None:
            return []
        return ClassRules.build(labels, m.allow, m.deny, m.thresholds, m.threshold, where="model", model=m.name)[1]
    problems = []
    for i, rc in enumerate(cfg.regions):
        mcfg = model_config(cfg, rc)
        labels = labels_of(mcfg)
        if labels is None:
            continue
        rc = region_config(cfg, rc)
        problems += ClassRules.build(tuple(labels), rc.allow, rc.deny, rc.thresholds, where=f"regions[{i}]",
                                     model=mcfg.name)[1]
        states = tuple(rc.labels) if rc.labels else tuple(labels)
        if rc.on_label is not None and rc.on_label not in states:
            problems.append(f"regions[{i}].on_label: {rc.on_label!r} is not one of its states ({some(states)})")
    return problems

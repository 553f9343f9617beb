"""The one result type: what the model said about one frame."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np


#: A region's state when nothing passes its rules, or the picture is like none its custom model was taught.
UNKNOWN = "unknown"


class Extra(StrEnum):
    """The keys of :attr:`Classification.extra`: what a part of edgecam adds to a result for the parts after it.

    Their values are the JSON names the log has always used (``event``, ``region_events``, ``rule_events``).
    """

    #: (model) ms spent turning the raw output into probabilities
    POSTPROCESS_MS = "postprocess_ms"
    #: (model) ms the accelerator itself took (Hailo, the AI Camera), and the AI Camera's DSP ms
    DEVICE_MS = "device_ms"
    DEVICE_DSP_MS = "device_dsp_ms"
    #: (a custom head) how far the picture is from what it was taught, and whether that is too far
    DISTANCE = "distance"
    UNKNOWN = "unknown"
    #: (regions) each classified region's raw result, name -> Classification
    REGION_RESULTS = "region_results"
    #: (pipeline) the :class:`LabelChange` this result caused
    LABEL_CHANGE = "event"
    #: (pipeline, regions) the :class:`RegionChange` list this result caused
    REGION_CHANGES = "region_events"
    #: (the events output) the starts and ends of rule events this result caused, as their JSON
    RULE_EVENTS = "rule_events"


class EventKind(StrEnum):
    """What happened to a rule's event (:mod:`edgecam.events`): the ``type`` of its JSON (webhook, MQTT, log)."""

    START = "start"
    END = "end"


@dataclass(frozen=True)
class RuleEvent:
    """A rule event's start or end as the outputs fed after the events output see it on a result
    (:attr:`Extra.RULE_EVENTS`): its kind, its rule, and its JSON (``payload``: what the webhook gets)."""

    kind: EventKind
    rule: str
    payload: dict


@dataclass(frozen=True)
class LabelChange:
    """The shown (smoothed) label changed (:class:`edgecam.model.smoothing.Smoother`); ``label`` None: nothing
    is shown now. ``score`` is the new label's (0 without one); ``frame`` and ``wall_time`` the result's."""

    label: str | None
    previous: str | None
    score: float
    frame: int
    wall_time: float


@dataclass(frozen=True)
class RegionChange:
    """A region's state changed (:class:`edgecam.model.regions.RegionTracker`): as :class:`LabelChange`, for
    region ``region``."""

    region: str
    label: str | None
    previous: str | None
    score: float
    frame: int
    wall_time: float


@dataclass(frozen=True, slots=True)
class Label:
    """One class: its index in the model's output, name and score (0..1)."""

    index: int
    name: str
    score: float


@dataclass(frozen=True)
class RegionState:
    """What one region of the picture shows now (:mod:`edgecam.model.regions`).

    ``label`` is its state after the class rules and hysteresis: one of its
    model's classes, ``unknown`` (nothing passes the rules, or the picture is
    like none a custom model was taught), or None before its first
    classification. ``classified`` says whether this frame was classified
    (False: the state is carried over, ``frame`` says from when).
    """

    name: str
    box: tuple[float, float, float, float]
    label: str | None
    score: float
    index: int | None
    frame: int
    wall_time: float
    classified: bool
    previous: str | None = None

    def to_dict(self) -> dict:
        """``{"label", "score"}`` and where it comes from: what logs, HTTP and MQTT carry per region."""
        return {"label": self.label, "score": round(self.score, 4), "frame": self.frame,
                "classified": self.classified}


@dataclass(frozen=True)
class Classification:
    """Scores for every class for one frame, plus the timing of how it was made.

    ``scores`` are probabilities (dequantized, softmaxed when the model emits
    logits), one per output class. Everything downstream (overlay, JSON log,
    HTTP, MQTT) reads results through :meth:`top_k`.
    """

    scores: np.ndarray
    labels: tuple[str, ...] | list[str]
    model: str = ""
    frame_index: int = -1
    capture_time: float = 0.0  # time.monotonic() of the frame's capture
    wall_time: float = 0.0  # time.time() of the frame's capture
    result_time: float = 0.0  # time.monotonic() when the result was ready
    inference_ms: float = 0.0  # the interpreter's invoke() only
    preprocess_ms: float = 0.0
    extra: dict = field(default_factory=dict, compare=False)
    #: With ``regions:`` configured, the state of each region (name -> :class:`RegionState`), and
    #: ``scores`` is empty: the regions are classified, not the whole picture.
    regions: dict = field(default_factory=dict, compare=False)
    # top_k's answers: the overlay, the smoother, the stats and every sink ask the same result the same
    # question (CPU per frame: 3-5 calls of ~45 us each before). Not a field of the value: replace()
    # makes a result with fresh scores and an empty cache.
    _top_cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def top_k(self, k: int = 5, threshold: float = 0.0) -> list[Label]:
        """The ``k`` best classes scoring at least ``threshold``, best first.

        Ties are broken by the lower class index, so the order is stable.
        """
        key = (k, threshold)
        cached = self._top_cache.get(key)
        if cached is None:
            cached = self._top_cache[key] = self._top_k(k, threshold)
        return list(cached)  # a list of its own: a caller may change it

    def _top_k(self, k: int, threshold: float) -> list[Label]:
        scores = self.scores
        n = scores.shape[0]
        k = max(0, min(int(k), n))
        if k == 0:
            return []
        if k < n:
            # argpartition is O(n); then sort just the k candidates. Widen the
            # candidate set to every score equal to the k-th so ties resolve
            # by index rather than by argpartition's arbitrary order.
            part = np.argpartition(-scores, k - 1)[:k]
            kth = scores[part].min()
            cand = np.flatnonzero(scores >= kth)
        else:
            cand = np.arange(n)
        order = cand[np.lexsort((cand, -scores[cand]))][:k]
        out = []
        for i in order:
            s = float(scores[i])
            if s < threshold:
                break
            out.append(Label(int(i), self.labels[i], s))
        return out

    @property
    def top(self) -> Label | None:
        """The best class, whatever its score (None for a result of regions only)."""
        best = self._top_cache.get("top", False)
        if best is False:
            scores = self.scores
            i = int(np.argmax(scores)) if scores.shape[0] else -1
            # argmax gives the lowest index among equal best scores, as top_k does; a NaN
            # (argmax stops at it) goes the long way, so both always agree.
            if i >= 0 and scores[i] == scores[i]:
                best = Label(i, self.labels[i], float(scores[i]))
            else:
                found = self.top_k(1)
                best = found[0] if found else None
            self._top_cache["top"] = best
        return best

    @property
    def latency_ms(self) -> float:
        """Capture to result, in milliseconds."""
        return (self.result_time - self.capture_time) * 1000.0

    def to_dict(self, k: int = 5, threshold: float = 0.0) -> dict:
        """A JSON-ready summary (for logs, HTTP and MQTT); ``regions`` when there are regions."""
        out = {
            "frame": self.frame_index,
            "model": self.model,
            "latency_ms": round(self.latency_ms, 2),
            "inference_ms": round(self.inference_ms, 2),
            "top_k": [
                {"index": l.index, "label": l.name, "score": round(l.score, 4)}
                for l in self.top_k(k, threshold)
            ],
        }
        if self.regions:
            out["regions"] = {name: state.to_dict() for name, state in self.regions.items()}
        return out

"""Results over time: EMA smoothing, label hysteresis and label-change events.

Without these a live label flickers between close classes from frame to
frame. EMA averages the scores over about ``window`` results; hysteresis
(as rpicam-apps' TFLite stage does) shows a label only once it rises above
``threshold_high`` and keeps it until it falls below ``threshold_low``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgecam.result import Classification, LabelChange

#: The smoothing of an interactive first run (``make run``: the demo, or a camera
#: found by ``--demo-fallback``) when the config sets none: the label shown
#: (overlay) and printed (one line per change) moves only when the picture
#: does. Without it the demo's 12 s printed 56 lines, flipping between
#: Egyptian cat, tabby and tiger cat; with it, 6 (issue 21). A score must
#: reach 0.4 to be shown and stays shown until it falls under 0.2.
CALM = {"smoothing.mode": "ema", "smoothing.window": 10, "smoothing.hysteresis": True,
        "smoothing.threshold_high": 0.4, "smoothing.threshold_low": 0.2}


class Smoother:
    """Feeds results through EMA and hysteresis; reports label changes.

    :meth:`update` returns the (possibly smoothed) result and, when the shown
    label changed, a :class:`edgecam.result.LabelChange`; its ``label`` is None when nothing is shown.
    """

    def __init__(self, cfg, threshold: float = 0.0, floors: dict[int, float] | None = None):
        self.cfg = cfg
        self.threshold = threshold  # without hysteresis: the minimum score to show a label
        self.floors = dict(floors or {})  # class index -> its own minimum (model.thresholds)
        self._ema: np.ndarray | None = None
        self._alpha = 2.0 / (cfg.window + 1)  # the usual EMA span -> weight
        self.label: str | None = None
        self.label_index: int | None = None

    def update(self, result: Classification) -> tuple[Classification, LabelChange | None]:
        if self.cfg.mode == "ema" and self.cfg.window > 1:
            if self._ema is None or self._ema.shape != result.scores.shape:
                self._ema = result.scores.astype(np.float32, copy=True)
            else:
                self._ema += self._alpha * (result.scores - self._ema)
            result = dataclasses.replace(result, scores=self._ema.copy())
        scores = result.scores
        top = result.top
        previous = self.label
        if self.cfg.hysteresis:
            current = self.label_index
            if current is not None and scores[current] < self.cfg.threshold_low:
                current = None
            high = max(self.cfg.threshold_high, self.floors.get(top.index, 0.0))
            if top.score >= high and (current is None or top.score > scores[current]):
                current = top.index
            self.label_index = current
        else:
            self.label_index = top.index if top.score >= self.floors.get(top.index, self.threshold) else None
        self.label = result.labels[self.label_index] if self.label_index is not None else None
        event = None
        if self.label != previous:
            event = LabelChange(self.label, previous,
                                float(scores[self.label_index]) if self.label_index is not None else 0.0,
                                result.frame_index, result.wall_time)
        return result, event

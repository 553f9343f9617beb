"""The one result type: what the model said about one frame."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class Label:
    """One class: its index in the model's output, name and score (0..1)."""

    index: int
    name: str
    score: float


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

    def top_k(self, k: int = 5, threshold: float = 0.0) -> list[Label]:
        """The ``k`` best classes scoring at least ``threshold``, best first.

        Ties are broken by the lower class index, so the order is stable.
        """
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
    def top(self) -> Label:
        """The best class, whatever its score."""
        return self.top_k(1)[0]

    @property
    def latency_ms(self) -> float:
        """Capture to result, in milliseconds."""
        return (self.result_time - self.capture_time) * 1000.0

    def to_dict(self, k: int = 5, threshold: float = 0.0) -> dict:
        """A JSON-ready summary (for logs, HTTP and MQTT)."""
        return {
            "frame": self.frame_index,
            "model": self.model,
            "latency_ms": round(self.latency_ms, 2),
            "inference_ms": round(self.inference_ms, 2),
            "top_k": [
                {"index": l.index, "label": l.name, "score": round(l.score, 4)}
                for l in self.top_k(k, threshold)
            ],
        }

"""Class rules: which labels may be shown, and how sure the model must be of each.

``allow`` (only these), ``deny`` (never these) and a threshold per label
(``thresholds``, else ``threshold``) apply to a region's state
(:mod:`edgecam.regions`) and, in the ``model`` section, to the whole
picture's label. A label that breaks them is not shown: a region's state is
then ``unknown``, the whole picture shows no label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ClassRules:
    """The rules turned into class indices of one model."""

    allowed: np.ndarray | None = None  # bool per class; None: every class
    floors: Mapping[int, float] = field(default_factory=dict)  # class index -> threshold
    default: float = 0.0

    @classmethod
    def build(cls, labels: Sequence[str], allow=None, deny=None, thresholds=None, default: float = 0.0,
              where: str = "", model: str = "") -> tuple[ClassRules, list[str]]:
        """The rules for a model with ``labels``, and a problem line per label it does not have."""
        index = {label: i for i, label in enumerate(labels)}
        problems = []
        for key, names in (("allow", allow or ()), ("deny", deny or ()), ("thresholds", thresholds or ())):
            for name in names:
                if name not in index:
                    shown = ", ".join(labels[:6]) + (f", ... ({len(labels)} in all)" if len(labels) > 6 else "")
                    problems.append(f"{where}.{key}: {name!r} is not a class of {model} ({shown})")
        allowed = None
        if allow or deny:
            allowed = np.array([(not allow or label in allow) and label not in (deny or ()) for label in labels])
        floors = {index[n]: float(v) for n, v in (thresholds or {}).items() if n in index}
        return cls(allowed, floors, float(default)), problems

    @property
    def active(self) -> bool:
        return self.allowed is not None or bool(self.floors)

    def mask(self, scores: np.ndarray) -> np.ndarray:
        """``scores`` with the classes that may not be shown at 0."""
        if self.allowed is None or self.allowed.shape != scores.shape:
            return scores
        return np.where(self.allowed, scores, 0.0).astype(scores.dtype)

    def floor(self, index: int) -> float:
        return self.floors.get(index, self.default)

    def passes(self, index: int, score: float) -> bool:
        allowed = self.allowed is None or index >= len(self.allowed) or bool(self.allowed[index])
        return allowed and score >= self.floor(index)

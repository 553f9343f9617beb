"""Class rules: which labels may be shown, and how sure the model must be of each.

``allow`` (only these), ``deny`` (never these) and a threshold per label
(``thresholds``, else ``threshold``) apply to a region's state
(:mod:`edgecam.model.regions`) and, in the ``model`` section, to the whole
picture's label. A label that breaks them is not shown: a region's state is
then ``unknown``, the whole picture shows no label.

Everywhere a config names a class (``allow``, ``deny``, ``thresholds``, an
event rule's ``label``), :func:`find_label` says which: the whole label
(``hook, claw``) or its first name (``hook``); a first name that several
different labels share is refused with them listed. ``check-config`` and
``run`` both ask it, so they accept and refuse the same names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np


def first_name(label: str) -> str:
    """``hook`` for ``hook, claw``: the name before the first comma."""
    return label.split(",")[0].strip()


class AmbiguousLabel(ValueError):
    """A first name that several different labels share; ``candidates`` lists them."""

    def __init__(self, name: str, candidates: Sequence[str]):
        self.name = name
        self.candidates = tuple(candidates)
        super().__init__(self.describe())

    def describe(self, of: str = "") -> str:
        """``'cat' is the first name of 2 labels[ of OF] ('cat, a'; 'cat, b'); name the whole label``."""
        shown = "; ".join(repr(c) for c in self.candidates[:5])
        return (f"{self.name!r} is the first name of {len(self.candidates)} labels{f' of {of}' if of else ''} "
                f"({shown}); name the whole label")


def find_label(name: str, labels: Sequence[str]) -> tuple[int, ...]:
    """The class indices ``name`` designates in ``labels``: every label equal to it (ImageNet has two
    ``crane``), else the label whose first name it is; () for none. AmbiguousLabel when that first
    name belongs to several different labels."""
    exact = tuple(i for i, label in enumerate(labels) if label == name)
    if exact:
        return exact
    by_first = tuple(i for i, label in enumerate(labels) if first_name(label) == name)
    different = tuple(dict.fromkeys(labels[i] for i in by_first))
    if len(different) > 1:
        raise AmbiguousLabel(name, different)
    return by_first


def label_matches(name: str, label: str) -> bool:
    """Whether the config's ``name`` designates ``label`` (the whole label or its first name)."""
    return label == name or first_name(label) == name


def some(labels: Sequence[str], n: int = 6) -> str:
    """The first ``n`` labels, for a message: ``a, b, c, ... (1001 in all)``."""
    return ", ".join(labels[:n]) + (f", ... ({len(labels)} in all)" if len(labels) > n else "")


@dataclass(frozen=True)
class ClassRules:
    """The rules turned into class indices of one model."""

    allowed: np.ndarray | None = None  # bool per class; None: every class
    floors: Mapping[int, float] = field(default_factory=dict)  # class index -> threshold
    default: float = 0.0

    @classmethod
    def build(cls, labels: Sequence[str], allow=None, deny=None, thresholds=None, default: float = 0.0,
              where: str = "", model: str = "") -> tuple[ClassRules, list[str]]:
        """The rules for a model with ``labels`` (names resolved by :func:`find_label`), and a problem line
        per name it does not have or cannot tell apart."""
        problems = []
        found: dict[str, dict[str, tuple[int, ...]]] = {}
        for key, names in (("allow", allow or ()), ("deny", deny or ()), ("thresholds", thresholds or ())):
            found[key] = {}
            for name in names:
                try:
                    found[key][name] = find_label(name, labels)
                except AmbiguousLabel as e:
                    problems.append(f"{where}.{key}: {e.describe(model)}")
                    continue
                if not found[key][name]:
                    problems.append(f"{where}.{key}: {name!r} is not a class of {model} ({some(labels)})")
        allowed = None
        if allow or deny:
            allowed = np.full(len(labels), not allow)
            for indices in found["allow"].values():
                allowed[list(indices)] = True
            for indices in found["deny"].values():
                allowed[list(indices)] = False
        floors = {i: float(thresholds[n]) for n, indices in found["thresholds"].items() for i in indices}
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

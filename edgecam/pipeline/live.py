"""The live settings of a run: what a reload (SIGHUP) may change without a restart.

``model.top_k``, ``model.threshold``, the whole picture's class rules
(``model.allow`` / ``deny`` / ``thresholds``) and ``smoothing`` are one
immutable :class:`LiveSettings`. A run holds them in one :class:`LiveHolder`;
every reader (the output loop's smoothing and overlay, the regions' smoothing,
the sinks' view) keeps the holder, never a copy of a value, and reads
:attr:`LiveHolder.settings` once per use. A reload builds a new
:class:`LiveSettings` and swaps it in with one reference assignment (atomic
under the GIL): a reader sees either the old settings or the new ones, never
half of each. Reading costs one attribute load per frame; no lock.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from edgecam.config.schema import SmoothingConfig
from edgecam.errors import ConfigError
from edgecam.model.regions import rule_problems
from edgecam.model.rules import ClassRules

logger = logging.getLogger(__name__)

#: The config keys a reload applies at once (``smoothing.*`` counts as ``smoothing``).
LIVE_KEYS = frozenset({"model.top_k", "model.threshold", "smoothing", "log_level"})


@dataclass(frozen=True)
class LiveSettings:
    """One consistent set of the settings a reload may change.

    ``rules``: the whole picture's class rules when some are set (None: none,
    or the run classifies regions, which keep theirs in their config).
    ``smoothing``: a copy of the config's section (not shared with it).
    """

    top_k: int = 3
    threshold: float = 0.0
    smoothing: SmoothingConfig = dataclasses.field(default_factory=SmoothingConfig)
    rules: ClassRules | None = None

    @classmethod
    def from_config(cls, cfg, labels=None) -> LiveSettings:
        """The settings ``cfg`` asks for; ``labels``: the whole picture model's classes (None with regions).

        A class rule naming a class the model has not is refused here
        (ConfigError, exit 2), as ``check-config`` refuses it.
        """
        rules = None
        if labels is not None and not cfg.regions:
            problems = rule_problems(cfg, lambda _m: labels)  # what check-config checks too
            if problems:
                raise ConfigError(problems, cfg.path)
            m = cfg.model
            built = ClassRules.build(labels, m.allow, m.deny, m.thresholds, m.threshold)[0]
            rules = built if built.active else None
        return cls(top_k=cfg.model.top_k, threshold=cfg.model.threshold,
                   smoothing=dataclasses.replace(cfg.smoothing), rules=rules)

    @property
    def floors(self) -> dict[int, float] | None:
        """Per-class thresholds of the whole picture (``model.thresholds``), for the smoother."""
        return dict(self.rules.floors) if self.rules is not None else None


class LiveHolder:
    """Holds the current :class:`LiveSettings`; :meth:`swap` replaces them for every reader at once.

    Readers keep this holder and take :attr:`settings` once per use (a frame,
    a result, a request), so that what they use together comes from one
    version. ``version`` counts the swaps, so a reader that keeps state built
    from the settings (a smoother's EMA) can tell cheaply that they changed.
    """

    def __init__(self, settings: LiveSettings | None = None):
        self._current = (0, settings if settings is not None else LiveSettings())

    @property
    def settings(self) -> LiveSettings:
        return self._current[1]

    @property
    def version(self) -> int:
        return self._current[0]

    def snapshot(self) -> tuple[int, LiveSettings]:
        """(version, settings) read together."""
        return self._current

    def swap(self, new: LiveSettings) -> LiveSettings:
        """Make ``new`` the settings of every reader; returns the old ones."""
        old = self._current
        self._current = (old[0] + 1, new)  # one assignment: no reader sees half an update
        return old[1]

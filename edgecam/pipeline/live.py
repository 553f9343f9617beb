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

from edgecam.config import schema as config_mod
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
    inference: bool = True  # False: paused by a command (edgecam.control); frames still shown, none classified

    @classmethod
    def from_config(cls, cfg, labels=None, inference: bool = True) -> LiveSettings:
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
                   smoothing=dataclasses.replace(cfg.smoothing), rules=rules, inference=inference)

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


def changed_keys(old, new) -> list[str]:
    """``section.key`` for each key that differs between two configs (and ``log_level``)."""
    old_d, new_d = config_mod.to_dict(old), config_mod.to_dict(new)
    changed = [f"{s}.{k}" for s in old_d if isinstance(old_d[s], dict)
               for k in old_d[s] if old_d[s][k] != new_d[s][k]]
    if old_d["log_level"] != new_d["log_level"]:
        changed.append("log_level")
    return changed


def _rule_switches(old, new, changed: list[str]) -> dict[str, bool] | None:
    """The rules' on/off when they are all that changed in ``events.rules`` (live), else None (a restart)."""
    if "events.rules" not in changed:
        return None
    strip = [[{k: v for k, v in config_mod.to_dict(r).items() if k != "enabled"} for r in c.events.rules]
             for c in (old, new)]
    if strip[0] != strip[1]:
        return None
    changed[changed.index("events.rules")] = "events.rules.enabled"
    return {r.name: r.enabled for r in new.events.rules}


def apply_config(parts, old, new, inference: bool = True) -> tuple[list[str], list[str]]:
    """In a camera's output loop: what of ``new`` may change live, applied to ``parts`` (its CameraPipeline).

    ``old`` is the camera's running config (updated in place: others hold it),
    ``inference`` whether a command paused it. Returns (the keys applied, the
    keys that changed but need a restart).
    """
    changed = changed_keys(old, new)
    switches = _rule_switches(old, new, changed)
    later = [k for k in changed if k not in LIVE_KEYS and not k.startswith("smoothing.")
             and k != "events.rules.enabled"]
    if parts.live.settings.inference != inference:
        changed.append("inference")
    parts.apply(dataclasses.replace(parts.live.settings, top_k=new.model.top_k, threshold=new.model.threshold,
                                    smoothing=dataclasses.replace(new.smoothing), inference=inference))
    old.model.top_k, old.model.threshold, old.smoothing = new.model.top_k, new.model.threshold, new.smoothing
    if switches is not None and parts.outputs is not None:
        parts.outputs.enable_rules(switches)
        for r in old.events.rules:
            r.enabled = switches[r.name]
    return [k for k in changed if k not in later], later

"""When an event starts and ends: one small state machine per rule, fed results and times.

A rule matches a result when one of its labels scores at least
``min_score`` (the whole picture: that label's score in the result; a
region: the region's state is that label, with that score) inside the
rule's ``schedule`` window. The rule's event:

* starts once it has matched for ``for_s`` seconds without a break; its
  start time is when the match began (the frame the label appeared on), so
  ``for_s`` delays the actions, not the history;
* ends once the rule has not matched for ``cooldown_s`` seconds; its end
  time is the first frame that no longer matched (a match during the
  cooldown continues the event, as if there had been no gap);
* keeps its peak score.

Times are seconds on the events' clock (wall time for a camera, the file's
own time for a file: see :mod:`edgecam.events.sink`); nothing here reads a
clock, so tests feed any times they like.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from edgecam.config.events import EventRuleConfig, parse_schedule, rule_labels
from edgecam.model.rules import AmbiguousLabel, find_label, label_matches
from edgecam.result import EventKind

#: Times closer than this are the same time (epoch seconds as floats are ~2e-7 s apart at best).
EPS_S = 0.0005


@dataclass
class Event:
    """One event of one rule, as the history keeps it. ``id`` is the history's, set once it is stored;
    ``camera`` the name of the camera it was seen by in a run of several (None with one camera)."""

    rule: str
    label: str
    region: str | None
    start: float
    start_frame: int
    peak_score: float
    end: float | None = None
    end_frame: int | None = None
    id: int | None = None
    camera: str | None = None

    def to_dict(self) -> dict:
        """The event as JSON carries it (MQTT, webhook); ``camera`` only in a run of several cameras."""
        out = {"id": self.id, "rule": self.rule, "label": self.label, "region": self.region,
               "start": round(self.start, 3), "end": None if self.end is None else round(self.end, 3),
               "peak_score": round(self.peak_score, 4)}
        if self.camera is not None:
            out["camera"] = self.camera
        return out


def event_payload(kind: EventKind, event: Event, host: str, snapshot: bool = False,
                  interrupted: bool = False) -> dict:
    """The JSON of an event's start or end (webhook, MQTT ``<prefix>/event``): times in epoch seconds;
    ``snapshot``: the path of its snapshot on the HTTP output (``/events/<id>/snapshot.jpg``), when it has one.
    ``interrupted``: an end that a stop decided (or a stop before the start found), not the rule: its ``end``
    is when the run stopped (or the start, when found later), ``"interrupted": true``."""
    return {"type": EventKind(kind).value, **event.to_dict(), "host": host,
            "snapshot": f"/events/{event.id}/snapshot.jpg" if snapshot else None,
            **({"interrupted": True} if interrupted else {})}


def label_matcher(labels: tuple[str, ...], model_labels) -> dict[int, str]:
    """Class index -> rule label, for the labels of ``labels`` found in ``model_labels``.

    A rule may name a class by its whole label (``tabby, tabby cat``) or its first name (``tabby``): the one
    resolution the class rules use too (:func:`edgecam.model.rules.find_label`). An ambiguous first name matches
    nothing here (the start refuses it: :meth:`edgecam.events.sink.EventsSink.check_labels`).
    """
    out = {}
    for name in labels:
        try:
            indices = find_label(name, model_labels)
        except AmbiguousLabel:
            continue
        for i in indices:
            out.setdefault(i, name)
    return out


def in_schedule(window: tuple[int, int] | None, wall_time: float) -> bool:
    """Whether ``wall_time`` (epoch seconds) falls in the local-time window (start, end) in minutes."""
    if window is None:
        return True
    t = time.localtime(wall_time)
    minute = t.tm_hour * 60 + t.tm_min
    start, end = window
    return start <= minute < end if start < end else (minute >= start or minute < end)


class RuleTracker:
    """One rule's state: idle, pending (matching, not yet ``for_s``) or in an event."""

    def __init__(self, cfg: EventRuleConfig):
        self.cfg = cfg
        self.name = cfg.name
        self.labels = rule_labels(cfg)
        self.window = parse_schedule(cfg.schedule) if cfg.schedule else None
        self.enabled = cfg.enabled  # a command may switch it live (RuleSet.enable)
        self._matcher: dict[int, str] | None = None
        self._matcher_labels = None
        self.unknown_labels: tuple[str, ...] = ()  # labels of the rule the model does not have
        self.event: Event | None = None
        self._pending: tuple[float, int, str, float] | None = None  # since, frame, label, peak
        self._gone: tuple[float, int] | None = None  # when and on which frame the match stopped

    def match(self, result) -> tuple[str, float] | None:
        """(label, score) when ``result`` matches the rule's labels and ``min_score``, else None."""
        if self.cfg.region is not None:
            state = result.regions.get(self.cfg.region)
            if state is None or state.label is None or state.score < self.cfg.min_score:
                return None
            # The state's whole label or its first name, as for the whole picture; the event is named by the rule.
            named = next((label for label in self.labels if label_matches(label, state.label)), None)
            return None if named is None else (named, float(state.score))
        if self._matcher_labels is not result.labels:
            self._matcher = label_matcher(self.labels, result.labels)
            self._matcher_labels = result.labels
            found = set(self._matcher.values())
            self.unknown_labels = tuple(label for label in self.labels if label not in found)
        best = None
        for index, label in self._matcher.items():
            score = float(result.scores[index]) if index < len(result.scores) else 0.0
            if score >= self.cfg.min_score and (best is None or score > best[1]):
                best = (label, score)
        return best

    def update(self, result, t: float, frame: int, wall_time: float) -> list[tuple[EventKind, Event]]:
        """Feed one result seen at time ``t`` (frame number ``frame``); returns (kind, event) pairs."""
        # A rule switched off (a command, or enabled: false) matches nothing: an event going on ends after cooldown_s.
        seen = self.match(result) if self.enabled and in_schedule(self.window, wall_time) else None
        out: list[tuple[EventKind, Event]] = []
        if self.event is not None:
            if seen is not None:
                self._gone = None
                self.event.peak_score = max(self.event.peak_score, seen[1])
                return out
            if self._gone is None:
                self._gone = (t, frame)
            if t - self._gone[0] >= self.cfg.cooldown_s:
                out.append((EventKind.END, self._end(*self._gone)))
            return out
        if seen is None:
            self._pending = None
            return out
        label, score = seen
        if self._pending is None:
            self._pending = (t, frame, label, score)
        else:
            since, first, label0, peak = self._pending
            self._pending = (since, first, label0, max(peak, score))
        since, first, label, peak = self._pending
        if t - since >= self.cfg.for_s:
            self._pending = None
            self.event = Event(self.name, label, self.cfg.region, since, first, peak)
            out.append((EventKind.START, self.event))
        return out

    def _end(self, t: float, frame: int) -> Event:
        event, self.event, self._gone = self.event, None, None
        event.end, event.end_frame = t, frame
        return event

    def finish(self, t: float, frame: int) -> Event | None:
        """The run ends: the event in progress ends now (or where its match stopped); None without one."""
        if self.event is None:
            return None
        return self._end(*(self._gone or (t, frame)))


class RuleSet:
    """Every rule of the config; :meth:`update` feeds them all one result."""

    def __init__(self, rules: list[EventRuleConfig]):
        self.trackers = [RuleTracker(r) for r in rules]

    def update(self, result, t: float, frame: int, wall_time: float) -> list[tuple[EventKind, Event]]:
        out = []
        for tracker in self.trackers:
            out += tracker.update(result, t, frame, wall_time)
        return out

    def enable(self, switches) -> None:
        """Switch rules on or off live: ``switches`` maps a rule's name to on (True) or off."""
        for tracker in self.trackers:
            tracker.enabled = switches.get(tracker.name, tracker.enabled)

    def finish(self, t: float, frame: int) -> list[Event]:
        return [e for e in (tr.finish(t, frame) for tr in self.trackers) if e is not None]

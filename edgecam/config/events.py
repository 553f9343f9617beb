"""The ``events:`` section of the config: rules, what they do, where the history lives and how long.

Typed and strict like the rest of :mod:`edgecam.config.schema` (which holds an
:class:`EventsConfig`); :func:`check_events` adds the checks that look at
other sections (the regions a rule names, MQTT for ``mqtt: true``).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Literal

from edgecam.config.check import opt, quote, unique_name
from edgecam.names import identifier_problem, label_problem

_SCHEDULE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)$")


def _schedule(value: str) -> str | None:
    m = _SCHEDULE.match(value.replace(" ", ""))
    if m and (m.group(3) != "24" or m.group(4) == "00") and m.group(1, 2) != m.group(3, 4):
        return None
    return "a time-of-day window 'HH:MM-HH:MM' in local time, such as '07:00-19:30' or '22:00-06:00'"


def _url(value: str) -> str | None:
    """A webhook's URL as urllib can POST to it: what was expected when it cannot (one line)."""
    expected = "an http:// or https:// URL"
    if any(c <= " " or c == "\x7f" for c in value):
        return f"{expected} without spaces or control characters"
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port
    except ValueError as e:  # a port that is not a number up to 65535, an IPv6 address without its ]
        return f"{expected} such as http://host:8123/path ({e})"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return f"{expected} with a host, such as http://host:8123/path"
    if port == 0:
        return f"{expected} with a port between 1 and 65535"
    if parts.username is not None or parts.password is not None:
        return f"{expected} without user:password@ (it would not be sent); put a token in the path or query"
    try:
        parts.hostname.encode("idna")
    except UnicodeError:
        return f"{expected} with a valid host name"
    if not value.replace(parts.netloc, "", 1).isascii():
        return f"{expected} with its path and query percent-encoded (%C3%A9 for \u00e9)"
    return None


def parse_schedule(text: str) -> tuple[int, int]:
    """``'22:00-06:00'`` -> (start, end) in minutes of the day (end may be less: the window crosses midnight)."""
    m = _SCHEDULE.match(text.replace(" ", ""))
    return int(m.group(1)) * 60 + int(m.group(2)), int(m.group(3)) * 60 + int(m.group(4))


@dataclass
class EventRuleConfig:
    """One rule: when its label (or a region's state) holds, an event; what to do with it."""

    name: str = opt("", check=identifier_problem)
    enabled: bool = True  # false: the rule starts no event (a command may switch it: docs/http-mqtt.md)
    label: str | None = None  # the label (or region state) that starts an event
    labels: list[str] | None = None  # or any of these
    region: str | None = None  # a region's state (regions:); null: the whole picture
    min_score: float = opt(0.5, min=0.0, max=1.0)
    # It must hold this long, without a break, before the event starts (its start stays where the label
    # appeared). 1 s: a label flickering on for a few frames (0.3 s) makes no event (issue 21); 0: at once.
    for_s: float = opt(1.0, min=0.0, max=86400.0)
    cooldown_s: float = opt(5.0, min=0.0, max=86400.0)  # gone this long: the event ends
    schedule: str | None = opt(None, check=_schedule)  # 'HH:MM-HH:MM' local time; null: always
    snapshot: bool = True  # the annotated frame and the clean one, at the start
    clip: bool = False  # a video from pre_s before the start to post_s after the end
    pre_s: float = opt(5.0, min=0.0, max=60.0)
    post_s: float = opt(5.0, min=0.0, max=600.0)
    max_clip_s: float = opt(300.0, min=1.0, max=3600.0)  # a clip ends here even if the event goes on
    mqtt: bool = False  # <prefix>/event, with Home Assistant device triggers
    webhook: str | None = opt(None, check=_url)  # POST the event as JSON here, at its start and end
    collect: bool = False  # the frame (a region's crop) into examples_dir/<region or rule>/<label>/


@dataclass
class EventsConfig:
    """Where events are kept and for how long; the rules (docs/events.md)."""

    dir: str | None = None  # history and media; null: 'events' beside the model folder
    rules: list[EventRuleConfig] = field(default_factory=list)
    max_age_days: float = opt(30.0, min=0.0, max=36500.0)  # 0: no age limit
    max_mb: float = opt(1000.0, min=0.0)  # media on disk, oldest events deleted first; 0: no limit
    pre_roll_mb: float = opt(16.0, min=0.5, max=1024.0)  # memory for the clips' pre-roll frames (JPEG)
    jpeg_quality: int = opt(85, min=1, max=100)
    clip_format: Literal["auto", "mp4", "webm", "avi"] = "auto"  # auto: the first one OpenCV can write
    clip_fps: float | None = opt(None, min=0.5, max=120.0)  # clips (and their pre-roll) at most this rate; null: all
    webhook_timeout_s: float = opt(5.0, min=0.1, max=120.0)
    webhook_retries: int = opt(3, min=0, max=20)


def check_events(cfg, problems: list[str], reported: set[str] = frozenset()) -> None:
    """Checks of ``cfg.events`` against the rest of the config; one line per problem (none more for a
    key in ``reported``: it has its problem already)."""
    regions = {r.name for r in cfg.regions}
    names: set[str] = set()
    for i, rule in enumerate(cfg.events.rules):
        where = f"events.rules[{i}]"
        unique_name(rule.name, where, "rule", "bins_out", names, reported, problems)
        if not rule.label and not rule.labels:
            problems.append(f"{where}.label: missing, expected the label (or labels: a list) that starts an event")
        elif rule.label and rule.labels:
            problems.append(f"{where}.labels: given with label too; expected one of label or labels")
        if rule.collect:  # its labels name folders of examples
            for key, value in ([("label", rule.label)] if rule.label else []) + \
                    [(f"labels[{j}]", v) for j, v in enumerate(rule.labels or ())]:
                problem = label_problem(value)
                if problem and f"{where}.{key}" not in reported:
                    problems.append(f"{where}.{key}: got {quote(value)}, expected {problem} (collect: true saves "
                                    "examples in a folder of that name)")
        if rule.region is not None and rule.region not in regions:
            known = ", ".join(sorted(regions)) or "none configured"
            problems.append(f"{where}.region: {rule.region!r} is not a region (regions: {known})")
        elif rule.region is None and regions:
            problems.append(f"{where}.region: null, but with regions: the whole picture is not classified; "
                            f"expected one of {', '.join(sorted(regions))}")
        if rule.mqtt and not cfg.mqtt.enabled:
            problems.append(f"{where}.mqtt: true, but mqtt.enabled is false; enable MQTT or set mqtt: false")


def rule_labels(rule: EventRuleConfig) -> tuple[str, ...]:
    """The labels that start an event of ``rule``."""
    return tuple(rule.labels or ()) + ((rule.label,) if rule.label else ())


def rule_summary(rule: EventRuleConfig) -> dict:
    """What a rule watches and what makes it fire, for /api/events and the /events page's empty state."""
    labels = rule_labels(rule)
    said = " or ".join(f"'{label}'" for label in labels)
    where = f"region {rule.region}'s state is {said}" if rule.region else f"{said} scores"
    held = f" for {rule.for_s:g} s without a break" if rule.for_s else ""
    when = f", between {rule.schedule} (local time)" if rule.schedule else ""
    does = [name for name, on in (("snapshot", rule.snapshot), ("clip", rule.clip), ("MQTT", rule.mqtt),
                                  ("webhook", bool(rule.webhook)), ("collect", rule.collect)) if on]
    return {"name": rule.name, "labels": list(labels), "region": rule.region, "min_score": rule.min_score,
            "for_s": rule.for_s, "cooldown_s": rule.cooldown_s, "schedule": rule.schedule,
            "fires_when": f"{where} at least {rule.min_score:.0%}{held}{when}; it ends {rule.cooldown_s:g} s "
                          f"after that stops" + (f" ({', '.join(does)})" if does else "")}

"""The events output: rules fed by every result, their actions, the history (docs/events.md).

:class:`EventsSink` is a pipeline output (:class:`edgecam.outputs.base.Sink`)
registered as ``events`` in :data:`edgecam.outputs.SINKS` (by :mod:`edgecam.events`), built when the
config has ``events.rules``. From the output loop it only decides and hands
over: the rules (:mod:`edgecam.events.rules`) run on each result, an event's
start and end go to the history's writer thread and to the actions its rule
asks for (:mod:`edgecam.events.actions`: snapshot, collect, clip, webhook),
each of which hands its work to a thread of its own. Nothing here waits for a
disk or a network. With the HTTP output, its /events page and API are mounted
there (:meth:`EventsSink.connect`).

In a run of several cameras each camera has an events output of its own (its
rules, actions and frames), and the cameras that keep their events in one
folder share its history, lock and web view: an
:class:`edgecam.events.hub.EventsHub`, given in the run's context.

The events' clock: a camera's frames are timed by their wall-clock capture
time. A file read as fast as it decodes is timed by its own clock (frame
number / frame rate after the first frame's wall time), so that ``for_s``,
``cooldown_s`` and the history's times mean in a recording what they would
have meant live (as ``edgecam collect`` counts ``--every``).
"""

from __future__ import annotations

import logging
import socket
import sys
import time
from pathlib import Path

from edgecam.errors import ConfigError
from edgecam.events import checks
from edgecam.events.actions import ACTIONS, Action, ClipAction, WebhookAction
from edgecam.events.clips import choose_format
from edgecam.events.history import EventStatus, History, default_dir
from edgecam.events.rules import Event, RuleSet, event_payload
from edgecam.events.web import EventsWeb
from edgecam.model.rules import AmbiguousLabel, find_label, some
from edgecam.outputs.base import Sink
from edgecam.outputs.teach import examples_dir
from edgecam.result import UNKNOWN, EventKind, Extra, RuleEvent

logger = logging.getLogger(__name__)

RETENTION_EVERY_S = 3600.0  # besides after each event: age limits pass while nothing happens


class EventsSink(Sink):
    """Rules, history, actions (see the module docstring). ``clock``: epoch seconds (retention)."""

    name = "events"
    #: The overlay is drawn here, on the frame a snapshot keeps, not on every frame (unless another output
    #: wants it anyway: then that picture is used).
    wants_overlay = False
    closes_first = True  # the events a stop interrupts are handed to the other outputs at close

    def __init__(self, cfg, folder: str | Path, examples_dir: str | Path | None = None, regions: tuple = (),
                 clock=time.time, stats=None, labels: tuple = (), overlay: bool = True, hub=None,
                 camera: str | None = None):
        """The overlay a snapshot gets lists :attr:`top_k` labels above :attr:`threshold` (:meth:`reconfigure`).

        ``hub``: the :class:`edgecam.events.hub.EventsHub` of ``folder`` that several cameras share (its history
        is used, opened by the first camera and closed by its owner), ``camera`` this camera's name there (its
        events' ``camera``); None, None: one camera, with a history of its own."""
        self.cfg = cfg  # the events section
        self.hub, self.camera = hub, camera
        self.stats, self.overlay = stats, overlay
        self.boxes = {r.name: r.box for r in regions}  # RegionInfo: where a region's crop is (collect)
        self.states = {r.name: tuple(r.labels) for r in regions}  # and the states it can take
        self.model_labels = tuple(labels)  # the whole picture's classes (empty: not known)
        self.folder = Path(folder) if hub is None else hub.folder
        self.examples_dir = Path(examples_dir) if examples_dir else None
        self.rules = {r.name: r for r in cfg.rules}
        self._peers: list = []  # the other outputs (connect)
        self.ruleset = RuleSet(cfg.rules)
        self.history = History(self.folder, cfg.max_age_days, int(cfg.max_mb * 1024 * 1024), clock=clock) \
            if hub is None else hub.history
        self.wants_frames = any(a.wants_frames and a.wanted(r) for a in ACTIONS for r in cfg.rules)
        self.file_fps: float | None = None  # a file read unpaced: its own clock (module docstring)
        self._file_base: float | None = None
        self._last: tuple[float, int] = (0.0, -1)  # the events' time and frame number of the last result
        self._next_retention = time.monotonic() + RETENTION_EVERY_S
        self._warned_labels = False
        self._closed = False
        #: the actions some rule asks for (start), each built once: edgecam.events.actions
        self.actions: list[Action] = []
        self.host = socket.gethostname()
        self.clip_format: str | None = None
        #: counters for /metrics: rule -> events started / ended / webhook POSTs given up on
        self.started: dict[str, int] = {r: 0 for r in self.rules}
        self.ended: dict[str, int] = {r: 0 for r in self.rules}
        self.webhook_failures: dict[str, int] = {r: 0 for r in self.rules}
        if stats is not None and hasattr(stats, "metric_sources"):
            stats.metric_sources.append(self.metrics)
        if hub is not None:
            hub.join(camera, self)

    @classmethod
    def from_config(cls, cfg, ctx) -> EventsSink:
        checks.check_examples(cfg)  # bad input (exit 2) before the repair deletes them
        hub = (ctx.shared_outputs or {}).get("events")  # several cameras, one folder (edgecam.events.hub.KEY)
        sink = cls(cfg.events, default_dir(cfg) if hub is None else hub.folder, examples_dir(cfg), ctx.regions,
                   stats=ctx.stats, labels=ctx.labels, overlay=cfg.display.overlay, hub=hub, camera=ctx.camera)
        sink.reconfigure(cfg.model.top_k, cfg.model.threshold)
        return sink

    @classmethod
    def check(cls, cfg) -> list[str]:
        """A clip format this OpenCV cannot write, a rule naming a label its model never gives, the examples
        folder inside the media folder (:mod:`edgecam.events.checks`)."""
        return checks.problems(cfg, cls)

    def connect(self, sinks: list[Sink]) -> None:
        """Mount /events and /api/events (the page, the API, the media) on the run's HTTP output, if any;
        keep the other outputs, which get the ends of interrupted events (:meth:`Sink.on_rule_events`)."""
        self._peers = [s for s in sinks if s is not self]
        if "edgecam.outputs.http" not in sys.modules:  # no HTTP output was built: none to mount on
            return
        # Here, not at the top: the HTTP server's module costs ~9 MB of memory (ru_maxrss after the import,
        # AMD EPYC), loaded only where there is an HTTP output (then it is loaded already).
        from edgecam.outputs.http import HttpSink

        web = EventsWeb(self.folder, self.cfg.rules) if self.hub is None else self.hub.web  # every camera's
        for sink in sinks:
            if isinstance(sink, HttpSink):
                web.mount_on(sink)

    @property
    def clips(self):
        """The clips' recorder (:class:`edgecam.events.clips.ClipRecorder`) with clip rules, once started."""
        return next((a.recorder for a in self.actions if isinstance(a, ClipAction)), None)

    @property
    def clip_failures(self) -> int:
        return sum(a.failures for a in self.actions if isinstance(a, ClipAction))

    @property
    def webhooks(self):
        """The webhooks' threads (:class:`edgecam.events.webhook.Webhooks`) with webhook rules, once started."""
        return next((a.hooks for a in self.actions if isinstance(a, WebhookAction)), None)

    def check_labels(self) -> None:
        """A rule naming a label its model (or its region) never gives is bad input: ConfigError, every one."""
        problems = []
        for i, tracker in enumerate(self.ruleset.trackers):
            rule = tracker.cfg
            if rule.region is not None and self.states.get(rule.region):
                known = tuple(self.states[rule.region]) + (UNKNOWN,)
                of = f"region {rule.region}'s states ({some(sorted(self.states[rule.region]))}, unknown)"
            elif rule.region is None and self.model_labels:
                known = self.model_labels
                of = "the model's labels (edgecam models list; the labels file)"
            else:
                continue
            for label in tracker.labels:  # the one resolution the class rules use (edgecam.model.rules.find_label)
                try:
                    if not find_label(label, known):
                        problems.append(f"events.rules[{i}]: {label!r} is not one of {of}; it could never "
                                        "start an event")
                except AmbiguousLabel as e:
                    problems.append(f"events.rules[{i}]: {e}")
        if problems:
            raise ConfigError(problems)

    def enable_rules(self, switches: dict[str, bool]) -> None:
        self.ruleset.enable(switches)

    def start(self) -> None:
        self.check_labels()
        if any(r.clip for r in self.cfg.rules):
            self.clip_format = choose_format(self.cfg.clip_format)  # bad input before anything is opened
        if self.hub is None:
            self.history.open()
        else:
            self.hub.open()  # the first camera's start opens the history the others share
        self.actions = [action(self) for action in ACTIONS if any(action.wanted(r) for r in self.cfg.rules)]
        logger.info("events: %d rule(s), history in %s%s", len(self.rules), self.folder,
                    f", clips as {self.clip_format}" if self.clips else "")
        self._tell_peers(self._found_interrupted())

    def source_opened(self, source) -> None:
        if not source.live and not getattr(source, "realtime", False) and source.fps:
            self.file_fps = float(source.fps)
        if self.clips is not None and source.fps:  # the rate an MP4/WebM clip is written at
            self.clips.fps = min(float(source.fps), self.cfg.clip_fps or float("inf"))

    # ------------------------------------------------------------ the output loop

    def event_time(self, index: int, wall_time: float) -> float:
        """The events' clock for frame number ``index`` captured at ``wall_time`` (module docstring)."""
        wall = wall_time or time.time()
        if self.file_fps is None or index < 0:
            return wall
        if self._file_base is None:
            self._file_base = wall - index / self.file_fps
        return self._file_base + index / self.file_fps

    def on_result(self, result) -> None:
        t = self.event_time(result.frame_index, result.wall_time)
        self._last = (t, result.frame_index)
        changes = self.ruleset.update(result, t, result.frame_index, t)
        if not self._warned_labels:
            self._warned_labels = True
            for tracker in self.ruleset.trackers:
                if tracker.unknown_labels:
                    logger.warning("events: rule %s: %s not among the model's labels; it cannot match them",
                                   tracker.name, ", ".join(repr(x) for x in tracker.unknown_labels))
        for kind, event in changes:
            if kind is EventKind.START:
                self._started(event)
            else:
                self._ended(event, EventStatus.ENDED)
            # for the outputs fed after this one (MQTT publishes them on <prefix>/event)
            result.extra.setdefault(Extra.RULE_EVENTS, []).append(RuleEvent(kind, event.rule, self.payload(kind, event)))
        if time.monotonic() >= self._next_retention:
            self._next_retention = time.monotonic() + RETENTION_EVERY_S
            self.history.retention()

    def payload(self, kind: EventKind, event: Event, interrupted: bool = False) -> dict:
        """The JSON of ``event``'s start or end (webhook, MQTT, the log)."""
        return event_payload(kind, event, self.host, snapshot=self.rules[event.rule].snapshot,
                             interrupted=interrupted)

    def _tell_peers(self, ends: list[RuleEvent]) -> None:
        """Ends that came with no result (a stop, or one found at start): to the other outputs (MQTT)."""
        for sink in self._peers if ends else ():
            try:
                sink.on_rule_events(ends)
            except Exception as e:  # one output's trouble never keeps the others from their events
                logger.error("events: output %s failed with the interrupted events: %s", sink.name, e)

    def _found_interrupted(self) -> list[RuleEvent]:
        """The events the history found in progress at start (a stop it did not see: a power cut, SIGKILL),
        this camera's, as interrupted ends (their end: their start, as the history has it)."""
        ends = []
        for id_, rule, label, region, started, start_frame, peak, camera in self.history.found_interrupted:
            if rule in self.rules and camera == self.camera:
                event = Event(rule, label, region, started, start_frame, peak, end=started, end_frame=start_frame,
                              id=id_, camera=camera)
                ends.append(RuleEvent(EventKind.END, rule, self.payload(EventKind.END, event, interrupted=True)))
        return ends

    def _started(self, event: Event) -> None:
        self.started[event.rule] += 1
        event.camera = self.camera
        logger.info("event: %s%s started (%s %.2f%s)", f"camera {self.camera}: " if self.camera else "", event.rule,
                    event.label, event.peak_score, f", region {event.region}" if event.region else "")
        self.history.start_event(event)  # the event has its id now
        rule = self.rules[event.rule]
        for action in self.actions:
            if action.wanted(rule):
                action.on_start(event, rule)

    def _ended(self, event: Event, status: EventStatus) -> None:
        self.ended[event.rule] += 1
        logger.info("event: %s%s ended (%s, %.1f s, peak %.2f)", f"camera {self.camera}: " if self.camera else "",
                    event.rule, event.label, (event.end or event.start) - event.start, event.peak_score)
        self.history.end_event(event, status)
        rule = self.rules[event.rule]
        for action in self.actions:
            if action.wanted(rule):
                action.on_end(event, rule)

    def on_frame(self, frame, annotated, result) -> None:
        if not self.actions:
            return
        t = self.event_time(frame.index, frame.wall_time)
        for action in self.actions:
            action.on_frame(frame, annotated, result, t)

    def metrics(self) -> list:
        """This output's part of /metrics (see :attr:`edgecam.stats.Stats.metric_sources`)."""
        def per_rule(counts):
            return [(f'{{rule="{rule}"}}', n) for rule, n in counts.items()]

        h = self.history
        out = [
            ("edgecam_events_started_total", "counter", "Events started, per rule.", per_rule(self.started)),
            ("edgecam_events_ended_total", "counter", "Events ended, per rule.", per_rule(self.ended)),
            ("edgecam_events_webhook_failures_total", "counter",
             "Webhook POSTs that failed after every retry, per rule.", per_rule(self.webhook_failures)),
            ("edgecam_events_bytes", "gauge", "Bytes the events take on disk (media and database).",
             [("", h.disk_bytes())]),
            ("edgecam_events_retention_deleted_total", "counter", "Events deleted by retention (age or size).",
             [("", h.deleted_by_retention)]),
            ("edgecam_events_write_errors_total", "counter", "History or media writes that failed (a full disk).",
             [("", h.write_errors)]),
        ]
        for action in self.actions:
            out += action.metrics()
        return out

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        t, frame = self._last
        ends = []
        for event in self.ruleset.finish(t, frame):
            self._ended(event, EventStatus.INTERRUPTED)  # the run stopped during it: its end is not known
            ends.append(RuleEvent(EventKind.END, event.rule, self.payload(EventKind.END, event, interrupted=True)))
        self._tell_peers(ends)
        for action in self.actions:
            action.close()
        if self.hub is None:  # a shared history is closed by its hub's owner, once every camera is done
            self.history.close()

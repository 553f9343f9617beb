"""The events output: rules fed by every result, their actions, the history (docs/events.md).

:class:`EventsSink` is a pipeline output (:class:`edgecam.outputs.base.Sink`)
registered as ``events`` in :data:`edgecam.outputs.REGISTRY`, built when the
config has ``events.rules``. From the output loop it only decides and hands
over: the rules (:mod:`edgecam.events.rules`) run on each result, an event's
start and end go to the history's writer thread, the frame for a snapshot
(the first one drawn after the start, with the overlay that shows it) is
handed over by reference and encoded there. Nothing here waits for a disk or
a network.

The events' clock: a camera's frames are timed by their wall-clock capture
time. A file read as fast as it decodes is timed by its own clock (frame
number / frame rate after the first frame's wall time), so that ``for_s``,
``cooldown_s`` and the history's times mean in a recording what they would
have meant live (as ``edgecam collect`` counts ``--every``).
"""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

from edgecam.events import media
from edgecam.events.history import History, default_dir
from edgecam.events.rules import EPS_S, Event, RuleSet, event_payload
from edgecam.result import UNKNOWN
from edgecam.outputs.base import Sink

logger = logging.getLogger(__name__)

RETENTION_EVERY_S = 3600.0  # besides after each event: age limits pass while nothing happens


class EventsSink(Sink):
    """Rules, history, snapshots (see the module docstring). ``clock``: epoch seconds (retention)."""

    name = "events"
    #: The overlay is drawn here, on the frame a snapshot keeps, not on every frame (unless another output
    #: wants it anyway: then that picture is used).
    wants_overlay = False

    def __init__(self, cfg, folder: str | Path, examples_dir: str | Path | None = None, regions: tuple = (),
                 clock=time.time, stats=None, labels: tuple = (), overlay: bool = True, top_k: int = 3,
                 threshold: float = 0.0):
        self.cfg = cfg  # the events section
        self.stats, self.overlay, self.top_k, self.threshold = stats, overlay, top_k, threshold
        self.boxes = {r.name: r.box for r in regions}  # RegionInfo: where a region's crop is (collect)
        self.states = {r.name: tuple(r.labels) for r in regions}  # and the states it can take
        self.model_labels = tuple(labels)  # the whole picture's classes (empty: not known)
        self.folder = Path(folder)
        self.examples_dir = Path(examples_dir) if examples_dir else None
        self.rules = {r.name: r for r in cfg.rules}
        self.ruleset = RuleSet(cfg.rules)
        self.history = History(self.folder, cfg.max_age_days, int(cfg.max_mb * 1024 * 1024), clock=clock)
        self.wants_frames = any(r.snapshot or r.clip or r.collect for r in cfg.rules)
        self.file_fps: float | None = None  # a file read unpaced: its own clock (module docstring)
        self._file_base: float | None = None
        self._waiting: list[Event] = []  # started, waiting for the next frame (snapshot, collect)
        self._last: tuple[float, int] = (0.0, -1)  # the events' time and frame number of the last result
        self._next_retention = time.monotonic() + RETENTION_EVERY_S
        self._next_clip_t = float("-inf")  # events.clip_fps: the next frame the clips take
        self._warned_labels = False
        self._closed = False
        self.clips = None  # the ClipRecorder, with clip rules (start)
        self.webhooks = None  # the Webhooks thread, with webhook rules (start)
        self.host = socket.gethostname()
        self.clip_format: str | None = None
        self.clip_failures = 0
        #: counters for /metrics: rule -> events started / ended
        self.started: dict[str, int] = {r: 0 for r in self.rules}
        self.ended: dict[str, int] = {r: 0 for r in self.rules}
        self.webhook_failures: dict[str, int] = {r: 0 for r in self.rules}
        if stats is not None and hasattr(stats, "metric_sources"):
            stats.metric_sources.append(self.metrics)

    @classmethod
    def from_config(cls, cfg, ctx) -> EventsSink:
        from edgecam.outputs.http import examples_dir
        from edgecam.outputs.teach import check_examples_dir

        check_examples_dir(cfg, examples_dir(cfg))  # bad input (exit 2) before the repair deletes them
        return cls(cfg.events, default_dir(cfg), examples_dir(cfg), ctx.regions, stats=ctx.stats, labels=ctx.labels,
                   overlay=cfg.display.overlay, top_k=cfg.model.top_k, threshold=cfg.model.threshold)

    def check_labels(self) -> None:
        """A rule naming a label its model (or its region) never gives is bad input: ConfigError, every one."""
        from edgecam.errors import ConfigError
        from edgecam.model.rules import AmbiguousLabel, find_label, some

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

    def start(self) -> None:
        self.check_labels()
        clip_rules = [r for r in self.cfg.rules if r.clip]
        if clip_rules:
            from edgecam.events.clips import ClipRecorder, choose_format

            self.clip_format = choose_format(self.cfg.clip_format)  # bad input before anything is opened
        self.history.open()
        if clip_rules:
            self.clips = ClipRecorder(self.folder, max(r.pre_s + r.for_s for r in clip_rules),
                                      int(self.cfg.pre_roll_mb * 1024 * 1024), self.cfg.jpeg_quality,
                                      self.clip_format, self._clip_done, self._clip_failed)
        if any(r.webhook for r in self.cfg.rules):
            from edgecam.events.webhook import Webhooks

            self.webhooks = Webhooks(self.cfg.webhook_timeout_s, self.cfg.webhook_retries, self._webhook_failed)
        logger.info("events: %d rule(s), history in %s%s", len(self.rules), self.folder,
                    f", clips as {self.clip_format}" if self.clips else "")

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
            if kind == "start":
                self._started(event)
            else:
                self._ended(event, "ended")
            # for the outputs fed after this one (MQTT publishes them on <prefix>/event)
            result.extra.setdefault("rule_events", []).append(self._payload(kind, event))
        if time.monotonic() >= self._next_retention:
            self._next_retention = time.monotonic() + RETENTION_EVERY_S
            self.history.retention()

    def _payload(self, kind: str, event: Event) -> dict:
        return event_payload(kind, event, self.host, snapshot=self.rules[event.rule].snapshot)

    def _started(self, event: Event) -> None:
        self.started[event.rule] += 1
        logger.info("event: %s started (%s %.2f%s)", event.rule, event.label, event.peak_score,
                    f", region {event.region}" if event.region else "")
        self.history.start_event(event)  # the event has its id now
        rule = self.rules[event.rule]
        if rule.webhook and self.webhooks is not None:
            self.webhooks.post(rule.webhook, rule.name, self._payload("start", event))
        if rule.snapshot or rule.collect:
            self._waiting.append(event)
        if rule.clip and self.clips is not None:
            self.clips.start(event, rule)

    def _ended(self, event: Event, status: str) -> None:
        self.ended[event.rule] += 1
        logger.info("event: %s ended (%s, %.1f s, peak %.2f)", event.rule, event.label,
                    (event.end or event.start) - event.start, event.peak_score)
        self.history.end_event(event, status)
        rule = self.rules[event.rule]
        if rule.webhook and self.webhooks is not None:
            self.webhooks.post(rule.webhook, rule.name, self._payload("end", event))
        if rule.clip and self.clips is not None:
            self.clips.end(event)

    def on_frame(self, frame, annotated, result) -> None:
        if self.clips is not None:
            t = self.event_time(frame.index, frame.wall_time)
            if t >= self._next_clip_t - EPS_S:  # events.clip_fps: the frames in between are not even encoded
                if self.cfg.clip_fps:  # on a regular grid, unless frames were missing for longer than a step
                    step = 1 / self.cfg.clip_fps
                    self._next_clip_t = (t if t - self._next_clip_t > step else self._next_clip_t) + step
                self.clips.frame(t, frame.image, wait=self.file_fps is not None)
        if not self._waiting:
            return
        waiting, self._waiting = self._waiting, []
        if annotated is None and self.overlay and any(self.rules[e.rule].snapshot for e in waiting):
            annotated = self._annotate(frame, result)
        for event in waiting:
            rule = self.rules[event.rule]
            if rule.snapshot:
                self.history.submit(self._snapshot_job(event, frame.image, annotated))
            if rule.collect:
                self.history.submit(self._collect_job(event, frame.image, frame.wall_time))

    def _annotate(self, frame, result):
        """The overlay on ``frame``, as the pipeline draws it for the outputs that want it on every frame."""
        from edgecam.outputs.overlay import OverlayStats, draw_overlay

        numbers = OverlayStats() if self.stats is None else OverlayStats.of(self.stats, frame, result)
        return draw_overlay(frame.image, result, numbers, self.top_k, self.threshold)

    # ------------------------------------------------------- jobs (writer thread)

    def _snapshot_job(self, event: Event, clean, annotated):
        def job(conn):
            files = media.write_snapshot(self.folder, event, clean, annotated, self.cfg.jpeg_quality)
            try:
                self.history.add_media(event, files)
            except BaseException:
                for path in files.values():  # no row names them: gone, not left for the repair
                    Path(path).unlink(missing_ok=True)
                raise
        return job

    def _collect_job(self, event: Event, image, wall_time: float):
        def job(conn):
            from edgecam.outputs.teach import example_folder, save_example

            picture, group = image, event.rule
            if event.region in self.boxes:  # a region's crop, as edgecam collect saves it
                from edgecam.model.regions import crop

                picture, group = crop(image, self.boxes[event.region]).copy(), event.region
            save_example(picture, example_folder(self.examples_dir, group, event.label), wall_time or time.time(),
                         event.id or 0)
        return job

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
        if self.clips is not None:
            out += [("edgecam_events_clips_lost_total", "counter", "Clips that could not be written.",
                     [("", self.clip_failures)]),
                    ("edgecam_events_clip_frames_skipped_total", "counter",
                     "Frames the clip thread had no time for (never the camera's).", [("", self.clips.dropped)]),
                    ("edgecam_events_preroll_bytes", "gauge", "JPEG bytes in the clips' pre-roll ring.",
                     [("", self.clips.ring.bytes)])]
        return out

    def _webhook_failed(self, rule: str) -> None:
        self.webhook_failures[rule] += 1

    def _clip_done(self, clip) -> None:
        """(clips thread) A clip's ``.part`` is whole: named and stored by the writer thread."""
        def job(conn):
            path = media.media_path(self.folder, clip.event, "clip", clip.fmt)
            try:
                media.finish_part(clip.tmp, path)
                self.history.add_media(clip.event, {"clip": path})
            except BaseException:
                clip.tmp.unlink(missing_ok=True)
                path.unlink(missing_ok=True)
                raise
        self.history.submit(job)

    def _clip_failed(self, clip, error: OSError) -> None:
        """(clips thread) A clip could not be written (a full disk): the event keeps its row and snapshot."""
        self.clip_failures += 1
        logger.error("events: the clip of %s (%s) is lost: %s", clip.event.rule, clip.event.label,
                     getattr(error, "strerror", None) or error)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        t, frame = self._last
        for event in self.ruleset.finish(t, frame):
            self._ended(event, "interrupted")  # the run stopped during it: its end is not known
        if self.clips is not None:
            self.clips.close()  # the clips end with the frames they have
        if self.webhooks is not None:
            self.webhooks.close()
            failed = ", ".join(f"{rule} {n}" for rule, n in self.webhook_failures.items() if n)
            if failed:  # the run's summary of what /metrics counted
                logger.warning("events: webhook POSTs given up on in this run, per rule: %s", failed)
        self.history.close()

"""What a rule does when its event starts and ends: one small :class:`Action` per thing a rule can ask for.

A rule's config names its actions (``snapshot``, ``collect``, ``clip``, ``webhook``: the
:class:`edgecam.config.events.EventRuleConfig` field of the same name, :attr:`Action.key`); the events
output (:mod:`edgecam.events.sink`) builds each action some rule wants, once, at start, and calls every
one the same way from the output loop: :meth:`Action.on_start`, :meth:`Action.on_end`,
:meth:`Action.on_frame`, then :meth:`Action.close`; :meth:`Action.metrics` is its part of /metrics.
Nothing here waits for a disk or a network: the work goes to the history's writer thread, the clips'
thread or the webhooks' threads.

``mqtt: true`` needs no action here: every start and end is put on the result
(:attr:`edgecam.result.Extra.RULE_EVENTS`) for the outputs fed after the events output, and the MQTT
output publishes those of the rules that ask for it.

Adding an action (docs/events.md, "Add an event action"): its config field in
:class:`edgecam.config.events.EventRuleConfig`, one subclass here, one line in :data:`ACTIONS`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from edgecam.events import media
from edgecam.events.clips import ClipRecorder
from edgecam.events.rules import EPS_S, Event
from edgecam.events.webhook import Webhooks
from edgecam.model.regions import crop
from edgecam.outputs.overlay import OverlayStats, draw_overlay
from edgecam.outputs.teach import example_folder, save_example
from edgecam.result import EventKind

logger = logging.getLogger(__name__)


class Action:
    """One thing rules do with their events; built by the events output ``sink`` when some rule wants it."""

    #: The rule's config field that asks for it (truthy: this rule wants it).
    key = ""
    #: Whether it needs the pictures (:meth:`on_frame`): the events output then asks the pipeline for them.
    wants_frames = False

    def __init__(self, sink):
        self.sink = sink

    @classmethod
    def wanted(cls, rule) -> bool:
        """Whether the rule (an :class:`edgecam.config.events.EventRuleConfig`) asks for this action."""
        return bool(getattr(rule, cls.key))

    def on_start(self, event: Event, rule) -> None:
        """An event of ``rule`` (which wants this action) started; it has its history id."""

    def on_end(self, event: Event, rule) -> None:
        """An event of ``rule`` (which wants this action) ended (or the run stopped during it)."""

    def on_frame(self, frame, annotated, result, t: float) -> None:
        """An output frame (``annotated``: the overlay on it, None when no output wanted it), at events' time ``t``."""

    def close(self) -> None:
        """The run ends: finish or hand over what is under way."""

    def metrics(self) -> list:
        """This action's part of /metrics, as :meth:`edgecam.events.sink.EventsSink.metrics` lists them."""
        return []


class _NextFrame(Action):
    """An action done on the first frame after an event starts (the one that shows it)."""

    wants_frames = True

    def __init__(self, sink):
        super().__init__(sink)
        self.waiting: list[Event] = []

    def on_start(self, event: Event, rule) -> None:
        self.waiting.append(event)

    def on_frame(self, frame, annotated, result, t: float) -> None:
        waiting, self.waiting = self.waiting, []
        for event in waiting:
            self.sink.history.submit(self.job(event, frame, annotated, result))

    def job(self, event: Event, frame, annotated, result):
        raise NotImplementedError


class SnapshotAction(_NextFrame):
    """The frame an event starts on, with and without the overlay, and its thumbnail (the history's media)."""

    key = "snapshot"

    def on_frame(self, frame, annotated, result, t: float) -> None:
        if self.waiting and annotated is None and self.sink.overlay:
            annotated = self._annotate(frame, result)  # once for every event that starts on this frame
        super().on_frame(frame, annotated, result, t)

    def _annotate(self, frame, result):
        """The overlay on ``frame``, as the pipeline draws it for the outputs that want it on every frame."""
        sink = self.sink
        numbers = OverlayStats() if sink.stats is None else OverlayStats.of(sink.stats, frame, result)
        return draw_overlay(frame.image, result, numbers, sink.top_k, sink.threshold)

    def job(self, event: Event, frame, annotated, result):
        sink, clean = self.sink, frame.image

        def write(conn):
            files = media.write_snapshot(sink.folder, event, clean, annotated, sink.cfg.jpeg_quality)
            try:
                sink.history.add_media(event, files)
            except BaseException:
                for path in files.values():  # no row names them: gone, not left for the repair
                    Path(path).unlink(missing_ok=True)
                raise
        return write


class CollectAction(_NextFrame):
    """The picture (a region's crop) an event starts on, saved as an example of its label (``edgecam learn``)."""

    key = "collect"

    def job(self, event: Event, frame, annotated, result):
        sink, image, wall_time = self.sink, frame.image, frame.wall_time

        def write(conn):
            picture, group = image, event.rule
            if event.region in sink.boxes:  # a region's crop, as edgecam collect saves it
                picture, group = crop(image, sink.boxes[event.region]).copy(), event.region
            save_example(picture, example_folder(sink.examples_dir, group, event.label), wall_time or time.time(),
                         event.id or 0)
        return write


class ClipAction(Action):
    """A video of each event, from ``pre_s`` before its start to ``post_s`` after its end (:mod:`.clips`)."""

    key = "clip"
    wants_frames = True

    def __init__(self, sink):
        super().__init__(sink)
        cfg, rules = sink.cfg, [r for r in sink.cfg.rules if r.clip]
        self.failures = 0
        self._next_t = float("-inf")  # events.clip_fps: the next frame the clips take
        self.recorder = ClipRecorder(sink.folder, max(r.pre_s + r.for_s for r in rules),
                                     int(cfg.pre_roll_mb * 1024 * 1024), cfg.jpeg_quality, sink.clip_format,
                                     self._done, self._failed)

    def on_start(self, event: Event, rule) -> None:
        self.recorder.start(event, rule)

    def on_end(self, event: Event, rule) -> None:
        self.recorder.end(event)

    def on_frame(self, frame, annotated, result, t: float) -> None:
        if t < self._next_t - EPS_S:  # events.clip_fps: the frames in between are not even encoded
            return
        clip_fps = self.sink.cfg.clip_fps
        if clip_fps:  # on a regular grid, unless frames were missing for longer than a step
            step = 1 / clip_fps
            self._next_t = (t if t - self._next_t > step else self._next_t) + step
        self.recorder.frame(t, frame.image, wait=self.sink.file_fps is not None)

    def close(self) -> None:
        self.recorder.close()  # the clips end with the frames they have

    def metrics(self) -> list:
        return [("edgecam_events_clips_lost_total", "counter", "Clips that could not be written.",
                 [("", self.failures)]),
                ("edgecam_events_clip_frames_skipped_total", "counter",
                 "Frames the clip thread had no time for (never the camera's).", [("", self.recorder.dropped)]),
                ("edgecam_events_preroll_bytes", "gauge", "JPEG bytes in the clips' pre-roll ring.",
                 [("", self.recorder.ring.bytes)])]

    def _done(self, clip) -> None:
        """(clips thread) A clip's ``.part`` is whole: named and stored by the writer thread."""
        sink = self.sink

        def job(conn):
            path = media.media_path(sink.folder, clip.event, "clip", clip.fmt)
            try:
                media.finish_part(clip.tmp, path)
                sink.history.add_media(clip.event, {"clip": path})
            except BaseException:
                clip.tmp.unlink(missing_ok=True)
                path.unlink(missing_ok=True)
                raise
        sink.history.submit(job)

    def _failed(self, clip, error: OSError) -> None:
        """(clips thread) A clip could not be written (a full disk): the event keeps its row and snapshot."""
        self.failures += 1
        logger.error("events: the clip of %s (%s) is lost: %s", clip.event.rule, clip.event.label,
                     getattr(error, "strerror", None) or error)


class WebhookAction(Action):
    """A JSON POST of each start and end to the rule's URL (:mod:`.webhook`), retried on its own thread."""

    key = "webhook"

    def __init__(self, sink):
        super().__init__(sink)
        cfg = sink.cfg
        self.hooks = Webhooks(cfg.webhook_timeout_s, cfg.webhook_retries, self._failed)

    def on_start(self, event: Event, rule) -> None:
        self.hooks.post(rule.webhook, rule.name, self.sink.payload(EventKind.START, event))

    def on_end(self, event: Event, rule) -> None:
        self.hooks.post(rule.webhook, rule.name, self.sink.payload(EventKind.END, event))

    def close(self) -> None:
        self.hooks.close()
        failed = ", ".join(f"{rule} {n}" for rule, n in self.sink.webhook_failures.items() if n)
        if failed:  # the run's summary of what /metrics counted
            logger.warning("events: webhook POSTs given up on in this run, per rule: %s", failed)

    def _failed(self, rule: str) -> None:
        self.sink.webhook_failures[rule] += 1  # on /metrics whether or not a rule has a webhook: the sink's


#: Every action a rule can ask for, in the order they are told of a start, an end and a frame.
ACTIONS: tuple[type[Action], ...] = (WebhookAction, SnapshotAction, CollectAction, ClipAction)

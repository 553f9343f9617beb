"""The real-time pipeline: capture thread -> inference thread -> outputs.

::

    capture thread ──frame──► FrameBuffer (latest | every_frame) ──► inference thread(s)
          │                                                               │
          └──frame (latest policy)──► OutputQueue ◄──(frame,) result──────┘
                                            │
                                  output loop (caller's thread): smoothing,
                                  overlay, sinks (window, log, record, HTTP, MQTT)

With the ``latest`` policy the output loop draws every captured frame with the
newest result, so the picture stays smooth when the model is slower than the
camera. With ``every_frame`` each frame reaches the outputs with its own
result, in order. One stop event ends everything; an exception in any thread
is logged, stops the run and becomes its exit code.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from edgecam.camera.capture import CaptureThread, DropPolicy, FrameBuffer, Handoff
from edgecam.errors import EXIT_FAILURE, EXIT_OK, EdgecamError
from edgecam.model.inference import InferenceStage
from edgecam.model.smoothing import Smoother
from edgecam.result import Extra
from edgecam.outputs.overlay import OverlayStats, draw_overlay
from edgecam.pipeline.live import LiveHolder
from edgecam.stats import SourceState, Stats

logger = logging.getLogger(__name__)

TICK_S = 0.1  # how often the output loop wakes with nothing to do (stall checks, watchdog)


class OutKind(StrEnum):
    """What an :class:`OutputQueue` item carries: a frame to show, or a result (with its frame under every_frame)."""

    FRAME = "frame"
    RESULT = "result"


class OutItem(NamedTuple):
    """One item of the :class:`OutputQueue`."""

    kind: OutKind
    frame: object
    result: object


class OutputQueue(Handoff):
    """Frames and results for the output loop.

    Results are never dropped (the log wants each one). Frames are: when the
    outputs fall behind a live camera, the oldest waiting frame is dropped and
    counted, so the display shows the present rather than a growing backlog.
    Items are :class:`OutItem`.
    """

    def __init__(self, max_frames: int = 2, stats: Stats | None = None):
        super().__init__()
        # _frames counts queued items that hold a frame (frame items, and
        # results that carry theirs under every_frame).
        self._frames = 0
        self.max_frames = max_frames
        self.dropped = 0
        self.stats = stats

    def put_frame(self, frame) -> None:
        with self._cond:
            if self._frames >= self.max_frames:
                for i, item in enumerate(self._items):
                    if item.kind is OutKind.FRAME:
                        del self._items[i]
                        self._frames -= 1
                        self.dropped += 1
                        if self.stats is not None:
                            self.stats.frames_output_dropped += 1
                        break
            self._items.append(OutItem(OutKind.FRAME, frame, None))
            self._frames += 1
            self._cond.notify_all()

    def put_result(self, result, frame=None, stop: threading.Event | None = None) -> None:
        """Queue a result; with its ``frame`` (every_frame policy) wait while frames are queued.

        That wait is the backpressure that keeps a file's frames from piling
        up (1 MB each at 640x480) when the outputs are slower than the model.
        """
        with self._cond:
            if frame is not None:
                if not self._wait_for_room(lambda: self._frames >= self.max_frames, stop):
                    return
                self._frames += 1
            self._items.append(OutItem(OutKind.RESULT, frame, result))
            self._cond.notify_all()

    def _taken(self, item) -> None:
        if item.frame is not None:
            self._frames -= 1


@dataclass
class Timings:
    """Per-stage times in ms, kept only when asked for (``edgecam bench``)."""

    decode: deque = field(default_factory=lambda: deque(maxlen=100_000))
    preprocess: deque = field(default_factory=lambda: deque(maxlen=100_000))
    invoke: deque = field(default_factory=lambda: deque(maxlen=100_000))
    postprocess: deque = field(default_factory=lambda: deque(maxlen=100_000))
    overlay: deque = field(default_factory=lambda: deque(maxlen=100_000))
    latency: deque = field(default_factory=lambda: deque(maxlen=100_000))


@dataclass(frozen=True)
class PipelineOptions:
    """How a pipeline runs, fixed for the run (what a reload may change is in :mod:`edgecam.pipeline.live`).

    ``policy``: ``latest`` or ``every_frame``. ``overlay``: draw the overlay for
    outputs that want frames. ``reconnect_max_s``: the longest wait between two
    attempts to reopen a live source. ``stall_timeout_s``: no frame for this
    long marks the source stalled. ``timings``: collect per-stage times (bench).
    """

    policy: DropPolicy = DropPolicy.LATEST
    overlay: bool = True
    reconnect_max_s: float = 30.0
    stall_timeout_s: float = 5.0
    timings: bool = False

    def __post_init__(self):
        object.__setattr__(self, "policy", DropPolicy(self.policy))


class Pipeline:
    """Runs a source through a classifier into outputs until the source ends or :meth:`stop`.

    Args:
        classifier: an :class:`edgecam.model.classifier.Classifier` (or an
            :class:`edgecam.model.regions.RegionClassifier`).
        source: an open :class:`edgecam.camera.FrameSource`.
        outputs: a :class:`edgecam.outputs.FanOut` (already started).
        options: a :class:`PipelineOptions`.
        live: the run's :class:`edgecam.pipeline.live.LiveHolder` (top_k, threshold, class rules,
            smoothing); read once per result and per frame, so a reload's swap reaches every use at once.
        stats: the run's :class:`edgecam.stats.Stats` (a new one when None).
        reopen: callable returning a new source, for recovery of live sources.
        plan: an :class:`edgecam.model.calibration.Plan`: how many interpreters with how many
            threads, or the calibration that measures it; None: the classifier as it is.
        regions: with regions, an :class:`edgecam.model.regions.RegionTracker`: their states
            instead of a whole-picture label.
        tickers: callables ``f(pipeline, now)`` run about every 0.1 s from the
            output loop (watchdog, status); they must not block.
        stage: with several cameras, the run's :class:`edgecam.model.scheduler.SharedStage`: this
            pipeline's frames go to its lane named ``camera`` instead of an inference stage of its own
            (``plan`` is then the stage's).
    """

    def __init__(self, classifier, source, outputs, options: PipelineOptions = PipelineOptions(), *,
                 live: LiveHolder | None = None, stats: Stats | None = None, reopen=None, plan=None,
                 regions=None, tickers: list | None = None, stage=None, camera: str = "main"):
        self.classifier = classifier
        self.source = source
        self.outputs = outputs
        self.options = options
        self.policy = options.policy
        self.stall_timeout_s = options.stall_timeout_s
        self.stats = stats or Stats()
        self.outputs.stats = self.stats
        self.live = live if live is not None else LiveHolder()
        self._live_version, settings = self.live.snapshot()
        self.smoother = Smoother(settings.smoothing, settings.threshold, settings.floors)
        self.regions = regions
        self.timings = Timings() if options.timings else None
        self.tickers = list(tickers or [])
        self.stop_event = threading.Event()
        self.latest_result = None
        self.shown_label: str | None = None
        self.error: BaseException | None = None
        self.reload_requested = False
        self.on_reload = None  # set by the app: called from the output loop on SIGHUP
        #: Less work when hot (an edgecam.health.thermal.ThermalGovernor, set by the app): its interval_s()
        #: is the shortest time between two classified frames; the frames it skips are counted in it.
        self.work_limit = None
        self._last_classified = -math.inf
        self._running_since: float | None = None  # stall checks: when the source was last seen (re)starting
        self._reconnects_seen = 0
        self.camera = camera
        self._own_stage = stage is None
        self._make_threads(source, reopen, plan, stage)

    def _make_threads(self, source, reopen, plan, stage) -> None:
        """The capture thread and the inference stage, or this camera's lane of the shared one (started by :meth:`run`)."""
        policy = self.policy
        self._out = OutputQueue(stats=self.stats)
        self._frames = (FrameBuffer(policy) if stage is None
                        else stage.lane(self.camera, policy, self._deliver, on_end=self._out.close))
        consumers = [self._to_inference]
        if policy is DropPolicy.LATEST:
            consumers.append(self._out.put_frame)
        self._capture = CaptureThread(
            source, consumers, self.stats, self.stop_event, reopen=reopen,
            reconnect_max_s=self.options.reconnect_max_s, on_end=self._frames.close,
            timings=self.timings.decode if self.timings else None,
        )
        # Bookkeeping (stats, timings) happens in the output loop: the inference
        # stage is the pipeline's bottleneck and should only invoke.
        if stage is None:
            stage = InferenceStage(self.classifier, self._frames, self._deliver, self.stop_event,
                                   layout=plan.layout if plan else None,
                                   calibration=plan.observer if plan else None, on_end=self._out.close)
        self.inference = stage
        self._inference = stage.thread

    @property
    def rules(self):
        """The whole picture's class rules now (an :class:`edgecam.model.rules.ClassRules`), or None."""
        return self.live.settings.rules

    @property
    def top_k(self) -> int:
        return self.live.settings.top_k

    @property
    def threshold(self) -> float:
        return self.live.settings.threshold

    def _settings(self):
        """The live settings for this result; after a swap, the smoothing is brought to them first.

        A new smoothing section starts a new smoother (its EMA is of another
        kind); a new threshold or class floors keep the smoother's state.
        """
        version, settings = self.live.snapshot()
        if version != self._live_version:
            self._live_version = version
            if settings.smoothing != self.smoother.cfg:
                self.smoother = Smoother(settings.smoothing, settings.threshold, settings.floors)
            else:
                self.smoother.threshold, self.smoother.floors = settings.threshold, settings.floors or {}
            if self.regions is not None:
                self.regions.retune(settings.smoothing)
        return settings

    def switch_classifier(self, classifier, settings) -> None:
        """(the output loop) Classify the whole picture with ``classifier`` from the next frame, with its
        ``settings`` (its class rules); the smoothing starts again (its state was of the old model's classes)."""
        self.classifier = classifier  # the capture thread prepares the next frame for it
        self.inference.switch_classifier(classifier)
        self.live.swap(settings)
        self._live_version = self.live.version
        self.smoother = Smoother(settings.smoothing, settings.threshold, settings.floors)

    # -- threads ---------------------------------------------------------

    def _to_inference(self, frame) -> None:
        # Preprocess here, in the capture thread, so that it overlaps with the
        # inference of the previous frame (with the latest policy a frame that
        # is then dropped has cost a preprocessing: ~0.2 ms, cheaper than the
        # latency it saves).
        if not self.live.settings.inference:
            return  # paused by a command: nothing classified (the latest policy still shows the frames)
        limit = self.work_limit
        if limit is not None:
            interval = limit.interval_s()
            if interval and frame.timestamp - self._last_classified < interval:
                limit.skipped += 1  # not classified (the outputs still get it with the latest policy)
                return
            self._last_classified = frame.timestamp
        t0 = time.perf_counter()
        tensor = self.classifier.prepare(frame)
        if tensor is None:  # a sensor that classifies (the AI Camera) sent no result with this frame
            self.stats.frames_without_result += 1
            return
        ms = (time.perf_counter() - t0) * 1000
        dropped = self._frames.put((frame, tensor, ms), self.stop_event)
        if dropped:
            self.stats.frames_dropped += dropped

    def _deliver(self, result, frame) -> None:
        self._out.put_result(result, frame if self.policy is DropPolicy.EVERY_FRAME else None, self.stop_event)

    # -- output loop (runs in the caller's thread: GUI toolkits want the main thread)

    def run(self) -> int:
        """Run until the source ends, :meth:`stop` is called or a thread fails. Returns an exit code."""
        self._capture.start()
        self.inference.start()
        try:
            self._output_loop()
        except BaseException as e:
            if not isinstance(e, KeyboardInterrupt):
                logger.exception("output loop failed: %s", e)
            self.error = self.error or e
        finally:
            self.stop_event.set()
            self._shutdown()
        return self.exit_code()

    def exit_code(self) -> int:
        err = self.error or self.inference.error or self._capture.error
        if err is None or isinstance(err, KeyboardInterrupt):
            return EXIT_OK
        if isinstance(err, EdgecamError):
            return err.exit_code
        return EXIT_FAILURE

    def _output_loop(self) -> None:
        next_tick = 0.0
        while not self.stop_event.is_set():
            item = self._out.get(TICK_S)
            now = time.monotonic()
            if now >= next_tick or self.reload_requested:  # a command applies before the next result
                self._tick(now)
                next_tick = now + TICK_S
            if item is None:
                if self._out.ended:
                    return
                continue
            kind, frame, result = item
            if kind is OutKind.RESULT:
                self._handle_result(result)
                if frame is not None:  # every_frame: the frame goes with its own result
                    self._handle_frame(frame)
            else:
                self._handle_frame(frame)

    def _handle_result(self, result) -> None:
        if self.timings is not None:
            self.timings.preprocess.append(result.preprocess_ms)
            self.timings.invoke.append(result.inference_ms)
            self.timings.postprocess.append(result.extra.get(Extra.POSTPROCESS_MS, 0.0))
            self.timings.latency.append(result.latency_ms)
        settings = self._settings()
        if self.regions is not None:
            self._handle_regions(result)
            return
        if settings.rules is not None:  # denied labels are never shown, listed or published
            result = dataclasses.replace(result, scores=settings.rules.mask(result.scores))
        top = result.top
        self.stats.result_ready(result.inference_ms, result.result_time, top.name, top.score, result.capture_time)
        result, event = self.smoother.update(result)
        self.latest_result = result
        self.shown_label = self.smoother.label
        if event is not None:
            result.extra[Extra.LABEL_CHANGE] = event  # so that a log line can carry it
        self.outputs.on_result(result)
        if event is not None:
            logger.debug("label: %s (%.2f)", event.label, event.score)
            self.outputs.on_event(event)

    def _handle_regions(self, result) -> None:
        """A result of regions: their states (rules, hysteresis) into the result, an event per change."""
        states, events = self.regions.update(result)
        result = dataclasses.replace(result, regions=states)
        if events:
            result.extra[Extra.REGION_CHANGES] = events  # so that a log line can carry them
        self.stats.regions_ready(result.inference_ms, result.result_time, states,
                                 len(result.extra.get(Extra.REGION_RESULTS) or ()), result.capture_time)
        self.latest_result = result
        self.outputs.on_result(result)
        for event in events:
            logger.debug("region %s: %s (%.2f)", event.region, event.label, event.score)
            self.outputs.on_event(event)

    def _handle_frame(self, frame) -> None:
        now = time.monotonic()
        self.stats.frame_output(now)
        annotated = None
        if self.outputs.wants_frames and self.options.overlay and getattr(self.outputs, "wants_overlay", True):
            t0 = time.perf_counter()
            result = self.latest_result
            settings = self.live.settings  # top_k and threshold of one version
            annotated = draw_overlay(frame.image, result, OverlayStats.of(self.stats, frame, result, now),
                                     settings.top_k, settings.threshold, self.shown_label)
            if self.timings is not None:
                self.timings.overlay.append((time.perf_counter() - t0) * 1000)
        if self.outputs.wants_frames:
            self.outputs.on_frame(frame, annotated, self.latest_result)

    def _tick(self, now: float) -> None:
        st = self.stats
        # The capture thread owns capture_state; this loop owns stalled_at (one writer each).
        state = st.capture_state
        # The stall clock starts again when the source (re)starts: right after a reconnect
        # the last frame is old, yet the new source has had no time to deliver one.
        if state != SourceState.RUNNING or st.reconnects != self._reconnects_seen:
            self._running_since = None
            self._reconnects_seen = st.reconnects
            st.stalled_at = None  # that source is gone; the capture thread says what happens now
        if state == SourceState.RUNNING and self._running_since is None:
            self._running_since = now
        waiting_since = max(st.last_frame_time, self._running_since or 0.0)
        if state == SourceState.RUNNING and st.stalled_at is None and now - waiting_since > self.stall_timeout_s:
            st.stalled_at = self._reconnects_seen
            logger.warning("source %s: no frame for %.1f s", self.source.name, now - waiting_since)
        elif st.stalled_at is not None and st.flowing(self.stall_timeout_s, now):
            st.stalled_at = None
            logger.warning("source %s: frames flowing again", self.source.name)
        fatal = self.outputs.fatal()  # e.g. MQTT: bad credentials, retrying won't help
        if fatal is not None:
            sink, error = fatal
            if error.logged:
                logger.error("output %s cannot go on; stopping", sink.name)
            else:
                logger.error("output %s: %s; stopping", sink.name, error.message)
            self.error = error
            self.stop_event.set()
            return
        if self.reload_requested:
            self.reload_requested = False
            if self.on_reload:
                self.on_reload()
        for ticker in self.tickers:
            try:
                ticker(self, now)
            except Exception as e:
                logger.exception("ticker %r failed: %s", ticker, e)

    def stop(self) -> None:
        """Ask every thread to finish (safe from signal handlers and other threads)."""
        self.stop_event.set()

    def _shutdown(self) -> None:
        self._frames.close()
        self._out.close()
        # A shared stage goes on for the other cameras: the run that made it joins it.
        for t in (self._capture, self._inference) if self._own_stage else (self._capture,):
            if t.is_alive():
                t.join(timeout=1.0)
                if t.is_alive():
                    logger.warning("thread %s did not stop within 1 s", t.name)
        self.outputs.close()
        if not self.error:
            self.error = self.inference.error or self._capture.error
        if self.outputs.failure is not None and not self.error:
            self.error = self.outputs.failure  # an output was lost: the run says so in its exit code

"""Live counters of a running pipeline, read by the overlay, bench, HTTP and notify.

Writers are the pipeline threads, and each field has exactly one writer thread
(tests check it): the capture thread writes what it sees of the source
(``capture_state``, frame counts), the output loop what it decides from them
(``stalled_at``, results). Readers take a :meth:`Stats.snapshot`. Plain
attribute writes are atomic in CPython, and a lock guards the few compound
updates.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

# Prometheus-style histogram buckets for inference time, in milliseconds.
INFERENCE_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


class SourceState(StrEnum):
    """Where the source is. The capture thread alone writes :attr:`Stats.capture_state`
    (every state but ``stalled``); ``stalled`` is derived from what the output loop saw."""

    STARTING = "starting"
    RUNNING = "running"
    STALLED = "stalled"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    FAILED = "failed"


class RateMeter:
    """Events per second over a sliding window of recent event times."""

    def __init__(self, window_s: float = 2.0):
        self.window_s = window_s
        self._times: deque[float] = deque()

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._times.append(now)
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        times = list(self._times)  # a copy: the capture thread appends meanwhile
        # The times are in order: a binary search finds the first inside the window (the output
        # loop asks twice a frame, and a comprehension over 2 s of 100 fps cost ~15 us each time).
        first = bisect.bisect_left(times, now - self.window_s)
        n = len(times) - first
        if n < 2:
            return 0.0
        span = times[-1] - times[first]
        return (n - 1) / span if span > 0 else 0.0


@dataclass
class Histogram:
    """A cumulative histogram (Prometheus semantics) of millisecond values."""

    buckets: tuple = INFERENCE_BUCKETS_MS
    counts: list = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self):
        self.counts = [0] * len(self.buckets)

    def observe(self, value_ms: float) -> None:
        for i, b in enumerate(self.buckets):
            if value_ms <= b:
                self.counts[i] += 1
        self.total += value_ms
        self.n += 1


class Stats:
    """Counters and gauges of one pipeline run."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.frames_captured = 0  # frames the source produced
        self.frames_dropped = 0  # captured but never classified (latest-frame policy)
        self.frames_output_dropped = 0  # captured but never drawn: the outputs fell behind a live source
        self.frames_inferred = 0
        # Frames a sensor that runs the network itself (the AI Camera) sent without a
        # result (while its network loads, or between its inferences): shown, not classified.
        self.frames_without_result = 0
        self.frames_output = 0  # frames drawn/handed to sinks
        self.reconnects = 0
        # Written by the capture thread only (CaptureThread._set_state): never STALLED.
        self.capture_state = SourceState.STARTING
        # Written by the output loop only: the value of ``reconnects`` when it found the
        # running source stalled (no frame for the timeout), None while frames flow. Tied
        # to the reconnect count so a stall of the previous source never outlives it.
        self.stalled_at: int | None = None
        self.last_frame_time = 0.0  # monotonic time of the newest captured frame
        self.last_result_capture = 0.0  # capture time (monotonic) of the newest result's frame: its staleness
        self.current_label = ""
        self.current_score = 0.0
        self.inference_ms = Histogram()
        self.capture_rate = RateMeter()
        self.inference_rate = RateMeter()
        self.output_rate = RateMeter()
        # With regions (written by the output loop): name -> (state, score), and classifications per region.
        self.region_states: dict[str, tuple[str | None, float]] = {}
        self.region_classified: dict[str, int] = {}
        self.sink_errors: dict[str, str] = {}
        self.extra: dict[str, dict] = {}  # per-sink status, e.g. {"mqtt": {...}}
        #: Outputs with metrics of their own (the events' per-rule counters): callables returning
        #: [(name, "counter"|"gauge", help, [(labels text, value), ...]), ...] for /metrics.
        self.metric_sources: list = []

    @property
    def source_state(self) -> SourceState:
        """The capture thread's state, or STALLED when the output loop found the running source stalled."""
        state = self.capture_state
        if state == SourceState.RUNNING and self.stalled_at is not None and self.stalled_at == self.reconnects:
            return SourceState.STALLED
        return state

    def frame_captured(self, t: float) -> None:
        self.frames_captured += 1
        self.last_frame_time = t
        self.capture_rate.tick(t)

    def result_ready(self, inference_ms: float, t: float, label: str, score: float,
                     capture_t: float | None = None) -> None:
        """A result at ``t`` (monotonic) of a frame captured at ``capture_t``."""
        with self.lock:
            self.frames_inferred += 1
            if capture_t:
                self.last_result_capture = capture_t
            self.inference_ms.observe(inference_ms)
            self.current_label = label
            self.current_score = score
        self.inference_rate.tick(t)

    def regions_ready(self, inference_ms: float, t: float, states: dict, classified: int,
                      capture_t: float | None = None) -> None:
        """A result of regions: ``states`` (name -> RegionState); ``classified`` regions were invoked for it."""
        with self.lock:
            self.frames_inferred += 1
            if capture_t:
                self.last_result_capture = capture_t
            if classified:
                self.inference_ms.observe(inference_ms)
            self.region_states = {n: (s.label, s.score) for n, s in states.items()}
            for n, s in states.items():
                if s.classified:
                    self.region_classified[n] = self.region_classified.get(n, 0) + 1
            self.current_label = ", ".join(f"{n} {s.label}" for n, s in states.items())
            self.current_score = 0.0
        self.inference_rate.tick(t)

    def frame_output(self, t: float) -> None:
        self.frames_output += 1
        self.output_rate.tick(t)

    def flowing(self, timeout_s: float, now: float | None = None) -> bool:
        """True while frames arrived within the last ``timeout_s`` seconds."""
        now = time.monotonic() if now is None else now
        return self.last_frame_time > 0 and now - self.last_frame_time <= timeout_s

    def snapshot(self) -> dict:
        """A consistent copy of everything, as plain data."""
        now = time.monotonic()
        with self.lock:
            return {
                "uptime_s": now - self.started,
                "frames_captured": self.frames_captured,
                "frames_dropped": self.frames_dropped,
                "frames_output_dropped": self.frames_output_dropped,
                "frames_inferred": self.frames_inferred,
                "frames_without_result": self.frames_without_result,
                "frames_output": self.frames_output,
                "reconnects": self.reconnects,
                "source_state": self.source_state,
                "seconds_since_frame": (now - self.last_frame_time) if self.last_frame_time else None,
                # Staleness: how old what the outputs show is (capture of the newest result's frame to now).
                "result_age_s": max(0.0, now - self.last_result_capture) if self.last_result_capture else None,
                "capture_fps": self.capture_rate.rate(now),
                "inference_fps": self.inference_rate.rate(now),
                "output_fps": self.output_rate.rate(now),
                "current_label": self.current_label,
                "current_score": self.current_score,
                "inference_ms_buckets": list(zip(self.inference_ms.buckets, self.inference_ms.counts)),
                "inference_ms_sum": self.inference_ms.total,
                "inference_ms_count": self.inference_ms.n,
                "region_states": dict(self.region_states),
                "region_classified": dict(self.region_classified),
                "sink_errors": dict(self.sink_errors),
                "extra": {k: dict(v) for k, v in self.extra.items()},
            }

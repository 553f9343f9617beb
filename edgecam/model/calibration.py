"""``threads: auto``: measure the interpreter layouts on this machine, in the run, and keep the best.

A *layout* is how many interpreters run side by side (each in its own
inference thread, so that as many frames are in flight) and how many threads
each one has. The candidates are one interpreter with 1..cores threads, two
interpreters with 1..cores/2 threads each, and (two cores or more) three
interpreters of one thread. Three on two cores is not oversubscription for
nothing: the capture and output threads take their turns on the same cores,
and a third frame in flight keeps a core busy meanwhile. Measured on AMD EPYC,
2 cores, MobileNetV3-Small, the shared clip, paired runs of 1,500 frames:
3 x 1 gave 168 frames/s against 151 for 2 x 1, for less CPU per frame (11.2
against 12.1 ms) and 8.5 MB more memory; with another process spinning on one
core, 116-126 against 98-104 (the peers' loop: 91-96). Four gave no more than three.

What "best" means for the run about to happen (a file's throughput, a camera's least CPU per
frame that keeps up, several cameras' quickest): :mod:`edgecam.model.layout_choice`.

The measurement happens in the run itself, on its first frames, with the real
stages: the capture thread decodes and preprocesses beside the invokes and the
output loop draws, exactly as they will for the rest of the run. After each
window of results the pipeline switches to the next layout; once each
candidate has been measured :data:`ROUNDS` times, in interleaved order so that
a burst of load from other programs hits them alike, it keeps the best.
Frames measured are classified and shown like any other: nothing waits.
The choice and what was measured are cached beside the model file, per
machine (CPU model, cores), model file (name, size, mtime), runtime and
version, and policy (with the camera's rate), so that later runs start at once
with the right layout. ``edgecam bench --sweep`` measures again.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgecam.atomic import write_atomic
from edgecam.camera.capture import DropPolicy
from edgecam.model.layout_choice import (  # noqa: F401 (choose, Measurement and the limits: part of this API)
    KEEP_UP, KEEP_UP_CAMERAS, LATENCY_TOLERANCE, TOLERANCE, Measurement, choose, median_of)
from edgecam.model.recheck import OthersMeter, Recheck, busy_seconds
from edgecam.model.timing import percentile
from edgecam.model.runtime import available_cores, runtime_version

logger = logging.getLogger(__name__)

ROUNDS = 3  # each candidate is measured this many times; its medians decide
MAX_INTERPRETERS = 3  # candidates: 1, 2 or 3 interpreters side by side (memory: one model's each)
# Results skipped after a switch (the frame queue refills, frames still in
# flight on the previous layout come out; at least as many as the most
# interpreters measured), then results measured.
SETTLE = {DropPolicy.EVERY_FRAME: 4, DropPolicy.LATEST: 2}
WINDOW = {DropPolicy.EVERY_FRAME: 20, DropPolicy.LATEST: 15}
# ...and a window lasts at least this long: 20 results of a file are 0.15 s at 130 frames/s, where the
# scheduler's turns decide more than the layout. Measured with a process spinning on one of 2 cores
# (AMD EPYC): windows of 20 results put 3 x 1 at 103-109/s and 1 x 1 at 95-100 (once within the 3 %
# that counts as a tie, and 1 x 1 was kept), windows of 150 put them at 118-123 and 88-97, as whole
# runs of each (116-126 and 87-100). A camera's 15 results at 30 frames/s take 0.5 s anyway.
MIN_WINDOW_S = 0.5
CACHE_SUFFIX = ".threads.json"
CACHE_VERSION = 2  # 2: three interpreters became a candidate; a choice made without it is measured again


@dataclass(frozen=True, order=True)
class Layout:
    """``interpreters`` interpreters side by side, ``threads`` threads each."""

    interpreters: int
    threads: int

    def __str__(self) -> str:
        return f"{self.interpreters}x{self.threads}"

    def describe(self) -> str:
        i, t = self.interpreters, self.threads
        return f"{i} interpreter{'s' if i > 1 else ''} x {t} thread{'s' if t > 1 else ''}"

    @classmethod
    def parse(cls, text: str) -> Layout:
        i, t = (int(v) for v in str(text).split("x"))
        if i < 1 or t < 1:
            raise ValueError(f"bad layout {text!r}")
        return cls(i, t)


def candidates(cores: int, interpreters: int | None = None) -> list[Layout]:
    """The layouts to measure on ``cores`` cores (``interpreters`` fixed, or 1 to 3; see the module's docstring).

    ``i`` interpreters get 1..cores/i threads each (at least one); up to one interpreter more than the
    cores, and one core measures one interpreter only (nothing else runs while it invokes).
    """
    cores = max(1, cores)
    if interpreters:
        counts = [interpreters]
    elif cores == 1:
        counts = [1]
    else:
        counts = range(1, min(cores + 1, MAX_INTERPRETERS) + 1)
    out = []
    for i in counts:
        out += [Layout(i, t) for t in range(1, max(1, cores // i) + 1)]
    return out


class Calibration:
    """Drives the in-run measurement: which layout to run now, when to switch, what to keep.

    The inference stage calls :meth:`observe` with each result, in capture
    order; when it returns a layout, the stage switches to it. ``clock`` and
    ``cpu_clock`` are injectable (seconds; wall and process CPU time).
    ``on_done(calibration)`` is called once the choice is made. ``offered()``: the frames handed to the stage
    so far, classified or dropped (several cameras: their frame numbers are each their own, so the share
    classified is counted from the stage's lanes, not from frame numbers). ``cameras``: see :func:`choose`.
    """

    def __init__(self, layouts: list[Layout], policy: str, *, rounds: int = ROUNDS, settle: int | None = None,
                 window: int | None = None, clock=time.perf_counter, cpu_clock=time.process_time, on_done=None,
                 offered=None, cameras: int = 1, min_window_s: float = MIN_WINDOW_S):
        if not layouts:
            raise ValueError("no layout to measure")
        self.layouts = list(layouts)
        self.policy = policy
        in_flight = max(lay.interpreters for lay in self.layouts)  # frames of the previous layout still coming out
        self.settle = max(in_flight, settle if settle is not None else SETTLE.get(policy, 4))
        self.window = max(2, window if window is not None else WINDOW.get(policy, 20))
        self.min_window_s = min_window_s
        self.clock = clock
        self.cpu_clock = cpu_clock
        self.on_done = on_done
        self.offered = offered
        self.cameras = cameras
        # Interleaved: forwards, backwards, forwards... so that slow drifts in
        # the machine's load weigh on every layout alike.
        self.schedule = [lay for r in range(rounds) for lay in (self.layouts if r % 2 == 0 else self.layouts[::-1])]
        self.windows: dict[Layout, list[Measurement]] = {lay: [] for lay in self.layouts}
        self.chosen: Layout | None = None
        self.results_seen = 0
        self._pos = 0
        self._count = 0
        self._start: tuple[float, float, int] = (0.0, 0.0, 0)
        self._latencies: list[float] = []

    @property
    def layout(self) -> Layout:
        """The layout to run now."""
        return self.chosen if self.chosen is not None else self.schedule[self._pos]

    @property
    def done(self) -> bool:
        return self.chosen is not None

    @property
    def frames_needed(self) -> int:
        """Results the whole calibration takes at least (more when a window's results come in under
        ``min_window_s``)."""
        return len(self.schedule) * (self.settle + self.window)

    def observe(self, result) -> Layout | None:
        """Count one result; return the layout to switch to when it changes now."""
        if self.chosen is not None:
            return None
        self.results_seen += 1
        self._count += 1
        n = self._count
        if n < self.settle:
            return None
        if n == self.settle:
            self._start = (self.clock(), self.cpu_clock(),
                           self.offered() if self.offered is not None else result.frame_index)
            self._latencies = []
            return None
        self._latencies.append(result.latency_ms)
        if n < self.settle + self.window:
            return None
        t0, c0, first = self._start
        dt = self.clock() - t0
        if dt < self.min_window_s:
            return None
        cpu = self.cpu_clock() - c0
        counted = n - self.settle
        # frames captured meanwhile, classified or dropped
        span = max(1, (self.offered() if self.offered is not None else result.frame_index) - first)
        m = Measurement(fps=counted / dt if dt > 0 else float("inf"), cpu_ms=cpu * 1000 / counted,
                        latency_p50=percentile(self._latencies, 50), latency_p95=percentile(self._latencies, 95),
                        inferred=min(1.0, counted / span))
        before = self.layout
        self.windows[before].append(m)
        self._pos += 1
        self._count = 0
        if self._pos == len(self.schedule):
            self.chosen = choose(self.policy, self.summary(), self.cameras)
            if self.on_done is not None:
                self.on_done(self)
        after = self.layout
        return after if after != before else None

    def summary(self) -> dict[Layout, Measurement]:
        """Each measured layout's medians."""
        return {lay: median_of(ws) for lay, ws in self.windows.items() if ws}


# -- the machine and the cache ------------------------------------------------


def cpu_model() -> str:
    """The CPU's name as ``lscpu`` shows it ("AMD EPYC", "Cortex-A72", ...), or the board's."""
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep:
                    fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    # x86: "model name"; Raspberry Pi kernels: "Model" is the board; other ARM: the CPU part number.
    for key in ("model name", "model", "hardware"):
        if fields.get(key):
            return fields[key]
    if fields.get("cpu part"):
        return f"{fields.get('cpu implementer', '?')}:{fields['cpu part']}"
    return platform.processor() or platform.machine() or "unknown"


def cache_key(model_path: str | Path, runtime: str, policy: str, fps: float | None = None,
              cores: int | None = None) -> dict:
    """What a cached calibration is valid for; any change means measuring again."""
    st = os.stat(model_path)
    return {
        "cpu": cpu_model(),
        "cores": cores or available_cores(),
        "model": Path(model_path).name,
        "model_size": st.st_size,
        "model_mtime_ns": st.st_mtime_ns,
        "runtime": runtime,
        "runtime_version": runtime_version(runtime),
        "policy": policy,
        # A camera's rate decides whether a layout keeps up; a file's does not matter.
        "fps": round(fps, 1) if (policy == DropPolicy.LATEST and fps) else None,
    }


def cache_path(model_path: str | Path) -> Path:
    """Where a model's calibrations live: ``<model file>.threads.json`` beside it."""
    p = Path(model_path)
    return p.with_name(p.name + CACHE_SUFFIX)


def _key_text(key: dict) -> str:
    return json.dumps(key, sort_keys=True)


def load_cached(model_path: str | Path, key: dict) -> dict | None:
    """The cached record for ``key``, or None (absent, unreadable, other machine, model or runtime)."""
    path = cache_path(model_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        record = data["entries"][_key_text(key)] if data.get("version") == CACHE_VERSION else None
        if record is not None:
            Layout.parse(record["layout"])  # a damaged record is as good as none
        return record
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        logger.debug("threads auto: no usable calibration in %s (%s)", path, e)
        return None


def save_cached(model_path: str | Path, key: dict, layout: Layout, measured: dict[Layout, Measurement],
                *, how: str, samples: dict[Layout, list[Measurement]] | None = None,
                other_cores: float | None = None) -> Path | None:
    """Record ``layout`` and what was measured for ``key``; returns the file, or None when it cannot be written.

    A read-only model folder (a user's, or outside a service's StateDirectory)
    is fine: the calibration is then simply measured again next time.
    """
    path = cache_path(model_path)
    record = {
        "layout": str(layout),
        "how": how,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        # The cores other programs kept busy meanwhile (None: unknown): a run beside another load measures
        # again (edgecam.model.recheck); edgecam bench --sweep always does.
        "other_cores": round(other_cores, 2) if other_cores is not None else None,
        "key": key,
        "measured": {str(lay): {k: round(v, 3) for k, v in asdict(m).items()} for lay, m in sorted(measured.items())},
    }
    if samples:
        record["samples"] = {str(lay): [{k: round(v, 3) for k, v in asdict(m).items()} for m in ms]
                             for lay, ms in sorted(samples.items())}
    try:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            entries = data.get("entries", {}) if data.get("version") == CACHE_VERSION else {}
            if not isinstance(entries, dict):
                entries = {}
        except (OSError, ValueError, AttributeError):
            entries = {}
        # Entries for another version of this model file are stale; other machines' stay
        # (a model folder may be shared).
        same_model = ("model", "model_size", "model_mtime_ns")
        entries = {k: v for k, v in entries.items()
                   if isinstance(v, dict) and all(v.get("key", {}).get(f) == key[f] for f in same_model)}
        entries[_key_text(key)] = record
        text = json.dumps({"version": CACHE_VERSION, "entries": entries}, indent=1) + "\n"
        write_atomic(path, text.encode("utf-8"))
    except OSError as e:
        logger.debug("threads auto: not caching the calibration in %s (%s); it will be measured again next run",
                     path.parent, e.strerror or e)
        return None
    return path


# -- what a run does ----------------------------------------------------------


@dataclass
class Plan:
    """How a run picks its layout: ``how`` is explicit, cached, measuring or single-core.

    ``watch``: with ``threads: auto``, the :class:`edgecam.model.recheck.Recheck` that keeps
    watching after the choice and measures again when the throughput falls; the stage observes
    :attr:`observer` (the watch, else the calibration).
    """

    layout: Layout
    how: str
    calibration: Calibration | None = None
    cache_file: Path | None = None
    measured: dict = field(default_factory=dict)  # a cached record's figures, for reports
    watch: object = None

    @property
    def observer(self):
        """What the inference stage hands each result to (None: nothing to measure)."""
        return self.watch if self.watch is not None else self.calibration


def _when_chosen(model_path, key: dict | None, others: OthersMeter | None):
    """What a calibration does once it chose: cache the choice (with the other programs' CPU use meanwhile)
    and say what it measured."""
    def finished(cal: Calibration) -> None:
        summary = cal.summary()
        beside = others.cores("calibration") if others is not None else None
        where = save_cached(model_path, key, cal.chosen, summary, how="in-run", samples=cal.windows,
                            other_cores=beside) if key else None
        figures = ", ".join(f"{lay} {m.fps:.0f}/s {m.cpu_ms:.2f} CPU ms" for lay, m in sorted(summary.items()))
        logger.info("threads auto: chose %s after %d frames (%s)%s", cal.chosen.describe(), cal.results_seen,
                    figures, f"; cached in {where}" if where else "")

    return finished


def plan(model_cfg, classifier, policy: str, fps: float | None = None, *, cores: int | None = None,
         clock=time.perf_counter, cpu_clock=time.process_time, cameras: int = 1, offered=None,
         others: OthersMeter | None = None) -> Plan:
    """Decide how the run about to start gets its layout.

    Explicit ``model.threads`` (and ``model.interpreters``, default 1) are used as
    given. With ``threads: auto``: the cached choice for this machine, model,
    runtime and policy when there is one, else a :class:`Calibration` that
    measures the candidates over the run's first frames and caches its choice.
    ``cameras``: how many cameras the stage serves (several: every frame must be classified, and the
    choice is cached apart); ``offered``: the stage's frames so far (:class:`Calibration`); ``others``: the
    meter of the other programs' CPU use (default: ``/proc/stat``'s; a cached choice made beside another
    load is measured again once the run sees it, :class:`edgecam.model.recheck.Recheck`).
    """
    cores = cores or available_cores()
    fixed_i = None if model_cfg.interpreters == "auto" else int(model_cfg.interpreters)
    if model_cfg.threads != "auto":
        return Plan(Layout(fixed_i or 1, int(model_cfg.threads)), "explicit")
    layouts = candidates(cores, fixed_i)
    if len(layouts) == 1:
        return Plan(layouts[0], "single candidate")
    model_path = classifier.model_path
    try:
        key = cache_key(model_path, classifier.runtime, policy, fps, cores)
        if cameras > 1:  # another load: cached apart (one camera's entries keep their key)
            key["cameras"] = cameras
    except OSError as e:  # the model file vanished after loading: measure, don't cache
        logger.debug("threads auto: cannot key the calibration on %s (%s)", model_path, e)
        key = None
    record = load_cached(model_path, key) if key else None

    if others is None and busy_seconds() is not None:
        others = OthersMeter()
    finished = _when_chosen(model_path, key, others)

    def new_calibration() -> Calibration:
        # Several cameras: windows as many times longer (each window sees every camera's frames alike).
        per = max(1, cameras)
        return Calibration(layouts, policy, clock=clock, cpu_clock=cpu_clock, on_done=finished, offered=offered,
                           cameras=cameras, settle=SETTLE.get(policy, 4) * per, window=WINDOW.get(policy, 20) * per)

    if record is not None:
        layout = Layout.parse(record["layout"])
        logger.info("threads auto: %s (measured %s on this machine, %s policy; cached in %s)",
                    layout.describe(), record.get("measured_at", "?"), policy, cache_path(model_path))
        measured = record.get("measured", {})
        expected = measured.get(str(layout), {}).get("fps") if isinstance(measured, dict) else None
        then = record.get("other_cores")
        return Plan(layout, "cached", cache_file=cache_path(model_path), measured=measured,
                    watch=Recheck(None, layout, expected, new_calibration, others=others,
                                  others_then=then if isinstance(then, (int, float)) else None))

    cal = new_calibration()
    logger.info("threads auto: measuring %s over the first ~%d frames (%s policy, %d cores)",
                ", ".join(str(lay) for lay in layouts), cal.frames_needed, policy, cores)
    return Plan(cal.layout, "measuring", calibration=cal, cache_file=cache_path(model_path) if key else None,
                watch=Recheck(cal, cal.layout, None, new_calibration, others=others))


def decide_layout(model_cfg, classifier, policy: str, fps: float | None = None, **kw) -> Plan | None:
    """The one place a run's interpreter layout is decided: how many interpreters, how many threads each.

    A CPU :class:`edgecam.model.classifier.Classifier` (the whole picture) gets
    a :func:`plan`: ``model.threads`` / ``model.interpreters`` as configured,
    else the cached choice for this machine, else a measurement in the run.
    Anything else (regions, an accelerator) runs as it was loaded: None.
    ``kw``: :func:`plan`'s (cores, clocks). The inference stage applies the
    plan's layout; the interpreter is rebuilt only when the layout's threads
    differ from the ones it was loaded with.
    """
    # Duck-typed: importing the classifier here would load the registry into `edgecam --help`
    # (commands.bench imports this module).
    if getattr(classifier, "backend", None) != "cpu" or not hasattr(classifier, "reconfigure"):
        return None
    return plan(model_cfg, classifier, policy, fps, **kw)


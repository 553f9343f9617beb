"""``edgecam bench``: the pipeline's speed and cost on a video file, measured.

It runs the real pipeline headless with the ``every_frame`` policy (and the
overlay drawn, as a display would need) and prints frames per second, invoke
time percentiles, per-stage times, CPU time per frame, dropped frames and peak
RSS. CPU per frame comes twice: *steady* (the frames after the first
:data:`WARMUP_FRAMES`, and after ``threads: auto`` finished measuring) and
*with load* (the whole process: imports, model load, start-up, divided by the
frames). ``--peer-loop`` runs instead the single loop of the TensorFlow Lite
and MediaPipe Raspberry Pi examples (read, convert, stretch-resize, invoke,
draw, repeat) with the same model, runtime and threads, for a side-by-side
figure. ``--sweep`` runs the pipeline with each interpreter layout
``threads: auto`` chooses from, interleaved, prints the table and caches the
choice (:mod:`edgecam.model.calibration`).

This module measures; :mod:`edgecam.commands.bench` is the command line.
"""

from __future__ import annotations

import dataclasses
import time

import cv2
import numpy as np

from edgecam.model import calibration
from edgecam.config import schema as config_mod
from edgecam.errors import ConfigError, SourceError
from edgecam.model.timing import cpu_seconds, peak_rss_mb, percentile
from edgecam.model.backends import load_classifier
from edgecam.model.recheck import OthersMeter, busy_seconds
from edgecam.model.runtime import available_cores, runtime_version
from edgecam.outputs.base import Sink
from edgecam.pictures import opencv_path

WARMUP_FRAMES = 30  # frames left out of the steady-state figures (at most a fifth of a short run)


class _SteadyClock:
    """Wall and CPU time at the start of the steady state and at the last frame."""

    def __init__(self, limit: int | None):
        self.warm = min(WARMUP_FRAMES, limit // 5) if limit else WARMUP_FRAMES
        self.settled_at: int | None = None
        self.start: tuple[int, float, float] | None = None  # (frames so far, wall, cpu)
        self.last: tuple[int, float, float] | None = None

    def tick(self, frames: int, settled: bool = True) -> None:
        now = (frames, time.perf_counter(), cpu_seconds())
        if not settled:  # (again) measuring layouts: the steady state starts after, from the last measurement
            self.start = self.settled_at = None
        if self.start is None:
            if settled and self.settled_at is None:
                self.settled_at = frames
            # A few frames more after a calibration's last switch: its interpreters were just built.
            if self.settled_at is not None and frames >= max(self.warm, self.settled_at + (5 if self.settled_at else 0)):
                self.start = now
        self.last = now

    def figures(self) -> dict:
        """Steady frames, frames/s and CPU ms per frame (None when the run ended before it was steady)."""
        if self.start is None or self.last is None or self.last[0] <= self.start[0]:
            return {"steady_frames": 0, "fps_steady": None, "cpu_ms_per_frame_steady": None}
        n = self.last[0] - self.start[0]
        wall, cpu = self.last[1] - self.start[1], self.last[2] - self.start[2]
        return {"steady_frames": n, "fps_steady": round(n / wall, 2) if wall > 0 else 0.0,
                "cpu_ms_per_frame_steady": round(cpu / n * 1000, 3)}


class _FrameCounter(Sink):
    """A sink that wants frames (so the overlay is drawn) and counts them; stops after N frames."""

    name = "bench"
    wants_frames = True

    def __init__(self, limit: int | None, stop, settled=lambda: True):
        self.limit = limit
        self.stop = stop
        self.settled = settled
        self.frames = 0
        self.clock = _SteadyClock(limit)

    def on_frame(self, frame, annotated, result):
        self.frames += 1
        self.clock.tick(self.frames, self.settled())
        if self.limit and self.frames >= self.limit:
            self.stop()


def _run_pipeline(cfg: config_mod.Config, frames: int | None):
    """Run the pipeline on ``cfg.source``; returns (figures, the App)."""
    # memory: here, so that the peers' loop (bench_peer_loop) reports its peak RSS without the pipeline's modules
    from edgecam.pipeline.app import App

    holder = {}

    def settled() -> bool:
        app = holder.get("app")
        plan = app.plan if app is not None else None
        if plan is None:
            return True
        watch = plan.observer  # a Recheck measures again when the load changes: not steady meanwhile
        return watch is None or watch.done

    counter = _FrameCounter(frames, lambda: holder["app"].pipeline.stop(), settled)
    t_load = time.perf_counter()
    app = App(cfg, extra_sinks=[counter], timings=True, display_override=False)
    holder["app"] = app
    load_s = time.perf_counter() - t_load
    cpu1, t0 = cpu_seconds(), time.perf_counter()
    code = app.run()
    wall = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu1
    total_cpu = cpu_seconds()  # the whole process so far: imports, model load, start-up, the run
    res = _pipeline_figures(app, counter, wall, cpu, total_cpu)
    res.update(load_s=round(load_s, 3), exit_code=code)
    res.update(_calibration_figures(app.plan))
    return res, app


def _pipeline_figures(app, counter: _FrameCounter, wall: float, cpu: float, total_cpu: float) -> dict:
    """What a pipeline run measured: frames, fps, stage times, CPU per frame, memory, the layout."""
    tm = app.pipeline.timings
    s = app.stats.snapshot()
    n = counter.frames
    plan = app.plan
    layout = app.pipeline.inference.layout
    return {
        "mode": "pipeline",
        "policy": app.pipeline.policy,
        "model": app.classifier.name,
        "backend": getattr(app.classifier, "backend", "cpu"),
        "runtime": app.classifier.runtime,
        "threads": app.classifier.threads,
        "interpreters": layout.interpreters if layout else 1,
        "layout": str(layout) if layout else f"1x{app.classifier.threads}",
        "layout_from": plan.how if plan else "classifier",
        "frames": n,
        "frames_inferred": s["frames_inferred"],
        "frames_without_result": s["frames_without_result"],
        # An accelerator's own time per inference where it reports one (the AI Camera's sensor DNN time;
        # a Coral's or Hailo's invoke, transfers included): the mean of the results' inference_ms.
        "device_ms_mean": round(s["inference_ms_sum"] / s["inference_ms_count"], 3)
        if getattr(app.classifier, "backend", "cpu") != "cpu" and s["inference_ms_count"] else None,
        "dropped": s["frames_dropped"],
        "output_dropped": s["frames_output_dropped"],
        "wall_s": round(wall, 3),
        "fps": round(n / wall, 2) if wall > 0 else 0.0,
        "invoke_ms_p50": round(percentile(tm.invoke, 50), 3),
        "invoke_ms_p95": round(percentile(tm.invoke, 95), 3),
        "latency_ms_p50": round(percentile(tm.latency, 50), 3),
        "latency_ms_p95": round(percentile(tm.latency, 95), 3),
        "stage_ms": {name: round(percentile(getattr(tm, name), 50), 3)
                     for name in ("decode", "preprocess", "invoke", "postprocess", "overlay")},
        "cpu_ms_per_frame_run": round(cpu / n * 1000, 3) if n else 0.0,
        "cpu_ms_per_frame_with_load": round(total_cpu / n * 1000, 3) if n else 0.0,
        **counter.clock.figures(),
        "rss_mb": round(peak_rss_mb(), 1),
    }


def _calibration_figures(plan) -> dict:
    """What the thread-layout calibration measured during the run, or read from its cache; {} without one."""
    watch = plan.watch if plan else None
    # the newest measurement: the run's first, or one the load change started (Recheck)
    cal = watch.calibration if watch is not None and watch.calibration is not None else plan.calibration if plan else None
    again = {"rechecks": watch.rechecks} if watch is not None and watch.rechecks else {}
    if cal is not None:
        return {"calibration": {"done": cal.done, "frames": cal.results_seen, **again,
                                "measured": {str(lay): _rounded(m) for lay, m in sorted(cal.summary().items())}}}
    if plan is not None and plan.measured:
        return {"calibration": {"done": True, "cached": str(plan.cache_file), "measured": plan.measured}}
    return {}


def _rounded(m: calibration.Measurement) -> dict:
    return {"fps": round(m.fps, 2), "cpu_ms": round(m.cpu_ms, 3), "latency_p50": round(m.latency_p50, 3),
            "latency_p95": round(m.latency_p95, 3), "inferred": round(m.inferred, 3)}


def bench_pipeline(cfg: config_mod.Config, frames: int | None) -> dict:
    """Run the pipeline on ``cfg.source`` and measure it."""
    return _run_pipeline(cfg, frames)[0]


def bench_cameras(cfg: config_mod.Config, sources: list[str], frames: int | None) -> dict:
    """Several sources as cameras of one run (one model, its stage shared): per camera and total figures.

    ``frames``: per camera. Each camera's figures: frames, frames/s, dropped,
    invoke and capture-to-result latency percentiles, and staleness (the age of
    its newest result, p95 over the run's ticks); total: frames/s, CPU per
    frame, peak RSS.
    """
    # memory: here, as in _run_pipeline (the peers' loop reports its RSS without the pipeline's modules)
    from edgecam.pipeline.cameras import CamerasApp

    names = [f"cam{i + 1}" for i in range(len(sources))]
    holder: dict = {}
    counters = {n: _FrameCounter(frames, lambda n=n: holder["app"].camera(n).pipeline.stop()) for n in names}
    cameras = [(n, dataclasses.replace(cfg, source=dataclasses.replace(cfg.source, uri=src)))
               for n, src in zip(names, sources)]
    t_load = time.perf_counter()
    app = CamerasApp(cameras, sinks_for=lambda n: [counters[n]], timings=True)
    holder["app"] = app
    load_s = time.perf_counter() - t_load
    staleness: dict[str, list[float]] = {n: [] for n in names}

    def sample(now: float) -> None:
        for stage in app.stages:
            for n, c in stage.frames.counters().items():
                if (age := c.staleness(now)) is not None:
                    staleness[n].append(age * 1000)

    cpu1, t0 = cpu_seconds(), time.perf_counter()
    code = app.run(on_tick=sample)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu1
    per = {}
    for cam in app.cameras:
        tm, st = (cam.pipeline.timings, cam.stats.snapshot()) if cam.pipeline else (None, {})
        n = counters[cam.name].frames
        per[cam.name] = {"source": cam.cfg.source.uri, "down": cam.down, "frames": n,
                         "fps": round(n / wall, 2) if wall > 0 else 0.0, "dropped": st.get("frames_dropped", 0),
                         "invoke_ms_p50": round(percentile(tm.invoke, 50), 3) if tm else None,
                         "latency_ms_p50": round(percentile(tm.latency, 50), 3) if tm else None,
                         "latency_ms_p95": round(percentile(tm.latency, 95), 3) if tm else None,
                         "staleness_ms_p95": round(percentile(staleness[cam.name], 95), 1)
                         if staleness[cam.name] else None}
    total = sum(c["frames"] for c in per.values())
    clf = next(cam.parts.classifier for cam in app.cameras if cam.pipeline is not None)
    layout = app.stages[0].layout
    return {"mode": "cameras", "model": clf.name, "runtime": clf.runtime,
            "layout": str(layout) if layout else f"1x{clf.threads}", "policy": str(app.cameras[0].cfg.source.policy),
            "cameras": per, "frames": total, "wall_s": round(wall, 3),
            "fps": round(total / wall, 2) if wall > 0 else 0.0,
            "cpu_ms_per_frame_run": round(cpu / total * 1000, 3) if total else 0.0,
            "rss_mb": round(peak_rss_mb(), 1), "load_s": round(load_s, 3), "exit_code": code}


def bench_peer_loop(cfg: config_mod.Config, frames: int | None) -> dict:
    """The peers' single loop, same model/runtime/threads, for comparison.

    As in the TensorFlow Lite and MediaPipe Raspberry Pi examples: read,
    convert to RGB, stretch-resize, invoke, draw the labels and FPS as text
    on the frame, repeat; all in one thread.
    """
    clf = load_classifier(cfg.model)
    if getattr(clf, "interpreter", None) is None:
        raise ConfigError(f"bench --peer-loop: the peers' loop drives a TFLite interpreter, which {clf.name} on "
                          f"{clf.backend} has not; leave out --peer-loop")
    cap = cv2.VideoCapture(opencv_path(cfg.source.uri, "source"))
    if not cap.isOpened():  # else a typo would "measure" 0 frames and exit 0
        cap.release()
        raise SourceError(f"source {cfg.source.uri}: cannot open this video file; check the path")
    w, h = clf.input_size
    inp = clf.interpreter.get_input_details()[0]["index"]
    invoke, n = [], 0
    steady = _SteadyClock(frames)
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    while frames is None or n < frames:
        ok, image = cap.read()
        if not ok and cfg.source.loop and n:  # --loop: from the start again, as the pipeline's source does
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        tensor = cv2.resize(rgb, (w, h))[np.newaxis]
        clf.interpreter.set_tensor(inp, tensor)
        ti = time.perf_counter()
        clf.interpreter.invoke()
        invoke.append((time.perf_counter() - ti) * 1000)
        scores = clf.output_scores()
        # Draw as the examples do: text straight onto the frame, no panel, no copy.
        top = np.argsort(-scores)[: cfg.model.top_k]
        for row, i in enumerate(top):
            cv2.putText(image, f"{clf.labels[i]} ({scores[i]:.2f})", (24, 40 + 30 * row),
                        cv2.FONT_HERSHEY_PLAIN, 1.5, (0, 0, 255), 2)
        cv2.putText(image, f"FPS = {n / max(time.perf_counter() - t0, 1e-9):.1f}", (24, 20),
                    cv2.FONT_HERSHEY_PLAIN, 1, (0, 0, 255), 1)
        n += 1
        steady.tick(n)
    wall = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    total_cpu = cpu_seconds()
    cap.release()
    return {
        "mode": "peer-loop", "model": clf.name, "runtime": clf.runtime, "threads": clf.threads,
        "interpreters": 1, "layout": f"1x{clf.threads}",
        "frames": n, "wall_s": round(wall, 3), "fps": round(n / wall, 2) if wall else 0.0,
        "invoke_ms_p50": round(percentile(invoke, 50), 3), "invoke_ms_p95": round(percentile(invoke, 95), 3),
        "cpu_ms_per_frame_run": round(cpu / n * 1000, 3) if n else 0.0,
        "cpu_ms_per_frame_with_load": round(total_cpu / n * 1000, 3) if n else 0.0,
        **steady.figures(),
        "rss_mb": round(peak_rss_mb(), 1), "dropped": 0,
    }


def bench_sweep(cfg: config_mod.Config, frames: int | None, rounds: int = calibration.ROUNDS) -> dict:
    """Run the pipeline with every candidate layout, ``rounds`` times interleaved; cache the choice.

    Each row's figures are medians over its runs: whole-run frames/s,
    steady-state CPU per frame, capture-to-result latency, and the share of
    frames classified (below 1 when a paced run drops frames).
    """
    cores = available_cores()
    fixed = None if cfg.model.interpreters == "auto" else int(cfg.model.interpreters)
    layouts = calibration.candidates(cores, fixed)
    runs: dict[calibration.Layout, list[calibration.Measurement]] = {lay: [] for lay in layouts}
    raw: dict[calibration.Layout, list[dict]] = {lay: [] for lay in layouts}
    first = None
    beside = OthersMeter() if busy_seconds() is not None else None  # what the other programs used meanwhile
    if beside is not None:
        beside.mark("sweep")
    for r in range(rounds):
        for lay in (layouts if r % 2 == 0 else layouts[::-1]):
            c = config_mod.apply_overrides(cfg, {"model.threads": lay.threads, "model.interpreters": lay.interpreters})
            res, app = _run_pipeline(c, frames)
            if res["exit_code"] != 0:
                res["mode"] = "sweep"
                return res
            if first is None:
                first = (res, app.classifier.model_path, app.pipeline.source.fps)
            inferred = res["frames_inferred"] / max(1, res["frames_inferred"] + res["dropped"])
            runs[lay].append(calibration.Measurement(
                fps=res["fps"], cpu_ms=res["cpu_ms_per_frame_steady"] or res["cpu_ms_per_frame_run"],
                latency_p50=res["latency_ms_p50"], latency_p95=res["latency_ms_p95"], inferred=inferred))
            raw[lay].append({k: res[k] for k in ("fps", "cpu_ms_per_frame_steady", "latency_ms_p50", "latency_ms_p95")})
    res0, model_path, source_fps = first
    policy = res0["policy"]
    medians = {lay: calibration.median_of(ms) for lay, ms in runs.items()}
    chosen = calibration.choose(policy, medians)
    cache = None
    try:
        key = calibration.cache_key(model_path, res0["runtime"], policy, source_fps, cores)
    except OSError:
        key = None
    if key is not None:
        cache = calibration.save_cached(model_path, key, chosen, medians, how="bench --sweep", samples=runs,
                                        other_cores=beside.cores("sweep") if beside is not None else None)
    return {
        "mode": "sweep", "model": res0["model"], "runtime": res0["runtime"],
        "runtime_version": runtime_version(res0["runtime"]), "cpu": calibration.cpu_model(), "cores": cores,
        "policy": policy, "rounds": rounds, "frames": res0["frames"],
        "rows": [{"layout": str(lay), "interpreters": lay.interpreters, "threads": lay.threads,
                  "fps": round(m.fps, 2), "cpu_ms_per_frame_steady": round(m.cpu_ms, 3),
                  "latency_ms_p50": round(m.latency_p50, 3), "latency_ms_p95": round(m.latency_p95, 3),
                  "inferred": round(m.inferred, 3), "runs": raw[lay]} for lay, m in medians.items()],
        "chosen": str(chosen), "cache": str(cache) if cache else None, "exit_code": 0,
    }

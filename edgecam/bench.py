"""``edgecam bench``: the pipeline's speed and cost on a video file, measured.

It runs the real pipeline headless with the ``every_frame`` policy (and the
overlay drawn, as a display would need) and prints frames per second, invoke
time percentiles, per-stage times, CPU time per frame, dropped frames and peak
RSS. ``--peer-loop`` runs instead the single loop of the TensorFlow Lite and
MediaPipe Raspberry Pi examples (read, convert, stretch-resize, invoke, draw,
repeat) with the same model, runtime and threads, for a side-by-side figure.
"""

from __future__ import annotations

import json
import resource
import time

import numpy as np

from edgecam import config as config_mod
from edgecam.errors import SourceError


def _pct(values, q) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else 0.0


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


class _FrameCounter:
    """A sink that wants frames (so the overlay is drawn) and counts them; stops after N frames."""

    name = "bench"
    wants_frames = True

    def __init__(self, limit: int | None, stop):
        self.limit = limit
        self.stop = stop
        self.frames = 0

    def start(self):
        pass

    def on_result(self, result):
        pass

    def on_event(self, event):
        pass

    def on_frame(self, frame, annotated, result):
        self.frames += 1
        if self.limit and self.frames >= self.limit:
            self.stop()

    def close(self):
        pass


def bench_pipeline(cfg: config_mod.Config, frames: int | None) -> dict:
    """Run the pipeline on ``cfg.source`` and measure it."""
    from edgecam.app import App

    holder = {}
    counter = _FrameCounter(frames, lambda: holder["app"].pipeline.stop())
    t_load = time.perf_counter()
    app = App(cfg, extra_sinks=[counter], timings=True, display_override=False)
    holder["app"] = app
    load_s = time.perf_counter() - t_load
    cpu1, t0 = _cpu_s(), time.perf_counter()
    code = app.run()
    wall = time.perf_counter() - t0
    cpu = _cpu_s() - cpu1
    tm = app.pipeline.timings
    s = app.stats.snapshot()
    n = counter.frames
    return {
        "mode": "pipeline",
        "policy": app.pipeline.policy,
        "model": app.classifier.name,
        "runtime": app.classifier.runtime,
        "threads": app.classifier.threads,
        "frames": n,
        "frames_inferred": s["frames_inferred"],
        "dropped": s["frames_dropped"],
        "output_dropped": s["frames_output_dropped"],
        "wall_s": round(wall, 3),
        "fps": round(n / wall, 2) if wall > 0 else 0.0,
        "invoke_ms_p50": round(_pct(tm.invoke, 50), 3),
        "invoke_ms_p95": round(_pct(tm.invoke, 95), 3),
        "latency_ms_p50": round(_pct(tm.latency, 50), 3),
        "latency_ms_p95": round(_pct(tm.latency, 95), 3),
        "stage_ms": {name: round(_pct(getattr(tm, name), 50), 3)
                     for name in ("decode", "preprocess", "invoke", "postprocess", "overlay")},
        "cpu_ms_per_frame": round(cpu / n * 1000, 3) if n else 0.0,
        "rss_mb": round(_rss_mb(), 1),
        "load_s": round(load_s, 3),
        "exit_code": code,
    }


def bench_peer_loop(cfg: config_mod.Config, frames: int | None) -> dict:
    """The peers' single loop, same model/runtime/threads, for comparison.

    As in the TensorFlow Lite and MediaPipe Raspberry Pi examples: read,
    convert to RGB, stretch-resize, invoke, draw the labels and FPS as text
    on the frame, repeat; all in one thread.
    """
    import cv2

    from edgecam.classifier import load_classifier

    clf = load_classifier(cfg.model)
    cap = cv2.VideoCapture(cfg.source.uri)
    if not cap.isOpened():  # else a typo would "measure" 0 frames and exit 0
        cap.release()
        raise SourceError(f"source {cfg.source.uri}: cannot open this video file; check the path")
    w, h = clf.input_size
    inp = clf.interpreter.get_input_details()[0]["index"]
    invoke, n = [], 0
    cpu0, t0 = _cpu_s(), time.perf_counter()
    while frames is None or n < frames:
        ok, image = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        tensor = cv2.resize(rgb, (w, h))[np.newaxis]
        clf.interpreter.set_tensor(inp, tensor)
        ti = time.perf_counter()
        clf.interpreter.invoke()
        invoke.append((time.perf_counter() - ti) * 1000)
        scores = clf.scores(clf.interpreter.get_tensor(clf._out_index))
        # Draw as the examples do: text straight onto the frame, no panel, no copy.
        top = np.argsort(-scores)[: cfg.model.top_k]
        for row, i in enumerate(top):
            cv2.putText(image, f"{clf.labels[i]} ({scores[i]:.2f})", (24, 40 + 30 * row),
                        cv2.FONT_HERSHEY_PLAIN, 1.5, (0, 0, 255), 2)
        cv2.putText(image, f"FPS = {n / max(time.perf_counter() - t0, 1e-9):.1f}", (24, 20),
                    cv2.FONT_HERSHEY_PLAIN, 1, (0, 0, 255), 1)
        n += 1
    wall = time.perf_counter() - t0
    cpu = _cpu_s() - cpu0
    cap.release()
    return {
        "mode": "peer-loop", "model": clf.name, "runtime": clf.runtime, "threads": clf.threads,
        "frames": n, "wall_s": round(wall, 3), "fps": round(n / wall, 2) if wall else 0.0,
        "invoke_ms_p50": round(_pct(invoke, 50), 3), "invoke_ms_p95": round(_pct(invoke, 95), 3),
        "cpu_ms_per_frame": round(cpu / n * 1000, 3) if n else 0.0, "rss_mb": round(_rss_mb(), 1), "dropped": 0,
    }


def cmd_bench(args) -> int:
    from edgecam.cli import _load_config, _model_overrides

    overrides = _model_overrides(args)
    overrides.update({"source.type": "opencv", "source.uri": args.source, "source.policy": "every_frame",
                      "source.realtime": bool(args.realtime), "display.mode": "none", "log.path": None})
    if args.realtime:
        overrides["source.policy"] = "latest"
    cfg = config_mod.apply_overrides(_load_config(args), overrides)
    cfg.log.path = cfg.record.path = None
    cfg.http.enabled = cfg.mqtt.enabled = False
    res = bench_peer_loop(cfg, args.frames) if args.peer_loop else bench_pipeline(cfg, args.frames)
    code = res.get("exit_code", 0)  # a run that failed half-way must not look like a good measurement
    if args.json:
        print(json.dumps(res))
        return code
    print(f"{res['mode']}: {res['model']} on {res['runtime']}, {res['threads']} interpreter thread(s)")
    print(f"  frames          {res['frames']}  ({res.get('dropped', 0)} dropped)")
    print(f"  wall            {res['wall_s']:.2f} s")
    print(f"  throughput      {res['fps']:.1f} frames/s")
    print(f"  invoke          p50 {res['invoke_ms_p50']:.2f} ms  p95 {res['invoke_ms_p95']:.2f} ms")
    if "stage_ms" in res:
        print("  stages (p50)    " + "  ".join(f"{k} {v:.2f}" for k, v in res["stage_ms"].items()) + " ms")
        print(f"  latency         p50 {res['latency_ms_p50']:.2f} ms  p95 {res['latency_ms_p95']:.2f} ms (capture to result)")
    print(f"  cpu per frame   {res['cpu_ms_per_frame']:.2f} ms")
    print(f"  peak RSS        {res['rss_mb']:.1f} MB")
    return code


def add_parser(sub) -> None:
    from edgecam.cli import add_model_args

    p = sub.add_parser("bench", help="measure the pipeline on a video file (fps, stage times, CPU, RSS)")
    p.add_argument("--source", required=True, help="a video file")
    add_model_args(p)
    p.add_argument("--frames", type=int, help="stop after N frames (default: the whole file)")
    p.add_argument("--realtime", action="store_true", help="pace the file at its native FPS (camera-like, latest policy)")
    p.add_argument("--peer-loop", action="store_true", help="run the peers' single-thread loop instead, for comparison")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)

"""``edgecam bench``: the pipeline's speed and cost on a video file (the measuring is :mod:`edgecam.measure.bench`)."""

from __future__ import annotations

import json

from edgecam.camera.capture import DropPolicy
from edgecam.model import calibration
from edgecam.config import schema as config_mod
from edgecam.commands import add_interpreters_arg, add_model_args, load_config, model_overrides
from edgecam.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser("bench", help="measure the pipeline on a video file (fps, stage times, CPU, RSS)")
    p.add_argument("--source", required=True, action="append",
                   help="a video file; repeat it for several cameras in one run (one model, its stage shared)")
    add_model_args(p)
    add_interpreters_arg(p)
    p.add_argument("--frames", type=int, help="stop after N frames (default: the whole file)")
    p.add_argument("--loop", action="store_true",
                   help="replay the file from its start when it ends (with --frames: runs longer than the file)")
    p.add_argument("--realtime", action="store_true", help="pace the file at its native FPS (camera-like, latest policy)")
    p.add_argument("--peer-loop", action="store_true", help="run the peers' single-thread loop instead, for comparison")
    p.add_argument("--sweep", action="store_true",
                   help="run the pipeline with each interpreter layout threads: auto chooses from, print the table "
                        "and cache the choice")
    p.add_argument("--rounds", type=int, default=calibration.ROUNDS,
                   help=f"--sweep: runs per layout, interleaved (default {calibration.ROUNDS}; medians)")
    p.add_argument("--json", action="store_true", help="print the measurements as one JSON object")
    p.set_defaults(func=cmd_bench)


def _print_sweep(res: dict) -> None:
    print(f"sweep: {res['model']} on {res['runtime']} {res['runtime_version']}, {res['cpu']} ({res['cores']} cores), "
          f"{res['policy']} policy; medians of {res['rounds']} interleaved runs of {res['frames']} frames")
    print(f"  {'layout':<28} {'frames/s':>9} {'CPU ms/frame':>13} {'latency p50':>12} {'p95':>7}")
    print(f"  {'':<28} {'':>9} {'(steady)':>13} {'(ms)':>12} {'(ms)':>7}")
    for row in res["rows"]:
        lay = calibration.Layout(row["interpreters"], row["threads"])
        mark = "  <- threads: auto" if row["layout"] == res["chosen"] else ""
        print(f"  {lay.describe():<28} {row['fps']:>9.1f} {row['cpu_ms_per_frame_steady']:>13.2f} "
              f"{row['latency_ms_p50']:>12.2f} {row['latency_ms_p95']:>7.2f}{mark}")
    where = f"cached in {res['cache']}" if res["cache"] else "not cached: the model folder is not writable"
    print(f"  chosen: {calibration.Layout.parse(res['chosen']).describe()} ({where})")


def cmd_bench(args) -> int:
    # import cost: the pipeline and the runtimes, 15 ms of every `edgecam --help` otherwise
    from edgecam.measure.bench import bench_cameras, bench_peer_loop, bench_pipeline, bench_sweep

    sources, args.source = args.source, args.source[0]
    overrides = model_overrides(args)
    overrides.update({"model.interpreters": args.interpreters,
                      "source.type": "opencv", "source.uri": args.source,
                      "source.policy": (DropPolicy.LATEST if args.realtime else DropPolicy.EVERY_FRAME).value,
                      "source.realtime": bool(args.realtime), "display.mode": "none",
                      "source.loop": bool(args.loop),
                      # The pipeline alone: no output of the config file's.
                      "log.path": config_mod.CLEAR, "record.path": config_mod.CLEAR,
                      "http.enabled": False, "mqtt.enabled": False,
                      "cameras": []})  # the --source(s) are the cameras, not a config's cameras:
    cfg = load_config(args, overrides)
    if len(sources) > 1:
        if args.sweep:
            raise ConfigError("bench: --sweep measures one source; give one --source")
        res = bench_cameras(cfg, sources, args.frames) if not args.peer_loop else _peer_loops(cfg, sources, args)
        return _print_cameras(res, args.json)
    if args.sweep:
        if args.peer_loop:
            raise ConfigError("bench: --sweep measures the pipeline; it does not go with --peer-loop")
        if args.threads is not None:
            raise ConfigError("bench: --sweep measures every thread count itself; leave out --threads")
        if args.rounds < 1:
            raise ConfigError(f"bench: --rounds {args.rounds}: expected 1 or more")
        res = bench_sweep(cfg, args.frames, args.rounds)
    elif args.peer_loop:
        res = bench_peer_loop(cfg, args.frames)
    else:
        res = bench_pipeline(cfg, args.frames)
    code = res.get("exit_code", 0)  # a run that failed half-way must not look like a good measurement
    if args.json:
        print(json.dumps(res))
        return code
    if res["mode"] == "sweep" and "rows" in res:
        _print_sweep(res)
        return code
    how = {"cached": ", measured before on this machine (cached)", "measuring": ", measured in this run",
           "explicit": ""}.get(res.get("layout_from", ""), "")
    lay = calibration.Layout.parse(res["layout"])
    print(f"{res['mode']}: {res['model']} on {res['runtime']}, {lay.describe()}{how}")
    print(f"  frames          {res['frames']}  ({res.get('dropped', 0)} dropped)")
    print(f"  wall            {res['wall_s']:.2f} s")
    print(f"  throughput      {res['fps']:.1f} frames/s")
    print(f"  invoke          p50 {res['invoke_ms_p50']:.2f} ms  p95 {res['invoke_ms_p95']:.2f} ms")
    if "stage_ms" in res:
        print("  stages (p50)    " + "  ".join(f"{k} {v:.2f}" for k, v in res["stage_ms"].items()) + " ms")
        print(f"  latency         p50 {res['latency_ms_p50']:.2f} ms  p95 {res['latency_ms_p95']:.2f} ms (capture to result)")
    if res["cpu_ms_per_frame_steady"] is not None:
        print(f"  cpu per frame   {res['cpu_ms_per_frame_steady']:.2f} ms steady state "
              f"(the last {res['steady_frames']} frames)")
    print(f"  cpu per frame   {res['cpu_ms_per_frame_with_load']:.2f} ms with load "
          "(the whole process: imports, model load, start-up)")
    print(f"  peak RSS        {res['rss_mb']:.1f} MB")
    return code


def _peer_loops(cfg, sources: list[str], args) -> dict:
    """--peer-loop with several sources: one peers' loop per source, as separate processes side by side."""
    # here: only this comparison starts processes
    import subprocess
    import sys
    import time

    cmd = [sys.executable, "-m", "edgecam", "bench", "--peer-loop", "--json", "--model", cfg.model.name,
           "--threads", str(cfg.model.threads or 1)] + (["--frames", str(args.frames)] if args.frames else []) + \
        (["--loop"] if args.loop else [])
    if args.config:
        cmd += ["--config", args.config]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd + ["--source", src], stdout=subprocess.PIPE, text=True) for src in sources]
    outs = [p.communicate()[0] for p in procs]
    wall = time.perf_counter() - t0
    per = {f"cam{i + 1}": json.loads(out) if out.strip() else {"exit_code": p.returncode}
           for i, (p, out) in enumerate(zip(procs, outs))}
    total = sum(r.get("frames", 0) for r in per.values())
    return {"mode": "peer-loops", "model": cfg.model.name, "cameras": per, "frames": total, "wall_s": round(wall, 3),
            "fps": round(total / wall, 2) if wall > 0 else 0.0,
            "rss_mb": round(sum(r.get("rss_mb", 0) for r in per.values()), 1),
            "exit_code": max((p.returncode for p in procs), default=0)}


def _print_cameras(res: dict, as_json: bool) -> int:
    code = res.get("exit_code", 0)
    if as_json:
        print(json.dumps(res))
        return code
    print(f"{res['mode']}: {res['model']}, {len(res['cameras'])} sources, {res['frames']} frames in "
          f"{res['wall_s']:.2f} s: {res['fps']:.1f} frames/s in all, peak RSS {res['rss_mb']:.1f} MB"
          + (" (the processes' sum)" if res["mode"] == "peer-loops" else ""))
    for name, c in res["cameras"].items():
        if c.get("down"):
            print(f"  {name:<6} down: {c['down']}")
            continue
        line = f"  {name:<6} {c.get('frames', 0):>6} frames  {c.get('fps', 0):>7.1f} frames/s"
        if c.get("latency_ms_p95") is not None:
            line += f"  latency p50 {c['latency_ms_p50']:.1f} p95 {c['latency_ms_p95']:.1f} ms"
        if c.get("staleness_ms_p95") is not None:
            line += f"  staleness p95 {c['staleness_ms_p95']:.0f} ms  {c.get('dropped', 0)} dropped"
        print(line)
    if res.get("cpu_ms_per_frame_run") is not None:
        print(f"  cpu per frame {res['cpu_ms_per_frame_run']:.2f} ms (the run)")
    return code

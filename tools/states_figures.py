#!/usr/bin/env python3
"""Measure issue 13's figures ("Teach it your own states") on this machine and print them.

    .venv/bin/python tools/states_figures.py [--what learn,accuracy,methods,motion,default] [--rounds N]
        [--base-tree DIR]

* learn: ``edgecam learn`` end to end (a new process, embeddings included) on
  3 states x 20 examples of the generated scene, wall time of ``--rounds`` runs;
* accuracy: 10 examples per state learned, ``N`` held-out frames per state,
  accuracy with its 95% Wilson interval (the easy and the hard scene);
* methods: the three heads on the hard scene (held-out accuracy, repeated);
* motion: ``edgecam bench --realtime`` on a still scene with a region,
  ``motion: true`` against classifying every frame, interleaved runs: CPU per
  second of video;
* embedding: invoke time of the plain model file, of its embedding variant
  (features as a second output) and of the plain file with
  ``experimental_preserve_all_tensors`` (interleaved invokes, 1 thread), and
  each one's peak RSS in a fresh process;
* default: ``edgecam bench`` with no regions, this tree against ``--base-tree``
  (a checkout of the commit before the work), interleaved: frames/s and peak RSS.

Uses ../shared (photos, models) and writes only under a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.scenes import REGION, Scene, write_examples, write_video  # noqa: E402

SHARED = Path(os.environ.get("EDGECAM_SHARED", REPO.parent / "shared"))
HARD = {"empty": None, "husky": "n02110185_Siberian_husky.JPEG", "wolf": "n02114548_white_wolf.JPEG",
        "chow": "n02112137_chow.JPEG"}


def edgecam(args, env, tree=REPO, **kw) -> subprocess.CompletedProcess:
    env = dict(env, PYTHONPATH=str(tree))
    return subprocess.run([sys.executable, "-m", "edgecam", *args], env=env, cwd=tree, capture_output=True,
                          text=True, **kw)


def setup(tmp: Path) -> dict:
    from edgecam import registry

    models = tmp / "models"
    for name in ("mobilenet_v3_small", "mobilenet_v2", "mobilenet_v1"):
        registry.fetch(name, dest_dir=models, mirror=SHARED / "models", progress=False)
    os.environ.update(EDGECAM_MODEL_DIR=str(models), EDGECAM_MODEL_MIRROR=str(SHARED / "models"))
    os.environ.pop("EDGECAM_CONFIG", None)
    return dict(os.environ)


def fig_learn(tmp, env, rounds):
    scene = Scene(SHARED / "images" / "imagenet-sample")
    write_examples(scene, tmp / "ex20", per_state=20, seed=1)
    walls, reports = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        proc = edgecam(["learn", str(tmp / "ex20"), "--name", "fig", "--json"], env)
        walls.append(time.perf_counter() - t0)
        assert proc.returncode == 0, proc.stderr
        reports.append(json.loads(proc.stdout))
    print(f"learn, 3 states x 20 examples, `edgecam learn DIR --name fig` as a new process, {rounds} runs:")
    print(f"  wall s: median {statistics.median(walls):.2f}, max {max(walls):.2f} "
          f"(inside: embeddings {statistics.median(r['embed_s'] for r in reports):.2f} s, fit + 5-fold CV "
          f"{statistics.median(r['fit_s'] for r in reports):.2f} s); cv accuracy {reports[0]['cv']['accuracy']} "
          f"{reports[0]['cv']['interval']}")


def held_out(scene, base, method, per_state_train, per_state_test, seed_train, seed_test):
    import numpy as np

    from edgecam.model import heads
    from edgecam.model.classifier import load_classifier
    from edgecam.config.schema import ModelConfig

    clf = load_classifier(ModelConfig(name=base, crop="stretch", threads=1), embedding=True)
    labels = list(scene.states)

    def embed(seed, n):
        rng = np.random.default_rng(seed)
        x, y = [], []
        for _ in range(n):
            for c, state in enumerate(labels):
                x.append(clf.embed(scene.crop(scene.frame(state, rng))))
                y.append(c)
        return np.array(x), np.array(y)

    xtr, ytr = embed(seed_train, per_state_train)
    xte, yte = embed(seed_test, per_state_test)
    cv = heads.cross_validate(xtr, ytr, labels, method)
    head = heads.fit(xtr, ytr, labels, method, cv.unknown_distance())
    probs, _ = head.predict(xte)
    return int((probs.argmax(axis=1) == yte).sum()), len(yte)


def fig_accuracy(per_state_test):
    from edgecam.measure.significance import wilson_interval

    for name, kw in (("easy (empty / scooter / tricycle)", {}),
                     ("hard (empty / husky / white wolf / chow, 35-70% size, wandering)",
                      dict(states=HARD, scale=(0.35, 0.7), wander=0.25))):
        scene = Scene(SHARED / "images" / "imagenet-sample", **kw)
        right, n = held_out(scene, "mobilenet_v3_small", "logreg", 10, per_state_test, 1, 2)
        lo, hi = wilson_interval(right, n)
        print(f"held-out accuracy, {name}, 10 examples per state, {per_state_test} others per state: "
              f"{right}/{n} = {right / n:.3f} (95% CI {lo:.3f}-{hi:.3f})")


def fig_methods(rounds):
    from edgecam.model import heads
    from edgecam.measure.significance import wilson_interval

    scene = Scene(SHARED / "images" / "imagenet-sample", states=HARD, scale=(0.35, 0.7), wander=0.25)
    for base in ("mobilenet_v3_small", "mobilenet_v2", "mobilenet_v1"):
        cells = []
        for method in heads.METHODS:
            right = n = 0
            for r in range(rounds):
                a, b = held_out(scene, base, method, 10, 50, 100 + r, 99)
                right, n = right + a, n + b
            lo, hi = wilson_interval(right, n)
            cells.append(f"{method} {right / n:.3f} ({lo:.3f}-{hi:.3f})")
        print(f"methods, hard scene, {base}, {rounds} x (10 per state learned, 200 held out): " + "; ".join(cells))


def bench(tree, env, args) -> dict:
    proc = edgecam(["bench", *args, "--json"], env, tree)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fig_motion(tmp, env, rounds):
    scene = Scene(SHARED / "images" / "imagenet-sample")
    video = tmp / "still.mp4"
    write_video(scene, video, [("empty", 150), ("scooter", 150)], fps=30, seed=4, still=True)
    write_examples(scene, tmp / "exm", per_state=10, seed=1)
    assert edgecam(["learn", str(tmp / "exm"), "--name", "garage"], env).returncode == 0
    configs = {}
    for overlay in (False, True):
        for motion in (False, True):
            cfg = tmp / f"motion-{motion}-{overlay}.yaml"
            cfg.write_text(json.dumps({"regions": [{"name": "garage", "box": list(REGION), "model": "garage",
                                                    "motion": motion}], "model": {"threads": 1},
                                       "display": {"overlay": overlay}}))
            configs[motion, overlay] = cfg
    runs = {k: [] for k in configs}
    for _ in range(rounds):
        for key, cfg in configs.items():
            runs[key].append(bench(REPO, env, ["--source", str(video), "--realtime", "--config", str(cfg)]))
    for overlay in (False, True):
        cpu_s = {m: [r["cpu_ms_per_frame_steady"] * r["fps"] / 1000 for r in runs[m, overlay]] for m in (False, True)}
        every, moving = statistics.median(cpu_s[False]), statistics.median(cpu_s[True])
        what = "overlay drawn (a window or HTTP view)" if overlay else "headless (no overlay drawn: log, MQTT)"
        print(f"motion, {what}: still scene (10 s at 30 fps, one change), region classified by 'garage', "
              f"`edgecam bench --realtime`, {rounds} interleaved runs each: CPU s per s of video, every frame "
              f"{every:.3f} ({', '.join(f'{v:.3f}' for v in cpu_s[False])}), motion: true {moving:.3f} "
              f"({', '.join(f'{v:.3f}' for v in cpu_s[True])}): {every / moving:.1f}x lower")


_RSS_CHILD = """
import resource, sys, numpy as np
from ai_edge_litert.interpreter import Interpreter
kind, path = sys.argv[1], sys.argv[2]
kw = {"experimental_preserve_all_tensors": True} if kind == "preserve" else {}
it = Interpreter(model_path=path, num_threads=1, **kw)
it.allocate_tensors()
d = it.get_input_details()[0]
it.set_tensor(d["index"], np.full(d["shape"], 128, d["dtype"]))
for _ in range(50):
    it.invoke()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def fig_embedding(tmp, rounds):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from edgecam.model import embedding
    from edgecam import registry

    for name in ("mobilenet_v3_small", "mobilenet_v2"):
        plain = registry.models_dir() / registry.load_registry()[name].file
        variant = embedding.variant(plain).path
        kinds = {"plain": (plain, {}), "variant": (variant, {}),
                 "preserve": (plain, {"experimental_preserve_all_tensors": True})}
        its = {}
        for kind, (path, kw) in kinds.items():
            it = Interpreter(model_path=str(path), num_threads=1, **kw)
            it.allocate_tensors()
            d = it.get_input_details()[0]
            it.set_tensor(d["index"], np.full(d["shape"], 128, d["dtype"]))
            it.invoke()
            its[kind] = it
        times = {k: [] for k in its}
        for _ in range(300):
            for kind, it in its.items():
                t0 = time.perf_counter()
                it.invoke()
                times[kind].append((time.perf_counter() - t0) * 1000)
        rss = {k: [] for k in its}
        for _ in range(rounds):
            for kind, (path, _) in kinds.items():
                out = subprocess.run([sys.executable, "-c", _RSS_CHILD, kind, str(path)], capture_output=True,
                                     text=True, check=True).stdout
                rss[kind].append(float(out.split()[-1]))
        cells = [f"{k} p50 {np.percentile(v, 50):.3f} / p95 {np.percentile(v, 95):.3f} ms, peak RSS "
                 f"{statistics.median(rss[k]):.1f} MB" for k, v in times.items()]
        print(f"embedding, {name}, 300 interleaved invokes each, 1 thread; RSS median of {rounds} fresh "
              f"processes: " + "; ".join(cells))


def fig_default(env, rounds, base_tree):
    video = SHARED / "video" / "imagenet20_640x480_30fps.mp4"
    rows = {"this": [], "base": []}
    for _ in range(rounds):
        for which, tree in (("base", Path(base_tree)), ("this", REPO)):
            rows[which].append(bench(tree, env, ["--source", str(video), "--threads", "1"]))
    for which, rs in rows.items():
        fps = [r["fps"] for r in rs]
        rss = [r["rss_mb"] for r in rs]
        print(f"default path ({which}: {base_tree if which == 'base' else REPO}), `edgecam bench --source "
              f"{video.name} --threads 1`, {rounds} interleaved runs: fps median {statistics.median(fps):.1f} "
              f"({', '.join(f'{v:.0f}' for v in fps)}); peak RSS MB median {statistics.median(rss):.1f} "
              f"({', '.join(f'{v:.1f}' for v in rss)})")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--what", default="learn,accuracy,methods,motion")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--held-out", type=int, default=100, help="held-out frames per state (accuracy)")
    p.add_argument("--base-tree", help="a checkout of the commit before the work (default)")
    args = p.parse_args()
    what = set(args.what.split(","))
    print(subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout.strip())
    print("load average at start:", open("/proc/loadavg").read().split()[:3])
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        env = setup(tmp)
        if "learn" in what:
            fig_learn(tmp, env, args.rounds)
        if "accuracy" in what:
            fig_accuracy(args.held_out)
        if "methods" in what:
            fig_methods(args.rounds)
        if "embedding" in what:
            fig_embedding(tmp, args.rounds)
        if "motion" in what:
            fig_motion(tmp, env, args.rounds)
        if "default" in what:
            if not args.base_tree:
                p.error("default: give --base-tree DIR (a worktree of the commit before the work)")
            fig_default(env, args.rounds, args.base_tree)
    print("load average at end:", open("/proc/loadavg").read().split()[:3])
    return 0


if __name__ == "__main__":
    sys.exit(main())

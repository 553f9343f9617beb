#!/usr/bin/env python3
"""Measure issue 26's figures (teach from the browser) on this machine and print them.

    .venv/bin/python tools/teach_figures.py [--what retrain,accuracy,queue] [--rounds N] [--minutes M]

* retrain: a camera (``edgecam run`` in this process, a folder source paced at
  30 frames/s, one drawn region) with 3 states x 30 examples of the generated
  scene; ``POST /api/teach/retrain`` then ``GET /api/teach/retrain`` every
  20 ms until the evidence is there: the time from the click to the evidence,
  once with the examples already embedded (the page embeds them as they come)
  and once cold; and the camera's frames captured, classified and dropped
  during the retrains against the seconds before them;
* accuracy: 3 states x 10 crops labelled through the endpoints the page uses
  (half "this is", half filed from the review queue), retrain, use; then the
  head in use classifies ``--held-out`` new frames per state of the scene:
  accuracy with its 95 % Wilson interval;
* queue: a review queue with a cap fed scene crops (PNG) at 10 a second for
  ``--minutes``; its folder's size (``du``'s apparent size, counted apart
  from the queue's own bookkeeping) after every add: the largest seen against the cap.

Uses ../shared (photos, models) and writes only under a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.doubles import wait_until  # noqa: E402
from tests.scenes import REGION, Scene, write_examples  # noqa: E402
from tests.studio import SceneCamera  # noqa: E402

SHARED = Path(os.environ.get("EDGECAM_SHARED", REPO.parent / "shared"))
STATES = ["empty", "scooter", "tricycle"]


def setup(tmp: Path) -> None:
    from edgecam import registry

    models = tmp / "models"
    registry.fetch("mobilenet_v3_small", dest_dir=models, mirror=SHARED / "models", progress=False)
    os.environ.update(EDGECAM_MODEL_DIR=str(models), EDGECAM_MODEL_MIRROR=str(SHARED / "models"))
    os.environ.pop("EDGECAM_CONFIG", None)


def drawn(tmp: Path) -> None:
    """The region drawn before the start (as the page leaves it in the state directory)."""
    folder = tmp / "state" / "regions"
    folder.mkdir(parents=True)
    (folder / "main.json").write_text(json.dumps([{"name": "garage", "box": list(REGION), "labels": STATES}]))


def counters(cam) -> tuple[float, int, int, int]:
    s = cam.app.stats
    return time.monotonic(), s.frames_captured, s.frames_inferred, s.frames_dropped


def retrain_once(cam) -> tuple[float, dict]:
    t0 = time.perf_counter()
    code, out = cam.call("POST", "/api/teach/retrain", {"region": "garage"})
    assert code == 202, out
    while True:
        status = cam.call("GET", "/api/teach/retrain")[1]
        if status["state"] != "running":
            return time.perf_counter() - t0, status
        time.sleep(0.02)


def measure_retrain(scene, tmp: Path, rounds: int) -> None:
    drawn(tmp)
    write_examples(scene, tmp / "examples" / "garage", per_state=30, seed=5)
    with SceneCamera(scene, tmp, fps=30) as cam:
        studio = cam.studio
        wait_until(lambda: len(studio.embedder._cache) >= 90, "the examples embedded", timeout=120)
        time.sleep(3)
        before = counters(cam)
        time.sleep(5)
        idle = counters(cam)
        warm = []
        for _ in range(rounds):
            took, status = retrain_once(cam)
            assert status["state"] == "done", status
            warm.append(took)
            time.sleep(0.5)
        during = counters(cam)
        studio.embedder._cache.clear()
        cold, status = retrain_once(cam)
        ev = status["evidence"]

    def rates(a, b):
        dt = b[0] - a[0]
        return (f"{(b[1] - a[1]) / dt:.1f} frames/s captured, {(b[2] - a[2]) / dt:.1f} classified, "
                f"{b[3] - a[3]} dropped in {dt:.1f} s")

    print(f"retrain, 3 states x 30 examples, click to evidence: median {statistics.median(warm):.3f} s "
          f"(min {min(warm):.3f}, max {max(warm):.3f}, {rounds} rounds, examples embedded ahead); "
          f"cold (every example embedded in the retrain): {cold:.3f} s; cross-validated accuracy "
          f"{ev['accuracy']:.3f} ({ev['interval'][0]:.3f}-{ev['interval'][1]:.3f})")
    print(f"camera, paced 30 frames/s, one region: before {rates(before, idle)}; "
          f"during the retrains {rates(idle, during)}")


def measure_accuracy(scene, tmp: Path, held_out: int) -> None:
    from edgecam.measure.significance import wilson_interval
    from edgecam.model.classifier import load_custom
    from edgecam.studio.live import base_config
    from tests.studio.test_api import teach

    drawn(tmp)
    with SceneCamera(scene, tmp) as cam:
        cam.studio.feeder.gap_s = 0.15
        time.sleep(2)
        teach(cam, per_state=10)
        took, status = retrain_once(cam)
        assert status["state"] == "done", status
        assert cam.call("POST", "/api/teach/use", {"region": "garage"})[0] == 200
        path = cam.studio.versions("garage").current_path()
        clf = load_custom(path, base_config(cam.cfg))
    rng = np.random.default_rng(2026)
    right = total = 0
    for state in STATES:
        for _ in range(held_out):
            result = clf.classify(scene.crop(scene.frame(state, rng)))
            right += result.labels[int(np.argmax(result.scores))] == state
            total += 1
    lo, hi = wilson_interval(right, total)
    print(f"page-taught head (3 states x 10 labelled through the endpoints, retrain {took:.2f} s): held-out "
          f"accuracy {right / total:.3f} ({right}/{total}, 95% CI {lo:.3f}-{hi:.3f}) on new frames of the scene")


def measure_queue(scene, tmp: Path, minutes: float, cap_mb: float) -> None:
    from edgecam.studio.review import ReviewQueue

    rng = np.random.default_rng(3)
    crops = [cv2.imencode(".png", scene.crop(scene.frame(STATES[i % 3], rng)))[1].tobytes() for i in range(30)]
    cap = int(cap_mb * 1024 * 1024)
    queue = ReviewQueue(tmp / "review" / "main", cap)
    folder = tmp / "review"
    end = time.monotonic() + minutes * 60
    adds, largest = 0, 0
    while time.monotonic() < end:
        queue.add(["garage", "gate"][adds % 2], crops[adds % len(crops)], {"guess": "empty", "reason": "margin"})
        adds += 1
        used = sum(e.stat().st_size for d in os.scandir(folder / "main") if d.is_dir()
                   for e in os.scandir(d.path))
        largest = max(largest, used)
        time.sleep(0.1)
    print(f"review queue, cap {cap} bytes ({cap_mb:g} MB): {adds} crops of {min(map(len, crops))}-"
          f"{max(map(len, crops))} bytes added over {minutes:g} min, {queue.dropped} dropped oldest first; "
          f"largest size seen {largest} bytes ({100 * largest / cap:.1f} % of the cap), never above: "
          f"{largest <= cap}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--what", default="retrain,accuracy,queue")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--held-out", type=int, default=100)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--cap-mb", type=float, default=5.0)
    args = p.parse_args()
    scene = Scene(SHARED / "images" / "imagenet-sample")
    for what in args.what.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            setup(Path(tmp))
            if what == "retrain":
                measure_retrain(scene, Path(tmp), args.rounds)
            elif what == "accuracy":
                measure_accuracy(scene, Path(tmp), args.held_out)
            elif what == "queue":
                measure_queue(scene, Path(tmp), args.minutes, args.cap_mb)
    return 0


if __name__ == "__main__":
    sys.exit(main())

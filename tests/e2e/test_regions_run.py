"""``edgecam run`` with regions, end to end: a generated clip of a scene switching state on a
schedule, a head learned from other frames of that scene, and the log's per-region state following
the schedule; motion on a still scene; ``systemctl reload`` (SIGHUP) taking a head learned again."""

from __future__ import annotations

import json
import shutil
import signal

import pytest

from tests.conftest import run_cli
from tests.e2e import Edgecam, free_port, read_log, run_args, write_config
from tests.scenes import REGION, Scene, write_examples, write_video

SCHEDULE = [("empty", 25), ("scooter", 30), ("tricycle", 30), ("empty", 25)]


@pytest.fixture(scope="module")
def scene(shared_dir):
    return Scene(shared_dir / "images" / "imagenet-sample")


@pytest.fixture
def garage(scene, model_cache, model_env, tmp_path):
    """A model folder holding the registry models and a head 'garage' learned from 10 frames per state."""
    folder = tmp_path / "models"
    shutil.copytree(model_cache, folder)
    env = dict(model_env, EDGECAM_MODEL_DIR=str(folder))
    write_examples(scene, tmp_path / "examples", per_state=10, seed=11)
    proc = run_cli(["learn", str(tmp_path / "examples"), "--name", "garage"], env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return env


def region_config(**region) -> dict:
    return {"regions": [{"name": "garage", "box": list(REGION), "model": "garage", **region}],
            "smoothing": {"mode": "ema", "window": 3, "hysteresis": True, "threshold_high": 0.6,
                          "threshold_low": 0.4}}


def test_the_logged_state_follows_the_schedule(scene, garage, tmp_path):
    video = tmp_path / "scene.mp4"
    truth = write_video(scene, video, SCHEDULE, fps=10, seed=3)
    cfg = write_config(tmp_path / "cfg.yaml", region_config())
    log = tmp_path / "log.jsonl"
    with Edgecam(run_args(cfg, "--source", str(video), "--log", str(log)), garage, tmp_path) as app:
        assert app.wait() == 0
    lines = read_log(log)
    assert [line["frame"] for line in lines] == list(range(len(truth)))
    states = [line["regions"]["garage"]["label"] for line in lines]
    assert all(line["regions"]["garage"]["classified"] for line in lines)
    agree = sum(s == t for s, t in zip(states, truth)) / len(truth)
    assert agree >= 0.95, list(zip(truth, states))
    changes = [(line["frame"], e["label"]) for line in lines for e in line.get("region_events", [])]
    assert [label for _, label in changes] == ["empty", "scooter", "tricycle", "empty"]
    boundaries = [0, 25, 55, 85]
    assert all(abs(frame - b) <= 2 for (frame, _), b in zip(changes, boundaries)), changes
    assert all(line["top_k"] == [] and line["model"] == "garage" for line in lines)


def test_motion_on_a_still_scene_classifies_only_when_it_changes(scene, garage, tmp_path):
    video = tmp_path / "still.mp4"
    truth = write_video(scene, video, SCHEDULE, fps=10, seed=4, still=True)
    cfg = write_config(tmp_path / "cfg.yaml", region_config(motion=True))
    log = tmp_path / "log.jsonl"
    with Edgecam(run_args(cfg, "--source", str(video), "--log", str(log)), garage, tmp_path) as app:
        assert app.wait() == 0
    lines = read_log(log)
    classified = [line["frame"] for line in lines if line["regions"]["garage"]["classified"]]
    # Each step of the schedule is one still picture: classified when it appears and for the EMA's
    # window after (3 frames; the codec's first frames of a step may differ a little more), not later.
    assert len(classified) <= 6 * len(SCHEDULE) and classified[0] == 0
    assert all(any(0 <= f - b <= 2 for f in classified) for b in (0, 25, 55, 85))
    states = [line["regions"]["garage"]["label"] for line in lines]
    assert sum(s == t for s, t in zip(states, truth)) / len(truth) >= 0.95


def test_sighup_swaps_in_a_head_learned_again(scene, garage, tmp_path):
    video = tmp_path / "scene.mp4"
    write_video(scene, video, [("scooter", 20), ("empty", 20)], fps=10, seed=5)
    port = free_port()
    cfg = {**region_config(), "source": {"type": "opencv", "uri": str(video), "loop": True},
           "http": {"enabled": True, "port": port}, "examples_dir": str(tmp_path / "web-examples")}
    cfg_path = write_config(tmp_path / "cfg.yaml", cfg)
    log = tmp_path / "log.jsonl"
    with Edgecam(run_args(cfg_path, "--log", str(log), "--realtime"), garage, tmp_path) as app:
        app.wait_until(lambda: len(read_log(log)) >= 15, "15 log lines")
        assert {line["regions"]["garage"]["label"] for line in read_log(log)} <= {"empty", "scooter", "tricycle"}
        # The outputs of a run with regions, over HTTP.
        app.wait_http(port)
        latest = json.loads(app.get("/api/latest")[2])
        assert set(latest["regions"]) == {"garage"} and latest["top_k"] == []
        metrics = app.metrics()
        assert any(k.startswith('edgecam_region_state{region="garage"') for k in metrics)
        assert metrics['edgecam_region_classified_total{region="garage"}'] >= 15
        status, _, crop = app.get("/region/garage.jpg")
        assert status == 200 and crop[:2] == b"\xff\xd8"
        regions = json.loads(app.get("/api/regions")[2])["regions"]
        assert regions[0]["labels"] == ["empty", "scooter", "tricycle"]
        # Learn again: the same examples, the states renamed (as a user would after changing their mind).
        examples = tmp_path / "examples"
        (examples / "scooter").rename(examples / "parked")
        shutil.rmtree(examples / "tricycle")
        proc = run_cli(["learn", str(examples), "--name", "garage", "--force"], env=garage, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        at = len(read_log(log))
        app.send(signal.SIGHUP)
        app.wait_until(lambda: "new head" in app.stderr(), "the reload's new-head line")
        app.wait_until(lambda: {"parked"} & {line["regions"]["garage"]["label"] for line in read_log(log)[at:]},
                       "the new state 'parked' in the log")
        after = read_log(log)[at:]
        switch = next(i for i, line in enumerate(after) if line["regions"]["garage"]["label"] == "parked")
        assert {line["regions"]["garage"]["label"] for line in after[switch:]} <= {"parked", "empty", "unknown"}
        assert app.running
        assert app.stop() == 0
    assert "Traceback" not in app.stderr()


def test_bench_takes_a_custom_model_and_a_config_with_regions(scene, garage, tmp_path):
    video = tmp_path / "scene.mp4"
    write_video(scene, video, [("scooter", 30)], fps=10, seed=6)
    whole = run_cli(["bench", "--source", str(video), "--model", "garage", "--json"], env=garage, cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    assert json.loads(whole.stdout.splitlines()[-1])["model"] == "garage"
    cfg = write_config(tmp_path / "cfg.yaml", region_config(motion=True))
    regions = run_cli(["bench", "--source", str(video), "--config", str(cfg), "--json"], env=garage, cwd=tmp_path)
    assert regions.returncode == 0, regions.stderr
    assert json.loads(regions.stdout.splitlines()[-1])["frames"] == 30

"""``edgecam bench``: one JSON object with the measured figures (their values are not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

KEYS = ("frames", "fps", "invoke_ms_p50", "cpu_ms_per_frame", "rss_mb")


@pytest.fixture(scope="module")
def video(shared_dir) -> str:
    return str(shared_dir / "video" / "imagenet20_640x480_30fps.mp4")


def bench(args, env, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgecam", "bench", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("extra, mode", [([], "pipeline"), (["--peer-loop"], "peer-loop")])
def test_bench_prints_one_json_object(video, model_env, tmp_path, extra, mode):
    p = bench(["--source", video, "--frames", "60", "--json", *extra], model_env, tmp_path)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)  # the whole of stdout is one JSON object
    assert isinstance(res, dict) and res["mode"] == mode
    assert res["frames"] == 60
    for key in KEYS:
        assert isinstance(res[key], (int, float)) and res[key] > 0, key
    assert res["model"] == "mobilenet_v3_small"
    if mode == "pipeline":
        assert res["frames_inferred"] == 60 and res["dropped"] == 0  # every_frame: each frame classified
        assert res["exit_code"] == 0
        assert set(res["stage_ms"]) == {"decode", "preprocess", "invoke", "postprocess", "overlay"}
        assert res["stage_ms"]["overlay"] > 0  # drawn, as a display would need
        assert res["latency_ms_p50"] >= res["invoke_ms_p50"]


def test_bench_text_report(video, model_env, tmp_path):
    p = bench(["--source", video, "--frames", "30"], model_env, tmp_path)
    assert p.returncode == 0, p.stderr
    assert "frames          30" in p.stdout and "throughput" in p.stdout and "invoke" in p.stdout


@pytest.mark.parametrize("extra", [[], ["--peer-loop"]])
def test_bench_on_a_missing_video_is_exit_3(model_env, tmp_path, extra):
    missing = tmp_path / "missing.mp4"
    p = bench(["--source", str(missing), "--frames", "10", "--json", *extra], model_env, tmp_path)
    assert p.returncode == 3, p.stderr
    assert p.stdout == ""  # no figures for a run that never happened
    errors = [line for line in p.stderr.splitlines() if line.startswith("edgecam: ")]
    assert len(errors) == 1 and str(missing) in errors[0] and "Traceback" not in p.stderr

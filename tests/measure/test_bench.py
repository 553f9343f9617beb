"""``edgecam bench``: one JSON object with the measured figures (their values are not judged here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

KEYS = ("frames", "fps", "invoke_ms_p50", "cpu_ms_per_frame_steady", "cpu_ms_per_frame_with_load", "rss_mb")


@pytest.fixture(scope="module")
def video(shared_dir) -> str:
    return str(shared_dir / "video" / "imagenet20_640x480_30fps.mp4")


def bench(args, env, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgecam", "bench", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("extra, mode", [([], "pipeline"), (["--peer-loop"], "peer-loop")])
def test_bench_prints_one_json_object(video, model_env, tmp_path, extra, mode):
    p = bench(["--source", video, "--frames", "60", "--threads", "1", "--json", *extra], model_env, tmp_path)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)  # the whole of stdout is one JSON object
    assert isinstance(res, dict) and res["mode"] == mode
    assert res["frames"] == 60 and res["layout"] == "1x1"
    assert res["steady_frames"] == 60 - 12  # the first fifth of a short run is left out
    # The whole process (imports, model load) costs more per frame than the steady state.
    assert res["cpu_ms_per_frame_with_load"] > res["cpu_ms_per_frame_steady"]
    for key in KEYS:
        assert isinstance(res[key], (int, float)) and res[key] > 0, key
    assert res["model"] == "mobilenet_v3_small"
    if mode == "pipeline":
        assert res["frames_inferred"] == 60 and res["dropped"] == 0  # every_frame: each frame classified
        assert res["exit_code"] == 0 and res["layout_from"] == "explicit"
        assert set(res["stage_ms"]) == {"decode", "preprocess", "invoke", "postprocess", "overlay"}
        assert res["stage_ms"]["overlay"] > 0  # drawn, as a display would need
        assert res["latency_ms_p50"] >= res["invoke_ms_p50"]


def test_bench_text_report(video, model_env, tmp_path):
    p = bench(["--source", video, "--frames", "30", "--threads", "2"], model_env, tmp_path)
    assert p.returncode == 0, p.stderr
    assert "frames          30" in p.stdout and "throughput" in p.stdout and "invoke" in p.stdout
    assert "1 interpreter x 2 threads" in p.stdout
    assert "ms steady state (the last 24 frames)" in p.stdout
    assert "ms with load (the whole process: imports, model load, start-up)" in p.stdout


@pytest.mark.parametrize("extra", [[], ["--peer-loop"]])
def test_bench_on_a_missing_video_is_exit_3(model_env, tmp_path, extra):
    missing = tmp_path / "missing.mp4"
    p = bench(["--source", str(missing), "--frames", "10", "--json", *extra], model_env, tmp_path)
    assert p.returncode == 3, p.stderr
    assert p.stdout == ""  # no figures for a run that never happened
    errors = [line for line in p.stderr.splitlines() if line.startswith("edgecam: ")]
    assert len(errors) == 1 and str(missing) in errors[0] and "Traceback" not in p.stderr


@pytest.fixture
def own_models(model_cache, model_env, tmp_path) -> tuple[dict, object]:
    """A model folder of this test's own (so that no other test's calibration is found in it)."""
    import shutil

    folder = tmp_path / "models"
    folder.mkdir()
    for f in model_cache.iterdir():
        if f.name.startswith("v3-small") and f.suffix == ".tflite" or f.name == "imagenet_labels.txt":
            shutil.copy2(f, folder)
    return dict(model_env, EDGECAM_MODEL_DIR=str(folder)), folder


#: Frames a run takes to measure every layout: each window lasts 0.5 s or more (calibration.MIN_WINDOW_S),
#: 4 layouts x 3 rounds on 2 cores: about 7 s, 2,000 frames leave room for a machine twice as fast.
CALIBRATION_FRAMES = 2000


def measurable_layouts():
    """The candidate layouts here, or a skip when they are too many to measure within CALIBRATION_FRAMES."""
    from edgecam.model.calibration import MIN_WINDOW_S, ROUNDS, candidates

    layouts = candidates(len(os.sched_getaffinity(0)))
    if len(layouts) < 2 or len(layouts) > 5:
        pytest.skip(f"{len(layouts)} candidate layouts on this machine: {len(layouts) * ROUNDS} windows of "
                    f"{MIN_WINDOW_S} s or more do not fit {CALIBRATION_FRAMES} frames")
    return layouts


def test_threads_auto_measures_in_the_run_then_reuses_the_cache(video, own_models, tmp_path):
    env, folder = own_models
    layouts = measurable_layouts()
    first = bench(["--source", video, "--loop", "--frames", str(CALIBRATION_FRAMES), "--json"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    a = json.loads(first.stdout)
    assert a["layout_from"] == "measuring" and a["calibration"]["done"]
    assert set(a["calibration"]["measured"]) == {str(lay) for lay in layouts}
    # every frame classified through the switches
    assert a["frames"] == a["frames_inferred"] == CALIBRATION_FRAMES
    cache = folder / "v3-small_224_1.0_uint8.tflite.threads.json"
    assert cache.is_file() and "threads auto: chose" in first.stderr
    [record] = json.loads(cache.read_text())["entries"].values()
    assert record["how"] == "in-run" and record["key"]["policy"] == "every_frame"
    assert record["layout"] == a["layout"]  # the run went on with what it chose

    second = bench(["--source", video, "--frames", "60", "--json"], env, tmp_path)
    assert second.returncode == 0, second.stderr
    b = json.loads(second.stdout)
    assert b["layout_from"] == "cached" and b["layout"] == record["layout"]
    assert b["calibration"]["measured"] == record["measured"]
    assert "measuring" not in second.stderr


def test_sweep_prints_the_table_and_caches_its_choice(video, own_models, tmp_path):
    env, folder = own_models
    p = bench(["--source", video, "--sweep", "--rounds", "1", "--frames", "40", "--json"], env, tmp_path)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["mode"] == "sweep" and res["policy"] == "every_frame" and res["rounds"] == 1
    cores = len(os.sched_getaffinity(0))
    layouts = [row["layout"] for row in res["rows"]]
    assert layouts[:cores] == [f"1x{t}" for t in range(1, cores + 1)]
    assert res["chosen"] in layouts
    for row in res["rows"]:
        assert row["fps"] > 0 and row["cpu_ms_per_frame_steady"] > 0 and row["latency_ms_p95"] >= row["latency_ms_p50"]
        assert len(row["runs"]) == 1
    record = json.loads((folder / "v3-small_224_1.0_uint8.tflite.threads.json").read_text())
    [entry] = record["entries"].values()
    assert entry["how"] == "bench --sweep" and entry["layout"] == res["chosen"]
    best = max(row["fps"] for row in res["rows"])
    assert next(r for r in res["rows"] if r["layout"] == res["chosen"])["fps"] >= 0.97 * best

    text = bench(["--source", video, "--sweep", "--rounds", "1", "--frames", "20"], env, tmp_path)
    assert text.returncode == 0, text.stderr
    assert "frames/s" in text.stdout and "CPU ms/frame" in text.stdout and "latency p50" in text.stdout
    assert "<- threads: auto" in text.stdout and "chosen: " in text.stdout and "cached in" in text.stdout


@pytest.mark.parametrize("extra, what", [
    (["--threads", "2"], "leave out --threads"),
    (["--peer-loop"], "does not go with --peer-loop"),
    (["--rounds", "0"], "--rounds 0"),
])
def test_sweep_usage_errors_are_one_line_exit_2(video, model_env, tmp_path, extra, what):
    p = bench(["--source", video, "--sweep", *extra], model_env, tmp_path)
    assert p.returncode == 2 and p.stdout == ""
    assert what in p.stderr and "Traceback" not in p.stderr


def test_threads_auto_on_a_read_only_filesystem_measures_and_says_why_it_cannot_cache(video, own_models, tmp_path):
    """As under the service's sandbox (ProtectSystem=strict) for a model outside its StateDirectory."""
    import shutil

    env, folder = own_models
    measurable_layouts()
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare to mount the model folder read-only")
    script = (f"mount --bind {folder} {folder} && mount -o remount,ro,bind {folder} || exit 99; "
              f"exec {sys.executable} -m edgecam bench --source {video} --loop --frames {CALIBRATION_FRAMES} --json "
              f"--model {folder / 'v3-small_224_1.0_uint8.tflite'} --labels {folder / 'imagenet_labels.txt'}")
    p = subprocess.run(["unshare", "-m", "sh", "-c", script], env=dict(env, EDGECAM_LOG_LEVEL="DEBUG"),
                       cwd=tmp_path, capture_output=True, text=True, timeout=180)
    if p.returncode == 99:
        pytest.skip(f"cannot mount read-only here: {p.stderr.strip()[-200:]}")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["calibration"]["done"]
    lines = [line for line in p.stderr.splitlines() if "not caching the calibration" in line]
    assert len(lines) == 1 and "DEBUG" in lines[0] and "Read-only file system" in lines[0], p.stderr
    assert "Traceback" not in p.stderr and res["frames"] == CALIBRATION_FRAMES
    assert not list(folder.glob("*.threads.json")) and not list(folder.glob(".*tmp"))


@pytest.mark.parametrize("extra, mode", [([], "cameras"), (["--peer-loop"], "peer-loops")])
def test_bench_with_several_sources_gives_each_camera_and_the_total(video, model_env, tmp_path, extra, mode):
    p = bench(["--source", video, "--source", video, "--frames", "40", "--threads", "1", "--json", *extra],
              model_env, tmp_path)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["mode"] == mode and set(res["cameras"]) == {"cam1", "cam2"}
    assert [c["frames"] for c in res["cameras"].values()] == [40, 40]
    assert res["frames"] == 80 and res["fps"] > 0 and res["rss_mb"] > 0
    if mode == "cameras":  # one run: every frame of both files inferred, on one interpreter
        assert res["layout"] == "1x1" and all(c["dropped"] == 0 for c in res["cameras"].values())
        assert all(c["latency_ms_p50"] >= c["invoke_ms_p50"] > 0 for c in res["cameras"].values())
    text = bench(["--source", video, "--source", video, "--frames", "20", "--threads", "1", *extra], model_env,
                 tmp_path)
    assert text.returncode == 0, text.stderr
    assert "2 sources, 40 frames" in text.stdout
    assert text.stdout.count("frames/s") == 3  # the total and each camera


@pytest.mark.parametrize("extra", [[], ["--peer-loop"]])
def test_loop_replays_the_file_for_runs_longer_than_it(video, model_env, tmp_path, extra):
    p = bench(["--source", video, "--frames", "330", "--threads", "1", "--loop", "--json", *extra], model_env,
              tmp_path)  # the clip has 300 frames
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["frames"] == 330

"""``edgecam run`` end to end, in subprocesses, on the real model and the shared video.

Every run uses ``cwd=tmp_path`` (so no ./config.yaml is picked up) and the
``model_env`` environment (models from ../shared through the registry cache).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.doubles import Besides, alive, background, one_error_line, wait_until
from tests.xvfb import picture_box, xvfb  # noqa: F401  (fixture)

LOG_KEYS = {"timestamp", "frame", "latency_ms", "inference_ms", "model", "top_k"}
WAIT_S = 60.0  # bounds for "it started" / "it ended": generous, never a speed requirement


@pytest.fixture(scope="module")
def video(shared_dir) -> str:
    return str(shared_dir / "video" / "imagenet20_640x480_30fps.mp4")


@pytest.fixture(scope="module")
def expected_labels(shared_dir) -> dict[int, int]:
    """frame -> expected label index, from the clip's segment list."""
    out = {}
    with open(shared_dir / "video" / "imagenet20_segments.csv", newline="") as f:
        for row in csv.DictReader(f):
            for i in range(int(row["first_frame"]), int(row["last_frame"]) + 1):
                out[i] = int(row["label_index"])
    return out


@pytest.fixture
def env(model_env) -> dict:
    e = dict(model_env)
    e.pop("DISPLAY", None)
    e.pop("WAYLAND_DISPLAY", None)
    return e


def edgecam(*args: str) -> list[str]:
    return [sys.executable, "-m", "edgecam", *args]


def run(args, env, cwd, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(edgecam(*args), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def started(args, env, cwd):
    """``edgecam ARGS`` running in the background; killed on the way out if the test left it running."""
    return background(edgecam(*args), env, cwd)


def read_log(path: Path) -> list[dict]:
    """Every line as JSON (a line that does not parse fails the test)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def dead_display() -> str:
    for n in range(917, 999):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(f"\0/tmp/.X11-unix/X{n}")
            except OSError:
                return f":{n}"
    pytest.skip("no unused X display number found")


# -- the normal run --------------------------------------------------------------


def test_run_logs_every_frame_and_agrees_with_the_clip(video, expected_labels, env, tmp_path):
    log = tmp_path / "pred.jsonl"
    p = run(["run", "--source", video, "--display", "none", "--log", str(log)], env, tmp_path)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    lines = read_log(log)
    assert [l["frame"] for l in lines] == list(range(300))  # file: every frame, in order
    for l in lines:
        assert LOG_KEYS <= set(l)
        assert l["model"] == "mobilenet_v3_small"
        assert len(l["top_k"]) == 3 and l["inference_ms"] > 0 and l["latency_ms"] >= l["inference_ms"]
    hits = sum(l["top_k"][0]["index"] == expected_labels[l["frame"]] for l in lines)
    assert hits / 300 >= 0.6, f"top-1 matched the clip on {hits}/300 frames"


def test_changes_mode_logs_only_label_changes(video, env, tmp_path):
    cfg = tmp_path / "changes.yaml"
    cfg.write_text("log:\n  mode: changes\n")
    log = tmp_path / "changes.jsonl"
    p = run(["run", "--config", str(cfg), "--source", video, "--display", "none", "--log", str(log)], env, tmp_path)
    assert p.returncode == 0, p.stderr
    lines = read_log(log)
    assert 20 <= len(lines) < 300  # at least one per photo of the clip, far from one per frame
    previous = None
    for l in lines:
        assert LOG_KEYS <= set(l)
        assert l["event"]["previous"] == previous and l["event"]["label"] != previous
        assert l["event"]["label"] == l["top_k"][0]["label"]  # no smoothing: the shown label is the top
        previous = l["event"]["label"]
    assert lines[0]["frame"] == 0 and lines[0]["event"]["previous"] is None


def test_headless_without_outputs_prints_label_changes_to_stdout(video, env, tmp_path):
    # Over SSH with no window, log, HTTP or MQTT: one line per label change, the
    # same changes a changes-mode log records for the same clip.
    p = run(["run", "--source", video, "--display", "auto"], env, tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("printing each label change to stdout") == 1
    printed = [re.fullmatch(r"(\S+)  frame (\d+) +(\S+)  (.+)", line) for line in p.stdout.splitlines()]
    assert printed and all(printed), p.stdout[:500]

    cfg = tmp_path / "changes.yaml"
    cfg.write_text("log:\n  mode: changes\n")
    log = tmp_path / "changes.jsonl"
    logged = run(["run", "--config", str(cfg), "--source", video, "--display", "none", "--log", str(log)], env, tmp_path)
    assert logged.returncode == 0, logged.stderr
    assert logged.stdout == ""  # an output is configured: nothing on stdout
    assert "printing each label change" not in logged.stderr
    changes = [(l["frame"], l["event"]["label"]) for l in read_log(log)]
    assert [(int(m[2]), m[4]) for m in printed] == changes


def test_headless_auto_display_runs_without_a_window(video, env, tmp_path):
    log = tmp_path / "auto.jsonl"
    p = run(["run", "--source", video, "--display", "auto", "--log", str(log)], env, tmp_path)
    assert p.returncode == 0, p.stderr
    assert len(read_log(log)) == 300


def test_auto_display_with_a_stale_display_runs_headless(video, env, tmp_path):
    # Before: Qt aborted the process (SIGABRT) trying to reach the vanished X server.
    log = tmp_path / "stale.jsonl"
    p = run(["run", "--source", video, "--display", "auto", "--log", str(log)], {**env, "DISPLAY": dead_display()},
            tmp_path)
    assert p.returncode == 0, p.stderr
    assert len(read_log(log)) == 300


# -- signals ---------------------------------------------------------------------------


def realtime(video, env, tmp_path, log):
    return started(["run", "--source", video, "--display", "none", "--realtime", "--log", str(log)], env, tmp_path)


def test_sigterm_stops_a_realtime_run_cleanly(video, env, tmp_path):
    log = tmp_path / "rt.jsonl"
    with realtime(video, env, tmp_path, log) as proc:
        wait_until(lambda: count_lines(log) >= 3, "the first results", timeout=WAIT_S, check=alive(proc, "the first results"))
        time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 0, err
    assert "SIGTERM received" in err and "Traceback" not in err
    lines = read_log(log)
    assert 3 <= len(lines) < 300  # stopped mid-clip: a 10 s clip played at its own pace
    assert LOG_KEYS <= set(lines[-1])
    frames = [l["frame"] for l in lines]
    assert frames == sorted(set(frames))


def test_sigkill_leaves_a_log_where_every_line_parses(video, env, tmp_path):
    log = tmp_path / "killed.jsonl"
    with realtime(video, env, tmp_path, log) as proc:
        wait_until(lambda: count_lines(log) >= 20, "20 logged results", timeout=WAIT_S, check=alive(proc, "20 logged results"))
        proc.kill()
        proc.communicate(timeout=WAIT_S)
    assert proc.returncode == -signal.SIGKILL
    text = log.read_text(encoding="utf-8")
    assert text.endswith("\n")
    lines = read_log(log)
    assert len(lines) >= 20 and all(LOG_KEYS <= set(l) for l in lines)


# -- bad input: one line, its own exit code, nothing half-opened ---------------------


@pytest.mark.parametrize("display", [None, "dead"])
def test_window_without_a_display_is_a_one_line_error(video, env, tmp_path, display):
    if display:
        env = {**env, "DISPLAY": dead_display()}
    p = run(["run", "--source", video, "--display", "window"], env, tmp_path)
    one_error_line(p, 4, "display window", "--display none", besides=Besides.ANYTHING)
    assert p.returncode != -signal.SIGABRT


def test_bad_config_fails_before_the_source_is_opened(env, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("source:\n  fps: -5\n")
    p = run(["run", "--config", str(cfg), "--source", str(tmp_path / "missing.mp4"), "--display", "none"], env,
            tmp_path)
    one_error_line(p, 2, "source.fps", str(cfg), besides=Besides.ANYTHING)  # 2 (config), not 3 (the missing video)
    assert "opened" not in p.stderr


def test_missing_model_file_is_exit_2(shared_dir, env, tmp_path):
    labels = shared_dir / "models" / "imagenet_labels.txt"
    p = run(["run", "--model", str(tmp_path / "nope.tflite"), "--labels", str(labels),
             "--source", str(tmp_path / "missing.mp4"), "--display", "none"], env, tmp_path)
    one_error_line(p, 2, "nope.tflite", besides=Besides.ANYTHING)


def test_unwritable_log_folder_is_exit_4_before_the_source(env, tmp_path):
    p = run(["run", "--source", str(tmp_path / "missing.mp4"), "--display", "none", "--log", "/proc/nope/log.jsonl"],
            env, tmp_path)
    one_error_line(p, 4, "/proc/nope/log.jsonl", besides=Besides.ANYTHING)


def test_missing_video_is_exit_3(env, tmp_path):
    missing = tmp_path / "missing.mp4"
    p = run(["run", "--source", str(missing), "--display", "none"], env, tmp_path)
    one_error_line(p, 3, str(missing), besides=Besides.ANYTHING)


# -- hostile input (issue 9): one line, its documented exit code ---------------------


@pytest.mark.parametrize("source, code, words", [
    pytest.param("99999999999999999999", 3, ["no such webcam index"], id="huge-index"),  # was exit 1, 7 lines
    pytest.param("", 2, ["--source", "empty"], id="empty"),  # was read as the current folder
    pytest.param("   ", 2, ["--source", "empty"], id="blank"),
])
def test_a_bad_source_flag_is_one_line(env, tmp_path, source, code, words):
    p = run(["run", "--source", source, "--display", "none"], env, tmp_path)
    one_error_line(p, code, *words, besides=Besides.INFO_LOGS)


def test_a_bad_flag_names_the_flag_not_the_config_file(video, env, tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("model:\n  top_k: 3\n")
    p = run(["run", "--config", str(cfg), "--threads", "0", "--source", video, "--display", "none"], env, tmp_path)
    line = one_error_line(p, 2, "--threads: got 0, expected a value between 1 and 64", besides=Besides.INFO_LOGS)
    assert str(cfg) not in line and "config.yaml" not in line


def broken_video(tmp_path) -> str:
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\0\0\0\x20ftypisom" + bytes(4000))  # an MP4 header, then no moov atom
    return str(path)


def absent_device() -> str:
    n = next(n for n in range(7, 100) if not Path(f"/dev/video{n}").exists())
    return f"/dev/video{n}"


# source, what the library prints on stderr by itself
NATIVE = [
    pytest.param(broken_video, "moov atom not found", id="ffmpeg-moov"),
    pytest.param(lambda tmp: absent_device(), "Cannot open video device", id="v4l2-device"),
    pytest.param(lambda tmp: "57", "[ERROR:0@", id="opencv-index"),
    pytest.param(lambda tmp: "rtsp://127.0.0.1:1/none", "Connection refused", id="ffmpeg-network"),
]


@pytest.mark.parametrize("make, native", NATIVE)
def test_library_lines_stay_off_the_terminal_unless_debug(env, tmp_path, make, native):
    source = make(tmp_path)
    p = run(["run", "--source", source, "--display", "none"], env, tmp_path)
    one_error_line(p, 3, source, besides=Besides.INFO_LOGS)
    assert native not in p.stderr
    p = run(["--debug", "run", "--source", source, "--display", "none"], env, tmp_path)
    assert p.returncode == 3 and native in p.stderr  # --debug: the library's own words, as it printed them


def test_library_lines_are_in_the_debug_log(env, tmp_path):
    cfg = tmp_path / "debug.yaml"
    cfg.write_text("log_level: DEBUG\n")
    p = run(["run", "--config", str(cfg), "--source", broken_video(tmp_path), "--display", "none"], env, tmp_path)
    assert p.returncode == 3
    (line,) = [l for l in p.stderr.splitlines() if "moov atom not found" in l]
    assert "DEBUG edgecam.native: " in line


def test_a_codec_opencv_cannot_write_is_refused_before_the_source_opens(video, env, tmp_path):
    # Before: a traceback, exit 0, a 0-byte file and no recording.
    cfg = tmp_path / "rec.yaml"
    cfg.write_text("record:\n  fourcc: ZZZZ\n")
    out = tmp_path / "out.mp4"
    p = run(["run", "--config", str(cfg), "--source", video, "--display", "none", "--record", str(out)], env,
            tmp_path)
    one_error_line(p, 2, "record.fourcc: got 'ZZZZ'", ".mp4", "MJPG", besides=Besides.INFO_LOGS)
    assert "is not found" not in p.stderr  # FFmpeg's own complaint stays in the debug log
    assert not out.exists() and "opened" not in p.stderr


@pytest.mark.parametrize("text, words", [
    pytest.param("model:\n  crop: center_fraction\n  crop_fraction: .nan\n", "model.crop_fraction: got nan",
                 id="nan-crop"),  # was a capture-thread traceback, exit 1
    pytest.param("model:\n  threshold: .nan\n", "model.threshold: got nan", id="nan-threshold"),  # was ignored
    pytest.param("source:\n  timeout_s: .nan\n", "source.timeout_s: got nan", id="nan-timeout"),
])
def test_nan_in_the_config_is_exit_2(video, env, tmp_path, text, words):
    cfg = tmp_path / "nan.yaml"
    cfg.write_text(text)
    p = run(["run", "--config", str(cfg), "--source", video, "--display", "none"], env, tmp_path)
    one_error_line(p, 2, str(cfg), words, besides=Besides.INFO_LOGS)


def test_a_yaml_alias_bomb_fails_fast_with_one_line(env, tmp_path):
    from tests.config.test_config import alias_bomb

    import resource

    cfg = tmp_path / "bomb.yaml"
    cfg.write_text(alias_bomb(9))  # 9**9 strings once expanded: 30 s and 1.5 GB to print before

    def limit_memory():  # a broken build fails with MemoryError instead of taking the machine's memory
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    p = subprocess.run(edgecam("run", "--config", str(cfg), "--display", "none"), env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=WAIT_S, preexec_fn=limit_memory)
    line = one_error_line(p, 2, "model.name: got [[", besides=Besides.INFO_LOGS)
    assert len(line) < 500


def test_a_folder_of_unreadable_images_is_exit_3(env, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"not a jpeg")
    (folder / "b.png").write_bytes(b"")
    p = run(["run", "--source", str(folder), "--display", "none"], env, tmp_path)
    # Was exit 0 with no frames.
    one_error_line(p, 3, str(folder), "none of its 2 image files", besides=Besides.INFO_LOGS)


def test_a_disk_that_fills_mid_run_leaves_only_whole_lines(video, env, tmp_path, small_disk):
    # issue 9 #1: half a line stayed on disk and the next record was appended to it.
    filler = small_disk / "filler"
    filler.write_bytes(b"x" * 40_000)  # 24 KB left: full after about 70 results
    log = small_disk / "x.jsonl"
    with realtime(video, env, tmp_path, log) as proc:
        wait_until(lambda: _full(log), "the disk to fill", timeout=WAIT_S, check=alive(proc, "the disk to fill"))
        at_full = count_lines(log)
        time.sleep(2.0)  # a couple of seconds of results while full
        filler.unlink()  # space comes back (64 KB in all: not enough for the whole clip's 100 KB)
        out, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 0, err  # results went on, and some lines could be written
    assert err.count("cannot write (No space left on device)") == 1
    lines = read_log(log)  # every line parses
    frames = [l["frame"] for l in lines]
    assert frames == sorted(set(frames)) and all(LOG_KEYS <= set(l) for l in lines)
    assert len(lines) > at_full + 50, err  # what waited in memory went to disk once there was room
    # What never fitted is counted and said, once, at the end.
    (lost, total) = map(int, re.search(r"(\d+) of (\d+) predictions could not be written", err).groups())
    assert lost + len(lines) == total and lost > 0


def _full(path: Path) -> bool:
    st = os.statvfs(path.parent)
    return st.f_bavail == 0


def test_a_log_where_nothing_can_be_written_is_exit_4_with_a_summary(video, env, tmp_path):
    # issue 9 #9: --log /dev/full exited 0 with no summary.
    p = run(["run", "--source", video, "--display", "none", "--log", "/dev/full"], env, tmp_path)
    assert p.returncode == 4, p.stderr
    assert "Traceback" not in p.stderr
    assert "log /dev/full: none of the 300 predictions could be written (No space left on device)" in p.stderr


def test_a_log_fifo_without_a_reader_is_exit_4_at_once(video, env, tmp_path):
    # issue 9 #9: the run hung before starting, waiting for a reader.
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    p = run(["run", "--source", video, "--display", "none", "--log", str(fifo)], env, tmp_path, timeout=WAIT_S)
    one_error_line(p, 4, str(fifo), "named pipe with no reader", besides=Besides.INFO_LOGS)


@contextlib.contextmanager
def stalled_download():
    """An HTTP server that takes a request and never answers: a model download that hangs."""
    server = socket.create_server(("127.0.0.1", 0))
    asked = threading.Event()
    done = threading.Event()
    conns = []

    def serve():
        server.settimeout(0.2)
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conns.append(conn)
            conn.recv(4096)
            asked.set()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", asked
    finally:
        done.set()
        t.join(5)
        for c in conns:
            c.close()
        server.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_while_the_model_downloads_exits_0(video, env, tmp_path, sig):
    # issue 9 #9: SIGTERM during start-up killed the process (exit 143); README promises 0.
    import yaml

    with stalled_download() as (base, asked):
        reg = tmp_path / "models.yaml"
        reg.write_text(yaml.safe_dump({"models": {"slow": {
            "description": "a model whose download hangs", "url": f"{base}/slow.tflite", "file": "slow.tflite",
            "sha256": "0" * 64, "labels_url": f"{base}/labels.txt", "labels_sha256": None, "input_size": 224,
            "preprocess": {"input": "uint8", "range": [0, 255]}}}}))
        e = {**env, "EDGECAM_REGISTRY": str(reg), "EDGECAM_MODEL_DIR": str(tmp_path / "cache")}
        e.pop("EDGECAM_MODEL_MIRROR", None)
        with started(["run", "--model", "slow", "--source", video, "--display", "none"], e, tmp_path) as proc:
            assert asked.wait(WAIT_S), "edgecam never asked for the model"
            proc.send_signal(sig)  # edgecam waits in the download
            out, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 0, (proc.returncode, err)
    assert f"{sig.name} received during start-up, stopping" in err and "Traceback" not in err
    assert [l for l in err.splitlines() if l.startswith("edgecam: ")] == []
    assert not any(p.name.endswith(".part") or p.name.startswith(".") for p in (tmp_path / "cache").glob("*"))


def test_every_output_applies_the_one_threshold(tmp_path):
    # issue 9 section 3: the overlay and the log hid labels below model.threshold; /api/latest
    # and MQTT did not. Every output that lists labels gets the config's threshold, and a
    # reload changes it for all of them.
    from edgecam.config import schema as config_mod
    from edgecam.outputs import build_sinks
    from edgecam.result import Classification
    from edgecam.stats import Stats

    cfg = config_mod.from_dict({"model": {"top_k": 4, "threshold": 0.25},
                                "log": {"path": str(tmp_path / "log.jsonl")},
                                "http": {"enabled": True, "port": 0}, "mqtt": {"enabled": True}})
    sinks = {s.name: s for s in build_sinks(cfg, Stats(), on_quit=lambda: None, display=False, source_fps=None)}
    labels = ["background", "cat", "dog", "bird", "fish"]
    r = Classification(np.array([0.05, 0.3, 0.4, 0.2, 0.05], np.float32), labels, model="m", frame_index=0,
                       wall_time=time.time())
    sinks["http"].on_result(r)

    def listed():
        return {
            "log": [e["label"] for e in sinks["log"].record(r)["top_k"]],
            "http": [e["label"] for e in sinks["http"].latest_json()["top_k"]],
            "mqtt": [e["label"] for e in sinks["mqtt"].result_payload(r)["top_k"]],
        }

    assert listed() == dict.fromkeys(("log", "http", "mqtt"), ["dog", "cat"])
    for sink in sinks.values():  # App.reload's loop
        sink.threshold = 0.1
    assert listed() == dict.fromkeys(("log", "http", "mqtt"), ["dog", "cat", "bird"])


# -- recording ------------------------------------------------------------------------


def accent(image: np.ndarray) -> np.ndarray:
    """The overlay's green (score bars, shown label), tolerant of compression."""
    b, g, r = (image[..., i].astype(int) for i in range(3))
    return (g > 150) & (g > r + 60) & (g > b + 60)


def test_record_writes_the_annotated_video(video, env, tmp_path):
    cfg = tmp_path / "rec.yaml"
    cfg.write_text("record:\n  fourcc: MJPG\n")
    out = tmp_path / "out.avi"
    p = run(["run", "--config", str(cfg), "--source", video, "--display", "none", "--record", str(out)], env,
            tmp_path)
    assert p.returncode == 0, p.stderr
    rec, src = cv2.VideoCapture(str(out)), cv2.VideoCapture(video)
    assert rec.isOpened()
    assert rec.get(cv2.CAP_PROP_FPS) == pytest.approx(30.0)
    n = 0
    darkened = []
    while True:
        ok, frame = rec.read()
        ok_src, original = src.read()
        if not ok:
            break
        assert ok_src and frame.shape == (480, 640, 3)
        if n % 10 == 5:
            # Text and bars in the panel top-left; the rest of the picture as it was.
            panel = frame[2:85, 2:250]
            assert (panel.max(axis=2) > 200).sum() > 300
            assert accent(panel).sum() > 100
            assert np.abs(frame[300:, 400:].astype(int) - original[300:, 400:]).mean() < 8
            # The panel's left padding holds no text: there it is the picture, darkened.
            # (Where the clip is letterboxed black there is nothing to darken.)
            before, after = original[2:85, 0:6].mean(), frame[2:85, 0:6].mean()
            if before > 40:
                darkened.append(after < 0.6 * before)
        n += 1
    assert 290 <= n <= 300
    assert len(darkened) >= 3 and all(darkened)


def test_record_keeps_the_source_frame_rate(shared_dir, env, tmp_path):
    clip = tmp_path / "clip10.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (160, 120))
    photo = cv2.resize(cv2.imread(str(shared_dir / "images" / "cat.bmp")), (160, 120))
    for _ in range(20):
        writer.write(photo)
    writer.release()
    cfg = tmp_path / "rec.yaml"
    cfg.write_text("record:\n  fourcc: MJPG\n")
    out = tmp_path / "out.avi"
    p = run(["run", "--config", str(cfg), "--source", str(clip), "--display", "none", "--record", str(out)], env,
            tmp_path)
    assert p.returncode == 0, p.stderr
    rec = cv2.VideoCapture(str(out))
    assert rec.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)  # not the config's 30: it would play 3x too fast
    assert int(rec.get(cv2.CAP_PROP_FRAME_COUNT)) == 20


# -- the window, on a real X server ---------------------------------------------------------


def test_window_shows_the_overlay_and_quits(video, env, tmp_path, xvfb):  # noqa: F811
    with started(["run", "--source", video, "--display", "window", "--realtime"], xvfb.env(env), tmp_path) as proc:
        wid = xvfb.wait_window("edgecam", timeout=WAIT_S)
        time.sleep(2.0)  # a couple of seconds of live video

        def overlay_in(win):
            x, y, w, h = picture_box(win)
            top_left = win[y:y + int(h * 0.18), x:x + int(w * 0.4)]
            return (top_left.size > 0 and np.median(top_left) < 110
                    and (top_left.max(axis=2) > 200).sum() > 200 and accent(top_left).sum() > 50)

        win = xvfb.window_pixels(wid, overlay_in, path=tmp_path / "edgecam-window.png")
        assert overlay_in(win), f"no overlay panel in the window; see {tmp_path / 'edgecam-window.png'}"
        x, y, w, h = picture_box(win)
        assert (w, h) == (pytest.approx(640, rel=0.05), pytest.approx(480, rel=0.05))  # opened at the video's size
        xvfb.key(wid, "q")
        out, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 0, err
    assert "quit key pressed" in err

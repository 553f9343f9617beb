"""``edgecam run`` with event rules, end to end: a generated timeline of shared photos (each shown on a
known schedule) through the real model; the history read with ``edgecam events``; ``kill -9`` during an
event and the repair at the next start."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import run_cli
from tests.e2e import Edgecam, http_get, run_args, write_config
from tests.scenes import letterbox, write_timeline

HOME, CRAB, SHOE = "n03776460_mobile_home.JPEG", "n01980166_fiddler_crab.JPEG", "n04120489_running_shoe.JPEG"
FPS = 10.0
# frames:      0-29   30-59  60-79  80-104  105-124 125-149
SCHEDULE = [(HOME, 30), (CRAB, 30), (HOME, 20), (SHOE, 25), (CRAB, 20), (HOME, 25)]
RULES = [
    {"name": "crab", "label": "fiddler crab", "for_s": 0, "cooldown_s": 0, "clip": True, "pre_s": 2, "post_s": 1},
    {"name": "shoe", "label": "running shoe", "for_s": 1.0, "cooldown_s": 1.0, "min_score": 0.6},
]


@pytest.fixture(scope="module")
def photos(shared_dir):
    return shared_dir / "images" / "imagenet-sample"


def events_json(folder, env, *args) -> list[dict]:
    proc = run_cli(["events", "export", "--dir", str(folder), "--json", *args], env=env)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def clip_frames(path: str) -> list:
    assert path and path.endswith(".avi"), path  # pip's OpenCV has no H.264 encoder: Motion-JPEG AVI
    cap = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            return frames
        frames.append(frame)


def picture_of(frame, pictures: dict) -> str:
    """Which photo of the timeline a (JPEG-compressed) frame shows: the nearest one, and near it."""
    diffs = {name: float(np.abs(frame.astype(np.int16) - img).mean()) for name, img in pictures.items()}
    best = min(diffs, key=diffs.get)
    assert diffs[best] < 6, diffs
    return best


def test_the_events_follow_the_timeline_to_the_frame(photos, model_env, tmp_path):
    video = tmp_path / "timeline.mp4"
    shown = write_timeline(photos, video, SCHEDULE, fps=FPS)
    pictures = {p: letterbox(cv2.imread(str(photos / p))) for p in (HOME, CRAB, SHOE)}
    folder = tmp_path / "events"
    cfg = write_config(tmp_path / "cfg.yaml", {"events": {"dir": str(folder), "rules": RULES}})
    with Edgecam(run_args(cfg, "--source", str(video)), model_env, tmp_path) as app:
        assert app.wait() == 0, app.stderr()
    events = events_json(folder, model_env)
    got = [(e["rule"], e["label"], e["start_frame"], e["end_frame"], e["status"]) for e in events]
    assert got == [("crab", "fiddler crab", 30, 60, "ended"), ("shoe", "running shoe", 80, 105, "ended"),
                   ("crab", "fiddler crab", 105, 125, "ended")], got
    # times on the file's clock: one frame interval (0.1 s) apart from the schedule at most
    for e in events:
        assert abs(e["duration_s"] - (e["end_frame"] - e["start_frame"]) / FPS) <= 1 / FPS + 1e-6
        assert e["peak_score"] >= 0.6
        for key in ("snapshot", "snapshot_clean", "thumb"):
            assert e[key] and Path(e[key]).is_file()
    # the clips: pre_s (2 s = 20 frames) before the start, post_s (1 s = 10 frames) after the end,
    # every frame the one the timeline showed then
    for e, first, last in ((events[0], 10, 69), (events[2], 85, 134)):
        frames = clip_frames(e["clip"])
        assert len(frames) == last - first + 1, (e["clip"], len(frames))
        for k in (0, 19, 20, len(frames) - 11, len(frames) - 10, len(frames) - 1):
            assert picture_of(frames[k], pictures) == shown[first + k], (e["id"], k)
    assert events[1]["clip"] is None  # the shoe rule has no clip
    # the CLI's filters, list and show
    assert [e["id"] for e in events_json(folder, model_env, "--rule", "crab")] == [events[0]["id"], events[2]["id"]]
    proc = run_cli(["events", "list", "--dir", str(folder)], env=model_env)
    assert proc.returncode == 0 and proc.stdout.splitlines()[0].split()[0] == str(events[2]["id"])
    assert "crab: fiddler crab" in proc.stdout and "shoe: running shoe" in proc.stdout
    proc = run_cli(["events", "show", str(events[1]["id"]), "--dir", str(folder)], env=model_env)
    assert proc.returncode == 0 and "running shoe" in proc.stdout and "snapshot_clean" in proc.stdout
    assert len(events_json(folder, model_env, "--since", "1h")) == 3
    assert events_json(folder, model_env, "--since", "2999-01-01") == []
    day = events[0]["start"][:10]
    assert len(events_json(folder, model_env, "--day", day)) == 3
    assert [e["id"] for e in events_json(folder, model_env, "--since", events[1]["start"][:23])] == \
        [events[1]["id"], events[2]["id"]]
    proc = run_cli(["events", "export", "--dir", str(folder)], env=model_env)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("id,rule,label,region,start,end") and len(lines) == 4


@pytest.mark.parametrize("args, message", [
    (["show", "99"], "no event 99"),
    (["list", "--since", "yesterday"], "expected a local date or time"),
])
def test_bad_event_queries_are_one_line(tmp_path, model_env, args, message):
    from edgecam.events.history import History

    h = History(tmp_path / "ev")
    h.open()
    h.close()
    proc = run_cli(["events", *args[:1], "--dir", str(tmp_path / "ev"), *args[1:]], env=model_env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in proc.stderr.strip().splitlines()[-1]  # one line (after argparse's usage, for a bad flag)
    # issue 21: before the first event, no history is a sentence and exit 0, not an error (exit 4)
    proc = run_cli(["events", "list", "--dir", str(tmp_path / "none")], env=model_env)
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"no events yet: {tmp_path / 'none'} has no history")
    proc = run_cli(["events", "export", "--dir", str(tmp_path / "none")], env=model_env)
    assert proc.returncode == 0 and proc.stdout.startswith("id,rule,label,region,start") and proc.stdout.count("\n") == 1
    proc = run_cli(["events", "show", "1", "--dir", str(tmp_path / "none")], env=model_env)
    assert proc.returncode == 2 and "no event 1" in proc.stderr and "no event has fired yet" in proc.stderr


def test_kill_9_during_an_event_then_the_next_start_repairs(photos, model_env, tmp_path):
    video = tmp_path / "long.mp4"
    write_timeline(photos, video, [(HOME, 10), (CRAB, 600)], fps=FPS)  # a crab for a minute
    folder = tmp_path / "events"
    cfg = write_config(tmp_path / "cfg.yaml", {"events": {"dir": str(folder), "rules": RULES[:1]}})
    with Edgecam(run_args(cfg, "--source", str(video), "--realtime"), model_env, tmp_path) as app:
        def stored():
            if not (folder / "events.db").exists():
                return None
            rows = events_json(folder, model_env)
            return rows if rows and rows[0]["snapshot"] and list(folder.rglob("*.part*")) else None

        rows = app.wait_until(stored, "the crab event, its snapshot, and its clip being written", timeout=60)
        assert rows[0]["status"] == "active" and rows[0]["end"] is None
        app.send(signal.SIGKILL)
        app.wait()
    # what a cut can leave: a file written just before it, that no row names yet
    stray = folder / "media" / "stray-clean.jpg"
    stray.write_bytes(b"\xff\xd8 a snapshot whose row never came")
    short = tmp_path / "short.mp4"
    write_timeline(photos, short, [(HOME, 5)], fps=FPS)
    with Edgecam(run_args(cfg, "--source", str(short)), model_env, tmp_path, name="again") as app:
        assert app.wait() == 0
        assert "repaired the history after an unclean stop: 1 event(s) in progress marked interrupted" in app.stderr()
        # the stray snapshot, and the clip that was being written (a .part): what the cut loses
        assert "2 file(s) no event knew deleted" in app.stderr()
    rows = events_json(folder, model_env)
    assert [(r["id"], r["status"]) for r in rows] == [(rows[0]["id"], "interrupted")]
    assert not stray.exists() and Path(rows[0]["snapshot"]).is_file()  # what was whole before the cut stays
    assert rows[0]["clip"] is None and not list(folder.rglob("*.part*"))


def test_a_rule_naming_a_label_the_model_never_gives_is_refused_at_start(photos, model_env, tmp_path):
    video = tmp_path / "t.mp4"
    write_timeline(photos, video, [(HOME, 3)], fps=FPS)
    cfg = write_config(tmp_path / "cfg.yaml", {"events": {"dir": str(tmp_path / "ev"), "rules": [
        {"name": "crab", "label": "fiddler crab"}, {"name": "pet", "labels": ["unicorn", "tabby"]}]}})
    with Edgecam(run_args(cfg, "--source", str(video)), model_env, tmp_path) as app:
        assert app.wait() == 2
    err = app.stderr()
    assert "events.rules[1]: 'unicorn' is not one of the model's labels" in err and "Traceback" not in err
    assert "'tabby'" not in err and "rules[0]" not in err  # a label's first name is enough


def test_check_config_refuses_a_clip_format_opencv_cannot_write(model_env, tmp_path):
    from edgecam.events.clips import can_write

    if can_write("mp4"):
        pytest.skip("this OpenCV writes H.264: nothing to refuse")
    cfg = write_config(tmp_path / "cfg.yaml", {"events": {"clip_format": "mp4", "rules": [
        {"name": "crab", "label": "fiddler crab", "clip": True}]}})
    proc = run_cli(["check-config", str(cfg)], env=model_env)
    assert proc.returncode == 2 and "events.clip_format: 'mp4', but this OpenCV cannot write it" in proc.stderr
    cfg = write_config(tmp_path / "ok.yaml", {"events": {"rules": [{"name": "crab", "label": "fiddler crab",
                                                                     "clip": True}]}})
    proc = run_cli(["check-config", str(cfg)], env=model_env)
    assert proc.returncode == 0, proc.stderr


def test_check_config_refuses_a_rule_label_the_model_does_not_have(model_env, tmp_path):
    cfg = write_config(tmp_path / "cfg.yaml", {"events": {"rules": [
        {"name": "crab", "label": "fiddler crab"}, {"name": "pet", "labels": ["unicorn", "tabby"]}]}})
    proc = run_cli(["check-config", str(cfg)], env=model_env)
    assert proc.returncode == 2, proc.stderr
    assert "events.rules[1]: 'unicorn' is not one of the model's labels" in proc.stderr and "'tabby'" not in proc.stderr


def test_a_live_run_serves_its_events_and_publishes_them(photos, model_env, broker, tmp_path):
    """A camera-paced run with HTTP and MQTT: the event on /api/events while it goes on, then ended, with its
    MQTT messages and Home Assistant triggers; /metrics counts it."""
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed: pip install 'edgecam[mqtt]'")
    from tests.e2e import free_port, parse_metrics
    from tests.mosquitto import Subscriber

    video = tmp_path / "live.mp4"
    write_timeline(photos, video, [(HOME, 10), (CRAB, 40), (HOME, 30)], fps=FPS)
    port = free_port()
    cfg = write_config(tmp_path / "cfg.yaml", {
        "source": {"type": "opencv", "uri": str(video), "realtime": True},
        "http": {"enabled": True, "port": port},
        "mqtt": {"enabled": True, "host": broker.host, "port": broker.port, "client_id": "cam", "topic_prefix": "cam"},
        "events": {"dir": str(tmp_path / "events"), "rules": [dict(RULES[0], mqtt=True)]}})
    sub = Subscriber(broker, ("cam/event/#", "cam/event", "homeassistant/device_automation/#"))
    try:
        with Edgecam(run_args(cfg), model_env, tmp_path) as app:
            app.wait_http(port)
            base = f"http://127.0.0.1:{port}"

            def listed(status=None):
                code, _, body = http_get(base + "/api/events")
                events = json.loads(body)["events"] if code == 200 else []
                return events if events and (status is None or events[0]["status"] == status) else None

            going = app.wait_until(lambda: listed("active"), "the event on /api/events while it goes on")
            assert going[0]["rule"] == "crab" and going[0]["end"] is None
            assert sub.wait("cam/event/crab") == [b"start"]
            ended = app.wait_until(lambda: listed("ended"), "the event ended", timeout=30)
            # camera-paced (latest policy): a frame may go unclassified on a loaded machine
            assert abs(ended[0]["start_frame"] - 10) <= 1 and abs(ended[0]["end_frame"] - 50) <= 1, ended[0]
            assert sub.wait("cam/event/crab", 2) == [b"start", b"end"]
            m = app.wait_until(lambda: (lambda m: m if m.get('edgecam_events_ended_total{rule="crab"}') else None)(
                parse_metrics(http_get(base + "/metrics")[2].decode())), "the metrics of the ended event")
            assert m['edgecam_events_started_total{rule="crab"}'] == 1 and m["edgecam_events_bytes"] > 0
            code, headers, body = http_get(base + ended[0]["thumb"])
            assert code == 200 and headers["Content-Type"] == "image/jpeg"
            assert app.wait() == 0
        assert sub.wait("homeassistant/device_automation/cam/crab_start/config")
        published = sub.json("cam/event")
        assert [e["type"] for e in published] == ["start", "end"]
        assert published[0]["snapshot"] == f"/events/{published[0]['id']}/snapshot.jpg"  # on the HTTP output
    finally:
        sub.close()


def test_a_region_rule_on_a_learned_state(shared_dir, model_cache, model_env, tmp_path):
    """regions: a custom state ('scooter' in the garage) starts and ends an event; collect saves the crop."""
    import shutil

    from tests.scenes import REGION, Scene, write_examples, write_video

    scene = Scene(shared_dir / "images" / "imagenet-sample")
    folder = tmp_path / "models"
    shutil.copytree(model_cache, folder)
    env = dict(model_env, EDGECAM_MODEL_DIR=str(folder))
    write_examples(scene, tmp_path / "examples", per_state=10, seed=11)
    assert run_cli(["learn", str(tmp_path / "examples"), "--name", "garage"], env=env, cwd=tmp_path).returncode == 0
    video = tmp_path / "scene.mp4"
    write_video(scene, video, [("empty", 25), ("scooter", 30), ("tricycle", 30), ("empty", 25)], fps=10, seed=3)
    cfg = write_config(tmp_path / "cfg.yaml", {
        "regions": [{"name": "garage", "box": list(REGION), "model": "garage"}],
        "smoothing": {"mode": "ema", "window": 3, "hysteresis": True, "threshold_high": 0.6, "threshold_low": 0.4},
        "examples_dir": str(tmp_path / "collected"),
        "events": {"dir": str(tmp_path / "events"), "rules": [
            {"name": "scooter_in", "region": "garage", "label": "scooter", "for_s": 0, "cooldown_s": 0.3,
             "collect": True}]}})
    with Edgecam(run_args(cfg, "--source", str(video)), env, tmp_path) as app:
        assert app.wait() == 0, app.stderr()
    events = events_json(tmp_path / "events", env)
    assert [(e["rule"], e["label"], e["region"], e["status"]) for e in events] == \
        [("scooter_in", "scooter", "garage", "ended")]
    # the smoothing (EMA over 3, hysteresis) may take a frame or two, as the regions' own test allows
    assert abs(events[0]["start_frame"] - 25) <= 2 and abs(events[0]["end_frame"] - 55) <= 2, events[0]
    saved = list((tmp_path / "collected" / "garage" / "scooter").glob("*.png"))
    assert len(saved) == 1
    x0, y0, x1, y1 = (round(REGION[0] * 640), round(REGION[1] * 480), round(REGION[2] * 640), round(REGION[3] * 480))
    assert cv2.imread(str(saved[0])).shape == (y1 - y0, x1 - x0, 3)  # the region's crop, as edgecam collect saves

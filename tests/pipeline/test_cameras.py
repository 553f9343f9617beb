"""Several cameras in one run: one model loaded once, every camera its own frames and counters, faults kept local.

The model is the real MobileNet V3-Small from ../shared; the cameras are short
videos written here (different lengths, so each camera's count is its own).
"""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pytest

from edgecam.config import schema as config_mod
from edgecam.errors import EdgecamError
from edgecam.pipeline.cameras import CamerasApp
from tests.pipeline.test_pipeline import RecordingSink


def video(path, frames: int, colour) -> str:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (160, 120))
    for i in range(frames):
        img = np.full((120, 160, 3), colour, np.uint8)
        cv2.putText(img, str(i), (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
        writer.write(img)
    writer.release()
    return str(path)


def camera_config(uri: str, **source):
    return config_mod.from_dict({"source": {"type": "opencv", "uri": uri, **source},
                                 "display": {"mode": "none"}, "model": {"threads": 1}})


@pytest.fixture
def loads(model_env, monkeypatch):
    """Counts the models actually loaded (the real loader underneath)."""
    import edgecam.model.backends as backends

    real, calls = backends.load_classifier, []

    def counting(cfg, **kw):
        calls.append(cfg.name)
        return real(cfg, **kw)

    monkeypatch.setattr(backends, "load_classifier", counting)
    return calls


def test_three_cameras_share_one_model_and_each_gets_every_frame_of_its_own(tmp_path, loads):
    lengths = {"door": 40, "yard": 25, "gate": 60}
    cameras = [(name, camera_config(video(tmp_path / f"{name}.avi", n, (40 * i, 80, 160))))
               for i, (name, n) in enumerate(lengths.items())]
    sinks = {name: RecordingSink(name) for name in lengths}
    app = CamerasApp(cameras, sinks_for=lambda name: [sinks[name]])
    assert app.run() == 0
    assert loads == ["mobilenet_v3_small"]  # loaded once for three cameras
    assert len(app.stages) == 1
    for cam in app.cameras:
        n = lengths[cam.name]
        assert [r.frame_index for r in sinks[cam.name].results] == list(range(n))
        s = cam.stats.snapshot()
        assert s["frames_captured"] == s["frames_inferred"] == n
    lanes = app.stages[0].frames.counters()
    assert {name: c.inferred for name, c in lanes.items()} == lengths


def test_a_camera_that_cannot_open_is_down_and_the_others_run(tmp_path, loads, caplog):
    good = camera_config(video(tmp_path / "good.avi", 20, (0, 0, 200)))
    missing = camera_config(str(tmp_path / "nowhere.avi"))
    app = CamerasApp([("door", missing), ("yard", good)])
    assert [cam.down is not None for cam in app.cameras] == [True, False]
    assert "camera door:" in caplog.text and "the other cameras go on without it" in caplog.text
    assert app.run() == 0
    assert app.cameras[1].stats.snapshot()["frames_inferred"] == 20
    import re
    import time

    status = app.status_text(time.monotonic())
    assert re.fullmatch(r"2 cameras, \d+\.\d fps, results \d+ ms old; door down \(.+\), yard ended", status), status


def test_no_camera_opening_is_one_error_naming_each(tmp_path, loads):
    cams = [(name, camera_config(str(tmp_path / f"{name}.avi"))) for name in ("door", "yard")]
    with pytest.raises(EdgecamError) as e:
        CamerasApp(cams)
    assert e.value.exit_code == 3
    assert e.value.message.startswith("cameras: none could start: door: ") and "; yard: " in e.value.message


def test_each_camera_logs_its_own_jsonl_file_and_every_line_names_it(tmp_path, loads):
    log = str(tmp_path / "logs" / "{camera}.jsonl")
    lengths = {"door": 12, "yard": 18}
    cameras = []
    for name, n in lengths.items():
        cfg = config_mod.from_dict({"source": {"type": "opencv", "uri": video(tmp_path / f"{name}.avi", n, (0, 90, 0))},
                                    "display": {"mode": "none"}, "model": {"threads": 1},
                                    "log": {"path": log, "mode": "every"}})
        cameras.append((name, cfg))
    assert CamerasApp(cameras).run() == 0
    for name, n in lengths.items():
        lines = [json.loads(line) for line in (tmp_path / "logs" / f"{name}.jsonl").read_text().splitlines()]
        assert len(lines) == n and {line["camera"] for line in lines} == {name}
        assert [line["frame"] for line in lines] == list(range(n))


def test_without_outputs_each_label_change_line_names_its_camera(tmp_path, loads):
    out = io.StringIO()
    cameras = [(name, camera_config(video(tmp_path / f"{name}.avi", 10, (200, 0, 0)))) for name in ("door", "yard")]
    assert CamerasApp(cameras, changes_to=out).run() == 0
    lines = out.getvalue().splitlines()
    assert {line.split()[1] for line in lines} == {"door", "yard"}  # time, camera, frame ...
    assert all(line.split()[2] == "frame" for line in lines)


def test_edgecam_run_with_two_sources_runs_both_cameras(tmp_path, model_env):
    from tests.conftest import run_cli

    a, b = video(tmp_path / "a.avi", 30, (0, 0, 200)), video(tmp_path / "b.avi", 45, (200, 0, 0))
    log = str(tmp_path / "logs" / "{camera}.jsonl")
    p = run_cli(["run", "--display", "none", "--source", f"door={a}", "--source", f"yard={b}", "--log", log],
                env=model_env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    for name, n in (("door", 30), ("yard", 45)):
        lines = (tmp_path / "logs" / f"{name}.jsonl").read_text().splitlines()
        assert lines and {json.loads(line)["camera"] for line in lines} == {name}
    assert "camera door:" in p.stderr and "camera yard:" in p.stderr


def test_a_log_path_without_camera_with_several_cameras_is_one_config_error(tmp_path, model_env):
    from tests.conftest import run_cli
    from tests.doubles import Besides, one_error_line

    a = video(tmp_path / "a.avi", 5, (0, 0, 200))
    p = run_cli(["run", "--display", "none", "--source", f"door={a}", "--source", f"yard={a}",
                 "--log", str(tmp_path / "all.jsonl")], env=model_env, cwd=tmp_path)
    one_error_line(p, 2, "log.path", "{camera}", besides=Besides.INFO_LOGS)


def test_a_reload_applies_each_cameras_live_keys_and_names_what_needs_a_restart(tmp_path, loads, caplog):
    import threading
    import time

    import yaml

    from edgecam.config.cameras import camera_configs

    a, b = video(tmp_path / "a.avi", 300, (0, 0, 200)), video(tmp_path / "b.avi", 300, (200, 0, 0))

    def write(top_k: int, yard_fps: float, names=("door", "yard")):
        cfg = {"display": {"mode": "none"}, "model": {"threads": 1, "top_k": top_k},
               "source": {"type": "opencv", "realtime": True},
               "cameras": [{"name": names[0], "source": {"uri": a}},
                           {"name": names[1], "source": {"uri": b, "fps": yard_fps}}]}
        (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))

    write(3, 30)
    cams = camera_configs(config_mod.load(str(tmp_path / "cfg.yaml")))
    app = CamerasApp([(c.name, c.config) for c in cams])
    t = threading.Thread(target=app.run, daemon=True)
    t.start()
    try:
        write(5, 15)
        app.reload()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(cam.parts.live.settings.top_k != 5 for cam in app.cameras):
            time.sleep(0.05)
        assert [cam.parts.live.settings.top_k for cam in app.cameras] == [5, 5]
        assert "reload: camera door: applied model.top_k" in caplog.text
        assert "reload: camera yard: source.fps changed but need a restart" in caplog.text
        write(5, 15, names=("door", "gate"))
        app.reload()
        assert "reload: the cameras changed (door, yard -> door, gate); that needs a restart" in caplog.text
    finally:
        app.stop()
        t.join(20)

"""Commands in a run of several cameras: each camera's control is its own, applied from its own output loop."""

from __future__ import annotations

import threading

import yaml

from edgecam.config import schema as config_mod
from edgecam.config.cameras import camera_configs
from edgecam.control.overrides import Key
from edgecam.pipeline.cameras import CamerasApp
from tests.doubles import wait_until
from tests.pipeline.test_cameras import loads, video  # noqa: F401 (loads: the fixture)


def test_a_command_changes_its_camera_only_and_the_file_wins_at_a_reload(tmp_path, loads):  # noqa: F811
    a, b = video(tmp_path / "a.avi", 300, (0, 0, 200)), video(tmp_path / "b.avi", 300, (200, 0, 0))

    def write(threshold: float):
        cfg = {"display": {"mode": "none"}, "model": {"threads": 1, "threshold": threshold},
               "source": {"type": "opencv", "realtime": True}, "state_dir": str(tmp_path / "state"),
               "cameras": [{"name": "door", "source": {"uri": a}}, {"name": "yard", "source": {"uri": b}}]}
        (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))

    write(0.1)
    app = CamerasApp([(c.name, c.config) for c in camera_configs(config_mod.load(str(tmp_path / "cfg.yaml")))])
    t = threading.Thread(target=app.run, daemon=True)
    t.start()
    door, yard = app.cameras
    try:
        yard.control.submit(Key.THRESHOLD, 0.4)
        yard.control.submit(Key.TOP_K, 2)
        wait_until(lambda: yard.parts.live.settings.threshold == 0.4, what="the yard's command applied")
        wait_until(lambda: yard.parts.live.settings.top_k == 2, what="both commands applied")
        assert door.parts.live.settings.threshold == 0.1  # the other camera is untouched
        assert (tmp_path / "state" / "control" / "yard.json").is_file()
        assert not (tmp_path / "state" / "control" / "door.json").exists()
        write(0.3)
        app.reload()  # systemctl reload: the file changed the threshold; the command's top_k stays
        wait_until(lambda: yard.parts.live.settings.threshold == 0.3, what="the file's threshold")
        assert yard.parts.live.settings.top_k == 2 and door.parts.live.settings.threshold == 0.3
    finally:
        app.stop()
        t.join(20)

"""Several cameras with event rules in one run (issue 25): one events folder, one history, each camera's events.

The real model on generated videos (tests/pipeline/test_cameras.py): each camera has a rule on the same
label with ``min_score: 0``, so that its event starts on its first frame and goes on until the run ends.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgecam.config import schema as config_mod
from edgecam.errors import ConfigError
from edgecam.events.history import History, connect_reader, query_events
from edgecam.pipeline.cameras import CamerasApp
from tests.pipeline.test_cameras import video

COLOURS = {"door": (0, 0, 200), "yard": (200, 0, 0)}  # BGR: red, blue
RULE = {"name": "seen", "label": "ibex", "min_score": 0.0, "for_s": 0, "cooldown_s": 0}


def camera_config(uri: str, folder, rules=(RULE,), **events):
    return config_mod.from_dict({"source": {"type": "opencv", "uri": uri}, "display": {"mode": "none"},
                                 "model": {"threads": 1},
                                 "events": {"dir": str(folder), "rules": list(rules), **events}})


def test_each_camera_has_its_events_in_the_one_history_with_its_own_snapshot(tmp_path, model_env):
    folder = tmp_path / "events"
    cameras = [(name, camera_config(video(tmp_path / f"{name}.avi", 15, colour), folder))
               for name, colour in COLOURS.items()]
    cameras.append(("gate", camera_config(video(tmp_path / "gate.avi", 10, (0, 200, 0)), folder, rules=())))
    app = CamerasApp(cameras)
    hub = app.events_hubs["door"]
    assert app.events_hubs == {"door": hub, "yard": hub}  # one hub for the folder; gate has no rules
    assert list(hub.sinks) == ["door", "yard"]
    assert app.run() == 0
    assert hub.history.conn is None  # closed once every camera ended
    conn = connect_reader(folder)
    rows = query_events(conn)[0]
    conn.close()
    assert sorted((r["camera"], r["rule"], r["start_frame"], r["status"]) for r in rows) == [
        ("door", "seen", 0, "interrupted"), ("yard", "seen", 0, "interrupted")]  # the run ended during them
    for row in rows:
        assert f"-{row['camera']}-seen-" in row["snapshot_clean"]
        clean = cv2.imread(str(folder / row["snapshot_clean"]))
        right = clean[:, 100:].astype(int)  # away from the frame number written on the left
        assert np.abs(right - COLOURS[row["camera"]]).max() <= 40, (row["camera"], right.mean(axis=(0, 1)))
    h = History(folder)  # the run let the folder go
    h.open()
    h.close()


def test_cameras_sharing_a_folder_with_different_retention_are_refused_before_any_model_loads(tmp_path):
    cameras = [("door", camera_config("door.avi", tmp_path, max_age_days=7)),
               ("yard", camera_config("yard.avi", tmp_path, max_age_days=30))]
    with pytest.raises(ConfigError) as err:
        CamerasApp(cameras)
    assert err.value.exit_code == 2 and "different retention" in err.value.problems[0]

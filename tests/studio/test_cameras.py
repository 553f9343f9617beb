"""Several cameras: each has its teach page under /camera/<name>/, its own drawn regions and review queue."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import numpy as np

from edgecam.config import schema as config_mod
from edgecam.config.cameras import camera_configs
from edgecam.pictures import write_image
from tests.doubles import wait_until
from tests.scenes import REGION, Scene


def call(base: str, method: str, path: str, body=None) -> tuple[int, object]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            raw, code, ctype = r.read(), r.status, r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        raw, code, ctype = e.read(), e.code, e.headers.get("Content-Type", "")
    return code, json.loads(raw) if ctype.startswith("application/json") else raw


def test_each_camera_is_taught_on_its_own_page(shared_dir, model_env, tmp_path):
    from edgecam.pipeline.cameras import CamerasApp

    scene = Scene(shared_dir / "images" / "imagenet-sample")
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        write_image(frames / f"{i}.png", scene.frame("scooter", rng))
    source = {"type": "images", "uri": str(frames), "fps": 5, "realtime": True, "loop": True}
    door = [{"name": "door", "box": [0.0, 0.0, 0.3, 0.3], "labels": ["open", "closed"]}]
    cfg = config_mod.from_dict({
        "source": source, "regions": door, "http": {"enabled": True, "port": 0},
        "state_dir": str(tmp_path / "state"), "examples_dir": str(tmp_path / "examples"),
        "cameras": [{"name": "front"}, {"name": "back"}]})
    app = CamerasApp([(c.name, c.config) for c in camera_configs(cfg)])
    thread = threading.Thread(target=app.run, name="cameras", daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{app.hub.port}"
        code, page = call(base, "GET", "/camera/back/teach")
        assert code == 200 and b"edgecam: teach" in page
        code, out = call(base, "POST", "/camera/back/api/teach/regions",
                         {"name": "garage", "box": list(REGION), "labels": ["empty", "scooter"]})
        assert code == 201, out
        wait_until(lambda: "garage" in ((call(base, "GET", "/camera/back/api/latest")[1] or {}).get("regions") or {}),
                   "the drawn region running on camera back", timeout=20)
        names = {r["name"] for r in call(base, "GET", "/camera/front/api/teach")[1]["regions"]}
        assert names == {"door"}  # the other camera is untouched
        assert json.loads((tmp_path / "state" / "regions" / "back.json").read_text())[0]["name"] == "garage"
        assert not (tmp_path / "state" / "regions" / "front.json").exists()
        item = wait_until(lambda: call(base, "GET", "/camera/back/api/teach/review?region=garage")[1]["items"],
                          "a crop in camera back's queue", timeout=20)[0]
        code, out = call(base, "POST", f"/camera/back/api/teach/review/{item['id']}", {"state": "scooter"})
        assert code == 201, out
        assert len(list((tmp_path / "examples" / "garage" / "scooter").glob("*.png"))) == 1
        assert (tmp_path / "state" / "review" / "back").is_dir()
    finally:
        app.stop()
        thread.join(15)

"""The teach page's tests: a camera run in this process on a generated scene whose state the test chooses.

:class:`SceneCamera` is ``edgecam run`` (:class:`edgecam.pipeline.app.App`)
on a folder source (``images``, looped, paced at 10 frames/s) whose pictures
the test rewrites: :meth:`SceneCamera.show` makes the scene show a state.
The HTTP output serves the page; :meth:`SceneCamera.call` talks JSON to it.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np

from edgecam.config import schema as config_mod
from edgecam.pictures import write_image
from tests.doubles import wait_until
from tests.scenes import Scene

FRAMES = 4  # pictures in the folder: each pass shows 4 jittered frames of the state


class SceneCamera:
    """A running camera on a scene (see the module docstring); a context manager."""

    def __init__(self, scene: Scene, tmp_path: Path, token: str = "teach-token", config: dict | None = None,
                 seed: int = 0, fps: float = 10):
        self.scene, self.tmp = scene, tmp_path
        self.folder = tmp_path / "frames"
        self.folder.mkdir()
        self.rng = np.random.default_rng(seed)
        self.token = token
        (tmp_path / "token").write_text(token)
        self.show("empty")
        data = {"source": {"type": "images", "uri": str(self.folder), "fps": fps, "realtime": True, "loop": True},
                "http": {"enabled": True, "port": 0, "token_file": str(tmp_path / "token")},
                "state_dir": str(tmp_path / "state"), "examples_dir": str(tmp_path / "examples"),
                "smoothing": {"mode": "ema", "window": 2, "hysteresis": False},
                "display": {"mode": "none"}, **(config or {})}
        self.cfg = config_mod.from_dict(data)
        self.app = None
        self.thread = None
        self.state = "empty"

    def show(self, state: str) -> None:
        """From the next pass over the folder on, the scene shows ``state``."""
        for i in range(FRAMES):
            write_image(self.folder / f"{i}.png", self.scene.frame(state, self.rng))
        self.state = state

    def __enter__(self) -> SceneCamera:
        from edgecam.pipeline.app import App, run_restarting

        def build():  # the run started again in this process (a first region drawn): the newest app
            self.app = App(self.cfg, display_override=False)
            return self.app

        build()
        self.thread = threading.Thread(target=run_restarting, args=(build, None, self.app), name="scene-camera",
                                       daemon=True)
        self.thread.start()
        self.sink = next(s for s in self.app.outputs.sinks if hasattr(s, "attach_studio"))
        self.base = f"http://127.0.0.1:{self.sink.port}"
        wait_until(lambda: self.latest(), "the first result", timeout=30)
        return self

    def __exit__(self, *exc):
        self.app.pipeline.stop()
        self.thread.join(10)

    @property
    def studio(self):
        return self.app.camera.studio

    def call(self, method: str, path: str, body=None, headers=None) -> tuple[int, object]:
        """(status, JSON or bytes) of a request with the token."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", **({"Content-Type": "application/json"} if data else {}),
            **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                raw, ctype, code = r.read(), r.headers.get("Content-Type", ""), r.status
        except urllib.error.HTTPError as e:
            raw, ctype, code = e.read(), e.headers.get("Content-Type", ""), e.code
        return code, json.loads(raw) if ctype.startswith("application/json") else raw

    def latest(self) -> dict | None:
        code, data = self.call("GET", "/api/latest")
        return data if code == 200 else None

    def region_label(self, name: str) -> str | None:
        data = self.latest() or {}
        return ((data.get("regions") or {}).get(name) or {}).get("label")

    def wait_state(self, region: str, state: str, timeout: float = 15) -> None:
        wait_until(lambda: self.region_label(region) == state, f"region {region} to show {state}", timeout=timeout)


def crop_of(png: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)

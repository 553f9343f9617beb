"""The live settings: a reload (SIGHUP) swaps one LiveSettings, and every reader sees the new one at once.

The App is real (its reload, its camera's pipeline and outputs); only the
model and the camera are stand-ins, patched where the App looks them up.
Results go through the output loop's own handler, called here in the test's
thread as the loop would.
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import yaml

from edgecam.config import schema as config_mod
from edgecam.camera.frame import Frame
from edgecam.config.schema import SmoothingConfig
from edgecam.model.preprocess import InputSpec
from edgecam.pipeline.live import LiveHolder, LiveSettings
from edgecam.result import Classification
from tests.doubles import FakeCamera

LABELS = ("background", "open", "shut")


class StandInModel:
    """A classifier stand-in with what regions need of one (its input), never invoked here."""

    name = "stand-in"
    runtime = "fake"
    backend = "fake"
    threads = 1
    view_size = (8, 8)
    labels = LABELS
    input_spec = InputSpec(width=8, height=8, dtype=np.uint8, scale=0.0, zero_point=0, mean=127.5, std=127.5)


def result(scores, frame: int = 0, **extra) -> Classification:
    return Classification(np.array(scores, np.float32), LABELS, model="stand-in", frame_index=frame,
                          wall_time=1.0, extra=dict(extra))


@pytest.fixture
def app_of(monkeypatch, tmp_path):
    """``app_of(config_dict)``: an App on that config file (written to tmp_path/cfg.yaml), closed at the end."""
    import edgecam.camera
    import edgecam.model.backends
    from edgecam.pipeline.app import App

    monkeypatch.setattr(edgecam.model.backends, "load_classifier", lambda cfg, **kw: StandInModel())
    monkeypatch.setattr(edgecam.camera, "open_source", lambda cfg, size=None, **kw: FakeCamera(fps=30))
    apps = []

    def make(d: dict):
        path = tmp_path / "cfg.yaml"
        path.write_text(yaml.safe_dump(d))
        app = App(config_mod.load(str(path)), display_override=False)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.outputs.close()


def rewrite(app, d: dict) -> None:
    with open(app.cfg.path, "w", encoding="utf-8") as f:
        yaml.safe_dump(d, f)


def test_a_reload_reaches_every_reader_of_the_whole_picture_at_once(app_of, tmp_path, monkeypatch):
    # A new threshold used to reach the overlay and the outputs but not the label shown (the
    # smoother kept the threshold it was built with): the run showed no label where the log listed one.
    import edgecam.pipeline.loop as loop

    drawn = []
    monkeypatch.setattr(loop, "draw_overlay", lambda image, res, stats, top_k, threshold, label:
                        drawn.append((top_k, threshold)) or image)
    d = {"model": {"top_k": 1, "threshold": 0.7}, "log": {"path": str(tmp_path / "log.jsonl")},
         "http": {"enabled": True, "port": 0}}
    app = app_of(d)
    p, sinks = app.pipeline, {s.name: s for s in app.outputs.sinks}
    r = result([0.05, 0.6, 0.35])
    frame = Frame(np.zeros((48, 64, 3), np.uint8), 0, 0.0, 1.0)

    def seen(r):
        p._handle_result(r)
        p._handle_frame(frame)  # the overlay (stubbed: what it was asked to draw)
        return {
            "shown": p.shown_label,
            "log": [e["label"] for e in sinks["log"].record(r)["top_k"]],
            "http": [e["label"] for e in sinks["http"].latest_json()["top_k"]],
        }

    assert seen(r) == {"shown": None, "log": [], "http": []}
    rewrite(app, {**d, "model": {"top_k": 3, "threshold": 0.3}})
    app.reload()
    assert seen(r) == {"shown": "open", "log": ["open", "shut"], "http": ["open", "shut"]}
    assert (p.top_k, p.threshold) == (3, 0.3)
    assert drawn == [(1, 0.7), (3, 0.3)]


def test_a_reload_of_the_smoothing_reaches_the_regions(app_of):
    # "reload: applied smoothing.mode" was logged, yet the regions kept smoothing as at start.
    d = {"regions": [{"name": "door", "box": [0.0, 0.0, 1.0, 1.0]}], "smoothing": {"mode": "none"}}
    app = app_of(d)
    p = app.pipeline

    def state_after(*scores_seq) -> str:
        for i, scores in enumerate(scores_seq):
            p._handle_result(result([], frame=i, region_results={"door": result(scores, frame=i)}))
        return p.latest_result.regions["door"].label

    assert state_after([0.0, 1.0, 0.0], [0.0, 0.0, 1.0]) == "shut"  # no smoothing: the last reading
    rewrite(app, {**d, "smoothing": {"mode": "ema", "window": 5}})
    app.reload()
    # EMA over 5 (weight 1/3): after 1, 0 for "open" it still leads (0.67 against 0.33).
    assert state_after([0.0, 1.0, 0.0], [0.0, 0.0, 1.0]) == "open"


def test_readers_never_see_half_an_update():
    """Swaps of (top_k, threshold) pairs under a reader: every pair it reads is one that was swapped in."""
    holder = LiveHolder(LiveSettings(top_k=1, threshold=0.001))
    stop = threading.Event()
    mixed = []

    def read():
        while not stop.is_set():
            s = holder.settings
            if round(s.threshold * 1000) != s.top_k:
                mixed.append(s)

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(2, 20_000):
        holder.swap(LiveSettings(top_k=i, threshold=i / 1000))
    stop.set()
    reader.join()
    assert mixed == [] and holder.version == 19_998 and holder.settings.top_k == 19_999


def test_the_settings_are_a_copy_of_the_config():
    cfg = config_mod.from_dict({"model": {"top_k": 4, "threshold": 0.2, "deny": ["shut"]},
                                "smoothing": {"mode": "ema"}})
    s = LiveSettings.from_config(cfg, LABELS)
    cfg.smoothing.window = 99  # the running config changing later is not a reload
    assert (s.top_k, s.threshold, s.smoothing.mode, s.smoothing.window) == (4, 0.2, "ema", 5)
    assert list(s.rules.allowed) == [True, True, False]
    assert LiveSettings.from_config(config_mod.from_dict({}), LABELS).rules is None  # no rule: nothing to apply
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.top_k = 5
    assert isinstance(LiveSettings().smoothing, SmoothingConfig)


def test_the_interpreter_is_built_once_with_the_layout_the_run_decided(shared_dir, tmp_path, monkeypatch):
    # threads auto on 4 cores: the model used to be loaded with 3 threads (cores - 1), then the run
    # decided its layout (measure 1x1 first) and built the interpreter again in the inference thread.
    from edgecam import registry
    from edgecam.model import calibration
    from edgecam.model import runtime
    from edgecam.model.classifier import Classifier
    from edgecam.outputs.base import Sink
    from edgecam.pipeline.app import App

    cache = tmp_path / "models"  # a fresh folder: no cached layout
    registry.fetch("mobilenet_v3_small", dest_dir=cache, mirror=shared_dir / "models", progress=False)
    monkeypatch.setenv("EDGECAM_MODEL_DIR", str(cache))
    monkeypatch.setattr(runtime, "available_cores", lambda: 4)
    monkeypatch.setattr(calibration, "available_cores", lambda: 4)
    built = []
    real_build = Classifier._build

    def counting(self, n, **more):
        if not more:  # the interpreter that classifies (not the delegate-free one that checks the file)
            built.append(n)
        return real_build(self, n, **more)

    monkeypatch.setattr(Classifier, "_build", counting)

    class StopAtFirstResult(Sink):
        name = "stop"

        def on_result(self, result):
            app.pipeline.stop()

    cfg = config_mod.from_dict({"model": {"name": "mobilenet_v3_small", "threads": "auto", "dir": str(cache)},
                                "source": {"type": "opencv", "uri": str(shared_dir / "video" /
                                                                       "imagenet20_640x480_30fps.mp4")}})
    app = App(cfg, extra_sinks=[StopAtFirstResult()], display_override=False)
    assert app.plan.how == "measuring" and app.plan.layout == calibration.Layout(1, 1)
    assert app.run() == 0 and app.stats.frames_inferred >= 1
    assert built == [1] and app.classifier.threads == 1 and app.pipeline.inference.switches == 0


def test_a_camera_takes_what_is_shared_and_keeps_its_own_settings(monkeypatch):
    """Two CameraPipelines on one SharedParts: one model loaded once, each camera its own source and settings."""
    import edgecam.camera
    from edgecam.pipeline.camera import CameraPipeline, SharedParts
    from edgecam.stats import Stats

    loaded = {}

    def load(model_cfg, camera=False):
        return loaded.setdefault(model_cfg.name, StandInModel())

    monkeypatch.setattr(edgecam.camera, "open_source", lambda cfg, size=None, **kw: FakeCamera(name=cfg.uri, fps=30))
    shared = SharedParts(load=load, stats=Stats(), notifier=None, on_quit=lambda: None)
    cams = []
    for uri in ("rtsp://a", "rtsp://b"):
        cam = CameraPipeline(config_mod.from_dict({"source": {"type": "opencv", "uri": uri}}), shared)
        cam.open_outputs(display=False)
        cam.open_source()
        cam.build_pipeline()
        cams.append(cam)
    a, b = cams
    assert len(loaded) == 1 and a.classifier is b.classifier  # the interpreters are the run's, not a camera's
    assert (a.source.name, b.source.name) == ("rtsp://a", "rtsp://b") and a.pipeline is not b.pipeline
    a.apply(dataclasses.replace(a.live.settings, top_k=5))
    assert (a.pipeline.top_k, b.pipeline.top_k) == (5, 3)
    for cam in cams:
        cam.close()

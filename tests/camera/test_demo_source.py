"""The demo source: a paced slideshow with pan and zoom; and auto's demo fallback for first runs.

Geometry is checked on made-up photos whose content is known exactly; the
real photos (../shared/images, through the registry's mirror path) are
checked with the real model.
"""

from __future__ import annotations

import collections
import os
import time

import cv2
import numpy as np
import pytest

from edgecam import registry
from edgecam.pipeline.camera import choose_policy
from edgecam.camera.capture import DropPolicy
from edgecam.config.schema import SourceConfig
from edgecam.errors import SourceError
from edgecam.camera import NoCamera, open_camera_or_demo, open_source, parse_source
from edgecam.camera.demo_source import DemoSource
from tests.camera.test_picamera2 import fake  # noqa: F401  (fixture)

SIZE = (640, 480)
PHOTOS = ("cat.bmp", "grace_hopper.bmp", "bird.bmp")


def plain(colour, w=320, h=240) -> np.ndarray:
    image = np.zeros((h, w, 3), np.uint8)
    image[:] = colour
    return image


def target(w=400, h=300, side=60) -> np.ndarray:
    """A white square of ``side`` px on black, at the centre of a ``w`` x ``h`` photo."""
    image = np.zeros((h, w, 3), np.uint8)
    y, x = (h - side) // 2, (w - side) // 2
    image[y:y + side, x:x + side] = 255
    return image


def white(frame_image) -> tuple[float, float]:
    """(area in px, centre x) of the white part of a frame, to a fraction of a pixel (its edges are blended)."""
    weight = frame_image[:, :, 1].astype(np.float64) / 255
    weight[weight < 0.2] = 0  # the blurred bars/background of a black photo are black anyway
    xs = np.arange(weight.shape[1])[np.newaxis, :]
    return float(weight.sum()), float((weight * xs).sum() / weight.sum())


@pytest.fixture
def demo_env(shared_dir, tmp_path, monkeypatch):
    """A model folder of its own and the shared photos (and models) as the mirror, both folders."""
    images = shared_dir / "images"
    if not all((images / p).is_file() for p in PHOTOS):
        pytest.skip(f"{images} lacks one of {PHOTOS}")
    monkeypatch.setenv(registry.ENV_MODEL_DIR, str(tmp_path / "models"))
    monkeypatch.setenv(registry.ENV_MIRROR, f"{shared_dir / 'models'}{os.pathsep}{images}")
    return tmp_path / "models"


# -- the slideshow ------------------------------------------------------------------


def test_each_photo_in_turn_for_its_seconds_then_the_end():
    colours = [(0, 0, 200), (0, 200, 0), (200, 0, 0)]
    with DemoSource([plain(c) for c in colours], size=SIZE, fps=10, seconds=2, realtime=False) as src:
        assert (src.name, src.live, src.realtime) == ("demo", False, False)
        frames = list(src)
        assert src.read() is None  # ended stays ended
    assert len(frames) == src.frame_count == 3 * 20
    assert [f.index for f in frames] == list(range(60))
    for f in frames:
        assert f.size == SIZE
        centre = tuple(int(v) for v in f.image[240, 320])
        assert centre == colours[f.index // 20], f.index  # the photo of its span, at the centre of the frame


def test_the_view_zooms_and_pans_slowly_then_back_on_the_next_photo():
    src = DemoSource([target(w=600), target(w=600)], size=SIZE, fps=30, seconds=4, realtime=False)  # room to pan
    n = src.frames_per_photo
    first = [white(src.view(i)) for i in range(n)]
    second = [white(src.view(n + i)) for i in range(n)]
    # zoom 1 -> 1.25 on the first photo (area x 1.5625), 1.25 -> 1 on the second
    assert first[-1][0] / first[0][0] == pytest.approx(1.25 ** 2, rel=0.05)
    assert second[0][0] / second[-1][0] == pytest.approx(1.25 ** 2, rel=0.05)
    areas = [a for a, _ in first]
    assert all(b > a - 0.002 * a for a, b in zip(areas, areas[1:]))  # steadily, never back and forth
    # the pan: the square moves across the frame one way, then back the other way
    assert first[0][1] > 320 > first[-1][1]  # the view moves right over the photo: the square moves left
    assert second[0][1] < 320 < second[-1][1]
    # slowly: no jump between neighbouring frames (a 60 px square moves < 4 px a frame)
    steps = [abs(b[1] - a[1]) for a, b in zip(first, first[1:])]
    assert 0 < max(steps) < 4
    # eased: slower at the ends than in the middle
    assert steps[0] < steps[n // 2] / 4 and steps[-1] < steps[n // 2] / 4
    assert np.array_equal(src.view(5), src.view(5))  # a frame is a function of its index


def test_a_photo_narrower_than_the_frame_is_not_stretched_and_its_bars_are_a_dark_blur():
    portrait = plain((40, 160, 240), w=300, h=400)
    src = DemoSource([portrait], size=SIZE, fps=10, seconds=1, realtime=False)
    image = src.view(0)
    # zoom 1: the photo's width fills the frame's centre square (480 px), the sides are bars
    assert tuple(int(v) for v in image[240, 320]) == (40, 160, 240)
    assert tuple(int(v) for v in image[240, 250]) == (40, 160, 240)
    bar = image[240, 20].astype(int)
    assert 0 < bar.max() < 0.6 * 240  # darkened, not black, not the photo
    assert tuple(int(v) for v in image[240, 70]) != (40, 160, 240)


def test_loop_plays_again_with_increasing_numbers():
    with DemoSource([plain((0, 0, 200)), plain((0, 200, 0))], size=(64, 48), fps=10, seconds=1, loop=True,
                    realtime=False) as src:
        frames = [src.read() for _ in range(50)]
    assert [f.index for f in frames] == list(range(50))
    assert np.array_equal(frames[20].image, frames[0].image) and np.array_equal(frames[45].image, frames[25].image)


def test_realtime_paces_frames_at_fps_like_a_camera():
    with DemoSource([plain((0, 0, 200))], size=(64, 48), fps=50, seconds=1) as src:
        assert src.realtime
        t0 = time.monotonic()
        frames = [src.read() for _ in range(11)]
        elapsed = time.monotonic() - t0
    assert elapsed >= 10 / 50 * 0.95  # never faster than the camera it plays (slower is the machine's load)
    assert all(b.timestamp > a.timestamp for a, b in zip(frames, frames[1:]))
    assert choose_policy(SourceConfig(type="demo"), src) is DropPolicy.LATEST


def test_a_damaged_photo_is_one_line(tmp_path):
    bad = tmp_path / "cat.bmp"
    bad.write_bytes(b"BM not really")
    with pytest.raises(SourceError) as info:
        DemoSource([bad])
    assert str(bad) in info.value.message and "fetched again" in info.value.message
    with pytest.raises(SourceError, match="no photos"):
        DemoSource([])


# -- on the registry's photos ----------------------------------------------------------


def test_source_demo_fetches_the_photos_and_plays_them(demo_env, shared_dir):
    assert parse_source("demo") == {"type": "demo", "uri": None}
    with open_source(SourceConfig(type="demo")) as src:
        assert isinstance(src, DemoSource) and len(src.slides) == 3
        assert src.frame_count == 3 * 120 and src.fps == 30.0
    for name in PHOTOS:
        assert (demo_env / "demo" / name).read_bytes() == (shared_dir / "images" / name).read_bytes()
    # model.dir decides where they go
    with open_source(SourceConfig(type="demo"), model_dir=demo_env.parent / "elsewhere"):
        assert (demo_env.parent / "elsewhere" / "demo" / "bird.bmp").is_file()


def test_the_model_recognises_the_demo_while_it_moves(demo_env, model_cache):
    from edgecam.model.classifier import load_classifier
    from edgecam.config.schema import ModelConfig

    clf = load_classifier(ModelConfig(dir=str(model_cache)))
    with open_source(SourceConfig(type="demo", realtime=False)) as src:
        src.realtime = False  # as fast as the model goes: this is about what it sees, not when
        per_photo = collections.defaultdict(collections.Counter)
        for frame in src:
            if frame.index % 6 == 0:
                per_photo[frame.index // src.frames_per_photo][clf.classify(frame.image).top.name] += 1
    cat, grace, bird = (per_photo[i] for i in range(3))
    cats = sum(n for label, n in cat.items() if label in ("Egyptian cat", "tabby, tabby cat", "tiger cat"))
    assert cats == sum(cat.values()), cat  # a cat in every sampled frame, whichever cat
    assert bird["chickadee"] == sum(bird.values()), bird
    # Grace Hopper: her uniform when the whole picture shows, her bow tie zoomed in
    assert grace["military uniform"] > 0 and set(grace) & {"bow tie, bow-tie, bowtie", "Windsor tie"}, grace


# -- auto, or the demo (a first run by hand) -------------------------------------------


def test_without_a_camera_auto_falls_back_to_the_demo_only_when_asked(fake, demo_env):  # noqa: F811
    fake.set_cameras(0)  # and no webcam on this machine
    cfg = SourceConfig(type="auto", timeout_s=2.0)
    with pytest.raises(NoCamera) as info:
        open_source(cfg, (224, 224))  # what a service with source: auto gets: an error (then reconnects)
    assert "--source demo" in info.value.message and info.value.exit_code == 3
    source, note = open_camera_or_demo(cfg, (224, 224))
    with source:
        assert isinstance(source, DemoSource)
    assert "\n" not in note
    assert note.startswith("no camera found (tried picamera2 (no camera found); webcam 0 (cannot open)), "
                           "so playing the demo: a slideshow of 3 photos, 12 s.")
    assert '--source (make run ARGS="--source 0")' in note


def test_with_a_camera_auto_takes_it_and_says_so(fake, demo_env):  # noqa: F811
    fake.set_cameras(1)
    source, note = open_camera_or_demo(SourceConfig(type="auto", fps=100.0, timeout_s=2.0), (224, 224))
    with source:
        assert source.name == "picamera2:0" and source.read() is not None
    assert note.startswith("source: picamera2:0 (the camera source auto found). To choose another, pick one with")
    assert not (demo_env / "demo").exists()  # nothing fetched for a demo nobody plays


def test_no_camera_and_no_photos_names_both(fake, tmp_path, monkeypatch):  # noqa: F811
    fake.set_cameras(0)
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    monkeypatch.setenv(registry.ENV_MODEL_DIR, str(tmp_path / "models"))
    monkeypatch.setenv(registry.ENV_MIRROR, str(empty))
    with pytest.raises(SourceError) as info:
        open_camera_or_demo(SourceConfig(type="auto", timeout_s=2.0))
    msg = info.value.message
    assert msg.startswith("source auto: no camera found (tried picamera2 (no camera found); webcam 0")
    assert f"and the demo cannot start either: demo photo cat: mirror folder {empty} has no cat.bmp" in msg
    assert info.value.exit_code == 3 and "\n" not in msg

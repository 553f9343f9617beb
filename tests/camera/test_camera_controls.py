"""The Pi camera's controls under ``source:`` (focus, flips, exposure, tuning file), against the fake picamera2.

The fake advertises each sensor's controls as libcamera's Raspberry Pi IPA does
(AF only on the imx708, Camera Module 3) and refuses the others as picamera2
does; tests/fakes/picamera2/camera_controls.py cites where each comes from.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgecam.config.schema import SourceConfig, from_dict
from edgecam.errors import ConfigError, SourceError
from edgecam.camera import open_source
from edgecam.camera.opencv_source import OpenCVSource
from edgecam.camera.picamera2_controls import CameraControls
from edgecam.camera.picamera2_source import Picamera2Source
from tests.conftest import REPO
from tests.camera.test_picamera2 import FAKES, FAST, _photo_like, fake  # noqa: F401 (fixture)

AF = {"AfMode", "AfRange", "AfSpeed", "AfMetering", "AfWindows", "AfTrigger", "AfPause", "LensPosition"}


def _camera(fake, model: str, sensor: str | None = None):
    fake.set_model(model)
    fake.set_sensor(sensor)


def _controls(**keys) -> CameraControls:
    return CameraControls.from_config(SourceConfig(**keys))


# -- the fake is the real thing's shape ------------------------------------------------ #


@pytest.mark.parametrize("model, sensor, has_af", [("pi5", None, True), ("pi4", None, False),
                                                    ("pi4", "imx477", False), ("pi5", "imx708", True),
                                                    ("pi5", "imx500", False)])
def test_the_fake_advertises_af_only_where_the_sensor_has_a_lens(fake, model, sensor, has_af):
    _camera(fake, model, sensor)
    import picamera2

    cam = picamera2.Picamera2(0)
    try:
        assert AF.issubset(cam.camera_controls) is has_af
        assert AF.isdisjoint(cam.camera_controls) is not has_af
        assert {"AeExposureMode", "FrameDurationLimits", "ScalerCrop"} <= set(cam.camera_controls)
        if not has_af:  # as picamera2's Controls.__setattr__ does
            with pytest.raises(RuntimeError, match="^Control AfMode is not advertised by libcamera$"):
                cam.set_controls({"AfMode": 2})
    finally:
        cam.close()


def test_the_fake_loads_tuning_files_as_picamera2_does(fake, tmp_path):
    _camera(fake, "pi5")
    import picamera2

    tuning = picamera2.Picamera2.load_tuning_file("imx708_noir.json")
    assert tuning["fake_path"] == "/usr/share/libcamera/ipa/rpi/pisp/imx708_noir.json"
    with pytest.raises(RuntimeError, match="^Tuning file not found$"):
        picamera2.Picamera2.load_tuning_file("imx708_nior.json")
    (tmp_path / "mine.json").write_text('{"version": 2.0, "algorithms": []}')
    assert picamera2.Picamera2.load_tuning_file("mine.json", dir=str(tmp_path))["algorithms"] == []


# -- what edgecam asks of the camera ------------------------------------------------------ #


def test_camera_module_3_gets_continuous_af_by_default(fake):
    _camera(fake, "pi5")  # a Pi 5 with a Camera Module 3 (imx708)
    with Picamera2Source(**FAST) as source:
        applied = fake.camera().applied_controls
        assert source.sensor == "imx708"
    assert applied["AfMode"] == 2  # AfModeContinuous (control_ids_core.yaml)
    assert "LensPosition" not in applied and "AfRange" not in applied


@pytest.mark.parametrize("model, sensor", [("pi4", None), ("pi5", "imx477"), ("pi4", "imx219")])
def test_fixed_focus_cameras_are_not_asked_for_af(fake, model, sensor):
    _camera(fake, model, sensor)
    with Picamera2Source(**FAST) as source:
        assert source.read() is not None
        applied = set(fake.camera().applied_controls)
    assert not applied & AF
    assert "FrameDurationLimits" in applied  # the frame rate still is


@pytest.mark.parametrize("keys, needs", [({"focus": "continuous"}, "focus"), ({"focus": "manual"}, "focus"),
                                         ({"focus_range": "macro"}, "focus_range"),
                                         ({"focus_region": "door", "focus_box": [0, 0, 0.5, 0.5]}, "focus_region")])
def test_af_asked_of_a_fixed_focus_camera_is_one_line(fake, keys, needs):
    _camera(fake, "pi4")  # imx219: no lens driver
    with pytest.raises(SourceError) as info:
        Picamera2Source(controls=_controls(**keys), **FAST)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"picamera2:0: source.{needs}: this camera (imx219) has no ")
    assert fake.open_cameras() == []  # and it was released


def test_manual_focus_sets_the_lens_in_dioptres(fake):
    _camera(fake, "pi5")
    with Picamera2Source(controls=_controls(focus="manual", lens_position=3.3, focus_range="macro"), **FAST):
        applied = fake.camera().applied_controls
    assert (applied["AfMode"], applied["LensPosition"], applied["AfRange"]) == (0, 3.3, 1)
    with pytest.raises(SourceError, match=r"source.lens_position: 20 dioptres is closer than this lens focuses "
                                          r"\(at most 15, 7 cm\)"):
        Picamera2Source(controls=_controls(focus="manual", lens_position=20.0), **FAST)


def test_af_windows_cover_the_region_in_sensor_coordinates(fake):
    _camera(fake, "pi5")
    # 640x480 main from the 2304x1296 binned mode: the ISP shows the middle 4:3 of it, in
    # pixel-array units x 576..4032 (3456 wide) and y 0..2592.
    box = [0.5, 0.5, 1.0, 1.0]  # the bottom-right quarter of the picture
    with Picamera2Source(controls=_controls(focus_region="feeder", focus_box=box), **FAST) as source:
        applied = fake.camera().applied_controls
        assert fake.camera().camera_controls["ScalerCrop"][2] == (576, 0, 3456, 2592)
        assert source.field_of_view == pytest.approx((0.75, 1.0))
    assert applied["AfMetering"] == 1  # AfMeteringWindows
    assert applied["AfWindows"] == [(576 + 1728, 1296, 1728, 1296)]
    assert applied["AfMode"] == 2


@pytest.mark.parametrize("model, size, seen", [("pi5", (640, 480), (0.75, 1.0)), ("pi5", (640, 360), (1.0, 1.0)),
                                               ("pi4", (640, 480), (1.0, 1.0))])
def test_field_of_view_says_what_the_picture_covers(fake, model, size, seen):
    _camera(fake, model)
    with Picamera2Source(size=size, **FAST) as source:
        assert source.field_of_view == pytest.approx(seen, abs=0.005)  # 1230 of 1232 rows: 4:3 rounding


@pytest.mark.parametrize("model", ["pi4", "pi5"])
@pytest.mark.parametrize("keys, flips", [({"hflip": True}, (True, False)), ({"vflip": True}, (False, True)),
                                         ({"rotation": 180}, (True, True)),
                                         ({"rotation": 180, "hflip": True}, (False, True))])
def test_flips_reach_the_configuration_as_a_transform(fake, model, keys, flips):
    _camera(fake, model)
    picture = _photo_like()
    fake.set_source([picture])
    import libcamera

    with Picamera2Source(lores_size=None, controls=_controls(**keys), **FAST) as source:
        transform = fake.camera().camera_configuration()["transform"]
        frame = source.read()
    assert isinstance(transform, libcamera.Transform)
    assert (transform.hflip, transform.vflip) == flips
    expected = picture[:, ::-1] if flips[0] else picture
    expected = expected[::-1] if flips[1] else expected
    assert np.abs(frame.image.astype(int) - expected.astype(int)).mean() < 3


def test_exposure_mode_and_longest_exposure(fake):
    _camera(fake, "pi4")  # every sensor has AeExposureMode
    with Picamera2Source(fps=30.0, timeout_s=2.0, controls=_controls(exposure="long", max_exposure_ms=250)):
        applied = fake.camera().applied_controls
    assert applied["AeExposureMode"] == 2  # ExposureLong
    assert applied["FrameDurationLimits"] == (33333, 250000)  # fastest 30 fps, slowest 4 fps
    with pytest.raises(SourceError, match=r"source.max_exposure_ms: 20000 is longer than this camera \(imx219\) "
                                          r"can expose in this mode \(11760 ms\)"):
        Picamera2Source(controls=_controls(max_exposure_ms=20000), **FAST)


def test_tuning_file_by_name_and_by_path(fake, tmp_path):
    _camera(fake, "pi5")
    with Picamera2Source(controls=_controls(tuning_file="imx708_noir.json"), **FAST):
        assert fake.camera().tuning["fake_path"].endswith("/pisp/imx708_noir.json")
    mine = tmp_path / "feeder.json"
    mine.write_text('{"version": 2.0, "target": "pisp", "algorithms": [{"rpi.agc": {}}]}')
    with Picamera2Source(controls=_controls(tuning_file=str(mine)), **FAST):
        assert fake.camera().tuning["algorithms"] == [{"rpi.agc": {}}]
    for name, why in (("imx219_noir.json", r"is for the imx219 sensor, and this camera is a imx708; name one of "
                                           r"its files, e.g. imx708_noir.json"),
                      ("imx708_nior.json", r"Tuning file not found; the names are those in /usr/share/libcamera"),
                      (str(tmp_path / "missing.json"), r"Tuning file not found; check the path")):
        with pytest.raises(SourceError, match=why):
            Picamera2Source(controls=_controls(tuning_file=name), **FAST)
    assert fake.open_cameras() == []


def test_the_config_reaches_the_camera(fake):
    _camera(fake, "pi5")
    cfg = from_dict({"source": {"type": "picamera2", "focus_region": "feeder", "vflip": True, "fps": 100,
                                "timeout_s": 2},
                     "regions": [{"name": "feeder", "box": [0.25, 0.25, 0.75, 0.75]}]})
    with open_source(cfg.source) as source:
        applied = fake.camera().applied_controls
        assert fake.camera().camera_configuration()["transform"].vflip
        assert source.controls.focus_box == (0.25, 0.25, 0.75, 0.75)
    assert applied["AfWindows"] == [(576 + 864, 648, 1728, 1296)]


# -- OpenCV sources ------------------------------------------------------------------------- #


def _clip(tmp_path, picture) -> str:
    import cv2

    path = str(tmp_path / "still.avi")
    out = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (picture.shape[1], picture.shape[0]))
    for _ in range(2):
        out.write(picture)
    out.release()
    return path


@pytest.mark.parametrize("flip, code", [((True, False), 1), ((False, True), 0), ((True, True), -1)])
def test_opencv_sources_flip_with_cv2(tmp_path, flip, code):
    import cv2

    picture = _photo_like(320, 240)
    path = _clip(tmp_path, picture)
    with OpenCVSource(path) as plain, OpenCVSource(path, flip=flip) as flipped:
        a, b = plain.read().image, flipped.read().image
    assert np.array_equal(b, cv2.flip(a, code))
    assert not np.array_equal(a, b)


def test_an_opencv_source_warns_once_of_pi_only_controls_and_applies_the_flips(tmp_path, caplog):
    import cv2

    picture = _photo_like(320, 240)
    path = _clip(tmp_path, picture)
    with caplog.at_level("WARNING", logger="edgecam.camera"):
        with open_source(SourceConfig(type="opencv", uri=path, focus="manual", rotation=180)) as source:
            frame = source.read()
    with OpenCVSource(path) as plain:
        assert np.array_equal(frame.image, cv2.flip(plain.read().image, -1))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["source.focus: set, but a source.type opencv source cannot apply it (only the Raspberry Pi "
                        "camera, source.type picamera2, can); ignoring it"]


# -- check-config ------------------------------------------------------------------------------ #


@pytest.mark.parametrize("source, problem", [
    ({"focus": "sharp"}, "source.focus: got 'sharp', expected one of 'auto' | 'continuous' | 'manual'"),
    ({"lens_position": 40}, "source.lens_position: got 40, expected a value between 0.0 and 32.0"),
    ({"lens_position": 2}, "source.lens_position: set, but source.focus is auto; expected source.focus: manual"),
    ({"focus_range": "near"}, "source.focus_range: got 'near', expected 'normal' | 'macro' | 'full' or null"),
    ({"focus_region": "door"}, "source.focus_region: 'door' is not a region (regions: none defined)"),
    ({"rotation": 90}, "source.rotation: got 90, expected one of 0 | 180"),
    ({"exposure": "night"}, "source.exposure: got 'night', expected one of 'normal' | 'short' | 'long'"),
    ({"max_exposure_ms": 6000}, "source.max_exposure_ms: 6000 ms is not shorter than source.timeout_s (5 s)"),
    ({"tuning_file": ""}, "source.tuning_file: got '', expected null or a non-empty string"),
    ({"hflip": "yes"}, "source.hflip: got 'yes', expected"),
])
def test_check_config_names_the_bad_camera_key(source, problem):
    with pytest.raises(ConfigError) as info:
        from_dict({"source": source})
    assert problem in str(info.value), str(info.value)


def test_check_config_accepts_every_camera_key(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("source:\n  type: picamera2\n  focus: manual\n  lens_position: 3.3\n  focus_range: macro\n"
                    "  hflip: true\n  rotation: 180\n  exposure: long\n  max_exposure_ms: 200\n"
                    "  tuning_file: imx708_noir.json\nregions:\n  - name: feeder\n    box: [0, 0, 0.5, 0.5]\n")
    done = subprocess.run([sys.executable, "-m", "edgecam", "check-config", str(path)], capture_output=True,
                          text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    path.write_text("source:\n  focus_region: feeder\n  focus: manual\n")
    done = subprocess.run([sys.executable, "-m", "edgecam", "check-config", str(path)], capture_output=True,
                          text=True, cwd=REPO, timeout=120)
    assert done.returncode == 2
    assert "source.focus_region: 'feeder' is not a region" in done.stdout + done.stderr

"""Picamera2Source against the fake picamera2 in tests/fakes (no Pi needed).

The first group checks the fake still behaves like the real picamera2 (so the
adapter tests mean something); the rest test the adapter.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecam.errors import SourceError
from edgecam.camera import picamera2_source
from edgecam.camera.picamera2_probe import camera_available, probe
from edgecam.camera.picamera2_source import Picamera2Source

FAKES = Path(__file__).resolve().parents[1] / "fakes"
FAST = {"fps": 100.0, "timeout_s": 2.0}  # keep real-time waits short


def _drop_fake_modules() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in ("picamera2", "libcamera"):
            del sys.modules[name]


@pytest.fixture
def fake(monkeypatch):
    """The fake's control object, with tests/fakes first on sys.path (pi4 model).

    Fails the test if it leaves a camera open.
    """
    monkeypatch.syspath_prepend(str(FAKES))
    _drop_fake_modules()
    import picamera2

    control = picamera2.fake_control
    control.reset("pi4")
    yield control
    leaked = control.reset()
    _drop_fake_modules()
    assert not leaked, f"camera(s) {leaked} left open"


@pytest.fixture(params=["pi4", "pi5"])
def model(request, fake):
    fake.set_model(request.param)
    return request.param


def _photo_like(width=640, height=480) -> np.ndarray:
    """A smooth, colourful BGR picture (no detail finer than chroma subsampling)."""
    x = np.linspace(0, 1, width, dtype=np.float32)[np.newaxis, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, np.newaxis]
    b = 40 + 180 * x * np.ones_like(y)
    g = 30 + 200 * y * np.ones_like(x)
    r = 128 + 100 * np.sin(6 * x + 4 * y)
    return np.clip(np.dstack([b, g, r]), 0, 255).astype(np.uint8)


def _expected_model_input(picture: np.ndarray, size=(224, 224)) -> np.ndarray:
    return cv2.cvtColor(cv2.resize(picture, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)


def _assert_close(actual: np.ndarray, expected: np.ndarray, mean_tol=2.5, max_tol=12) -> None:
    assert actual.shape == expected.shape
    diff = np.abs(actual.astype(np.int16) - expected.astype(np.int16))
    assert diff.mean() <= mean_tol, f"mean difference {diff.mean():.2f}"
    assert np.percentile(diff, 99.5) <= max_tol, f"99.5th percentile {np.percentile(diff, 99.5)}"


# --------------------------------------------------------------------------- #
# The fake behaves like picamera2
# --------------------------------------------------------------------------- #


def test_fake_pi4_refuses_rgb_lores_and_pads_yuv_rows(fake):
    from picamera2 import Picamera2

    with Picamera2(0) as cam:
        rgb = cam.create_video_configuration(main={"size": (640, 480), "format": "RGB888"},
                                             lores={"size": (224, 224), "format": "RGB888"})
        with pytest.raises(RuntimeError, match="lores stream must be YUV"):
            cam.configure(rgb)
        big = cam.create_video_configuration(main={"size": (320, 240), "format": "RGB888"},
                                             lores={"size": (640, 480), "format": "YUV420"})
        with pytest.raises(RuntimeError, match="may not exceed main"):
            cam.configure(big)
        cam.configure(cam.create_video_configuration(
            main={"size": (640, 480), "format": "RGB888"}, lores={"size": (224, 224), "format": "YUV420"},
            controls={"FrameRate": 100}))
        assert cam.stream_configuration("lores")["stride"] == 256  # 224 aligned up to 64 bytes
        with pytest.raises(TimeoutError):  # not started: nothing ever arrives
            cam.capture_request(wait=0.05)
        cam.cancel_all_and_flush()
        cam.start()
        with pytest.raises(RuntimeError, match="must be stopped"):
            cam.configure(cam.camera_config)
        assert cam.capture_array("lores", wait=2).shape == (336, 256)  # (h*3/2, stride)
        main = cam.capture_array("main", wait=2)
        assert main.shape == (480, 640, 3) and main.dtype == np.uint8


def test_fake_pi5_gives_rgb_lores_without_padding_in_the_array(fake):
    from picamera2 import Picamera2

    fake.set_model("pi5")
    with Picamera2(0) as cam:
        cam.configure(cam.create_video_configuration(
            main={"size": (640, 480), "format": "XRGB8888"}, lores={"size": (224, 224), "format": "RGB888"}))
        assert cam.stream_configuration("lores")["stride"] == 704  # 672 bytes aligned up to 64
        cam.start()
        request = cam.capture_request(wait=2)
        try:
            assert request.make_array("lores").shape == (224, 224, 3)
            assert request.make_array("main").shape == (480, 640, 4)
        finally:
            request.release()


def test_fake_open_rules(fake):
    from picamera2 import Picamera2

    cam = Picamera2(0)
    with pytest.raises(RuntimeError, match="Camera __init__ sequence did not complete"):
        Picamera2(0)
    cam.close()
    cam.close()
    Picamera2(0).close()
    fake.set_cameras(0)
    assert Picamera2.global_camera_info() == []
    with pytest.raises(IndexError):
        Picamera2(0)


def test_fake_stalls_when_the_application_holds_every_buffer(fake):
    from picamera2 import Picamera2

    with Picamera2(0) as cam:
        cam.configure(cam.create_video_configuration(controls={"FrameRate": 100}, buffer_count=3))
        cam.start()
        held = [cam.capture_request(wait=2) for _ in range(3)]
        with pytest.raises(TimeoutError):
            cam.capture_request(wait=0.1)
        cam.cancel_all_and_flush()
        for request in held:
            request.release()
        cam.capture_request(wait=2).release()


def test_fake_model_comes_from_the_environment(fake, monkeypatch):
    from picamera2 import MODEL_ENV, Picamera2
    from picamera2.platform import Platform

    monkeypatch.setenv(MODEL_ENV, "pi5")
    fake.reset()
    assert Picamera2.platform == Platform.PISP


# --------------------------------------------------------------------------- #
# Picamera2Source
# --------------------------------------------------------------------------- #


def test_pi4_configures_yuv420_lores(fake):
    with Picamera2Source(size=(640, 480), lores_size=(224, 224), **FAST) as source:
        assert source.lores_format == "YUV420"
        assert fake.camera().stream_configuration("lores")["stride"] > 224  # really padded
        frame = source.read()
    assert frame.image.shape == (480, 640, 3)
    assert frame.model_input.shape == (224, 224, 3) and frame.model_input.dtype == np.uint8


def test_pi5_configures_rgb_lores(fake):
    fake.set_model("pi5")
    with Picamera2Source(size=(640, 480), lores_size=(224, 224), **FAST) as source:
        assert source.lores_format == "RGB888"
        frame = source.read()
    assert frame.model_input.shape == (224, 224, 3)


def test_source_attributes(fake):
    with Picamera2Source(**FAST) as source:
        assert source.live is True
        assert source.fps == 100.0
        assert source.name == "picamera2:0"


def test_pictures_arrive_as_bgr_image_and_rgb_model_input(model, fake):
    picture = _photo_like()
    fake.set_source([picture])
    with Picamera2Source(size=(640, 480), lores_size=(224, 224), **FAST) as source:
        frame = source.read()
    # main RGB888 is B, G, R in memory: the picture itself, untouched.
    assert np.array_equal(frame.image, picture)
    _assert_close(frame.model_input, _expected_model_input(picture))


@pytest.mark.parametrize("colour, channel", [((0, 0, 255), 0), ((0, 255, 0), 1), ((255, 0, 0), 2)])
def test_pure_colours_land_in_the_right_channel(model, fake, colour, channel):
    picture = np.zeros((480, 640, 3), np.uint8)
    picture[:] = colour
    fake.set_source([picture])
    with Picamera2Source(**FAST) as source:
        frame = source.read()
    rgb = frame.model_input.reshape(-1, 3).mean(axis=0)
    assert rgb[channel] > 240
    assert all(rgb[c] < 15 for c in range(3) if c != channel), rgb
    bgr = frame.image.reshape(-1, 3).mean(axis=0)
    assert bgr[2 - channel] > 240


def test_hd_main_keeps_colours_right(fake):
    # picamera2 would pick BT.709 YUV at 1280x720; OpenCV decodes BT.601.
    picture = np.zeros((720, 1280, 3), np.uint8)
    picture[:] = (0, 255, 0)
    fake.set_source([picture])
    with Picamera2Source(size=(1280, 720), fps=30.0, timeout_s=2.0) as source:
        frame = source.read()
    assert np.abs(frame.model_input.astype(int) - (0, 255, 0)).max() <= 8


def test_main_and_model_input_come_from_the_same_sensor_frame(model, fake):
    def grey(index):
        return np.full((480, 640, 3), 40 + (index * 23) % 180, np.uint8)

    fake.set_source(grey)
    with Picamera2Source(**FAST) as source:
        for _ in range(8):
            frame = source.read()
            assert abs(float(frame.image.mean()) - float(frame.model_input.mean())) < 3


def test_index_gaps_show_frames_the_reader_missed(fake):
    with Picamera2Source(**FAST) as source:
        first = source.read()
        produced = fake.frames_produced()
        deadline = time.monotonic() + 10
        while fake.frames_produced() < produced + 4 and time.monotonic() < deadline:
            time.sleep(0.005)
        second = source.read()
    assert second.index - first.index >= 2


def test_frames_are_stamped_on_both_clocks(fake):
    with Picamera2Source(**FAST) as source:
        frames = [source.read() for _ in range(3)]
    assert [f.index for f in frames] == sorted({f.index for f in frames})
    for frame in frames:
        assert frame.timestamp <= time.monotonic()
        assert abs(frame.wall_time - time.time()) < 60


def test_every_request_is_released(fake):
    with Picamera2Source(**FAST) as source:
        for _ in range(20):
            source.read()
        assert fake.held_requests() == 0


def test_model_input_is_resized_when_the_isp_adjusts_lores(fake):
    fake.adjust_size = lambda name, fmt, size: (size[0] + 32, size[1] + 16) if name == "lores" else size
    picture = _photo_like()
    fake.set_source([picture])
    with Picamera2Source(lores_size=(224, 224), **FAST) as source:
        assert fake.camera().stream_configuration("lores")["size"] == (256, 240)
        frame = source.read()
    _assert_close(frame.model_input, _expected_model_input(picture), mean_tol=4, max_tol=20)


def test_lores_bigger_than_main_is_clamped_then_resized(model, fake):
    picture = _photo_like()
    fake.set_source([picture])
    with Picamera2Source(size=(160, 120), lores_size=(224, 224), **FAST) as source:
        frame = source.read()
    assert frame.image.shape == (120, 160, 3)
    assert frame.model_input.shape == (224, 224, 3)
    _assert_close(frame.model_input, _expected_model_input(picture), mean_tol=5, max_tol=25)


def test_no_lores_means_no_model_input(fake):
    with Picamera2Source(lores_size=None, **FAST) as source:
        frame = source.read()
    assert frame.model_input is None
    assert fake.camera() is None


def test_a_stall_is_a_source_error_and_the_source_recovers(fake):
    with Picamera2Source(fps=100.0, timeout_s=0.2) as source:
        source.read()
        fake.stall()
        # A frame the sensor completed before the stall is still queued (picamera2 keeps one): it is
        # delivered, then nothing more. (Reading right away raced with it: "DID NOT RAISE".)
        for _ in range(fake.queued_frames()):
            assert source.read() is not None
        with pytest.raises(SourceError, match=r"no frame for 0\.2 s \(cable loose\?") as info:
            source.read()
        assert "\n" not in str(info.value)
        fake.resume()
        # The timed-out capture was cancelled, so it does not swallow the next frame.
        assert source.read() is not None
        assert fake.held_requests() == 0


def test_an_unplugged_camera_times_out_and_is_no_longer_available(fake):
    with Picamera2Source(fps=100.0, timeout_s=0.2) as source:
        source.read()
        fake.disconnect()
        # A frame completed before the unplug may still be queued (picamera2 keeps one completed request).
        for _ in range(fake.queued_frames()):
            assert source.read() is not None
        with pytest.raises(SourceError, match="no frame for"):
            source.read()
    assert camera_available() is False
    with pytest.raises(SourceError, match="no camera found"):
        Picamera2Source(**FAST)


def test_a_libcamera_error_during_capture_is_a_source_error(fake):
    with Picamera2Source(**FAST) as source:
        fake.fail_next_capture(RuntimeError("Dequeue timer expired"))
        with pytest.raises(SourceError, match="capture failed: Dequeue timer expired"):
            source.read()


def test_a_camera_open_in_this_process_is_busy_until_closed(fake):
    first = Picamera2Source(**FAST)
    with pytest.raises(SourceError, match="camera busy: another process") as info:
        Picamera2Source(**FAST)
    assert "\n" not in str(info.value)
    first.close()
    second = Picamera2Source(**FAST)
    assert second.read() is not None
    second.close()


def test_a_camera_held_by_another_process_is_busy(fake):
    fake.hold()
    with pytest.raises(SourceError, match="stop it or reboot"):
        Picamera2Source(**FAST)
    assert fake.open_cameras() == []


def test_close_is_idempotent_and_ends_reading(fake):
    source = Picamera2Source(**FAST)
    source.read()
    source.close()
    source.close()
    assert fake.open_cameras() == []
    assert source.read() is None


def test_close_from_another_thread_ends_a_blocked_read(fake):
    source = Picamera2Source(fps=100.0, timeout_s=1.0)
    source.read()
    fake.stall()
    for _ in range(fake.queued_frames()):  # the frame completed before the stall: the reader must block
        source.read()
    outcome = []

    def reader():
        try:
            outcome.append(source.read())
        except SourceError as exc:  # pragma: no cover - reported by the assert below
            outcome.append(exc)

    thread = threading.Thread(target=reader, name="test-reader")
    thread.start()
    fake.wait_for_blocked_capture()  # close() must wake a read blocked in capture_request, not one not yet there
    source.close()
    thread.join()
    assert outcome == [None]
    assert fake.open_cameras() == []


def test_close_between_capture_and_copy_out(fake, monkeypatch):
    import picamera2

    source = Picamera2Source(**FAST)
    capture = picamera2.Picamera2.capture_request

    def capture_then_close(self, *args, **kwargs):
        request = capture(self, *args, **kwargs)
        closer = threading.Thread(target=source.close, name="test-closer")
        closer.start()
        closer.join()
        return request

    monkeypatch.setattr(picamera2.Picamera2, "capture_request", capture_then_close)
    assert source.read() is None
    assert fake.open_cameras() == []


def test_a_failure_while_starting_releases_the_camera(fake, monkeypatch):
    import picamera2

    def broken_start(self, *args, **kwargs):
        raise RuntimeError("Failed to start camera: Broken pipe")

    monkeypatch.setattr(picamera2.Picamera2, "start", broken_start)
    with pytest.raises(SourceError, match="cannot start the camera"):
        Picamera2Source(**FAST)
    assert fake.open_cameras() == []


def test_no_camera_attached(fake):
    fake.set_cameras(0)
    assert camera_available() is False
    with pytest.raises(SourceError, match="no camera found"):
        Picamera2Source(**FAST)


def test_camera_number_out_of_range(fake):
    assert camera_available(0) is True
    assert camera_available(1) is False
    with pytest.raises(SourceError, match=r"only 1 camera\(s\) found"):
        Picamera2Source(camera_num=1, **FAST)


def test_second_camera(fake):
    fake.set_cameras(2)
    with Picamera2Source(**FAST) as first, Picamera2Source(camera_num=1, **FAST) as second:
        assert second.name == "picamera2:1"
        assert first.read() is not None and second.read() is not None


def test_without_picamera2_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # makes the import fail
    assert camera_available() is False
    with pytest.raises(SourceError, match="picamera2 is not installed.*apt install python3-picamera2"):
        Picamera2Source()


# --------------------------------------------------------------------------- #
# What the real picamera2 does that used to pass unnoticed (issue 8): the fake
# shows each behaviour, then the adapter is tested against it.
# --------------------------------------------------------------------------- #


def _framed(width=640, height=480, border=0.2) -> np.ndarray:
    """A grey picture with a red frame in its outer ``border`` on every side (BGR)."""
    picture = np.full((height, width, 3), 128, np.uint8)
    bx, by = int(width * border), int(height * border)
    picture[:by], picture[-by:], picture[:, :bx], picture[:, -bx:] = (0, 0, 255), (0, 0, 255), (0, 0, 255), (0, 0, 255)
    return picture


def _red_share(image_bgr: np.ndarray) -> float:
    b, g, r = (image_bgr[..., c].astype(int) for c in range(3))
    return float(((r > 200) & (g < 60) & (b < 60)).mean())


def test_fake_before_0_3_20_has_no_flush_and_ignores_the_capture_timeout(fake):
    from picamera2 import Picamera2

    assert hasattr(Picamera2, "cancel_all_and_flush")
    fake.set_version("0.3.19")
    assert not hasattr(Picamera2, "cancel_all_and_flush")
    fake.hang_guard_s = 0.5
    with Picamera2(0) as cam:
        cam.configure(cam.create_video_configuration(controls={"FrameRate": 100}))
        with pytest.raises(AttributeError):
            cam.cancel_all_and_flush()
        t0 = time.monotonic()
        with pytest.raises(RuntimeError, match="would block forever"):
            cam.capture_request(wait=0.05)  # not started: the real one never returns
        assert time.monotonic() - t0 >= 0.45


def test_fake_before_0_3_13_takes_no_sensor_argument(fake):
    from picamera2 import Picamera2

    fake.set_version("0.3.12")
    with Picamera2(0) as cam:
        with pytest.raises(TypeError, match="unexpected keyword argument 'sensor'"):
            cam.create_video_configuration(sensor={"output_size": (1640, 1232)})
        cam.create_video_configuration()


def test_fake_lists_usb_cameras_after_camera_modules_and_they_have_one_stream(fake):
    from picamera2 import Picamera2

    fake.set_cameras(1, usb=1)
    cameras = Picamera2.global_camera_info()
    assert [("/usb" in cam["Id"]) for cam in cameras] == [False, True]
    assert cameras[1]["Model"].startswith("UVC Camera")
    fake.set_cameras(0, usb=1)
    with Picamera2(0) as cam:
        config = cam.create_video_configuration(main={"size": (640, 480), "format": "RGB888"},
                                                lores={"size": (224, 224), "format": "YUV420"})
        assert config["raw"] is None and config["sensor"] is None
        with pytest.raises(RuntimeError, match="Configuration failed"):
            cam.configure(config)
        cam.configure(cam.create_video_configuration(main={"size": (640, 480), "format": "RGB888"}))
        assert cam.stream_configuration("main")["format"] == "YUYV"  # adjusted: UVC gives YUYV
        cam.start()
        array = cam.capture_array("main", wait=2)
    assert array.shape == (480, 640, 2)
    assert cv2.cvtColor(array, cv2.COLOR_YUV2BGR_YUYV).shape == (480, 640, 3)


@pytest.mark.parametrize("sensor, size, crop", [
    ("imx219", (640, 480), (1000, 752, 1280, 960)),  # Camera v2: a 1280x960 centre crop
    ("imx708", (1536, 864), (768, 432, 3072, 1728)),  # Camera 3: a 3072x1728 crop
    ("imx477", (2028, 1520), (0, 0, 4056, 3040)),  # HQ at 12 bits: the binned mode already
])
def test_fake_picks_the_mode_nearest_main_and_shows_its_crop(fake, sensor, size, crop):
    from picamera2 import Picamera2

    fake.set_sensor(sensor)
    fake.set_source([_framed()])
    with Picamera2(0) as cam:
        modes = {m["size"]: m["crop_limits"] for m in cam.sensor_modes}
        assert modes[size] == crop
        cam.configure(cam.create_video_configuration(main={"size": (640, 480), "format": "RGB888"},
                                                     controls={"FrameRate": 100}))
        assert cam.camera_configuration()["sensor"]["output_size"] == size
        cam.start()
        image = cam.capture_array("main", wait=2)
    # The red frame is 64% of the picture; a cropped mode cuts most of it away.
    full_view = crop[:2] == (0, 0)
    assert (_red_share(image) > 0.5) == full_view, _red_share(image)


def test_fake_binned_mode_sees_the_whole_scene(fake):
    from picamera2 import Picamera2

    fake.set_source([_framed()])
    with Picamera2(0) as cam:
        cam.configure(cam.create_video_configuration(main={"size": (640, 480), "format": "RGB888"},
                                                     sensor={"output_size": (1640, 1232)},
                                                     controls={"FrameRate": 100}))
        assert cam.camera_configuration()["sensor"] == {"bit_depth": 10, "output_size": (1640, 1232)}
        cam.start()
        assert np.array_equal(cam.capture_array("main", wait=2), _framed())
        with pytest.raises(RuntimeError, match="must be stopped"):
            cam.sensor_modes  # reading the modes reconfigures the camera


def test_fake_init_failures_keep_their_cause(fake):
    from picamera2 import Picamera2

    fake.hold()
    with pytest.raises(RuntimeError, match="Camera __init__ sequence did not complete") as info:
        Picamera2(0)
    assert "Device or resource busy" in str(info.value.__cause__)
    fake.hold(held=False)
    fake.fail_open(RuntimeError("Failed to initialize camera"))
    with pytest.raises(RuntimeError, match="Camera __init__ sequence did not complete") as info:
        Picamera2(0)
    assert str(info.value.__cause__) == "Failed to initialize camera"


def test_fake_stamps_frames_on_clock_monotonic(fake):
    from picamera2 import Picamera2

    with Picamera2(0) as cam:
        cam.configure(cam.create_video_configuration(controls={"FrameRate": 100}))
        cam.start()
        before = time.monotonic_ns()
        stamp = cam.capture_metadata(wait=2)["SensorTimestamp"]
    assert before - 100_000_000 <= stamp <= time.monotonic_ns()


def _import_fake_with(monkeypatch, **env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    _drop_fake_modules()


def test_fake_import_can_fail_as_the_numpy_abi_break_does(fake, monkeypatch):
    _import_fake_with(monkeypatch, EDGECAM_FAKE_PICAMERA2_IMPORT_ERROR="numpy-abi")
    with pytest.raises(ValueError, match="numpy.dtype size changed, may indicate binary incompatibility"):
        import picamera2  # noqa: F401
    monkeypatch.delenv("EDGECAM_FAKE_PICAMERA2_IMPORT_ERROR")
    _drop_fake_modules()


# -- the adapter against each of them ------------------------------------------


def test_picamera2_older_than_0_3_20_is_refused_with_what_to_do(fake):
    fake.set_version("0.3.19")
    assert camera_available()  # there is a camera; opening it says what is wrong
    with pytest.raises(SourceError, match=r"too old: edgecam needs 0\.3\.20 or newer.*apt full-upgrade") as info:
        Picamera2Source(**FAST)
    assert "\n" not in str(info.value)
    assert fake.open_cameras() == []


@pytest.mark.parametrize("sensor", ["imx219", "imx708", "imx477"])
def test_the_model_sees_the_whole_field_of_view(fake, sensor):
    fake.set_sensor(sensor)
    fake.set_source([_framed()])
    with Picamera2Source(size=(640, 480), lores_size=(298, 224), **FAST) as source:
        sensor_cfg = fake.camera().camera_configuration()["sensor"]
        frame = source.read()
    full = {"imx219": (1640, 1232), "imx708": (2304, 1296), "imx477": (2028, 1520)}[sensor]
    assert sensor_cfg["output_size"] == full
    assert np.array_equal(frame.image, _framed())
    lores_bgr = cv2.cvtColor(frame.model_input, cv2.COLOR_RGB2BGR)
    assert abs(_red_share(lores_bgr) - _red_share(_framed())) < 0.03


def test_usb_cameras_are_left_to_opencv(fake):
    fake.set_cameras(0, usb=1)
    assert probe() == "only USB cameras found, which OpenCV opens"
    assert camera_available() is False
    with pytest.raises(SourceError, match=r"no camera found \(only 1 USB camera\(s\).*--source 0"):
        Picamera2Source(**FAST)
    assert fake.open_cameras() == []


def test_camera_0_is_the_first_camera_module_even_with_a_webcam_plugged_in(fake):
    fake.set_cameras(1, usb=1)
    assert camera_available(0) and not camera_available(1)
    with Picamera2Source(**FAST) as source:
        assert source.lores_format == "YUV420"
        assert source.read().model_input.shape == (224, 224, 3)
        assert fake.open_cameras() == [0]


@pytest.mark.parametrize("lores, message", [
    (None, "gives YUYV instead of RGB888 on its main stream"),
    ((224, 224), "refuses main"),
])
def test_what_configure_gives_is_checked(fake, monkeypatch, lores, message):
    # As if the USB webcam were taken for a camera module: libcamera adjusts or refuses.
    fake.set_cameras(0, usb=1)
    monkeypatch.setattr(picamera2_source, "camera_modules", lambda picamera2: [0])
    with pytest.raises(SourceError, match=message):
        Picamera2Source(lores_size=lores, **FAST)
    assert fake.open_cameras() == []


def test_an_init_failure_says_its_cause_not_always_busy(fake):
    fake.fail_open(RuntimeError("Failed to initialize camera"))
    with pytest.raises(SourceError) as info:
        Picamera2Source(**FAST)
    assert "cannot open the camera: Failed to initialize camera" in info.value.message
    assert "busy" not in info.value.message
    fake.fail_open(None)
    fake.hold()
    with pytest.raises(SourceError, match=r"camera busy.*Device or resource busy"):
        Picamera2Source(**FAST)


def test_frames_are_stamped_with_the_sensor_time_on_the_monotonic_clock(fake, monkeypatch):
    import picamera2

    stamps, walls = [], []
    get_metadata = picamera2.CompletedRequest.get_metadata

    def metadata_50ms_old(self):
        md = get_metadata(self)
        md["SensorTimestamp"] = time.monotonic_ns() - 50_000_000
        stamps.append(md["SensorTimestamp"])
        walls.append(time.time())  # the wall clock at that instant: the frame's wall time is 50 ms before it
        return md

    # A Pi that was once suspended: CLOCK_BOOTTIME runs ahead of CLOCK_MONOTONIC,
    # so comparing the sensor's stamp with the wrong clock shows at once.
    clock_gettime_ns = time.clock_gettime_ns
    monkeypatch.setattr(time, "clock_gettime_ns", lambda clk: clock_gettime_ns(clk) + (
        30_000_000_000 if clk == getattr(time, "CLOCK_BOOTTIME", None) else 0))
    monkeypatch.setattr(picamera2.CompletedRequest, "get_metadata", metadata_50ms_old)
    with Picamera2Source(**FAST) as source:
        frame = source.read()
    assert frame.timestamp == pytest.approx(stamps[-1] / 1e9, abs=1e-3)
    # Against the wall clock read next to the stamp, not after close(): closing joins the camera's thread,
    # which under load took longer than the tolerance ("1 of 30 runs" failed so).
    assert frame.wall_time == pytest.approx(walls[-1] - 0.05, abs=0.01)


def test_a_broken_picamera2_import_is_reported_not_taken_for_no_camera(fake, monkeypatch, caplog):
    _import_fake_with(monkeypatch, EDGECAM_FAKE_PICAMERA2_IMPORT_ERROR="numpy-abi")
    with caplog.at_level("WARNING", logger="edgecam.camera.picamera2_probe"):
        why = probe()
    assert "picamera2 cannot be imported (ValueError: numpy.dtype size changed" in why
    assert "make install" in why and "\n" not in why
    assert any("numpy.dtype size changed" in r.getMessage() for r in caplog.records)
    with pytest.raises(SourceError, match="picamera2:0: picamera2 cannot be imported.*NumPy"):
        Picamera2Source(**FAST)
    monkeypatch.delenv("EDGECAM_FAKE_PICAMERA2_IMPORT_ERROR")
    _drop_fake_modules()


# -- source: auto ---------------------------------------------------------------


def _open_auto():
    from edgecam.config.schema import SourceConfig
    from edgecam.camera import open_source

    return open_source(SourceConfig(type="auto", fps=100.0, timeout_s=2.0), (224, 224))


def test_auto_opens_the_camera_module(fake):
    fake.set_cameras(1, usb=1)
    with _open_auto() as source:
        assert source.name == "picamera2:0"
        assert source.read().model_input.shape == (224, 298, 3)  # the model's short side, 4:3


@pytest.mark.parametrize("setup, why", [
    (lambda fake: fake.set_version("0.3.19"), r"picamera2:0: picamera2 \S+ is too old"),
    (lambda fake: fake.hold(), r"picamera2:0: camera busy"),
    (lambda fake: fake.set_cameras(0, usb=1), r"only USB cameras found, which OpenCV opens"),
    (lambda fake: fake.set_cameras(0), r"picamera2 \(no camera found\)"),
])
def test_auto_tries_the_webcam_after_the_pi_camera_and_says_why_each_failed(fake, caplog, setup, why):
    # No webcam on this machine either, so the error names both attempts.
    setup(fake)
    with caplog.at_level("WARNING"), pytest.raises(SourceError) as info:
        _open_auto()
    message = info.value.message
    assert re.search(why, message), message
    assert message.index("picamera2") < message.index("webcam 0 (cannot open)")
    assert "\n" not in message
    assert fake.open_cameras() == []


def test_auto_with_a_broken_picamera2_says_so(fake, monkeypatch):
    _import_fake_with(monkeypatch, EDGECAM_FAKE_PICAMERA2_IMPORT_ERROR="numpy-abi")
    with pytest.raises(SourceError, match=r"tried picamera2 \(picamera2 cannot be imported \(ValueError: numpy"):
        _open_auto()
    monkeypatch.delenv("EDGECAM_FAKE_PICAMERA2_IMPORT_ERROR")
    _drop_fake_modules()


def test_auto_without_picamera2_is_short(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(SourceError, match=r"tried picamera2 \(not installed\); webcam 0"):
        _open_auto()

"""Picamera2Source against the fake picamera2 in tests/fakes (no Pi needed).

The first group checks the fake still behaves like the real picamera2 (so the
adapter tests mean something); the rest test the adapter.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecam.errors import SourceError
from edgecam.sources.picamera2_source import Picamera2Source, camera_available

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
    outcome = []

    def reader():
        try:
            outcome.append(source.read())
        except SourceError as exc:  # pragma: no cover - reported by the assert below
            outcome.append(exc)

    thread = threading.Thread(target=reader, name="test-reader")
    thread.start()
    time.sleep(0.05)
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
    with pytest.raises(SourceError, match="picamera2 is not available.*apt install python3-picamera2"):
        Picamera2Source()

"""Two camera modules at once (a Pi 5 or a Compute Module has two camera connectors), in the
fake picamera2 and in edgecam's picamera2 source beside another open camera.

The fake follows picamera2's own rules (picamera2.py: global_camera_info, Picamera2.__init__,
CameraManager, close): each camera has its own sensor, frames, requests and buffers; opening a
camera twice in one process fails; and before picamera2 0.3.37 that failed second open takes
the first one's frames.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgecam.camera import open_source
from edgecam.config.schema import SourceConfig
from edgecam.errors import SourceError
from tests.camera.test_picamera2 import fake, model  # noqa: F401 (fixtures)

RED, BLUE = (0, 0, 255), (255, 0, 0)  # BGR


def _plain(bgr, width=640, height=480) -> np.ndarray:
    return np.full((height, width, 3), bgr, np.uint8)


def _started(camera_num: int, fps: float = 100.0):
    from picamera2 import Picamera2

    cam = Picamera2(camera_num)
    cam.configure(cam.create_video_configuration(
        main={"size": (640, 480), "format": "RGB888"}, lores={"size": (224, 224), "format": "YUV420"},
        controls={"FrameRate": fps}))
    cam.start()
    return cam


def _colour(cam) -> tuple[int, int, int]:
    """The mean BGR of the next main frame (RGB888 is B, G, R in memory)."""
    return tuple(int(round(v)) for v in cam.capture_array("main", wait=2).reshape(-1, 3).mean(axis=0))


# -- what libcamera lists ------------------------------------------------------------------------


def test_global_camera_info_lists_two_distinct_cameras(fake, model):
    from picamera2 import Picamera2

    fake.set_cameras(2)
    cameras = Picamera2.global_camera_info()
    assert [set(cam) for cam in cameras] == [{"Model", "Location", "Rotation", "Id", "Num"}] * 2
    assert [cam["Num"] for cam in cameras] == [0, 1]
    bus = {"pi4": ("/base/soc/i2c0mux/i2c@1/", "/base/soc/i2c0mux/i2c@0/"),
           "pi5": ("/base/axi/pcie@120000/rp1/i2c@88000/", "/base/axi/pcie@120000/rp1/i2c@80000/")}[model]
    sensor = {"pi4": "imx219@10", "pi5": "imx708@1a"}[model]
    assert [cam["Id"] for cam in cameras] == [bus[0] + sensor, bus[1] + sensor]
    assert cameras[0]["Model"] == cameras[1]["Model"] == sensor.split("@")[0]

    fake.set_sensor("imx477", 1)  # an HQ camera on the second connector
    first, second = Picamera2.global_camera_info()
    assert (first["Model"], second["Model"]) == (sensor.split("@")[0], "imx477")
    assert second["Id"] == bus[1] + "imx477@1a" and second["Rotation"] == 180
    with Picamera2(0) as cam0, Picamera2(1) as cam1:
        assert cam0.camera_properties["Model"] != cam1.camera_properties["Model"]
        assert cam1.sensor_resolution == (4056, 3040)
        assert ("AfMode" in cam0.camera_controls) == (model == "pi5")  # a Camera 3 focuses, an HQ camera not
        assert "AfMode" not in cam1.camera_controls


def test_a_pi_has_two_camera_connectors(fake):
    from picamera2 import Picamera2

    with pytest.raises(ValueError, match="two|2 camera connectors"):
        fake.set_cameras(3)
    fake.set_cameras(2, usb=1)  # a third camera is a USB one, listed last
    assert ["/usb" in cam["Id"] for cam in Picamera2.global_camera_info()] == [False, False, True]


def test_camera_num_is_a_position_in_the_list_and_an_absent_one_fails(fake):
    from picamera2 import Picamera2

    fake.set_cameras(2)
    fake.disconnect(0)
    (listed,) = Picamera2.global_camera_info()
    assert listed["Num"] == 1  # libcamera's number; Picamera2(0) now means the remaining camera
    with Picamera2(0) as cam:
        assert cam.camera_idx == 1 and fake.open_cameras() == [1]
        with pytest.raises(IndexError):  # picamera2 < 0.3.37
            Picamera2(1)
        fake.set_version("0.3.37")
        with pytest.raises(RuntimeError, match=r'No camera number 1 found - use "rpicam-hello --list-cameras"'):
            Picamera2(1)


# -- two cameras running -------------------------------------------------------------------------


def test_two_cameras_open_at_once_deliver_their_own_pictures(fake, model):
    fake.set_cameras(2)
    fake.set_source([_plain(RED)], 0)
    fake.set_source([_plain(BLUE)], 1)
    cam0, cam1 = _started(0, fps=100), _started(1, fps=50)
    try:
        assert fake.open_cameras() == [0, 1]
        for _ in range(3):
            assert _colour(cam0) == RED and _colour(cam1) == BLUE
        # Each runs at its own rate, from its own sensor thread.
        assert cam0.capture_metadata(wait=2)["FrameDuration"] == 10000
        assert cam1.capture_metadata(wait=2)["FrameDuration"] == 20000
        # Each has its own buffers: holding all of camera 0's does not stop camera 1.
        held = [cam0.capture_request(wait=2) for _ in range(2)]
        assert fake.held_requests(0) == 2 and fake.held_requests(1) == 0
        assert _colour(cam1) == BLUE
        lores = held[0].make_array("lores")
        assert lores.shape[0] == 336 and lores[:224, :224].mean() == pytest.approx(81, abs=2)  # red's Y (BT.601)
        for request in held:
            request.release()
    finally:
        cam0.close()
        cam1.close()


def test_each_camera_has_its_own_size_adjustment(fake):
    from picamera2 import Picamera2

    fake.set_cameras(2)
    fake.set_adjust_size(lambda name, fmt, size: (size[0] + 32, size[1]) if name == "lores" else size, 1)
    with Picamera2(0) as cam0, Picamera2(1) as cam1:
        for cam in (cam0, cam1):
            cam.configure(cam.create_video_configuration(main={"size": (640, 480), "format": "RGB888"},
                                                         lores={"size": (224, 224), "format": "YUV420"}))
        assert cam0.stream_configuration("lores")["size"] == (224, 224)
        assert cam1.stream_configuration("lores")["size"] == (256, 224)


def test_opening_the_same_camera_twice_fails_and_the_other_opens(fake):
    from picamera2 import Picamera2

    fake.set_cameras(2)
    with Picamera2(0):
        with pytest.raises(RuntimeError, match=r"^Camera __init__ sequence did not complete\.$") as info:
            Picamera2(0)
        assert str(info.value.__cause__) == "Failed to acquire camera: Device or resource busy"
        with Picamera2(1):
            assert fake.open_cameras() == [0, 1]
            with pytest.raises(RuntimeError, match="Camera __init__ sequence did not complete"):
                Picamera2(1)


@pytest.mark.parametrize("version, keeps_delivering", [("0.3.36", False), ("0.3.37", True)])
def test_a_failed_second_open_trashes_the_open_camera_before_0_3_37(fake, version, keeps_delivering):
    """picamera2 < 0.3.37 registers a Picamera2 with its CameraManager before opening the camera,
    so the failed second open takes camera 0's entry and with it every later frame (PR #1402)."""
    from picamera2 import Picamera2

    fake.set_version(version)
    fake.set_cameras(2)
    fake.set_source([_plain(RED)], 0)
    fake.set_source([_plain(BLUE)], 1)
    cam0, cam1 = _started(0), _started(1)
    try:
        assert _colour(cam0) == RED
        with pytest.raises(RuntimeError, match="Camera __init__ sequence did not complete"):
            Picamera2(0)
        for _ in range(fake.queued_frames(0)):  # delivered before: picamera2 had queued it for camera 0
            cam0.capture_request(wait=2).release()
        if keeps_delivering:
            assert _colour(cam0) == RED
        else:
            with pytest.raises(TimeoutError):
                cam0.capture_request(wait=0.3)
            cam0.cancel_all_and_flush()
        assert _colour(cam1) == BLUE  # the other camera's entry is untouched
    finally:
        cam0.close()
    # Closing drops the entry (picamera2's close: _cm.cleanup); a new open gets frames again.
    cam0 = _started(0)
    try:
        assert _colour(cam0) == RED
    finally:
        cam0.close()
        cam1.close()


def test_closing_one_camera_leaves_the_other_running(fake):
    fake.set_cameras(2)
    fake.set_source([_plain(RED)], 0)
    fake.set_source([_plain(BLUE)], 1)
    cam0, cam1 = _started(0), _started(1)
    try:
        cam0.close()
        assert fake.open_cameras() == [1]
        produced = fake.frames_produced(1)
        assert _colour(cam1) == BLUE and _colour(cam1) == BLUE
        assert fake.frames_produced(1) > produced
        cam0 = _started(0)  # and it opens again beside it
        assert _colour(cam0) == RED and _colour(cam1) == BLUE
    finally:
        cam0.close()
        cam1.close()


def test_unplugging_one_camera_leaves_the_other_delivering(fake):
    from picamera2 import Picamera2

    fake.set_cameras(2)
    fake.set_source([_plain(RED)], 0)
    fake.set_source([_plain(BLUE)], 1)
    cam0, cam1 = _started(0), _started(1)
    try:
        fake.disconnect(1)
        assert [cam["Num"] for cam in Picamera2.global_camera_info()] == [0]
        for _ in range(fake.queued_frames(1)):  # what picamera2 had kept before the unplug
            cam1.capture_request(wait=2).release()
        with pytest.raises(TimeoutError):
            cam1.capture_request(wait=0.3)
        cam1.cancel_all_and_flush()
        produced = fake.frames_produced(0)
        for _ in range(3):
            assert _colour(cam0) == RED
        assert fake.frames_produced(0) >= produced + 2
    finally:
        cam0.close()
        cam1.close()


# -- edgecam's source beside another open camera -----------------------------------------------------


def _source_cfg(**kwargs) -> SourceConfig:
    return SourceConfig(type="picamera2", fps=100.0, timeout_s=2.0, **kwargs)


def test_edgecams_source_on_camera_0_while_camera_1_is_held_open(fake, model):
    fake.set_cameras(2)
    fake.set_source([_plain(RED)], 0)
    fake.set_source([_plain(BLUE)], 1)
    other = _started(1)  # another program's camera in this process: the second connector
    try:
        with open_source(_source_cfg(), (224, 224)) as source:
            assert source.name == "picamera2:0" and fake.open_cameras() == [0, 1]
            for _ in range(3):
                frame = source.read()
                assert frame.image[240, 320].tolist() == list(RED)  # BGR
                assert frame.model_input[112, 112].tolist() == pytest.approx([255, 0, 0], abs=3)  # RGB
                assert _colour(other) == BLUE
            fake.disconnect(1)  # the other camera goes away: edgecam's keeps delivering
            for _ in range(3):
                assert source.read().image[240, 320].tolist() == list(RED)
        assert fake.open_cameras() == [1]  # edgecam closed its camera only
    finally:
        other.close()


def test_edgecams_source_on_a_camera_this_process_holds_is_busy_and_leaves_it_alone(fake):
    fake.set_cameras(2)
    fake.set_source([_plain(BLUE)], 0)
    fake.set_version("0.3.37")  # picamera2 from 0.3.37 leaves the open camera alone
    other = _started(0)
    try:
        with pytest.raises(SourceError, match="camera busy"):
            open_source(_source_cfg(), (224, 224))
        assert fake.open_cameras() == [0]
        assert _colour(other) == BLUE
    finally:
        other.close()


@pytest.mark.parametrize("wait", [1, 1.0])
def test_a_timeout_of_one_second_is_a_timeout_not_a_wait_for_ever(fake, wait):
    # picamera2 tests `timeout is True`, not `timeout == True`: 1 and 1.0 are seconds (the fake once blocked).
    import time

    cam = _started(0, fps=30)
    try:
        fake.stall(0)
        if fake.queued_frames(0):  # the one completed frame picamera2 may keep queued
            cam.capture_request(wait=2).release()
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            cam.capture_request(wait=wait)
        assert time.monotonic() - t0 < 5
    finally:
        cam.cancel_all_and_flush()
        cam.close()

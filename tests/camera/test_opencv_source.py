"""OpenCVSource on the real shared video, and its errors."""

from __future__ import annotations

import pytest

from edgecam.errors import SourceError
from edgecam.camera import open_source
from edgecam.config.schema import SourceConfig
from edgecam.camera.opencv_source import OpenCVSource, is_live_uri

VIDEO = "video/imagenet20_640x480_30fps.mp4"


@pytest.fixture(scope="module")
def video(shared_dir):
    return str(shared_dir / VIDEO)


def test_reads_every_frame_of_the_file(video):
    with OpenCVSource(video) as src:
        assert not src.live and src.fps == pytest.approx(30.0)
        assert src.name == f"opencv:{video}"
        frames = list(src)
    assert len(frames) == 300
    assert [f.index for f in frames] == list(range(300))
    assert all(f.image.shape == (480, 640, 3) and f.image.dtype.name == "uint8" for f in frames)
    assert frames[0].size == (640, 480)
    assert all(b.timestamp >= a.timestamp for a, b in zip(frames, frames[1:]))
    # A real picture, and a moving one: the clip changes photo every 15 frames.
    assert frames[0].image.std() > 10
    assert abs(frames[0].image.astype(int) - frames[150].image.astype(int)).mean() > 10


def test_realtime_paces_at_the_native_rate(video):
    n = 15
    with OpenCVSource(video, realtime=True) as src:
        stamps = [src.read().timestamp for _ in range(n)]
    # Frame i is not delivered before i / fps after the first: a property of pacing, not of speed.
    assert stamps[-1] - stamps[0] >= (n - 1) / 30.0 * 0.9
    for i, t in enumerate(stamps):
        assert t - stamps[0] >= i / 30.0 - 0.005


def test_loop_starts_the_file_again(video):
    with OpenCVSource(video, loop=True) as src:
        first = src.read()
        frames = [src.read() for _ in range(309)]
    assert all(f is not None for f in frames)
    assert frames[-1].index == 309  # indexes keep counting across the restart
    assert abs(frames[298].image.astype(int) - first.image.astype(int)).mean() > 10  # frame 299: another photo
    assert abs(frames[299].image.astype(int) - first.image.astype(int)).mean() < 2  # frame 300 == frame 0


def test_close_ends_reading_and_is_idempotent(video):
    src = OpenCVSource(video)
    assert src.read() is not None
    src.close()
    src.close()
    assert src.read() is None


def test_missing_file_is_one_line_source_error(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(SourceError) as e:
        OpenCVSource(str(missing))
    assert e.value.exit_code == 3
    assert str(missing) in e.value.message and "\n" not in e.value.message
    assert "no such file" in e.value.message


def test_file_that_is_not_a_video_is_one_line_source_error(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    with pytest.raises(SourceError) as e:
        OpenCVSource(str(bad))
    assert "cannot open" in e.value.message and "\n" not in e.value.message


def test_factory_opens_the_file_from_config(video):
    src = open_source(SourceConfig(type="opencv", uri=video, realtime=True))
    try:
        assert isinstance(src, OpenCVSource) and src.realtime and not src.live
    finally:
        src.close()


@pytest.mark.parametrize("uri, live", [
    (0, True), ("2", True), ("/dev/video0", True), ("rtsp://cam.local/stream", True),
    ("http://10.0.0.2:8080/video", True), ("v4l2src ! videoconvert ! appsink", True),
    ("clip.mp4", False), ("/data/clip.mkv", False), ("file:///data/clip.mp4", False),
])
def test_live_uris(uri, live):
    assert is_live_uri(uri) is live

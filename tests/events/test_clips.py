"""Clips: the pre-roll ring's bounds, the Motion-JPEG AVI read back by FFmpeg, a full disk during a clip."""

from __future__ import annotations

import logging
import time

import cv2
import numpy as np
import pytest

from edgecam.events.avi import MjpegAviWriter, read_frames
from edgecam.events.clips import PreRoll
from edgecam.config.events import EventRuleConfig, EventsConfig
from edgecam.events.history import connect_reader, query_events
from edgecam.events.sink import EventsSink
from edgecam.camera.frame import Frame
from edgecam.result import Classification


def test_the_pre_roll_keeps_the_last_seconds_and_never_more_bytes_than_allowed():
    ring = PreRoll(seconds=1.0, max_bytes=10_000)
    for i in range(100):
        ring.add(i / 30, b"x" * 100)
    assert [round(t * 30) for t, _ in ring.frames] == list(range(69, 100))  # 1 s at 30 fps, and the frame at 1 s
    big = PreRoll(seconds=5.0, max_bytes=10_000)
    for i in range(100):
        big.add(i / 30, b"x" * 1000)
        assert big.bytes <= 10_000
    assert len(big.frames) == 10 and big.since(98 / 30) == [(98 / 30, b"x" * 1000), (99 / 30, b"x" * 1000)]


def test_a_motion_jpeg_avi_of_the_very_bytes_given(tmp_path):
    path = tmp_path / "c.avi"
    jpegs = [cv2.imencode(".jpg", np.full((48, 64, 3), 20 * i, np.uint8))[1].tobytes() for i in range(12)]
    with open(path, "wb") as f:
        w = MjpegAviWriter(f, 64, 48)
        for j in jpegs:
            w.write(j)
        w.close(7.5)
    cap = cv2.VideoCapture(str(path))
    assert cap.get(cv2.CAP_PROP_FPS) == 7.5 and cap.get(cv2.CAP_PROP_FRAME_WIDTH) == 64
    means = []
    while (frame := cap.read()[1]) is not None:
        means.append(round(float(frame.mean()) / 20))
    assert means == list(range(12))
    fps, index = read_frames(path)
    data = path.read_bytes()
    assert fps == 7.5 and [data[o:o + n] for o, n in index] == jpegs


def feed(sink, frames: list[tuple[bool, np.ndarray]], fps: float = 10.0) -> None:
    labels = ("background", "ibex")
    now = time.time()
    for i, (seen, image) in enumerate(frames):
        scores = np.array([0.1, 0.9] if seen else [0.9, 0.1], np.float32)
        sink.on_result(Classification(scores, labels, frame_index=i, wall_time=now + i / fps))
        sink.on_frame(Frame(image, i, i / fps, now + i / fps), None, None)


class FileSource:
    live, realtime, fps = False, False, 10.0


def test_a_full_disk_during_a_clip_loses_that_clip_only(half_mb_disk, caplog):
    rule = EventRuleConfig(for_s=0, name="ibex", label="ibex", cooldown_s=0, snapshot=False, clip=True, pre_s=0, post_s=0)
    sink = EventsSink(EventsConfig(rules=[rule], jpeg_quality=95, clip_format="avi"), half_mb_disk, None)
    sink.start()
    sink.source_opened(FileSource())
    rng = np.random.default_rng(1)
    noise = [rng.integers(0, 255, (240, 320, 3), dtype=np.uint8) for _ in range(3)]  # ~100 KB each as JPEG
    small = np.zeros((240, 320, 3), np.uint8)
    with caplog.at_level(logging.ERROR):
        feed(sink, [(False, small)] + [(True, noise[i % 3]) for i in range(12)] + [(False, small)]
             + [(True, small)] * 3 + [(False, small)])
        sink.close()
    assert "the clip of ibex (ibex) is lost: No space left on device" in caplog.text
    assert sink.clip_failures == 1
    rows, total = query_events(connect_reader(half_mb_disk))
    assert total == 2
    first, second = sorted(rows, key=lambda r: r["id"])
    assert first["clip"] is None and second["clip"] is not None  # the disk had room again for the next one
    assert len(read_frames(half_mb_disk / second["clip"])[1]) == 3
    assert sorted(p.name for p in (half_mb_disk / "media").rglob("*") if p.is_file()) == \
        [second["clip"].rsplit("/", 1)[1]]  # no .part left behind


def test_a_clip_format_this_opencv_cannot_write_is_refused_at_start(tmp_path):
    from edgecam.errors import ConfigError
    from edgecam.events.clips import can_write, choose_format

    assert choose_format("avi") == "avi"
    assert choose_format("auto") == ("mp4" if can_write("mp4") else "avi")
    if can_write("mp4"):
        return  # an OpenCV with H.264 (a system one): nothing to refuse here
    rule = EventRuleConfig(for_s=0, name="ibex", label="ibex", clip=True)
    sink = EventsSink(EventsConfig(rules=[rule], clip_format="mp4"), tmp_path / "ev")
    with pytest.raises(ConfigError, match="events.clip_format: 'mp4', but this OpenCV cannot write it"):
        sink.start()
    assert sink.history.conn is None  # refused before the history was opened


def test_clip_fps_keeps_every_nth_frame_for_the_clip_and_its_pre_roll(tmp_path):
    rule = EventRuleConfig(for_s=0, name="ibex", label="ibex", cooldown_s=0, snapshot=False, clip=True, pre_s=1, post_s=1)
    sink = EventsSink(EventsConfig(rules=[rule], clip_format="avi", clip_fps=10), tmp_path / "ev")
    sink.start()
    sink.source_opened(type("File", (), {"live": False, "realtime": False, "fps": 30.0})())
    image = np.zeros((48, 64, 3), np.uint8)
    # 30 fps: 2 s without, 2 s with the label, 2 s without
    feed(sink, [(False, image)] * 60 + [(True, image)] * 60 + [(False, image)] * 60, fps=30.0)
    assert sink.clips.ring.frames and len(sink.clips.ring.frames) <= 11  # 1 s at 10 fps (+ the one at 1 s)
    sink.close()
    rows, _ = query_events(connect_reader(tmp_path / "ev"))
    fps, frames = read_frames(tmp_path / "ev" / rows[0]["clip"])
    assert len(frames) == 10 + 20 + 10 and fps == pytest.approx(10, abs=0.01)  # 1 s + 2 s + 1 s at 10 fps


def test_a_full_disk_during_a_webm_clip_is_a_lost_clip_too(half_mb_disk, caplog):
    from edgecam.events.clips import can_write

    if not can_write("webm"):
        pytest.skip("this OpenCV cannot write WebM (VP8)")
    rule = EventRuleConfig(for_s=0, name="ibex", label="ibex", cooldown_s=0, snapshot=False, clip=True, pre_s=0, post_s=0)
    sink = EventsSink(EventsConfig(rules=[rule], clip_format="webm"), half_mb_disk, None)
    sink.start()
    sink.source_opened(FileSource())
    rng = np.random.default_rng(2)
    noise = [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(4)]  # VP8 cannot squeeze noise
    small = np.zeros((480, 640, 3), np.uint8)
    with caplog.at_level(logging.ERROR):
        feed(sink, [(False, small)] + [(True, noise[i % 4]) for i in range(12)] + [(False, small)])
        sink.close()
    rows, total = query_events(connect_reader(half_mb_disk))
    assert total == 1 and rows[0]["clip"] is None, rows
    assert sink.clip_failures == 1 and "the clip of ibex (ibex) is lost" in caplog.text
    assert not [p for p in (half_mb_disk / "media").rglob("*") if p.is_file()]

"""ImageFolderSource on a folder of generated pictures."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from edgecam.config.schema import SourceConfig
from edgecam.errors import SourceError
from edgecam.camera import open_source, parse_source
from edgecam.camera.images_source import ImageFolderSource

# name -> the BGR colour the picture is filled with (distinct, so frames can be told apart)
PICTURES = {"c.png": (0, 0, 200), "a.png": (200, 0, 0), "b.jpg": (0, 200, 0), "d.bmp": (90, 90, 90)}


@pytest.fixture
def folder(tmp_path):
    for name, colour in PICTURES.items():
        image = np.zeros((60, 80, 3), np.uint8)
        image[:] = colour
        assert cv2.imwrite(str(tmp_path / name), image)
    (tmp_path / "bb.png").write_bytes(b"\x89PNG truncated")  # looks like an image, is not one
    (tmp_path / "notes.txt").write_text("not a picture")
    (tmp_path / "sub.png").mkdir()  # a folder with an image's name
    return tmp_path


def colour(frame) -> tuple[int, ...]:
    return tuple(int(round(v)) for v in frame.image.reshape(-1, 3).mean(axis=0))


def test_pictures_in_name_order_unreadable_skipped(folder, caplog):
    caplog.set_level(logging.WARNING)
    with ImageFolderSource(folder) as src:
        assert not src.live and src.name == f"images:{folder}"
        frames = list(src)
    want = [PICTURES[n] for n in ("a.png", "b.jpg", "c.png", "d.bmp")]
    got = [colour(f) for f in frames]
    assert len(got) == 4
    for g, w in zip(got, want):
        assert max(abs(a - b) for a, b in zip(g, w)) <= 3  # JPEG is lossy
    assert all(f.image.shape == (60, 80, 3) for f in frames)
    indexes = [f.index for f in frames]
    assert indexes == sorted(set(indexes))
    skipped = [r.getMessage() for r in caplog.records if "bb.png" in r.getMessage()]
    assert len(skipped) == 1 and "bb.png: not a picture OpenCV can decode" in skipped[0]


def test_loop_repeats_the_folder(folder):
    with ImageFolderSource(folder, loop=True) as src:
        frames = [src.read() for _ in range(10)]
    assert all(f is not None for f in frames)
    assert [colour(f) == colour(frames[0]) for f in frames].count(True) >= 2
    assert colour(frames[4]) == colour(frames[0])  # four readable pictures, then again from the first


def test_realtime_paces_at_fps(folder):
    with ImageFolderSource(folder, fps=20, realtime=True) as src:
        stamps = [f.timestamp for f in src]
    assert len(stamps) == 4
    # At least three frame intervals between the first and the last of four pictures.
    assert stamps[-1] - stamps[0] >= 3 / 20 * 0.9


def test_close_ends_reading(folder):
    src = ImageFolderSource(folder)
    assert src.read() is not None
    src.close()
    assert src.read() is None


def _empty_folder(p):
    (p / "empty").mkdir()
    (p / "empty" / "readme.txt").write_text("no pictures here")
    return p / "empty"


def _a_file(p):
    (p / "x.png").write_bytes(b"")
    return p / "x.png"


@pytest.mark.parametrize("make, words", [
    (lambda p: p / "missing", "not a folder"),
    (_empty_folder, "no images"),
    (_a_file, "not a folder"),
])
def test_bad_folders_are_one_line_source_errors(tmp_path, make, words):
    path = make(tmp_path)
    with pytest.raises(SourceError) as e:
        ImageFolderSource(path)
    assert words in e.value.message and "\n" not in e.value.message and e.value.exit_code == 3


def test_a_folder_given_as_source_opens_the_images_source(folder):
    spec = parse_source(str(folder))
    assert spec == {"type": "images", "uri": str(folder)}
    src = open_source(SourceConfig(**spec))
    try:
        assert isinstance(src, ImageFolderSource) and len(src.paths) == 5  # bb.png is only found unreadable later
    finally:
        src.close()


@pytest.mark.parametrize("loop", [False, True])
def test_a_folder_with_nothing_readable_is_a_source_error_at_open(tmp_path, loop):
    # Before: an empty run that exited 0 (or, looping, spun); now exit 3 like an empty folder.
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(SourceError) as e:
        ImageFolderSource(tmp_path, loop=loop)
    assert e.value.exit_code == 3 and "\n" not in e.value.message
    assert "none of its 2 image files" in e.value.message and "broken.png" in e.value.message


def test_unreadable_files_before_the_first_picture_are_skipped_with_one_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(b"not a picture")
    cv2.imwrite(str(tmp_path / "c.png"), np.full((20, 30, 3), 50, np.uint8))
    with ImageFolderSource(tmp_path) as src:
        frames = list(src)
    assert [f.index for f in frames] == [2]  # its place in the folder: the gap shows the two skipped
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "skipping 2 unreadable" in warning and "a.png" in warning

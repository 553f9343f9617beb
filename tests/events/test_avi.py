"""The Motion-JPEG AVI reader on damaged files: truncated at many offsets, random bytes flipped.

A clip on the disk can be cut short (a copy that stopped, a disk that filled
outside our control) or damaged. The reader must then give the frames that
are whole, or one clear error (:class:`edgecam.events.avi.BadClip`), never a
``struct.error``, a ``ZeroDivisionError`` or a frame past the end of the file.
"""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest

from edgecam.events.avi import BadClip, MjpegAviWriter, read_frames

N_FRAMES = 12


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[bytes, list[bytes]]:
    path = tmp_path_factory.mktemp("avi") / "c.avi"
    jpegs = [cv2.imencode(".jpg", np.full((48, 64, 3), 20 * i, np.uint8))[1].tobytes() for i in range(N_FRAMES)]
    with open(path, "wb") as f:
        w = MjpegAviWriter(f, 64, 48)
        for j in jpegs:
            w.write(j)
        w.close(7.5)
    return path.read_bytes(), jpegs


def check(data: bytes, path) -> tuple[float, list[tuple[int, int]]] | None:
    """read_frames on ``data``: a sane answer (every frame inside the file, a usable rate) or BadClip (None)."""
    path.write_bytes(data)
    try:
        fps, frames = read_frames(path)
    except BadClip as e:
        assert str(e) and "\n" not in str(e)
        return None
    assert 0 < fps <= 1000 and fps == fps  # a rate a player can wait on (not 0, inf or NaN)
    for offset, size in frames:
        assert 0 <= offset and 0 < size and offset + size <= len(data)
    return fps, frames


def test_a_clip_cut_anywhere_gives_its_whole_frames_or_one_clear_error(clip, tmp_path):
    data, jpegs = clip
    full = check(data, tmp_path / "whole.avi")[1]
    assert [data[o:o + n] for o, n in full] == jpegs
    cuts = sorted(set(range(0, 400)) | set(range(400, len(data), 37)) | {len(data) - 1})
    for cut in cuts:
        out = check(data[:cut], tmp_path / "cut.avi")
        whole = [(o, n) for o, n in full if o + n <= cut]  # the frames written before the cut
        if out is None:
            assert not whole, f"cut at {cut}: {len(whole)} whole frames, but refused"
            continue
        assert out[1] == whole, cut


@pytest.mark.parametrize("seed", range(300))
def test_random_byte_flips_never_raise_anything_but_bad_clip(clip, tmp_path, seed):
    data, _ = clip
    rng = random.Random(seed)
    damaged = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 5, 20))):
        at = rng.randrange(0, min(len(data), 400) if rng.random() < 0.7 else len(data))  # mostly the headers
        damaged[at] = rng.randrange(256)
    check(bytes(damaged), tmp_path / "flip.avi")


@pytest.mark.parametrize("data", [b"", b"RIFF", b"RIFF\xff\xff\xff\xffAVI ", b"not an avi at all" * 10,
                                  b"RIFF\0\0\0\0AVI LIST\x04\0\0\0hdrl" + b"vidsMJPG" + b"\0" * 40])
def test_files_that_are_not_clips_are_one_clear_error(tmp_path, data):
    (tmp_path / "x.avi").write_bytes(data)
    with pytest.raises(BadClip):
        read_frames(tmp_path / "x.avi")


def test_a_zero_frame_rate_is_a_clear_error_not_a_division_by_zero(clip, tmp_path):
    data, _ = clip
    at = data.find(b"vidsMJPG") + 8 + 12  # strh's scale, then rate
    for scale, rate in ((0, 7500), (1000, 0), (0, 0)):
        damaged = data[:at] + scale.to_bytes(4, "little") + rate.to_bytes(4, "little") + data[at + 8:]
        assert check(damaged, tmp_path / "rate.avi") is None

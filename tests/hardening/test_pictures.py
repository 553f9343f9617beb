"""Pictures by path (issue 24, item 1 and the huge-picture case): file and folder names that are not UTF-8,
empty files, pictures whose header declares billions of pixels. Each in a subprocess: before the fix OpenCV
killed the process with SIGSEGV (rc -11/139), which an in-process test could not survive."""

from __future__ import annotations

import os
import re
import struct
import zlib

import cv2
import numpy as np
import pytest

from edgecam import pictures
from edgecam.errors import EXIT_CONFIG
from tests.conftest import run_cli
from tests.doubles import Besides, one_error_line

BAD = b"\xff"  # not UTF-8: Python carries it as the lone surrogate '\udcff'


def _png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


def _write(folder: bytes, name: bytes, data: bytes) -> bytes:
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _photo(shared_dir) -> bytes:
    return (shared_dir / "images" / "cat.bmp").read_bytes()


def test_classify_a_photo_whose_name_is_not_utf8(shared_dir, model_env, tmp_path):
    path = _write(os.fsencode(tmp_path), b"cat" + BAD + b".bmp", _photo(shared_dir))
    r = run_cli(["classify", os.fsdecode(path), "--model", "mobilenet_v3_small"], env=model_env)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert "tabby" in r.stdout or "cat" in r.stdout
    assert "\\xff" in r.stdout  # the name is printed, its bad byte shown as \xff


def test_a_folder_source_whose_folder_and_files_are_not_utf8(shared_dir, model_env, tmp_path):
    folder = os.path.join(os.fsencode(tmp_path), b"photos" + BAD)
    _write(folder, b"1" + BAD + b".bmp", _photo(shared_dir))
    _write(folder, b"2.png", _png(np.full((64, 64, 3), 90, np.uint8)))
    r = run_cli(["run", "--source", os.fsdecode(folder), "--display", "none",
                 "--model", "mobilenet_v3_small"], env=model_env)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])


def _examples(root: bytes, states: tuple[bytes, ...]) -> None:
    rng = np.random.default_rng(0)
    for k, state in enumerate(states):
        for i in range(3):
            noise = rng.integers(0, 30, (64, 64, 3), dtype=np.uint8)
            _write(os.path.join(root, state), f"{i}".encode() + BAD + b".png", _png(noise + 150 * k))


def test_learn_from_a_folder_and_files_whose_names_are_not_utf8(shared_dir, model_env, tmp_path):
    root = os.path.join(os.fsencode(tmp_path), b"ex" + BAD)
    _examples(root, (b"open", b"closed"))
    r = run_cli(["learn", os.fsdecode(root), "--name", "utf", "--folds", "3", "--dir", str(tmp_path / "models")],
                env=model_env)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert "learned utf: 2 states" in r.stdout


def test_learn_refuses_a_state_whose_name_is_not_utf8_in_one_line(shared_dir, model_env, tmp_path):
    """A state's name becomes a label (the page, MQTT, folders of examples): it must be text."""
    root = os.path.join(os.fsencode(tmp_path), b"ex")
    _examples(root, (b"open" + BAD, b"closed"))
    r = run_cli(["learn", os.fsdecode(root), "--name", "utf", "--folds", "3", "--dir", str(tmp_path / "models")],
                env=model_env)
    assert r.returncode == EXIT_CONFIG, (r.returncode, r.stderr[-2000:])
    assert "the subfolder 'open\\xff' cannot name a state" in one_error_line(r, None, besides=Besides.ANYTHING)


def test_a_video_file_whose_name_is_not_utf8_is_one_line(shared_dir, model_env, tmp_path):
    path = _write(os.fsencode(tmp_path), b"clip" + BAD + b".mp4",
                  (shared_dir / "video" / "imagenet20_640x480_30fps.mp4").read_bytes()[:200_000])
    r = run_cli(["run", "--source", os.fsdecode(path), "--display", "none",
                 "--model", "mobilenet_v3_small"], env=model_env)
    assert r.returncode == EXIT_CONFIG, (r.returncode, r.stderr[-2000:])
    line = one_error_line(r, None, besides=Besides.ANYTHING)
    assert "clip\\xff.mp4" in line and "not UTF-8" in line and "rename" in line


def test_a_recording_path_that_is_not_utf8_is_one_line(shared_dir, model_env, tmp_path):
    out = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"out" + BAD + b".avi"))
    r = run_cli(["run", "--source", str(shared_dir / "images"), "--display", "none",
                 "--model", "mobilenet_v3_small", "--record", out], env=model_env)
    assert r.returncode == EXIT_CONFIG, (r.returncode, r.stderr[-2000:])
    assert "not UTF-8" in one_error_line(r, None, besides=Besides.ANYTHING)


def _huge_png(width: int, height: int) -> bytes:
    """A valid PNG header declaring width x height (the pixel data is never reached)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + b"\0" * 64


def test_a_picture_declaring_too_many_pixels_is_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(_huge_png(20000, 20000))
    with pytest.raises(pictures.PictureError, match=r"huge.png: 20000x20000 pixels \(400 MP\) is over"):
        pictures.read_image(path)


def test_a_huge_jpeg_is_decoded_at_a_fraction_of_its_size(tmp_path):
    image = np.zeros((10000, 8000, 3), np.uint8)  # 80 MP: read at 1/2
    image[:5000] = 255
    ok, buf = cv2.imencode(".jpg", image)
    path = tmp_path / "big.jpg"
    path.write_bytes(buf.tobytes())
    got = pictures.read_image(path)
    assert got.shape == (5000, 4000, 3) and got[:2400].mean() > 250 and got[2600:].mean() < 5


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp", ".tiff", ".gif"])
def test_header_sizes_are_read_as_opencv_decodes_them(tmp_path, ext):
    if ext == ".gif" and not cv2.haveImageWriter(".gif"):
        pytest.skip("this OpenCV writes no GIF")
    image = np.random.default_rng(1).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(ext, image)
    assert ok
    assert pictures.header_size(buf.tobytes()) == (53, 37)


@pytest.mark.parametrize("data, reason", [(b"", "empty file (0 bytes)"), (b"not a picture at all",
                                                                          "not a picture OpenCV can decode")])
def test_unreadable_pictures_say_why(tmp_path, data, reason):
    path = tmp_path / "x.png"
    path.write_bytes(data)
    with pytest.raises(pictures.PictureError, match=re.escape(reason)):
        pictures.read_image(path)


def test_write_image_is_atomic_and_takes_any_name(tmp_path):
    path = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"a" + BAD + b".png"))
    image = np.full((8, 8, 3), 7, np.uint8)
    pictures.write_image(path, image)
    assert (pictures.read_image(path) == image).all()
    assert os.listdir(tmp_path) == [os.path.basename(path)]  # no temporary file left


def test_collect_from_and_into_folders_whose_names_are_not_utf8(shared_dir, model_env, tmp_path):
    source = os.path.join(os.fsencode(tmp_path), b"in" + BAD)
    _write(source, b"1" + BAD + b".bmp", _photo(shared_dir))
    _write(source, b"2.bmp", _photo(shared_dir))
    config = tmp_path / "config.yaml"
    config.write_text("regions:\n  - {name: garage, box: [0, 0, 0.5, 0.5]}\n")
    out = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"ex" + BAD))
    r = run_cli(["collect", "--config", str(config), "--source", os.fsdecode(source), "--region", "garage",
                 "--label", "open", "--count", "2", "--every", "0", "--dir", out], env=model_env)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    saved = os.listdir(os.path.join(os.fsencode(out), b"open"))
    assert len(saved) == 2 and "ex\\xff/open" in r.stdout
    crop = pictures.read_image(os.path.join(os.fsencode(out), b"open", saved[0]))
    assert crop.shape[:2] == tuple(s // 2 for s in pictures.read_image(shared_dir / "images" / "cat.bmp").shape[:2])


def test_header_reading_never_raises_on_damaged_headers():
    rng = np.random.default_rng(3)
    magics = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"RIFF\0\0\0\0WEBPVP8X", b"RIFF\0\0\0\0WEBPVP8L",
              b"RIFF\0\0\0\0WEBPVP8 ", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*"]
    for magic in magics:
        for n in (0, 3, 9, 30, 200):
            data = magic + rng.integers(0, 256, n, dtype=np.uint8).tobytes()
            size = pictures.header_size(data)
            assert size is None or (len(size) == 2 and all(isinstance(v, int) for v in size))
            with pytest.raises(pictures.PictureError):
                pictures.decode(data, "x")

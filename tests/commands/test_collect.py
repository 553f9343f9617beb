"""``edgecam collect`` on a generated clip: region crops, cut from the full frame, every N seconds of
the clip's own time, into DIR/<label>/; what ``edgecam learn`` then reads."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgecam.errors import EXIT_CONFIG
from tests.commands.test_learn import command
from tests.scenes import REGION, Scene, box_pixels, write_video


@pytest.fixture(scope="module")
def clip(shared_dir, tmp_path_factory):
    scene = Scene(shared_dir / "images" / "imagenet-sample")
    path = tmp_path_factory.mktemp("clip") / "scene.mp4"
    write_video(scene, path, [("scooter", 50)], fps=10, seed=1)
    return path


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGECAM_CONFIG", raising=False)
    path = tmp_path / "config.yaml"
    path.write_text("regions:\n  - name: garage\n    box: [%s]\n    labels: [empty, scooter]\n"
                    % ", ".join(map(str, REGION)))
    return path


def test_collect_saves_crops_every_so_often_of_the_clips_time(clip, config, tmp_path, capsys):
    out = tmp_path / "ex"
    code = command(["collect", "--config", str(config), "--source", str(clip), "--region", "garage",
                    "--label", "scooter", "--count", "4", "--every", "1.5s", "--dir", str(out)])
    assert code == 0
    files = sorted((out / "scooter").glob("*.png"))
    assert len(files) == 4
    text = capsys.readouterr().out
    assert "saved 4 examples of scooter for region garage" in text and f"edgecam learn {out}" in text
    # Each is the box of a frame of the clip (640x480), the frames 15 apart (1.5 s at 10 fps).
    cap = cv2.VideoCapture(str(clip))
    frames = []
    ok, img = cap.read()
    while ok:
        frames.append(img)
        ok, img = cap.read()
    x0, y0, x1, y1 = box_pixels(REGION, (640, 480))
    for f, index in zip(files, (0, 15, 30, 45)):
        saved = cv2.imread(str(f))
        assert np.array_equal(saved, frames[index][y0:y1, x0:x1])


def test_the_source_ending_first_is_said(clip, config, tmp_path, capsys):
    code = command(["collect", "--config", str(config), "--source", str(clip), "--region", "garage",
                    "--label", "scooter", "--count", "10", "--every", "2s", "--dir", str(tmp_path / "ex")])
    assert code == 0
    assert len(list((tmp_path / "ex" / "scooter").glob("*.png"))) == 3  # 5 s of clip: frames 0, 20, 40
    assert "the source ended after 3 of 10 examples" in capsys.readouterr().err


@pytest.mark.parametrize("args,message", [
    (["--region", "porch", "--label", "x"], "no such region"),
    (["--region", "garage", "--label", "../x"], "a state's name is a folder name"),
    (["--region", "garage", "--label", "open\nclosed"], "a state's name is a folder name"),  # issue 24
    (["--region", "garage", "--label", "=HYPERLINK(1)"], "a state's name is a folder name"),
    (["--region", "garage", "--label", "open\n"], "no control characters"),
    (["--region", "garage", "--label", "x", "--count", "0"], "--count 0"),
])
def test_bad_requests_are_one_line(clip, config, capsys, args, message):
    code = command(["collect", "--config", str(config), "--source", str(clip), *args])
    assert code == EXIT_CONFIG and message in capsys.readouterr().err


def test_every_takes_durations():
    from edgecam.commands.collect import duration

    assert [duration(t) for t in ("1s", "500ms", "2", "1.5m", "3 min")] == [1.0, 0.5, 2.0, 90.0, 180.0]
    with pytest.raises(Exception, match="duration"):
        duration("soon")

"""Several cameras in one config (``cameras:``) and on the command line (repeated ``--source``)."""

from __future__ import annotations

import argparse
import logging
import os
import textwrap
from pathlib import Path

import pytest
import yaml

from edgecam.cli import build_parser
from edgecam.commands import load_config
from edgecam.commands.run import run_overrides, source_overrides, split_source
from edgecam.config import schema as config
from edgecam.config.cameras import MAX_CAMERAS, CameraSpec, camera_configs
from edgecam.config.schema import CameraConfig, Config, ConfigError, apply_overrides, from_dict, load
from tests.conftest import run_cli
from tests.docs import blocks
from tests.doubles import Besides, one_error_line

REPO = Path(__file__).resolve().parents[2]

TWO = """\
    source:
      width: 320
      fps: 10
      uri: "0"
      type: opencv
    model:
      top_k: 5
    smoothing:
      mode: ema
    regions:
      - name: garage
        box: [0, 0, 0.5, 0.5]
    events:
      rules:
        - {name: car_in, label: car, region: garage}
    cameras:
      - name: door
        source: {type: picamera2, uri: 1, fps: 15}
        model: {threads: 2}
        smoothing: {window: 9}
      - name: yard
        source: {uri: yard.mp4}
        regions:
          - name: gate
            box: [0.5, 0.5, 1, 1]
        events:
          rules:
            - {name: gate_open, label: open, region: gate}
"""


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        from_dict(yaml.safe_load(textwrap.dedent(text)))
    return info.value.problems


# -- a good config ------------------------------------------------------------------------------------------------

def test_each_camera_is_the_top_level_with_its_own_keys_laid_over(tmp_path):
    path = write(tmp_path, TWO)
    cfg = load(path)
    door, yard = camera_configs(cfg)
    assert (door.name, yard.name) == ("door", "yard")
    d, y = door.config, yard.config
    # source: the given keys replace the top level's, the others are inherited
    assert (d.source.type, d.source.uri, d.source.fps, d.source.width) == ("picamera2", "1", 15.0, 320)
    assert (y.source.type, y.source.uri, y.source.fps, y.source.width) == ("opencv", "yard.mp4", 10.0, 320)
    # model and smoothing: key by key too
    assert (d.model.threads, d.model.top_k, y.model.threads, y.model.top_k) == (2, 5, "auto", 5)
    assert (d.smoothing.mode, d.smoothing.window, y.smoothing.window) == ("ema", 9, 5)
    # regions and events rules: a camera's list replaces the top level's; none given, it is inherited
    assert [r.name for r in d.regions] == ["garage"] and [r.name for r in y.regions] == ["gate"]
    assert [r.name for r in d.events.rules] == ["car_in"] and [r.name for r in y.events.rules] == ["gate_open"]
    for c in (d, y):
        assert isinstance(c, Config) and c.cameras == [] and c.path == str(path)
    # the top level itself is what the file says
    assert (cfg.source.type, cfg.source.uri, cfg.model.threads) == ("opencv", "0", "auto")


def test_a_camera_config_is_what_the_same_keys_at_the_top_level_make():
    cfg = from_dict({"source": {"fps": 5}, "cameras": [{"name": "a", "source": {"type": "demo", "loop": True}}]})
    (spec,) = camera_configs(cfg)
    assert spec == CameraSpec("a", from_dict({"source": {"fps": 5, "type": "demo", "loop": True}}))


def test_a_camera_s_focus_region_is_one_of_its_own_regions():
    cfg = from_dict({"cameras": [
        {"name": "a", "source": {"type": "picamera2", "focus_region": "door"},
         "regions": [{"name": "door", "box": [0.1, 0.2, 0.3, 0.4]}]},
        {"name": "b", "source": {"type": "picamera2", "uri": 1}}]})
    a, b = camera_configs(cfg)
    assert a.config.source.focus_box == [0.1, 0.2, 0.3, 0.4] and b.config.source.focus_box is None


def test_empty_regions_on_a_camera_means_the_whole_picture():
    cfg = from_dict({"regions": [{"name": "g"}], "cameras": [{"name": "a", "regions": []}]})
    assert camera_configs(cfg)[0].config.regions == [] and cfg.regions[0].name == "g"


@pytest.mark.parametrize("text", [
    "", "model:\n  top_k: 5\n", "source:\n  uri: 0\n  type: opencv\n",
    "regions:\n  - name: g\nevents:\n  rules:\n    - {name: r, label: x, region: g}\n",
])
def test_without_cameras_there_is_one_named_main_whose_config_is_the_config(tmp_path, text):
    cfg = load(write(tmp_path, text))
    assert camera_configs(cfg) == [CameraSpec("main", cfg)]
    assert camera_configs(cfg)[0].config == cfg


def test_the_repo_config_is_one_camera():
    cfg = load(REPO / "config.yaml")
    assert cfg.cameras == [] and camera_configs(cfg)[0].config == cfg


def test_a_config_never_checked_has_no_camera_configs():
    with pytest.raises(ValueError, match="never checked"):
        camera_configs(Config(cameras=[CameraConfig(name="a")]))


def test_to_dict_round_trips_cameras(tmp_path):
    cfg = load(write(tmp_path, TWO))
    data = config.to_dict(cfg)
    assert data["cameras"][0] == {"name": "door", "source": {"type": "picamera2", "uri": "1", "fps": 15.0},
                                  "model": {"threads": 2}, "smoothing": {"window": 9}, "regions": None,
                                  "events": None}
    again = from_dict(yaml.safe_load(yaml.safe_dump(data)), cfg.path)
    assert again == cfg
    assert [(s.name, s.config) for s in camera_configs(again)] == [(s.name, s.config) for s in camera_configs(cfg)]


def test_overrides_keep_the_cameras_and_reach_them(tmp_path):
    cfg = apply_overrides(load(write(tmp_path, TWO)), {"model.top_k": 7, "source.height": 240})
    door, yard = camera_configs(cfg)
    assert door.config.model.top_k == yard.config.model.top_k == 7
    assert door.config.source.height == yard.config.source.height == 240
    assert door.config.model.threads == 2  # the camera's own key still wins


# -- every problem at once ------------------------------------------------------------------------------------------

# (a cameras: entry, the problem lines it brings). In one file they are all reported together, in one ConfigError.
BAD = [
    pytest.param("- source: {type: opencv, uri: a.mp4}", ["cameras[{i}].name: missing, expected a name"],
                 id="missing-name"),
    pytest.param("- name: front door\n  source: {type: demo}", ["cameras[{i}].name: got 'front door', expected a name of letters"],
                 id="bad-name"),
    pytest.param(f"- name: {'c' * 33}\n  source: {{type: demo}}", [f"cameras[{{i}}].name: got '{'c' * 33}', expected a name of letters"],
                 id="name-too-long"),
    pytest.param("- name: twin\n  source: {type: demo}\n- name: twin\n  source: {type: demo}",
                 ["cameras[{j}].name: 'twin' names two cameras; expected distinct names"], id="duplicate-names"),
    pytest.param("- name: typo\n  source: {type: demo}\n  sourse: {uri: 1}",
                 ["cameras[{i}].sourse: unknown key (known keys here: events, model, name, regions, smoothing, "
                  "source)"], id="unknown-key"),
    pytest.param("- name: http\n  source: {type: demo}\n  http: {port: 1}", ["cameras[{i}].http: unknown key"], id="top-level-only-key"),
    pytest.param("- name: fps\n  source: {type: demo, fps: fast}",
                 ["cameras[{i}].source.fps: got 'fast', expected a number"], id="bad-nested-value"),
    pytest.param("- name: key\n  source: {type: demo, colour: red}",
                 ["cameras[{i}].source.colour: unknown key (known keys here:"], id="unknown-nested-key"),
    pytest.param("- name: model\n  source: {type: demo}\n  model: mobilenet_v2",
                 ["cameras[{i}].model: got 'mobilenet_v2', expected a mapping of ModelConfig keys (those that differ"],
                 id="section-not-mapping"),
    pytest.param("- name: box\n  source: {type: demo}\n  regions: [{name: g, box: [1, 0, 0, 1]}]",
                 ["cameras[{i}].regions[0].box: got [1, 0, 0, 1], expected [x0, y0, x1, y1]"], id="bad-region"),
    pytest.param("- name: cross\n  source: {type: demo}\n  smoothing: {threshold_low: 0.9}",
                 ["cameras[{i}].smoothing.threshold_low: got 0.9, expected at most smoothing.threshold_high (0.5)"],
                 id="cross-check-of-the-merged-config"),
    pytest.param("- name: rule\n  source: {type: demo}\n  events: {rules: [{name: r, label: x, region: garage}]}",
                 ["cameras[{i}].events.rules[0].region: 'garage' is not a region (regions: none configured)"],
                 id="rule-naming-a-region-the-camera-has-not"),
    pytest.param("- name: web0\n  source: {type: opencv, uri: 0}\n- name: web0b\n  source: {type: opencv, uri: 0}",
                 ["cameras[{j}].source: webcam 0, but cameras[{i}].source opens it too; one device cannot feed "
                  "two cameras"], id="same-live-device"),
]


@pytest.mark.parametrize("text, lines", BAD)
def test_each_bad_entry_is_reported_with_its_key_path(text, lines):
    problems = problems_of("cameras:\n" + textwrap.indent(text, "  ") + "\n")
    want = [line.format(i=0, j=1) for line in lines]
    assert len(problems) == len(want), problems
    for w in want:
        assert any(p.startswith(w) for p in problems), (w, problems)


def test_every_bad_entry_is_reported_together_in_one_error(tmp_path):
    entries, want, i = [], [], 0
    for param in BAD:
        text, lines = param.values
        n = text.count("\n- ") + 1
        entries.append(text)
        want += [line.format(i=i, j=i + 1) for line in lines]
        i += n
    entries += [f"- {{name: more{k}, source: {{type: images, uri: photos}}}}" for k in range(MAX_CAMERAS + 1 - i)]
    want.append(f"cameras: {MAX_CAMERAS + 1} cameras, expected at most {MAX_CAMERAS}")
    path = write(tmp_path, "cameras:\n" + textwrap.indent("\n".join(entries), "  ") + "\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    problems = info.value.problems
    assert len(problems) == len(want), "\n".join(problems)
    for w in want:
        assert sum(p.startswith(w) for p in problems) == 1, (w, problems)
    assert info.value.message.startswith(f"config error: {path}: {len(want)} problems:")


def test_a_problem_a_camera_inherits_is_said_once_at_the_top_level():
    problems = problems_of("""\
        smoothing: {threshold_low: 0.9, threshold_high: 0.1}
        cameras:
          - {name: a, source: {type: demo}}
          - {name: b, source: {type: demo}, smoothing: {threshold_high: 0.95}}
          - {name: c, source: {type: demo}, smoothing: {threshold_high: 0.05}}
    """)
    assert problems == [
        "smoothing.threshold_low: got 0.9, expected at most smoothing.threshold_high (0.1)",
        "cameras[2].smoothing.threshold_low: got 0.9, expected at most smoothing.threshold_high (0.05)"]


def test_a_bad_camera_key_keeps_the_inherited_value_without_a_second_line():
    # source.focus is bad and dropped: lens_position (set) with the inherited focus (auto) is not said again
    problems = problems_of("""\
        cameras:
          - {name: a, source: {type: picamera2, focus: manuel, lens_position: 2}}
    """)
    assert len(problems) == 1 and problems[0].startswith("cameras[0].source.focus: got 'manuel'"), problems


# (one source, another: whether two cameras may have them)
SOURCES = [
    ({"type": "opencv", "uri": "clip.mp4"}, {"type": "opencv", "uri": "clip.mp4"}, None),
    ({"type": "images", "uri": "photos"}, {"type": "images", "uri": "photos"}, None),
    ({"type": "demo"}, {"type": "demo"}, None),
    ({"type": "opencv", "uri": "rtsp://h/s"}, {"type": "opencv", "uri": "rtsp://h/s"}, None),
    ({"type": "opencv", "uri": 0}, {"type": "opencv", "uri": 1}, None),
    ({"type": "picamera2"}, {"type": "picamera2", "uri": 1}, None),
    ({"type": "picamera2"}, {"type": "opencv", "uri": 0}, None),
    ({"type": "auto"}, {"type": "picamera2", "uri": 1}, None),
    ({"type": "opencv", "uri": 0}, {"type": "opencv", "uri": 0}, "webcam 0, but cameras[0].source opens it too"),
    ({"type": "opencv"}, {"type": "opencv", "uri": "/dev/video0"}, "webcam 0, but cameras[0].source opens it too"),
    ({"type": "opencv", "uri": "/dev/v4l/by-id/cam"}, {"type": "opencv", "uri": "/dev/v4l/by-id/cam"},
     "/dev/v4l/by-id/cam, but cameras[0].source opens it too"),
    ({"type": "picamera2"}, {"type": "picamera2", "uri": "0"}, "picamera2:0, but cameras[0].source opens it too"),
    ({"type": "auto"}, {"type": "opencv", "uri": 0},
     "webcam 0, but cameras[0].source (source auto) may open it too"),
    ({"type": "picamera2", "uri": 0}, {"type": "auto"},
     "source auto (picamera2:0, else webcam 0), but cameras[0].source opens it too"),
]


@pytest.mark.parametrize("a, b, problem", SOURCES)
def test_two_cameras_may_share_a_file_but_not_a_live_device(a, b, problem):
    data = {"cameras": [{"name": "a", "source": a}, {"name": "b", "source": b}]}
    if problem is None:
        assert len(camera_configs(from_dict(data))) == 2
        return
    with pytest.raises(ConfigError) as info:
        from_dict(data)
    assert info.value.problems == [f"cameras[1].source: {problem}; one device cannot feed two cameras: give each "
                                   "its own (only a video file or folder may be given twice)"]


def test_cameras_that_inherit_one_live_device_are_refused():
    problems = problems_of("cameras:\n  - name: a\n  - name: b\n")  # both: source auto
    assert problems == ["cameras[1].source: source auto (picamera2:0, else webcam 0), but cameras[0].source (source "
                        "auto) may open it too; one device cannot feed two cameras: give each its own (only a video file or folder "
                        "may be given twice)"]


# -- repeated --source ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, name, spec", [
    ("door=picamera2:0", "door", "picamera2:0"),
    ("back_yard-2=rtsp://h/s?a=b", "back_yard-2", "rtsp://h/s?a=b"),
    ("rtsp://h/s?a=b", None, "rtsp://h/s?a=b"),  # the = comes after a : and a /
    ("http://h:8080/video?x=1&y=2", None, "http://h:8080/video?x=1&y=2"),
    ("./a=b.mp4", None, "./a=b.mp4"),
    ("videos/a=b.mp4", None, "videos/a=b.mp4"),
    ("0", None, "0"),
    ("front door=0", None, "front door=0"),  # not a name
    (f"{'c' * 33}=0", None, f"{'c' * 33}=0"),  # too long for a name
    ("door=", "door", ""),
])
def test_a_source_is_named_only_by_a_camera_name_before_any_colon_or_slash(value, name, spec):
    assert split_source(value) == (name, spec)


def _opencv(uri):
    return {"type": "opencv", "uri": uri}


@pytest.mark.parametrize("values, overrides", [
    (None, {}),
    (["0"], {"source.type": "opencv", "source.uri": "0", "cameras": []}),
    (["picamera2:1"], {"source.type": "picamera2", "source.uri": "1", "cameras": []}),
    (["rtsp://h/s?a=b"], {"source.type": "opencv", "source.uri": "rtsp://h/s?a=b", "cameras": []}),
    (["0", "rtsp://host/s"], {"cameras": [{"name": "cam1", "source": _opencv("0")},
                                          {"name": "cam2", "source": _opencv("rtsp://host/s")}]}),
    (["door=picamera2:0", "yard=picamera2:1"], {"cameras": [
        {"name": "door", "source": {"type": "picamera2", "uri": "0"}},
        {"name": "yard", "source": {"type": "picamera2", "uri": "1"}}]}),
    (["door=picamera2"], {"cameras": [{"name": "door", "source": {"type": "picamera2", "uri": None}}]}),
    (["door=0", "1", "x=clip.mp4", "clip.mp4"], {"cameras": [
        {"name": "door", "source": _opencv("0")}, {"name": "cam2", "source": _opencv("1")},
        {"name": "x", "source": _opencv("clip.mp4")}, {"name": "cam4", "source": _opencv("clip.mp4")}]}),
])
def test_repeated_sources_make_the_cameras(values, overrides):
    assert source_overrides(values) == overrides


@pytest.mark.parametrize("values, message", [
    (["a=0", "a=clip.mp4"], "bad flag: --source a=clip.mp4: 'a' names two cameras (--source a=0 too)"),
    (["cam2=0", "1"], "bad flag: --source 1: 'cam2' names two cameras (--source cam2=0 too)"),
    (["0", "0"], "bad flag: --source 0: webcam 0, but --source 0 opens it too; one device cannot feed two cameras"),
    (["a=picamera2", "b=picamera2:0"], "bad flag: --source b=picamera2:0: picamera2:0, but --source a=picamera2 "
                                       "opens it too"),
    (["auto", "1", "0"], "bad flag: --source 0: webcam 0, but --source auto (source auto) may open it too"),
    (["door=", "0"], "bad flag: --source door=: empty; pass auto"),
    ([""], "bad flag: --source: empty; pass auto"),
    (["picamera2:x"], "bad flag: --source picamera2:x: expected picamera2:N, N the Pi camera's number (0, 1)"),
    ([f"c{i}=clip.mp4" for i in range(MAX_CAMERAS + 1)], f"bad flag: --source: given {MAX_CAMERAS + 1} times, "
                                                          f"expected at most {MAX_CAMERAS} cameras"),
])
def test_bad_sources_are_one_line_naming_the_flag(values, message):
    with pytest.raises(ConfigError) as info:
        source_overrides(values)
    assert info.value.message.startswith(message) and "\n" not in info.value.message, info.value.message


@pytest.fixture
def no_user_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config, "find_default", lambda: None)


def run_config(*argv: str):
    args = build_parser().parse_args(["run", *argv])
    return load_config(argparse.Namespace(config=args.config), run_overrides(args))


def test_run_s_sources_build_the_cameras_on_the_config_s_top_level(no_user_config, tmp_path):
    path = write(tmp_path, "source:\n  fps: 12\n")
    cfg = run_config("--config", str(path), "--source", "door=picamera2:0", "--source", "yard=picamera2:1")
    door, yard = camera_configs(cfg)
    assert (door.name, door.config.source.type, door.config.source.uri, door.config.source.fps) == (
        "door", "picamera2", "0", 12.0)
    assert (yard.name, yard.config.source.uri) == ("yard", "1")


def test_one_source_is_as_ever(no_user_config):
    cfg = run_config("--source", "0")
    assert (cfg.source.type, cfg.source.uri, cfg.cameras) == ("opencv", "0", [])
    assert camera_configs(cfg)[0].name == "main"


def test_sources_replace_the_config_s_cameras_and_say_so(no_user_config, tmp_path, caplog):
    path = write(tmp_path, TWO)
    with caplog.at_level(logging.INFO, logger="edgecam"):
        cfg = run_config("--config", str(path), "--source", "a.mp4", "--source", "b.mp4")
    assert [c.name for c in camera_configs(cfg)] == ["cam1", "cam2"]
    assert f"--source replaces the cameras: of {path} (door, yard)" in caplog.messages
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="edgecam"):
        one = run_config("--config", str(path), "--source", "a.mp4")
    assert one.cameras == [] and one.source.uri == "a.mp4" and len(caplog.messages) == 1


# -- run and check-config --------------------------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path):
    """No user config, the checkout importable, no models needed."""
    e = {k: v for k, v in os.environ.items() if k != "EDGECAM_CONFIG"}
    e["PYTHONPATH"] = str(REPO)
    e["EDGECAM_MODEL_DIR"] = str(tmp_path / "models")
    return e


def test_run_takes_the_config_of_its_one_camera():
    from edgecam.pipeline.app import one_camera  # import cost: OpenCV, only for these two tests

    one = from_dict({"source": {"fps": 5}, "cameras": [{"name": "door", "source": {"type": "demo"}}]})
    assert one_camera(one) == camera_configs(one)[0].config and one_camera(one).source.type == "demo"
    plain = from_dict({"source": {"fps": 5}})
    assert one_camera(plain) is plain


def test_check_config_names_each_camera_and_its_source(env, tmp_path):
    path = write(tmp_path, TWO)
    proc = run_cli(["check-config", str(path)], env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"{path}: OK", "camera door: picamera2:1", "camera yard: yard.mp4"]


def test_check_config_checks_each_camera_as_run_would(env, tmp_path):
    path = write(tmp_path, TWO.replace("model: {threads: 2}", "model: {name: no_such_model}"))
    proc = run_cli(["check-config", str(path)], env=env, cwd=tmp_path)
    one_error_line(proc, 2, str(path), "camera door: unknown model 'no_such_model'")


def test_the_documented_example_is_a_valid_two_camera_config():
    page = REPO / "docs" / "configuration.md"
    (block,) = [b for b in blocks(page) if b.lang == "yaml" and any(line.startswith("cameras:") for line in b.body)]
    door, yard = camera_configs(from_dict(yaml.safe_load("\n".join(block.body))))
    assert (door.name, door.config.source.uri, [r.name for r in door.config.regions]) == ("door", "0", ["porch"])
    assert (yard.name, yard.config.source.uri, yard.config.regions, yard.config.source.width) == ("yard", "1", [], 1280)

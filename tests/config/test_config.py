"""Config: strict typed loading, every problem at once, overrides, and the repo's config.yaml."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from edgecam.config import schema as config
from edgecam.config.schema import Config, ConfigError, apply_overrides, from_dict, load
from edgecam.errors import EXIT_CONFIG

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def problems_of(text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, text))
    return info.value.problems


# -- one bad setting at a time ----------------------------------------------

# (YAML, the problem line expected: its key path, the bad value, the expectation)
BAD = [
    pytest.param("bogus: 1\n", "bogus: unknown key (known keys here: cameras, display, events, examples_dir, health, http,", id="unknown-top"),
    pytest.param("model:\n  nmae: x\n", "model.nmae: unknown key (known keys here: allow, backend, crop, crop_fraction, deny, dir,",
                 id="unknown-nested"),
    pytest.param("mqtt:\n  tls: true\n  passwd: x\n", "mqtt.passwd: unknown key", id="unknown-nested-mqtt"),
    pytest.param("http:\n  port: '8080'\n", "http.port: got '8080', expected an integer", id="str-for-int"),
    pytest.param("model:\n  top_k: 2.5\n", "model.top_k: got 2.5, expected an integer", id="float-for-int"),
    pytest.param("model:\n  top_k: true\n", "model.top_k: got True, expected an integer", id="bool-for-int"),
    pytest.param("display:\n  overlay: 1\n", "display.overlay: got 1, expected true/false", id="int-for-bool"),
    pytest.param("source:\n  loop: 'yes'\n", "source.loop: got 'yes', expected true/false", id="str-for-bool"),
    pytest.param("source:\n  fps: fast\n", "source.fps: got 'fast', expected a number", id="str-for-float"),
    pytest.param("model:\n  threshold: true\n", "model.threshold: got True, expected a number", id="bool-for-float"),
    pytest.param("model:\n  labels: 5\n", "model.labels: got 5, expected a string or null", id="int-for-optional-str"),
    pytest.param("http:\n  port: 70000\n", "http.port: got 70000, expected a value between 0 and 65535",
                 id="above-max"),
    pytest.param("model:\n  top_k: 0\n", "model.top_k: got 0, expected a value between 1 and 100", id="below-min"),
    pytest.param("model:\n  threshold: 1.5\n", "model.threshold: got 1.5, expected a value between 0.0 and 1.0",
                 id="float-above-max"),
    pytest.param("log:\n  max_bytes: -1\n", "log.max_bytes: got -1, expected a value at least 0", id="min-only"),
    pytest.param("model:\n  crop: center\n",
                 "model.crop: got 'center', expected one of 'square' | 'center_fraction' | 'stretch'",
                 id="bad-literal"),
    pytest.param("log_level: debug\n", "log_level: got 'debug', expected one of 'DEBUG' | 'INFO'",
                 id="literal-is-case-sensitive"),
    pytest.param("source:\n  type: usb\n", "source.type: got 'usb', expected one of 'auto' | 'picamera2'",
                 id="bad-source-type"),
    pytest.param("model:\n  threads: 0\n", "model.threads: got 0, expected a value between 1 and 64",
                 id="threads-zero"),
    pytest.param("model:\n  threads: 65\n", "model.threads: got 65, expected a value between 1 and 64",
                 id="threads-too-many"),
    pytest.param("model:\n  threads: four\n", "model.threads: got 'four', expected an integer or 'auto'",
                 id="threads-word"),
    pytest.param("model:\n  threads: true\n", "model.threads: got True, expected an integer or 'auto'",
                 id="threads-bool"),
    pytest.param("model:\n  threads: '4'\n", "model.threads: got '4', expected an integer or 'auto'",
                 id="threads-quoted-number"),
    pytest.param("model:\n  interpreters: 0\n", "model.interpreters: got 0, expected a value between 1 and 8",
                 id="interpreters-zero"),
    pytest.param("model:\n  interpreters: two\n", "model.interpreters: got 'two', expected an integer or 'auto'",
                 id="interpreters-word"),
    pytest.param("model: mobilenet_v2\n", "model: got 'mobilenet_v2', expected a mapping of ModelConfig keys",
                 id="section-not-mapping"),
    pytest.param("smoothing:\n  threshold_low: 0.6\n  threshold_high: 0.4\n",
                 "smoothing.threshold_low: got 0.6, expected at most smoothing.threshold_high (0.4)",
                 id="low-above-high"),
    pytest.param("mqtt:\n  username: cam\n", "mqtt.password_file: null, expected a file holding the password",
                 id="username-without-password"),
    pytest.param("mqtt:\n  password_file: /etc/edgecam/mqtt.pw\n",
                 "mqtt.username: null, expected the user name that goes with mqtt.password_file",
                 id="password-without-username"),
    # issue 9 #3: NaN compares false with every bound, so it passed every range check.
    pytest.param("model:\n  crop_fraction: .nan\n", "model.crop_fraction: got nan, expected a value between 0.1 and 1.0",
                 id="nan-crop-fraction"),
    pytest.param("source:\n  timeout_s: .NaN\n", "source.timeout_s: got nan, expected a value between 0.1 and 3600.0",
                 id="nan-timeout"),
    pytest.param("model:\n  threshold: .nan\n", "model.threshold: got nan, expected a value between 0.0 and 1.0",
                 id="nan-threshold"),
    pytest.param("http:\n  stream_fps: .nan\n", "http.stream_fps: got nan, expected a value between 0.1 and 120.0",
                 id="nan-stream-fps"),
    pytest.param("source:\n  reconnect_max_s: .inf\n", "source.reconnect_max_s: got inf, expected a value between",
                 id="inf"),
    pytest.param("mqtt:\n  max_rate_hz: -.inf\n", "mqtt.max_rate_hz: got -inf, expected a value between",
                 id="minus-inf"),
    pytest.param("log:\n  max_bytes: .nan\n", "log.max_bytes: got nan, expected an integer", id="nan-for-int"),
    # issue 9 #2/#8: what run rejects, the config rejects (so check-config does too).
    pytest.param("record:\n  fourcc: toolong\n", "record.fourcc: got 'toolong', expected 4 ASCII characters",
                 id="fourcc-too-long"),
    pytest.param("record:\n  fourcc: ab\n", "record.fourcc: got 'ab', expected 4 ASCII characters", id="fourcc-short"),
    pytest.param("record:\n  fourcc: \"h\u00e9vc\"\n", "record.fourcc: got 'h\u00e9vc', expected 4 ASCII characters",
                 id="fourcc-not-ascii"),
    pytest.param("mqtt:\n  topic_prefix: 'cams/#'\n",
                 "mqtt.topic_prefix: got 'cams/#', expected a non-empty MQTT topic without the wildcards + and #",
                 id="topic-hash"),
    pytest.param("mqtt:\n  topic_prefix: a/+/b\n", "mqtt.topic_prefix: got 'a/+/b', expected a non-empty MQTT topic",
                 id="topic-plus"),
    pytest.param("mqtt:\n  topic_prefix: '/'\n", "mqtt.topic_prefix: got '/', expected a non-empty MQTT topic",
                 id="topic-empty"),
    pytest.param("mqtt:\n  discovery_prefix: '#'\n", "mqtt.discovery_prefix: got '#', expected a non-empty MQTT topic",
                 id="discovery-hash"),
    # issue 9 #6: an empty uri is not "the current folder".
    pytest.param("source:\n  uri: ''\n", "source.uri: got '', expected null or a non-empty string", id="empty-uri"),
    # issue 9 #12: quoted, it is the string the user wrote, not a number.
    pytest.param("source:\n  fps: '1e2'\n", "source.fps: got '1e2', expected a number", id="quoted-exponent"),
    pytest.param("source:\n  uri: true\n", "source.uri: got True, expected a string or null", id="bool-uri"),
]


@pytest.mark.parametrize("text, expected", BAD)
def test_one_bad_setting_is_reported_with_path_value_and_expectation(tmp_path, text, expected):
    problems = problems_of(text, tmp_path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems[0]


@pytest.mark.parametrize("text, expected", BAD)
def test_config_error_is_one_line_naming_the_file(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(path)
    err = info.value
    assert err.exit_code == EXIT_CONFIG
    assert err.path == str(path)
    assert "\n" not in err.message
    assert err.message.startswith(f"config error: {path}: {expected}")


# -- good settings ---------------------------------------------------------

GOOD = [
    pytest.param("", {}, id="empty-file"),
    pytest.param("# only a comment\n", {}, id="only-comments"),
    pytest.param("http:\n", {}, id="empty-section"),
    pytest.param("model:\n  threads: auto\n", {"model.threads": "auto"}, id="threads-auto"),
    pytest.param("model:\n  threads: 4\n", {"model.threads": 4}, id="threads-number"),
    pytest.param("model:\n  threads: 1\n  interpreters: 2\n", {"model.threads": 1, "model.interpreters": 2},
                 id="two-interpreters"),
    pytest.param("source:\n  fps: 30\n", {"source.fps": 30.0}, id="int-for-float"),
    pytest.param("model:\n  labels: null\n", {"model.labels": None}, id="explicit-null"),
    pytest.param("model:\n  name: mobilenet_v2\n  crop: stretch\n", {"model.name": "mobilenet_v2", "model.crop": "stretch"},
                 id="strings"),
    pytest.param("http:\n  port: 0\n", {"http.port": 0}, id="range-edge-low"),
    pytest.param("http:\n  port: 65535\n", {"http.port": 65535}, id="range-edge-high"),
    pytest.param("smoothing:\n  threshold_low: 0.5\n  threshold_high: 0.5\n",
                 {"smoothing.threshold_low": 0.5, "smoothing.threshold_high": 0.5}, id="low-equals-high"),
    pytest.param("mqtt:\n  username: cam\n  password_file: /etc/edgecam/mqtt.pw\n",
                 {"mqtt.username": "cam", "mqtt.password_file": "/etc/edgecam/mqtt.pw"}, id="username-with-password"),
    pytest.param("log_level: DEBUG\n", {"log_level": "DEBUG"}, id="log-level"),
    # issue 9 #12: what YAML users write plainly, where it can only mean one thing.
    pytest.param("source:\n  type: opencv\n  uri: 0\n", {"source.type": "opencv", "source.uri": "0"},
                 id="uri-webcam-number"),
    pytest.param("source:\n  fps: 1e2\n", {"source.fps": 100.0}, id="exponent-float"),
    pytest.param("source:\n  timeout_s: 2.5E-1\n", {"source.timeout_s": 0.25}, id="exponent-negative"),
    pytest.param("log:\n  max_bytes: 1e7\n", {"log.max_bytes": 10_000_000}, id="exponent-for-int"),
    pytest.param("model:\n  top_k: 3.0\n", {"model.top_k": 3}, id="integral-float-for-int"),
    pytest.param("record:\n  fourcc: MJPG\n", {"record.fourcc": "MJPG"}, id="fourcc"),
    pytest.param("mqtt:\n  topic_prefix: home/cam1/\n", {"mqtt.topic_prefix": "home/cam1/"}, id="topic-prefix"),
]


def get(cfg: Config, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


@pytest.mark.parametrize("text, expected", GOOD)
def test_good_settings_load_with_their_types(tmp_path, text, expected):
    path = write(tmp_path, text)
    cfg = load(path)
    assert cfg.path == str(path)
    for key, value in expected.items():
        got = get(cfg, key)
        assert got == value and type(got) is type(value), (key, got)
    # everything not set keeps its default
    want = config.to_dict(Config())
    for key, value in expected.items():
        section, _, name = key.rpartition(".")
        (want[section] if section else want)[name] = value
    assert config.to_dict(cfg) == want


# -- everything at once ------------------------------------------------------

def test_every_problem_is_reported_at_once(tmp_path):
    path = write(tmp_path, """\
        model:
          name: mobilenet_v2
          threads: lots
          top_k: 0
          crop: middle
        source:
          fps: true
          colour: red
        display:
          overlay: 1
        http:
          port: "80"
        bogus: 1
    """)
    with pytest.raises(ConfigError) as info:
        load(path)
    err = info.value
    expected = [
        "model.threads: got 'lots'",
        "model.top_k: got 0",
        "model.crop: got 'middle'",
        "source.fps: got True",
        "source.colour: unknown key",
        "display.overlay: got 1",
        "http.port: got '80'",
        "bogus: unknown key",
    ]
    assert len(err.problems) == len(expected), err.problems
    for want in expected:
        assert sum(p.startswith(want) for p in err.problems) == 1, (want, err.problems)
    lines = err.message.splitlines()
    assert lines[0] == f"config error: {path}: {len(expected)} problems:"
    assert lines[1:] == [f"  - {p}" for p in err.problems]


def test_cross_checks_are_reported_together(tmp_path):
    problems = problems_of("""\
        smoothing:
          threshold_low: 0.9
          threshold_high: 0.1
        mqtt:
          username: cam
    """, tmp_path)
    assert [p.split(":")[0] for p in problems] == ["smoothing.threshold_low", "mqtt.password_file"]


def test_cross_checks_are_reported_along_with_other_problems(tmp_path):
    problems = problems_of("""\
        smoothing:
          threshold_low: 0.9
          threshold_high: 0.1
        mqtt:
          username: cam
        http:
          port: -1
        bogus: 1
    """, tmp_path)
    assert sorted(p.split(":")[0] for p in problems) == [
        "bogus", "http.port", "mqtt.password_file", "smoothing.threshold_low"]


@pytest.mark.parametrize("text, only", [
    # the bad key keeps its default (0.5): no second line comparing 0.9 with it
    ("smoothing:\n  threshold_low: 0.9\n  threshold_high: high\n", "smoothing.threshold_high: got 'high'"),
    ("smoothing:\n  threshold_low: 2\n", "smoothing.threshold_low: got 2, expected a value between"),
    ("mqtt:\n  username: cam\n  password_file: 5\n", "mqtt.password_file: got 5, expected a string or null"),
])
def test_cross_checks_skip_keys_already_reported(tmp_path, text, only):
    problems = problems_of(text, tmp_path)
    assert len(problems) == 1 and problems[0].startswith(only), problems


# -- the file itself -----------------------------------------------------------

@pytest.mark.parametrize("text, where, what", [
    pytest.param("model:\n  name: x\n\ttop_k: 3\n", "line 3, column 1", "'\\t'", id="tab"),
    pytest.param("model:\n  name: a: b\n", "line 2, column 10", "mapping values are not allowed", id="colon"),
    pytest.param("model:\n  name: x\n  top_k: [3\nhttp:\n  port: 1\n", "line 4, column 5", "expected ','",
                 id="unclosed-list"),
])
def test_invalid_yaml_gives_line_and_column(tmp_path, text, where, what):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(path)
    msg = info.value.message
    assert msg.startswith(f"config error: {path}: {where}: not valid YAML (")
    assert what in msg
    assert "\n" not in msg


@pytest.mark.parametrize("text", ["- model\n- http\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="the top level must be a mapping of sections") as info:
        load(path)
    assert str(path) in info.value.message


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.message == f"config error: {path}: file not found; pass --config PATH or copy config.yaml there"


def test_unreadable_file_is_one_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("model:\n  name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="cannot read it") as info:
        load(path)
    assert "\n" not in info.value.message


def test_a_folder_is_not_a_config(tmp_path):
    with pytest.raises(ConfigError, match="cannot read it"):
        load(tmp_path)


def test_none_means_defaults():
    assert load(None) == Config()


def test_from_dict_without_path():
    cfg = from_dict({"model": {"top_k": 5}})
    assert cfg.model.top_k == 5 and cfg.path is None
    with pytest.raises(ConfigError) as info:
        from_dict({"model": {"top_k": 500}})
    assert info.value.message == "config error: model.top_k: got 500, expected a value between 1 and 100"


def test_find_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EDGECAM_CONFIG", "/somewhere/edgecam.yaml")
    assert config.find_default() == "/somewhere/edgecam.yaml"
    monkeypatch.delenv("EDGECAM_CONFIG")
    write(tmp_path, "")
    assert config.find_default() == "config.yaml"


# -- hostile files (issue 9 #4) ------------------------------------------------------

def alias_bomb(levels: int, width: int = 9) -> str:
    """A few hundred bytes of YAML whose model.name expands to width**levels strings."""
    items = ["&a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        items.append(f"&a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "model:\n  name: [" + ", ".join(items) + "]\n"


def test_an_alias_bomb_is_quoted_in_a_few_characters(tmp_path):
    # 9**5 = 59049 strings: the old message quoted them all (350 KB); 9 levels took 30 s and 1.5 GB.
    path = write(tmp_path, alias_bomb(5))
    with pytest.raises(ConfigError) as info:
        load(path)
    (problem,) = info.value.problems
    assert problem.startswith("model.name: got [[") and problem.endswith("expected a string")
    assert len(info.value.message) < 500


def test_a_huge_config_file_is_refused_before_parsing(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("model:\n  name: mobilenet_v2\n" + "# padding\n" * 40_000)  # 400 KB
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.message.startswith(f"config error: {path}: larger than 256 KB")
    assert "\n" not in info.value.message


def test_a_long_value_or_key_is_cut_in_the_message(tmp_path):
    problems = problems_of(f"model:\n  top_k: '{'9' * 5000}'\n  {'k' * 900}: 1\n", tmp_path)
    assert len(problems) == 2 and all(len(p) < 300 for p in problems), problems


def test_at_most_twenty_problems_are_listed(tmp_path):
    problems = problems_of("".join(f"bogus{i}: 1\n" for i in range(50)), tmp_path)
    assert len(problems) == 21 and problems[-1] == "... and 30 more problems"


# -- overrides (command-line flags) ----------------------------------------------


def test_a_bad_flag_is_named_not_blamed_on_the_file(tmp_path):
    # issue 9 #7: --threads 0 said "config error: config.yaml: model.threads: ...".
    base = load(write(tmp_path, "model:\n  top_k: 7\n"))
    flags = {"model.threads": "--threads", "model.top_k": "--top-k"}
    with pytest.raises(ConfigError) as info:
        apply_overrides(base, {"model.threads": 0, "model.top_k": 2}, flags)
    assert info.value.message == "bad flag: --threads: got 0, expected a value between 1 and 64"
    assert str(base.path) not in info.value.message and info.value.exit_code == EXIT_CONFIG

def test_apply_overrides_sets_dotted_keys_and_skips_none(tmp_path):
    base = load(write(tmp_path, "model:\n  top_k: 7\n"))
    cfg = apply_overrides(base, {
        "model.name": "mobilenet_v2",
        "model.threads": 2,
        "source.uri": "video.mp4",
        "source.realtime": True,
        "log_level": "DEBUG",
        "model.top_k": None,  # a flag that was not given
    })
    assert (cfg.model.name, cfg.model.threads, cfg.source.uri, cfg.source.realtime, cfg.log_level) == (
        "mobilenet_v2", 2, "video.mp4", True, "DEBUG")
    assert cfg.model.top_k == 7  # kept from the file
    assert cfg.path == base.path
    assert base.model.name == "mobilenet_v3_small" and base.model.threads == "auto"  # a copy, not changed in place


def test_apply_overrides_validates_every_value():
    with pytest.raises(ConfigError) as info:
        apply_overrides(Config(), {"model.threads": 0, "model.crop": "middle", "http.port": "x", "model.nope": 1})
    paths = sorted(p.split(":")[0] for p in info.value.problems)
    assert paths == ["http.port", "model.crop", "model.nope", "model.threads"]


def test_apply_overrides_runs_cross_checks():
    with pytest.raises(ConfigError, match="mqtt.password_file"):
        apply_overrides(Config(), {"mqtt.username": "cam"})


def test_to_dict_round_trips():
    cfg = apply_overrides(Config(), {"model.threads": 3, "http.enabled": True})
    assert from_dict(config.to_dict(cfg)) == cfg
    assert "path" not in config.to_dict(cfg)


# -- the commented config.yaml shipped in the repo ---------------------------------

def test_repo_config_yaml_equals_the_defaults():
    path = REPO / "config.yaml"
    if not path.is_file():
        pytest.skip(f"{path} not written yet")
    cfg = load(path)
    assert dataclasses.replace(cfg, path=None) == Config(), (
        "config.yaml and the defaults in edgecam/config/schema.py disagree; change both together")

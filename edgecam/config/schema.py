"""Typed, strict configuration.

The YAML file is read once with ``yaml.safe_load`` and checked against the
dataclasses below: unknown keys, wrong types and out-of-range values are all
collected and reported together, each with its key path, the bad value and
what was expected. Command-line flags are applied on top with
:func:`apply_overrides`, and checked by the same rules. Each part of the
program receives only its own typed sub-config.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from edgecam.config import backends as _backends
from edgecam.config.cameras import check_cameras
from edgecam.config.check import build_section, partial, plain, quote  # noqa: F401 (quote: config.quote, as before)
from edgecam.config.check import opt as _opt
from edgecam.config.events import EventsConfig, check_events
from edgecam.config.health import HealthConfig
from edgecam.errors import ConfigError
from edgecam.names import camera_name_problem, identifier_problem, labels_problem
from edgecam.config.yaml_text import parse_yaml, yaml_problem

DEFAULT_CONFIG_PATHS = ("config.yaml", "/etc/edgecam/config.yaml")

#: A full config is about 4 KB; anything this big is a mistake (or an attack)
#: and is refused before YAML parses it.
MAX_CONFIG_BYTES = 256 * 1024
#: A ConfigError lists at most this many problems (then "... and N more").
MAX_PROBLEMS = 20
#: Regions are classified one model run each, every frame they are due: 500 never finished a 10 s file.
MAX_REGIONS = 64


class _Clear:
    def __repr__(self) -> str:
        return "CLEAR"


#: An override value for :func:`apply_overrides` that sets its key to null
#: (None there means "not given": a flag left out changes nothing).
CLEAR = _Clear()


def _fourcc(value: str) -> str | None:
    if len(value) == 4 and value.isascii() and value.isprintable():
        return None
    return "4 ASCII characters naming a video codec, such as mp4v or MJPG"


def _topic(value: str) -> str | None:
    if value.strip().strip("/") and not any(c in value for c in "+#\0"):
        return None
    return "a non-empty MQTT topic without the wildcards + and #"


def _host_names(value: list) -> str | None:
    if all(isinstance(v, str) and v and v.isascii() and v.isprintable() and " " not in v and "/" not in v
           for v in value):
        return None
    return "a list of host names this server is reached by (cam.example.org, .example.org for any under it, * any)"


def _not_empty(value: str) -> str | None:
    return None if value.strip() else "null or a non-empty string"


def _backend(value: str) -> str | None:
    # Read at each check, not frozen in a Literal: a backend registered later is a choice too.
    return None if value in _backends.choices() else f"one of {_backends.expected()}"


#: How a frame becomes the model's square input (edgecam.model.preprocess.crop_box draws each); the
#: config and ``--crop`` take their choices from here.
CROPS = ("square", "center_fraction", "stretch")
#: The TFLite interpreters edgecam can use (edgecam.model.runtime), for the config and ``--runtime``.
RUNTIMES = ("auto", "litert", "tflite-runtime", "tensorflow")


@dataclass
class ModelConfig:
    name: str = "mobilenet_v3_small"  # a registry name or a path to a .tflite file
    # Where the model runs: auto, or a backend of edgecam.config.backends (docs/accelerators.md);
    # auto: an accelerator that is present and has a build of the model, else the CPU.
    backend: str = _opt(_backends.AUTO, check=_backend)
    labels: str | None = None  # labels file, needed when name is a path
    dir: str | None = None  # model download cache; default: see registry.models_dir()
    runtime: Literal[RUNTIMES] = "auto"
    threads: int | Literal["auto"] = _opt("auto", min=1, max=64)
    interpreters: int | Literal["auto"] = _opt("auto", min=1, max=8)  # side by side, each with `threads`
    top_k: int = _opt(3, min=1, max=100)
    threshold: float = _opt(0.0, min=0.0, max=1.0)
    crop: Literal[CROPS] = "center_fraction"  # best on 900+ photos: docs/models.md, "Which crop"
    crop_fraction: float = _opt(0.875, min=0.1, max=1.0)
    allow: list[str] | None = None  # only these labels may be shown (docs/custom-states.md)
    deny: list[str] | None = None  # these never are
    thresholds: dict[str, float] | None = None  # per label, instead of threshold


@dataclass
class SourceConfig:
    type: Literal["auto", "picamera2", "opencv", "images", "demo"] = "auto"
    # webcam index, file, URL, GStreamer pipeline or folder; a YAML number (uri: 0) means that webcam
    uri: str | None = field(default=None, metadata={"check": _not_empty, "int_as_str": True})
    width: int = _opt(640, min=16, max=8192)
    height: int = _opt(480, min=16, max=8192)
    fps: float = _opt(30.0, min=0.1, max=1000.0)
    policy: Literal["auto", "latest", "every_frame"] = "auto"
    realtime: bool = False  # pace a file at its native FPS, as a camera would
    loop: bool = False  # restart a file source at its end (demos)
    timeout_s: float = _opt(5.0, min=0.1, max=3600.0)  # no frame for this long = stalled
    reconnect: bool = True  # reopen a failed live source with back-off
    reconnect_max_s: float = _opt(30.0, min=0.1, max=3600.0)
    # The Pi camera's controls (docs/camera.md); a control the camera lacks is refused when it opens.
    focus: Literal["auto", "continuous", "manual"] = "auto"  # auto: continuous AF where the camera has AF
    lens_position: float | None = _opt(None, min=0.0, max=32.0)  # dioptres (1/metres), with focus: manual
    focus_range: Literal["normal", "macro", "full"] | None = None  # null: the camera's (normal)
    focus_region: str | None = None  # the name of a region: AF measures there
    focus_box: list[float] | None = field(default=None, metadata={"internal": True})  # focus_region's box
    hflip: bool = False  # mirror left-right (picamera2: by the sensor; OpenCV: cv2.flip)
    vflip: bool = False  # upside down
    rotation: Literal[0, 180] = 0  # 180: both flips, for a camera mounted upside down
    exposure: Literal["normal", "short", "long"] = "normal"  # the AGC's exposure mode (AeExposureMode)
    max_exposure_ms: float | None = _opt(None, min=0.01, max=3_600_000.0)  # longest exposure; fps falls to allow it
    tuning_file: str | None = _opt(None, check=_not_empty)  # e.g. imx708_noir.json, or a path


@dataclass
class DisplayConfig:
    mode: Literal["auto", "window", "none"] = "auto"
    title: str = "edgecam"
    overlay: bool = True


@dataclass
class SmoothingConfig:
    mode: Literal["none", "ema"] = "none"
    window: int = _opt(5, min=1, max=1000)  # EMA span in results
    hysteresis: bool = False
    threshold_high: float = _opt(0.5, min=0.0, max=1.0)  # a label appears above this...
    threshold_low: float = _opt(0.3, min=0.0, max=1.0)  # ...and stays until below this


@dataclass
class LogConfig:
    path: str | None = None  # JSON Lines prediction log; None = off
    # every result | changes (label changes) | heartbeat (label changes, plus the result every heartbeat_s)
    mode: Literal["every", "changes", "heartbeat"] = "every"
    heartbeat_s: float = _opt(60.0, min=1.0, max=86400.0)  # mode heartbeat: a line at least this often
    max_bytes: int = _opt(10_000_000, min=0)  # rotate past this size; 0 = never
    backups: int = _opt(3, min=0, max=100)


@dataclass
class RecordConfig:
    path: str | None = None  # annotated video file; None = off
    fourcc: str = _opt("mp4v", check=_fourcc)


@dataclass
class HttpConfig:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = _opt(8080, min=0, max=65535)
    token_file: str | None = None  # bearer token file; required on all but /healthz
    max_clients: int = _opt(4, min=1, max=1000)  # concurrent /stream.mjpg clients
    jpeg_quality: int = _opt(80, min=1, max=100)
    stream_fps: float = _opt(15.0, min=0.1, max=120.0)
    allowed_hosts: list[str] = _opt(field(default_factory=list), check=_host_names)  # more names for the Host check
    review_cap_mb: float = _opt(50.0, min=0.01, max=100_000.0)  # the review queue's disk use, at most (docs/teach.md)


@dataclass
class MqttConfig:
    enabled: bool = False
    host: str = "localhost"
    port: int = _opt(1883, min=1, max=65535)
    tls: bool = False
    ca_file: str | None = None
    username: str | None = None
    password_file: str | None = None
    client_id: str | None = None  # default: edgecam-<hostname>
    topic_prefix: str | None = _opt(None, check=_topic)  # default: edgecam/<hostname>
    qos: int = _opt(0, min=0, max=2)
    publish: Literal["every", "changes"] = "changes"
    max_rate_hz: float = _opt(2.0, min=0.01, max=1000.0)  # cap for publish: every
    # The label's (and each region's) state topic changes at most this often; the newest held back goes out when
    # its turn comes. 1: a label held under 1 s is flicker (the events' for_s default, issue 21); docs/http-mqtt.md
    max_changes_hz: float = _opt(1.0, min=0.01, max=1000.0)
    retain: bool = True
    snapshot: bool = False  # JPEG on <prefix>/snapshot at each label change
    discovery: bool = True  # Home Assistant MQTT discovery
    commands: bool = False  # commands on <prefix>/set/... (docs/http-mqtt.md) and fleet pushes (docs/fleet.md)
    discovery_prefix: str = _opt("homeassistant", check=_topic)
    queue_size: int = _opt(100, min=1, max=100000)
    keepalive: int = _opt(30, min=5, max=3600)


def _box(value: list) -> str | None:
    if len(value) == 4 and 0 <= value[0] < value[2] <= 1 and 0 <= value[1] < value[3] <= 1:
        return None
    return "[x0, y0, x1, y1]: fractions of the picture's width and height, 0 <= x0 < x1 <= 1, 0 <= y0 < y1 <= 1"


@dataclass
class RegionConfig:
    """One region of the picture, classified on its own (docs/custom-states.md, "Regions")."""

    name: str = _opt("", check=identifier_problem)
    box: list[float] = _opt(field(default_factory=lambda: [0.0, 0.0, 1.0, 1.0]), check=_box)
    model: str | None = None  # a registry name, a custom model (edgecam learn) or a .tflite path; null: model.name
    interval_s: float = _opt(0.0, min=0.0, max=86400.0)  # classify at most every N s (0: every frame)
    motion: bool = False  # classify only when the box changed since its last classification
    motion_threshold: float = _opt(4.0, min=0.0, max=255.0)  # mean change of the box, in grey levels
    labels: list[str] | None = _opt(None, check=labels_problem)  # the states to teach (web buttons); null: the model's
    allow: list[str] | None = None  # only these labels may be the state
    deny: list[str] | None = None  # these never are
    threshold: float = _opt(0.0, min=0.0, max=1.0)  # below it, the state is unknown
    thresholds: dict[str, float] | None = None  # per label, instead of threshold
    on_label: str | None = None  # with two states: this one is ON (a Home Assistant binary_sensor)


@dataclass
class CameraConfig:
    """One of several cameras (``cameras:``): its name, and the keys whose values differ from the top-level ones."""

    name: str = _opt("", check=camera_name_problem)  # letters, digits, _ and -, up to 32
    source: dict | None = partial(SourceConfig)  # e.g. {uri: 1}: these keys replace source:'s; null: source: as is
    model: dict | None = partial(ModelConfig)  # the same for model:
    smoothing: dict | None = partial(SmoothingConfig)  # ... and smoothing:
    regions: list[RegionConfig] | None = None  # instead of regions: (null: those; []: none, the whole picture)
    events: dict | None = partial(EventsConfig)  # keys of events: (rules: the whole list)
    # The camera's full config (the top level with the above laid over it), made when the config is checked.
    config: Config | None = field(default=None, compare=False, repr=False, metadata={"internal": True})


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    log: LogConfig = field(default_factory=LogConfig)
    record: RecordConfig = field(default_factory=RecordConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    regions: list[RegionConfig] = field(default_factory=list)  # none: the whole picture, as one
    events: EventsConfig = field(default_factory=EventsConfig)  # rules, history, snapshots, clips
    health: HealthConfig = field(default_factory=HealthConfig)  # the board watched; thermal steps (docs/pi-health.md)
    cameras: list[CameraConfig] = field(default_factory=list)  # several (edgecam.config.cameras); none: source: alone
    examples_dir: str | None = None  # where the web page's "this is" buttons save crops; null: beside the models
    state_dir: str | None = None  # what run time changes keeps (edgecam.config.state); null: $STATE_DIRECTORY, else ~/.local/state/edgecam
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    path: str | None = field(default=None, metadata={"internal": True})  # where it was read from


def _cross_checks(cfg: Config, problems: list[str], reported: set[str]) -> None:
    # A key in ``reported`` already has a problem and holds its default now:
    # a check involving it would only add a confusing second line.
    def fresh(*keys: str) -> bool:
        return not reported.intersection(keys)

    s = cfg.smoothing
    if fresh("smoothing.threshold_low", "smoothing.threshold_high") and s.threshold_low > s.threshold_high:
        problems.append(
            f"smoothing.threshold_low: got {s.threshold_low}, expected at most "
            f"smoothing.threshold_high ({s.threshold_high})"
        )
    if fresh("mqtt.username", "mqtt.password_file") and cfg.mqtt.username and not cfg.mqtt.password_file:
        problems.append("mqtt.password_file: null, expected a file holding the password when mqtt.username is set")
    if len(cfg.regions) > MAX_REGIONS:
        problems.append(f"regions: {len(cfg.regions)} regions, expected at most {MAX_REGIONS} (each is one model run "
                        "per frame it is due; use interval_s or motion, or fewer, larger boxes)")
    names: set[str] = set()
    for i, region in enumerate(cfg.regions):
        where = f"regions[{i}]"
        if not region.name and fresh(f"{where}.name"):
            problems.append(f"{where}.name: missing, expected a name for the region (e.g. garage)")
        elif region.name in names:
            problems.append(f"{where}.name: {region.name!r} names two regions; expected distinct names")
        names.add(region.name)
        if region.on_label is not None and region.labels is not None and region.on_label not in region.labels:
            problems.append(f"{where}.on_label: {region.on_label!r} is not one of its labels {region.labels}")
        both = set(region.allow or ()) & set(region.deny or ())
        if both:
            problems.append(f"{where}.deny: {sorted(both)[0]!r} is in allow too; expected one or the other")
    _source_checks(cfg, problems, fresh)
    if fresh("mqtt.username", "mqtt.password_file") and cfg.mqtt.password_file and not cfg.mqtt.username:
        problems.append("mqtt.username: null, expected the user name that goes with mqtt.password_file")
    check_events(cfg, problems, reported)


def _source_checks(cfg: Config, problems: list[str], fresh) -> None:
    """The camera controls that go together (docs/camera.md); focus_region resolved to its box."""
    src = cfg.source
    if src.lens_position is not None and src.focus != "manual" and fresh("source.lens_position", "source.focus"):
        problems.append(f"source.lens_position: set, but source.focus is {src.focus}; expected source.focus: "
                        "manual with it (or remove lens_position)")
    if src.focus_region is not None and fresh("source.focus_region"):
        boxes = {r.name: r.box for r in cfg.regions}
        if src.focus_region in boxes:
            src.focus_box = list(boxes[src.focus_region])
        else:
            known = ", ".join(sorted(boxes)) or "none defined"
            problems.append(f"source.focus_region: {src.focus_region!r} is not a region (regions: {known}); "
                            "expected the name of one under regions:")
        if src.focus == "manual" and fresh("source.focus"):
            problems.append("source.focus_region: AF windows need autofocus, and source.focus is manual; "
                            "remove one of them")
    if src.max_exposure_ms is not None and fresh("source.max_exposure_ms", "source.timeout_s") \
            and src.max_exposure_ms >= src.timeout_s * 1000:
        problems.append(f"source.max_exposure_ms: {src.max_exposure_ms:g} ms is not shorter than source.timeout_s "
                        f"({src.timeout_s:g} s), so every long frame would count as a stall; raise timeout_s")


def _build(data: dict, problems: list[str], reported: set[str]) -> Config:
    """A Config from plain data, cross-checked; a line per problem (none more for a key in ``reported``)."""
    cfg = build_section(Config, data, "", problems)
    _cross_checks(cfg, problems, {p.split(":", 1)[0] for p in problems} | set(reported))
    return cfg


def from_dict(data: Any, path: str | None = None) -> Config:
    """Build a :class:`Config` from parsed YAML, reporting every problem at once."""
    problems: list[str] = []
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"the top level must be a mapping of sections, got {type(data).__name__}", path)
    cfg = build_section(Config, data, "", problems)
    reported = {p.split(":", 1)[0] for p in problems}  # these keys hold their defaults now
    _cross_checks(cfg, problems, reported)
    check_cameras(cfg, problems, reported, _build, path)
    if len(problems) > MAX_PROBLEMS:
        problems[MAX_PROBLEMS:] = [f"... and {len(problems) - MAX_PROBLEMS} more problems"]
    if problems:
        raise ConfigError(problems, path)
    cfg.path = path
    return cfg


def _read_text(p: Path) -> str:
    with open(p, "rb") as f:
        data = f.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"larger than {MAX_CONFIG_BYTES // 1024} KB, which no config needs "
                          "(the full config.yaml is about 4 KB); is it the right file?", str(p))
    return data.decode("utf-8")


def load(path: str | os.PathLike | None) -> Config:
    """Read and validate a YAML config file. ``None`` means built-in defaults."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        text = _read_text(p)
    except FileNotFoundError:
        raise ConfigError(f"file not found; pass --config PATH or copy config.yaml there", str(p)) from None
    except IsADirectoryError:
        raise ConfigError("cannot read it: it is a folder; pass the path of a YAML file", str(p)) from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"cannot read it: not UTF-8 text ({e.reason} at byte {e.start}); is it a config file?",
                          str(p)) from None
    except OSError as e:
        raise ConfigError(f"cannot read it: {e.strerror or e}", str(p)) from None
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as e:
        line, column, problem = yaml_problem(e)
        where = f"line {line}, column {column}: " if line else ""
        raise ConfigError(f"{where}not valid YAML ({problem})", str(p)) from None
    return from_dict(data, str(p))


def find_default() -> str | None:
    """The config file used when none is given: $EDGECAM_CONFIG, ./config.yaml, /etc/edgecam."""
    env = os.environ.get("EDGECAM_CONFIG")
    if env:
        return env
    for candidate in DEFAULT_CONFIG_PATHS:
        if Path(candidate).is_file():
            return candidate
    return None


def apply_overrides(cfg: Config, overrides: dict[str, Any], flags: dict[str, str] | None = None) -> Config:
    """Return a copy of ``cfg`` with dotted keys (``model.threads``) replaced.

    Values are checked with the same rules as the file; None values are skipped
    (a flag that was not given), :data:`CLEAR` sets the key to null. A bad value is reported under its flag's name
    (``flags`` maps a key to it, e.g. ``{"model.threads": "--threads"}``), not
    blamed on the config file.
    """
    flags = flags or {}
    data = to_dict(cfg)
    problems: list[str] = []
    for key, value in overrides.items():
        if value is None:
            continue
        if value is CLEAR:
            value = None
        *parents, last = key.split(".")
        alone: dict = {last: value}
        for part in reversed(parents):
            alone = {part: alone}
        found: list[str] = []
        build_section(Config, alone, "", found)
        name = flags.get(key, key)
        problems += [f"{name}{p[len(key):]}" if p.startswith(key + ":") else p for p in found]
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    if problems:
        raise ConfigError(problems, what="bad flag" if flags else "bad setting")
    return from_dict(data, cfg.path)


def to_dict(cfg) -> dict:
    """The config as plain data (what a YAML file would hold)."""
    return plain(cfg)

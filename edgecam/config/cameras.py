"""Several cameras in one config: ``cameras:``, each a name and the keys that differ from the top-level sections.

A camera's config is the top-level one with the camera's ``source``,
``model``, ``smoothing`` and ``events`` keys laid over those sections key by
key, and its ``regions`` (when given) instead of the top-level list. It must
pass every check a top-level config passes; its problems are named under
``cameras[i].``, with the others of the file, all at once.
:func:`camera_configs` gives each camera's full config; without ``cameras:``
there is one camera, ``main``, whose config is the config itself.

Two cameras may replay one video file or folder (tests and benchmarks replay
one clip as several cameras), but never open one live device (a Pi camera, a
webcam): that is refused, naming both.

Below :mod:`edgecam.config.schema` (which calls :func:`check_cameras` from
``from_dict``): the config's classes are never imported here.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, Callable

from edgecam.config.check import plain, unique_name

#: At most this many cameras in one config (``cameras:``, repeated ``--source``).
MAX_CAMERAS = 16
#: The name of the one camera of a config without ``cameras:``.
MAIN = "main"
#: The sections a camera may give some keys of, laid over the top-level ones.
PARTIAL = ("source", "model", "smoothing", "events")
_DEV_VIDEO = re.compile(r"/dev/video([0-9]+)")


def _number(uri: str | None) -> bool:
    return uri is not None and uri.isascii() and uri.isdigit()


@dataclass(frozen=True)
class CameraSpec:
    """One camera to run: its name and its full config (a :class:`edgecam.config.schema.Config` without cameras)."""

    name: str
    config: Any


def camera_configs(cfg) -> list[CameraSpec]:
    """The cameras of a checked config (from ``load``, ``from_dict`` or ``apply_overrides``), in their order.

    Without ``cameras:``, one camera named ``main`` whose config is ``cfg`` itself.
    """
    if not cfg.cameras:
        return [CameraSpec(MAIN, cfg)]
    unchecked = [c.name for c in cfg.cameras if c.config is None]
    if unchecked:
        raise ValueError(f"cameras {unchecked} were never checked; make the config with load, from_dict or "
                         "apply_overrides")
    return [CameraSpec(c.name, c.config) for c in cfg.cameras]


def merged(base: dict, camera) -> dict:
    """One camera's config as plain data: ``base`` (the top level's, plain) with the camera's keys laid over it."""
    data = copy.deepcopy(base)
    data["cameras"] = []
    for section in PARTIAL:
        data[section].update(copy.deepcopy(getattr(camera, section) or {}))
    if camera.regions is not None:
        data["regions"] = plain(camera.regions)
    return data


def live_devices(source) -> frozenset[str]:
    """The live devices a source (a SourceConfig) may open: ``picamera2:1``, ``webcam 0``, ``/dev/v4l/...``.

    None for a video file, a URL, a GStreamer pipeline, a folder or the demo:
    those may be given to several cameras. ``auto`` may open either of two.
    """
    uri = None if source.uri is None else str(source.uri)
    if source.type == "auto":
        return frozenset({"picamera2:0", "webcam 0"})
    if source.type == "picamera2":  # edgecam.camera.open_source: a uri that is no number is camera 0
        return frozenset({f"picamera2:{int(uri) if _number(uri) else 0}"})
    if source.type != "opencv":
        return frozenset()
    if uri is None or _number(uri):
        return frozenset({f"webcam {int(uri or 0)}"})
    m = _DEV_VIDEO.fullmatch(uri)
    if m:
        return frozenset({f"webcam {int(m.group(1))}"})
    return frozenset({uri}) if uri.startswith("/dev/") else frozenset()


def source_summary(source) -> str:
    """A source in a few words, as ``--source`` would name it: ``picamera2:1``, ``webcam 0``, a path or URL."""
    if source.type == "auto":
        return "auto (the Pi camera, else webcam 0)"
    if source.type == "picamera2" or (source.type == "opencv" and (source.uri is None or _number(str(source.uri)))):
        return min(live_devices(source))
    if source.type == "images":
        return f"images in {source.uri}"
    return "demo" if source.type == "demo" else str(source.uri)


def device_problems(sources: list[tuple[str, Any]]) -> list[str]:
    """A line for each source (``(where, SourceConfig)``, in order) that may open a live device an earlier one does."""
    out, seen = [], {}
    for where, source in sources:
        devices = live_devices(source)
        clash = next((d for d in sorted(devices) if d in seen), None)
        if clash is not None:
            what = "source auto (picamera2:0, else webcam 0)" if source.type == "auto" else clash
            other, auto = seen[clash]
            by = f"{other} (source auto) may open it too" if auto else f"{other} opens it too"
            out.append(f"{where}: {what}, but {by}; one device cannot feed two cameras: give each its own "
                       "(only a video file or folder may be given twice)")
        for device in devices:
            seen.setdefault(device, (where, source.type == "auto"))
    return out


def check_cameras(cfg, problems: list[str], reported: set[str], build: Callable, path: str | None = None) -> None:
    """The checks of ``cfg.cameras``, after the top level's: how many, their names, each camera's config by
    every rule of a top-level one, no live device twice; a line per problem appended to ``problems``.

    ``reported``: the keys whose values were bad (they hold their defaults now: no check that involves them
    adds a line). ``build(data, problems, reported)`` makes a Config from plain data with its cross-checks
    (schema's); each camera's is kept as its ``config``. A problem a camera inherits is said once, at the top.
    """
    cameras = cfg.cameras
    if not cameras:
        return
    if len(cameras) > MAX_CAMERAS:
        problems.append(f"cameras: {len(cameras)} cameras, expected at most {MAX_CAMERAS}")
    inherited = {key for key in reported if not key.startswith("cameras")}
    top = set(problems)
    base = plain(cfg)
    names: set[str] = set()
    for i, camera in enumerate(cameras):
        where = f"cameras[{i}]"
        unique_name(camera.name, where, "camera", "door", names, reported, problems)
        own = {key[len(where) + 1:] for key in reported if key.startswith(where + ".")}
        found: list[str] = []
        camera.config = build(merged(base, camera), found, inherited | own)
        camera.config.path = path
        problems += [f"{where}.{p}" for p in found if p not in top]
    problems += device_problems([(f"cameras[{i}].source", c.config.source) for i, c in enumerate(cameras)])
    problems += own_files(cfg, len(cameras))


#: In a file path of several cameras, the camera's name (each camera writes its own file).
CAMERA_FIELD = "{camera}"


def own_files(cfg, cameras: int) -> list[str]:
    """With several cameras, a log or recording path must say where each camera's file goes (``{camera}``)."""
    if cameras < 2:
        return []
    out = []
    for key, path, example in (("log.path", cfg.log.path, "/var/log/edgecam/{camera}.jsonl"),
                               ("record.path", cfg.record.path, "recordings/{camera}.mp4")):
        if path and CAMERA_FIELD not in path:
            out.append(f"{key}: {path!r} with {cameras} cameras; each camera writes its own file: put {CAMERA_FIELD} "
                       f"in the path (e.g. {example})")
    return out

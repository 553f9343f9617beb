"""Where the model runs (``model.backend``): the CPU or an accelerator, behind one classifier interface.

* ``cpu``: edgecam's TFLite interpreter (:class:`edgecam.model.classifier.Classifier`).
* ``edgetpu``: the same interpreter with the Coral Edge TPU delegate, for a
  model compiled for it (an ``_edgetpu.tflite``): :mod:`edgecam.model.backends.edgetpu`.
* ``imx500``: the Raspberry Pi AI Camera runs the network on its sensor and
  sends the result with each frame (:mod:`edgecam.model.backends.imx500`): the
  classifier is also the source (``open_source``), and frames carry the
  sensor's result (:attr:`edgecam.camera.frame.Frame.sensor_result`).
* ``hailo``: a Hailo-8L/8 through picamera2's ``Hailo`` class, fed edgecam's
  preprocessed picture (the camera's ISP-scaled lores stream on a Pi):
  :mod:`edgecam.model.backends.hailo`.
* ``auto`` (the default): a model built for an accelerator runs on it; a CPU
  model runs on an accelerator that is present when the registry has a
  build of it there (``cpu_twin``) that is ready to use; else the CPU. What
  was chosen, and why, is one line at start.

Every backend hands the pipeline an object with the interface of
:class:`edgecam.model.classifier.Classifier`: ``name``, ``labels``, ``runtime``,
``backend``, ``threads``, ``input_size``, ``view_size``, ``preprocessor``,
``prepare(frame)`` (None: this frame has no result to classify),
``classify_prepared(tensor, frame, preprocess_ms)`` and ``classify(image)``;
and, where it applies, ``open_source(source_cfg, notifier)`` (a camera that
classifies) and ``close()`` (a device to release). A result's ``extra``
holds the device's own timings where it reports them (``device_ms``).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecam.model.backends import devices
from edgecam.errors import ConfigError

logger = logging.getLogger(__name__)

BACKENDS = ("cpu", "edgetpu", "imx500", "hailo")
NAMES = {"cpu": "the CPU", "edgetpu": "a Coral Edge TPU", "imx500": "the Raspberry Pi AI Camera",
         "hailo": "a Hailo accelerator"}
EDGETPU_OP = b"edgetpu-custom-op"


def built_for(name: str, reg) -> str:
    """What a ``model.name`` setting runs on: its registry entry's ``backend``, else what the file is."""
    if name in reg:
        return reg[name].backend
    path = Path(name).expanduser()
    suffix = path.suffix.lower()
    if suffix == ".rpk":
        return "imx500"
    if suffix == ".hef":
        return "hailo"
    try:
        if path.is_file() and EDGETPU_OP in path.read_bytes():
            return "edgetpu"
    except OSError:
        pass  # resolving the model will say what is wrong with the file
    return "cpu"


def builds(name: str, backend: str, reg) -> list[str]:
    """The registry's builds of CPU model ``name`` for ``backend`` (``cpu_twin: name``)."""
    return [n for n, e in reg.items() if e.backend == backend and e.cpu_twin == name]


@dataclass(frozen=True)
class Choice:
    """What runs where: the backend, the model config to load on it (its ``name``
    may be the twin of the configured one) and the line saying so (or None)."""

    backend: str
    model: Any  # an edgecam.config.schema.ModelConfig
    note: str | None = None
    quiet: bool = False  # the note has no news (auto found no accelerator): a DEBUG line


def _ready(backend: str, entry, model_dir) -> str | None:
    """Why ``entry`` cannot run on ``backend`` here (library missing, no checksum), or None."""
    import importlib.util

    from edgecam import registry

    if backend == "edgetpu":
        from edgecam.model.backends.edgetpu import library_path

        if library_path() is None:
            return "libedgetpu is not installed (see edgecam doctor)"
    elif importlib.util.find_spec("picamera2") is None:
        return "picamera2 is not installed (see edgecam doctor)"
    elif backend == "hailo" and importlib.util.find_spec("hailo_platform") is None:
        return "HailoRT (hailo_platform) is not installed (see edgecam doctor)"
    if not registry.has_checksum(entry, model_dir) and not (registry.models_dir(model_dir) / entry.file).is_file():
        return (f"its build {entry.name} has no known checksum "
                f"(edgecam models fetch {entry.name} --trust-on-first-use, then it is used)")
    return None


def choose(cfg, *, camera: bool = True, root: Path = Path("/")) -> Choice:
    """Decide where ``cfg`` (a :class:`edgecam.config.schema.ModelConfig`) runs; see the module docstring.

    ``camera``: the pictures come from a Pi camera (the AI Camera can only
    classify what its own sensor sees). Raises ConfigError (exit 2) for a
    model that cannot run on the backend asked for, or for the AI Camera
    asked to classify photos or files.
    """
    choice = _choose(cfg, camera, root)
    if choice.backend == "imx500" and not camera:
        raise ConfigError(f"model {choice.model.name} runs on the Raspberry Pi AI Camera, which classifies only what "
                          "its own sensor sees (source: picamera2 or auto); for photos and files run its CPU model "
                          "(model.backend: cpu, --backend cpu)")
    return choice


def _choose(cfg, camera: bool, root: Path) -> Choice:
    from edgecam import registry

    reg = registry.load_registry()
    own = built_for(cfg.name, reg)
    want = cfg.backend
    if want == "auto":
        if own != "cpu":
            return Choice(own, dataclasses.replace(cfg, backend=own))
        reasons = []
        for dev in devices.find(root):
            twins = builds(cfg.name, dev.backend, reg)
            if dev.backend == "imx500" and not camera:
                continue  # photos and files cannot be sent to the sensor
            if not twins:
                reasons.append(f"{dev.what} found, but {cfg.name} has no build for it")
                continue
            why_not = _ready(dev.backend, reg[twins[0]], cfg.dir)
            if why_not:
                reasons.append(f"{dev.what} found, but {why_not}")
                continue
            return Choice(dev.backend, dataclasses.replace(cfg, name=twins[0], backend=dev.backend),
                          f"backend auto: {dev.what}: running {twins[0]}, its build of {cfg.name}")
        why = "; ".join(reasons) or "no accelerator found"
        return Choice("cpu", dataclasses.replace(cfg, backend="cpu"), f"backend auto: the CPU ({why})",
                      quiet=not reasons)
    if want == own:
        return Choice(want, cfg)
    if own == "cpu":
        twins = builds(cfg.name, want, reg)
        if twins:
            return Choice(want, dataclasses.replace(cfg, name=twins[0]),
                          f"model.backend {want}: running {twins[0]}, the {want} build of {cfg.name}")
        those = [n for n, e in reg.items() if e.backend == want]
        raise ConfigError(f"model.backend: {want}, but model {cfg.name} has no build for {NAMES[want]}; "
                          f"models that run there: {', '.join(those) or 'none in the registry'} "
                          "(or set model.backend: cpu)")
    if want == "cpu":
        entry = reg.get(cfg.name)
        if entry is not None and entry.cpu_twin:
            return Choice("cpu", dataclasses.replace(cfg, name=entry.cpu_twin),
                          f"model.backend cpu: running {entry.cpu_twin}, the CPU model {cfg.name} was built from")
    raise ConfigError(f"model.backend: {want}, but model {cfg.name} is built for {NAMES[own]} and runs only there; "
                      f"set model.backend: {own} (or auto), or choose a model for {NAMES[want]}")


def load_classifier(cfg, *, fetch_missing: bool = True, camera: bool = False):
    """The classifier for a :class:`edgecam.config.schema.ModelConfig`, on the backend :func:`choose` picks.

    ``camera``: the pictures will come from a Pi camera (see :func:`choose`).
    The CPU's is :func:`edgecam.model.classifier.load_classifier`.
    """
    choice = choose(cfg, camera=camera)
    if choice.note:
        logger.log(logging.DEBUG if choice.quiet else logging.INFO, "%s", choice.note)
    if choice.backend == "cpu":
        from edgecam.model.classifier import load_classifier as load_cpu

        return load_cpu(choice.model, fetch_missing=fetch_missing)
    return load(choice, fetch_missing=fetch_missing)


def load(choice: Choice, *, fetch_missing: bool = True):
    """The classifier for an accelerator ``choice`` (see :func:`choose`): ``load_<backend>`` of its module."""
    import importlib

    if choice.backend not in BACKENDS[1:]:
        raise ValueError(f"not an accelerator backend: {choice.backend!r}")
    module = importlib.import_module(f"edgecam.model.backends.{choice.backend}")
    return getattr(module, f"load_{choice.backend}")(choice.model, fetch_missing=fetch_missing)


def fit_labels(labels: list[str], classes: int) -> list[str]:
    """Labels for a model with ``classes`` outputs: a 1001-line ImageNet file
    (``background`` first) serves a 1000-class network by dropping that line."""
    if len(labels) == classes + 1 and labels[0].strip().lower() == "background":
        return labels[1:]
    return labels

"""Where the model runs (``model.backend``): the CPU or an accelerator, behind one classifier interface.

Each backend is one module declaring a :class:`edgecam.model.backends.plugin.Backend`
(``BACKEND``): how a model loads on it, its devices, its readiness, its
``edgecam doctor`` check, what the service's drop-in needs for it. The list of
them is :data:`edgecam.config.backends.MODULES` (read by the configuration,
the registry file's check and the command line without importing a backend);
this module is the registry that imports them (:func:`get`, :func:`every`,
:func:`register`) and decides where a model runs (:func:`choose`).

* ``cpu``: edgecam's TFLite interpreter (:class:`edgecam.model.classifier.Classifier`):
  :mod:`edgecam.model.backends.cpu`.
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
  build of it there (``cpu_twin``) that is ready to use, tried in the
  backends' ``auto_rank`` order; else the CPU. What was chosen, and why, is
  one line at start.

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
import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from edgecam import registry
from edgecam.config import backends as table
from edgecam.errors import ConfigError
from edgecam.model.backends.devices import Device
from edgecam.model.backends.plugin import Backend

logger = logging.getLogger(__name__)

CPU = table.CPU
_declared: dict[str, Backend] = {}  # name -> its module's BACKEND, once imported


def register(module: ModuleType) -> Backend:
    """Add the backend ``module`` declares (its ``BACKEND``): from then on it is a choice everywhere.

    The built-in ones are listed in :data:`edgecam.config.backends.MODULES`
    and need no call; this is for a backend from elsewhere (a test's).
    """
    backend = module.BACKEND
    if table.MODULES.get(backend.name, module.__name__) != module.__name__:
        raise ValueError(f"backend {backend.name!r} is already declared by {table.MODULES[backend.name]}")
    table.MODULES[backend.name] = module.__name__
    _declared[backend.name] = backend
    return backend


def unregister(name: str) -> None:
    """Remove a backend :func:`register` added."""
    table.MODULES.pop(name, None)
    _declared.pop(name, None)


def get(name: str) -> Backend:
    """The :class:`Backend` called ``name`` (its module imported the first time)."""
    if name not in _declared:
        if name not in table.MODULES:
            raise ValueError(f"no backend {name!r}; the backends: {', '.join(table.names())}")
        backend = importlib.import_module(table.MODULES[name]).BACKEND
        if backend.name != name:
            raise ValueError(f"{table.MODULES[name]} declares backend {backend.name!r}, listed as {name!r}")
        _declared[name] = backend
    return _declared[name]


def every() -> list[Backend]:
    """Every backend, in :data:`edgecam.config.backends.MODULES` order."""
    return [get(name) for name in table.names()]


def accelerators() -> list[Backend]:
    """The backends ``auto`` may pick by a device found, in the order it tries them (``auto_rank``)."""
    return sorted((b for b in every() if b.auto_rank is not None), key=lambda b: b.auto_rank)


def find_devices(root: Path = Path("/")) -> list[Device]:
    """Every accelerator present (read from ``root``'s /sys and /dev), in the order ``auto`` tries them."""
    return [d for b in accelerators() for d in b.find(root)]


def built_for(name: str, reg) -> str:
    """What a ``model.name`` setting runs on: its registry entry's ``backend``, else what the file is."""
    if name in reg:
        return reg[name].backend
    path = Path(name).expanduser()
    known = every()
    by_suffix = [b.name for b in known if path.suffix.lower() in b.suffixes]
    if by_suffix:
        return by_suffix[0]
    return next((b.name for b in known if b.claims is not None and b.claims(path)), CPU)


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


def _ready(backend: Backend, entry, model_dir) -> str | None:
    """Why ``entry`` cannot run on ``backend`` here (its library missing, no checksum), or None."""
    why_not = backend.ready()
    if why_not:
        return why_not
    if not registry.has_checksum(entry, model_dir) and not (registry.models_dir(model_dir) / entry.file).is_file():
        return (f"its build {entry.name} has no known checksum "
                f"(edgecam models fetch {entry.name} --trust-on-first-use, then it is used)")
    return None


def choose(cfg, *, camera: bool = True, root: Path = Path("/")) -> Choice:
    """Decide where ``cfg`` (a :class:`edgecam.config.schema.ModelConfig`) runs; see the module docstring.

    ``camera``: the pictures come from a Pi camera (a backend that is a
    camera, the AI Camera, can only classify what its own sensor sees).
    Raises ConfigError (exit 2) for a model that cannot run on the backend
    asked for, or for such a camera asked to classify photos or files.
    """
    reg = registry.load_registry()
    own = built_for(cfg.name, reg)
    if cfg.backend == table.AUTO:
        choice = _auto(cfg, own, camera, root, reg)
    else:
        choice = _asked(cfg, own, reg)
    if get(choice.backend).sensor and not camera:
        raise ConfigError(f"model {choice.model.name} runs on {get(choice.backend).what}, which classifies only what "
                          "its own sensor sees (source: picamera2 or auto); for photos and files run its CPU model "
                          f"(model.backend: {CPU}, --backend {CPU})")
    return choice


def _auto(cfg, own: str, camera: bool, root: Path, reg) -> Choice:
    """``model.backend: auto``: where the model is built for, else the first accelerator present and ready."""
    if own != CPU:
        return Choice(own, dataclasses.replace(cfg, backend=own))
    reasons = []
    for dev in find_devices(root):
        backend = get(dev.backend)
        twins = builds(cfg.name, backend.name, reg)
        if backend.sensor and not camera:
            continue  # photos and files cannot be sent to the sensor
        if not twins:
            reasons.append(f"{dev.what} found, but {cfg.name} has no build for it")
            continue
        why_not = _ready(backend, reg[twins[0]], cfg.dir)
        if why_not:
            reasons.append(f"{dev.what} found, but {why_not}")
            continue
        return Choice(backend.name, dataclasses.replace(cfg, name=twins[0], backend=backend.name),
                      f"backend auto: {dev.what}: running {twins[0]}, its build of {cfg.name}")
    why = "; ".join(reasons) or "no accelerator found"
    return Choice(CPU, dataclasses.replace(cfg, backend=CPU), f"backend auto: the CPU ({why})", quiet=not reasons)


def _asked(cfg, own: str, reg) -> Choice:
    """``model.backend`` names a backend: the model, or its build (or its CPU model) there; else ConfigError."""
    want = cfg.backend
    if want == own:
        return Choice(want, cfg)
    if own == CPU:
        twins = builds(cfg.name, want, reg)
        if twins:
            return Choice(want, dataclasses.replace(cfg, name=twins[0]),
                          f"model.backend {want}: running {twins[0]}, the {want} build of {cfg.name}")
        those = [n for n, e in reg.items() if e.backend == want]
        raise ConfigError(f"model.backend: {want}, but model {cfg.name} has no build for {get(want).what}; "
                          f"models that run there: {', '.join(those) or 'none in the registry'} "
                          f"(or set model.backend: {CPU})")
    if want == CPU:
        entry = reg.get(cfg.name)
        if entry is not None and entry.cpu_twin:
            return Choice(CPU, dataclasses.replace(cfg, name=entry.cpu_twin),
                          f"model.backend {CPU}: running {entry.cpu_twin}, the CPU model {cfg.name} was built from")
    raise ConfigError(f"model.backend: {want}, but model {cfg.name} is built for {get(own).what} and runs only there; "
                      f"set model.backend: {own} (or auto), or choose a model for {get(want).what}")


def load_classifier(cfg, *, fetch_missing: bool = True, camera: bool = False):
    """The classifier for a :class:`edgecam.config.schema.ModelConfig`, on the backend :func:`choose` picks.

    ``camera``: the pictures will come from a Pi camera (see :func:`choose`).
    The classifier is what that backend's ``load`` makes of the chosen model.
    """
    choice = choose(cfg, camera=camera)
    if choice.note:
        logger.log(logging.DEBUG if choice.quiet else logging.INFO, "%s", choice.note)
    return get(choice.backend).load(choice.model, fetch_missing=fetch_missing)


def fit_labels(labels: list[str], classes: int) -> list[str]:
    """Labels for a model with ``classes`` outputs: a 1001-line ImageNet file
    (``background`` first) serves a 1000-class network by dropping that line."""
    if len(labels) == classes + 1 and labels[0].strip().lower() == "background":
        return labels[1:]
    return labels

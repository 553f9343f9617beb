"""A Hailo-8L / Hailo-8 (the Raspberry Pi AI Kit / AI HAT+) through picamera2's ``Hailo`` class.

``Hailo(hef)`` opens the shared VDevice and configures the network (float32
outputs); ``get_input_shape()`` says the input, (height, width, 3) uint8 RGB;
each picture goes to ``run_async(picture)``, whose future is waited on with a
timeout: picamera2's ``run()`` waits for ever, and a device that stopped
answering must not hang the service. ``run_async`` itself first waits up to
10 s for the device to take a job (picamera2 devices/hailo/hailo.py,
``wait_for_async_ready(timeout_ms=10000)``), which would make the bound 15 s:
edgecam does that wait first, within the same :data:`RUN_TIMEOUT_S`, so that
picamera2's finds the device ready at once and the whole inference is
bounded by 5 s. The picture is edgecam's preprocessing
of the camera's ISP-scaled lores stream (on a Pi; of the frame elsewhere),
so the sources, crops and results are the CPU's.

A ``.hef`` is compiled for one chip: ``*_h8l`` for the Hailo-8L of the AI
Kit, ``*_h8`` for the Hailo-8 of the 26-TOPS AI HAT+. The registry's ResNet
v1 50 builds (apt's hailo-models) have 1000 classes, no background: the
ImageNet labels file's ``background`` line is dropped.

What goes wrong, and what edgecam says (exit code): picamera2's Hailo support
or HailoRT (``hailo_platform``, apt's hailo-all) missing: 6; no Hailo (no
driver, no device): 3; the device in use by another process
(``HAILO_OUT_OF_PHYSICAL_DEVICES``): 3; a file HailoRT cannot read, or built
for another chip: 2; an inference that fails or does not complete in
:data:`RUN_TIMEOUT_S`: 3 (the service restarts).

Tested against a fake ``hailo_platform`` only (tests/fakes/hailo_platform):
not checked on a Hailo device.

The module declares the backend (``BACKEND``, :mod:`edgecam.model.backends.plugin`):
its ``/dev/hailoN`` nodes (in the drop-in too), picamera2 and HailoRT as its
readiness, :func:`doctor`'s check, ``.hef`` files.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import numpy as np

from edgecam.errors import EXIT_SOURCE, ModelError, RuntimeMissingError, SourceError
from edgecam.model.backends import devices, fit_labels
from edgecam.model.backends.plugin import Backend, Check, Dropin, ProbeModel, picamera2_support
from edgecam.model.classifier import resolve_labelled
from edgecam.model.preprocess import InputSpec, Preprocessor
from edgecam.result import Classification, Extra

logger = logging.getLogger(__name__)

RUN_TIMEOUT_S = 5.0
INSTALL_HINT = ("sudo apt install hailo-all python3-picamera2 (a venv needs --system-site-packages: make install "
                "does it), then reboot; edgecam doctor says more")


def _failure(e: BaseException, path: Path) -> Exception:
    """The one-line error for what HailoRT raised while opening the device or the network."""
    text = str(e).strip() or type(e).__name__
    if "OUT_OF_PHYSICAL_DEVICES" in text:
        return SourceError(f"Hailo: the device is in use by another process (a second edgecam, the service, "
                           f"rpicam-hello): stop it, or run this one on the CPU (--backend cpu) ({text})")
    if "HEF" in text or "INVALID" in text:
        return ModelError(f"model file {path}: HailoRT cannot load it ({text}); is it a .hef for this chip "
                          "(_h8l: Hailo-8L, _h8: Hailo-8)? fetch it again")
    return SourceError(f"Hailo: cannot open the device ({text}): is the AI Kit / AI HAT+ seated and hailo-all "
                       "installed (its driver: /dev/hailo0)? edgecam doctor says which")


def _probabilities(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, np.float32).reshape(-1)
    if scores.min() >= 0 and 0.9 <= float(scores.sum()) <= 1.1:
        return scores
    e = np.exp(scores - scores.max())
    return e / e.sum()


class HailoClassifier:
    """A classifier whose network runs on a Hailo; the interface of :class:`edgecam.model.classifier.Classifier`."""

    backend = "hailo"
    runtime = "hailo"
    threads = 0  # the CPU only preprocesses

    def __init__(self, hailo, model_path: Path, name: str, labels: list[str], crop: str, crop_fraction: float):
        self.hailo = hailo
        self.model_path = Path(model_path)
        self.name = name
        h, w = (int(v) for v in hailo.get_input_shape()[:2])
        self.input_size = (w, h)
        self.preprocessor = Preprocessor(InputSpec(width=w, height=h, dtype=np.uint8, scale=0.0, zero_point=0),
                                         crop, crop_fraction)
        self.labels = tuple(labels)
        self.num_classes = len(labels)

    @property
    def view_size(self) -> tuple[int, int]:
        return self.preprocessor.view_size

    def prepare(self, frame) -> np.ndarray:
        """The network's input picture for a frame (RGB uint8), from its lores stream when it has one."""
        return self.preprocessor.frame_input(frame)

    def classify_prepared(self, tensor: np.ndarray, frame, preprocess_ms: float = 0.0) -> Classification:
        return self._run(tensor, frame.index, frame.timestamp, frame.wall_time, preprocess_ms)

    def classify(self, image: np.ndarray, order: str = "bgr", *, frame_index: int = -1, capture_time: float = 0.0,
                 wall_time: float = 0.0) -> Classification:
        t0 = time.perf_counter()
        w, h = self.input_size
        tensor = np.empty((h, w, 3), np.uint8)
        self.preprocessor(image, tensor, order)
        return self._run(tensor, frame_index, capture_time, wall_time, (time.perf_counter() - t0) * 1000)

    def _run(self, tensor, frame_index, capture_time, wall_time, preprocess_ms) -> Classification:
        t1 = time.perf_counter()
        try:
            ready = getattr(self.hailo, "configured_infer_model", None)
            if ready is not None:  # picamera2's own wait inside run_async then returns at once
                try:
                    ready.wait_for_async_ready(timeout_ms=int(RUN_TIMEOUT_S * 1000))
                except Exception as e:  # HailoRT's HailoRTTimeout: no free slot in time
                    if "TIMEOUT" not in str(e).upper() and "Timeout" not in type(e).__name__:
                        raise
                    raise FutureTimeout() from None
            left = max(0.0, RUN_TIMEOUT_S - (time.perf_counter() - t1))
            output = self.hailo.run_async(tensor).result(timeout=left)
        except FutureTimeout:
            raise SourceError(f"Hailo: no answer from the device in {RUN_TIMEOUT_S:g} s; it restarts with the "
                              "service (if it keeps happening: sudo reboot, then edgecam doctor)") from None
        except Exception as e:  # HailoRT's exception for a failed inference
            raise SourceError(f"Hailo: the inference failed ({str(e).strip() or type(e).__name__}); it restarts "
                              "with the service") from None
        t2 = time.perf_counter()
        scores = np.asarray(output, np.float32).reshape(-1)
        if len(scores) != len(self.labels):
            raise ModelError(f"model {self.name}: {len(scores)} outputs but {len(self.labels)} labels; give the "
                             "labels file of this network (model.labels)")
        return Classification(
            scores=_probabilities(scores), labels=self.labels, model=self.name, frame_index=frame_index,
            capture_time=capture_time, wall_time=wall_time, result_time=time.monotonic(),
            inference_ms=(t2 - t1) * 1000, preprocess_ms=preprocess_ms, extra={Extra.DEVICE_MS: (t2 - t1) * 1000})

    def close(self) -> None:
        hailo, self.hailo = self.hailo, None
        if hailo is not None:
            hailo.close()


def load_hailo(cfg, *, fetch_missing: bool = True) -> HailoClassifier:
    """The Hailo classifier for ``cfg`` (a ModelConfig naming a ``.hef``): the device opened, the network configured."""
    try:  # before the model: offline, its download failing (75) would hide what is missing (6)
        from picamera2.devices.hailo import Hailo
    except ImportError as e:
        raise RuntimeMissingError(f"Hailo: picamera2's Hailo support cannot be imported ({e}); {INSTALL_HINT}") from None
    resolved, labels, _ = resolve_labelled(cfg, fetch_missing=fetch_missing)
    try:
        hailo = Hailo(str(resolved.model_path))
    except Exception as e:  # HailoRT raises its own exception types; the status name says which
        raise _failure(e, resolved.model_path) from None
    try:
        _, outputs = hailo.describe()
        classes = int(np.prod(outputs[0][1])) if outputs else 0
        clf = HailoClassifier(hailo, resolved.model_path, resolved.name, fit_labels(labels, classes), cfg.crop,
                              cfg.crop_fraction)
        if classes != clf.num_classes:
            raise ModelError(f"model {resolved.name}: the network has {classes} outputs but {clf.num_classes} labels; "
                             "give the labels file of this network (model.labels)")
    except BaseException:
        hailo.close()
        raise
    logger.info("loaded %s on the Hailo: input %dx%d, %d classes", clf.name, *clf.input_size, clf.num_classes)
    return clf


def ready() -> str | None:
    """Why a network cannot run on a Hailo that is there (no picamera2, no HailoRT), or None."""
    if importlib.util.find_spec("picamera2") is None:
        return "picamera2 is not installed (see edgecam doctor)"
    if importlib.util.find_spec("hailo_platform") is None:
        return "HailoRT (hailo_platform) is not installed (see edgecam doctor)"
    return None


def dropin(root: Path) -> Dropin:
    """The driver's nodes found at install (/dev/hailo0 when none is)."""
    nodes = [d.node for d in devices.hailo(root)] or ["/dev/hailo0"]
    return Dropin(("# Hailo-8L / Hailo-8 (hailo_pci driver)", *(f"DeviceAllow={n} rw" for n in nodes)))


def doctor(root: Path = Path("/"), probe_model: ProbeModel = None) -> Check:
    """A Hailo: HailoRT and picamera2's Hailo support (hailo-all), the driver's /dev/hailoN, the right to open it."""
    found = devices.hailo(root)
    missing = picamera2_support("hailo", "Hailo", INSTALL_HINT)
    if missing is not None:
        return missing
    if not found:
        return Check("hailo", EXIT_SOURCE, "no Hailo found (no /dev/hailo0): seat the AI Kit / AI HAT+ and its ribbon, "
                                           "then sudo apt install hailo-all (it brings the hailo_pci driver) and reboot")
    if not os.access(root / found[0].node.lstrip("/"), os.R_OK | os.W_OK):
        return Check("hailo", EXIT_SOURCE, f"{found[0].what}: this user may not open {found[0].node} "
                                           "(its udev rule comes with hailo-all; reinstall it, then reboot)")
    return Check("hailo", 0, f"ok: {found[0].what}, HailoRT and picamera2's Hailo support")


#: auto_rank 2: after the AI Camera, before the Coral (the faster accelerator first).
BACKEND = Backend(name="hailo", what="a Hailo accelerator", load=load_hailo, doctor=doctor, ready=ready,
                  find=devices.hailo, auto_rank=2, dropin=dropin, suffixes=(".hef",))

"""The Raspberry Pi AI Camera (Sony IMX500): the network runs on the sensor, its result comes with each frame.

Through picamera2's ``IMX500`` class, in the order its documentation and
examples use: ``IMX500(package)`` before ``Picamera2()`` (it finds the
sensor's sub-device in sysfs, hands the ``.rpk`` package to the driver and
parses the package's network info and intrinsics), then
``Picamera2(imx500.camera_num)`` at the network's inference rate,
``set_auto_aspect_ratio()`` when the network wants a square input, and per
frame ``get_outputs(metadata)`` (None on a frame without a tensor) and
``get_kpi_info(metadata)`` (the sensor's DNN and DSP milliseconds).

So here the classifier is also the source: :meth:`Imx500Classifier.open_source`
opens the camera (edgecam's picamera2 source, without the lores stream: the
sensor does the model's scaling), frames carry a ``SensorResult`` (imx500_source), and
:meth:`Imx500Classifier.prepare` hands the pipeline that result (a frame
without one is counted in ``frames_without_result``, not an error).

Labels: a classification package has 1000 outputs and embeds 1001 labels
``0:background``, ``1:tench, ...``: the ``N:`` prefixes go, and background
goes when there is one label more than outputs. Scores are turned into
probabilities (a softmax) when the package says so (``softmax``) or when they
are not probabilities already.

The first upload of a package to the sensor takes minutes (it is then cached
on the camera until power-off): the source waits for the first tensor, saying
how far the upload is, and extends systemd's start timeout meanwhile
(``EXTEND_TIMEOUT_USEC``), so that ``TimeoutStartSec`` does not kill it.

What goes wrong, and what edgecam says (exit code): picamera2 or its IMX500
support missing: 6; a truncated or foreign ``.rpk`` (checked before the
driver sees it): 2; no AI Camera, or libcamera not listing it: 3; a
libcamera/picamera2 version skew ("tensor info length 708 does not match
expected size 712"): 6; photos or files on the AI Camera: 2 (it classifies
only what its sensor sees).

The module declares the backend (``BACKEND``, :mod:`edgecam.model.backends.plugin`):
a camera (``sensor``) tried first by ``auto``, picamera2 as its readiness,
:func:`doctor`'s check, ``.rpk`` files; its drop-in adds nothing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import struct
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgecam.errors import EXIT_SOURCE, ConfigError, ModelError, RuntimeMissingError, SourceError
from edgecam.model.backends import devices
from edgecam.model.backends.plugin import Backend, Check, Dropin, ProbeModel, picamera2_support
from edgecam.model.classifier import resolve_labelled
from edgecam.result import Classification, Extra

if TYPE_CHECKING:
    from edgecam.model.backends.imx500_source import SensorResult

logger = logging.getLogger(__name__)

INSTALL_HINT = ("sudo apt install imx500-all python3-picamera2 (a venv needs --system-site-packages: "
                "make install does it); edgecam doctor says more")


def check_package(path: Path) -> None:
    """ModelError (exit 2) unless ``path`` is a whole AI Camera package (firmware blocks, then a cpio archive).

    The package goes to the driver before picamera2 parses it: a truncated
    download would be uploaded to the sensor for minutes, then fail obscurely.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelError(f"model file {path}: cannot read it ({e.strerror})") from None
    hint = "fetch it again (edgecam models fetch NAME), or take it from /usr/share/imx500-models (imx500-all)"
    offset = 0
    while data[offset:offset + 4] == b"9464":  # picamera2's own walk over the firmware blocks
        size = struct.unpack(">I", data[offset + 4:offset + 8])[0]
        lock = data[offset + 14] if len(data) > offset + 14 else 0
        footer = offset + size + 60
        if data[footer:footer + 4] != b"3695":
            raise ModelError(f"model file {path}: an AI Camera package cut short ({len(data)} bytes, a block "
                             f"ends past it); {hint}")
        offset = footer + 4 + (32 if lock & 1 else 0)
    if offset == 0:
        raise ModelError(f"model file {path}: not an AI Camera package (.rpk: no firmware header); {hint}")
    if data[offset:offset + 6] != b"070701" or b"TRAILER!!!" not in data[-512:]:
        raise ModelError(f"model file {path}: an AI Camera package without its whole network archive "
                         f"({len(data)} bytes: cut short?); {hint}")


def package_labels(labels: list[str]) -> list[str]:
    """``N:name`` labels of a package without their prefixes."""
    out = []
    for label in labels:
        head, sep, rest = label.partition(":")
        out.append(rest if sep and head.strip().isdigit() else label)
    return out


def _probabilities(scores: np.ndarray, softmax: bool) -> np.ndarray:
    scores = scores.astype(np.float32).reshape(-1)
    if softmax or not (scores.min() >= 0 and 0.9 <= float(scores.sum()) <= 1.1):
        e = np.exp(scores - scores.max())
        return e / e.sum()
    return scores


class Imx500Classifier:
    """The AI Camera as a classifier: results come from the sensor (see the module docstring)."""

    backend = "imx500"
    runtime = "imx500"
    threads = 0  # the CPU only decodes the metadata
    preprocessor = None

    def __init__(self, imx500, model_path: Path, name: str, labels: list[str]):
        self.imx500 = imx500
        self.model_path = Path(model_path)
        self.name = name
        intrinsics = imx500.network_intrinsics
        self._softmax = bool(intrinsics.softmax) if intrinsics is not None else False
        self._all_labels = tuple(labels)
        # 1001 labels with background first for 1000 outputs: the usual package (checked on the first tensor).
        drop = bool(labels) and labels[0].strip().lower() == "background"
        self.labels = tuple(labels[1:]) if drop else tuple(labels)
        self.num_classes = len(self.labels)
        self.input_size = tuple(imx500.get_input_size())
        self.view_size = self.input_size

    def open_source(self, source_cfg, notifier=None):
        """The camera, at the network's inference rate; waits for the network (see
        :class:`edgecam.model.backends.imx500_source.Imx500Source`)."""
        # memory: the picamera2 source (0.8 MB) only when the AI Camera runs; every run imports this module
        # to read its BACKEND declaration (auto, doctor, the drop-in)
        from edgecam.model.backends.imx500_source import Imx500Source

        return Imx500Source(self.imx500, source_cfg, notifier)

    def prepare(self, frame):
        """The frame's :class:`SensorResult`, or None (no tensor with it: the pipeline counts it)."""
        return frame.sensor_result

    def classify_prepared(self, result: SensorResult, frame, preprocess_ms: float = 0.0) -> Classification:
        scores = result.scores
        if len(scores) != len(self.labels):
            if len(scores) != len(self._all_labels):
                raise ModelError(f"model {self.name}: the sensor sends {len(scores)} scores but the package has "
                                 f"{len(self._all_labels)} labels; is this a classification package?")
            self.labels = self._all_labels
            self.num_classes = len(self.labels)
        extra = {}
        if result.dnn_ms is not None:
            extra = {Extra.DEVICE_MS: result.dnn_ms, Extra.DEVICE_DSP_MS: result.dsp_ms}
        return Classification(
            scores=_probabilities(scores, self._softmax), labels=self.labels, model=self.name,
            frame_index=frame.index, capture_time=frame.timestamp, wall_time=frame.wall_time,
            result_time=time.monotonic(), inference_ms=result.dnn_ms or 0.0, preprocess_ms=preprocess_ms, extra=extra)

    def classify(self, image, *args, **kwargs):
        raise ConfigError(f"model {self.name} runs on the AI Camera, which classifies only what its own sensor sees; "
                          "for photos and files use its CPU model (--backend cpu)")

    def close(self) -> None:
        fd, self.imx500.device_fd = self.imx500.device_fd, None
        if fd is not None:
            fd.close()


@contextlib.contextmanager
def _said_to_debug():
    """What picamera2's IMX500 code prints (print() to stdout, tqdm to stderr), logged at DEBUG instead.

    Its ``__init__`` prints a line when the debugfs upload progress cannot be
    read (devices/imx500/imx500.py, the ``FwProgressType.NONE`` branch), which
    would land between edgecam's label changes on stdout and in the journal.
    """
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield
    finally:
        for line in (out.getvalue() + err.getvalue()).splitlines():
            if line.strip():
                logger.debug("picamera2 IMX500: %s", line.strip())


def load_imx500(cfg, *, fetch_missing: bool = True) -> Imx500Classifier:
    """The AI Camera classifier for ``cfg`` (a ModelConfig naming an ``.rpk``): the package handed to the sensor."""
    try:  # before the model: offline, its download failing (75) would hide what is missing (6)
        from picamera2.devices.imx500 import IMX500
    except ImportError as e:
        raise RuntimeMissingError(f"AI Camera: picamera2's IMX500 support cannot be imported ({e}); "
                                  f"{INSTALL_HINT}") from None
    resolved, labels, _ = resolve_labelled(cfg, fetch_missing=fetch_missing)
    path = resolved.model_path
    check_package(path)
    try:
        with _said_to_debug():  # its print() lines: "IMX500 firmware update progress bar is not available"
            imx500 = IMX500(str(path))
    except StopIteration:  # libcamera's list has no imx500 with that device-tree node
        raise SourceError("AI Camera: its sensor is there but libcamera does not list it; update: sudo apt update "
                          "&& sudo apt full-upgrade, then reboot (rpicam-hello --list-cameras must show imx500)") from None
    except RuntimeError as e:
        text = str(e)
        if "dev-node not found" in text:
            raise SourceError("AI Camera: not found (no V4L2 sub-device of the imx500 driver): check the ribbon "
                              "cable, its orientation and seating, then reboot; edgecam doctor says more") from None
        if "network firmware" in text:
            raise ModelError(f"AI Camera: the camera's driver refused {path.name} ({text.rsplit(': ', 1)[-1]}); "
                             "is it a package for this camera? Fetch it again, or update imx500-all") from None
        raise SourceError(f"AI Camera: {text}") from None
    except (ValueError, OSError) as e:
        raise ModelError(f"model file {path}: picamera2 cannot read the package ({e}); fetch it again") from None
    intrinsics = imx500.network_intrinsics
    task = intrinsics.task if intrinsics is not None else None
    if task not in (None, "classification"):
        raise ModelError(f"model file {path}: the network is for {task}; edgecam runs classification networks")
    if not labels:
        labels = package_labels(list(intrinsics.labels or [])) if intrinsics is not None else []
    if not labels:
        raise ModelError(f"model file {path}: the package carries no labels; give a labels file (model.labels)")
    clf = Imx500Classifier(imx500, path, resolved.name, labels)
    logger.info("loaded %s on the AI Camera: input %dx%d, %d labels, %.0f inferences/s", clf.name,
                *clf.input_size, len(clf.labels), intrinsics.inference_rate if intrinsics else 0)
    return clf


def ready() -> str | None:
    """Why a package cannot run on an AI Camera that is there (no picamera2), or None."""
    return None if importlib.util.find_spec("picamera2") is not None else \
        "picamera2 is not installed (see edgecam doctor)"


def dropin(root: Path) -> Dropin:
    """Nothing to allow: the sensor's sub-device is char-video4linux, which the unit allows for every camera."""
    return Dropin(("# Raspberry Pi AI Camera: its sub-device is char-video4linux (allowed by the unit); the first",
                   "# network upload takes minutes: edgecam extends TimeoutStartSec= as it goes (EXTEND_TIMEOUT_USEC)."))


def doctor(root: Path = Path("/"), probe_model: ProbeModel = None) -> Check:
    """The AI Camera: picamera2 with its IMX500 support (imx500-all), the sensor's sub-device."""
    found = devices.imx500(root)
    missing = picamera2_support("imx500", "IMX500", INSTALL_HINT)
    if missing is not None:
        return missing
    if not found:
        return Check("imx500", EXIT_SOURCE, "no AI Camera found (no V4L2 sub-device of the imx500 driver): check the "
                                            "ribbon cable's seating and orientation, then reboot")
    return Check("imx500", 0, f"ok: {found[0].what}, picamera2 with IMX500 support")


#: auto_rank 1: the camera that computes itself spares the CPU even the preprocessing.
BACKEND = Backend(name="imx500", what="the Raspberry Pi AI Camera", load=load_imx500, doctor=doctor, ready=ready,
                  find=devices.imx500, auto_rank=1, dropin=dropin, suffixes=(".rpk",), sensor=True)

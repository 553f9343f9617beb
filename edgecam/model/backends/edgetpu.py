"""The Coral Edge TPU (USB Accelerator, M.2 / Mini PCIe): edgecam's interpreter with the libedgetpu delegate.

As Coral documents it: ``load_delegate('libedgetpu.so.1', {'device': 'usb'})``
(``'pci'`` for a PCIe module), then ``Interpreter(model,
experimental_delegates=[delegate])``; the delegate takes the model's one
``edgetpu-custom-op`` node (an ``_edgetpu.tflite`` from the Edge TPU
compiler) and runs it on the TPU. The sources, preprocessing and results are
the CPU's (:class:`EdgeTpuClassifier` is a :class:`edgecam.model.classifier.Classifier`).

What goes wrong, and what edgecam says (exit code):

* no ``libedgetpu.so.1`` (dlopen fails: OSError): 6, install it;
* the library loads but finds no Coral (the delegate is not created and,
  like the real library, gives no reason): 3, plug it in; with a Coral
  present on the bus: 3, it is busy in another process or this user may not
  open it (udev rule, group ``plugdev``; ``apex`` for PCIe);
* a library built for another TFLite runtime: it crashes (SIGSEGV) or fails
  on the model ("failed to prepare"). The delegate is therefore first loaded,
  and the model run once, in a child process (:mod:`edgecam.model.backends.edgetpu_probe`):
  a crash there is a line, not a dead edgecam: 6;
* the TPU stops answering mid-run (unplugged): the run stops with 3 (the
  service restarts and waits for it).

``$EDGECAM_EDGETPU_LIBRARY`` names the library file when it is not where the
dynamic loader looks (a community build unpacked in a folder).

The module declares the backend (``BACKEND``, :mod:`edgecam.model.backends.plugin`):
the Corals found, the library as its readiness, the drop-in's USB and apex
devices with groups plugdev and apex, :func:`doctor`'s check, and the
``--probe`` model (mobilenet_v1_edgetpu).
"""

from __future__ import annotations

import ctypes.util
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edgecam.errors import EXIT_RUNTIME, EXIT_SOURCE, EdgecamError, ModelError, RuntimeMissingError, SourceError
from edgecam.model.backends import devices
from edgecam.model.backends import edgetpu_compat as compat
from edgecam.model.backends.plugin import Backend, Check, Dropin, ProbeModel, in_group
from edgecam.model.classifier import Classifier, resolve_labelled
from edgecam.model.runtime import interpreter_class, runtime_version

logger = logging.getLogger(__name__)

LIBRARY = "libedgetpu.so.1"
EDGETPU_OP = b"edgetpu-custom-op"  # the one node of a model the Edge TPU compiler made
ENV_LIBRARY = "EDGECAM_EDGETPU_LIBRARY"
PROBE_TIMEOUT_S = 60.0
INSTALL_HINT = ("install it: sudo apt install libedgetpu1-std from Coral's apt repository, or a community build "
                "made for your TFLite runtime; edgecam doctor says more")
NO_DEVICE_HINT = ("plug the Coral in (a USB 3 port, the cable that came with it; or seat the M.2/PCIe module and "
                  "install gasket-dkms), then check with edgecam doctor")


def library_path() -> str | None:
    """The library to load: ``$EDGECAM_EDGETPU_LIBRARY``, else ``libedgetpu.so.1`` if the loader finds it, else None.

    Looked for without loading it (a library built for another runtime may
    crash the process that loads it): in ``$LD_LIBRARY_PATH``, then in the
    loader's cache (``ldconfig -p``, through ctypes.util).
    """
    env = os.environ.get(ENV_LIBRARY)
    if env:
        return env if Path(env).is_file() else None
    for folder in filter(None, os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep)):
        if (Path(folder) / LIBRARY).is_file():
            return LIBRARY
    return LIBRARY if ctypes.util.find_library("edgetpu") else None


def delegate_loader(runtime: str):
    """The ``load_delegate`` that goes with a runtime's Interpreter."""
    module = {"litert": "ai_edge_litert.interpreter", "tflite-runtime": "tflite_runtime.interpreter",
              "tensorflow": "tensorflow.lite.experimental"}[runtime]
    return importlib.import_module(module).load_delegate


def device_options(root: Path = Path("/")) -> tuple[dict, list[devices.Device]]:
    """libedgetpu's options for the Coral found here (``device``: usb or pci), and the Corals found."""
    found = devices.coral(root)
    return ({"device": found[0].kind} if found else {}), found


def _no_delegate(library: str, found: list[devices.Device], reason: str) -> SourceError:
    if not found:
        return SourceError(f"Edge TPU: {library} found no Coral (no USB device 1a6e:089a or 18d1:9302, no "
                           f"/dev/apex_0){': ' + reason if reason else ''}; {NO_DEVICE_HINT}")
    return SourceError(
        f"Edge TPU: {found[0].what} is there, but {library} could not open it"
        f"{' (' + reason + ')' if reason else ''}: another process is using it (a second edgecam, the service), "
        "or this user may not open it (USB: the udev rule of libedgetpu1-std and group plugdev; PCIe: group apex); "
        "edgecam doctor says which")


def probe(library: str, model_path: Path, options: dict, runtime: str, found: list[devices.Device],
          timeout: float = PROBE_TIMEOUT_S) -> float:
    """Load the delegate and run the model once in a child process; raise the one-line error, or return its seconds.

    A libedgetpu built for another TFLite runtime can kill the process that
    loads it (SIGSEGV); in a child, that becomes a message.
    """
    spec = json.dumps({"library": library, "model": str(model_path), "options": options, "runtime": runtime})
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "edgecam.model.backends.edgetpu_probe", spec],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise SourceError(f"Edge TPU: loading {library} and running {model_path.name} once did not finish in "
                          f"{timeout:.0f} s; unplug and plug the Coral in again, then check with edgecam doctor") from None
    seconds = time.perf_counter() - t0
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        raise RuntimeMissingError(
            f"Edge TPU: {library} crashed ({name}) while loading the delegate and running {model_path.name}: it is "
            f"built for another TFLite runtime than this one ({runtime} {runtime_version(runtime)}); install a libedgetpu "
            f"built for it (see edgecam doctor), or run the model's CPU build with model.backend: cpu")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        last = [line for line in proc.stderr.splitlines() if line.strip()]
        raise RuntimeMissingError(f"Edge TPU: the probe of {library} failed (exit {proc.returncode}: "
                                  f"{last[-1] if last else 'no message'})")
    out = json.loads(lines[-1])
    kind, message = out.get("error"), out.get("message", "")
    if kind is None:
        return seconds
    if kind == "library":
        raise RuntimeMissingError(f"Edge TPU: cannot load {library} ({message}); {INSTALL_HINT}")
    if kind == "delegate":
        raise _no_delegate(library, found, message)
    if kind == "runtime":
        raise RuntimeMissingError(f"Edge TPU: {message}")
    raise RuntimeMissingError(
        f"Edge TPU: {library} loaded but failed on {model_path.name} ({message}): the library is built for another "
        "TFLite runtime, or the model was compiled for a newer Edge TPU runtime than this library; install a "
        "libedgetpu built for this runtime, or compile the model for it (see edgecam doctor)")


class EdgeTpuClassifier(Classifier):
    """A :class:`Classifier` whose model runs on the Edge TPU through ``delegate``.

    One interpreter thread: the TPU does the work, the CPU only copies the
    input in and the output out. ``invoke`` time is the TPU's (with the USB
    or PCIe transfer), the device's own figure.
    """

    backend = "edgetpu"

    def __init__(self, model_path, labels, *, delegate, **kwargs):
        self._delegate = delegate
        kwargs["threads"] = 1
        try:
            super().__init__(model_path, labels, **kwargs)  # ends with a warm-up invoke on the TPU
        except RuntimeError as e:
            raise _stopped(e) from None
        self.runtime = f"{self.runtime}+edgetpu"

    def _options(self) -> dict:
        return {"experimental_delegates": [self._delegate]}

    def _build(self, n: int):
        interpreter = super()._build(n)
        detail = interpreter.get_input_details()[0]  # the warm-up sees a black picture, not whatever memory held
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
        return interpreter

    def _invoke(self, frame_index, capture_time, wall_time, preprocess_ms):
        try:
            return super()._invoke(frame_index, capture_time, wall_time, preprocess_ms)
        except RuntimeError as e:
            raise _stopped(e) from None


def _stopped(e: RuntimeError) -> SourceError:
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return SourceError(f"Edge TPU: the TPU stopped answering ({first}); was it unplugged? "
                       "Plug it in again (the service restarts by itself)")


def load_edgetpu(cfg, *, fetch_missing: bool = True) -> EdgeTpuClassifier:
    """The Edge TPU classifier for ``cfg`` (a ModelConfig naming an Edge TPU build), probed first."""
    # The library first: without it the model is of no use, and fetching it (offline: a download
    # failure, exit 75) would hide the one thing to do (exit 6).
    library = library_path()
    if library is None:
        why = f"{os.environ[ENV_LIBRARY]} does not exist" if os.environ.get(ENV_LIBRARY) else f"no {LIBRARY}"
        raise RuntimeMissingError(f"Edge TPU: {why}; {INSTALL_HINT}")
    resolved, labels, pre = resolve_labelled(cfg, fetch_missing=fetch_missing)
    runtime, _ = interpreter_class(cfg.runtime)
    options, found = device_options()
    seconds = probe(library, resolved.model_path, options, runtime, found)
    logger.info("Edge TPU: %s loads and runs %s (checked in a child process in %.2f s)", library,
                resolved.model_path.name, seconds)
    try:
        delegate = delegate_loader(runtime)(library, options)
    except OSError as e:
        raise RuntimeMissingError(f"Edge TPU: cannot load {library} ({e}); {INSTALL_HINT}") from None
    except ValueError as e:
        raise _no_delegate(library, found, str(e).partition("\n")[2].strip()) from None
    try:
        return EdgeTpuClassifier(
            resolved.model_path, labels, delegate=delegate, name=resolved.name, runtime=runtime,
            crop=cfg.crop, crop_fraction=cfg.crop_fraction, mean=float(pre.get("mean", 127.5)),
            std=float(pre.get("std", 127.5)), labels_path=resolved.labels_path)
    except ModelError as e:
        raise ModelError(f"Edge TPU: {e.message}") from None


def ready() -> str | None:
    """Why a model cannot run on a Coral here although one is plugged in (no libedgetpu), or None."""
    return None if library_path() is not None else "libedgetpu is not installed (see edgecam doctor)"


def compiled_for_it(path: Path) -> bool:
    """Whether a model file is an Edge TPU build (its graph holds the compiler's custom op)."""
    try:
        return path.is_file() and EDGETPU_OP in path.read_bytes()
    except OSError:
        return False  # resolving the model will say what is wrong with the file


def dropin(root: Path) -> Dropin:
    """Both kinds of Coral: the USB node changes when libedgetpu loads the firmware (so its class, not a path)."""
    return Dropin(("# Coral USB Accelerator: its USB node, before and after the firmware load",
                   "DeviceAllow=char-usb_device rw",
                   "# Coral M.2 / Mini PCIe (gasket/apex driver)",
                   "DeviceAllow=char-apex rw"),
                  ("plugdev", "apex"))


def doctor(root: Path = Path("/"), probe_model: ProbeModel = None) -> Check:
    """The Coral: the library, the device on the bus, the permission to open it; with ``probe_model``, a run.

    ``probe_model`` may be a function giving the model's path (fetching it): it is called only when the
    library and the device are there, so that doctor offline says what is missing instead of failing
    to download a model it could not run anyway."""
    found = devices.coral(root)
    library = library_path()
    if library is None:
        where = f"; {found[0].what} is plugged in" if found else ""
        return Check("edgetpu", EXIT_RUNTIME,
                     f"no {LIBRARY}{where}: {INSTALL_HINT.removesuffix('; edgecam doctor says more')}")
    build = _build_note(root)
    if build is not None and build[0] is not None:
        return build[0]
    note = build[1] if build else ""
    if not found:
        return Check("edgetpu", EXIT_SOURCE,
                     f"{library} is installed but no Coral is plugged in: {NO_DEVICE_HINT.split(', then')[0]}")
    dev = found[0]
    group = "plugdev" if dev.kind == "usb" else "apex"
    if dev.kind == "pci" and not os.access(root / dev.node.lstrip("/"), os.R_OK | os.W_OK) and not in_group(group):
        return Check("edgetpu", EXIT_SOURCE, f"{dev.what}: this user may not open {dev.node}: "
                                             f"sudo usermod -aG {group} $USER, then log in again")
    if dev.kind == "usb" and in_group(group) is False and os.geteuid() != 0:
        return Check("edgetpu", EXIT_SOURCE, f"{dev.what}: this user is not in group {group}, which libedgetpu's "
                                             f"udev rule lets open it: sudo usermod -aG {group} $USER, then log in again")
    if probe_model is None:
        return Check("edgetpu", 0, f"ok: {dev.what}, {library}{note} (edgecam doctor --probe runs a model on it)")
    try:
        if callable(probe_model):
            probe_model = probe_model()
        runtime, _ = interpreter_class("auto")
        seconds = probe(library, probe_model, {"device": dev.kind}, runtime, found)
    except EdgecamError as e:
        return Check("edgetpu", e.exit_code, e.message)
    return Check("edgetpu", 0, f"ok: {dev.what}; {library} ran {probe_model.name} once ({seconds:.2f} s, "
                               "in a child process)")


def _build_note(root: Path) -> tuple[Check | None, str] | None:
    """dpkg's libedgetpu against the installed TFLite runtime (edgecam.model.backends.edgetpu_compat's table).

    (a failing Check when that build is known to crash with it, else None; a note for the ok line),
    or None when the package or the runtime is unknown ($EDGECAM_EDGETPU_LIBRARY names another library).
    """
    package = compat.installed(root)
    if package is None or os.environ.get(ENV_LIBRARY):
        return None
    try:
        runtime, _ = interpreter_class("auto")
    except EdgecamError:
        return None
    version = runtime_version(runtime)
    verdict, why = compat.verdict(package[1], runtime, version)
    said = f"{package[0]} {package[1]}: {why}"
    if verdict is compat.Verdict.CRASHES:
        return Check("edgetpu", EXIT_RUNTIME, f"{said}: {compat.advice(runtime, version)}"), ""
    if verdict is compat.Verdict.UNKNOWN:
        return None, f"; {said} (if it crashes: {compat.advice(runtime, version)})"
    return None, f"; {said}"


BACKEND = Backend(name="edgetpu", what="a Coral Edge TPU", load=load_edgetpu, doctor=doctor, ready=ready,
                  find=devices.coral, auto_rank=3, dropin=dropin, claims=compiled_for_it,
                  probe_model="mobilenet_v1_edgetpu")

"""``edgecam doctor``: for each backend, what this machine has and, when something is missing, the one thing to do.

Read-only and quick: it looks at sysfs and /dev (:mod:`edgecam.model.backends.devices`),
at which libraries and packages can be found, and at the groups of the user
running it. It never opens an accelerator (one in use by the service is still
reported as present) and never loads a vendor library in this process; with
``--probe``, the Edge TPU delegate is loaded and a model run once in a child
process, as ``edgecam run`` does (:func:`edgecam.model.backends.edgetpu.probe`).

Each line is a :class:`Check`: the backend, ``ok`` or what is wrong, and the
exit code a run on that backend would stop with (0 ready, 6 library or package
missing, 3 device absent or not accessible).
"""

from __future__ import annotations

import grp
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgecam.model.backends import devices
from edgecam.errors import EXIT_RUNTIME, EXIT_SOURCE, EdgecamError


@dataclass(frozen=True)
class Check:
    """One backend's state: ``code`` 0 when it is ready, else the exit code a run on it stops with."""

    backend: str
    code: int
    line: str  # what was found; when code != 0, ends with the one thing to do


def _in_group(name: str) -> bool | None:
    """Whether this process has group ``name`` (None: no such group on this machine)."""
    try:
        gid = grp.getgrnam(name).gr_gid
    except KeyError:
        return None
    return gid in os.getgroups() or gid == os.getegid()


def cpu() -> Check:
    from edgecam.model.runtime import interpreter_class, runtime_version

    try:
        name, _ = interpreter_class("auto")
    except EdgecamError as e:
        return Check("cpu", e.exit_code, e.message)
    return Check("cpu", 0, f"ok: TFLite runtime {name} {runtime_version(name)}")


def edgetpu(root: Path = Path("/"), probe_model: Path | Callable[[], Path] | None = None) -> Check:
    """The Coral: the library, the device on the bus, the permission to open it; with ``probe_model``, a run.

    ``probe_model`` may be a function giving the model's path (fetching it): it is called only when the
    library and the device are there, so that doctor offline says what is missing instead of failing
    to download a model it could not run anyway."""
    from edgecam.model.backends import edgetpu as tpu

    found = devices.coral(root)
    library = tpu.library_path()
    if library is None:
        where = f"; {found[0].what} is plugged in" if found else ""
        return Check("edgetpu", EXIT_RUNTIME, f"no {tpu.LIBRARY}{where}: {tpu.INSTALL_HINT.removesuffix('; edgecam doctor says more')}")
    build = _build_note(root)
    if build is not None and build[0] is not None:
        return build[0]
    note = build[1] if build else ""
    if not found:
        return Check("edgetpu", EXIT_SOURCE, f"{library} is installed but no Coral is plugged in: {tpu.NO_DEVICE_HINT.split(', then')[0]}")
    dev = found[0]
    group = "plugdev" if dev.kind == "usb" else "apex"
    if dev.kind == "pci" and not os.access(root / dev.node.lstrip("/"), os.R_OK | os.W_OK) and not _in_group(group):
        return Check("edgetpu", EXIT_SOURCE, f"{dev.what}: this user may not open {dev.node}: "
                                             f"sudo usermod -aG {group} $USER, then log in again")
    if dev.kind == "usb" and _in_group(group) is False and os.geteuid() != 0:
        return Check("edgetpu", EXIT_SOURCE, f"{dev.what}: this user is not in group {group}, which libedgetpu's "
                                             f"udev rule lets open it: sudo usermod -aG {group} $USER, then log in again")
    if probe_model is not None:
        from edgecam.model.runtime import interpreter_class

        try:
            if callable(probe_model):
                probe_model = probe_model()
            runtime, _ = interpreter_class("auto")
            seconds = tpu.probe(library, probe_model, {"device": dev.kind}, runtime, found)
        except EdgecamError as e:
            return Check("edgetpu", e.exit_code, e.message)
        return Check("edgetpu", 0, f"ok: {dev.what}; {library} ran {probe_model.name} once ({seconds:.2f} s, "
                                   "in a child process)")
    return Check("edgetpu", 0, f"ok: {dev.what}, {library}{note} (edgecam doctor --probe runs a model on it)")


def _build_note(root: Path) -> tuple[Check | None, str] | None:
    """dpkg's libedgetpu against the installed TFLite runtime (edgecam.model.backends.edgetpu_compat's table).

    (a failing Check when that build is known to crash with it, else None; a note for the ok line),
    or None when the package or the runtime is unknown ($EDGECAM_EDGETPU_LIBRARY names another library).
    """
    from edgecam.model.backends import edgetpu as tpu
    from edgecam.model.backends import edgetpu_compat as compat
    from edgecam.model.runtime import interpreter_class, runtime_version

    package = compat.installed(root)
    if package is None or os.environ.get(tpu.ENV_LIBRARY):
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


def _unimportable(backend: str, what: str) -> Check | None:
    """The check's answer when picamera2's support for ``backend`` cannot be imported, else None."""
    try:
        importlib.import_module(f"picamera2.devices.{backend}")
    except ImportError as e:
        hint = importlib.import_module(f"edgecam.model.backends.{backend}").INSTALL_HINT
        return Check(backend, EXIT_RUNTIME, f"picamera2's {what} support is not importable ({e}): "
                                            f"{hint.removesuffix('; edgecam doctor says more')}")
    return None


def imx500(root: Path = Path("/")) -> Check:
    """The AI Camera: picamera2 with its IMX500 support (imx500-all), the sensor's sub-device."""
    found = devices.imx500(root)
    missing = _unimportable("imx500", "IMX500")
    if missing is not None:
        return missing
    if not found:
        return Check("imx500", EXIT_SOURCE, "no AI Camera found (no V4L2 sub-device of the imx500 driver): check the "
                                            "ribbon cable's seating and orientation, then reboot")
    return Check("imx500", 0, f"ok: {found[0].what}, picamera2 with IMX500 support")


def hailo(root: Path = Path("/")) -> Check:
    """A Hailo: HailoRT and picamera2's Hailo support (hailo-all), the driver's /dev/hailoN, the right to open it."""
    found = devices.hailo(root)
    missing = _unimportable("hailo", "Hailo")
    if missing is not None:
        return missing
    if not found:
        return Check("hailo", EXIT_SOURCE, "no Hailo found (no /dev/hailo0): seat the AI Kit / AI HAT+ and its ribbon, "
                                           "then sudo apt install hailo-all (it brings the hailo_pci driver) and reboot")
    if not os.access(root / found[0].node.lstrip("/"), os.R_OK | os.W_OK):
        return Check("hailo", EXIT_SOURCE, f"{found[0].what}: this user may not open {found[0].node} "
                                           "(its udev rule comes with hailo-all; reinstall it, then reboot)")
    return Check("hailo", 0, f"ok: {found[0].what}, HailoRT and picamera2's Hailo support")


def run(root: Path = Path("/"), probe_model: Path | Callable[[], Path] | None = None) -> list[Check]:
    """Every backend's :class:`Check`, in ``model.backend``'s order."""
    return [cpu(), edgetpu(root, probe_model), imx500(root), hailo(root)]

"""What a backend declares: :class:`Backend`, the object each backend module names ``BACKEND``.

Everything edgecam does per backend asks that object, never the backend's
name: how a model loads on it, whether it is ready to run a model here (for
``model.backend: auto``), which devices of this machine are its own, what
``edgecam doctor`` says about it (a :class:`Check`), what the service's
drop-in must allow for it (a :class:`Dropin`), which model files are built
for it. The modules are listed in :data:`edgecam.config.backends.MODULES`.
"""

from __future__ import annotations

import grp
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecam.errors import EXIT_RUNTIME
from edgecam.model.backends.devices import Device

#: What ``probe_model`` of a doctor check may be: the model's path, or a function giving it (fetching it).
ProbeModel = Path | Callable[[], Path] | None


@dataclass(frozen=True)
class Check:
    """One backend's state: ``code`` 0 when it is ready, else the exit code a run on it stops with."""

    backend: str
    code: int
    line: str  # what was found; when code != 0, ends with the one thing to do


@dataclass(frozen=True)
class Dropin:
    """What the service's systemd drop-in adds for a backend (edgecam.model.backends.unit)."""

    lines: tuple[str, ...] = ()  # DeviceAllow= lines, each group of them after a comment saying which device
    groups: tuple[str, ...] = ()  # SupplementaryGroups= (left out, and said, where the group does not exist)


def _always_ready() -> str | None:
    return None


def _no_devices(_root: Path) -> list[Device]:
    return []


def _nothing(_root: Path) -> Dropin:
    return Dropin()


@dataclass(frozen=True)
class Backend:
    """One backend. The callables are plain functions of its module; the defaults fit a backend with no device."""

    name: str  # what model.backend, --backend and a registry entry's backend: say
    what: str  # how a sentence names it: "a Coral Edge TPU"
    #: ``load(cfg, *, fetch_missing)``: the classifier for a ModelConfig naming a model built for it.
    load: Callable[..., Any]
    #: ``doctor(root, probe_model)``: its :class:`Check` on the machine whose /sys and /dev are under ``root``.
    doctor: Callable[[Path, ProbeModel], Check]
    #: ``ready()``: why a model cannot run on it here although its device is present (a library
    #: missing), or None; ``auto`` then says so and stays on the CPU.
    ready: Callable[[], str | None] = _always_ready
    #: ``find(root)``: its devices present on this machine, read from /sys and /dev (nothing opened).
    find: Callable[[Path], list[Device]] = _no_devices
    #: ``auto``'s order among the accelerators found (lowest first); None: auto never picks it by a device.
    auto_rank: int | None = None
    #: ``dropin(root)``: what the service's drop-in must allow for it.
    dropin: Callable[[Path], Dropin] = _nothing
    suffixes: tuple[str, ...] = ()  # a model file with one of these suffixes is built for it (.rpk)
    #: ``claims(path)``: whether a model file (of no such suffix) is built for it, by its content.
    claims: Callable[[Path], bool] | None = None
    sensor: bool = False  # it classifies only what its own camera sees: no photos, no files
    probe_model: str | None = None  # the registry model ``edgecam doctor --probe`` runs on it once


def in_group(name: str) -> bool | None:
    """Whether this process has group ``name`` (None: no such group on this machine)."""
    try:
        gid = grp.getgrnam(name).gr_gid
    except KeyError:
        return None
    return gid in os.getgroups() or gid == os.getegid()


def picamera2_support(backend: str, what: str, install_hint: str) -> Check | None:
    """The doctor's answer when picamera2's support for ``backend`` cannot be imported, else None."""
    try:
        importlib.import_module(f"picamera2.devices.{backend}")
    except ImportError as e:
        return Check(backend, EXIT_RUNTIME, f"picamera2's {what} support is not importable ({e}): "
                                            f"{install_hint.removesuffix('; edgecam doctor says more')}")
    return None

"""Which libedgetpu build works with which TFLite runtime: one table, read by ``edgecam doctor``.

libedgetpu is linked against one TensorFlow release's TFLite, and a delegate
built for another one can crash the process that loads it (SIGSEGV, no
message). Known, from the Coral issue trackers:

* Coral's own package, ``libedgetpu1-std`` / ``-max`` 16.0 (its apt
  repository, the last release), is built against TensorFlow 2.5 and works
  with TFLite runtimes up to 2.11; 2.12 and newer crash
  (google-coral/edgetpu issue 812, "the last version of TensorFlow Lite to
  support EdgeTPU is 2.11.1"; issues 731 and 841, google-coral/tflite issue
  64, tensorflow/tensorflow issue 62371). Every runtime edgecam installs is
  newer (ai-edge-litert >= 1.2, tflite-runtime >= 2.14).
* Community builds (feranick/libedgetpu releases, packages versioned
  ``16.0tfX.Y.Z-N``) are built against TensorFlow X.Y and were reported
  working with runtimes of X.Y and the next minors (the 2.13.1 build with
  tflite-runtime 2.13.1, 2.14.1 and 2.15.0: edgetpu issue 812); further off
  nobody says, and ``edgecam doctor --probe`` tries it.

ai-edge-litert, TFLite's successor package, numbers itself anew (1.x, 2.x):
its first release came after TensorFlow 2.18, so its TFLite counts as 2.18 or
newer here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

PACKAGES = ("libedgetpu1-std", "libedgetpu1-max")


class Verdict(Enum):
    WORKS = "works"
    CRASHES = "crashes"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Build:
    """A kind of libedgetpu build: its package version, what it is built against, what it works with."""

    version: re.Pattern  # on the dpkg version; group(1), group(2): TensorFlow major, minor when in the name
    what: str
    built_for: tuple[int, int] | None  # None: the TensorFlow release in the version
    works_minors: int  # minors of TFLite after built_for known to work (inclusive)
    works_up_to: tuple[int, int] | None  # or an explicit newest working TFLite


#: The compatibility rule (sources in the module docstring).
BUILDS = (
    Build(re.compile(r"^(?:\d+:)?16\.0(?:-\d+)?$"), "Coral's build (for TensorFlow 2.5)", (2, 5), 0, (2, 11)),
    Build(re.compile(r"^(?:\d+:)?16\.0[.~+-]?tf(\d+)\.(\d+)", re.IGNORECASE), "a community build", None, 2, None),
)


def runtime_tflite(runtime: str, version: str) -> tuple[int, int] | None:
    """The TensorFlow release a runtime's TFLite comes from (at least), or None when unknown."""
    if runtime == "litert":
        return (2, 18)  # at least: ai-edge-litert 1.0 followed TensorFlow 2.18
    m = re.match(r"^(\d+)\.(\d+)", version or "")
    return (int(m[1]), int(m[2])) if m and runtime in ("tflite-runtime", "tensorflow") else None


def installed(root: Path = Path("/")) -> tuple[str, str] | None:
    """(package, version) of the libedgetpu package dpkg lists as installed under ``root``, else None."""
    try:
        text = (root / "var/lib/dpkg/status").read_text(errors="replace")
    except OSError:
        return None
    for stanza in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line.startswith(" "))
        if fields.get("Package") in PACKAGES and fields.get("Status", "").endswith(" installed"):
            return fields["Package"], fields.get("Version", "?")
    return None


def verdict(package_version: str, runtime: str, runtime_version: str) -> tuple[Verdict, str]:
    """Whether a libedgetpu of this package version works with this runtime, and one sentence why."""
    tflite = runtime_tflite(runtime, runtime_version)
    shown = f"{runtime} {runtime_version}" + (f" (TFLite of TensorFlow {tflite[0]}.{tflite[1]}"
                                              f"{' or newer' if runtime == 'litert' else ''})" if tflite else "")
    for build in BUILDS:
        m = build.version.match(package_version)
        if not m:
            continue
        built_for = build.built_for or (int(m[1]), int(m[2]))
        newest = build.works_up_to or (built_for[0], built_for[1] + build.works_minors)
        what = f"{build.what}, for TensorFlow {built_for[0]}.{built_for[1]}" if build.built_for is None else build.what
        if tflite is None:
            return Verdict.UNKNOWN, f"{what}; {shown}: not known whether they go together"
        if build.works_up_to is not None and tflite > newest:
            return Verdict.CRASHES, (f"{what}, crashes with TFLite newer than {newest[0]}.{newest[1]}, and this is "
                                     f"{shown}")
        if built_for <= tflite <= newest and runtime != "litert":
            return Verdict.WORKS, f"{what}, works with {shown}"
        return Verdict.UNKNOWN, f"{what}; with {shown} not known to work"
    return Verdict.UNKNOWN, f"version {package_version}, not in edgecam's table"


def advice(runtime: str, runtime_version: str) -> str:
    """What to install instead: the build for this runtime's TensorFlow release."""
    tflite = runtime_tflite(runtime, runtime_version)
    wanted = f"{tflite[0]}.{tflite[1]}{'+' if runtime == 'litert' else ''}" if tflite else "this runtime's TensorFlow"
    return (f"install a libedgetpu built for TensorFlow {wanted} (feranick/libedgetpu releases, packages "
            f"16.0tfX.Y), then check with edgecam doctor --probe; or run the model's CPU build (model.backend: cpu)")

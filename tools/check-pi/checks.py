"""The checks inside.sh runs in an arm64 root: ``python3 checks.py NAME [ARGS]``.

Each prints one line (what it saw) and exits 0 when the check passes. Standard
library only, except where the check is about the venv (run with its Python).
"""

from __future__ import annotations

import csv
import json
import re
import sys
from importlib import metadata

CATS = {"Egyptian cat", "tabby, tabby cat", "tiger cat"}
PHOTOS = {"cat": CATS, "bird": {"chickadee"}, "grace_hopper": {"military uniform"}}


def standin() -> int:
    """The picamera2 stand-in imports with this Python, simplejpeg and all."""
    import numpy
    import picamera2  # noqa: F401
    import simplejpeg

    print(f"simplejpeg {simplejpeg.__version__} with NumPy {numpy.__version__}")
    return 0


def venv_numpy(system: str) -> int:
    """The venv's NumPy is the system's (apt's), not one pip put over it."""
    import numpy

    where = numpy.__file__.rsplit("/numpy/", 1)[0]
    others = ", ".join(f"{n} {metadata.version(n)}" for n in ("ml_dtypes", "ai-edge-litert", "opencv-python",
                                                               "opencv-python-headless") if _has(n))
    print(f"NumPy {numpy.__version__} from {where}; {others}")
    return 0 if numpy.__version__ == system else 1


def _has(name: str) -> bool:
    try:
        metadata.version(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def picamera2_imports() -> int:
    try:
        import picamera2  # noqa: F401
    except Exception as e:  # what a user would see: the NumPy ABI break, typically
        print(f"{type(e).__name__}: {e}")
        return 1
    print("picamera2 (stand-in) and its simplejpeg import")
    return 0


def one_opencv(want: str = "") -> int:
    """Exactly one OpenCV distribution, and cv2 imports; ``gui``: one with a GUI backend."""
    found = sorted(f"{d.metadata['Name']} {d.version}" for d in metadata.distributions()
                   if (d.metadata["Name"] or "").lower().startswith("opencv"))
    try:
        import cv2

        gui = [line for line in cv2.getBuildInformation().splitlines() if line.strip().startswith("GUI:")]
        how = "imports (GUI: " + (gui[0].split(":", 1)[1].strip() if gui else "?") + ")"
    except Exception as e:
        how = f"does not import: {e}"
    print(", ".join(found) + f"; cv2 {how}")
    gui_ok = want != "gui" or (how.startswith("imports") and "NONE" not in how)
    return 0 if len(found) == 1 and how.startswith("imports") and gui_ok else 1


def photos(path: str) -> int:
    rows = json.load(open(path))
    got = {r["image"].rsplit("/", 1)[-1].split(".")[0]: r["top_k"][0] for r in rows}
    print(", ".join(f"{k}: {v['label'].split(',')[0]} {v['score']:.3f}" for k, v in got.items()))
    return 0 if all(got.get(k, {}).get("label") in want for k, want in PHOTOS.items()) else 1


def clip(log: str, segments: str) -> int:
    lines = [json.loads(line) for line in open(log)]
    expected = {}
    with open(segments, newline="") as f:
        for row in csv.DictReader(f):
            for i in range(int(row["first_frame"]), int(row["last_frame"]) + 1):
                expected[i] = int(row["label_index"])
    hits = sum(line["top_k"][0]["index"] == expected[line["frame"]] for line in lines)
    print(f"{len(lines)} results, top-1 matches the clip on {hits}")
    return 0 if len(lines) == 300 and hits >= 180 else 1


def camera(log: str, report: str, stderr: str, model: str = "?") -> int:
    labels = [json.loads(line)["top_k"][0]["label"] for line in open(log)]
    cam = json.load(open(report))["cameras"][0]
    err = open(stderr).read()
    lores = re.search(r"lores \(\d+, \d+\) (\w+)", err)
    mode = re.search(r"sensor mode (\S+)", err)
    shown = sorted({label.split(",")[0] for label in labels})
    print(f"fake {model}: {len(labels)} results, top-1 {shown}, lores {lores[1] if lores else '?'}, "
          f"sensor mode {mode[1] if mode else '?'}, camera closed: {not cam['open']}")
    return 0 if len(labels) >= 20 and set(labels) <= CATS and not cam["open"] else 1


def camera_controls(report: str, model: str) -> int:
    """What the stand-in camera was asked for: continuous AF on a Pi 5's Camera Module 3 and no AF
    control on a Pi 4's Camera v2; rotation 180 as both flips; the long exposure mode with frames of
    up to 100 ms; the sensor's NoIR tuning file from the ISP's folder."""
    cam = json.load(open(report))["cameras"][0]
    controls, flips, tuning = cam.get("controls") or {}, cam.get("transform") or {}, cam.get("tuning") or ""
    af = model == "pi5"
    isp = "pisp" if af else "vc4"
    sensor = "imx708" if af else "imx219"
    ok = ((controls.get("AfMode") == 2) if af else not any(k.startswith("Af") or k == "LensPosition" for k in controls))
    ok &= flips == {"hflip": True, "vflip": True} and controls.get("AeExposureMode") == 2
    ok &= (controls.get("FrameDurationLimits") or [0, 0])[1] == 100000
    ok &= tuning == f"/usr/share/libcamera/ipa/rpi/{isp}/{sensor}_noir.json" and not cam["open"]
    print(f"fake {model} ({cam.get('sensor')}): AfMode {controls.get('AfMode', 'not asked')}, flips {flips}, "
          f"AeExposureMode {controls.get('AeExposureMode')}, FrameDurationLimits {controls.get('FrameDurationLimits')}, "
          f"tuning {tuning}")
    return 0 if ok else 1


def tensors(out: str, folder: str) -> int:
    """The model input edgecam makes of each photo in ``folder`` (default model and crop), saved for
    the host to compare bit for bit with x86's. Run with the venv's Python, in the checkout."""
    import glob

    import cv2
    import numpy as np

    from edgecam.model.classifier import load_classifier
    from edgecam.config.schema import Config

    clf = load_classifier(Config().model)
    spec = clf.input_spec
    arrays = {}
    for path in sorted(glob.glob(folder + "/*.JPEG")):
        tensor = np.empty((spec.height, spec.width, 3), spec.dtype)
        clf.preprocessor(cv2.imread(path, cv2.IMREAD_COLOR), tensor)
        arrays[path.rsplit("/", 1)[-1]] = tensor
    np.savez_compressed(out, **arrays)
    print(f"{len(arrays)} tensors, crop {clf.preprocessor.crop}")
    return 0


def compare(x86_dir: str, arm_dir: str) -> int:
    """Host side: result lines comparing the aarch64 run's outputs with x86's (same code, photos, model)."""
    import numpy as np

    rows = []

    def load(path):
        try:
            return json.load(open(path))
        except (OSError, ValueError):
            return None

    try:
        a, b = np.load(f"{x86_dir}/tensors.npz"), np.load(f"{arm_dir}/tensors.npz")
        same = [k for k in a.files if k in b.files and np.array_equal(a[k], b[k])]
        n_diff = sum(int((a[k] != b[k]).sum()) for k in a.files if k in b.files and k not in same)
        ok = len(same) == len(a.files) == len(b.files) == 100
        rows.append(("model input identical to x86's, 100 photos", ok,
                     f"{len(same)} of {len(a.files)} tensors identical bit for bit"
                     + ("" if ok else f"; {n_diff} values differ in the others")))
    except (OSError, ValueError) as e:
        rows.append(("model input identical to x86's, 100 photos", False, f"no tensors ({e})"))

    def scores(rows_):
        return {r["image"].rsplit("/", 1)[-1]: [(t["index"], t["score"]) for t in r["top_k"]] for r in rows_ or []}

    # The scores: information, not a pass/fail. With the same input tensor, the TFLite runtime's
    # kernels for aarch64 (XNNPACK's NEON ones, and the built-in ones too) round some
    # intermediate values differently from x86's: edgecam's part, the input, is checked above.
    x, y = scores(load(f"{x86_dir}/photos.json")), scores(load(f"{arm_dir}/photos.json"))
    same = [k for k in x if x[k] == y.get(k)]
    rows.append(("same scores as x86, the three photos", None if len(x) == 3 and len(y) == 3 else False,
                 f"{len(same)} of {len(x)} identical; " + "; ".join(
                     f"{k.split('.')[0]} {y[k][0][1]}" + ("" if k in same else f" (x86 {x[k][0][1]})")
                     for k in y if k in x)))
    x, y = scores(load(f"{x86_dir}/imagenet.json")), scores(load(f"{arm_dir}/imagenet.json"))
    differ = [k for k in x if x[k] != y.get(k)]
    top1 = sum(x[k][0][0] == y.get(k, [(None,)])[0][0] for k in x)
    steps = sorted(round(256 * max(abs(s - t) for (_, s), (_, t) in zip(x[k], y[k]))) for k in differ if k in y)
    rows.append(("same top-5 scores as x86, 100 photos", None if len(x) == len(y) == 100 else False,
                 f"{len(x) - len(differ)} of {len(x)} identical; top-1 label the same on {top1}; the others differ "
                 f"by {', '.join(map(str, steps))} steps of 1/256 (the runtime's kernels differ by CPU)"))
    for name, ok, detail in rows:
        print(f"{name}\t{'INFO' if ok is None else 'PASS' if ok else 'FAIL'}\t{detail}")
    return 0


if __name__ == "__main__":
    sys.exit(globals()[sys.argv[1].replace("-", "_")](*sys.argv[2:]))

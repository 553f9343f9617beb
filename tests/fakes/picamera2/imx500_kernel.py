"""The Raspberry Pi AI Camera below picamera2's real ``imx500.py``: its kernel edge and the network on its sensor.

picamera2's ``IMX500`` class (run unchanged, see ``devices/imx500/__init__.py``)
reaches the kernel in four ways, each of which :meth:`Kernel.attach` replaces
in that module and nowhere else:

* ``os`` / ``open`` on ``/sys`` and ``/dev``: read under :attr:`Kernel.root`, a
  machine laid out by tests/fakes/machine.py (the sensor's sysfs links, its
  ``/dev/v4l-subdevN`` node as a plain file). Other paths (the network
  package itself) are the real files.
* ``fcntl.ioctl`` on the sub-device: recorded in :attr:`Kernel.ioctls`. The
  network package handed over by file descriptor (``NETWORK_FW_FD_CTRL_ID``)
  is read through that descriptor as the driver does, and its size and SHA-256
  kept (:attr:`Kernel.firmware`); the inference crop (``ROI_CTRL_ID``) is kept
  in :attr:`Kernel.roi` and used by the network below.
* ``subprocess.check_output(["cat", "/sys/kernel/debug/..."])``: the firmware
  upload progress files, read under the root (tests/fakes/machine.py writes
  them; this kernel advances them while it "uploads"); ``sudo`` fails as it
  does without a sudoers rule.

After a package was handed over, the fake camera (``fake_control.sensor_metadata``)
asks :meth:`Kernel.metadata` for each frame: during the upload
(:attr:`upload_frames` frames, the first time a package is seen) nothing; then
the output tensor the network computes from what the sensor sees (the ROI of
the whole pixel array, scaled to the network's input), as libcamera's IMX500
helper puts it in the metadata: ``CnnOutputTensor`` (floats),
``CnnOutputTensorInfo`` (the bytes of the module's own
``CnnOutputTensorInfoExported`` ctypes layout) and ``CnnKpiInfo`` (sensor DNN
and DSP time in microseconds). The network is a CPU TFLite twin of the
package's (MobileNetV2 here), so the numbers through the whole path are real.

Environment, for a program under test in a subprocess: ``EDGECAM_FAKE_ROOT``
(the machine), ``EDGECAM_FAKE_IMX500_NETWORK`` (the .tflite twin),
``EDGECAM_FAKE_IMX500_UPLOAD_FRAMES``, ``EDGECAM_FAKE_IMX500_INFO_SIZE`` (708:
a libcamera older than picamera2, the version skew), ``EDGECAM_FAKE_IMX500_FAIL``
(``firmware``: the driver refuses the package), ``EDGECAM_FAKE_IMX500_NO_TENSOR_EVERY``
(every Nth frame comes without a tensor).
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess as _subprocess
import threading
from pathlib import Path

import numpy as np

NETWORK_FW_FD_CTRL_ID = 0x00982901
ROI_CTRL_ID = 0x00982900
GET_DEVICE_ID_CTRL_ID = 0x00982902
FULL = (4056, 3040)  # the IMX500's pixel array


class _Path:
    def __init__(self, kernel):
        self._k = kernel

    def __getattr__(self, name):
        return getattr(os.path, name)

    def exists(self, p):
        return os.path.exists(self._k.reroot(p))

    def islink(self, p):
        return os.path.islink(self._k.reroot(p))

    def isfile(self, p):
        return os.path.isfile(self._k.reroot(p))


class _Os:
    def __init__(self, kernel):
        self._k = kernel
        self.path = _Path(kernel)

    def __getattr__(self, name):
        return getattr(os, name)

    def readlink(self, p):
        return os.readlink(self._k.reroot(p))

    def open(self, p, flags, *args):
        return os.open(self._k.reroot(p), flags, *args)


class _Subprocess:
    def __init__(self, kernel):
        self._k = kernel
        self.CalledProcessError = _subprocess.CalledProcessError

    def __getattr__(self, name):
        return getattr(_subprocess, name)

    def check_output(self, cmd, **kw):
        if cmd[0] == "cat":
            return _subprocess.check_output(["cat", *(self._k.reroot(a) for a in cmd[1:])], **kw)
        raise _subprocess.CalledProcessError(1, cmd)  # sudo -n without a sudoers rule


class _Fcntl:
    def __init__(self, kernel):
        self._k = kernel

    def ioctl(self, fd, request, arg=0, mutate=True):
        name = getattr(fd, "name", "")
        if self._k.root is None or not str(name).startswith(str(self._k.root)):
            import fcntl

            return fcntl.ioctl(fd, request, arg, mutate)
        return self._k.ioctl(request, arg)


class Kernel:
    """The fake kernel and sensor; one per process (:data:`kernel`)."""

    def __init__(self):
        self.module = None
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Back to what the environment says (see the module docstring); forget what was handed over."""
        env = os.environ
        self.root = Path(env["EDGECAM_FAKE_ROOT"]) if env.get("EDGECAM_FAKE_ROOT") else None
        self.network_path = env.get("EDGECAM_FAKE_IMX500_NETWORK")
        self.upload_frames = int(env.get("EDGECAM_FAKE_IMX500_UPLOAD_FRAMES", "0"))
        self.info_size = int(env["EDGECAM_FAKE_IMX500_INFO_SIZE"]) if env.get("EDGECAM_FAKE_IMX500_INFO_SIZE") else None
        self.fail = env.get("EDGECAM_FAKE_IMX500_FAIL", "")
        self.no_tensor_every = int(env.get("EDGECAM_FAKE_IMX500_NO_TENSOR_EVERY", "0"))
        self.kpi_us = (6500, 1400)  # sensor DNN and DSP time: made up (no AI Camera measured here)
        self.ioctls: list[tuple] = []
        self.firmware: tuple[int, str] | None = None
        self.uploaded: set[str] = set()  # packages the sensor has cached
        self.roi = (0, 0) + FULL
        self.frames = 0  # frames since the package was handed over
        self.tensors = 0  # frames that carried one
        self._interpreter = None
        self._cache: dict = {}

    def reroot(self, p):
        p = str(p)
        if self.root is not None and (p.startswith("/sys/") or p.startswith("/dev/")):
            return str(self.root) + p
        return p

    def attach(self, module) -> None:
        """Put this kernel under picamera2's imx500 ``module``."""
        self.module = module
        module.os = _Os(self)
        module.subprocess = _Subprocess(self)
        module.fcntl = _Fcntl(self)
        module.open = lambda p, *a, **kw: open(self.reroot(p), *a, **kw)

    # -- the driver --------------------------------------------------------- #

    def ioctl(self, request, arg):
        from videodev2 import VIDIOC_G_EXT_CTRLS, VIDIOC_S_CTRL, VIDIOC_S_EXT_CTRLS

        if request == VIDIOC_S_CTRL:
            self.ioctls.append(("S_CTRL", arg.id, arg.value))
            if arg.id == NETWORK_FW_FD_CTRL_ID:
                if self.fail == "firmware":
                    raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
                self._take_firmware(arg.value)
            return 0
        if request in (VIDIOC_S_EXT_CTRLS, VIDIOC_G_EXT_CTRLS):
            c = arg.controls[0]
            if c.id == ROI_CTRL_ID:
                self.roi = tuple(int(c.p_u32[i]) for i in range(4))
                self.ioctls.append(("S_EXT_CTRLS", c.id, self.roi))
            elif c.id == GET_DEVICE_ID_CTRL_ID:
                for i, v in enumerate((0x500, 0x1, 0x2, 0x3)):
                    c.p_u32[i] = v
                self.ioctls.append(("G_EXT_CTRLS", c.id, None))
            return 0
        raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))

    def _take_firmware(self, fd: int) -> None:
        """Read the package through the descriptor, as the driver does, and start the upload."""
        data = os.pread(fd, os.fstat(fd).st_size, 0)
        with self.lock:
            self.firmware = (len(data), hashlib.sha256(data).hexdigest())
            self.frames = 0
            self._write_progress(0)
        from picamera2 import fake_control

        fake_control.sensor_metadata = self.metadata

    def _write_progress(self, done: int) -> None:
        """The debugfs files picamera2 reads: 'stage block size' and the chunk within the block."""
        if self.root is None:
            return
        for folder in (self.root / "sys/kernel/debug").glob("imx500-fw:*"):
            # Whole or not at all, as a debugfs read is: write_text() truncates first, and a reader in
            # between found an empty file (the run's upload line then lacked its percentage: a CI flake).
            tmp = folder / ".fw_progress.tmp"
            tmp.write_text(f"2 {done} {self.firmware[0]}\n")
            os.replace(tmp, folder / "fw_progress")

    # -- the sensor ------------------------------------------------------------ #

    def metadata(self, camera, picture: np.ndarray) -> dict:
        with self.lock:
            if self.firmware is None:
                return {}
            self.frames += 1
            sha = self.firmware[1]
            if sha not in self.uploaded:
                if self.frames <= self.upload_frames:
                    self._write_progress(self.firmware[0] * self.frames // (self.upload_frames + 1))
                    return {}  # still uploading: frames come, without a tensor
                self.uploaded.add(sha)
                self._write_progress(self.firmware[0])
            if self.no_tensor_every and self.frames % self.no_tensor_every == 0:
                return {}
            self.tensors += 1
        scores = self.network(picture)
        info = self.tensor_info(len(scores))
        return {"CnnOutputTensor": tuple(float(v) for v in scores), "CnnOutputTensorInfo": info,
                "CnnKpiInfo": self.kpi_us}

    def tensor_info(self, n: int) -> bytes:
        """``CnnOutputTensorInfoExported`` for one tensor of ``n`` values, in picamera2's own ctypes layout."""
        info = self.module.CnnOutputTensorInfoExported()
        info.network_name = b"mobilenet_v2"
        info.num_tensors = 1
        info.info[0].tensor_data_num = n
        info.info[0].num_dimensions = 1
        info.info[0].size[0] = n
        data = bytes(info)
        return data[:self.info_size] if self.info_size else data

    def roi_of(self, picture: np.ndarray) -> np.ndarray:
        """The part of ``picture`` (what the whole pixel array sees) inside the inference ROI."""
        h, w = picture.shape[:2]
        x, y, rw, rh = self.roi
        return picture[round(y * h / FULL[1]):round((y + rh) * h / FULL[1]),
                       round(x * w / FULL[0]):round((x + rw) * w / FULL[0])]

    def network(self, picture: np.ndarray) -> np.ndarray:
        """The package's network on the ROI: its CPU twin's probabilities without ``background`` (1000 scores)."""
        key = (id(picture), picture.shape, self.roi)
        cached = self._cache.get(key)
        if cached is not None and cached[0] is picture:
            return cached[1]
        import cv2

        if self._interpreter is None:
            from ai_edge_litert.interpreter import Interpreter

            self._interpreter = Interpreter(model_path=self.network_path, num_threads=1)
            self._interpreter.allocate_tensors()
        it = self._interpreter
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        _, h, w, _ = inp["shape"]
        crop = np.ascontiguousarray(self.roi_of(picture))
        rgb = cv2.cvtColor(cv2.resize(crop, (int(w), int(h)), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        it.set_tensor(inp["index"], rgb[None].astype(inp["dtype"]))
        it.invoke()
        raw = it.get_tensor(out["index"]).reshape(-1).astype(np.float32)
        scale, zero = out["quantization"]
        probs = (raw - zero) * scale if scale else raw
        scores = probs[1:]  # the sensor's network has no background class
        if len(self._cache) > 256:
            self._cache.clear()
        self._cache[key] = (picture, scores)
        return scores


kernel = Kernel()

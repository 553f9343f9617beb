"""A fake of HailoRT's Python package (``hailo_platform``), the part picamera2's real ``devices/hailo/hailo.py`` calls.

NOT checked against HailoRT or a Hailo device: the names and the call order
follow picamera2's hailo.py (0.3.38) and HailoRT's published Python API
(``VDevice``, ``HEF``, ``create_infer_model``, ``configure``,
``create_bindings``, ``run_async`` with a callback); the error texts follow
HailoRT's status names (``HAILO_OUT_OF_PHYSICAL_DEVICES(74)``), not a capture
of the real messages.

A ``.hef`` here is any file starting with ``\\x01HEF`` (the registry test's
made-up bytes); the network it "holds" is played by a CPU TFLite classifier
(``$EDGECAM_FAKE_HAILO_NETWORK``): its probabilities without ``background``,
1000 float32 scores, like the ``resnet_v1_50_h8l.hef`` of apt's hailo-models.

``$EDGECAM_FAKE_HAILO`` scripts the device: ``ok`` (default), ``absent`` (no
device), ``busy`` (another process has it: HAILO_OUT_OF_PHYSICAL_DEVICES),
``hang`` (an inference never completes), ``stuck`` (the device stops taking
inferences: ``wait_for_async_ready`` waits its whole timeout, then raises
HailoRTTimeout, as HailoRT's does when no slot frees), ``exception`` (inferences fail);
``$EDGECAM_FAKE_HAILO_FAIL_AFTER`` lets that many inferences succeed first.
:data:`log` records what was called.
"""

from __future__ import annotations

import enum
import os
import threading
from types import SimpleNamespace

import numpy as np

MAGIC = b"\x01HEF"
log: list[str] = []
_lock = threading.Lock()
_state = {"open": 0, "runs": 0}


class HailoRTException(Exception):
    pass


class HailoRTTimeout(HailoRTException):
    pass


class FormatType(enum.Enum):
    AUTO = 0
    UINT8 = 1
    UINT16 = 2
    FLOAT32 = 3


class HailoSchedulingAlgorithm(enum.Enum):
    NONE = 0
    ROUND_ROBIN = 1


def _mode() -> str:
    return os.environ.get("EDGECAM_FAKE_HAILO", "ok")


class _VStreamInfo:
    def __init__(self, name, shape, fmt):
        self.name, self.shape, self.format = name, shape, SimpleNamespace(type=fmt)


class HEF:
    def __init__(self, path):
        with open(path, "rb") as f:
            head = f.read(4)
        if head != MAGIC:
            raise HailoRTException(f"Failed to parse HEF file {path}. status=HAILO_INVALID_HEF(26)")
        self.path = str(path)
        log.append(f"HEF {os.path.basename(path)}")

    def get_input_vstream_infos(self):
        return [_VStreamInfo("input_layer1", (224, 224, 3), FormatType.UINT8)]

    def get_output_vstream_infos(self):
        return [_VStreamInfo("fc1000", (1000,), FormatType.UINT8)]


class VDevice:
    @staticmethod
    def create_params():
        return SimpleNamespace(scheduling_algorithm=HailoSchedulingAlgorithm.NONE, device_count=1)

    def __init__(self, params=None):
        mode = _mode()
        if mode == "absent":
            raise HailoRTException("Failed to scan devices. status=HAILO_DRIVER_NOT_INSTALLED(64)")
        if mode == "busy":
            raise HailoRTException("Failed to create vdevice. status=HAILO_OUT_OF_PHYSICAL_DEVICES(74)")
        with _lock:
            _state["open"] += 1
        log.append(f"VDevice scheduling={params.scheduling_algorithm.name if params else None}")
        self.released = False

    def create_infer_model(self, hef_path):
        return _InferModel(HEF(hef_path))

    def release(self):
        with _lock:
            _state["open"] -= 1
        self.released = True
        log.append("release")


class _Stream:
    def __init__(self, name, shape):
        self.name, self.shape, self.format_type = name, shape, None

    def set_format_type(self, t):
        self.format_type = t


class _InferModel:
    def __init__(self, hef):
        self.hef = hef
        self._input = _Stream("input_layer1", (224, 224, 3))
        self.outputs = [_Stream("fc1000", (1000,))]
        self.output_names = ["fc1000"]
        self.batch_size = None

    def set_batch_size(self, n):
        self.batch_size = n

    def input(self, name=None):
        return self._input

    def output(self, name=None):
        return self.outputs[0]

    def configure(self):
        log.append(f"configure input={self._input.format_type.name} output={self.outputs[0].format_type.name}")
        return _Configured(self)


class _Buffer:
    def __init__(self, buf=None):
        self.buf = buf

    def set_buffer(self, buf):
        self.buf = buf

    def get_buffer(self):
        return self.buf


class _Bindings:
    def __init__(self, output_buffers):
        self._input = _Buffer()
        self._outputs = {k: _Buffer(v) for k, v in output_buffers.items()}
        self._output_names = list(output_buffers)

    def input(self, name=None):
        return self._input

    def output(self, name=None):
        return self._outputs[name or self._output_names[0]]


class _Configured:
    def __init__(self, model):
        self.model = model
        self._interpreter = None
        self._run_lock = threading.Lock()

    def create_bindings(self, output_buffers):
        return _Bindings(output_buffers)

    def wait_for_async_ready(self, timeout_ms=1000):
        with _lock:
            n = _state["runs"]
        if _mode() == "stuck" and n >= int(os.environ.get("EDGECAM_FAKE_HAILO_FAIL_AFTER", "0")):
            log.append(f"wait_for_async_ready {timeout_ms} ms: timeout")
            threading.Event().wait(timeout_ms / 1000)
            raise HailoRTTimeout(f"Waiting for async job to be ready has failed with timeout ({timeout_ms}ms). "
                                 "status=HAILO_TIMEOUT(4)")
        return None

    def run_async(self, bindings_list, callback):
        with _lock:
            _state["runs"] += 1
            n = _state["runs"]
        mode = _mode()
        failing = mode in ("hang", "exception") and n > int(os.environ.get("EDGECAM_FAKE_HAILO_FAIL_AFTER", "0"))
        if failing and mode == "hang":
            log.append("run hang")
            return SimpleNamespace()  # never calls back
        bindings = bindings_list[0]

        def work():
            info = SimpleNamespace(exception=None)
            if failing:
                info.exception = HailoRTException("Inference failed. status=HAILO_STREAM_ABORT(62)")
            else:
                out = bindings.output().get_buffer()
                out[...] = self._network(bindings.input().get_buffer())
            log.append("run")
            callback(info)

        threading.Thread(target=work, name="fake-hailo", daemon=True).start()
        return SimpleNamespace()

    def _network(self, picture: np.ndarray) -> np.ndarray:
        with self._run_lock:
            if self._interpreter is None:
                from ai_edge_litert.interpreter import Interpreter

                self._interpreter = Interpreter(model_path=os.environ["EDGECAM_FAKE_HAILO_NETWORK"], num_threads=1)
                self._interpreter.allocate_tensors()
            it = self._interpreter
            inp, out = it.get_input_details()[0], it.get_output_details()[0]
            if tuple(picture.shape) != (224, 224, 3) or picture.dtype != np.uint8:
                raise HailoRTException(f"input buffer {picture.shape} {picture.dtype}: expected (224, 224, 3) uint8")
            it.set_tensor(inp["index"], picture[None])
            it.invoke()
            raw = it.get_tensor(out["index"]).reshape(-1).astype(np.float32)
            scale, zero = out["quantization"]
            return ((raw - zero) * scale)[1:] if scale else raw[1:]

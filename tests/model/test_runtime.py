"""Finding a TFLite runtime, and what the user is told when there is none."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest

from edgecam.model import runtime
from edgecam.errors import EXIT_RUNTIME, RuntimeMissingError
from edgecam.model.runtime import interpreter_class, resolve_threads


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


needs_litert = pytest.mark.skipif(not installed("ai_edge_litert"), reason="ai-edge-litert is not installed")


@needs_litert
@pytest.mark.parametrize("asked", ["auto", "litert"])
def test_litert_is_found(asked):
    from ai_edge_litert.interpreter import Interpreter

    name, cls = interpreter_class(asked)
    assert (name, cls) == ("litert", Interpreter)


@pytest.mark.parametrize("asked, module, package", [
    ("tflite-runtime", "tflite_runtime", "tflite-runtime"),
    ("tensorflow", "tensorflow", "tensorflow"),
])
def test_missing_runtime_names_its_pip_package(asked, module, package):
    if installed(module):
        pytest.skip(f"{package} is installed here")
    with pytest.raises(RuntimeMissingError) as info:
        interpreter_class(asked)
    err = info.value
    assert err.exit_code == EXIT_RUNTIME
    assert err.message.startswith(f"model.runtime: {asked} is not installed (")
    assert err.message.endswith(f"run pip install {package}")
    assert "\n" not in err.message


def test_unknown_runtime():
    with pytest.raises(RuntimeMissingError, match="unknown runtime 'onnx'; use auto, litert, tflite-runtime or tensorflow"):
        interpreter_class("onnx")


def hide(monkeypatch, *modules: str) -> None:
    """Make ``import MODULE`` fail as if it were not installed (None in sys.modules does that)."""
    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)


def test_auto_with_no_runtime_at_all(monkeypatch):
    hide(monkeypatch, "ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime",
         "tflite_runtime.interpreter", "tensorflow", "tensorflow.lite")
    with pytest.raises(RuntimeMissingError) as info:
        interpreter_class("auto")
    msg = info.value.message
    assert msg.startswith("no TFLite runtime found (tried ai-edge-litert (")
    assert "; tflite-runtime (" in msg and "; tensorflow (" in msg
    assert msg.endswith("run pip install ai-edge-litert")
    assert "\n" not in msg


@pytest.fixture
def fake_tflite_runtime(tmp_path, monkeypatch):
    """Install a fake ``tflite_runtime`` package whose interpreter module fails as given.

    Returns a function taking the source of ``interpreter.py``.
    """

    def make(source: str):
        pkg = tmp_path / "tflite_runtime"
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        (pkg / "interpreter.py").write_text(source)
        monkeypatch.syspath_prepend(str(tmp_path))
        for m in ("tflite_runtime", "tflite_runtime.interpreter"):
            monkeypatch.delitem(sys.modules, m, raising=False)

    yield make
    for m in ("tflite_runtime", "tflite_runtime.interpreter"):
        sys.modules.pop(m, None)


# What tflite-runtime 2.14 (built for NumPy 1) does on import next to NumPy 2.
NUMPY2_FAILURES = [
    pytest.param('raise ImportError("numpy.core.multiarray failed to import")', id="multiarray"),
    pytest.param('raise AttributeError("_ARRAY_API not found")', id="array-api-attribute"),
    pytest.param('raise ImportError("_ARRAY_API not found")', id="array-api-import"),
    pytest.param('raise ImportError("A module that was compiled using NumPy 1.x cannot be run in NumPy 2.0.0")',
                 id="numpy-1x"),
]


@pytest.mark.parametrize("source", NUMPY2_FAILURES)
def test_numpy2_mismatch_says_to_install_numpy_below_2(fake_tflite_runtime, source):
    fake_tflite_runtime(source)
    with pytest.raises(RuntimeMissingError) as info:
        interpreter_class("tflite-runtime")
    msg = info.value.message
    assert msg.startswith("runtime tflite-runtime: ")
    assert "pip install 'numpy<2'" in msg
    assert runtime._numpy_version() in msg
    assert "litert" in msg  # the other way out
    assert "\n" not in msg


@pytest.mark.parametrize("source", NUMPY2_FAILURES[:1])
def test_auto_reports_the_numpy_mismatch_when_litert_is_absent(fake_tflite_runtime, monkeypatch, source):
    fake_tflite_runtime(source)
    hide(monkeypatch, "ai_edge_litert", "ai_edge_litert.interpreter")
    with pytest.raises(RuntimeMissingError, match=r"pip install 'numpy<2'"):
        interpreter_class("auto")


def test_a_working_tflite_runtime_is_used(fake_tflite_runtime):
    fake_tflite_runtime("class Interpreter:\n    pass\n")
    name, cls = interpreter_class("tflite-runtime")
    assert name == "tflite-runtime" and cls.__module__ == "tflite_runtime.interpreter"


def test_other_attribute_errors_are_not_hidden(fake_tflite_runtime):
    fake_tflite_runtime('raise AttributeError("module has no attribute foo")')
    with pytest.raises(AttributeError, match="foo"):
        interpreter_class("tflite-runtime")


@pytest.mark.parametrize("threads, cpus, expected", [
    # auto (outside the pipeline): one core is left to the rest, but there is always one thread
    ("auto", 4, 3),
    ("auto", 2, 1),
    ("auto", 1, 1),
    (3, 4, 3),
    ("2", 4, 2),  # as a flag's text
])
def test_resolve_threads(monkeypatch, threads, cpus, expected):
    monkeypatch.setattr(runtime, "available_cores", lambda: cpus)
    assert resolve_threads(threads) == expected


def test_available_cores_are_the_ones_this_process_may_use():
    assert runtime.available_cores() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("cpu_count", [None, 3])
def test_available_cores_without_affinity(monkeypatch, cpu_count):
    monkeypatch.delattr(runtime.os, "sched_getaffinity")
    monkeypatch.setattr(runtime.os, "cpu_count", lambda: cpu_count)
    assert runtime.available_cores() == (cpu_count or 1)


@needs_litert
def test_runtime_version_is_the_installed_package():
    from importlib import metadata

    assert runtime.runtime_version("litert") == metadata.version("ai-edge-litert")
    assert runtime.runtime_version("no-such-runtime") == "?"

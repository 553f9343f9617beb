"""Finding a TFLite runtime, and what the user is told when there is none."""

from __future__ import annotations

import importlib.util
import sys

import weakref

import pytest

from edgecam import runtime
from edgecam.errors import EXIT_RUNTIME, RuntimeMissingError
from edgecam.runtime import interpreter_class, resolve_threads


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
    # auto: one core is left to the capture thread, but there is always one thread
    ("auto", 4, 3),
    ("auto", 2, 1),
    ("auto", 1, 1),
    ("auto", None, 1),  # os.cpu_count() may not know
    (3, 4, 3),
    ("2", 4, 2),  # as a flag's text
])
def test_resolve_threads(monkeypatch, threads, cpus, expected):
    monkeypatch.setattr(runtime.os, "cpu_count", lambda: cpus)
    assert resolve_threads(threads) == expected


# -- choose_threads: the pipeline's thread split, measured --------------------


class _FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _factory(clock, ms_by_threads, alive):
    """Interpreters whose invoke() advances a fake clock by a per-thread-count time."""

    class FakeInterpreter:
        def __init__(self, n):
            self.n = n
            alive.add(self)

        def invoke(self):
            clock.now += ms_by_threads[self.n] / 1000

    made = []

    def make(n):
        it = FakeInterpreter(n)
        made.append((n, len(alive)))
        return it

    return make, made


@pytest.mark.parametrize(
    "cores, ms, expected",
    [
        (2, {1: 3.33, 2: 3.17}, 1),  # measured here: a second thread gains 5%, not worth a core
        (2, {1: 7.0, 2: 5.6}, 1),    # 20% gain: still less than the capture thread's share
        (2, {1: 7.0, 2: 5.0}, 2),    # 29%: worth it
        (4, {3: 30.0, 4: 21.0}, 4),
        (4, {3: 30.0, 4: 27.0}, 3),
        (1, {1: 5.0}, 1),
    ],
)
def test_choose_threads_takes_the_extra_core_only_when_it_pays(cores, ms, expected):
    from edgecam.runtime import choose_threads

    clock, alive = _FakeClock(), weakref.WeakSet()  # weak: counts the interpreters still referenced
    make, made = _factory(clock, ms, alive)
    threads, interpreter, timings = choose_threads(make, cores=cores, clock=clock)
    assert threads == expected
    assert interpreter.n == expected
    if cores > 1:
        assert timings == pytest.approx({n: v for n, v in ms.items()})
    # Never two interpreters alive at once: calibration must not raise peak memory.
    assert max(count for _, count in made) == 1

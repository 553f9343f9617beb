"""threads: auto: the decision rule, the in-run measurement (fake clocks) and the cache beside the model."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from edgecam.model import calibration
from edgecam.model.calibration import Calibration, Layout, Measurement, candidates, choose
from edgecam.config.schema import ModelConfig

L11, L12, L13, L14, L21, L22, L31 = (Layout(1, 1), Layout(1, 2), Layout(1, 3), Layout(1, 4), Layout(2, 1), Layout(2, 2),
                                    Layout(3, 1))


def m(fps=100.0, cpu=5.0, p50=10.0, p95=12.0, inferred=1.0) -> Measurement:
    return Measurement(fps=fps, cpu_ms=cpu, latency_p50=p50, latency_p95=p95, inferred=inferred)


@pytest.mark.parametrize("cores, interpreters, expected", [
    (1, None, [L11]),
    (2, None, [L11, L12, L21, L31]),
    (4, None, [L11, L12, L13, L14, L21, L22, L31]),
    (3, None, [L11, L12, L13, L21, L31]),
    (4, 2, [L21, L22]),
    (2, 1, [L11, L12]),
])
def test_candidates(cores, interpreters, expected):
    assert candidates(cores, interpreters) == expected


@pytest.mark.parametrize("policy, measured, expected", [
    # A file: the fastest pipeline wins, whatever invoke alone would suggest.
    pytest.param("every_frame", {L11: m(123), L12: m(160)}, L12, id="file-second-thread-pays"),
    pytest.param("every_frame", {L11: m(289), L12: m(250)}, L11, id="file-second-thread-costs"),
    pytest.param("every_frame", {L11: m(280), L12: m(270), L21: m(400)}, L21, id="file-two-interpreters-pay"),
    # Within 3%: fewer interpreters first, then the cheaper in CPU.
    pytest.param("every_frame", {L11: m(200, cpu=4.5), L12: m(203, cpu=5.5)}, L11, id="file-tie-cheaper-cpu"),
    pytest.param("every_frame", {L11: m(150), L12: m(300, cpu=6.0), L21: m(305, cpu=4.0)}, L12,
                 id="file-tie-fewer-interpreters"),
    pytest.param("every_frame", {L12: m(100, cpu=5.0), L11: m(100, cpu=5.0)}, L11, id="file-exact-tie-fewer-threads"),
    # A camera: of the layouts that keep up, the least CPU per frame...
    pytest.param("latest", {L11: m(30, cpu=4.7, p50=5.0), L12: m(30, cpu=5.8, p50=4.0)}, L11, id="camera-least-cpu"),
    # ...even if a layout that drops frames costs less per frame...
    pytest.param("latest", {L11: m(12, cpu=40.0, inferred=0.4), L14: m(29, cpu=55.0)}, L14, id="camera-keep-up-first"),
    # ...a second interpreter only when one alone cannot keep up...
    pytest.param("latest", {L11: m(30, cpu=6.0), L21: m(30, cpu=5.5, p50=4.0)}, L11, id="camera-one-keeps-up"),
    pytest.param("latest", {L11: m(20, cpu=30.0, inferred=0.66), L21: m(30, cpu=31.0)}, L21,
                 id="camera-two-keep-up"),
    # ...latency decides between near-equal CPU...
    pytest.param("latest", {L11: m(30, cpu=5.0, p50=9.0), L12: m(30, cpu=5.1, p50=6.0)}, L12, id="camera-tie-latency"),
    # ...and when none keeps up, the most results per second.
    pytest.param("latest", {L11: m(8, inferred=0.27), L14: m(20, cpu=9.0, inferred=0.66), L22: m(25, cpu=9.5,
                 inferred=0.83)}, L22, id="camera-none-keeps-up"),
])
def test_chooser_picks_what_the_measurements_say(policy, measured, expected):
    assert choose(policy, measured) == expected


class FakeClocks:
    """Wall and CPU clocks that only move when the test says so."""

    def __init__(self):
        self.wall = 100.0
        self.cpu = 7.0

    def clock(self):
        return self.wall

    def cpu_clock(self):
        return self.cpu


def drive(cal: Calibration, clocks: FakeClocks, cost: dict, drop_every: dict | None = None, limit: int = 10_000):
    """Feed ``cal`` results as a pipeline running each layout at ``cost[layout] = (ms per result, CPU ms)`` would.

    Returns the layouts run, one entry per switch (the first included).
    """
    runs = [cal.layout]
    index = 0
    for _ in range(limit):
        if cal.done:
            break
        lay = cal.layout
        wall_ms, cpu_ms = cost[lay]
        clocks.wall += wall_ms / 1000
        clocks.cpu += cpu_ms / 1000
        index += (drop_every or {}).get(lay, 1)  # frames captured per result (latest policy drops the rest)
        result = SimpleNamespace(frame_index=index, latency_ms=wall_ms + 1.0)
        switch = cal.observe(result)
        if switch is not None:
            assert switch == cal.layout and switch != lay
            runs.append(switch)
    return runs


def test_calibration_measures_each_layout_in_interleaved_rounds_and_keeps_the_fastest():
    clocks = FakeClocks()
    done = []
    # What the Xeon in issue 12 did: invoke alone barely gains from a second thread, the pipeline does.
    cost = {L11: (1000 / 123, 6.0), L12: (1000 / 160, 6.9), L21: (1000 / 150, 6.2)}
    cal = Calibration([L11, L12, L21], "every_frame", rounds=3, clock=clocks.clock, cpu_clock=clocks.cpu_clock,
                      on_done=done.append, min_window_s=0)  # windows of 20 results exactly
    runs = drive(cal, clocks, cost)
    assert cal.done and done == [cal] and cal.chosen == L12
    # Forwards, backwards, forwards: the same layout twice in a row needs no switch.
    assert runs == [L11, L12, L21, L12, L11, L12, L21, L12]
    assert {lay: len(ws) for lay, ws in cal.windows.items()} == {L11: 3, L12: 3, L21: 3}
    summary = cal.summary()
    assert summary[L11].fps == pytest.approx(123)
    assert summary[L12].fps == pytest.approx(160)
    assert summary[L12].cpu_ms == pytest.approx(6.9)
    assert summary[L21].latency_p50 == pytest.approx(1000 / 150 + 1)
    assert cal.results_seen == cal.frames_needed == 9 * (cal.settle + cal.window)
    assert cal.observe(SimpleNamespace(frame_index=10**6, latency_ms=1.0)) is None  # done: no more switches


def test_a_window_lasts_at_least_half_a_second_whatever_the_rate():
    # 20 results of a fast file come in 0.1 s, when the scheduler's turns weigh more than the layout:
    # the window goes on to half a second, and its rate counts every result in it.
    clocks = FakeClocks()
    cal = Calibration([L11, L12], "every_frame", rounds=1, clock=clocks.clock, cpu_clock=clocks.cpu_clock)
    assert cal.min_window_s == calibration.MIN_WINDOW_S == 0.5
    drive(cal, clocks, {L11: (5.0, 4.0), L12: (2.5, 3.0)})  # 200/s and 400/s
    summary = cal.summary()
    assert summary[L11].fps == pytest.approx(200) and summary[L12].fps == pytest.approx(400)
    assert summary[L12].cpu_ms == pytest.approx(3.0)
    # about 100 and 200 results measured, not 20: 0.5 s each
    assert cal.results_seen == pytest.approx(2 * cal.settle + 100 + 200, abs=4)


def test_calibration_for_a_camera_keeps_the_cheapest_layout_that_keeps_up():
    clocks = FakeClocks()
    # 30 fps camera: with one thread the model takes 2 frame intervals (half the frames dropped),
    # with two it keeps up, with two interpreters it keeps up too but costs more CPU.
    cost = {L11: (66.7, 40.0), L12: (33.3, 45.0), L21: (33.3, 48.0)}
    cal = Calibration([L11, L12, L21], "latest", clock=clocks.clock, cpu_clock=clocks.cpu_clock)
    drive(cal, clocks, cost, drop_every={L11: 2})
    assert cal.chosen == L12
    assert cal.summary()[L11].inferred == pytest.approx(0.5)
    assert cal.summary()[L12].inferred == 1.0


def test_one_slow_window_does_not_decide():
    """A burst of load from another program in one window: the medians of three rounds still choose right."""
    clocks = FakeClocks()
    cal = Calibration([L11, L12], "every_frame", clock=clocks.clock, cpu_clock=clocks.cpu_clock)
    base = {L11: (4.0, 4.5), L12: (5.0, 5.5)}

    class Bursty(dict):
        def __getitem__(self, lay):
            wall, cpu = base[lay]
            # the 1x1 layout's first window ran while something else took the machine
            return (wall * 3, cpu) if lay == L11 and not cal.windows[L11] else (wall, cpu)

    drive(cal, clocks, Bursty())
    assert min(w.fps for w in cal.windows[L11]) < max(w.fps for w in cal.windows[L12])
    assert cal.chosen == L11


# -- the cache ------------------------------------------------------------------


@pytest.fixture
def model_file(tmp_path) -> Path:
    path = tmp_path / "m.tflite"
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(100))
    return path


def key_for(model_file, **kw):
    args = {"runtime": "litert", "policy": "every_frame", "fps": None, "cores": 2}
    args.update(kw)
    return calibration.cache_key(model_file, args["runtime"], args["policy"], args["fps"], args["cores"])


def save(model_file, key, layout=L12):
    return calibration.save_cached(model_file, key, layout, {L11: m(100), L12: m(130)}, how="test",
                                   samples={L11: [m(100)], L12: [m(130)]}, other_cores=0.25)


def test_cache_hit_records_what_was_measured(model_file):
    key = key_for(model_file)
    path = save(model_file, key)
    assert path == model_file.with_name("m.tflite.threads.json") and path.is_file()
    record = calibration.load_cached(model_file, key_for(model_file))
    assert record["layout"] == "1x2" and record["how"] == "test"
    assert record["measured"]["1x2"]["fps"] == 130 and record["samples"]["1x1"] == [record["measured"]["1x1"]]
    assert record["key"]["cpu"] == calibration.cpu_model() and record["key"]["model"] == "m.tflite"
    assert record["other_cores"] == 0.25  # what the other programs used then


def test_cache_is_per_policy_and_camera_rate(model_file):
    save(model_file, key_for(model_file, policy="latest", fps=30.0), L11)
    save(model_file, key_for(model_file), L12)  # both kept in the one file
    assert calibration.load_cached(model_file, key_for(model_file, policy="latest", fps=30.0))["layout"] == "1x1"
    assert calibration.load_cached(model_file, key_for(model_file))["layout"] == "1x2"
    assert calibration.load_cached(model_file, key_for(model_file, policy="latest", fps=15.0)) is None
    # A file's rate does not matter to every_frame.
    assert key_for(model_file, fps=25.0) == key_for(model_file)


def test_a_changed_model_file_is_measured_again(model_file):
    save(model_file, key_for(model_file))
    model_file.write_bytes(model_file.read_bytes() + b"more")  # another model (size and mtime change)
    assert calibration.load_cached(model_file, key_for(model_file)) is None
    st = model_file.stat()
    save(model_file, key_for(model_file))
    os.utime(model_file, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # same size, rewritten later
    assert calibration.load_cached(model_file, key_for(model_file)) is None
    # Saving for the new file drops the stale entries of the old one.
    save(model_file, key_for(model_file))
    data = json.loads(calibration.cache_path(model_file).read_text())
    assert len(data["entries"]) == 1


@pytest.mark.parametrize("change", ["runtime_version", "runtime", "cpu", "cores"])
def test_another_runtime_or_machine_is_measured_again(model_file, monkeypatch, change):
    save(model_file, key_for(model_file))
    if change == "runtime_version":
        monkeypatch.setattr(calibration, "runtime_version", lambda name: "9.9.9")
        key = key_for(model_file)
    elif change == "runtime":
        key = key_for(model_file, runtime="tflite-runtime")
    elif change == "cpu":
        monkeypatch.setattr(calibration, "cpu_model", lambda: "Cortex-A76")
        key = key_for(model_file)
    else:
        key = key_for(model_file, cores=4)
    assert calibration.load_cached(model_file, key) is None
    save(model_file, key, L21)  # the other machine's entry goes beside this one's (a shared folder)
    assert calibration.load_cached(model_file, key)["layout"] == "2x1"
    monkeypatch.undo()
    assert calibration.load_cached(model_file, key_for(model_file))["layout"] == "1x2"


@pytest.mark.parametrize("content", ["{not json", "[]", '{"version": 1, "entries": []}',
                                     '{"version": 1, "entries": {"x": 1}}'])
def test_a_damaged_cache_is_ignored_and_replaced(model_file, content, caplog):
    caplog.set_level(logging.DEBUG, logger="edgecam.model.calibration")
    calibration.cache_path(model_file).write_text(content)
    key = key_for(model_file)
    assert calibration.load_cached(model_file, key) is None
    assert save(model_file, key) is not None
    assert calibration.load_cached(model_file, key)["layout"] == "1x2"


def test_damaged_record_for_this_key_is_ignored(model_file):
    key = key_for(model_file)
    save(model_file, key)
    path = calibration.cache_path(model_file)
    data = json.loads(path.read_text())
    for record in data["entries"].values():
        record["layout"] = "lots"
    path.write_text(json.dumps(data))
    assert calibration.load_cached(model_file, key) is None


@pytest.fixture
def read_only_folder():
    """A folder holding a model that this process cannot write to (as root: drop to nobody meanwhile)."""
    folder = Path(tempfile.mkdtemp(prefix="edgecam-ro-"))
    model = folder / "m.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(100))
    folder.chmod(0o555)
    root = os.geteuid() == 0
    if root:
        import pwd

        try:
            nobody = pwd.getpwnam("nobody").pw_uid
        except KeyError:
            pytest.skip("running as root and there is no user 'nobody' to lose write access as")
        os.seteuid(nobody)
    try:
        yield model
    finally:
        if root:
            os.seteuid(0)
        folder.chmod(0o755)
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()


def test_a_read_only_model_folder_skips_caching_with_a_debug_line(read_only_folder, caplog):
    caplog.set_level(logging.DEBUG, logger="edgecam.model.calibration")
    assert not os.access(read_only_folder.parent, os.W_OK, effective_ids=os.access in os.supports_effective_ids)
    key = key_for(read_only_folder)
    assert save(read_only_folder, key) is None
    assert calibration.load_cached(read_only_folder, key) is None
    lines = [r for r in caplog.records if "not caching" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.DEBUG
    assert str(read_only_folder.parent) in lines[0].getMessage()
    assert list(read_only_folder.parent.iterdir()) == [read_only_folder]  # no temporary file left behind


def test_a_read_only_model_folder_still_measures_and_chooses(read_only_folder):
    clf = SimpleNamespace(model_path=read_only_folder, runtime="litert")
    clocks = FakeClocks()
    p = calibration.plan(ModelConfig(), clf, "every_frame", cores=2, clock=clocks.clock, cpu_clock=clocks.cpu_clock)
    assert p.how == "measuring"
    drive(p.calibration, clocks, {L11: (4.0, 4.5), L12: (5.0, 5.5), L21: (3.0, 4.4), L31: (3.2, 4.3)})  # on_done must not raise
    assert p.calibration.chosen == L21


# -- the plan a run follows -------------------------------------------------------


def test_plan_measures_then_reuses_the_cached_choice(model_file):
    clf = SimpleNamespace(model_path=model_file, runtime="litert")
    clocks = FakeClocks()
    first = calibration.plan(ModelConfig(), clf, "every_frame", cores=2, clock=clocks.clock,
                             cpu_clock=clocks.cpu_clock)
    assert first.how == "measuring" and first.layout == L11 and first.calibration is not None
    drive(first.calibration, clocks, {L11: (4.0, 4.5), L12: (3.0, 5.5), L21: (3.5, 4.4), L31: (3.6, 4.4)})
    assert first.calibration.chosen == L12
    second = calibration.plan(ModelConfig(), clf, "every_frame", cores=2)
    assert second.how == "cached" and second.layout == L12 and second.calibration is None
    assert second.measured["1x2"]["fps"] == pytest.approx(1000 / 3.0, rel=1e-3)
    # A camera run is another question: measured anew.
    assert calibration.plan(ModelConfig(), clf, "latest", 30.0, cores=2).how == "measuring"


@pytest.mark.parametrize("threads, interpreters, cores, how, layout, layouts", [
    (2, "auto", 4, "explicit", L12, None),
    (1, 2, 4, "explicit", L21, None),
    ("auto", "auto", 1, "single candidate", L11, None),
    ("auto", 2, 2, "single candidate", L21, None),
    ("auto", 1, 4, "measuring", L11, [L11, L12, L13, L14]),
    ("auto", 2, 4, "measuring", L21, [L21, L22]),
])
def test_plan_follows_the_config(model_file, threads, interpreters, cores, how, layout, layouts):
    clf = SimpleNamespace(model_path=model_file, runtime="litert")
    p = calibration.plan(ModelConfig(threads=threads, interpreters=interpreters), clf, "every_frame", cores=cores)
    assert (p.how, p.layout) == (how, layout)
    assert (p.calibration.layouts if p.calibration else None) == layouts


def test_cpu_model_names_this_machine():
    name = calibration.cpu_model()
    assert name and name != "unknown" and "\n" not in name


# -- several cameras on one stage -----------------------------------------------------------


def test_several_cameras_count_the_share_classified_from_the_stage_not_from_frame_numbers():
    clocks, offered = FakeClocks(), [0]
    cal = Calibration([L11, L21], "latest", rounds=1, settle=2, window=10, clock=clocks.clock,
                      cpu_clock=clocks.cpu_clock, offered=lambda: offered[0], cameras=3)
    # Frame numbers of three cameras, each its own: 7, 1002, 40, 8, 1003, 41... (by them, the span is nonsense).
    frames = {L11: 1.03, L21: 1.0}  # frames offered per result: 1x1 drops 3 %, 2x1 none
    index = 0
    while not cal.done:
        lay = cal.layout
        clocks.wall += 0.01
        clocks.cpu += 0.005 if lay == L11 else 0.006
        offered[0] += frames[lay]
        index += 1
        cal.observe(SimpleNamespace(frame_index=(7, 1002, 40)[index % 3] + index // 3, latency_ms=10.0))
    summary = cal.summary()
    assert summary[L11].inferred == pytest.approx(1 / 1.03, abs=0.005)
    assert summary[L21].inferred == pytest.approx(1.0)
    assert cal.chosen == L21  # one interpreter drops 3 %: several cameras want every frame
    assert calibration.choose("latest", summary) == L11  # one camera: 97 % keeps up, and costs less CPU


@pytest.mark.parametrize("cameras, latency_1x1, chosen", [
    (1, 37, L11),  # one camera: the cheapest that keeps up
    (3, 37, L21),  # several: the quickest (frames that arrive together wait for one interpreter)
    (3, 21, L11),  # several, within 10 % of the quickest: fewer interpreters
])
def test_several_cameras_keep_the_quickest_layout_that_classifies_every_frame(cameras, latency_1x1, chosen):
    measured = {L11: Measurement(fps=87, cpu_ms=12.0, latency_p50=17, latency_p95=latency_1x1, inferred=1.0),
                L21: Measurement(fps=90, cpu_ms=12.8, latency_p50=13, latency_p95=20, inferred=1.0)}
    assert choose("latest", measured, cameras) == chosen


def test_a_choice_for_one_camera_is_not_taken_for_several(model_file):
    clf = SimpleNamespace(model_path=model_file, runtime="litert")
    clocks = FakeClocks()
    first = calibration.plan(ModelConfig(), clf, "every_frame", cores=2, clock=clocks.clock,
                             cpu_clock=clocks.cpu_clock)
    drive(first.calibration, clocks, {L11: (4.0, 4.5), L12: (3.0, 5.5), L21: (3.5, 4.4), L31: (3.6, 4.4)})
    assert calibration.plan(ModelConfig(), clf, "every_frame", cores=2).how == "cached"
    assert calibration.plan(ModelConfig(), clf, "every_frame", cores=2, cameras=3).how == "measuring"


def test_several_cameras_are_measured_over_windows_as_many_times_longer(model_file):
    clf = SimpleNamespace(model_path=model_file, runtime="litert")
    one = calibration.plan(ModelConfig(), clf, "latest", 30.0, cores=2)
    three = calibration.plan(ModelConfig(), clf, "latest", 30.0, cores=2, cameras=3)
    assert three.calibration.window == 3 * one.calibration.window
    # the results skipped after a switch scale too, and never fewer than the frames still in flight (3 x 1)
    settle = calibration.SETTLE["latest"]
    assert (one.calibration.settle, three.calibration.settle) == (max(3, settle), max(3, 3 * settle))
    assert (one.calibration.cameras, three.calibration.cameras) == (1, 3)

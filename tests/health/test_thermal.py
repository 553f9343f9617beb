"""health.thermal: auto on a simulated board (a fake clock, no sleeps, no real heat), and on a real run
whose fake thermal zone follows the CPU time edgecam uses."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

import pytest

from edgecam.health.thermal import ThermalGovernor

TOOL = Path(__file__).resolve().parents[2] / "tools" / "thermal_figures.py"


@pytest.fixture(scope="module")
def figures():
    spec = importlib.util.spec_from_file_location("thermal_figures", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_a_ramp_with_auto_stays_below_the_soft_limit_and_recovers(figures, caplog):
    caplog.set_level(logging.INFO, logger="edgecam.health.thermal")
    governor = ThermalGovernor(80.0)
    auto = figures.summary(figures.simulate("auto", governor=governor), governor)
    off = figures.summary(figures.simulate("off"))
    # Without it the board crosses its soft limit for minutes (the firmware would throttle everything)...
    assert off["max_temp_c"] > 80.0 and off["seconds_at_or_over_soft_limit"] > 600
    # ...with it the work steps down first, stays below, and is all back once the afternoon is over.
    assert auto["max_temp_c"] < 80.0 and auto["seconds_at_or_over_soft_limit"] == 0
    assert auto["max_every"] >= 2 and auto["final_every"] == 1
    assert 0.5 < auto["classified_share"] < 1.0
    # Each change one line, counted.
    steps = [r for r in caplog.records if r.getMessage().startswith("thermal: ")]
    assert len(steps) == governor.steps_down + governor.steps_up and governor.steps_down >= 1
    # A WARNING (with what to do) when it first leaves every frame; the ups and downs of the hour after: INFO.
    loud = [r.getMessage() for r in steps if r.levelno == logging.WARNING]
    assert len(loud) == 1 and "heatsink or a fan" in loud[0], loud
    assert governor.steps_up == governor.steps_down  # back to every frame


def test_hysteresis_hold_and_the_firmware_flag():
    g = ThermalGovernor(80.0, margin_c=5.0, hysteresis_c=5.0, hold_s=30.0, max_every=4)
    assert g.steps == (1, 2, 3, 4)
    assert g.update(74.9, 0.0, rate=30.0) is None and g.every == 1
    assert g.update(75.0, 5.0, rate=30.0) == 2 and g.full_rate == 30.0
    assert g.interval_s() == pytest.approx(1.5 / 30.0)
    assert g.update(77.0, 10.0) is None  # warm, but the last step has had no time to show
    assert g.update(77.0, 35.0) == 3  # hold_s later, still warm: one more
    assert g.update(80.5, 41.0) == 4  # past the soft limit: no waiting for hold_s (5 s is enough)
    assert g.update(90.0, 60.0) is None and g.every == 4  # the lowest step
    assert g.update(72.0, 100.0) is None  # cooler, but not below 70: stays (hysteresis)
    assert g.update(69.0, 100.0) == 3
    assert g.update(65.0, 110.0) is None  # hold_s between steps up too
    assert g.update(65.0, 130.0) == 2 and g.update(65.0, 160.0) == 1
    assert g.interval_s() == 0.0
    assert (g.steps_down, g.steps_up) == (3, 3)
    assert g.update(60.0, 200.0, firmware_hot=True, rate=28.0) == 2  # the firmware throttles: down whatever we read
    assert g.full_rate == 28.0


def test_nothing_classified_yet_is_nothing_to_step_down_from():
    g = ThermalGovernor(80.0)
    assert g.update(85.0, 0.0, rate=0.0) is None and g.every == 1
    assert g.update(None, 60.0) is None


def test_a_real_run_heating_its_fake_zone_steps_down(figures, shared_dir, tmp_path, model_env):
    """The zone is heated by the CPU time the edgecam process really uses: a busy run warms it past
    75 °C; with thermal: auto the step is logged, and frames are skipped (fewer results than frames)."""
    run = figures.live_run("auto", 20.0, tmp_path, ambient_c=70.0, c_per_core=60.0, tau_s=2.0, env=model_env)
    assert run["exit"] == 0, run["stderr"][-2000:]
    assert run["steps"], f"no thermal step; temperatures {run['trace'][-5:]}\n{run['stderr'][-2000:]}"
    assert "classifying every 2nd frame, was every frame" in run["steps"][0]
    assert max(t for _, _, t in run["trace"]) >= 75.0


@pytest.mark.parametrize("yaml_text, governed, limit", [
    ("", True, 80.0),                                   # default auto, a Pi: 80 °C
    ("health: {thermal: off}\n", False, None),          # YAML's off is false: off
    ("health: {thermal: 'off'}\n", False, None),
    ("health: {soft_limit_c: 70}\n", True, 70.0),
])
def test_the_config_chooses_the_governor(tmp_path, monkeypatch, yaml_text, governed, limit):
    from edgecam.config import schema as config
    from edgecam.health.monitor import HealthMonitor
    from tests.health.trees import pi_tree

    monkeypatch.setenv("EDGECAM_HOST_ROOT", str(pi_tree(tmp_path / "root")))
    (tmp_path / "c.yaml").write_text(yaml_text)
    monitor = HealthMonitor.from_config(config.load(tmp_path / "c.yaml"))
    assert (monitor.governor is not None) == governed
    if governed:
        assert monitor.governor.soft_limit_c == limit


def test_no_soft_limit_off_a_pi_unless_set(tmp_path, monkeypatch):
    from edgecam.config import schema as config
    from edgecam.errors import ConfigError
    from edgecam.health.monitor import HealthMonitor
    from tests.health.trees import laptop_tree

    monkeypatch.setenv("EDGECAM_HOST_ROOT", str(laptop_tree(tmp_path / "root")))
    assert HealthMonitor.from_config(config.Config()).governor is None  # a laptop runs hot by design
    (tmp_path / "c.yaml").write_text("health: {soft_limit_c: 90}\n")
    assert HealthMonitor.from_config(config.load(tmp_path / "c.yaml")).governor.soft_limit_c == 90.0
    (tmp_path / "bad.yaml").write_text("health: {thermal: maybe}\n")
    with pytest.raises(ConfigError, match=r"health.thermal: got 'maybe', expected"):
        config.load(tmp_path / "bad.yaml")


def test_the_pipeline_classifies_one_frame_in_every_and_counts_the_rest():
    """A governor at 'every 3rd frame' of 100 results/s: about a third classified, the rest counted as
    skipped, and every frame still reaches the outputs (the latest policy: the picture stays live)."""
    from tests.doubles import FakeCamera
    from tests.pipeline.test_pipeline import RecordingSink, SlowClassifier, make_pipeline, run

    governor = ThermalGovernor(80.0)
    governor.full_rate, governor.level = 100.0, 2
    assert governor.every == 3
    cam = FakeCamera(fps=100, frames=150)
    sink = RecordingSink()
    p = make_pipeline(SlowClassifier(delay_s=0.001), cam, [sink], "latest")
    p.work_limit = governor
    assert run(p) == 0
    st = p.stats
    assert st.frames_inferred + governor.skipped + st.frames_dropped == cam.count == 150
    # Time-based (a shortest interval), so under load a few more frames are skipped, never more classified.
    assert st.frames_inferred <= 60 and governor.skipped >= 90, (st.frames_inferred, governor.skipped)
    assert len(sink.frames) + st.frames_output_dropped == 150

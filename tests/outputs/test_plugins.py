"""Outputs as plug-ins (issue 22): a new output is one module plus one registration; it is then built
when its config asks for it, and what it refuses shows in ``edgecam check-config``, with no other edit."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from edgecam.commands.check_config import cmd_check_config
from edgecam.config import schema as config_mod
from edgecam.errors import EXIT_CONFIG, ConfigError
from edgecam.outputs import SINKS, build_sinks, register, unregister
from edgecam.pipeline import preflight
from edgecam.result import Classification
from edgecam.stats import Stats
from tests.outputs import toy_sink


@pytest.fixture
def toy():
    register(toy_sink.PLUGIN)
    yield toy_sink
    unregister("toy")


def built(cfg) -> list:
    return build_sinks(cfg, Stats(), on_quit=lambda: None, display=False, source_fps=None)


def test_a_registered_toy_sink_is_built_when_its_config_enables_it(toy, tmp_path):
    cfg = config_mod.from_dict({"log": {"path": str(tmp_path / "run.toy")}})
    sinks = built(cfg)
    assert [s.name for s in sinks] == ["log", "toy"]  # fed after the outputs registered before it
    sinks[1].on_result(Classification(np.array([1.0], np.float32), ["a"]))
    assert isinstance(sinks[1], toy.ToySink) and sinks[1].results == 1
    assert [s.name for s in built(config_mod.from_dict({"log": {"path": str(tmp_path / "run.jsonl")}}))] == ["log"]


def test_the_toy_sinks_check_shows_in_preflight_and_check_config(toy, tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text(f"log:\n  path: {tmp_path / '.toy'}\n")
    expected = f"log.path: got {str(tmp_path / '.toy')!r}, expected a name before .toy (the toy output's file)"
    with pytest.raises(ConfigError) as err:
        preflight.check(config_mod.load(str(path)))
    assert expected in err.value.problems
    assert cmd_check_config(argparse.Namespace(path=str(path))) == EXIT_CONFIG
    assert expected in capsys.readouterr().err
    unregister("toy")
    assert "toy" not in [p.key for p in SINKS]
    assert cmd_check_config(argparse.Namespace(path=str(path))) == 0  # without the toy, nothing refuses it
    assert expected not in capsys.readouterr().err


def test_check_config_asks_the_mqtt_output_and_says_each_problem_in_one_line(tmp_path, capsys):
    # Before the outputs had their own check, preflight called a helper the MQTT module no longer had:
    # check-config died with a traceback on every config with mqtt.enabled.
    path = tmp_path / "config.yaml"
    path.write_text(f"mqtt:\n  enabled: true\n  username: cam\n  password_file: {tmp_path / 'missing'}\n"
                    f"  tls: true\n  ca_file: {tmp_path / 'ca.pem'}\n")
    assert cmd_check_config(argparse.Namespace(path=str(path))) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "mqtt.password_file" in err and str(tmp_path / "missing") in err
    assert f"mqtt.ca_file: cannot load {str(tmp_path / 'ca.pem')!r}" in err
    assert "Traceback" not in err

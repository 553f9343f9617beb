"""A backend is one module plus one registration (issue 22): a toy one, registered here, shows up everywhere.

``--backend`` choices, config validation, the model registry file's check,
``edgecam doctor``, ``auto``'s choice with its readiness check, the loading of
a model, and the service's drop-in all come from the registered modules; no
other file names the toy. It is un-registered after each test.
"""

from __future__ import annotations

import sys

import pytest
import yaml

from edgecam import cli, registry
from edgecam.config import backends as backend_names
from edgecam.config import schema
from edgecam.errors import ConfigError, RegistryError
from edgecam.model import backends
from edgecam.model.backends import unit
from tests.fakes.machine import Machine
from tests.model.backends import toy_backend

SHA = "0" * 64


@pytest.fixture
def toy():
    """The toy backend registered, for this test only."""
    assert "toy" not in backend_names.names()
    backends.register(toy_backend)
    try:
        yield toy_backend.BACKEND
    finally:
        backends.unregister("toy")
    assert "toy" not in backend_names.choices()


@pytest.fixture
def library(tmp_path, monkeypatch):
    lib = tmp_path / "libtoy.so"
    lib.write_bytes(b"")
    monkeypatch.setenv(toy_backend.ENV_LIBRARY, str(lib))
    return lib


@pytest.fixture
def toy_registry(tmp_path, monkeypatch):
    """A registry with a CPU model and its toy build (a checksum known: ready to fetch)."""
    def entry(file, **kw):
        return {"description": "test model", "url": f"https://example.org/{file}", "file": file, "sha256": SHA,
                "labels_url": "https://example.org/labels.txt", "labels_sha256": SHA, "input_size": 224, **kw}

    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"models": {"plain": entry("plain.tflite"),
                                               "plain_toy": entry("plain.toy", backend="toy", cpu_twin="plain")}}))
    monkeypatch.setenv(registry.ENV_REGISTRY, str(path))
    return path


def test_the_toy_is_a_backend_choice_on_the_command_line(toy):
    args = cli.build_parser().parse_args(["classify", "--backend", "toy", "x.jpg"])
    assert args.backend == "toy"
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["classify", "--backend", "nope", "x.jpg"])
    assert cli.build_parser().parse_args(["doctor", "--backend", "toy"]).backend == "toy"


def test_config_accepts_the_toy_and_still_rejects_an_unknown_name_with_the_list(toy):
    assert schema.from_dict({"model": {"backend": "toy"}}).model.backend == "toy"
    with pytest.raises(ConfigError) as e:
        schema.from_dict({"model": {"backend": "nope"}})
    assert e.value.message.endswith(
        "model.backend: got 'nope', expected one of 'auto' | 'cpu' | 'edgetpu' | 'imx500' | 'hailo' | 'toy'")


def test_the_registry_file_may_hold_toy_builds(toy, toy_registry):
    assert registry.load_registry()["plain_toy"].backend == "toy"


def test_without_the_registration_the_toy_is_unknown(toy_registry):
    with pytest.raises(ConfigError) as e:
        schema.from_dict({"model": {"backend": "toy"}})
    assert e.value.message.endswith("expected one of 'auto' | 'cpu' | 'edgetpu' | 'imx500' | 'hailo'")
    with pytest.raises(RegistryError, match="backend must be one of cpu, edgetpu, imx500, hailo$"):
        registry.load_registry()


def test_doctor_says_the_toys_state_and_exits_with_its_code(toy, library, capsys):
    args = cli.build_parser().parse_args(["doctor", "--backend", "toy"])
    code = args.func(args)  # cli.main's command, without its logging set-up (pytest's stays)
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert list(lines) == ["cpu", "edgetpu", "imx500", "hailo", "toy", "board"]
    assert lines["toy"] == "no toy accelerator found (no /dev/toy0): plug it in"  # this machine has none
    assert code == 3


def test_auto_picks_the_toy_build_when_its_device_is_there_and_ready(toy, toy_registry, library, tmp_path):
    machine = Machine(tmp_path / "root")
    machine.add_hailo()  # found too, but the toy's auto_rank (0) comes first
    (machine.root / "dev" / "toy0").write_bytes(b"")
    cfg = schema.ModelConfig(name="plain", dir=str(tmp_path / "models"))
    assert [d.backend for d in backends.find_devices(machine.root)] == ["toy", "hailo"]
    choice = backends.choose(cfg, root=machine.root)
    assert (choice.backend, choice.model.name) == ("toy", "plain_toy")
    assert choice.note == "backend auto: Toy accelerator (toy0): running plain_toy, its build of plain"


def test_auto_stays_on_the_cpu_when_the_toy_is_not_ready_and_says_why(toy, toy_registry, tmp_path):
    machine = Machine(tmp_path / "root")
    (machine.root / "dev" / "toy0").write_bytes(b"")
    choice = backends.choose(schema.ModelConfig(name="plain"), root=machine.root)
    assert choice.backend == "cpu"
    assert choice.note == ("backend auto: the CPU (Toy accelerator (toy0) found, but libtoy is not installed "
                           "(see edgecam doctor))")


def test_a_model_asked_on_the_toy_loads_with_the_toys_load(toy, toy_registry, library):
    clf = backends.load_classifier(schema.ModelConfig(name="plain", backend="toy"))
    assert (type(clf), clf.name) == (toy_backend.ToyClassifier, "plain_toy")
    assert backends.built_for("net.toy", {}) == "toy"  # a file by its suffix
    with pytest.raises(ConfigError, match="model.backend: toy, but model mobilenet_v1 has no build for a toy "
                                          "accelerator; models that run there: plain_toy"):
        backends.choose(schema.ModelConfig(name="mobilenet_v1", backend="toy"))


def test_the_service_dropin_gives_the_toy_its_device_and_group(toy, tmp_path):
    text, notes = unit.dropin("toy", group_exists=lambda name: True)
    assert text.splitlines()[2:] == ["[Service]", "# Toy accelerator", "DeviceAllow=/dev/toy0 rw",
                                     "SupplementaryGroups=toy"]
    assert unit.dropin("toy", group_exists=lambda name: False)[1] == [
        "note: no group toy on this system (its package's udev rule makes it); left out of the accelerator drop-in"]
    machine = Machine(tmp_path / "root")
    (machine.root / "dev" / "toy1").write_bytes(b"")
    machine.add_hailo()
    text, _ = unit.dropin("auto", machine.root, group_exists=lambda name: True)
    assert "DeviceAllow=/dev/toy1 rw" in text and "DeviceAllow=/dev/hailo0 rw" in text
    assert text.rstrip().endswith("SupplementaryGroups=toy")


def test_registering_a_second_module_under_a_taken_name_is_refused(toy):
    clash = type(sys)("clash")
    clash.BACKEND = toy_backend.BACKEND
    with pytest.raises(ValueError, match="backend 'toy' is already declared by tests.model.backends.toy_backend"):
        backends.register(clash)

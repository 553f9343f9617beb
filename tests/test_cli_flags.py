"""Every flag explains itself, and the flags for what people turn on most (issue 21)."""

from __future__ import annotations

import argparse

import pytest

from edgecam.config import schema as config_mod
from edgecam.cli import build_parser
from edgecam.commands import load_config
from edgecam.commands.run import run_overrides
from edgecam.errors import ConfigError


def parsers(parser: argparse.ArgumentParser, path: str = "edgecam"):
    """(command path, parser) for the parser and every subcommand under it, at any depth."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, f"{path} {name}")


def test_every_option_of_every_command_has_help_text():
    seen, missing = 0, []
    for path, parser in parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            seen += 1
            if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert seen > 100, seen  # every command was walked, not only the top
    assert missing == [], f"options without help text: {missing}"


def run_args(*argv: str):
    args = build_parser().parse_args(["run", *argv])
    return load_config(argparse.Namespace(config=None), run_overrides(args))


@pytest.fixture(autouse=True)
def no_user_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EDGECAM_CONFIG", str(tmp_path / "none.yaml"))
    monkeypatch.setattr(config_mod, "find_default", lambda: None)


@pytest.mark.parametrize("flag, value, host, port", [
    ("--http", "8080", "127.0.0.1", 8080),
    ("--http", "0.0.0.0:9000", "0.0.0.0", 9000),
    ("--http", "[::1]:8081", "::1", 8081),
    ("--http", "0", "127.0.0.1", 0),
    ("--mqtt", "localhost", "localhost", 1883),
    ("--mqtt", "broker.lan:1884", "broker.lan", 1884),
    ("--mqtt", "192.168.1.5", "192.168.1.5", 1883),
])
def test_http_and_mqtt_flags_turn_their_output_on_without_a_config(flag, value, host, port):
    section = flag[2:]
    on = getattr(run_args(flag, value), section)
    assert (on.enabled, on.host, on.port) == (True, host, port)
    assert getattr(run_args(), section).enabled is False


@pytest.mark.parametrize("flag, value", [
    ("--http", "web"), ("--http", "host:"), ("--http", "70000"), ("--http", ":80x"),
    ("--mqtt", "broker:port"), ("--mqtt", ""), ("--mqtt", "broker:99999"),
])
def test_a_bad_host_or_port_is_one_line_naming_the_flag(flag, value):
    with pytest.raises(ConfigError) as exc:
        run_args(flag, value)
    msg = str(exc.value)
    assert msg.startswith(f"bad flag: {flag}: got {value!r}, expected") and "e.g." in msg and "\n" not in msg


def test_eval_without_images_prints_the_command_that_works(cli, model_env, shared_dir):
    # issue 21: this printed example said only "--images required"
    proc = cli(["eval", "--model", "mobilenet_v3_small", "--compare", "model=mobilenet_v2"], env=model_env)
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("edgecam: --images is missing") and "Traceback" not in line
    suggested = line.split("e.g.: ", 1)[1].split(" (expected.csv", 1)[0]
    import shlex

    argv = shlex.split(suggested.replace("PHOTOS", str(shared_dir / "images" / "imagenet-sample")))
    assert argv[:2] == ["edgecam", "eval"]
    done = cli(argv[1:], env=model_env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("A  ") and "B  " in done.stdout

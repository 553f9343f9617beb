"""``check-config`` and ``run`` give the same verdict on class names (issue 24, item 13): both accept a label's
first name (``hook`` for ``hook, claw``), as the events' rules always did, both refuse a name that is no class
or a first name several labels share (with the candidates listed). Table-driven, on the real model."""

from __future__ import annotations

import pytest

from edgecam.errors import EXIT_CONFIG
from tests.conftest import run_cli

REGION = "regions:\n  - {name: door, box: [0, 0, 1, 1]%s}\n"
TABLE = [
    # (config, problem or None)
    ("model: {allow: [hook]}\n", None),
    ("model: {allow: ['hook, claw'], deny: [tabby], thresholds: {hook: 0.2}}\n", None),
    ("model: {allow: [hookz]}\n", "model.allow: 'hookz' is not a class of mobilenet_v3_small"),
    ("model: {thresholds: {claw: 0.5}}\n", "model.thresholds: 'claw' is not a class of mobilenet_v3_small"),
    ("model: {allow: [crane]}\n", None),  # ImageNet has two labels 'crane': both
    (REGION % ", allow: [hook]", None),
    (REGION % ", allow: [hookz]", "regions[0].allow: 'hookz' is not a class of mobilenet_v3_small"),
    (REGION % "" + "events:\n  rules:\n    - {name: r, region: door, label: hook}\n", None),
    (REGION % "" + "events:\n  rules:\n    - {name: r, region: door, label: hookz}\n",
     "events.rules[0]: 'hookz' is not one of region door's states"),
    (REGION % ", labels: [open, closed]" + "events:\n  rules:\n    - {name: r, region: door, label: open}\n", None),
    (REGION % ", labels: [open, closed]" + "events:\n  rules:\n    - {name: r, region: door, label: ajar}\n",
     "events.rules[0]: 'ajar' is not one of region door's states (closed, open, unknown)"),
    ("events:\n  rules:\n    - {name: r, label: hook}\n", None),
    ("events:\n  rules:\n    - {name: r, label: hookz}\n", "events.rules[0]: 'hookz' is not one of the model's labels"),
]


@pytest.fixture
def photos(shared_dir, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.bmp").write_bytes((shared_dir / "images" / "cat.bmp").read_bytes())
    return folder


def verdicts(text: str, tmp_path, photos, env) -> list[tuple[int, str]]:
    config = tmp_path / "config.yaml"
    config.write_text(text + f"events:\n  dir: {tmp_path / 'events'}\n" * ("events:" not in text)
                      + (f"  dir: {tmp_path / 'events'}\n" if "events:" in text else ""))
    check = run_cli(["check-config", str(config)], env=env)
    run = run_cli(["run", "--config", str(config), "--source", str(photos), "--display", "none"], env=env)
    return [(check.returncode, check.stderr), (run.returncode, run.stderr)]


@pytest.mark.parametrize("text,problem", TABLE)
def test_check_config_and_run_agree(text, problem, tmp_path, photos, model_env):
    (check, check_err), (run, run_err) = verdicts(text, tmp_path, photos, model_env)
    if problem is None:
        assert (check, run) == (0, 0), (check_err, run_err[-1500:])
    else:
        assert (check, run) == (EXIT_CONFIG, EXIT_CONFIG), (check_err, run_err[-1500:])
        assert problem in check_err and problem in run_err, (check_err, run_err[-1500:])


def test_a_first_name_two_labels_share_is_refused_by_both_with_the_candidates(tmp_path, photos, model_env,
                                                                               labels):
    doubled = list(labels)
    doubled[1] = "hook, tench"  # now two labels are 'hook, ...'
    path = tmp_path / "labels.txt"
    path.write_text("\n".join(doubled) + "\n")
    text = f"model: {{labels: {path}, allow: [hook]}}\n"
    (check, check_err), (run, run_err) = verdicts(text, tmp_path, photos, model_env)
    assert (check, run) == (EXIT_CONFIG, EXIT_CONFIG), (check_err, run_err[-1500:])
    problem = ("model.allow: 'hook' is the first name of 2 labels of mobilenet_v3_small ('hook, tench'; 'hook, claw'); "
               "name the whole label")
    assert problem in check_err and problem in run_err


@pytest.mark.parametrize("inside", ["events/media", "events/media/garage", "events/../events/media/x"])
def test_examples_inside_the_events_media_are_refused_by_both(tmp_path, photos, model_env, inside):
    """Issue 24 (doubtful): the history's repair deleted such examples at every start; now one line, exit 2."""
    text = f"examples_dir: {tmp_path / inside}\nevents:\n  rules:\n    - {{name: r, label: hook}}\n"
    (check, check_err), (run, run_err) = verdicts(text, tmp_path, photos, model_env)
    assert (check, run) == (EXIT_CONFIG, EXIT_CONFIG), (check_err, run_err[-1500:])
    problem = f"is inside the events' media folder {tmp_path / 'events' / 'media'}"
    assert problem in check_err and problem in run_err
    assert "Traceback" not in run_err


def test_examples_beside_the_events_are_fine(tmp_path, photos, model_env):
    text = f"examples_dir: {tmp_path / 'events' / 'examples'}\nevents:\n  rules:\n    - {{name: r, label: hook}}\n"
    assert [v[0] for v in verdicts(text, tmp_path, photos, model_env)] == [0, 0]

"""``edgecam learn`` on generated scenes of real photos: the figures of issue 13 (held-out accuracy
from 10 examples per state), what it stores, ``--model NAME`` in classify and eval, and bad input."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from edgecam import cli
from edgecam.model import custom_models
from edgecam.model.classifier import load_classifier
from edgecam.config.schema import ModelConfig
from edgecam.errors import EXIT_CONFIG, EXIT_MODEL
from tests.scenes import OTHERS, Scene, write_examples


@pytest.fixture(scope="module")
def scene(shared_dir):
    return Scene(shared_dir / "images" / "imagenet-sample")


@pytest.fixture
def models(model_cache, tmp_path, monkeypatch):
    """A model folder of this test's own (the learned file goes there), holding the registry models."""
    folder = tmp_path / "models"
    shutil.copytree(model_cache, folder)
    monkeypatch.setenv("EDGECAM_MODEL_DIR", str(folder))
    monkeypatch.delenv("EDGECAM_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return folder


def command(argv: list[str]) -> int:
    """Run a subcommand in this process as the CLI does, without its logging set-up (which would
    outlive the test) and with the one-line error it prints for an EdgecamError."""
    import sys

    from edgecam.errors import EdgecamError

    args = cli.build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EdgecamError as e:
        print(f"edgecam: {e.message}", file=sys.stderr)
        return e.exit_code


def learn(capsys, *args) -> tuple[int, str, str]:
    code = command(["learn", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_ten_examples_per_state_recognise_a_hundred_others(scene, models, tmp_path, capsys):
    """Issue 13's figure: >= 0.95 held-out accuracy for 3 states with 10 examples each."""
    write_examples(scene, tmp_path / "ex", per_state=10, seed=1)
    code, out, err = learn(capsys, str(tmp_path / "ex"), "--name", "garage")
    assert code == 0, err
    assert "3 states (empty 10, scooter 10, tricycle 10 examples)" in out
    assert "cross-validated accuracy (5-fold, 30 examples)" in out and "95% CI" in out
    assert "true \\ predicted" in out
    clf = load_classifier(ModelConfig(name="garage"))
    assert clf.labels == ("empty", "scooter", "tricycle") and clf.preprocessor.crop == "stretch"
    rng = np.random.default_rng(2)  # other frames than the examples'
    right = total = 0
    for _ in range(34):
        for state in scene.states:
            result = clf.classify(scene.crop(scene.frame(state, rng)))
            right += result.top.name == state
            total += 1
            assert result.extra["unknown"] is False or result.top.name != state
    assert total == 102 and right / total >= 0.95
    # A kind of picture it was never shown is far from every state.
    unknown = sum(clf.classify(scene.crop(scene.frame(o, rng))).extra["unknown"] for o in OTHERS for _ in range(5))
    assert unknown >= 12


def test_what_is_stored(scene, models, tmp_path, capsys):
    write_examples(scene, tmp_path / "ex", per_state=6, seed=3)
    code, out, err = learn(capsys, str(tmp_path / "ex"), "--name", "bins", "--base", "mobilenet_v1_0.25_128",
                           "--method", "ncm", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["path"] == str(models / "bins.head.npz")
    assert report["embedding_size"] == 256 and report["method"] == "ncm"
    assert report["cv"]["n"] == 18 and len(report["cv"]["confusion"]) == 3
    assert report["total_s"] > 0
    model = custom_models.load(models / "bins.head.npz")
    assert model.base == "mobilenet_v1_0.25_128" and model.examples == {"empty": 6, "scooter": 6, "tricycle": 6}
    assert model.base_sha256 == "cb273c23ee76374b05b9583177e28aa19744858a7679c56a250e83d0333da785"
    assert 0 < model.head.unknown_distance < 2 and model.crop == "stretch"


def test_learning_again_replaces_the_head_and_eval_reads_the_folder_layout(scene, models, tmp_path, capsys):
    write_examples(scene, tmp_path / "ex", per_state=5, seed=4)
    assert learn(capsys, str(tmp_path / "ex"), "--name", "garage")[0] == 0
    shutil.rmtree(tmp_path / "ex" / "tricycle")
    code, out, err = learn(capsys, str(tmp_path / "ex"), "--name", "garage")  # issue 24: never silently replaced
    assert code == EXIT_MODEL and "a custom model of that name exists" in err and "--force" in err
    assert len(err.strip().splitlines()) == 1
    assert learn(capsys, str(tmp_path / "ex"), "--name", "garage", "--force")[0] == 0
    assert load_classifier(ModelConfig(name="garage")).labels == ("empty", "scooter")
    previous = custom_models.load(models / "garage.head.npz.previous")  # the replaced one is kept
    assert previous.labels == ("empty", "scooter", "tricycle")
    assert [p.name for p in custom_models.list_models(models)] == ["garage.head.npz"]
    write_examples(scene, tmp_path / "test", per_state=8, seed=5)
    shutil.rmtree(tmp_path / "test" / "tricycle")
    assert command(["eval", "--images", str(tmp_path / "test"), "--model", "garage", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "garage" and result["crop"] == "stretch" and result["n"] == 16
    assert result["top1"] >= 0.9


def test_classify_names_the_custom_model(scene, models, tmp_path, capsys):
    write_examples(scene, tmp_path / "ex", per_state=5, seed=6)
    assert learn(capsys, str(tmp_path / "ex"), "--name", "garage")[0] == 0
    photo = tmp_path / "one.png"
    cv2.imwrite(str(photo), scene.crop(scene.frame("scooter", np.random.default_rng(7))))
    assert command(["classify", str(photo), "--model", "garage", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["model"] == "garage" and out[0]["top_k"][0]["label"] == "scooter"


@pytest.mark.parametrize("layout,message", [
    ({"open": 3}, "only one state"),
    ({"open": 3, "closed": 1}, "too few examples of closed (1)"),
    ({}, "no class subfolders"),
])
def test_bad_example_folders_are_one_line(models, tmp_path, capsys, layout, message):
    root = tmp_path / "ex"
    root.mkdir()
    for label, n in layout.items():
        (root / label).mkdir()
        for i in range(n):
            cv2.imwrite(str(root / label / f"{i}.png"), np.full((40, 40, 3), 40 * i, np.uint8))
    code, out, err = learn(capsys, str(root), "--name", "garage")
    assert code == EXIT_CONFIG and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("content", [b"", b"not a picture"])
def test_a_folder_of_unreadable_pictures_is_one_line(models, tmp_path, capsys, content):
    """Issue 24, item 10: 0-byte (or damaged) pictures: one line naming the folder and why, not a ValueError."""
    root = tmp_path / "ex"
    for label in ("open", "closed"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            (root / label / f"{i}.png").write_bytes(content)
    code, out, err = learn(capsys, str(root), "--name", "garage")
    assert code == EXIT_CONFIG, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"edgecam: {root}: none of its pictures can be read (first: {root}/closed/0.png: ")
    assert ("empty file (0 bytes)" if not content else "not a picture OpenCV can decode") in last
    assert "unexpected" not in err


def test_a_state_losing_its_examples_to_unreadable_pictures_is_one_line(models, tmp_path, capsys):
    root = tmp_path / "ex"
    for label in ("open", "closed"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(root / label / f"{i}.png"), np.full((40, 40, 3), 40 * i, np.uint8))
    for i in range(2):
        (root / "open" / f"{i}.png").write_bytes(b"")
    code, out, err = learn(capsys, str(root), "--name", "garage")
    assert code == EXIT_CONFIG
    assert "too few readable pictures of open (1 of 3)" in err.strip().splitlines()[-1]


@pytest.mark.parametrize("folder", ["=cmd", "-rf", " open"])
def test_a_subfolder_that_cannot_name_a_state_is_one_line(models, tmp_path, capsys, folder):
    root = tmp_path / "ex"
    for label in (folder, "closed"):
        (root / label).mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(root / label / f"{i}.png"), np.full((40, 40, 3), 40 * i, np.uint8))
    code, out, err = learn(capsys, str(root), "--name", "garage")
    assert code == EXIT_CONFIG and f"the subfolder '{folder}' cannot name a state" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args,message", [
    (["--name", "mobilenet_v2"], "a registry model's name"),
    (["--name", "../x"], "may only use letters"),
    (["--name", "g", "--base", "resnet"], "not a registry model"),
])
def test_bad_names_are_one_line(models, tmp_path, capsys, args, message):
    (tmp_path / "ex").mkdir()
    code, out, err = learn(capsys, str(tmp_path / "ex"), *args)
    assert code == EXIT_MODEL and message in err


def test_a_head_learned_on_another_base_file_is_refused(scene, models, tmp_path, capsys):
    write_examples(scene, tmp_path / "ex", per_state=3, seed=8)
    assert learn(capsys, str(tmp_path / "ex"), "--name", "garage", "--base", "mobilenet_v1_0.25_128")[0] == 0
    model = custom_models.load(models / "garage.head.npz")
    model.base_sha256 = "0" * 64
    custom_models.save(model, models)
    assert command(["classify", str(next((tmp_path / "ex" / "empty").iterdir())), "--model", "garage"]) == EXIT_MODEL
    assert "learned on another file of mobilenet_v1_0.25_128" in capsys.readouterr().err


def test_a_damaged_head_file_is_one_line(models, tmp_path, capsys):
    (models / "garage.head.npz").write_bytes(b"not an npz")
    assert command(["classify", str(tmp_path), "--model", "garage"]) == EXIT_MODEL
    assert "cannot read it" in capsys.readouterr().err


def test_models_list_and_verify_show_custom_models(scene, models, tmp_path, capsys):
    write_examples(scene, tmp_path / "ex", per_state=3, seed=9)
    assert learn(capsys, str(tmp_path / "ex"), "--name", "garage")[0] == 0
    assert command(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "custom models (edgecam learn):" in out
    assert "garage  ok  3 states (empty, scooter, tricycle) on mobilenet_v3_small, logreg" in out
    assert command(["models", "verify"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("garage"))
    assert line.split()[1] == "ok"
    model = custom_models.load(models / "garage.head.npz")
    model.base_sha256 = "1" * 64
    custom_models.save(model, models)
    assert command(["models", "verify"]) == EXIT_MODEL
    out = capsys.readouterr()
    assert "learned on another file of mobilenet_v3_small" in out.out and "(garage)" in out.err


def test_check_config_checks_the_models_of_the_regions(scene, models, tmp_path, capsys):
    write_examples(scene, tmp_path / "ex", per_state=3, seed=10)
    assert learn(capsys, str(tmp_path / "ex"), "--name", "garage")[0] == 0
    good = tmp_path / "good.yaml"
    good.write_text("regions:\n  - {name: garage, box: [0.5, 0.3, 0.95, 0.95], model: garage}\n"
                    "  - {name: scene, box: [0, 0, 1, 1]}\n")
    assert command(["check-config", str(good)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("regions:\n  - {name: garage, box: [0.5, 0.3, 0.95, 0.95], model: garage}\n"
                   "  - {name: bins, box: [0, 0, 0.3, 0.3], model: binz}\n")
    assert command(["check-config", str(bad)]) == 2  # check-config: 2 for an invalid config (as run)
    err = capsys.readouterr().err
    assert "unknown model 'binz'" in err and "garage" not in err.split("unknown model")[0].split(":")[-1]


def test_many_states_with_logreg_get_a_note_on_the_time(scene, models, tmp_path, capsys, monkeypatch):
    """Issue 24: 1,000 states took 189 s without a word; past SLOW_LOGREG_STATES a note says so (here: 2)."""
    from edgecam.commands import learn as learn_mod

    write_examples(scene, tmp_path / "ex", per_state=2, seed=11)
    monkeypatch.setattr(learn_mod, "SLOW_LOGREG_STATES", 2)
    code, out, err = learn(capsys, str(tmp_path / "ex"), "--name", "many")
    assert code == 0 and "3 states: --method logreg takes minutes here; --method ncm takes about a second" in err
    code, out, err = learn(capsys, str(tmp_path / "ex"), "--name", "many2", "--method", "ncm")
    assert code == 0 and "takes minutes" not in err

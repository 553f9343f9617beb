"""Names that become paths, topics or metric labels (issue 24, item 5): one validator, used by the config
(check-config and run refuse the same), by ``collect --label`` and at the write itself."""

from __future__ import annotations

import numpy as np
import pytest

from edgecam.config import schema as config_mod
from edgecam.errors import ConfigError, OutputError
from edgecam.names import identifier_problem, label_problem

GOOD_LABELS = ["open", "tabby, tabby cat", "potter's wheel", "Larus glaucescens × occidentalis (Olympic Gull)",
               "T-shirt", "3 cars", "x" * 200, "a\\xd7b"]
BAD_LABELS = ["", "../x", "..", ".hidden", "a/b", "open\n", "a\tb", " open", "open ", "=1+1", "+1", "-rf",
              "@SUM(A1)", "bell\x07", "\udcff", "x" * 201, "é" * 128]


@pytest.mark.parametrize("value", GOOD_LABELS)
def test_good_labels(value):
    assert label_problem(value) is None


@pytest.mark.parametrize("value", BAD_LABELS)
def test_bad_labels(value):
    assert label_problem(value) is not None


def test_every_label_of_the_shipped_models_is_a_good_label(shared_dir):
    for name in ("imagenet_labels.txt", "inat_bird_labels.txt"):
        labels = (shared_dir / "models" / name).read_text(encoding="utf-8").splitlines()
        assert [x for x in labels if label_problem(x)] == []


@pytest.mark.parametrize("value,ok", [("garage", True), ("door_2-left", True), ("a b", False), ("../x", False),
                                      ("-x", False), ("x" * 65, False), ("é", False)])
def test_identifiers(value, ok):
    assert (identifier_problem(value) is None) == ok


def _config(text: str):
    return config_mod.from_dict(__import__("yaml").safe_load(text))


@pytest.mark.parametrize("text,problem", [
    ("regions:\n  - {name: door, box: [0, 0, 1, 1], labels: [open, '../../../x']}\n",
     "regions[0].labels: got ['open', '../../../x'], expected a label that can be a folder name"),
    ("regions:\n  - {name: door, box: [0, 0, 1, 1], labels: [open, \"a\\nb\"]}\n",
     "regions[0].labels: got ['open', 'a\\nb'], expected a label that can be a folder name"),
    ("regions:\n  - {name: door, box: [0, 0, 1, 1], labels: [open, open]}\n",
     "regions[0].labels: got ['open', 'open'], expected distinct labels"),
    ("events:\n  rules:\n    - {name: r, label: '../../../x', collect: true}\n",
     "events.rules[0].label: got '../../../x', expected a label that can be a folder name"),
    ("events:\n  rules:\n    - {name: r, labels: [cat, '=cmd|calc'], collect: true}\n",
     "events.rules[0].labels[1]: got '=cmd|calc', expected a label that can be a folder name"),
])
def test_the_config_refuses_labels_that_would_become_paths(text, problem):
    with pytest.raises(ConfigError) as e:
        _config(text)
    assert any(p.startswith(problem) for p in e.value.problems), e.value.problems


def test_a_rule_that_collects_nothing_may_name_any_label():
    cfg = _config("events:\n  rules:\n    - {name: r, label: '../x'}\n")
    assert cfg.events.rules[0].label == "../x"  # matched against the model's labels, never a path


def test_the_write_refuses_a_label_that_would_leave_the_folder(tmp_path):
    """Defence in depth: a label from a model's labels file (a region without labels:) reaches the write."""
    from edgecam.outputs.base import RegionInfo
    from edgecam.outputs.teach import Teacher, example_folder

    with pytest.raises(OutputError, match=r"'\.\./\.\./x' cannot name a folder"):
        example_folder(tmp_path / "ex", "door", "../../x")
    teacher = Teacher([RegionInfo("door", (0.0, 0.0, 1.0, 1.0), ("open", "../../x"))], tmp_path / "ex")
    teacher.on_frame(np.zeros((32, 32, 3), np.uint8), 1.0)
    with pytest.raises(KeyError, match="that can name a folder"):
        teacher.save("door", "../../x")
    assert teacher.save("door", "open")[1] == 1
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_dir()) == ["door", "ex", "open"]


def test_a_region_with_the_models_classes_lists_no_buttons(tmp_path):
    """Issue 24 (doubtful): /api/regions listed every region's 1,001 classes (26 MB with 500 regions)."""
    import json

    from edgecam.outputs.base import RegionInfo
    from edgecam.outputs.teach import MAX_BUTTONS, Teacher

    classes = tuple(f"class {i}" for i in range(1001))
    teacher = Teacher([RegionInfo("scene", (0.0, 0.0, 1.0, 1.0), classes),
                       RegionInfo("door", (0.0, 0.0, 0.5, 0.5), ("open", "closed"))], tmp_path / "ex")
    teacher.on_frame(np.zeros((32, 32, 3), np.uint8), 1.0)
    teacher.save("door", "open")
    assert teacher.describe() == [
        {"name": "scene", "labels": [], "states": 1001, "examples": {}},
        {"name": "door", "labels": ["open", "closed"], "states": 2, "examples": {"open": 1, "closed": 0}}]
    assert len(json.dumps(teacher.describe())) < 200 and MAX_BUTTONS == 64
    assert teacher.save("scene", "class 7")[1] == 1  # still taught by name (POST /api/examples)


def test_more_than_64_regions_are_refused():
    box = "box: [0, 0, 0.5, 0.5]"
    many = "regions:\n" + "".join(f"  - {{name: r{i}, {box}}}\n" for i in range(65))
    with pytest.raises(ConfigError) as e:
        _config(many)
    assert e.value.problems[0].startswith("regions: 65 regions, expected at most 64")
    assert len(_config("regions:\n" + "".join(f"  - {{name: r{i}, {box}}}\n" for i in range(64))).regions) == 64

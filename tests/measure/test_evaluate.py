"""Photo sets (CSV and class folders), label matching, evaluation and paired comparison."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from edgecam.measure.evaluate import (
    EvalError,
    EvalResult,
    compare,
    evaluate,
    load_csv,
    load_folders,
    load_photos,
    match_label,
    parse_compare,
)
from edgecam.result import Classification
from edgecam.measure.significance import mcnemar

LABELS = ["background", "tabby, tabby cat", "Egyptian cat", "crane", "crane", "maillot", "maillot, tank suit",
          "Aramus guarauna (Limpkin)", "water ouzel, dipper"]


# -- label matching ---------------------------------------------------------------------

@pytest.mark.parametrize("name, index", [
    ("tabby, tabby cat", 1),          # the whole label
    ("tabby", 1),                     # its first name
    ("tabby cat", 1),                 # another of its names
    ("Tabby_Cat", 1),                 # case, _ and - do not matter
    ("egyptian-cat", 2),
    ("maillot", 5),                   # a whole label beats a first name
    ("tank suit", 6),
    ("Limpkin", 7),                   # iNaturalist style: the common name in brackets
    ("aramus guarauna", 7),
    ("dipper", 8),
    ("3", 3),                         # a class index
    ("4_crane", 4),                   # an index with a name, for labels that repeat
    ("0", 0),
])
def test_match_label(name, index):
    assert match_label(name, LABELS) == index


@pytest.mark.parametrize("name, fragment", [
    ("crane", "matches 2 labels (3 'crane', 4 'crane'); name it by its index, e.g. '3_crane'"),
    ("tabby kat", "is not one of the model's 9 labels (closest: 'tabby, tabby cat')"),
    ("zebra", "is not one of the model's 9 labels"),
    ("9", "index 9 is past the model's 9 labels"),
])
def test_match_label_errors(name, fragment):
    with pytest.raises(EvalError) as info:
        match_label(name, LABELS)
    assert fragment in info.value.message and info.value.exit_code == 2


# -- photo sets -------------------------------------------------------------------------

def write_csv(path: Path, rows: list[dict], fields=("file", "label_index", "label")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(fields))
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in fields})
    return path


def test_csv_targets_by_index_and_by_name(tmp_path):
    csv_path = write_csv(tmp_path / "e.csv", [
        {"file": "a.png", "label_index": 1, "label": "tabby, tabby cat"},
        {"file": "b.png", "label_index": 2, "label": "Egyptian cat"},
    ])
    photos = load_csv(tmp_path, csv_path)
    assert [p.path for p in photos.photos] == [tmp_path / "a.png", tmp_path / "b.png"]
    assert photos.targets(LABELS) == [1, 2]
    # the same CSV for a model without "background": the names decide
    assert photos.targets(LABELS[1:]) == [0, 1]
    # labels that do not have the CSV's classes at all
    with pytest.raises(EvalError, match="e.csv: class 'tabby, tabby cat' is not one of the model's 2 labels"):
        photos.targets(["bird", "fish"])


def test_csv_without_label_column_uses_the_index(tmp_path):
    csv_path = write_csv(tmp_path / "e.csv", [{"file": "a.png", "label_index": 8}], fields=("file", "label_index"))
    photos = load_csv(tmp_path, csv_path)
    assert photos.targets(LABELS) == [8]
    with pytest.raises(EvalError, match=r"label_index 8 \(a.png\) is past the model's 3 labels"):
        photos.targets(LABELS[:3])


@pytest.mark.parametrize("text, fragment", [
    ("name,label\na.png,1\n", "needs the columns file and label_index"),
    ("", "needs the columns file and label_index"),
    ("file,label_index\na.png,cat\n", "line 2: label_index 'cat' is not a class number"),
    ("file,label_index\na.png,-1\n", "line 2: label_index '-1' is not a class number"),
    (None, "cannot read it"),
])
def test_bad_csv(tmp_path, text, fragment):
    path = tmp_path / "e.csv"
    if text is not None:
        path.write_text(text)
    with pytest.raises(EvalError) as info:
        load_csv(tmp_path, path)
    assert fragment in info.value.message and str(path) in info.value.message


def test_folders_one_subfolder_per_class(tmp_path):
    for cls, files in {"tabby cat": ["1.jpg", "2.PNG", ".hidden.jpg", "notes.txt"], "Egyptian_cat": ["3.bmp"],
                       ".git": ["x.jpg"], "empty": []}.items():
        (tmp_path / cls).mkdir()
        for f in files:
            (tmp_path / cls / f).write_bytes(b"x")
    (tmp_path / "loose.jpg").write_bytes(b"x")
    photos = load_folders(tmp_path)
    assert [(p.path.name, p.label) for p in photos.photos] == [
        ("3.bmp", "Egyptian_cat"), ("1.jpg", "tabby cat"), ("2.PNG", "tabby cat")]
    assert photos.targets(LABELS) == [2, 1, 1]
    assert load_photos(tmp_path).photos == photos.photos


def test_folders_errors(tmp_path):
    with pytest.raises(EvalError, match="no class subfolders with photos"):
        load_folders(tmp_path)
    (tmp_path / "a.jpg").write_bytes(b"x")
    with pytest.raises(EvalError, match="1 photo but no class subfolders; put each class's photos in a subfolder"):
        load_folders(tmp_path)
    with pytest.raises(EvalError, match="not a folder"):
        load_folders(tmp_path / "nope")
    (tmp_path / "zebra").mkdir()
    (tmp_path / "zebra" / "z.jpg").write_bytes(b"x")
    with pytest.raises(EvalError, match=r"--images .*: class 'zebra' is not one of the model's 9 labels"):
        load_folders(tmp_path).targets(LABELS)


# -- evaluation with a classifier that reads colours -------------------------------------

COLOURS = ["black", "red", "green", "blue"]


class ColourClassifier:
    """Says which of black/red/green/blue dominates the picture (behavioural stand-in for a model)."""

    runtime = "fake"

    def __init__(self, name="colours", swap=None, labels=COLOURS):
        self.name = name
        self.labels = tuple(labels)
        self.preprocessor = SimpleNamespace(crop="center_fraction", fraction=0.875)
        self.swap = swap or {}  # this setting's mistakes: class -> class it says instead

    def classify(self, image):
        means = image.reshape(-1, 3).mean(axis=0)  # BGR
        scores = np.full(len(COLOURS), 0.02, np.float32)
        best = 0 if means.max() < 50 else 3 - int(np.argmax(means))  # B->blue(3), G->green(2), R->red(1)
        best = self.swap.get(best, best)
        scores[best] = 0.6
        scores[(best + 1) % 4] = 0.3
        return Classification(scores=scores, labels=self.labels, model=self.name)


@pytest.fixture
def colour_photos(tmp_path):
    """Class folders: 3 red, 3 green, 2 blue, 2 black photos, and one unreadable 'photo'."""
    bgr = {"black": (0, 0, 0), "red": (0, 0, 255), "green": (0, 255, 0), "blue": (255, 0, 0)}
    for name, count in [("red", 3), ("green", 3), ("blue", 2), ("black", 2)]:
        (tmp_path / name).mkdir()
        for i in range(count):
            cv2.imwrite(str(tmp_path / name / f"{i}.png"), np.full((20, 30, 3), bgr[name], np.uint8))
    (tmp_path / "red" / "broken.png").write_text("not a picture")
    return load_folders(tmp_path)


def test_evaluate_pairs_settings_photo_by_photo(colour_photos, caplog):
    right = ColourClassifier("right")
    wrong_reds = ColourClassifier("wrong-reds", swap={1: 2})  # calls red green
    with caplog.at_level(logging.WARNING, logger="edgecam.measure.evaluate"):
        a, b = evaluate([right, wrong_reds], colour_photos)
    assert "1 of 11 photos could not be read and were left out" in caplog.text
    assert a.n == b.n == 10 and a.files == b.files
    assert a.accuracy(1) == 1.0 and b.accuracy(1) == pytest.approx(0.7)
    assert b.accuracy(5) == 1.0  # the right answer is still in its top 5 (score 0.02)
    assert a.setting == {"model": "right", "runtime": "fake", "crop": "center_fraction", "crop_fraction": 0.875}
    d = compare(a, b, 1)
    assert d.difference == pytest.approx(-0.3)
    assert len(d.a_only) == 3 and not d.b_only and all("/red/" in f for f in d.a_only)
    assert d.test == mcnemar(3, 0)
    assert compare(a, b, 5).test.discordant == 0
    out = a.to_dict()
    assert out["n"] == 10 and out["top1"] == 1.0 and out["top1_interval"][1] == 1.0
    assert out["top1_interval"][0] == pytest.approx(0.7225, abs=1e-4)  # Wilson 10/10


def test_threshold_counts_a_silent_answer_as_wrong(colour_photos):
    # the right class scores 0.6: shown at threshold 0.5, hidden at 0.7
    shown, hidden = evaluate([ColourClassifier(), ColourClassifier()], colour_photos, [0.5, 0.7])
    assert shown.accuracy(1) == 1.0 and hidden.accuracy(1) == 0.0 and hidden.accuracy(5) == 0.0
    assert hidden.setting["threshold"] == 0.7


def test_evaluate_with_no_readable_photo(tmp_path):
    (tmp_path / "red").mkdir()
    (tmp_path / "red" / "x.png").write_text("nope")
    with pytest.raises(EvalError, match="none of the 1 photos could be read"):
        evaluate([ColourClassifier()], load_folders(tmp_path))


def test_compare_needs_the_same_photos():
    a = EvalResult({"model": "a"}, ["x.jpg"], [True], [True])
    b = EvalResult({"model": "b"}, ["y.jpg"], [True], [True])
    with pytest.raises(ValueError):
        compare(a, b)


def test_difference_verdicts():
    files = [f"{i}.jpg" for i in range(100)]
    a = EvalResult({}, files, [True] * 80 + [False] * 20, [True] * 100)
    b = EvalResult({}, files, [True] * 76 + [False] * 20 + [True] * 4, [True] * 100)
    d = compare(a, b)
    assert (len(d.a_only), len(d.b_only)) == (4, 4) and d.difference == 0.0
    assert "not shown to be real on these photos" in d.verdict()
    assert "no difference" in compare(a, b, 5).verdict()
    c = EvalResult({}, files, [False] * 100, [True] * 100)
    assert "a real difference, A is better" in compare(a, c).verdict()
    assert "a real difference, B is better" in compare(c, a).verdict()


# -- --compare parsing ------------------------------------------------------------------

@pytest.mark.parametrize("text, want", [
    ("crop=square", {"model.crop": "square"}),
    ("model=mobilenet_v2, crop=stretch", {"model.name": "mobilenet_v2", "model.crop": "stretch"}),
    ("crop-fraction=0.9", {"model.crop_fraction": 0.9}),
    ("threshold=0.5,threads=2", {"model.threshold": 0.5, "model.threads": 2}),
    ("threads=auto", {"model.threads": "auto"}),
])
def test_parse_compare(text, want):
    assert parse_compare(text) == want


@pytest.mark.parametrize("text, fragment", [
    ("square", "expected KEY=VALUE[,KEY=VALUE...], got 'square'"),
    ("crop=", "expected KEY=VALUE"),
    ("size=3", "unknown setting 'size'; use one of model, labels, crop"),
    ("threshold=high", "threshold must be a number, got 'high'"),
    ("threads=-1", "threads must be a number or auto"),
    (",", "expected KEY=VALUE, e.g. crop=square"),
])
def test_parse_compare_errors(text, fragment):
    with pytest.raises(EvalError) as info:
        parse_compare(text)
    assert fragment in info.value.message and info.value.message.startswith("--compare ")


# -- the shared ImageNet sample as class folders -------------------------------------------

def test_folder_layout_gives_the_csv_results_on_real_photos(shared_dir, tmp_path):
    from edgecam.model.classifier import load_classifier
    from edgecam.config.schema import ModelConfig

    sample = shared_dir / "images" / "imagenet-sample"
    with open(sample / "expected.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:  # one folder per class, named by the label's first name ("tench")
        folder = tmp_path / "classes" / row["label"].split(",")[0]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / row["file"]).symlink_to(sample / row["file"])
    clf = load_classifier(ModelConfig(name=str(shared_dir / "models" / "v3-small_224_1.0_uint8.tflite"),
                                      labels=str(shared_dir / "models" / "imagenet_labels.txt"), threads=1))
    by_folder = load_folders(tmp_path / "classes")
    by_csv = load_csv(sample, sample / "expected.csv")
    assert sorted(by_folder.targets(clf.labels)) == sorted(int(r["label_index"]) for r in rows)
    (fr,) = evaluate([clf], by_folder)
    (cr,) = evaluate([clf], by_csv)
    assert fr.n == cr.n == 100
    got = dict(zip((Path(f).name for f in fr.files), zip(fr.top1, fr.top5)))
    want = dict(zip((Path(f).name for f in cr.files), zip(cr.top1, cr.top5)))
    assert got == want
    assert 0.6 <= cr.accuracy(1) <= cr.accuracy(5)

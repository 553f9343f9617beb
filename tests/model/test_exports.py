"""Other people's custom models (Teachable Machine, Model Maker) with --model PATH alone: labels as
'0 open' lines or packed in the model's metadata, N classes, uint8/int8/float32 outputs, on real photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgecam.model import exports
from edgecam.model.classifier import load_classifier
from edgecam.config.schema import ModelConfig
from edgecam.errors import ModelError

pytest.importorskip("ai_edge_litert.schema_py_generated", reason="the test models are written with ai-edge-litert's schema")
from tests.tflite_build import IMAGENET, n_class_model, with_metadata  # noqa: E402

CLASSES = list(IMAGENET.values())
NAMES = list(IMAGENET)  # cat, bird, uniform


@pytest.fixture(scope="module")
def photos(shared_dir):
    return {name: cv2.imread(str(shared_dir / "images" / f"{file}.bmp"))
            for name, file in (("cat", "cat"), ("bird", "bird"), ("uniform", "grace_hopper"))}


def check_photos(clf, photos):
    assert clf.labels == tuple(NAMES) and clf.num_classes == 3
    for name, image in photos.items():
        result = clf.classify(image)
        assert result.top.name == name, (name, result.top_k(3))
        assert np.isclose(result.scores.sum(), 1.0, atol=0.02)


@pytest.mark.parametrize("out", ["uint8", "int8", "float32"])
def test_teachable_machine_export_with_numbered_labels(shared_dir, tmp_path, photos, out):
    folder = tmp_path / "converted_tflite"
    folder.mkdir()
    (folder / "model.tflite").write_bytes(n_class_model(shared_dir / "models", CLASSES, out))
    (folder / "labels.txt").write_text("0 cat\n1 bird\n2 uniform\n")
    clf = load_classifier(ModelConfig(name=str(folder / "model.tflite"), threads=1))
    check_photos(clf, photos)


@pytest.mark.parametrize("out", ["uint8", "float32"])
def test_model_maker_export_with_labels_in_its_metadata(shared_dir, tmp_path, photos, out):
    path = tmp_path / "model.tflite"
    path.write_bytes(with_metadata(n_class_model(shared_dir / "models", CLASSES, out), NAMES))
    assert exports.read(path) == exports.Export(NAMES, None, None)
    clf = load_classifier(ModelConfig(name=str(path), threads=1))  # no labels file anywhere
    check_photos(clf, photos)


def test_metadata_labels_win_over_a_stray_labels_file_and_lose_to_an_explicit_one(shared_dir, tmp_path, photos):
    path = tmp_path / "model.tflite"
    path.write_bytes(with_metadata(n_class_model(shared_dir / "models", CLASSES), NAMES))
    (tmp_path / "imagenet_labels.txt").write_text((shared_dir / "models" / "imagenet_labels.txt").read_text())
    assert load_classifier(ModelConfig(name=str(path), threads=1)).labels == tuple(NAMES)
    mine = tmp_path / "mine.txt"
    mine.write_text("kitty\nchickadee\nofficer\n")
    assert load_classifier(ModelConfig(name=str(path), labels=str(mine), threads=1)).labels == \
        ("kitty", "chickadee", "officer")


def test_the_input_normalisation_comes_from_the_metadata(shared_dir, tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(with_metadata(n_class_model(shared_dir / "models", CLASSES), NAMES, mean=0.0, std=255.0))
    assert exports.read(path) == exports.Export(NAMES, 0.0, 255.0)
    clf = load_classifier(ModelConfig(name=str(path), threads=1))
    assert (clf.input_spec.mean, clf.input_spec.std) == (0.0, 255.0)


@pytest.mark.parametrize("lines,expected", [
    (["0 open", "1 closed"], ["open", "closed"]),
    (["0 garage door  open", "1 closed"], ["garage door  open", "closed"]),
    (["1 open", "2 closed"], ["1 open", "2 closed"]),  # not its own index: kept whole
    (["0 open", "closed"], ["0 open", "closed"]),
    (["3D printer", "4x4 truck"], ["3D printer", "4x4 truck"]),
    (["background", "tench, Tinca tinca"], ["background", "tench, Tinca tinca"]),
])
def test_index_labels(lines, expected):
    assert exports.index_labels(lines) == expected


def test_metadata_naming_a_labels_file_that_is_not_packed(shared_dir, tmp_path, photos):
    """A model re-saved without its zip: a labels file beside it is used."""
    path = tmp_path / "model.tflite"
    data = with_metadata(n_class_model(shared_dir / "models", CLASSES), NAMES)
    path.write_bytes(data[:data.rfind(b"PK\x03\x04")])  # the zip cut off
    assert exports.read(path).labels is None
    with pytest.raises(ModelError, match="no labels file for model"):
        load_classifier(ModelConfig(name=str(path), threads=1))
    (tmp_path / "labels.txt").write_text("0 cat\n1 bird\n2 uniform\n")
    check_photos(load_classifier(ModelConfig(name=str(path), threads=1)), photos)


def test_a_registry_model_reads_no_metadata(model_cache):
    clf = load_classifier(ModelConfig(name="mobilenet_v1_0.25_128", dir=str(model_cache), threads=1),
                          fetch_missing=False)
    assert clf.num_classes == 1001 and clf.labels[0] == "background"


def test_the_metadata_of_coral_s_real_mobilenets(shared_dir, labels):
    """Coral's V1 files carry TFLite metadata with their labels packed: read as the labels file says."""
    export = exports.read(shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite")
    assert export.labels == labels and len(labels) == 1001
    assert (export.mean, export.std) == (127.5, 127.5)
    assert exports.read(shared_dir / "models" / "v3-small_224_1.0_uint8.tflite") == exports.Export()

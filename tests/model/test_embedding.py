"""The embedding variant of the real models: the right tensor, identical scores, the cache and its checks."""

from __future__ import annotations

import json
import os
import shutil

import cv2
import numpy as np
import pytest

from edgecam.model import embedding
from edgecam.model.classifier import Classifier
from edgecam.errors import ModelError

# model file -> (input size, embedding size): the pooled features before the class layer
MODELS = {
    "v3-small_224_1.0_uint8.tflite": 1024,
    "mobilenet_v2_1.0_224_quant.tflite": 1280,
    "mobilenet_v1_0.75_192_quant.tflite": 768,
    "mobilenet_v1_0.25_128_quant.tflite": 256,
}


@pytest.fixture
def model_copy(shared_dir, tmp_path):
    def copy(name: str):
        dest = tmp_path / name
        shutil.copy(shared_dir / "models" / name, dest)
        os.chmod(dest, 0o644)
        return dest

    return copy


@pytest.mark.parametrize("name,size", MODELS.items())
def test_the_variant_adds_the_pooled_features_and_keeps_the_scores(model_copy, shared_dir, labels, name, size):
    path = model_copy(name)
    v = embedding.variant(path)
    assert v.path == path.with_name(name + ".features.tflite") and v.path.is_file()
    plain = Classifier(path, labels, threads=1)
    with_features = Classifier(v.path, labels, threads=1, embedding=True)
    image = cv2.imread(str(shared_dir / "images" / "cat.bmp"))
    a, b = plain.classify(image), with_features.classify(image)
    assert np.array_equal(a.scores, b.scores)  # the second output changes nothing of the first
    e = with_features.output_embedding()
    assert e.shape == (size,) and e.dtype == np.float32
    # After the activation (ReLU6 in V1/V2, h-swish in V3, whose minimum is -0.375), not all one value.
    assert e.min() >= -0.375 - 0.03 and e.max() <= 6.03 and e.std() > 0
    # It is the tensor that feeds the class layer: the same photo gives the same vector, another photo another.
    assert np.array_equal(with_features.embed(image), e)
    bird = with_features.embed(cv2.imread(str(shared_dir / "images" / "bird.bmp")))
    cos = float(e @ bird / np.linalg.norm(e) / np.linalg.norm(bird))
    assert cos < 0.9


def test_embeddings_tell_photos_of_one_kind_from_another(model_copy, shared_dir, labels):
    """The features mean something: a cat is closer to itself shifted than to a bird."""
    v = embedding.variant(model_copy("v3-small_224_1.0_uint8.tflite"))
    clf = Classifier(v.path, labels, threads=1, embedding=True)
    cat = cv2.imread(str(shared_dir / "images" / "cat.bmp"))
    bird = cv2.imread(str(shared_dir / "images" / "bird.bmp"))
    e_cat, e_cat2, e_bird = clf.embed(cat), clf.embed(np.roll(cat, 12, axis=1)), clf.embed(bird)

    def cos(x, y):
        return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))

    assert cos(e_cat, e_cat2) > cos(e_cat, e_bird) + 0.2


def test_the_cache_is_used_and_checked(model_copy, caplog):
    path = model_copy("mobilenet_v1_0.25_128_quant.tflite")
    first = embedding.variant(path)
    record = json.loads(path.with_name(path.name + ".features.json").read_text())
    assert record["sha256"] == first.sha256 and record["tensor"] == first.tensor
    mtime = first.path.stat().st_mtime_ns
    again = embedding.variant(path)
    assert again == first and first.path.stat().st_mtime_ns == mtime  # read from the cache, not made again
    # A damaged variant is noticed and made again.
    data = bytearray(first.path.read_bytes())
    data[1000] ^= 0xFF
    first.path.write_bytes(bytes(data))
    caplog.set_level("WARNING")
    fixed = embedding.variant(path)
    assert "does not match its record" in caplog.text
    assert fixed.sha256 == first.sha256 and embedding._sha256_bytes(fixed.path.read_bytes()) == first.sha256


def test_a_new_base_file_makes_a_new_variant(model_copy, shared_dir):
    path = model_copy("mobilenet_v1_0.25_128_quant.tflite")
    first = embedding.variant(path)
    shutil.copy(shared_dir / "models" / "mobilenet_v1_0.5_160_quant.tflite", path)  # the base file changed
    second = embedding.variant(path)
    assert second.sha256 != first.sha256
    assert json.loads(path.with_name(path.name + ".features.json").read_text())["sha256"] == second.sha256


def test_a_folder_it_cannot_write_keeps_the_variant_in_memory(model_copy, labels, monkeypatch):
    # (tests run as root, which writes into read-only folders: the write itself is made to fail)
    def refuse(path, data, *a, **k):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(embedding, "write_atomic", refuse)
    path = model_copy("mobilenet_v1_0.25_128_quant.tflite")
    v = embedding.variant(path)
    assert v.path is None and v.content
    assert not path.with_name(path.name + ".features.tflite").exists()
    clf = Classifier(path, labels, model_content=v.content, embedding=True, threads=1)
    assert clf.embed(np.zeros((128, 128, 3), np.uint8)).shape == (256,)


def test_a_model_without_a_class_layer_has_no_embedding_to_take(shared_dir, tmp_path):
    """The Coral embedding extractor ends in the pool itself: there is no class layer to walk back from."""
    path = tmp_path / "extractor.tflite"
    shutil.copy(shared_dir / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite", path)
    with pytest.raises(ModelError, match="no embedding"):
        embedding.variant(path)


def test_the_extractor_and_the_variant_agree_on_what_is_alike(model_copy, shared_dir):
    """Sanity against a reference: Coral's V1 embedding extractor ranks photo pairs as the variant of V2 does."""
    from ai_edge_litert.interpreter import Interpreter

    photos = [cv2.imread(str(shared_dir / "images" / f"{n}.bmp")) for n in ("cat", "bird", "grace_hopper")]
    photos.append(np.roll(photos[0], 20, axis=0))  # the cat again, moved
    ref = Interpreter(model_path=str(shared_dir / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"))
    ref.allocate_tensors()
    v = embedding.variant(model_copy("mobilenet_v2_1.0_224_quant.tflite"))
    ours = Classifier(v.path, ["x"] * 1001, embedding=True, threads=1, crop="stretch")

    def ref_embed(img):
        x = cv2.cvtColor(cv2.resize(img, (224, 224), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        ref.set_tensor(ref.get_input_details()[0]["index"], x[None])
        ref.invoke()
        return ref.get_tensor(ref.get_output_details()[0]["index"]).reshape(-1).astype(np.float32)

    def nearest(vectors):
        n = [v / np.linalg.norm(v) for v in vectors]
        sims = [float(n[3] @ n[i]) for i in range(3)]
        return int(np.argmax(sims))

    assert nearest([ref_embed(p) for p in photos]) == nearest([ours.embed(p) for p in photos]) == 0

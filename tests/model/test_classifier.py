"""The classifier on the real MobileNets in ../shared: what it reads from the model, what it
says about known photos, that it matches a hand-driven interpreter, accuracy, and bad files."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecam import registry
from edgecam.model.classifier import Classifier, load_classifier
from edgecam.config.schema import ModelConfig
from edgecam.errors import EXIT_MODEL, ModelError
from edgecam.camera.frame import Frame
from edgecam.model.preprocess import crop_box

MODELS = ["mobilenet_v3_small", "mobilenet_v2", "mobilenet_v1", "mobilenet_v1_0.5_160", "mobilenet_v1_0.25_128"]
PHOTOS = ["cat", "bird", "grace_hopper"]


@pytest.fixture(scope="session")
def entries():
    return registry.load_registry()


@pytest.fixture(scope="session")
def classifier(model_cache):
    """classifier(name): each registry model loaded once per session, from the test cache."""
    loaded: dict[str, Classifier] = {}

    def get(name: str) -> Classifier:
        if name not in loaded:
            loaded[name] = load_classifier(ModelConfig(name=name, dir=str(model_cache)), fetch_missing=False)
        return loaded[name]

    return get


@pytest.fixture(scope="session")
def photo(shared_dir):
    cache: dict[str, np.ndarray] = {}

    def get(name: str) -> np.ndarray:
        if name not in cache:
            img = cv2.imread(str(shared_dir / "images" / f"{name}.bmp"), cv2.IMREAD_COLOR)
            assert img is not None, name
            cache[name] = img
        return cache[name]

    return get


def interpreter_for(path: Path, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    return it


# -- what is read from the model ------------------------------------------------

@pytest.mark.parametrize("name", MODELS)
def test_loads_every_model_and_reads_its_shape_from_the_model(classifier, entries, labels, name):
    clf = classifier(name)
    entry = entries[name]
    assert clf.model_path.name == entry.file
    assert clf.name == name and clf.runtime == "litert"
    # the model's own tensors, read here without edgecam
    it = interpreter_for(clf.model_path, 1)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    _, h, w, c = (int(s) for s in inp["shape"])
    assert clf.input_size == (w, h) == (entry.input_size, entry.input_size)
    assert clf.input_spec.dtype is np.dtype(inp["dtype"]).type is np.uint8
    assert (clf.input_spec.scale, clf.input_spec.zero_point) == (pytest.approx(inp["quantization"][0]),
                                                                inp["quantization"][1])
    assert clf.num_classes == int(np.prod(out["shape"])) == len(labels) == 1001
    assert clf.labels[0] == "background" and clf.labels == tuple(labels)


# -- known photos ----------------------------------------------------------------------

CAT = {"Egyptian cat", "tabby, tabby cat"}
UNIFORM = {"military uniform"}
# what the small V1s see in grace_hopper.bmp: a person in formal dress
FORMAL = {"military uniform", "mortarboard", "academic gown, academic robe, judge's robe",
          "suit, suit of clothes", "bow tie, bow-tie, bowtie"}

# (model, photo, the top-1 is one of these, these are all in the top k, k). Measured with
# ai-edge-litert and the default crop (center_fraction 0.875); where a model does not get a
# photo right, the table says what it does get (see the comments). grace_hopper.bmp is a
# tight portrait: the centre crop keeps her cap and face, so mortarboard and gown compete
# with the uniform.
EXPECTED = [
    ("mobilenet_v3_small", "cat", CAT, (), 1),
    ("mobilenet_v3_small", "bird", {"chickadee"}, (), 1),
    ("mobilenet_v3_small", "grace_hopper", UNIFORM, (), 1),
    ("mobilenet_v2", "cat", CAT, (), 1),
    ("mobilenet_v2", "bird", {"chickadee"}, (), 1),
    # V2: mortarboard (0.34) just above military uniform (0.28)
    ("mobilenet_v2", "grace_hopper", FORMAL, ("military uniform",), 2),
    ("mobilenet_v1", "cat", CAT, tuple(CAT), 3),
    ("mobilenet_v1", "bird", {"chickadee"}, (), 1),
    # V1 0.75/192: mortarboard (0.68), gown (0.23), suit (0.035), military uniform (0.031);
    # uniform and suit swap places with the bilinear step's rounding (0.039 each before it was exact)
    ("mobilenet_v1", "grace_hopper", FORMAL, ("military uniform",), 4),
    ("mobilenet_v1_0.5_160", "cat", CAT, (), 1),
    ("mobilenet_v1_0.5_160", "bird", {"chickadee"}, (), 1),
    # 0.5/160: academic gown first; military uniform 7th (0.02)
    ("mobilenet_v1_0.5_160", "grace_hopper", FORMAL, ("military uniform",), 10),
    ("mobilenet_v1_0.25_128", "cat", CAT, (), 1),
    ("mobilenet_v1_0.25_128", "bird", {"chickadee"}, (), 1),
    # 0.25/128: academic gown first; military uniform 5th (0.02)
    ("mobilenet_v1_0.25_128", "grace_hopper", FORMAL, ("military uniform",), 10),
]


@pytest.mark.parametrize("name, image, top1, in_top, k", EXPECTED)
def test_known_photos(classifier, photo, name, image, top1, in_top, k):
    res = classifier(name).classify(photo(image))
    top = [l.name for l in res.top_k(k)]
    assert top[0] in top1, res.top_k(5)
    for want in in_top:
        assert want in top, res.top_k(k)
    assert res.model == name
    assert res.scores.shape == (1001,) and res.scores.dtype == np.float32
    assert 0.0 <= res.scores.min() and res.scores.max() <= 1.0
    assert 0.8 <= res.scores.sum() <= 1.05  # probabilities (the quantized softmax does not sum to exactly 1)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("image", PHOTOS)
def test_scores_equal_a_hand_driven_interpreter(classifier, photo, name, image):
    clf = classifier(name)
    img = photo(image)
    spec = clf.input_spec
    tensor = np.empty((spec.height, spec.width, 3), spec.dtype)
    clf.preprocessor(img, tensor)

    it = interpreter_for(clf.model_path, clf.threads)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    it.set_tensor(inp["index"], tensor[None])
    it.invoke()
    raw = it.get_tensor(out["index"]).reshape(-1)
    scale, zero = out["quantization"]
    expected = (raw.astype(np.float32) - zero) * np.float32(scale)

    got = clf.classify(img).scores
    assert np.array_equal(got, expected)


def test_the_tensor_is_the_default_centre_crop_in_rgb(classifier, photo):
    # cat.bmp is 512x341: 87.5% of its 341 px square is 298 px, which shrinks to 224 (less than 2x)
    # in one bit-exact bilinear step
    clf = classifier("mobilenet_v3_small")
    img = photo("cat")
    assert img.shape[:2] == (341, 512)
    by_hand = cv2.cvtColor(cv2.resize(img[21:319, 107:405], (224, 224), interpolation=cv2.INTER_LINEAR_EXACT),
                           cv2.COLOR_BGR2RGB)
    clf.set_input(img)
    assert np.array_equal(clf.interpreter.get_tensor(clf._in_index)[0], by_hand)


def test_the_other_entry_points_agree(classifier, photo):
    clf = classifier("mobilenet_v3_small")
    img = photo("bird")
    want = clf.classify(img).scores
    # RGB input
    assert np.array_equal(clf.classify(np.ascontiguousarray(img[:, :, ::-1]), order="rgb").scores, want)
    # a frame, preprocessed first (as the capture thread does)
    frame = Frame(image=img, index=12, timestamp=100.0, wall_time=1.7e9)
    tensor = clf.prepare(frame)
    res = clf.classify_prepared(tensor, frame, preprocess_ms=1.5)
    assert np.array_equal(res.scores, want)
    assert (res.frame_index, res.capture_time, res.wall_time) == (12, 100.0, 1.7e9)
    assert res.preprocess_ms >= 1.5
    # a frame with an ISP-scaled RGB picture at model size: used as it is
    lores = Frame(image=np.zeros((480, 640, 3), np.uint8), index=13, timestamp=101.0, wall_time=1.7e9,
                  model_input=tensor)
    assert np.array_equal(clf.classify_prepared(clf.prepare(lores), lores).scores, want)
    assert np.array_equal(clf.prepare(lores), tensor)
    # the interpreter driven by hand (bench's peer loop), then output_scores()
    clf.interpreter.set_tensor(clf.interpreter.get_input_details()[0]["index"], tensor[None])
    clf.interpreter.invoke()
    assert np.array_equal(clf.output_scores(), want)


def test_crop_setting_reaches_the_classifier(model_cache, photo):
    clf = load_classifier(ModelConfig(name="mobilenet_v3_small", dir=str(model_cache), crop="stretch", threads=1),
                          fetch_missing=False)
    assert clf.preprocessor.crop == "stretch" and clf.threads == 1
    spec = clf.input_spec
    tensor = np.empty((spec.height, spec.width, 3), spec.dtype)
    clf.preprocessor(photo("cat"), tensor)
    # 512x341 -> 224x224: less than 2x in height, so one bit-exact bilinear step
    assert np.array_equal(tensor, cv2.cvtColor(
        cv2.resize(photo("cat"), (224, 224), interpolation=cv2.INTER_LINEAR_EXACT), cv2.COLOR_BGR2RGB))


# -- turning raw outputs into probabilities ---------------------------------------------------

def bare(out_dtype, scale: float, zero: int, probabilities) -> Classifier:
    """A Classifier with only its output settings, for output types none of the shared models have
    (they are all uint8, scale 1/256, zero point 0)."""
    clf = object.__new__(Classifier)
    clf._out_dtype, clf._out_scale, clf._out_zero, clf._probabilities = out_dtype, scale, zero, probabilities
    return clf


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x.astype(np.float64) - x.max())
    return e / e.sum()


def test_quantized_probabilities_are_dequantized_with_the_zero_point():
    raw = np.array([[-128, -64, 0, 127]], np.int8)
    got = bare(np.int8, 1 / 256, -128, True).scores(raw)
    assert np.allclose(got, [0.0, 0.25, 0.5, 255 / 256])


def test_quantized_logits_are_softmaxed():
    raw = np.array([[128, 148, 108, 138]], np.uint8)  # (q - 128) * 0.1 = 0, 2, -2, 1
    got = bare(np.uint8, 0.1, 128, False).scores(raw)
    assert np.allclose(got, softmax(np.array([0.0, 2.0, -2.0, 1.0])), atol=1e-6)
    assert got.argmax() == 1


@pytest.mark.parametrize("raw, probabilities", [
    ([0.1, 0.7, 0.2], True),  # a softmax already: kept
    ([1.0, 3.0, -2.0], False),  # logits
    ([0.5, 0.5, 0.5], False),  # positive, but not summing to 1
])
def test_float_outputs_are_judged_by_their_values(raw, probabilities):
    raw = np.array([raw], np.float32)
    got = bare(np.float32, 0.0, 0, None).scores(raw)
    want = raw[0] if probabilities else softmax(raw[0])
    assert np.allclose(got, want, atol=1e-6)


# -- accuracy on 100 ImageNet photos -------------------------------------------------------

# Floors a few points under what each model measures here (default crop, center_fraction):
# V3-Small 0.74, V2 0.86, V1 0.75/192 0.81, V1 0.5/160 0.77, V1 0.25/128 0.52. At n = 100 each
# is only known to about +-0.08 (Wilson), so the floors leave room for preprocessing changes.
FLOORS = {
    "mobilenet_v3_small": 0.70,
    "mobilenet_v2": 0.80,
    "mobilenet_v1": 0.74,
    "mobilenet_v1_0.5_160": 0.68,
    "mobilenet_v1_0.25_128": 0.44,
}


@pytest.fixture(scope="session")
def imagenet_sample(shared_dir):
    folder = shared_dir / "images" / "imagenet-sample"
    with open(folder / "expected.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = []
    for row in rows:
        img = cv2.imread(str(folder / row["file"]), cv2.IMREAD_COLOR)
        assert img is not None, row["file"]
        out.append((img, int(row["label_index"])))
    assert len(out) == 100
    return out


@pytest.mark.parametrize("name", MODELS)
def test_accuracy_on_the_imagenet_sample(classifier, imagenet_sample, name):
    clf = classifier(name)
    top1 = top5 = 0
    for img, want in imagenet_sample:
        ranked = [l.index for l in clf.classify(img).top_k(5)]
        top1 += ranked[0] == want
        top5 += want in ranked
    n = len(imagenet_sample)
    assert top1 / n >= FLOORS[name], f"{name}: top-1 {top1 / n:.2f}"
    assert top5 / n >= top1 / n and top5 / n >= 0.7


# -- bad model files ------------------------------------------------------------------------

def bad_file(tmp: Path, kind: str) -> Path:
    rng = np.random.default_rng(0)
    data = {
        "random": rng.integers(0, 256, 100_000, np.uint8).tobytes(),
        "forged-header": b"\x1c\x00\x00\x00TFL3" + rng.integers(0, 256, 100_000, np.uint8).tobytes(),
        "text": b"mobilenet_v3_small\nthis is not a model\n",
        "html": b"<!DOCTYPE html><html><body>404 Not Found</body></html>\n",
        "empty": b"",
    }
    path = tmp / f"{kind}.tflite"
    if kind == "folder":
        path.mkdir()
    elif kind != "missing":
        path.write_bytes(data[kind])
    return path


BAD = {
    "random": "not a TFLite model (it looks like data",
    "forged-header": "the runtime cannot load it",
    "text": "not a TFLite model (it looks like text",
    "html": "not a TFLite model (it looks like text",
    "empty": "not a TFLite model (it looks like empty",
    "missing": "not found",
    "folder": "cannot read it",
}


def assert_model_error(path: Path, expected: str) -> None:
    with pytest.raises(ModelError) as info:
        Classifier(path, ["background", "thing"])
    msg = info.value.message
    assert info.value.exit_code == EXIT_MODEL == 2
    assert "\n" not in msg
    assert f"model file {path}" in msg
    assert expected in msg


@pytest.mark.parametrize("kind", BAD)
def test_bad_model_file_is_one_line_naming_the_file(tmp_path, kind):
    assert_model_error(bad_file(tmp_path, kind), BAD[kind])


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_truncated_model(shared_dir, tmp_path, fraction):
    real = (shared_dir / "models" / "v3-small_224_1.0_uint8.tflite").read_bytes()
    path = tmp_path / "truncated.tflite"
    path.write_bytes(real[: int(len(real) * fraction)])
    assert_model_error(path, "the runtime cannot load it")


@pytest.mark.parametrize("n", [1000, 1002, 1])
def test_labels_that_do_not_match_the_model(shared_dir, labels, n):
    model = shared_dir / "models" / "v3-small_224_1.0_uint8.tflite"
    wrong = (labels * 2)[:n]
    with pytest.raises(ModelError) as info:
        Classifier(model, wrong)
    msg = info.value.message
    assert "\n" not in msg
    assert model.name in msg
    assert f"{n} labels but the model has 1001 classes" in msg
    assert "--labels" in msg


def test_load_classifier_with_a_path_and_labels(shared_dir, labels_path, tmp_path):
    model = shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite"
    clf = load_classifier(ModelConfig(name=str(model), labels=str(labels_path)))
    assert clf.name == "mobilenet_v1_0.25_128_quant" and clf.input_size == (128, 128)
    short = tmp_path / "labels1000.txt"
    short.write_text("\n".join(labels_path.read_text().splitlines()[1:]) + "\n")
    with pytest.raises(ModelError, match="1000 labels but the model has 1001 classes"):
        load_classifier(ModelConfig(name=str(model), labels=str(short)))


def test_unknown_model_name(tmp_path):
    with pytest.raises(ModelError, match="unknown model 'mobilenet_v9'.*known models: mobilenet_v3_small"):
        load_classifier(ModelConfig(name="mobilenet_v9", dir=str(tmp_path)))


@pytest.mark.parametrize("name, crop, view", [
    ("mobilenet_v3_small", "center_fraction", (256, 256)),
    ("mobilenet_v3_small", "square", (224, 224)),
    ("mobilenet_v3_small", "stretch", (224, 224)),
    ("mobilenet_v1", "center_fraction", (219, 219)),
    ("mobilenet_v1_0.5_160", "center_fraction", (183, 183)),
    ("mobilenet_v1_0.25_128", "center_fraction", (146, 146)),
])
def test_view_size_is_where_the_crop_needs_no_resampling(model_cache, name, crop, view):
    clf = load_classifier(ModelConfig(name=name, dir=str(model_cache), crop=crop, threads=1), fetch_missing=False)
    assert clf.view_size == view
    # a picture of the view size (as the Pi's ISP delivers it), wider than tall: its crop is the model's size
    w, h = view[0] * 4 // 3, view[1]
    x, y, cw, ch = crop_box(w, h, crop, 0.875)
    if crop != "stretch":
        assert (cw, ch) == clf.input_size

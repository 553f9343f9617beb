"""The command line, run as users run it: ``python -m edgecam ...`` in a subprocess."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import REPO, run_cli
from tests.doubles import one_error_line

@pytest.fixture
def env(tmp_path):
    """An environment without ../shared: no user config, the checkout importable."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO)
    e.pop("EDGECAM_CONFIG", None)
    e["EDGECAM_MODEL_DIR"] = str(tmp_path / "models")
    return e


@pytest.fixture
def menv(model_env, tmp_path):
    """The model cache filled from ../shared, and an empty config file (built-in defaults)."""
    cfg = tmp_path / "empty.yaml"
    cfg.write_text("")
    return dict(model_env, EDGECAM_CONFIG=str(cfg))


@pytest.fixture(scope="session")
def images(shared_dir):
    return shared_dir / "images"


# -- help and check-config (no models needed) ------------------------------------------

def test_help(env, tmp_path):
    proc = run_cli(["--help"], env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for command in ("classify", "eval", "run", "check-config", "models"):
        assert command in proc.stdout


def test_no_command_prints_help_and_fails(env, tmp_path):
    proc = run_cli([], env=env, cwd=tmp_path)
    assert proc.returncode == 2
    assert "usage: edgecam" in proc.stdout


def test_check_config_good(env, tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text("model:\n  name: mobilenet_v2\n  threads: 2\nhttp:\n  enabled: true\n  port: 8081\n")
    proc = run_cli(["check-config", str(path)], env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{path}: OK"


def test_check_config_bad_prints_every_problem(env, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  threads: lots\n  crop: middle\nhttp:\n  port: 99999\nmqtt:\n  tls: 1\nbogus: true\n")
    proc = run_cli(["check-config", str(path)], env=env, cwd=tmp_path)
    assert proc.returncode == 2  # bad input, as `edgecam run` says
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == f"edgecam: config error: {path}: 5 problems:"
    want = ["model.threads: got 'lots'", "model.crop: got 'middle'", "http.port: got 99999",
            "mqtt.tls: got 1", "bogus: unknown key"]
    assert len(lines) == 1 + len(want)
    for w in want:
        assert any(l.startswith(f"  - {w}") for l in lines[1:]), (w, lines)


@pytest.mark.parametrize("text, fragment", [
    ("model:\n  name: x\n\ttop_k: 3\n", "line 3, column 1: not valid YAML"),
    (None, "file not found"),
])
def test_check_config_unreadable(env, tmp_path, text, fragment):
    path = tmp_path / "c.yaml"
    if text is not None:
        path.write_text(text)
    proc = run_cli(["check-config", str(path)], env=env, cwd=tmp_path)
    one_error_line(proc, 2, str(path), fragment)


def test_check_config_finds_the_default(env, tmp_path):
    if Path("/etc/edgecam/config.yaml").exists():
        pytest.skip("/etc/edgecam/config.yaml exists here")
    proc = run_cli(["check-config"], env=env, cwd=tmp_path)
    one_error_line(proc, 2, "no config file found")
    (tmp_path / "config.yaml").write_text("log_level: WARNING\n")
    proc = run_cli(["check-config"], env=env, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "config.yaml: OK"
    proc = run_cli(["check-config"], env=dict(env, EDGECAM_CONFIG=str(tmp_path / "none.yaml")), cwd=tmp_path)
    one_error_line(proc, 2, "none.yaml", "file not found")


def test_check_config_on_the_repo_config(env, tmp_path):
    path = REPO / "config.yaml"
    if not path.is_file():
        pytest.skip(f"{path} not written yet")
    proc = run_cli(["check-config", str(path)], env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


# -- classify ------------------------------------------------------------------------

def test_classify_json(menv, images, tmp_path):
    cat, bird = str(images / "cat.bmp"), str(images / "bird.bmp")
    proc = run_cli(["classify", "--json", cat, bird], env=menv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [r["image"] for r in out] == [cat, bird]
    for r in out:
        assert set(r) == {"image", "model", "runtime", "top_k"}
        assert (r["model"], r["runtime"]) == ("mobilenet_v3_small", "litert")
        assert len(r["top_k"]) == 3  # model.top_k's default
        for e in r["top_k"]:
            assert set(e) == {"index", "label", "score"}
            assert isinstance(e["index"], int) and 0 < e["score"] <= 1
        scores = [e["score"] for e in r["top_k"]]
        assert scores == sorted(scores, reverse=True)
    assert out[0]["top_k"][0]["label"] in ("Egyptian cat", "tabby, tabby cat")
    assert out[1]["top_k"][0]["label"] == "chickadee"
    assert out[1]["top_k"][0]["index"] == 20  # ImageNet class 19 + background


def test_classify_other_model_and_top_k(menv, images, tmp_path):
    proc = run_cli(["classify", "--json", "--model", "mobilenet_v2", "--top-k", "5", str(images / "grace_hopper.bmp")],
                   env=menv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (r,) = json.loads(proc.stdout)
    assert r["model"] == "mobilenet_v2"
    assert len(r["top_k"]) == 5
    assert "military uniform" in [e["label"] for e in r["top_k"]]


def test_classify_text(menv, images, tmp_path):
    cfg = tmp_path / "top1.yaml"
    cfg.write_text("model:\n  top_k: 1\n")
    proc = run_cli(["classify", "--config", str(cfg), str(images / "bird.bmp")], env=menv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"{images / 'bird.bmp'}:"
    assert len(lines) == 2 and lines[1].endswith("%  chickadee")


def test_classify_a_bird_with_the_bird_model(menv, images, tmp_path):
    """The README's bird-feeder model: 965 iNaturalist classes, background last, not first."""
    proc = run_cli(["classify", str(images / "bird.bmp"), "--model", "inat_birds"], env=menv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[1].endswith("%  Poecile atricapillus (Black-capped Chickadee)")
    assert float(lines[1].split("%")[0]) > 85
    proc = run_cli(["classify", "--json", str(images / "bird.bmp"), "--model", "inat_birds"], env=menv, cwd=tmp_path)
    (r,) = json.loads(proc.stdout)
    assert r["top_k"][0]["index"] == 659  # line 660 of inat_bird_labels.txt: no background line in front of it


@pytest.mark.parametrize("kind", ["text", "missing"])
def test_classify_unreadable_image(menv, images, tmp_path, kind):
    bad = tmp_path / "photo.jpg"
    if kind == "text":
        bad.write_text("not a picture\n")
    proc = run_cli(["classify", "--json", str(bad), str(images / "bird.bmp")], env=menv, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    why = "not a picture OpenCV can decode (a damaged or truncated file, or another format)" if kind == "text" \
        else "cannot read it (No such file or directory)"
    assert f"edgecam: {bad}: {why}; skipped" in proc.stderr.splitlines()
    # the readable one is still classified
    (r,) = json.loads(proc.stdout)
    assert r["top_k"][0]["label"] == "chickadee"


def test_classify_unknown_model(menv, images, tmp_path):
    proc = run_cli(["classify", "--model", "mobilenet_v9", str(images / "cat.bmp")], env=menv, cwd=tmp_path)
    one_error_line(proc, 2, "unknown model 'mobilenet_v9'", "mobilenet_v3_small")


def test_classify_bad_config(menv, images, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("model:\n  top_k: 0\n")
    proc = run_cli(["classify", "--config", str(cfg), str(images / "cat.bmp")], env=menv, cwd=tmp_path)
    one_error_line(proc, 2, str(cfg), "model.top_k: got 0")


# -- bad model files --------------------------------------------------------------------

@pytest.fixture
def small_picture(tmp_path):
    path = tmp_path / "picture.png"
    cv2.imwrite(str(path), np.full((64, 64, 3), 128, np.uint8))
    return path


@pytest.mark.parametrize("kind, fragment", [
    ("random", "not a TFLite model"),
    ("text", "not a TFLite model"),
    ("empty", "not a TFLite model"),
    ("missing", "not found"),
])
def test_classify_bad_model_file(env, tmp_path, small_picture, kind, fragment):
    model = tmp_path / f"{kind}.tflite"
    if kind == "random":
        model.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, np.uint8).tobytes())
    elif kind == "text":
        model.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0000\nsize 2621808\n")
    elif kind == "empty":
        model.write_bytes(b"")
    labels = tmp_path / "labels.txt"
    labels.write_text("background\nthing\n")
    proc = run_cli(["classify", "--model", str(model), "--labels", str(labels), str(small_picture)],
                   env=env, cwd=tmp_path)
    one_error_line(proc, 2, str(model), fragment)


def test_classify_truncated_model(menv, shared_dir, labels_path, tmp_path, small_picture):
    real = (shared_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite").read_bytes()
    model = tmp_path / "truncated.tflite"
    model.write_bytes(real[: len(real) // 2])
    proc = run_cli(["classify", "--model", str(model), "--labels", str(labels_path), str(small_picture)],
                   env=menv, cwd=tmp_path)
    one_error_line(proc, 2, str(model), "the runtime cannot load it")


def test_classify_labels_of_the_wrong_length(menv, shared_dir, labels_path, tmp_path, small_picture):
    labels = tmp_path / "labels1000.txt"
    labels.write_text("\n".join(labels_path.read_text().splitlines()[1:]) + "\n")  # without background
    model = shared_dir / "models" / "v3-small_224_1.0_uint8.tflite"
    proc = run_cli(["classify", "--model", str(model), "--labels", str(labels), str(small_picture)],
                   env=menv, cwd=tmp_path)
    one_error_line(proc, 2, model.name, "1000 labels but the model has 1001 classes")


# -- eval ------------------------------------------------------------------------------

def test_eval_json(menv, images, tmp_path):
    folder = images / "imagenet-sample"
    proc = run_cli(["eval", "--json", "--images", str(folder), "--expected", str(folder / "expected.csv")],
                   env=menv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    res = json.loads(lines[0])
    assert {"n", "top1", "top5", "top1_interval", "top5_interval", "model", "runtime", "crop"} <= set(res)
    assert (res["n"], res["model"], res["runtime"]) == (100, "mobilenet_v3_small", "litert")
    assert res["top1"] >= 0.72
    assert res["top1"] <= res["top5"] <= 1.0
    for k in ("top1", "top5"):
        lo, hi = res[f"{k}_interval"]
        assert lo < res[k] < hi or res[k] == hi == 1.0
    lo, hi = res["top1_interval"]
    assert 0.14 < hi - lo < 0.20  # about +-0.08 at n = 100 for a top-1 near 0.8


def test_eval_text_has_the_intervals(menv, images, tmp_path):
    folder = images / "imagenet-sample"
    proc = run_cli(["eval", "--model", "mobilenet_v1_0.25_128", "--crop", "stretch",
                    "--images", str(folder), "--expected", str(folder / "expected.csv")], env=menv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    assert line.startswith("mobilenet_v1_0.25_128 (litert, crop stretch): top-1 0.")
    assert "(95% CI 0." in line and line.endswith("over 100 photos")


def test_eval_compare_two_crops(menv, images, tmp_path):
    folder = images / "imagenet-sample"
    args = ["eval", "--images", str(folder), "--expected", str(folder / "expected.csv"),
            "--crop", "square", "--compare", "crop=center_fraction"]
    proc = run_cli([*args, "--json"], env=menv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    a, b = res["a"], res["b"]
    assert (a["crop"], b["crop"], b["crop_fraction"]) == ("square", "center_fraction", 0.875)
    assert a["model"] == b["model"] == "mobilenet_v3_small" and res["n"] == a["n"] == b["n"] == 100
    for k in ("top1", "top5"):
        d = res[k]
        only_a, only_b = d["only_a_right"], d["only_b_right"]
        assert (only_a, only_b) == (len(d["only_a_right_files"]), len(d["only_b_right_files"]))
        assert d["difference"] == pytest.approx(b[k] - a[k], abs=1e-3) == pytest.approx((only_b - only_a) / 100)
        assert d["interval"][0] <= d["difference"] <= d["interval"][1]
        assert d["mcnemar"]["method"] == ("exact" if only_a + only_b < 25 else "chi2")
        assert d["significant"] == (d["mcnemar"]["p_value"] < 0.05)
    proc = run_cli(args, env=menv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("A  mobilenet_v3_small (litert, crop square): top-1 ")
    assert lines[1].startswith("B  mobilenet_v3_small (litert, crop center_fraction 0.875): top-1 ")
    assert lines[2].startswith("B - A top-1: ") and "McNemar" in lines[2]
    assert lines[3].startswith("B - A top-5: ")


def test_eval_compare_models_is_a_real_difference(menv, images, tmp_path):
    folder = images / "imagenet-sample"
    proc = run_cli(["eval", "--json", "--images", str(folder), "--expected", str(folder / "expected.csv"),
                    "--model", "mobilenet_v2", "--compare", "model=mobilenet_v1_0.25_128"], env=menv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["top1"]["significant"] and res["top1"]["difference"] < -0.2  # 0.25/128 is far worse


def test_eval_class_folders(menv, images, tmp_path):
    import csv

    folder = images / "imagenet-sample"
    with open(folder / "expected.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:20]
    classes = tmp_path / "classes"
    for row in rows:
        d = classes / row["label"].split(",")[0].replace(" ", "_")
        d.mkdir(parents=True)
        (d / row["file"]).symlink_to(folder / row["file"])
    proc = run_cli(["eval", "--json", "--images", str(classes)], env=menv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["n"] == 20 and res["top1"] >= 0.5


@pytest.mark.parametrize("extra, fragment", [
    (["--compare", "crop=middle"], "--compare crop=middle: model.crop: got 'middle', expected one of"),
    (["--crop", "stretch", "--compare", "crop=stretch"], "--compare crop=stretch: that is the setting already in use"),
    (["--compare", "size=2"], "--compare size=2: unknown setting 'size'"),
    (["--compare", "model=mobilenet_v9"], "unknown model 'mobilenet_v9'"),
])
def test_eval_compare_errors(menv, images, tmp_path, extra, fragment):
    folder = images / "imagenet-sample"
    proc = run_cli(["eval", "--images", str(folder), "--expected", str(folder / "expected.csv"), *extra],
                   env=menv, cwd=tmp_path)
    one_error_line(proc, 2, fragment)


def test_eval_folder_without_classes(menv, images, tmp_path):
    proc = run_cli(["eval", "--images", str(images / "imagenet-sample")], env=menv, cwd=tmp_path)
    one_error_line(proc, 2, "imagenet-sample: 100 photos but no class subfolders", "--expected CSV")


def test_eval_bad_csv(menv, images, tmp_path):
    csv = tmp_path / "expected.csv"
    csv.write_text("name,label\ncat.bmp,282\n")
    proc = run_cli(["eval", "--images", str(images), "--expected", str(csv)], env=menv, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == f"edgecam: --expected {csv}: needs the columns file and label_index"


@pytest.mark.parametrize("value, code, fragment", [
    ("0", 2, "edgecam: bad flag: --interpreters: got 0, expected a value between 1 and 8"),
    ("two", 2, "argument --interpreters: expected a number or 'auto', got 'two'"),
])
def test_run_interpreters_flag_is_checked_like_the_config_key(env, tmp_path, value, code, fragment):
    proc = run_cli(["run", "--interpreters", value, "--source", str(tmp_path), "--display", "none"], env=env,
                   cwd=tmp_path)
    assert proc.returncode == code
    assert fragment in proc.stderr and "Traceback" not in proc.stderr


# -- check-config rejects whatever run rejects as bad input (issue 9 #8) ---------------

def _empty_token(tmp):
    (tmp / "token").write_text("\n")
    return tmp / "token"


def _text_model(tmp):
    (tmp / "model.tflite").write_text("version https://git-lfs.github.com/spec/v1\n")
    return tmp / "model.tflite"


# (config text, with {X} filled by the helper's file, the words both commands say)
REJECTED = [
    pytest.param("model:\n  threshold: .nan\n", None, "model.threshold: got nan", id="nan"),
    pytest.param("mqtt:\n  enabled: true\n  topic_prefix: 'cams/#'\n", None, "mqtt.topic_prefix: got 'cams/#'",
                 id="topic-wildcard"),
    pytest.param("record:\n  path: out.avi\n  fourcc: toolong\n", None, "record.fourcc: got 'toolong'",
                 id="fourcc-length"),
    pytest.param("record:\n  path: out.mp4\n  fourcc: ZZZZ\n", None, "record.fourcc: got 'ZZZZ'", id="fourcc-codec"),
    pytest.param("model:\n  name: mobilenet_v9\n", None, "unknown model 'mobilenet_v9'", id="unknown-model"),
    pytest.param("model:\n  name: {X}\n  labels: {X}\n", _text_model, "not a TFLite model", id="not-a-model"),
    pytest.param("http:\n  enabled: true\n  port: 0\n  token_file: {X}\n", _empty_token, "http.token_file",
                 id="empty-token"),
    pytest.param("mqtt:\n  enabled: true\n  username: cam\n  password_file: /nonexistent/pw\n", None,
                 "mqtt.password_file: cannot read /nonexistent/pw", id="password-file"),
]


@pytest.mark.parametrize("text, make, words", REJECTED)
def test_check_config_rejects_what_run_rejects(menv, shared_dir, tmp_path, text, make, words):
    if make is not None:
        text = text.replace("{X}", str(make(tmp_path)))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    video = shared_dir / "video" / "imagenet20_640x480_30fps.mp4"
    ran = run_cli(["run", "--config", str(cfg), "--source", str(video), "--display", "none"], env=menv, cwd=tmp_path)
    ran.stderr = "\n".join(l for l in ran.stderr.splitlines() if " INFO " not in l)  # loading the model
    one_error_line(ran, 2, words)
    checked = run_cli(["check-config", str(cfg)], env=menv, cwd=tmp_path)
    # The same exit code as run: the service's ExecReload= relies on check-config.
    assert checked.returncode == 2 and "Traceback" not in checked.stderr, checked.stderr
    assert words in checked.stderr and checked.stdout == ""
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "out.avi").exists()


@pytest.mark.parametrize("text", [
    "source:\n  type: opencv\n  uri: 0\n",  # a YAML number: webcam 0
    "source:\n  fps: 1e2\n  timeout_s: 5e-1\n",  # YAML 1.2 exponent numbers, which PyYAML reads as strings
    "record:\n  path: out.avi\n  fourcc: MJPG\n",
    "mqtt:\n  enabled: true\n  topic_prefix: home/cam1\n",
])
def test_check_config_accepts_what_yaml_users_write_plainly(env, tmp_path, text):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    proc = run_cli(["check-config", str(cfg)], env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{cfg}: OK"


def test_the_runtimes_own_info_line_stays_off_the_terminal_unless_debug(menv, images, tmp_path):
    # issue 9 #11: native lines next to edgecam's; the runtime prints this one at every model load.
    noise = "Created TensorFlow Lite XNNPACK delegate"
    proc = run_cli(["classify", str(images / "cat.bmp")], env=menv, cwd=tmp_path)
    assert proc.returncode == 0 and noise not in proc.stderr, proc.stderr
    proc = run_cli(["--debug", "classify", str(images / "cat.bmp")], env=menv, cwd=tmp_path)
    assert proc.returncode == 0 and noise in proc.stderr

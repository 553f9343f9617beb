"""The Coral backend as users run it (``python -m edgecam``), with the fake libedgetpu.so.1 found by the
dynamic loader through $LD_LIBRARY_PATH, as an installed one would be.

Accuracy through the whole path: ``eval --backend edgetpu`` on the 100 shared
photos gives the CPU twin's figures exactly, because the fake TPU answers each
input edgecam sends with what the CPU twin computes from that very input (a
reply table); any difference in preprocessing, the delegate's input or output
tensor, dequantization or labels would change them. Not checked against a
Coral: the TPU's own numbers (they differ from the CPU's by a step here and
there) and its speed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import pytest

from edgecam.measure.evaluate import load_csv
from tests.model.backends.conftest import reply_table
from tests.conftest import run_cli
from tests.doubles import Besides, one_error_line

@pytest.fixture
def tpu_env(model_env, fake_libedgetpu, tmp_path):
    env = dict(model_env)
    env["LD_LIBRARY_PATH"] = str(fake_libedgetpu.parent)
    env["EDGECAM_FAKE_EDGETPU_LOG"] = str(tmp_path / "tpu.log")
    env["EDGECAM_CONFIG"] = str(tmp_path / "empty.yaml")
    (tmp_path / "empty.yaml").write_text("")
    for var in ("EDGECAM_EDGETPU_LIBRARY", "EDGECAM_FAKE_EDGETPU"):
        env.pop(var, None)
    return env


@pytest.fixture(scope="module")
def replies(tmp_path_factory, shared_dir, labels):
    """The reply table for the 100 ImageNet photos and the three photos of images/."""
    sample = shared_dir / "images" / "imagenet-sample"
    paths = [p.path for p in load_csv(sample, sample / "expected.csv").photos]
    paths += [shared_dir / "images" / n for n in ("bird.bmp", "cat.bmp", "grace_hopper.bmp")]
    table = tmp_path_factory.mktemp("tpu") / "replies.bin"
    reply_table(table, shared_dir / "models" / "mobilenet_v1_0.75_192_quant.tflite", labels,
                [cv2.imread(str(p)) for p in paths])
    return table


def test_eval_on_the_edge_tpu_gives_the_cpu_twins_accuracy_exactly(tpu_env, replies, shared_dir, tmp_path):
    sample = shared_dir / "images" / "imagenet-sample"
    args = ["eval", "--images", str(sample), "--expected", str(sample / "expected.csv"), "--model", "mobilenet_v1",
            "--json"]
    cpu = run_cli(args + ["--backend", "cpu"], env=tpu_env, cwd=tmp_path)
    tpu = run_cli(args + ["--backend", "edgetpu"], env=dict(tpu_env, EDGECAM_FAKE_EDGETPU_REPLIES=str(replies)),
                  cwd=tmp_path, timeout=300)
    assert cpu.returncode == 0 and tpu.returncode == 0, cpu.stderr + tpu.stderr
    a, b = json.loads(cpu.stdout), json.loads(tpu.stdout)
    assert (a["model"], b["model"], a["runtime"], b["runtime"]) == \
        ("mobilenet_v1", "mobilenet_v1_edgetpu", "litert", "litert+edgetpu")
    assert a["n"] == b["n"] == 100
    for k in ("top1", "top1_interval", "top5", "top5_interval"):
        assert a[k] == b[k], k
    assert a["top1"] > 0.7  # a real classifier ran, not a table of zeros
    assert "model.backend edgetpu: running mobilenet_v1_edgetpu, the edgetpu build of mobilenet_v1" in tpu.stderr
    events = (tmp_path / "tpu.log").read_text().splitlines()
    assert sum(e.startswith("invoke reply ") for e in events) == 100  # every photo went through the TPU path


def test_classify_on_the_edge_tpu_prints_what_the_cpu_twin_prints(tpu_env, replies, shared_dir, tmp_path):
    bird = str(shared_dir / "images" / "bird.bmp")
    cpu = run_cli(["classify", bird, "--model", "mobilenet_v1"], env=tpu_env, cwd=tmp_path)
    tpu = run_cli(["classify", bird, "--model", "mobilenet_v1_edgetpu"],
                  env=dict(tpu_env, EDGECAM_FAKE_EDGETPU_REPLIES=str(replies)), cwd=tmp_path)
    assert tpu.returncode == 0, tpu.stderr
    assert tpu.stdout == cpu.stdout and tpu.stdout.splitlines()[1].endswith("%  chickadee")
    assert "loads and runs mobilenet_v1_0.75_192_quant_edgetpu.tflite (checked in a child process in" in tpu.stderr


@pytest.mark.parametrize("mode, code, fragments", [
    ("nodevice", 3, ["found no Coral", "plug the Coral in"]),
    ("crash", 6, ["libedgetpu.so.1 crashed (SIGSEGV) while loading the delegate", "built for another TFLite runtime"]),
    ("prepare-error", 6, ["libedgetpu.so.1 loaded but failed on mobilenet_v1_0.75_192_quant_edgetpu.tflite"]),
])
def test_library_failures_are_one_line_with_their_exit_code(tpu_env, shared_dir, tmp_path, mode, code, fragments):
    proc = run_cli(["classify", str(shared_dir / "images" / "bird.bmp"), "--model", "mobilenet_v1_edgetpu"],
                   env=dict(tpu_env, EDGECAM_FAKE_EDGETPU=mode), cwd=tmp_path)
    one_error_line(proc, code, *fragments, besides=Besides.LOGS)


def test_no_library_is_exit_6(model_env, shared_dir, tmp_path):
    env = dict(model_env, LD_LIBRARY_PATH=str(tmp_path), EDGECAM_EDGETPU_LIBRARY=str(tmp_path / "libedgetpu.so.1"))
    proc = run_cli(["classify", str(shared_dir / "images" / "bird.bmp"), "--model", "mobilenet_v1_edgetpu"],
                   env=env, cwd=tmp_path)
    one_error_line(proc, 6, "Edge TPU:", "libedgetpu.so.1 does not exist", "sudo apt install libedgetpu1-std",
                   besides=Besides.LOGS)


def test_the_edge_tpu_model_on_the_cpu_says_what_it_is_not_that_it_is_corrupt(model_env, shared_dir, tmp_path):
    tpu_file = str(shared_dir / "models" / "mobilenet_v1_0.75_192_quant_edgetpu.tflite")
    for args in (["--model", tpu_file, "--backend", "cpu", "--labels", str(shared_dir / "models" / "imagenet_labels.txt")],
                 ["--model", "mobilenet_v1_edgetpu", "--backend", "cpu"]):
        proc = run_cli(["classify", str(shared_dir / "images" / "bird.bmp"), *args], env=model_env, cwd=tmp_path)
        if args[1] == tpu_file:
            line = one_error_line(proc, 2, "is built for a Coral Edge TPU and runs only there",
                                  "set model.backend: edgetpu", besides=Besides.LOGS)
            assert "truncated" not in line and "corrupt" not in line
        else:  # a registry build on the CPU: its CPU twin runs instead, and the log says so
            assert proc.returncode == 0 and proc.stdout.splitlines()[1].endswith("%  chickadee")
            assert "running mobilenet_v1, the CPU model mobilenet_v1_edgetpu was built from" in proc.stderr


def test_a_tpu_that_stops_answering_mid_run_stops_the_run_with_exit_3(tpu_env, shared_dir, tmp_path):
    video = shared_dir / "video" / "imagenet20_640x480_30fps.mp4"
    proc = run_cli(["run", "--source", str(video), "--model", "mobilenet_v1_edgetpu", "--display", "none",
                    "--log", str(tmp_path / "log.jsonl")],
                   env=dict(tpu_env, EDGECAM_FAKE_EDGETPU="fail-invoke", EDGECAM_FAKE_EDGETPU_FAIL_AFTER="30",
                            EDGECAM_FAKE_EDGETPU_CLASS="20"), cwd=tmp_path, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "the TPU stopped answering (Failed to execute request" in errors[0], proc.stderr
    results = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    # the warm-up invoke (the probe's is in another process) and then the frames, until the TPU failed
    assert 25 <= len(results) <= 29 and {r["top_k"][0]["label"] for r in results} == {"chickadee"}


def test_models_compare_on_the_edge_tpu_times_its_builds_through_the_delegate(tpu_env, replies, shared_dir, tmp_path):
    sample = shared_dir / "images" / "imagenet-sample"
    args = ["models", "compare", "--images", str(sample), "--expected", str(sample / "expected.csv"), "--json",
            "--seconds", "0.2"]
    env = dict(tpu_env, EDGECAM_FAKE_EDGETPU_REPLIES=str(replies))
    run_cli(["models", "fetch", "mobilenet_v1_edgetpu"], env=env, cwd=tmp_path)
    tpu = run_cli(args + ["--backend", "edgetpu"], env=env, cwd=tmp_path, timeout=300)
    assert tpu.returncode == 0, tpu.stderr
    res = json.loads(tpu.stdout)
    (row,) = res["models"]  # the registry's Coral builds that are downloaded; the others listed as absent
    assert (row["name"], row["runtime"], list(row["invoke_ms"])) == ("mobilenet_v1_edgetpu", "litert+edgetpu", ["1"])
    assert {a["name"] for a in res["absent"]} == {"mobilenet_v2_edgetpu", "inat_birds_edgetpu"}
    cpu = run_cli(args + ["mobilenet_v1", "--threads", "1"], env=env, cwd=tmp_path, timeout=300)
    (twin,) = json.loads(cpu.stdout)["models"]
    assert row["accuracy"]["top1"] == twin["accuracy"]["top1"] > 0.7  # through the delegate: the twin's answers
    assert row["graph"]["input_shape"] == twin["graph"]["input_shape"] == [1, 192, 192, 3]
    proc = run_cli(args + ["--backend", "edgetpu"], env=dict(env, EDGECAM_FAKE_EDGETPU="crash"), cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr  # none could be measured: said in one line
    assert "the measuring process failed" in proc.stderr


def test_offline_without_libedgetpu_is_exit_6_not_a_download_failure(model_env, shared_dir, tmp_path):
    # issue 21: offline, doctor --probe and classify --backend edgetpu fetched the Edge TPU model first,
    # and stopped with 75 (a download failure) before saying the library is missing (6).
    offline = tmp_path / "models.yaml"  # the registry, every URL on a port nothing listens on
    offline.write_text(re.sub(r"https://[^\s/]+/", "http://127.0.0.1:9/",
                              (Path(__file__).resolve().parents[3] / "models" / "models.yaml").read_text()))
    env = dict(model_env, LD_LIBRARY_PATH=str(tmp_path), EDGECAM_EDGETPU_LIBRARY=str(tmp_path / "libedgetpu.so.1"),
               EDGECAM_REGISTRY=str(offline), EDGECAM_MODEL_DIR=str(tmp_path / "empty"), EDGECAM_MODEL_MIRROR="")
    proc = run_cli(["classify", str(shared_dir / "images" / "bird.bmp"), "--backend", "edgetpu",
                    "--model", "mobilenet_v1"], env=env, cwd=tmp_path)
    one_error_line(proc, 6, "Edge TPU:", "libedgetpu.so.1 does not exist", besides=Besides.LOGS)
    proc = run_cli(["doctor", "--probe", "--backend", "edgetpu"], env=env, cwd=tmp_path)
    assert proc.returncode == 6 and "Traceback" not in proc.stderr, (proc.returncode, proc.stderr)
    assert [line for line in proc.stdout.splitlines() if line.startswith("edgetpu")][0].split(None, 1)[1] \
        .startswith("no libedgetpu.so.1")
    assert not list((tmp_path / "empty").glob("*.tflite"))  # nothing was fetched: doctor only looks

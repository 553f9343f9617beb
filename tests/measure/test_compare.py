"""``edgecam models compare``: which models, the probe, the table formats, the plot, end to end."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil

import cv2
import numpy as np
import pytest

from edgecam import registry
from edgecam.measure.compare import Candidate, candidates, format_csv, format_markdown, format_text, notes, run_probe, \
    table_rows
from edgecam.measure.compare_plot import FRONT_BGR, HEIGHT, WIDTH, Axes, Point, family_colour, pareto_front, render
from edgecam.errors import ModelError
from edgecam.measure.model_probe import time_invokes
from tests.conftest import run_cli
from tests.doubles import one_error_line

# -- the Pareto front ------------------------------------------------------------------------


def P(name, ms, top1, p95=None):
    return Point(name, ms, p95 or ms * 1.2, top1, top1 - 0.08, min(1.0, top1 + 0.08))


@pytest.mark.parametrize("points, front", [
    ([P("a", 1, 0.5), P("b", 2, 0.7), P("c", 3, 0.9)], ["a", "b", "c"]),   # each slower one is better
    ([P("a", 1, 0.5), P("b", 2, 0.4), P("c", 3, 0.9)], ["a", "c"]),        # b: slower and worse than a
    ([P("a", 1, 0.8), P("b", 2, 0.8)], ["a"]),                             # as accurate but slower
    ([P("a", 2, 0.8), P("b", 2, 0.9)], ["b"]),                             # as fast but less accurate
    ([P("c", 3, 0.9), P("a", 1, 0.5)], ["a", "c"]),                        # order of the input does not matter
    ([P("a", 1, 0.5)], ["a"]),
])
def test_pareto_front(points, front):
    assert [p.name for p in pareto_front(points)] == front


@pytest.mark.parametrize("name, family", [
    ("mobilenet_v3_small", "v3"), ("v3-small_224_1.0_uint8", "v3"), ("mobilenet_v2", "v2"),
    ("mobilenet_v1_0.25_128", "v1"), ("mobilenet_v1_0.75_192_quant", "v1"), ("resnet50", None),
])
def test_family_colours(name, family):
    colours = {"v1": (180, 119, 31), "v2": (44, 160, 44), "v3": (40, 39, 214), None: (120, 120, 120)}
    assert family_colour(name) == colours[family]


# -- the plot, read back as pixels ------------------------------------------------------------

POINTS = [P("mobilenet_v1_0.25_128", 0.2, 0.5), P("mobilenet_v1", 1.2, 0.8), P("mobilenet_v3_small", 3.3, 0.76),
          P("mobilenet_v2", 1.8, 0.86)]


def near(img, x, y, colour, radius=2, tol=40):
    patch = img[int(y) - radius:int(y) + radius + 1, int(x) - radius:int(x) + radius + 1].reshape(-1, 3).astype(int)
    return bool((np.abs(patch - np.array(colour)).max(axis=1) <= tol).any())


def test_plot_points_front_and_text():
    img = render(POINTS, "MobileNets on a test machine", "100 photos")
    assert img.shape == (HEIGHT, WIDTH, 3)
    ax = Axes.fit(POINTS)
    for p in POINTS:  # every model is a dot of its family's colour where its numbers say
        assert near(img, ax.x(p.ms), ax.y(p.top1), family_colour(p.name)), p.name
        assert near(img, ax.x(p.ms), ax.y(p.hi), family_colour(p.name), tol=60)  # its interval bar
    front = pareto_front(POINTS)
    assert [p.name for p in front] == ["mobilenet_v1_0.25_128", "mobilenet_v1", "mobilenet_v2"]
    for a, b in zip(front, front[1:]):  # the front's line runs between its points
        mx, my = (ax.x(a.ms) + ax.x(b.ms)) / 2, (ax.y(a.top1) + ax.y(b.top1)) / 2
        assert near(img, mx, my, FRONT_BGR, radius=3)
    v3 = POINTS[2]  # off the front: the ring around its dot is white, not orange
    assert not near(img, ax.x(v3.ms) + 7, ax.y(v3.top1), FRONT_BGR, radius=0, tol=30)
    assert near(img, ax.x(front[0].ms) + 7, ax.y(front[0].top1), FRONT_BGR, radius=1, tol=60)
    title = img[10:50, 100:700]
    assert (title < 128).any()  # some dark text there


def test_axes_cover_every_point_and_interval():
    ax = Axes.fit(POINTS)
    assert ax.ms_lo < min(p.ms for p in POINTS) and ax.ms_hi > max(p.ms_p95 for p in POINTS)
    assert ax.acc_lo <= min(p.lo for p in POINTS) and ax.acc_hi >= max(p.hi for p in POINTS)
    assert 0.0 <= ax.acc_lo and ax.acc_hi <= 1.0
    with pytest.raises(ValueError):
        render([], "empty")


# -- table formats ---------------------------------------------------------------------------

ROWS = [
    {"name": "m1", "path": "/m1.tflite", "file_mb": 2.6, "runtime": "litert", "load_ms": 9.1, "rss_mb": 47.0,
     "classes": 1001,
     "graph": {"params": 2_537_825, "macs": 56_511_424, "se_blocks": 9, "hswish": 19, "input_shape": [1, 224, 224, 3],
               "quantization": "uint8",
               "mac_share": {"depthwise": 0.132, "pointwise": 0.7354, "standard": 0.0959, "fully_connected": 0.0367}},
     "invoke_ms": {"1": {"p50": 3.4, "p95": 3.9, "runs": 300}, "2": {"p50": 3.3, "p95": 5.2, "runs": 280}},
     "accuracy": {"n": 100, "top1": 0.76, "top1_interval": [0.6677, 0.8331], "top5": 0.95,
                  "top5_interval": [0.8882, 0.9785]}},
    {"name": "tpu", "path": "/tpu.tflite", "file_mb": 3.0, "graph": {"params": 0, "macs": 0,
     "input_shape": [1, 192, 192, 3], "quantization": "unknown", "custom_ops": ["edgetpu-custom-op"]},
     "invoke_ms": {}, "error": "the runtime cannot run it: Encountered unresolved custom op: edgetpu-custom-op."},
]


def test_table_rows_text_and_markdown():
    header, cells = table_rows(ROWS, [1, 2])
    assert len(header) == len(cells[0]) == len(cells[1]) == 16
    row = dict(zip(header, cells[0]))
    assert row["input"] == "224x224" and row["params M"] == "2.54" and row["MACs M"] == "56.5"
    assert row["classes"] == "1001" and dict(zip(header, cells[1]))["classes"] == "-"
    assert row["MACs dw/pw/std/fc %"] == "13/74/10/4" and (row["SE"], row["h-swish"]) == ("9", "19")
    assert row["invoke ms 1T p50/p95"] == "3.40 / 3.90" and row["invoke ms 2T p50/p95"] == "3.30 / 5.20"
    assert row["top-1 (95% CI)"] == "0.760 (0.668-0.833)"
    tpu = dict(zip(header, cells[1]))
    assert tpu["MACs M"] == tpu["invoke ms 1T p50/p95"] == tpu["top-1 (95% CI)"] == "-"
    text = format_text(header, cells).splitlines()
    assert len(text) == 3 and text[1].startswith("m1 ") and text[0].index("input") == text[1].index("224x224")
    md = format_markdown(header, cells).splitlines()
    assert md[0].startswith("| model | input |") and md[1].startswith("| --- |") and md[2].startswith("| m1 | 224x224 |")
    assert all(line.count("|") == 17 for line in md)


def test_notes_name_what_is_missing():
    absent = [Candidate("mobilenet_v3_large", None, absent="edgecam models fetch mobilenet_v3_large "
                                                          "--trust-on-first-use (no published checksum)")]
    lines = notes(ROWS + [{"name": "nolabels", "accuracy_error": "no labels file"}], absent)
    assert lines == [
        "tpu: the runtime cannot run it: Encountered unresolved custom op: edgetpu-custom-op. "
        "(an Edge TPU build: it runs with the Coral delegate only)",
        "nolabels: no accuracy: no labels file",
        "mobilenet_v3_large: not downloaded; fetch it with: edgecam models fetch mobilenet_v3_large "
        "--trust-on-first-use (no published checksum)",
    ]


def test_csv():
    rows = list(csv.DictReader(io.StringIO(format_csv(ROWS, [1, 2]))))
    assert [r["model"] for r in rows] == ["m1", "tpu"]
    r = rows[0]
    assert (r["params"], r["macs"], r["invoke_p50_ms_2t"], r["top1_lo"], r["photos"], r["classes"]) == \
        ("2537825", "56511424", "3.3", "0.6677", "100", "1001")
    assert float(r["mac_pointwise"]) == 0.7354 and r["note"] == ""
    assert rows[1]["note"].startswith("the runtime cannot run it") and rows[1]["top1"] == ""


# -- which models --------------------------------------------------------------------------------

def test_candidates_present_absent_and_paths(model_cache, shared_dir, tmp_path):
    reg = registry.load_registry()
    found = {c.name: c for c in candidates([], model_cache, reg)}
    assert list(found) == [n for n, e in reg.items() if e.backend == "cpu"]  # every CPU model, in registry order
    assert [c.name for c in candidates([], model_cache, reg, "edgetpu")] == [
        "mobilenet_v1_edgetpu", "mobilenet_v2_edgetpu", "inat_birds_edgetpu"]
    assert found["mobilenet_v3_large"].model_path is None
    assert "--trust-on-first-use" in found["mobilenet_v3_large"].absent
    v2 = found["mobilenet_v2"]
    assert v2.model_path == model_cache / "mobilenet_v2_1.0_224_quant.tflite"
    assert v2.labels_path == model_cache / "imagenet_labels.txt" and v2.preprocess["color"] == "RGB"
    # a registry model missing from an empty folder says how to fetch it, with its checksum
    (gone,) = candidates(["mobilenet_v2"], tmp_path, reg)
    assert gone.absent == "edgecam models fetch mobilenet_v2 (offline: add --from DIR)"
    # paths: labels found beside the model (or not)
    tflite = shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite"
    (c,) = candidates([str(tflite)], tmp_path, reg)
    assert (c.name, c.model_path, c.labels_path) == (tflite.stem, tflite, shared_dir / "models" / "imagenet_labels.txt")
    alone = tmp_path / "alone.tflite"
    shutil.copy(tflite, alone)
    (c,) = candidates([str(alone)], tmp_path, reg)
    assert c.labels_path is None and "no labels file for model" in c.labels_error
    with pytest.raises(ModelError, match="'nope' is neither a registry model"):
        candidates(["nope"], tmp_path, reg)


# -- the probe ---------------------------------------------------------------------------------

class CountingInterpreter:
    def __init__(self, clock):
        self.clock, self.calls = clock, 0

    def invoke(self):
        self.calls += 1
        self.clock.t += 0.004  # 4 ms an invoke


class Clock:
    t = 0.0

    def __call__(self):
        return self.t


@pytest.mark.parametrize("seconds, min_runs, runs", [(1.0, 20, 250), (0.01, 20, 20), (0.0, 5, 5)])
def test_time_invokes_runs_for_the_time_and_at_least_min_runs(seconds, min_runs, runs):
    clock = Clock()
    it = CountingInterpreter(clock)
    times = time_invokes(it, seconds, min_runs, clock=clock)
    assert len(times) == runs and it.calls == runs + 3  # 3 warm-up invokes
    assert times == pytest.approx([4.0] * runs)


def test_a_probe_that_takes_too_long_is_a_row_error(shared_dir):
    spec = {"name": "slow", "model_path": str(shared_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite"),
            "threads": [1], "seconds": 30, "crop": "center_fraction", "crop_fraction": 0.875}
    row = run_probe(spec, timeout=0.5)
    assert row["name"] == "slow" and row["error"].startswith("measuring took over")
    assert "invoke_ms" not in row


# -- end to end -------------------------------------------------------------------------------

@pytest.fixture
def menv(model_env, tmp_path):
    cfg = tmp_path / "empty.yaml"
    cfg.write_text("")
    return dict(model_env, EDGECAM_CONFIG=str(cfg))


def test_compare_every_registry_model_with_photos_and_plot(menv, shared_dir, tmp_path):
    sample = shared_dir / "images" / "imagenet-sample"
    plot = tmp_path / "compare.png"
    proc = run_cli(["models", "compare", "--images", str(sample), "--expected", str(sample / "expected.csv"),
                    "--threads", "1,2", "--seconds", "0.1", "--json", "--plot", str(plot)], env=menv, cwd=tmp_path,
                   timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    names = [r["name"] for r in res["models"]]
    assert names == ["mobilenet_v3_small", "mobilenet_v2", "mobilenet_v1", "mobilenet_v1_0.5_160",
                     "mobilenet_v1_0.25_128", "inat_birds"]
    assert {r["name"]: r["classes"] for r in res["models"]} == {**dict.fromkeys(names, 1001), "inat_birds": 965}
    birds = res["models"].pop()  # ImageNet photos: nothing a bird model can be scored on
    assert birds["accuracy"] is None and "not one of the model's 965 labels" in birds["accuracy_error"]
    assert res["absent"] == [{"name": "mobilenet_v3_large",
                              "fetch": "edgecam models fetch mobilenet_v3_large --trust-on-first-use "
                                       "(no published checksum)"}]
    assert res["threads"] == [1, 2] and res["machine"]["runtime"] == "litert"
    from edgecam.model.classifier import load_classifier
    from edgecam.config.schema import ModelConfig
    from edgecam.measure.evaluate import evaluate, load_csv
    from edgecam.model.model_graph import read_graph

    photos = load_csv(sample, sample / "expected.csv")
    for r in res["models"]:
        path = r["path"]
        assert r["graph"] == read_graph(path).to_dict()  # the file's own figures
        assert r["file_mb"] == pytest.approx(os.path.getsize(path) / 1e6, abs=0.01)
        assert r["load_ms"] > 0 and r["rss_mb"] > r["rss_model_mb"] > 0
        for t in ("1", "2"):
            inv = r["invoke_ms"][t]
            assert 0 < inv["p50"] <= inv["p95"] and inv["runs"] >= 20
        # the same accuracy as edgecam eval with the same settings
        (want,) = evaluate([load_classifier(ModelConfig(name=r["name"], threads=1), fetch_missing=False)], photos)
        acc = r["accuracy"]
        assert (acc["n"], acc["top1"], acc["top5"]) == (100, round(want.accuracy(1), 4), round(want.accuracy(5), 4))
        assert acc["top1_interval"] == [round(v, 4) for v in want.interval(1)]
        assert acc["crop"] == "center_fraction"
    img = cv2.imread(str(plot))
    assert img is not None and img.shape == (HEIGHT, WIDTH, 3)


def test_compare_text_with_a_path_and_an_edge_tpu_build(menv, shared_dir, tmp_path):
    models = shared_dir / "models"
    proc = run_cli(["models", "compare", "mobilenet_v1_0.25_128", str(models / "mobilenet_v1_0.75_192_quant_edgetpu.tflite"),
                    str(models / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"),
                    "--threads", "1", "--seconds", "0.05"], env=menv, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].endswith("no photos (give --images for accuracy)")
    assert lines[1].split()[:4] == ["model", "input", "classes", "quant"]
    rows = {line.split()[0]: line for line in lines[2:5]}
    assert set(rows) == {"mobilenet_v1_0.25_128", "mobilenet_v1_0.75_192_quant_edgetpu",
                         "mobilenet_v1_1.0_224_quant_embedding_extractor"}
    assert " 567.7 " in rows["mobilenet_v1_1.0_224_quant_embedding_extractor"]  # 569M minus its missing classifier
    assert lines[5].startswith("mobilenet_v1_0.75_192_quant_edgetpu: the runtime cannot run it: Encountered "
                               "unresolved custom op: edgetpu-custom-op")
    assert lines[5].endswith("(an Edge TPU build: it runs with the Coral delegate only)")
    assert len(lines) == 6
    assert "measuring mobilenet_v1_0.25_128 (1/3)..." in proc.stderr


def test_compare_markdown_and_csv(menv, tmp_path):
    for fmt in ("--markdown", "--csv"):
        proc = run_cli(["models", "compare", "mobilenet_v1_0.25_128", "--threads", "1", "--seconds", "0.05", fmt],
                       env=menv, cwd=tmp_path, timeout=120)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        if fmt == "--markdown":  # the machine, a blank line, the table, a blank line
            assert "(" in lines[0] and "cores)" in lines[0] and lines[1] == ""
            assert lines[2].startswith("| model |") and lines[4].startswith("| mobilenet_v1_0.25_128 |")
            assert lines[5] == "" and len(lines) == 6
        else:
            assert lines[0].startswith("model,path,input,") and lines[1].startswith("mobilenet_v1_0.25_128,")
        assert "measuring" not in proc.stderr


@pytest.mark.parametrize("args, code, fragment", [
    (["--plot", "x.png"], 2, "--plot draws accuracy against speed: it needs --images"),
    (["--images", "{sample}", "--expected", "{sample}/expected.csv", "--plot", "x.jpg"], 2,
     "--plot x.jpg: the plot is a PNG file"),
    (["--images", "{sample}", "--expected", "{sample}/expected.csv", "--plot", "/nonexistent/x.png"], 4,
     "folder /nonexistent does not exist or is not writable"),
    (["--expected", "{sample}/expected.csv"], 2, "--expected needs --images"),
    (["--images", "{sample}"], 2, "100 photos but no class subfolders"),
    (["mobilenet_v9"], 2, "'mobilenet_v9' is neither a registry model"),
])
def test_compare_errors(menv, shared_dir, tmp_path, args, code, fragment):
    sample = str(shared_dir / "images" / "imagenet-sample")
    proc = run_cli(["models", "compare", *[a.format(sample=sample) for a in args]], env=menv, cwd=tmp_path)
    one_error_line(proc, code, fragment)


def test_compare_with_nothing_downloaded(menv, tmp_path):
    proc = run_cli(["models", "compare", "--dir", str(tmp_path / "empty")], env=menv, cwd=tmp_path)
    one_error_line(proc, 2, "none of the models is downloaded in", "edgecam models fetch all")


def test_compare_bad_thread_list(menv, tmp_path):
    proc = run_cli(["models", "compare", "--threads", "0,2"], env=menv, cwd=tmp_path)
    assert proc.returncode == 2 and "thread counts must be between 1 and 64" in proc.stderr
    assert "Traceback" not in proc.stderr

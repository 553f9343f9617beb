"""Model registry, downloader and ``edgecam models`` CLI.

Downloads go over real HTTP to a server on 127.0.0.1 serving copies of the
shared models from tmp_path; mirror copies read ../shared/models in place.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import io
import os
import shutil
import socket
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from edgecam import registry
from edgecam.commands import models as cli_models
from edgecam.errors import EXIT_TEMPFAIL, DownloadError, ModelError, OutputError, RegistryError

SHARED_MODELS = Path(__file__).resolve().parents[2].parent / "shared" / "models"
SMALL = "mobilenet_v1_0.25_128_quant.tflite"  # the smallest shared model (0.5 MB)
LABELS = "imagenet_labels.txt"
CPU_NAMES = {
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "mobilenet_v2",
    "mobilenet_v1",
    "mobilenet_v1_0.5_160",
    "mobilenet_v1_0.25_128",
    "inat_birds",
}
# Accelerator builds: name -> (backend, the CPU model it is a build of)
BUILDS = {
    "mobilenet_v1_edgetpu": ("edgetpu", "mobilenet_v1"),
    "mobilenet_v2_edgetpu": ("edgetpu", "mobilenet_v2"),
    "inat_birds_edgetpu": ("edgetpu", "inat_birds"),
    "imx500_mobilenet_v2": ("imx500", "mobilenet_v2"),
    "resnet_v1_50_h8l": ("hailo", None),
    "resnet_v1_50_h8": ("hailo", None),
}
EXPECTED_NAMES = CPU_NAMES | set(BUILDS)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Temporary files a fetch may have left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix in (".part", ".tgz"))


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in (registry.ENV_MIRROR, registry.ENV_MODEL_DIR, registry.ENV_REGISTRY):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def shared_models() -> Path:
    if not (SHARED_MODELS / "SHA256SUMS").is_file():
        pytest.skip(f"../shared not found: {SHARED_MODELS} (real models and SHA256SUMS needed)")
    return SHARED_MODELS


@pytest.fixture
def shared_sums(shared_models) -> dict[str, str]:
    sums = {}
    for line in (shared_models / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            sums[name.lstrip("*")] = digest
    return sums


# ------------------------------------------------------------------ local HTTP server


class _Handler(SimpleHTTPRequestHandler):
    """Serves a folder; /truncated/NAME promises all of NAME but sends half, then hangs up;
    /busy/NAME answers 503 Service Unavailable."""

    def do_GET(self):
        if self.path.startswith("/busy/"):
            self.send_error(503)
            return
        if self.path.startswith("/truncated/"):
            data = (Path(self.directory) / self.path.removeprefix("/truncated/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def server(tmp_path):
    """(served folder, base URL) of an HTTP server on 127.0.0.1."""
    root = tmp_path / "www"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, name="test-http-server", daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def make_entry(url, file, sha, labels_url, labels_sha, member=None, size=128):
    e = {
        "description": "test model",
        "url": url,
        "file": file,
        "sha256": sha,
        "labels_url": labels_url,
        "labels_sha256": labels_sha,
        "input_size": size,
        "preprocess": {"input": "uint8", "range": [0, 255]},
    }
    if member:
        e["member"] = member
    return e


@pytest.fixture
def served(server, shared_models, tmp_path):
    """A registry (path) whose URLs point at the local server, and facts about it."""
    root, base = server
    model = (shared_models / SMALL).read_bytes()
    labels = (shared_models / LABELS).read_bytes()
    (root / SMALL).write_bytes(model)
    (root / LABELS).write_bytes(labels)
    bad = bytearray(model)
    bad[len(bad) // 2] ^= 0xFF
    (root / "corrupt").mkdir()
    (root / "corrupt" / SMALL).write_bytes(bytes(bad))
    (root / "tofu").mkdir()
    (root / "tofu" / SMALL).write_bytes(model)
    # A .tgz like the MobileNetV3 checkpoints: the model is one member among others.
    with tarfile.open(root / "pack.tgz", "w:gz") as tar:
        for name, data in (("pack/README", b"not the model\n"), ("pack/pack.tflite", model)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

    ms, ls = sha256(model), sha256(labels)
    lurl = f"{base}/{LABELS}"
    entries = {
        "plain": make_entry(f"{base}/{SMALL}", SMALL, ms, lurl, ls),
        "packed": make_entry(f"{base}/pack.tgz", "packed.tflite", ms, lurl, ls, member="pack/pack.tflite"),
        "corrupt": make_entry(f"{base}/corrupt/{SMALL}", SMALL, ms, lurl, ls),
        "truncated": make_entry(f"{base}/truncated/{SMALL}", SMALL, ms, lurl, ls),
        "truncated_tofu": make_entry(f"{base}/truncated/{SMALL}", SMALL, None, lurl, ls),
        "no_member": make_entry(f"{base}/pack.tgz", "none.tflite", ms, lurl, ls, member="pack/missing.tflite"),
        "tofu": make_entry(f"{base}/tofu/{SMALL}", SMALL, None, lurl, ls),
        "not_found": make_entry(f"{base}/nothing.tflite", "nothing.tflite", ms, lurl, ls),
        "busy": make_entry(f"{base}/busy/{SMALL}", SMALL, ms, lurl, ls),
    }
    reg_path = tmp_path / "registry.yaml"
    reg_path.write_text(yaml.safe_dump({"models": entries}))
    return {"registry": reg_path, "root": root, "base": base, "model": model, "bad": bytes(bad), "labels": labels}


# ---------------------------------------------------------------------- the registry


def test_registry_lists_the_supported_models_with_the_shared_checksums(shared_models, shared_sums):
    reg = registry.load_registry()
    assert set(reg) == EXPECTED_NAMES
    assert registry.DEFAULT_MODEL in reg
    assert {n: (e.backend, e.cpu_twin) for n, e in reg.items() if n in BUILDS} == BUILDS
    assert {e.backend for n, e in reg.items() if n in CPU_NAMES} == {"cpu"}
    # Every file mirrored in ../shared has the shared checksum; the rest (none of them mirrored) have none
    # and are fetched with --trust-on-first-use.
    by_name = {name.rsplit("/", 1)[-1]: digest for name, digest in shared_sums.items()}
    checked = 0
    for entry in reg.values():
        assert entry.url.startswith("https://")
        if entry.file in by_name:
            assert entry.sha256 == by_name[entry.file], entry.name
            checked += 1
        else:
            assert entry.sha256 is None, entry.name
        if entry.labels_url is not None:
            assert entry.labels_sha256 == shared_sums[entry.labels_file], entry.name
    assert checked == 8
    assert {n for n, e in reg.items() if e.sha256 is None} == {
        "mobilenet_v3_large", "mobilenet_v2_edgetpu", "inat_birds_edgetpu", "resnet_v1_50_h8l", "resnet_v1_50_h8"}
    assert reg["inat_birds"].labels_file == "inat_bird_labels.txt"
    assert reg["imx500_mobilenet_v2"].labels_url is None and reg["imx500_mobilenet_v2"].labels_file is None
    assert {e.labels_file for n, e in reg.items() if n not in ("inat_birds", "inat_birds_edgetpu",
                                                                "imx500_mobilenet_v2")} == {LABELS}
    large = reg["mobilenet_v3_large"]
    assert large.sha256 is None and large.member == "v3-large_224_1.0_uint8/v3-large_224_1.0_uint8.tflite"
    assert reg["mobilenet_v3_small"].member.endswith("/" + reg["mobilenet_v3_small"].file)
    assert {n: e.input_size for n, e in reg.items() if n.startswith("mobilenet_v1") and e.backend == "cpu"} == {
        "mobilenet_v1": 192,
        "mobilenet_v1_0.5_160": 160,
        "mobilenet_v1_0.25_128": 128,
    }


def test_verify_hashes_the_real_files_of_a_mirror_folder(shared_models):
    status = {name: s for name, s, _ in registry.verify(f"{shared_models}")}
    # not mirrored: V3-Large, the Edge TPU builds but V1's, the .hef files; the .rpk is in a subfolder
    for name in ("mobilenet_v3_large", "mobilenet_v2_edgetpu", "inat_birds_edgetpu", "resnet_v1_50_h8l",
                 "resnet_v1_50_h8", "imx500_mobilenet_v2"):
        assert status.pop(name) == "missing", name
    assert set(status.values()) == {"ok"}
    imx500 = {name: s for name, s, _ in registry.verify(shared_models / "imx500")}
    assert imx500["imx500_mobilenet_v2"] == "ok"  # its labels are inside: nothing else to check


def test_an_embedded_labels_entry_must_be_an_ai_camera_package(tmp_path):
    entry = {**make_entry("https://x/m.tflite", "m.tflite", None, None, None), "labels_url": None}
    p = tmp_path / "reg.yaml"
    p.write_text(yaml.safe_dump({"models": {"m": entry}}))
    with pytest.raises(RegistryError, match="labels_url may only be null for an AI Camera package"):
        registry.load_registry(p)
    p.write_text(yaml.safe_dump({"models": {"m": {**entry, "backend": "imx500"}}}))
    assert registry.load_registry(p)["m"].labels_url is None
    p.write_text(yaml.safe_dump({"models": {"m": {**entry, "backend": "tpu", "cpu_twin": "nope"}}}))
    with pytest.raises(RegistryError, match="backend must be one of cpu, edgetpu, imx500, hailo"):
        registry.load_registry(p)
    twin = {**make_entry("https://x/m.tflite", "m.tflite", None, "https://x/l.txt", None), "cpu_twin": "nope"}
    p.write_text(yaml.safe_dump({"models": {"m": twin}}))
    with pytest.raises(RegistryError, match="cpu_twin 'nope' is not a CPU model of this registry"):
        registry.load_registry(p)


def test_malformed_registry_is_one_line_naming_every_problem(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(
        yaml.safe_dump(
            {
                "models": {
                    "m": {**make_entry("https://x/m.tflite", "m.tflite", "abc", "https://x/l.txt", None), "colour": 1},
                    "n": make_entry("https://x/n.tgz", "../n.tflite", None, "https://x/l.txt", None),
                }
            }
        )
    )
    with pytest.raises(RegistryError) as exc:
        registry.load_registry(p)
    msg = exc.value.message
    assert "\n" not in msg and str(p) in msg
    assert "'colour'" in msg  # unknown field
    p.write_text(yaml.safe_dump({"models": {"n": make_entry("https://x/n.tgz", "../n.tflite", "z", "x", None)}}))
    with pytest.raises(RegistryError) as exc:
        registry.load_registry(p)
    msg = exc.value.message
    assert "file must be a plain file name" in msg and "sha256" in msg and "labels_url" in msg
    assert "member" in msg  # a .tgz without member

    p.write_text("models:\n  m: [unclosed\n")
    with pytest.raises(RegistryError, match="not valid YAML at line"):
        registry.load_registry(p)
    with pytest.raises(RegistryError, match="not found"):
        registry.load_registry(tmp_path / "absent.yaml")


def test_registry_path_and_models_dir_precedence(tmp_path, monkeypatch):
    assert registry.registry_path() == Path(registry.__file__).resolve().parents[2] / "models" / "models.yaml"
    monkeypatch.setenv(registry.ENV_REGISTRY, str(tmp_path / "r.yaml"))
    assert registry.registry_path() == tmp_path / "r.yaml"

    monkeypatch.setenv(registry.ENV_MODEL_DIR, str(tmp_path / "env"))
    assert registry.models_dir(tmp_path / "cfg") == tmp_path / "cfg"
    assert registry.models_dir() == tmp_path / "env"
    monkeypatch.delenv(registry.ENV_MODEL_DIR)
    # No checkout models/ folder (an installed package): the user's cache.
    monkeypatch.setattr(registry.schema, "_repo_models_dir", lambda: tmp_path / "no-such-checkout" / "models")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert registry.models_dir() == tmp_path / "cache" / "edgecam" / "models"


# --------------------------------------------------------------------- mirror fetch


def test_fetch_from_mirror_folder_copies_and_verifies(shared_models, shared_sums, tmp_path):
    dest = tmp_path / "models"
    path = registry.fetch("mobilenet_v1_0.25_128", dest_dir=dest, mirror=shared_models, progress=False)
    assert path == dest / SMALL
    assert sha256(path.read_bytes()) == shared_sums[SMALL]
    assert sha256((dest / LABELS).read_bytes()) == shared_sums[LABELS]
    assert leftovers(dest) == []
    # Present and verified: nothing is fetched, so an empty mirror is fine.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert registry.fetch("mobilenet_v1_0.25_128", dest_dir=dest, mirror=empty) == path


def test_a_mirror_copy_imports_no_network_module(shared_models, tmp_path):
    # The registry's docstring promises it (ssl and friends cost memory a camera never needs);
    # a fresh interpreter, since this test process has them all loaded already.
    import subprocess
    import sys

    code = ("import sys; from edgecam import registry; "
            f"registry.fetch('mobilenet_v3_small', dest_dir={str(tmp_path)!r}, mirror={str(shared_models)!r}, "
            "progress=False); print(sorted(m for m in ('http.client', 'ssl', 'tarfile', 'urllib.request') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert any(tmp_path.glob("*.tflite"))


def test_checking_a_present_model_at_start_loads_neither_openssl_nor_tempfile(shared_models, tmp_path):
    # Every run verifies its model: with hashlib that costs 3.6 MB of peak RSS (OpenSSL), with
    # tempfile its shutil's bz2 and lzma (registry/store.py's new_sha256, atomic.py).
    import subprocess
    import sys

    registry.fetch("mobilenet_v3_small", dest_dir=tmp_path, mirror=shared_models, progress=False)
    code = ("import sys; from edgecam import registry; "
            f"r = registry.resolve('mobilenet_v3_small', dest_dir={str(tmp_path)!r}); "
            "print(r.model_path.is_file(), sorted(m for m in ('_hashlib', 'tempfile') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2], env={**os.environ, "EDGECAM_MODEL_MIRROR": ""})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True []"


def test_fetch_honours_mirror_env_and_reports_a_file_it_lacks(shared_models, tmp_path, monkeypatch):
    monkeypatch.setenv(registry.ENV_MIRROR, str(shared_models))
    dest = tmp_path / "models"
    assert registry.fetch("mobilenet_v1_0.5_160", dest_dir=dest).is_file()
    with pytest.raises(RegistryError) as exc:
        registry.fetch("mobilenet_v3_large", dest_dir=dest, trust_on_first_use=True)
    assert "mobilenet_v3_large" in exc.value.message and str(shared_models) in exc.value.message
    assert "v3-large_224_1.0_uint8.tflite" in exc.value.message
    assert not (dest / "v3-large_224_1.0_uint8.tflite").exists()


def test_corrupt_mirror_copy_is_rejected(shared_models, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    data = bytearray((shared_models / SMALL).read_bytes())
    data[100] ^= 1
    (mirror / SMALL).write_bytes(bytes(data))
    dest = tmp_path / "models"
    with pytest.raises(RegistryError, match="checksum mismatch"):
        registry.fetch("mobilenet_v1_0.25_128", dest_dir=dest, mirror=mirror)
    assert not (dest / SMALL).exists() and leftovers(dest) == []


# ----------------------------------------------------------------------- HTTP fetch


def test_fetch_over_http_plain_and_from_tgz_member(served, tmp_path):
    dest = tmp_path / "models"
    path = registry.fetch("plain", dest_dir=dest, registry=served["registry"], progress=False)
    assert path.read_bytes() == served["model"]
    assert (dest / LABELS).read_bytes() == served["labels"]
    packed = registry.fetch("packed", dest_dir=dest, registry=served["registry"], progress=False)
    assert packed == dest / "packed.tflite" and packed.read_bytes() == served["model"]
    assert leftovers(dest) == []
    assert {n: s for n, s, _ in registry.verify(dest, served["registry"])}["packed"] == "ok"


def test_checksum_mismatch_keeps_nothing_and_never_replaces_the_existing_file(served, tmp_path):
    reg = served["registry"]
    dest = tmp_path / "models"
    with pytest.raises(RegistryError) as exc:
        registry.fetch("corrupt", dest_dir=dest, registry=reg)
    msg = exc.value.message
    assert "corrupt" in msg and "checksum mismatch" in msg and f"{served['base']}/corrupt/{SMALL}" in msg
    assert sha256(served["bad"]) in msg and "\n" not in msg
    assert not (dest / SMALL).exists() and leftovers(dest) == []

    # A good copy is present: it verifies, so the bad server is not even asked.
    registry.fetch("plain", dest_dir=dest, registry=reg)
    registry.fetch("corrupt", dest_dir=dest, registry=reg)
    assert (dest / SMALL).read_bytes() == served["model"]

    # A damaged local copy is only replaced by a download that verifies.
    (dest / SMALL).write_bytes(b"damaged")
    with pytest.raises(RegistryError, match="was left as it was"):
        registry.fetch("corrupt", dest_dir=dest, registry=reg)
    assert (dest / SMALL).read_bytes() == b"damaged" and leftovers(dest) == []
    registry.fetch("plain", dest_dir=dest, registry=reg)
    assert (dest / SMALL).read_bytes() == served["model"]


def test_interrupted_download_leaves_no_file(served, tmp_path):
    dest = tmp_path / "models"
    with pytest.raises(DownloadError) as exc:
        registry.fetch("truncated", dest_dir=dest, registry=served["registry"])
    assert "cut off" in exc.value.message and "truncated" in exc.value.message
    assert exc.value.exit_code == EXIT_TEMPFAIL  # a cut connection may not happen again: retried
    assert not (dest / SMALL).exists() and leftovers(dest) == []
    # Without a checksum, the length check is all that stands between a cut
    # download and a recorded "trusted" hash.
    with pytest.raises(RegistryError, match="cut off"):
        registry.fetch("truncated_tofu", dest_dir=dest, registry=served["registry"], trust_on_first_use=True)
    assert sorted(p.name for p in dest.iterdir()) == []


def test_missing_archive_member(served, tmp_path):
    dest = tmp_path / "models"
    with pytest.raises(RegistryError) as exc:
        registry.fetch("no_member", dest_dir=dest, registry=served["registry"])
    assert "pack/missing.tflite" in exc.value.message and "no_member" in exc.value.message
    assert list(dest.iterdir()) == []


def test_http_error_and_unreachable_server(served, tmp_path):
    """A wrong URL (404) is bad input, exit 2; an unreachable or busy server may
    heal, exit 75 (DownloadError), which the service retries."""
    dest = tmp_path / "models"
    with pytest.raises(RegistryError, match="HTTP 404") as exc:
        registry.fetch("not_found", dest_dir=dest, registry=served["registry"])
    assert not isinstance(exc.value, DownloadError) and exc.value.exit_code == 2
    with pytest.raises(DownloadError, match="HTTP 503") as exc:
        registry.fetch("busy", dest_dir=dest, registry=served["registry"])
    assert exc.value.exit_code == EXIT_TEMPFAIL and "\n" not in exc.value.message
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reg = {
        "offline": registry.ModelEntry(
            name="offline",
            description="",
            url=f"http://127.0.0.1:{port}/m.tflite",
            file="m.tflite",
            sha256="0" * 64,
            labels_url=f"http://127.0.0.1:{port}/l.txt",
            labels_sha256=None,
            labels_file="l.txt",
            input_size=1,
        )
    }
    with pytest.raises(DownloadError) as exc:
        registry.fetch("offline", dest_dir=dest, registry=reg)
    assert "cannot download" in exc.value.message and registry.ENV_MIRROR in exc.value.message
    assert exc.value.exit_code == EXIT_TEMPFAIL
    assert list(dest.iterdir()) == []

    # A file:// URL that names nothing is a wrong URL, not a network failure.
    missing = tmp_path / "nowhere.tflite"
    reg = {"local": dataclasses.replace(reg["offline"], name="local", url=missing.as_uri())}
    with pytest.raises(RegistryError) as exc:
        registry.fetch("local", dest_dir=dest, registry=reg)
    assert not isinstance(exc.value, DownloadError) and exc.value.exit_code == 2


def test_unwritable_destination_is_an_output_error(served, tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(OutputError, match="model folder"):
        registry.fetch("plain", dest_dir=not_a_dir / "models", registry=served["registry"])


def test_unknown_name_in_fetch(served, tmp_path):
    with pytest.raises(RegistryError) as exc:
        registry.fetch("nope", dest_dir=tmp_path, registry=served["registry"])
    assert "'nope'" in exc.value.message
    assert all(name in exc.value.message for name in ("plain", "packed", "tofu"))


def test_trust_on_first_use_records_and_then_verifies(served, tmp_path):
    reg, dest = served["registry"], tmp_path / "models"
    with pytest.raises(RegistryError, match="--trust-on-first-use"):
        registry.fetch("tofu", dest_dir=dest, registry=reg)
    assert not (dest / SMALL).exists()

    path = registry.fetch("tofu", dest_dir=dest, registry=reg, trust_on_first_use=True)
    assert path.read_bytes() == served["model"]
    record = dest / (SMALL + ".sha256")
    assert record.read_text().split() == [sha256(served["model"]), SMALL]
    assert {n: s for n, s, _ in registry.verify(dest, reg)}["tofu"] == "ok"

    # Later fetches need no flag: they check against the record.
    assert registry.fetch("tofu", dest_dir=dest, registry=reg) == path
    path.unlink()
    (served["root"] / "tofu" / SMALL).write_bytes(served["bad"])  # upstream changes
    with pytest.raises(RegistryError) as exc:
        registry.fetch("tofu", dest_dir=dest, registry=reg, trust_on_first_use=True)
    assert "checksum mismatch" in exc.value.message and "recorded on first use" in exc.value.message
    assert not path.exists() and record.read_text().split()[0] == sha256(served["model"])

    # A local copy that no longer matches the record shows up in verify.
    path.write_bytes(served["bad"])
    assert {n: s for n, s, _ in registry.verify(dest, reg)}["tofu"] == "mismatch"


def test_verify_statuses(served, tmp_path):
    reg, dest = served["registry"], tmp_path / "models"
    registry.fetch("plain", dest_dir=dest, registry=reg)
    (dest / "nothing.tflite").write_bytes(b"wrong")
    (dest / LABELS).unlink()
    status = {n: (s, d) for n, s, d in registry.verify(dest, reg)}
    assert status["packed"][0] == "missing"
    assert status["not_found"][0] == "mismatch"
    assert status["plain"] == ("missing", f"labels: {LABELS} not in {dest}")
    registry.fetch("plain", dest_dir=dest, registry=reg)
    status = {n: s for n, s, _ in registry.verify(dest, reg)}
    assert status["plain"] == "ok" and status["tofu"] == "unverified"  # same file, no record


# -------------------------------------------------------------------------- resolve


def test_resolve_registry_name_fetches_from_mirror(shared_models, tmp_path, monkeypatch):
    monkeypatch.setenv(registry.ENV_MIRROR, str(shared_models))
    dest = tmp_path / "models"
    with pytest.raises(ModelError, match="edgecam models fetch mobilenet_v1_0.25_128"):
        registry.resolve("mobilenet_v1_0.25_128", dest_dir=dest, fetch_missing=False)
    r = registry.resolve("mobilenet_v1_0.25_128", dest_dir=dest)
    assert (r.name, r.model_path, r.labels_path) == ("mobilenet_v1_0.25_128", dest / SMALL, dest / LABELS)
    assert r.entry is not None and r.entry.input_size == 128
    labels = registry.read_labels(r.labels_path)
    assert len(labels) == 1001 and labels[0] == "background"
    assert registry.resolve("mobilenet_v1_0.25_128", dest_dir=dest, fetch_missing=False) == r


def test_resolve_path_finds_labels_beside_it(shared_models, tmp_path):
    r = registry.resolve(str(shared_models / SMALL))
    assert r.model_path == shared_models / SMALL and r.labels_path == shared_models / LABELS and r.entry is None

    folder = tmp_path / "custom"
    folder.mkdir()
    model = folder / "mine.tflite"
    shutil.copyfile(shared_models / SMALL, model)
    with pytest.raises(ModelError, match="no labels file"):
        registry.resolve(str(model))
    (folder / "mine_labels.txt").write_text("a\nb\n")
    assert registry.resolve(str(model)).labels_path == folder / "mine_labels.txt"
    (folder / "labels.txt").write_text("a\nb\n")
    assert registry.resolve(str(model)).labels_path == folder / "labels.txt"
    explicit = tmp_path / "other.txt"
    explicit.write_text("x\n")
    assert registry.resolve(str(model), labels=str(explicit)).labels_path == explicit
    with pytest.raises(ModelError, match="absent.txt"):
        registry.resolve(str(model), labels=str(tmp_path / "absent.txt"))


def test_resolve_unknown_name_and_missing_file(tmp_path):
    with pytest.raises(ModelError) as exc:
        registry.resolve("mobilenet_v9")
    assert "mobilenet_v9" in exc.value.message and "mobilenet_v3_small" in exc.value.message
    assert "\n" not in exc.value.message
    missing = tmp_path / "gone.tflite"
    with pytest.raises(ModelError, match=str(missing)):
        registry.resolve(str(missing))


def test_read_labels(tmp_path):
    p = tmp_path / "l.txt"
    p.write_text(" background \ncat\n\ndog\n\n\n")
    assert registry.read_labels(p) == ["background", "cat", "", "dog"]
    p.write_text("\n\n")
    with pytest.raises(ModelError, match="empty"):
        registry.read_labels(p)
    p.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ModelError, match="not UTF-8"):
        registry.read_labels(p)
    with pytest.raises(ModelError, match="cannot read"):
        registry.read_labels(tmp_path / "none.txt")


# ------------------------------------------------------------------------------ CLI


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="edgecam")
    cli_models.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_cli_fetch_list_verify(shared_models, tmp_path, capsys):
    dest = tmp_path / "models"
    assert run_cli("models", "fetch", "mobilenet_v2", "--from", str(shared_models), "--dir", str(dest)) == 0
    assert str(dest / "mobilenet_v2_1.0_224_quant.tflite") in capsys.readouterr().out

    assert run_cli("models", "list", "--dir", str(dest)) == 0
    lines = {line.split()[0].rstrip("*"): line.split() for line in capsys.readouterr().out.splitlines() if line}
    assert lines["mobilenet_v2"][1:5] == ["224", "cpu", "yes", "ok"]
    assert lines["mobilenet_v1_0.25_128"][1:5] == ["128", "cpu", "no", "-"]
    assert lines["imx500_mobilenet_v2"][1:5] == ["224", "imx500", "no", "-"]

    assert run_cli("models", "verify", "--dir", str(dest)) == 0  # missing models are not failures
    out = capsys.readouterr().out
    assert "mobilenet_v2" in out and "missing" in out

    (dest / "mobilenet_v2_1.0_224_quant.tflite").write_bytes(b"broken")
    with pytest.raises(RegistryError, match="mobilenet_v2"):
        run_cli("models", "verify", "--dir", str(dest))


def test_cli_fetch_all_skips_unchecksummed_and_reports_failures(shared_models, shared_sums, tmp_path, capsys):
    dest = tmp_path / "models"
    assert run_cli("models", "fetch", "all", "--from", str(shared_models), "--dir", str(dest)) == 0
    out = capsys.readouterr().out
    assert "mobilenet_v3_large: skipped" in out
    assert "accelerator builds are fetched by name, not by 'all' (mobilenet_v1_edgetpu," in out
    assert not (dest / "mobilenet_v1_0.75_192_quant_edgetpu.tflite").exists()
    for file in ("v3-small_224_1.0_uint8.tflite", SMALL, LABELS):
        assert sha256((dest / file).read_bytes()) == shared_sums[file]

    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copyfile(shared_models / SMALL, partial / SMALL)
    shutil.copyfile(shared_models / LABELS, partial / LABELS)
    dest2 = tmp_path / "models2"
    with pytest.raises(RegistryError) as exc:
        run_cli("models", "fetch", "all", "--from", str(partial), "--dir", str(dest2))
    assert exc.value.message.startswith("5 of 7 models could not be fetched")
    assert (dest2 / SMALL).is_file()  # went on after the failures


def test_cli_fetch_tofu_over_http_with_registry_env(served, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(registry.ENV_REGISTRY, str(served["registry"]))
    dest = tmp_path / "models"
    with pytest.raises(RegistryError, match="no checksum is known"):
        run_cli("models", "fetch", "tofu", "--dir", str(dest))
    assert run_cli("models", "fetch", "tofu", "--dir", str(dest), "--trust-on-first-use") == 0
    assert (dest / (SMALL + ".sha256")).is_file()
    assert run_cli("models", "fetch", "tofu", "--dir", str(dest)) == 0


def test_accelerator_builds_download_over_http_with_their_checksums(server, shared_models, tmp_path):
    """The registry's AI Camera package (real bytes, the registry's SHA-256; labels inside, no labels file)
    and a Hailo .hef (no .hef exists here: made-up bytes, trusted on first use) over local HTTP."""
    root, base = server
    reg = registry.load_registry()
    rpk = reg["imx500_mobilenet_v2"]
    (root / rpk.file).write_bytes((shared_models / "imx500" / rpk.file).read_bytes())
    hef = reg["resnet_v1_50_h8l"]
    (root / "hailo8l").mkdir()
    (root / "hailo8l" / "resnet_v1_50.hef").write_bytes(b"\x01HEF" + bytes(60))
    (root / LABELS).write_bytes((shared_models / LABELS).read_bytes())
    local = {
        rpk.name: {**make_entry(f"{base}/{rpk.file}", rpk.file, rpk.sha256, None, None, size=224),
                   "backend": "imx500", "preprocess": {}},
        hef.name: {**make_entry(f"{base}/hailo8l/resnet_v1_50.hef", hef.file, None, f"{base}/{LABELS}",
                                hef.labels_sha256, size=224), "backend": "hailo"},
    }
    path = tmp_path / "reg.yaml"
    path.write_text(yaml.safe_dump({"models": local}))
    dest = tmp_path / "models"
    got = registry.fetch(rpk.name, dest_dir=dest, registry=path, progress=False)
    assert got == dest / rpk.file and sorted(p.name for p in dest.iterdir()) == [rpk.file]
    with pytest.raises(RegistryError, match="no checksum is known for resnet_v1_50_h8l.hef"):
        registry.fetch(hef.name, dest_dir=dest, registry=path, progress=False)
    registry.fetch(hef.name, dest_dir=dest, registry=path, progress=False, trust_on_first_use=True)
    assert (dest / "resnet_v1_50_h8l.hef.sha256").read_text().split()[0] == sha256(b"\x01HEF" + bytes(60))
    (root / "hailo8l" / "resnet_v1_50.hef").write_bytes(b"\x01HEF" + bytes(59) + b"!")  # changed upstream
    (dest / hef.file).unlink()
    with pytest.raises(RegistryError, match="checksum mismatch for resnet_v1_50_h8l.hef"):
        registry.fetch(hef.name, dest_dir=dest, registry=path, progress=False)
    assert {n: s for n, s, _ in registry.verify(dest, path)} == {rpk.name: "ok", hef.name: "missing"}

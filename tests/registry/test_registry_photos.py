"""The registry's photos (the demo's slides) and mirrors of several folders.

Photos are fetched like models: over real HTTP from a server on 127.0.0.1
(copies of ../shared/images in tmp_path) or from mirror folders read in place.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from edgecam import registry
from edgecam.errors import RegistryError
from tests.registry.test_registry import (  # noqa: F401  (fixtures)
    LABELS, SMALL, _clean_env, leftovers, run_cli, server, sha256, shared_models, shared_sums,
)

PHOTOS = ("cat.bmp", "grace_hopper.bmp", "bird.bmp")
# The upstream sums, as ../shared/README.md gives them (google-coral/test_data, master).
UPSTREAM = {
    "cat.bmp": "34f235786382686111728287fd26d4c24dd8c25de8233469d6eeb301888ce0a9",
    "bird.bmp": "3fd22d6ed352b8e721d9982e38ed655f8429e168bb53ad205c6f3cdfa848e994",
    "grace_hopper.bmp": "c43444bf3b1b1e3080551ca194bd231da4b67f20fc91454502915a6b806b614f",
}


@pytest.fixture
def shared_images(shared_models) -> Path:
    images = shared_models.parent / "images"
    if not all((images / name).is_file() for name in PHOTOS):
        pytest.skip(f"../shared/images with {', '.join(PHOTOS)} not found at {images}")
    return images


def both(shared_models, shared_images) -> str:
    return f"{shared_models}{os.pathsep}{shared_images}"


# ------------------------------------------------------------------ the registry entries


def test_the_registry_names_the_three_coral_photos_with_their_upstream_sums(shared_images):
    photos = registry.load_photos()
    assert [p.file for p in photos.values()] == list(PHOTOS)  # the slideshow's order
    for p in photos.values():
        assert p.url == f"https://github.com/google-coral/test_data/raw/master/{p.file}"
        assert p.sha256 == UPSTREAM[p.file] == sha256((shared_images / p.file).read_bytes())


@pytest.mark.parametrize("photo, words", [
    pytest.param({"description": "x", "url": "https://x/a.bmp", "file": "a.bmp", "sha256": None},
                 ["photo 'p'", "sha256 must be 64"], id="no-checksum"),  # never trusted on first use
    pytest.param({"description": "x", "url": "https://x/a.bmp", "file": "a.bmp"},
                 ["photo 'p'", "missing field 'sha256'"], id="missing-field"),
    pytest.param({"description": "x", "url": "ftp://x/a.bmp", "file": "../a.bmp", "sha256": "0" * 64, "size": 1},
                 ["unknown field 'size'"], id="unknown-field"),
    pytest.param({"description": "x", "url": "ftp://x/a.bmp", "file": "../a.bmp", "sha256": "0" * 64},
                 ["url must be", "file must be a plain file name"], id="bad-values"),
    pytest.param(["a.bmp"], ["photo 'p': expected a mapping"], id="not-a-mapping"),
])
def test_a_bad_photo_entry_is_reported_by_every_registry_load(tmp_path, photo, words):
    p = tmp_path / "r.yaml"
    model = {"description": "m", "url": "https://x/m.tflite", "file": "m.tflite", "sha256": "0" * 64,
             "labels_url": "https://x/l.txt", "labels_sha256": "0" * 64, "input_size": 1}
    p.write_text(yaml.safe_dump({"models": {"m": model}, "photos": {"p": photo}}))
    for load in (registry.load_registry, registry.load_photos):
        with pytest.raises(RegistryError) as exc:
            load(p)
        assert "\n" not in exc.value.message and str(p) in exc.value.message
        for w in words:
            assert w in exc.value.message
    p.write_text(yaml.safe_dump({"models": {"demo": model}}))
    with pytest.raises(RegistryError, match="model 'demo': this name is reserved"):
        registry.load_registry(p)
    p.write_text(yaml.safe_dump({"models": {"m": model}}))
    assert registry.load_photos(p) == {}  # a registry of one's own may have no photos
    with pytest.raises(RegistryError, match="lists no photos"):
        registry.fetch_photos(dest_dir=tmp_path / "models", registry=p)


# ------------------------------------------------------------------------ mirror folders


def test_photos_come_from_the_second_mirror_folder(shared_models, shared_images, tmp_path):
    dest = tmp_path / "models"
    paths = registry.fetch_photos(dest_dir=dest, mirror=both(shared_models, shared_images), progress=False)
    assert paths == [dest / "demo" / name for name in PHOTOS]
    for path in paths:
        assert path.read_bytes() == (shared_images / path.name).read_bytes()
    assert leftovers(dest / "demo") == []
    # The model, from the first folder, through the same mirror list.
    assert registry.fetch("mobilenet_v1_0.25_128", dest_dir=dest, mirror=both(shared_models, shared_images),
                          progress=False) == dest / SMALL


def test_mirror_env_of_several_folders_with_empty_parts(shared_models, shared_images, tmp_path, monkeypatch):
    monkeypatch.setenv(registry.ENV_MIRROR, f"{os.pathsep}{shared_models}{os.pathsep}{os.pathsep}{shared_images}"
                                            f"{os.pathsep}")
    assert registry.mirror_dirs() == [shared_models, shared_images]
    dest = tmp_path / "models"
    assert [p.name for p in registry.fetch_photos(dest_dir=dest, progress=False)] == list(PHOTOS)
    assert registry.fetch("mobilenet_v1_0.25_128", dest_dir=dest, progress=False).is_file()
    assert registry.mirror_dirs(str(shared_images)) == [shared_images]  # --from wins over the variable
    monkeypatch.setenv(registry.ENV_MIRROR, "")
    assert registry.mirror_dirs() == []  # empty: download


def test_the_first_folder_that_has_a_file_gives_it(shared_models, tmp_path):
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    shutil.copyfile(shared_models / SMALL, good / SMALL)
    data = bytearray((shared_models / SMALL).read_bytes())
    data[100] ^= 1
    (bad / SMALL).write_bytes(bytes(data))
    shutil.copyfile(shared_models / LABELS, bad / LABELS)  # only the second folder has the labels
    dest = tmp_path / "models"
    registry.fetch("mobilenet_v1_0.25_128", dest_dir=dest, mirror=f"{good}{os.pathsep}{bad}", progress=False)
    assert (dest / SMALL).read_bytes() == (shared_models / SMALL).read_bytes()
    assert (dest / LABELS).is_file()
    dest2 = tmp_path / "models2"
    with pytest.raises(RegistryError, match=f"checksum mismatch for {SMALL} from {bad / SMALL}"):
        registry.fetch("mobilenet_v1_0.25_128", dest_dir=dest2, mirror=f"{bad}{os.pathsep}{good}")
    assert not (dest2 / SMALL).exists() and leftovers(dest2) == []


def test_a_file_no_folder_has_and_a_folder_that_does_not_exist(shared_models, tmp_path):
    empty, other = tmp_path / "empty", tmp_path / "other"
    empty.mkdir()
    (other / "sub").mkdir(parents=True)
    dest = tmp_path / "models"
    with pytest.raises(RegistryError) as exc:
        registry.fetch_photos(dest_dir=dest, mirror=f"{other}{os.pathsep}{empty}")
    msg = exc.value.message
    assert msg.startswith("demo photo cat: none of the mirror folders")
    assert f"{other}, {empty} has no cat.bmp (nor its subfolders)" in msg and "github.com/google-coral" in msg
    assert list((dest / "demo").iterdir()) == []
    with pytest.raises(RegistryError) as exc:
        registry.fetch_photos(dest_dir=dest, mirror=f"{shared_models}{os.pathsep}{tmp_path / 'typo'}")
    assert exc.value.message == (f"mirror folder {tmp_path / 'typo'} does not exist; "
                                 f"check --from / {registry.ENV_MIRROR}")
    with pytest.raises(RegistryError, match=f"mobilenet_v2: mirror folder {tmp_path / 'typo'} does not exist"):
        registry.fetch("mobilenet_v2", dest_dir=dest, mirror=f"{tmp_path / 'typo'}{os.pathsep}{shared_models}")


# ---------------------------------------------------------------------------- over HTTP


@pytest.fixture
def photo_registry(server, shared_images, tmp_path):
    """A registry whose photos point at the local server (which serves the real photos)."""
    root, base = server
    for name in PHOTOS:
        shutil.copyfile(shared_images / name, root / name)
    reg = yaml.safe_load(registry.registry_path().read_text())
    for entry in reg["photos"].values():
        entry["url"] = f"{base}/{entry['file']}"
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(reg, sort_keys=False))
    return path, root


def test_photos_are_downloaded_and_checked(photo_registry, shared_images, tmp_path):
    reg, root = photo_registry
    dest = tmp_path / "models"
    paths = registry.fetch_photos(dest_dir=dest, registry=reg, progress=False)
    assert [p.read_bytes() for p in paths] == [(shared_images / n).read_bytes() for n in PHOTOS]
    # Present and verified: the server is not asked again.
    for name in PHOTOS:
        (root / name).unlink()
    assert registry.fetch_photos(dest_dir=dest, registry=reg, progress=False) == paths


def test_a_changed_or_missing_upstream_photo_is_refused(photo_registry, tmp_path):
    reg, root = photo_registry
    data = bytearray((root / "grace_hopper.bmp").read_bytes())
    data[5000] ^= 0xFF
    (root / "grace_hopper.bmp").write_bytes(bytes(data))
    dest = tmp_path / "models"
    with pytest.raises(RegistryError) as exc:
        registry.fetch_photos(dest_dir=dest, registry=reg)
    msg = exc.value.message
    assert msg.startswith("demo photo grace_hopper: checksum mismatch for grace_hopper.bmp from http://127.0.0.1")
    assert sha256(bytes(data)) in msg and "was not kept" in msg
    assert sorted(p.name for p in (dest / "demo").iterdir()) == ["cat.bmp"]  # nothing half-kept
    (root / "grace_hopper.bmp").unlink()
    with pytest.raises(RegistryError, match="demo photo grace_hopper: download of .* failed: HTTP 404"):
        registry.fetch_photos(dest_dir=dest, registry=reg)


def test_photos_of_a_registry_of_ones_own_over_http(server, tmp_path):
    # Needs nothing from ../shared: made-up photos, served and checked.
    import cv2
    import numpy as np

    root, base = server
    photos = {}
    for i, name in enumerate(("one", "two")):
        ok, data = cv2.imencode(".png", np.full((30, 40, 3), 60 * (i + 1), np.uint8))
        (root / f"{name}.png").write_bytes(data.tobytes())
        photos[name] = {"description": name, "url": f"{base}/{name}.png", "file": f"{name}.png",
                        "sha256": sha256(data.tobytes())}
    model = {"description": "m", "url": f"{base}/m.tflite", "file": "m.tflite", "sha256": "0" * 64,
             "labels_url": f"{base}/l.txt", "labels_sha256": "0" * 64, "input_size": 1}
    reg = tmp_path / "r.yaml"
    reg.write_text(yaml.safe_dump({"models": {"m": model}, "photos": photos}, sort_keys=False))
    dest = tmp_path / "models"
    paths = registry.fetch_photos(dest_dir=dest, registry=reg, progress=False)
    assert paths == [dest / "demo" / "one.png", dest / "demo" / "two.png"]
    assert [p.read_bytes() for p in paths] == [(root / p.name).read_bytes() for p in paths]
    (dest / "demo" / "two.png").unlink()
    (root / "two.png").write_bytes(b"changed upstream")
    with pytest.raises(RegistryError, match="demo photo two: checksum mismatch for two.png"):
        registry.fetch_photos(dest_dir=dest, registry=reg)
    assert sorted(p.name for p in (dest / "demo").iterdir()) == ["one.png"]


# ---------------------------------------------------------------------------------- CLI


def test_cli_fetch_demo_from_several_folders(shared_models, shared_images, tmp_path, capsys):
    dest = tmp_path / "models"
    assert run_cli("models", "fetch", "demo", "--from", both(shared_models, shared_images), "--dir", str(dest)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"demo: {dest / 'demo' / name}" for name in PHOTOS]
    assert run_cli("models", "fetch", "mobilenet_v2", "--from", both(shared_models, shared_images),
                   "--dir", str(dest)) == 0
    with pytest.raises(RegistryError, match="has no cat.bmp"):
        run_cli("models", "fetch", "demo", "--from", str(shared_models), "--dir", str(tmp_path / "other"))


# ------------------------------------------------- one folder for everything (issue 21)


def test_one_folder_holding_models_and_images_subfolders_is_a_whole_mirror(shared_models, shared_images, tmp_path,
                                                                            monkeypatch):
    # ../shared as a newcomer has it: models/ and images/ one level down; one variable is enough.
    shared = shared_models.parent
    monkeypatch.setenv(registry.ENV_MIRROR, str(shared))
    dest = tmp_path / "models"
    assert registry.fetch("mobilenet_v1_0.25_128", dest_dir=dest, progress=False) == dest / SMALL
    assert (dest / SMALL).read_bytes() == (shared_models / SMALL).read_bytes()
    paths = registry.fetch_photos(dest_dir=dest, progress=False)
    assert [p.read_bytes() for p in paths] == [(shared_images / name).read_bytes() for name in PHOTOS]
    # A flat folder still works (the file itself first, then the subfolders).
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copyfile(shared_images / "cat.bmp", flat / "cat.bmp")
    assert registry.fetch_photos(dest_dir=tmp_path / "m2", mirror=f"{flat}{os.pathsep}{shared}",
                                 progress=False)[0].read_bytes() == (flat / "cat.bmp").read_bytes()


def test_the_models_folder_alone_is_answered_with_the_line_that_works(shared_models, shared_images, tmp_path):
    with pytest.raises(RegistryError) as exc:
        registry.fetch_photos(dest_dir=tmp_path / "models", mirror=str(shared_models))
    msg = exc.value.message
    assert msg.startswith(f"demo photo cat: mirror folder {shared_models} has no cat.bmp")
    # The folder above has it one level down: the message names the variable's value that works.
    assert f"{shared_images / 'cat.bmp'} is there: set {registry.ENV_MIRROR}={shared_models.parent}" in msg
    assert "\n" not in msg

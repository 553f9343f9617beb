"""A learned model switched live in the reload path (edgecam/pipeline/model_swap.py), with real models."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from edgecam.config import schema as config_mod
from edgecam.model import backends, custom_models
from edgecam.pipeline.model_swap import swap_learned
from tests.scenes import Scene, write_examples

BASE = "mobilenet_v1_0.25_128"


@pytest.fixture
def models(model_cache, model_env, shared_dir, tmp_path):
    """A model folder with the base model and two learned models on it: garage (3 states), porch (2)."""
    folder = tmp_path / "models"
    shutil.copytree(model_cache, folder)
    scene = Scene(shared_dir / "images" / "imagenet-sample")
    for name, seed in (("garage", 1), ("porch", 2)):
        examples = write_examples(scene, tmp_path / name, 3, seed)
        if name == "porch":
            shutil.rmtree(next(iter(examples.values()))[0].parent)  # one state fewer: other labels
        subprocess.run([sys.executable, "-m", "edgecam", "learn", str(tmp_path / name), "--name", name, "--base",
                        BASE, "--method", "ncm", "--dir", str(folder)], check=True, capture_output=True,
                       env=model_env)
    return folder


def config(models, name):
    cfg = config_mod.Config()
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, name=name, dir=str(models), threads=1))


def test_a_learned_model_on_the_running_base_takes_over_live_and_others_wait_for_a_restart(models):
    running = config(models, "garage")
    clf = backends.load_classifier(running.model)
    clf.build(1)
    parts = SimpleNamespace(classifier=clf)
    frame = np.zeros((128, 128, 3), np.uint8)
    assert swap_learned(parts, running, config(models, "porch"))
    assert (clf.name, running.model.name) == ("porch", "porch")
    assert clf.labels == custom_models.load(models / "porch.head.npz").labels and len(clf.labels) == 2
    assert clf is parts.classifier and clf.classify(frame) is not None  # the same interpreter, the new head
    assert not swap_learned(parts, running, config(models, "porch"))  # nothing new: nothing done

    # What cannot take the running head's place is left to a restart: the camera keeps its model.
    other = custom_models.load(models / "garage.head.npz")
    other.base_sha256 = "1" * 64  # learned on another file of the base
    custom_models.save(other, models)
    assert not swap_learned(parts, running, config(models, "garage"))
    assert not swap_learned(parts, running, config(models, BASE))  # a registry model
    assert (clf.name, running.model.name) == ("porch", "porch")

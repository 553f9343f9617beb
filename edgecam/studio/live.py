"""The drawn regions and their heads on the running camera: built at start, changed by a reload.

Each drawn region runs the base model (:data:`edgecam.studio.trainer.BASE`,
with its embedding) on a classifier of its own, with the head in use
(:mod:`edgecam.studio.versions`) or, before one is, the base model's classes.
:func:`apply` runs in the camera's output loop, from its reload (the path
SIGHUP takes: ``loop.on_reload``): it re-reads the drawn regions and the heads
in use, and swaps the camera's region list, its tracker's regions and the
page's in one step each. A region that did not change keeps its classifier,
its smoothing and its state; a region whose head changed starts its smoothing
again (its states changed).
"""

from __future__ import annotations

import dataclasses
import logging
import time

from edgecam.config.schema import RegionConfig
from edgecam.errors import EdgecamError
from edgecam.model import custom_models
from edgecam.model.regions import Region
from edgecam.outputs.base import RegionInfo
from edgecam.studio.trainer import BASE

logger = logging.getLogger(__name__)


def _head_key(path):
    """What identifies the head file in use (a version is never rewritten, but a copy may be)."""
    if path is None:
        return None
    try:
        return str(path), path.stat().st_mtime_ns
    except OSError:
        return None


def _region(studio, drawn, prev, follow: int) -> tuple[Region, bool]:
    """The Region of drawn region ``drawn`` (``prev``: the one running now, or None); whether its head changed."""
    path = studio.versions(drawn.name).current_path()
    key = _head_key(path)
    same_head = prev is not None and getattr(prev, "head_key", "none") == key
    if same_head and prev.box == drawn.box and tuple(prev.cfg.labels or ()) == drawn.labels:
        return prev, False
    clf = prev.classifier if prev is not None and hasattr(prev, "head_key") else studio.base_for(drawn.name)
    if not same_head:
        head = None
        if path is not None:
            try:
                head = custom_models.load(path).head
            except EdgecamError as e:
                logger.error("region %s: %s; it runs its base model's classes", drawn.name, e.message)
                key = None
        clf.swap_head(head)
    region = Region(RegionConfig(name=drawn.name, box=list(drawn.box), labels=list(drawn.labels)), clf,
                    follow=follow)
    region.head_key = key
    return region, not same_head


def drawn_regions(studio, follow: int) -> list[Region]:
    """The drawn regions' Region objects at start (each with its classifier and head)."""
    out = []
    for drawn in studio.store.load():
        if drawn.name in studio.config_names:
            logger.warning("region %s: drawn on the page and in the config file; the config's is used",
                           drawn.name)
            continue
        out.append(_region(studio, drawn, None, follow)[0])
    return out


def apply(studio, camera) -> list[str]:
    """Bring the running camera to the drawn regions and heads on disk (output loop); what changed, by name."""
    tracker, classifier = camera.tracker, camera.classifier
    started = time.perf_counter()
    if tracker is None:
        # The camera classifies the whole picture: its outputs (MQTT's entities, the log, the events) were
        # built for that, so the run starts again in this process, built for its regions as a start is.
        drawn = [d.name for d in studio.store.load() if d.name not in studio.config_names]
        if drawn and not camera.request_restart(f"regions drawn on the page ({', '.join(drawn)}): "
                                                f"camera {camera.name} classifies them from now on"):
            logger.warning("drawn regions: this camera classifies the whole picture; they apply at the next start")
        return []
    follow = camera.cfg.smoothing.window if camera.cfg.smoothing.mode == "ema" else 1
    running = {r.name: r for r in classifier.regions}
    regions = [r for r in classifier.regions if r.name in studio.config_names]
    changed, fresh = [], []
    for drawn in studio.store.load():
        if drawn.name in studio.config_names:
            continue
        try:
            region, new_head = _region(studio, drawn, running.get(drawn.name), follow)
        except EdgecamError as e:
            logger.error("region %s: %s; it is left out", drawn.name, e.message)
            continue
        if region is not running.get(drawn.name):
            changed.append(drawn.name)
        if new_head:
            fresh.append(drawn.name)
        regions.append(region)
    gone = [name for name in running if name not in {r.name for r in regions}]
    added = [name for name in changed if name not in running]
    # MQTT announced the camera's regions to Home Assistant at start (a sensor each): a region added or removed
    # starts the run again in this process, so that HA gets the new one's entities and loses the old one's.
    if (added or gone) and regions and camera.cfg.mqtt.enabled and camera.request_restart(
            f"regions {', '.join(added + gone)} {'added' if added else 'removed'} on the page: camera "
            f"{camera.name}'s MQTT entities follow"):
        return changed + gone
    if not regions:  # the last one removed: the whole picture again, as a start would build it
        if not camera.request_restart(f"the last drawn region removed: camera {camera.name} classifies the "
                                      "whole picture again"):
            logger.warning("drawn regions: the last region cannot be removed while running; it goes at the "
                           "next start")
        return []
    classifier.regions = regions  # one assignment: the capture thread reads the list once per frame
    for name in fresh:
        tracker.smoothers.pop(name, None)
    tracker.set_regions(regions)
    camera.set_region_info(tuple(RegionInfo(r.name, r.box, r.labels, r.cfg.on_label) for r in regions))
    studio.live = {r.name: r for r in regions}
    if changed or gone:
        # the output loop waited this long (a new region loads its classifier): said, to be seen
        logger.warning("drawn regions: %s (%.0f ms)", ", ".join([f"{n} applied" for n in changed]
                                                                + [f"{n} removed" for n in gone]),
                       (time.perf_counter() - started) * 1000)
    return changed + gone


def base_config(cfg):
    """The model section a drawn region's classifier is loaded with."""
    return dataclasses.replace(cfg.model, name=BASE, labels=None, crop="stretch", threads=1)

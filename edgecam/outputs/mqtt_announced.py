"""What this node announced to Home Assistant, remembered so that what it no longer has is removed.

Discovery configs are retained on the broker: Home Assistant keeps an entity
for each as long as it is there. edgecam used to publish the configs of what
the current config has and forget the others, so after a change (the whole
picture to regions, a region or a rule removed, another camera name) the old
entities stayed in Home Assistant, *available*, frozen at their last value.

So each discovery topic sent is remembered in the state directory
(``feature_dir(state_dir, "mqtt")/<node_id>.json``: topic -> the device's node
id, and whether it is a board-health entity), and at each connect a channel
clears (an empty retained message: Home Assistant then removes the entity)
the topics its device announced before and does not announce now. A device
the run no longer has (a camera removed) is cleared whole. The board's
entities are known only after its first reading, so they are not cleared
before it (they would flap at each restart).

Written by the connection's worker at a connect (and at the first health
reading): rare, small files, atomically.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from edgecam.atomic import write_atomic
from edgecam.config.state import feature_dir

logger = logging.getLogger("edgecam.outputs.mqtt")  # one logger for the whole MQTT output

FORMAT = 1
MAX_BYTES = 1024 * 1024  # ~4,000 topics: far more than any node announces


class Announced:
    """The discovery topics a node announced (``topics``: topic -> (node id, is a board-health entity)).

    ``state_dir``: the config's (None: nothing is remembered, nothing cleared: a sink made by hand, a test).
    """

    def __init__(self, state_dir: Path | None, node_id: str):
        self.state_dir, self.node_id = state_dir, node_id
        self.path = None if state_dir is None else Path(state_dir) / "mqtt" / f"{node_id}.json"
        self.topics: dict[str, tuple[str, bool]] = self._read()

    def _read(self) -> dict[str, tuple[str, bool]]:
        if self.path is None:
            return {}
        try:
            with open(self.path, "rb") as f:
                data = json.loads(f.read(MAX_BYTES))
            return {t: (v["node"], bool(v["health"])) for t, v in data["topics"].items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            logger.warning("MQTT: cannot read %s (%s); discovery configs announced before it are not cleared",
                           self.path, e)
            return {}

    def _save(self) -> None:
        if self.path is None:
            return
        data = {"format": FORMAT, "topics": {t: {"node": n, "health": h} for t, (n, h) in sorted(self.topics.items())}}
        try:
            feature_dir(self.state_dir, "mqtt")
            write_atomic(self.path, (json.dumps(data, indent=1) + "\n").encode())
        except OSError as e:  # a read-only state dir: announcing still works, clearing later will not
            logger.warning("MQTT: cannot write %s (%s); entities removed later may stay in Home Assistant",
                           self.path, e.strerror)

    def renew(self, node: str, current: dict[str, bool], health_known: bool) -> list[str]:
        """Device ``node`` announces ``current`` (topic -> is health) now; returns its earlier topics to clear.

        Its board-health topics are kept while ``health_known`` is False (no reading yet says which it has).
        """
        stale = [t for t, (n, h) in self.topics.items()
                 if n == node and t not in current and (health_known or not h)]
        new = {t: v for t, v in self.topics.items() if t not in stale} | {t: (node, h) for t, h in current.items()}
        if new != self.topics:
            self.topics = new
            self._save()
        return stale

    def add(self, node: str, topics: dict[str, bool]) -> None:
        """Topics announced later (the board's entities, after its first reading)."""
        self.renew(node, {t: h for t, (n, h) in self.topics.items() if n == node} | topics, health_known=True)

    def orphans(self, nodes: set[str]) -> list[str]:
        """The topics of devices not in ``nodes`` (a camera removed from the config), forgotten; to clear."""
        gone = [t for t, (n, _) in self.topics.items() if n not in nodes]
        if gone:
            for t in gone:
                del self.topics[t]
            self._save()
        return gone

#!/usr/bin/env python3
"""The bytes one edgecam node sends to its MQTT broker, per publish mode (docs/fleet.md, "Bytes on the broker").

For each mode, a fresh Mosquitto on loopback (``sys_interval 1``) and one ``edgecam run`` on the shared clip,
paced at its 30 fps and looping, with the default model (``mobilenet_v3_small``, one thread; a model's label
changes are what ``publish: changes`` sends, so the model matters); after a warm-up, the broker's own count of the bytes it received
(``$SYS/broker/bytes/received``: every MQTT packet, headers and keepalives included) over ``--seconds``, and a
subscriber's count of messages and payload bytes per topic. Prints one Markdown table row per mode. Run with
edgecam's environment, ../shared present::

    EDGECAM_MODEL_MIRROR=../shared .venv/bin/python tools/fleet_bytes.py --seconds 60
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.mosquitto import Mosquitto  # noqa: E402

VIDEO = REPO.parent / "shared" / "video" / "imagenet20_640x480_30fps.mp4"
MODES = {
    "changes (default)": {"publish": "changes"},
    "changes, max_changes_hz 1000": {"publish": "changes", "max_changes_hz": 1000.0},  # no cap: every change
    "changes, smoothing on": {"publish": "changes", "_smoothing": True},
    "every, max_rate_hz 2": {"publish": "every", "max_rate_hz": 2.0},
    "every, max_rate_hz 10": {"publish": "every", "max_rate_hz": 10.0},
    "changes + snapshot": {"publish": "changes", "snapshot": True},
    "changes, a still scene": {"publish": "changes", "_still": True},  # one photo: the label never changes
}


class Counts:
    """A paho subscriber counting messages and bytes (topic + payload) per topic, and the broker's $SYS figure."""

    def __init__(self, broker: Mosquitto):
        import paho.mqtt.client as mqtt

        self.lock = threading.Lock()
        self.topics: Counter = Counter()
        self.bytes: Counter = Counter()
        self.received = 0
        self.counting = False
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fleet-bytes")
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe([("edgecam/#", 0), ("homeassistant/#", 0), ("$SYS/broker/bytes/received", 0)])
        self.client.loop_start()

    def _on_message(self, _c, _u, msg) -> None:
        with self.lock:
            if msg.topic == "$SYS/broker/bytes/received":
                self.received = int(msg.payload)
            elif self.counting:
                kind = msg.topic.split("/")[-1] if msg.topic.startswith("edgecam/") else "discovery"
                self.topics[kind] += 1
                self.bytes[kind] += len(msg.topic) + len(msg.payload)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def still(tmp: Path) -> Path:
    folder = tmp / "still"
    folder.mkdir(exist_ok=True)
    (folder / "cat.bmp").write_bytes((REPO.parent / "shared" / "images" / "cat.bmp").read_bytes())
    return folder


def node_config(tmp: Path, broker: Mosquitto, mode: dict) -> Path:
    mqtt = {k: v for k, v in mode.items() if not k.startswith("_")}
    cfg = {"model": {"name": "mobilenet_v3_small", "threads": 1, "interpreters": 1},
           "source": ({"type": "images", "uri": str(still(tmp)), "fps": 30, "realtime": True, "loop": True} if mode.get("_still") else
                      {"type": "opencv", "uri": str(VIDEO), "realtime": True, "loop": True}),
           "display": {"mode": "none"}, "state_dir": str(tmp / "state"),
           "smoothing": {"mode": "ema", "hysteresis": True} if mode.get("_smoothing") else {},
           "mqtt": {"enabled": True, "host": broker.host, "port": broker.port, "client_id": "node",
                    "topic_prefix": "edgecam/node", **mqtt}}
    path = tmp / "cfg.json"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path


def measure(mode: dict, seconds: float, warmup: float) -> tuple[float, Counter, Counter]:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = Mosquitto(tmp)
        broker.conf_path.write_text(broker.conf_path.read_text() + "sys_interval 1\n")
        broker.start()
        counts = Counts(broker)
        env = dict(os.environ, PYTHONPATH=str(REPO))
        proc = subprocess.Popen([sys.executable, "-m", "edgecam", "run", "--config", str(node_config(tmp, broker, mode))],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(warmup)
            with counts.lock:
                counts.counting, start = True, counts.received
            time.sleep(seconds)
            with counts.lock:
                counts.counting, end = False, counts.received
        finally:
            proc.terminate()
            proc.wait(10)
            counts.close()
            broker.stop()
        # $SYS counts what every client sent: take away the subscriber's own (its SUBSCRIBE and PINGREQs, ~2 B/s).
        return (end - start) / seconds, counts.topics, counts.bytes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=15.0, help="seconds after start not counted (the birth)")
    ap.add_argument("--modes", nargs="*", default=list(MODES), help="of: " + ", ".join(MODES))
    args = ap.parse_args()
    if not VIDEO.is_file():
        print(f"{VIDEO} not found: this tool plays the shared clip", file=sys.stderr)
        return 2
    print("| mode | bytes/s to the broker | messages/s | by topic: messages/s (bytes each, topic + payload) |")
    print("|---|---|---|---|")
    for name in args.modes:
        rate, topics, sizes = measure(MODES[name], args.seconds, args.warmup)
        per = ", ".join(f"{k} {n / args.seconds:.2f} ({sizes[k] / n:.0f})" for k, n in topics.most_common())
        print(f"| {name} | {rate:.0f} | {sum(topics.values()) / args.seconds:.2f} | {per} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

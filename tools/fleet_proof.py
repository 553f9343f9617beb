#!/usr/bin/env python3
"""The fleet's figures (docs/fleet.md): N real ``edgecam run`` nodes on a real Mosquitto on loopback.

1. ``edgecam fleet --json``: the wall time of the whole command (a new Python process: start, connect,
   collect, print) and whether it listed every node online.
2. ``edgecam fleet push`` of a learned model (a new version of the ``garage`` the nodes run) to all, with one
   node stopped (SIGTERM) just as the push starts and started again ``--away`` seconds later: for each node,
   the time from the push's start to its answer (a subscriber's clock), and the SHA-256 it answered; the
   restarted node's answer after it came back.

Each node runs the demo source at ``--fps`` with ``mobilenet_v1_0.25_128`` and one thread (tests/e2e/fleet_nodes.py).
Run with edgecam's environment, ../shared present::

    .venv/bin/python tools/fleet_proof.py --nodes 10
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgecam.registry.store import sha256_file  # noqa: E402
from tests.e2e.fleet_nodes import NodeProc, env, fleet, learn_models  # noqa: E402
from tests.mosquitto import Mosquitto, Subscriber  # noqa: E402

SHARED = REPO.parent / "shared"


def wait(predicate, what: str, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise SystemExit(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def answers(sub: Subscriber, name: str, request_id: str) -> list[tuple[dict, float]]:
    with sub.lock:
        return [(json.loads(p), at) for t, p, _, at in sub.messages
                if t == f"edgecam/{name}/push/ack" and p and json.loads(p).get("id") == request_id]


def listing(broker) -> tuple[float, list[dict]]:
    t0 = time.monotonic()
    done = fleet(broker, "--json", shared=SHARED)
    return time.monotonic() - t0, json.loads(done.stdout)


def push_with_restart(broker, nodes, v2: Path, away: float) -> tuple[subprocess.Popen, float, float]:
    """Start the push; stop one node at once and start it again ``away`` s later. (push, t0 wall, restart wall)."""
    victim = nodes[len(nodes) // 2]
    t0 = time.time()
    push = subprocess.Popen([sys.executable, "-m", "edgecam", "fleet", "--broker", f"{broker.host}:{broker.port}",
                             "push", str(v2), "--to", "all", "--timeout", "30"], env=env(SHARED), cwd=SHARED,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stopper = threading.Thread(target=victim.stop)
    stopper.start()
    time.sleep(away)
    stopper.join()
    victim.start()
    return push, t0, time.time()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--fps", type=float, default=1.0)
    ap.add_argument("--away", type=float, default=3.0, help="seconds the restarted node stays stopped")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        broker = Mosquitto(root)
        broker.start()
        v1, v2 = learn_models(root, SHARED)
        sha = sha256_file(v2)
        nodes = [NodeProc(root, f"node{k:02d}", broker, v1, SHARED, args.fps) for k in range(args.nodes)]
        sub = Subscriber(broker, ["edgecam/+/node", "edgecam/+/push/ack"])
        try:
            for n in nodes:
                n.start()
            wait(lambda: all(sub.on(f"edgecam/{n.name}/node") for n in nodes), "every node's info", 120)
            took, listed = listing(broker)
            online = sum(1 for x in listed if x["online"])
            print(f"edgecam fleet --json: {len(listed)} nodes listed, {online} online, in {took:.2f} s "
                  "(the whole command, Python start included)")
            push, t0, back_at = push_with_restart(broker, nodes, v2, args.away)
            out, _ = push.communicate(timeout=60)
            print(out.rstrip())
            rid = next(json.loads(p)["id"] for p in sub.on(f"edgecam/{nodes[0].name}/push/ack") if p)
            victim = nodes[len(nodes) // 2]
            wait(lambda: answers(sub, victim.name, rid), f"{victim.name}'s answer after its restart", 60)
            for n in nodes:
                ack, at = answers(sub, n.name, rid)[0]
                extra = f" (restarted; {at - back_at:.2f} s after it was started again)" if n is victim else ""
                print(f"  {n.name}: ok={ack['ok']} same sha256={ack['sha256'] == sha} answered "
                      f"{at - t0:.2f} s after the push started{extra}")
            print(f"push exit code {push.returncode}; every node answered ok with sha256 {sha[:12]}: " + str(all(
                answers(sub, n.name, rid)[0][0]["ok"] and answers(sub, n.name, rid)[0][0]["sha256"] == sha
                for n in nodes)))
        finally:
            for n in nodes:
                n.stop()
            sub.close()
            broker.stop()
    print(subprocess.run(["sh", "-c", "lscpu | grep 'Model name'"], capture_output=True, text=True).stdout.strip())
    print("load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

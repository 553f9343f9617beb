#!/usr/bin/env python3
"""What one huge PUBLISH from the broker costs edgecam's MQTT output (which subscribes to nothing).

A fake broker, in a process of its own, accepts the connection, answers CONNACK and sends one PUBLISH of
``--mb`` MB; this process runs :class:`edgecam.outputs.mqtt.MqttSink` against it and prints its RSS and peak
RSS (VmRSS, VmHWM) before, just after and 10 s after. Loopback only. Run with edgecam's environment::

    .venv/bin/python tools/mqtt_big_publish.py --mb 64
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path


def memory() -> str:
    kb = {line.split(":")[0]: int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
          if line.startswith(("VmRSS", "VmHWM"))}
    return f"RSS {kb['VmRSS'] // 1024} MB, peak {kb['VmHWM'] // 1024} MB"


def varint(n: int) -> bytes:
    """MQTT's "remaining length" encoding."""
    out = bytearray()
    while True:
        n, byte = divmod(n, 128)
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def broker(port: int, size: int) -> None:
    with socket.create_server(("127.0.0.1", port)) as srv:
        conn, _ = srv.accept()
        conn.recv(65536)  # CONNECT
        conn.sendall(b"\x20\x02\x00\x00")  # CONNACK, accepted
        time.sleep(1)
        body = b"\x00\x01x" + bytes(size)  # topic "x", then the payload
        conn.sendall(b"\x30" + varint(len(body)) + body)
        conn.settimeout(0.5)
        end = time.monotonic() + 30
        while time.monotonic() < end:  # answer PINGREQ until the client goes
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            if data[:1] == b"\xc0":
                conn.sendall(b"\xd0\x00")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mb", type=int, default=64, help="size of the PUBLISH's payload in MB (default 64)")
    p.add_argument("--broker-port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    size = args.mb << 20
    if args.broker_port:
        broker(args.broker_port, size)
        return 0
    from edgecam.config.schema import MqttConfig
    from edgecam.outputs.mqtt import MqttSink

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fake = subprocess.Popen([sys.executable, __file__, "--mb", str(args.mb), "--broker-port", str(port)])
    try:
        time.sleep(1)
        sink = MqttSink(MqttConfig(enabled=True, host="127.0.0.1", port=port, discovery=False), "m", hostname="x")
        print(f"before connecting: {memory()}", flush=True)
        sink.start()
        time.sleep(8)
        print(f"after one {args.mb} MB PUBLISH: {memory()}", flush=True)
        time.sleep(10)
        print(f"10 s later: {memory()}", flush=True)
        sink.close()
    finally:
        fake.kill()
        fake.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Measure the capture runner's dumpcap handling on the loopback interface (needs root).

Prints: time from starting dumpcap until it has written its interface block (``wait_ready``),
time from SIGINT until it has exited (after the drain wait), and how many datagrams sent just
before the stop made it into the file with and without the drain wait.

    sudo python3 scripts/bench_capture_dumpcap.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.pcapng_blocks import packets
from usbtrace.capture.dumpcap import DRAIN_SECONDS, Dumpcap


def one_run(folder: Path, n: int, drain: float) -> tuple[float, float, int]:
    path = folder / f"bench-{n}-{drain}.pcapng"
    marker = b"usbtrace-bench-%d-%d" % (os.getpid(), n)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        cap = Dumpcap("lo", path, snaplen=128)
        t0 = time.perf_counter()
        cap.start()
        cap.wait_ready()
        ready = time.perf_counter() - t0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for _ in range(10):
                tx.sendto(marker, rx.getsockname())
        if drain:
            time.sleep(drain)
        t1 = time.perf_counter()
        cap.stop(drain=0)
        stopped = time.perf_counter() - t1
    kept = sum(1 for p in packets(path) if marker in p.data)
    return ready, stopped, kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for drain in (0.0, DRAIN_SECONDS):
            results = [one_run(Path(tmp), n, drain) for n in range(args.runs)]
            ready = [r[0] * 1000 for r in results]
            stop = [r[1] * 1000 for r in results]
            kept = [r[2] for r in results]
            print(
                f"drain {drain:.1f} s: ready median {statistics.median(ready):.1f} ms"
                f" (max {max(ready):.1f}), stop median {statistics.median(stop):.1f} ms"
                f" (max {max(stop):.1f}), datagrams kept {sum(kept)}/{10 * len(kept)}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

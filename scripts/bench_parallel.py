#!/usr/bin/env python3
"""Parallel benchmark: ``usbtrace summarize --jobs N`` over a fleet of small captures.

Makes ``--files`` (default 1,000) small synthetic captures in a temporary folder, then runs
``usbtrace summarize --json`` on the folder serially (``--jobs 1``) and in parallel (``--jobs N``,
default the number of cores), each as a child process limited to 64 open files. Prints the wall
time, captures per second, the peak RSS of the largest process, and whether the two outputs are
byte-identical.

    python3 scripts/bench_parallel.py --files 1000
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab.fuzzing.fleet import make_fleet  # noqa: E402

FD_LIMIT = 64


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


def run(folder: Path, jobs: int) -> tuple[float, int, int, bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "usbtrace", "summarize", "--json", "--jobs", str(jobs), str(folder)],
        capture_output=True,
        env=env,
        preexec_fn=_limit,
    )
    elapsed = time.perf_counter() - t0
    # ru_maxrss of children is the largest single process seen so far (not a sum)
    rss = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) * 1024
    return elapsed, rss, p.returncode, p.stdout


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--files", type=int, default=1000, help="captures in the fleet (default 1000)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel processes")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="usbtrace-fleet-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        make_fleet(folder, args.files)
        size = sum(f.stat().st_size for f in folder.iterdir())
        made = time.perf_counter() - t0
        print(f"fleet: {args.files} captures, {size / 1e6:.1f} MB, made in {made:.1f} s")
        t1, rss1, st1, out1 = run(folder, 1)
        print(f"--jobs 1: {t1:.1f} s, {args.files / t1:.0f} captures/s, "
              f"peak RSS {rss1 / 1e6:.0f} MB, exit {st1}")  # fmt: skip
        tn, rssn, stn, outn = run(folder, args.jobs)
        print(f"--jobs {args.jobs}: {tn:.1f} s, {args.files / tn:.0f} captures/s, "
              f"peak RSS {rssn / 1e6:.0f} MB, exit {stn}")  # fmt: skip
        same = out1 == outn
        print(f"speed-up {t1 / tn:.2f}x on {os.cpu_count()} cores; outputs identical: {same}; "
              f"open-file limit {FD_LIMIT}")  # fmt: skip
    return 0 if same and st1 == stn == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

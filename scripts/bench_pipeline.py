#!/usr/bin/env python3
"""The streaming pipeline on a long capture of small records (issue 14): memory and speed.

    python3 scripts/bench_pipeline.py [--frames 14400000] [--dir bench]

Makes (once, under --dir) a synthetic dense_300-shaped capture of about --frames records at
snaplen 128 (14.4 M frames is about 1.5 GiB: an hour-long `usbtrace capture` of a model run back
to back), then, each in a child process:
* `usbtrace summarize --json FILE`: wall time, frames/s, peak RSS (wait4), inferences found;
* `usbtrace inspect --json FILE`: time to the first line, wall time to the last, frames/s,
  peak RSS (the lines are read and counted, not kept).
Targets: summarize peak RSS <= 200 MB and >= 3 M frames/s; inspect >= 1 M frames/s and its
first line within 1 s. The payload-heavy case is `scripts/bench_memory.py --size-gb 10`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import compile_bytecode, frames_capture

ROOT = Path(__file__).resolve().parents[1]


def child(argv: list[str], stdout: int | None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "usbtrace", *argv], stdout=stdout, stderr=subprocess.PIPE, env=env
    )


def run_summarize(path: Path, frames: int) -> bool:
    out = path.with_suffix(".summary.json")
    t0 = time.perf_counter()
    with open(out, "wb") as f:
        proc = child(["summarize", "--json", "--jobs", "1", str(path)], f.fileno())
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    rss = usage.ru_maxrss * 1024 / 1e6
    doc = json.loads(out.read_bytes())
    out.unlink()
    found = sum(c["summary"]["inferences"] for c in doc["captures"])
    ok = os.waitstatus_to_exitcode(status) == 0 and rss <= 200 and frames / wall >= 3e6
    print(
        f"summarize --json: {wall:.2f} s, {frames / wall / 1e6:.2f} M frames/s, "
        f"peak RSS {rss:.0f} MB, {found} inferences; "
        f"targets (<= 200 MB, >= 3 M frames/s): {'met' if ok else 'NOT met'}"
    )
    return ok


def run_inspect(path: Path, frames: int) -> bool:
    t0 = time.perf_counter()
    proc = child(["inspect", "--json", str(path)], subprocess.PIPE)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    t_first = time.perf_counter() - t0
    lines = 1 if first else 0
    while block := proc.stdout.read(1 << 20):
        lines += block.count(b"\n")
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    rss = usage.ru_maxrss * 1024 / 1e6
    ok = os.waitstatus_to_exitcode(status) == 0 and t_first < 1 and frames / wall >= 1e6
    print(
        f"inspect --json: first line after {t_first:.2f} s, {wall:.2f} s in all, "
        f"{frames / wall / 1e6:.2f} M frames/s, {lines} lines, peak RSS {rss:.0f} MB; "
        f"targets (first line < 1 s, >= 1 M frames/s): {'met' if ok else 'NOT met'}"
    )
    return ok


def main() -> int:
    args, path = frames_capture(__doc__, 14_400_000)
    frames = args.frames
    compile_bytecode()
    print(f"capture: {path} ({path.stat().st_size / 2**30:.2f} GiB, about {frames:,} frames)")
    # inspect first: a child forked after this process has parsed summarize's JSON (hundreds
    # of MB of objects) starts with that RSS, which wait4 would then report as the child's
    ok = run_inspect(path, frames)
    ok = run_summarize(path, frames) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

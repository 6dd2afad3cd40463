#!/usr/bin/env python3
"""Pairing on URBs that never complete (issue 13): time and peak RSS of ``usbtrace summarize``.

Writes a synthetic capture per count (default 2 M and 5.4 M): a conv_50 session, then that many
bulk-IN submits on 0x81 that never complete, each with its own URB id
(``lab/synthetic/unanswered.py``). Runs ``usbtrace summarize --json`` on each in a child process
and prints the wall time, the child's peak RSS (``wait4`` rusage), whether the session's requests
were all found and what the integrity verdict says. Captures are made once under ``bench/`` (or
``$USBTRACE_BENCH_DIR``, or ``--dir``) and reused; ``--clean`` deletes them afterwards.

    python3 scripts/bench_unanswered.py                  # 2,000,000 and 5,400,000
    python3 scripts/bench_unanswered.py --counts 100000,2000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchlib import default_dir  # noqa: E402

MB = 1_000_000


def make_capture(path: Path, count: int) -> None:
    """Written by a child process: a child of this one inherits its peak RSS in ``wait4``'s
    figure (Linux counts the parent's pages at fork), so this one stays small."""
    code = (
        "import sys; from lab.synthetic.unanswered import write_unanswered; "
        "r = write_unanswered(sys.argv[1], int(sys.argv[2])); "
        "print(f'{r.frames:,} frames, {r.bytes / 1e6:.0f} MB')"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code, str(path), str(count)],
        env=env, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    print(f"made {path}: {out} in {time.perf_counter() - t0:.1f} s")


def run_summarize(path: Path) -> tuple[float, int, int, dict]:
    """(seconds, peak RSS in bytes, exit status, JSON) of a child ``usbtrace summarize``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out_path = path.with_suffix(".json")
    t0 = time.perf_counter()
    with open(out_path, "w") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "usbtrace", "summarize", "--json", "--jobs", "1", str(path)],
            stdout=out,
            env=env,
        )
        _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - t0
    doc = json.loads(out_path.read_text() or "{}")
    out_path.unlink()
    return elapsed, usage.ru_maxrss * 1024, os.waitstatus_to_exitcode(status), doc


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--counts", default="2000000,5400000", help="unanswered submits per capture")
    p.add_argument("--dir", type=Path, default=None, help="where captures go (default bench/)")
    p.add_argument("--clean", action="store_true", help="delete the captures afterwards")
    args = p.parse_args()
    folder = args.dir or default_dir()
    folder.mkdir(parents=True, exist_ok=True)
    ok = True
    for count in (int(c) for c in args.counts.split(",")):
        path = folder / f"unanswered-{count}.pcapng"
        if not path.exists():
            make_capture(path, count)
        size = path.stat().st_size
        try:
            seconds, rss, status, doc = run_summarize(path)
            caps = doc.get("captures", [])
            summary = caps[0]["summary"] if caps else {}
            requests = len(caps[0]["requests"]) if caps else 0
            problems = summary.get("integrity", {}).get("problems", [])
            print(f"{count:>10,} unanswered submits, {size / MB:.0f} MB: {seconds:.1f} s, "
                  f"{size / MB / seconds:.0f} MB/s, peak RSS {rss / MB:.0f} MB, exit {status}, "
                  f"{requests} requests, integrity: {'; '.join(problems) or 'ok'}")  # fmt: skip
            # the conv_50 session holds 6 requests (a caching request and 5 inferences)
            ok = ok and status == 0 and requests == 6
        finally:
            if args.clean:
                path.unlink(missing_ok=True)
    print(f"exit 0 and all 6 requests found in every capture: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
